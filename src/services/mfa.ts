// The second factor: TOTP enrolment (by the user with a code, or by an
// operator), verification of TOTP and recovery codes, and reset. TOTP secrets
// are stored only encrypted under the key ring (bound to the user by the
// context `totp:<userId>`); recovery codes only as SHA-256 digests. Each code
// is accepted once, also under concurrency: acceptance is one conditional
// UPDATE whose row count decides. Codes never enter audit details or logs.
//
// Lockout after wrong codes (SPEC "Brute force") is the sign-in flow's: it
// counts the `wrong`/`replayed`/`malformed` refusals this service returns
// towards the account's limit.
import { createHash } from 'node:crypto';
import type { Database, Transaction } from '../db/prisma.ts';
import type { KeyRing } from '../lib/encryption.ts';
import { CodedError, invalidInput } from '../lib/errors.ts';
import type { AuditService } from './audit.ts';
import type { Actor } from './clients.ts';
import type { SessionRevocation } from './sessions.ts';
import {
  generateRecoveryCode,
  generateTotpSecret,
  isTotpSecret,
  normaliseCode,
  otpauthUrl,
  qrCodeSvg,
  verifyTotp,
} from './totp.ts';
import { normaliseEmail } from './users.ts';

/** SPEC: 10 single-use recovery codes. */
const RECOVERY_CODE_COUNT = 10;
/** Long enough to install an authenticator app and scan; short enough that a stale page does not enrol. */
const PENDING_LIFETIME_SECONDS = 15 * 60;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type SecondFactorFailure = 'malformed' | 'wrong' | 'replayed' | 'not_enrolled';

/** `reason` is for the audit log and the lockout count: users are shown one generic message. */
export type SecondFactorResult =
  | { ok: true; method: 'otp' | 'recovery' }
  | { ok: false; reason: SecondFactorFailure };

export interface PendingEnrolment {
  /** Base32; shown to the user (`#totp-secret`) and nowhere stored in plaintext. */
  secret: string;
  otpauthUrl: string;
  /** An inline `<svg>` element. */
  qrSvg: string;
  /**
   * The secret sealed (AES-GCM, bound to the user, valid 15 minutes) for the
   * page to carry to `completeEnrolment` (a hidden field, or interaction
   * state) without the plaintext ever reaching the database: open it with
   * `openPendingSecret`.
   */
  pendingSecret: string;
}

export interface OperatorEnrolment {
  userId: string;
  email: string;
  secret: string;
  otpauthUrl: string;
  /** Formatted `XXXXX-XXXXX`; shown once, stored only as digests. */
  recoveryCodes: string[];
}

export class MfaService {
  readonly #db: Database;
  readonly #keyRing: KeyRing;
  readonly #audit: AuditService;
  readonly #now: () => number;
  readonly #sessions: SessionRevocation | undefined;

  /**
   * `options.now` (Unix seconds) exists for tests that need codes from other
   * time steps. With `options.sessions`, resetting a user's factors also ends
   * their sessions and revokes their grants.
   */
  constructor(
    db: Database,
    keyRing: KeyRing,
    audit: AuditService,
    options: { now?: () => number; sessions?: SessionRevocation } = {},
  ) {
    this.#db = db;
    this.#keyRing = keyRing;
    this.#audit = audit;
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.#sessions = options.sessions;
  }

  /**
   * A new secret for the user to add to an authenticator app. Nothing is
   * stored: a user who has a factor keeps it until `completeEnrolment`
   * proves the app holds the new secret.
   */
  async beginEnrolment(userId: string): Promise<PendingEnrolment> {
    const user = await this.#requireUser(userId);
    const secret = generateTotpSecret();
    const url = otpauthUrl({ secret, email: user.email, issuer: 'Gatehouse' });
    const pendingSecret = this.#keyRing.encrypt(
      JSON.stringify({ secret, exp: this.#now() + PENDING_LIFETIME_SECONDS }),
      pendingContext(user.id),
    );
    return { secret, otpauthUrl: url, qrSvg: await qrCodeSvg(url), pendingSecret };
  }

  /** The secret sealed by `beginEnrolment` for this user, or `undefined` if tampered with, foreign or expired. */
  openPendingSecret(userId: string, pendingSecret: unknown): string | undefined {
    if (typeof pendingSecret !== 'string' || pendingSecret.length > 1024) return undefined;
    try {
      const sealed = JSON.parse(this.#keyRing.decrypt(pendingSecret, pendingContext(userId))) as {
        secret?: unknown;
        exp?: unknown;
      };
      if (typeof sealed.exp !== 'number' || sealed.exp < this.#now()) return undefined;
      return isTotpSecret(sealed.secret) ? sealed.secret : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Enrols `secret` once `code` shows the user's app has it: stores the secret
   * encrypted, the code's step as the last one used (so it cannot be used
   * again), and 10 fresh recovery codes in place of any old ones, which are
   * returned formatted, this once. A wrong code: 400 `invalid_code`.
   */
  async completeEnrolment(
    userId: string,
    secret: string,
    code: unknown,
    by?: Actor,
  ): Promise<{ recoveryCodes: string[] }> {
    const user = await this.#requireUser(userId);
    if (!isTotpSecret(secret)) {
      throw invalidInput('the enrolment secret is not valid: start the enrolment again');
    }
    const normalised = normaliseCode(code);
    if (normalised?.kind !== 'totp') {
      await this.#recordFailure(user.id, 'malformed', by, { enrolment: true });
      throw invalidCode();
    }
    const recoveryCodes = freshRecoveryCodes();
    const outcome = await this.#db.$transaction(async (tx) => {
      // Locks the row: two submissions of one enrolment run one after the
      // other, and the second sees the step the first stored.
      const [current] = await tx.$queryRaw<{ totp_secret: string | null; totp_last_step: bigint | null }[]>`
        SELECT totp_secret, totp_last_step FROM users WHERE id = ${user.id}::uuid FOR UPDATE`;
      if (!current) throw userNotFound();
      const sameSecret =
        current.totp_secret !== null && this.#decryptSecret(user.id, current.totp_secret) === secret;
      const epoch = this.#now();
      const result = verifyTotp(secret, normalised.code, {
        afterStep: sameSecret ? current.totp_last_step : undefined,
        epoch,
      });
      if (!result.ok) {
        const replayed = sameSecret && verifyTotp(secret, normalised.code, { epoch }).ok;
        return { ok: false as const, reason: replayed ? ('replayed' as const) : ('wrong' as const) };
      }
      await tx.user.update({
        where: { id: user.id },
        data: {
          totpSecret: this.#keyRing.encrypt(secret, secretContext(user.id)),
          totpLastStep: BigInt(result.step),
          totpEnabledAt: new Date(),
        },
      });
      await this.#replaceRecoveryCodes(tx, user.id, recoveryCodes);
      await this.#audit.record(
        {
          type: 'mfa.success',
          actor: by?.actor ?? `user:${user.id}`,
          target: `user:${user.id}`,
          ip: by?.ip,
          details: { enrolled: true, method: 'otp' },
        },
        tx,
      );
      return { ok: true as const };
    });
    if (!outcome.ok) {
      await this.#recordFailure(user.id, outcome.reason, by, { enrolment: true });
      throw invalidCode();
    }
    return { recoveryCodes };
  }

  /**
   * Enrols a user without a code, for `gatehouse user mfa enroll`: the
   * operator hands the secret (or the otpauth URL) to the user. Replaces any
   * factor the user had, and all recovery codes.
   */
  async enrollForOperator(email: string, by: Actor = { actor: 'cli' }): Promise<OperatorEnrolment> {
    const normalised = normaliseEmail(email);
    const secret = generateTotpSecret();
    const recoveryCodes = freshRecoveryCodes();
    const user = await this.#db.$transaction(async (tx) => {
      const [row] = await tx.$queryRaw<{ id: string; email: string; totp_enabled_at: Date | null }[]>`
        SELECT id::text AS id, email, totp_enabled_at FROM users WHERE email = ${normalised} FOR UPDATE`;
      if (!row) throw new CodedError('not_found', 'no user with this email', 404);
      await tx.user.update({
        where: { id: row.id },
        data: {
          totpSecret: this.#keyRing.encrypt(secret, secretContext(row.id)),
          totpLastStep: null,
          totpEnabledAt: new Date(),
        },
      });
      await this.#replaceRecoveryCodes(tx, row.id, recoveryCodes);
      await this.#audit.record(
        {
          type: 'user.updated',
          actor: by.actor,
          target: `user:${row.id}`,
          ip: by.ip,
          details: { mfa: 'enrolled', replaced: row.totp_enabled_at !== null },
        },
        tx,
      );
      return row;
    });
    return {
      userId: user.id,
      email: user.email,
      secret,
      otpauthUrl: otpauthUrl({ secret, email: user.email, issuer: 'Gatehouse' }),
      recoveryCodes,
    };
  }

  /**
   * Checks what the user typed at the second-factor step: a TOTP code or a
   * recovery code. Each is accepted once: a TOTP step is taken only if it is
   * later than the last one taken, a recovery code only if still unused, each
   * by one conditional UPDATE, so of two parallel submissions of one code
   * exactly one passes. Every outcome is audited (without the code).
   */
  async verifySecondFactor(userId: string, rawCode: unknown, by?: Actor): Promise<SecondFactorResult> {
    const user =
      typeof userId === 'string' && UUID.test(userId)
        ? await this.#db.user.findUnique({
            where: { id: userId },
            select: { id: true, totpSecret: true, totpLastStep: true, totpEnabledAt: true },
          })
        : null;
    if (!user || user.totpSecret === null || user.totpEnabledAt === null) {
      return this.#refuse(user?.id, 'not_enrolled', by);
    }
    const code = normaliseCode(rawCode);
    if (!code) return this.#refuse(user.id, 'malformed', by);
    if (code.kind === 'recovery') return this.#redeemRecoveryCode(user.id, code.code, by);

    const secret = this.#decryptSecret(user.id, user.totpSecret);
    const epoch = this.#now();
    const result = verifyTotp(secret, code.code, { afterStep: user.totpLastStep, epoch });
    if (!result.ok) {
      const replayed = verifyTotp(secret, code.code, { epoch }).ok;
      return this.#refuse(user.id, replayed ? 'replayed' : 'wrong', by, 'otp');
    }
    const step = BigInt(result.step);
    const enabledAt = user.totpEnabledAt.toISOString();
    const accepted = await this.#db.$transaction(async (tx) => {
      // The enrolment time pins the factor the code was checked against: a
      // reset or re-enrolment meanwhile makes this match nothing.
      const taken = await tx.$executeRaw`
        UPDATE users SET totp_last_step = ${step}, updated_at = now()
        WHERE id = ${user.id}::uuid AND totp_enabled_at = ${enabledAt}::timestamptz
          AND (totp_last_step IS NULL OR totp_last_step < ${step})`;
      if (taken !== 1) return false;
      await this.#audit.record(
        {
          type: 'mfa.success',
          actor: by?.actor ?? `user:${user.id}`,
          target: `user:${user.id}`,
          ip: by?.ip,
          details: { method: 'otp' },
        },
        tx,
      );
      return true;
    });
    return accepted ? { ok: true, method: 'otp' } : this.#refuse(user.id, 'replayed', by, 'otp');
  }

  /** True when the user has an enrolled TOTP factor. */
  async hasFactor(userId: string): Promise<boolean> {
    if (typeof userId !== 'string' || !UUID.test(userId)) return false;
    const user = await this.#db.user.findUnique({
      where: { id: userId },
      select: { totpSecret: true, totpEnabledAt: true },
    });
    return user?.totpSecret != null && user.totpEnabledAt !== null;
  }

  /**
   * Removes the TOTP factor and every recovery code (an admin's `DELETE
   * /admin/users/{id}/mfa`). Idempotent: a user without factors is left as
   * is and nothing is recorded; `removed` says which happened. Unknown user: 404.
   */
  async resetFactors(userId: string, by: Actor): Promise<{ removed: boolean }> {
    await this.#requireUser(userId);
    return this.#db.$transaction(async (tx) => {
      const [row] = await tx.$queryRaw<{ had_totp: boolean }[]>`
        SELECT totp_secret IS NOT NULL OR totp_enabled_at IS NOT NULL AS had_totp
        FROM users WHERE id = ${userId}::uuid FOR UPDATE`;
      if (!row) throw userNotFound();
      await tx.user.update({
        where: { id: userId },
        data: { totpSecret: null, totpLastStep: null, totpEnabledAt: null },
      });
      const { count } = await tx.recoveryCode.deleteMany({ where: { userId } });
      const removed = row.had_totp || count > 0;
      if (removed) {
        // Removing a factor ends every session and grant (ASVS 7.4.3; catalogue RT-6).
        const revoked = this.#sessions ? await this.#sessions.revokeUser(userId, tx) : undefined;
        await this.#audit.record(
          {
            type: 'user.updated',
            actor: by.actor,
            target: `user:${userId}`,
            ip: by.ip,
            details: { mfa: 'reset', ...(revoked ? { revoked } : {}) },
          },
          tx,
        );
      }
      return { removed };
    });
  }

  /** For `gatehouse rekey`: re-encrypts every TOTP secret not under the first key; returns how many. */
  async rekey(tx: Transaction): Promise<number> {
    const rows = await tx.user.findMany({
      where: { totpSecret: { not: null } },
      select: { id: true, totpSecret: true },
    });
    let changed = 0;
    for (const row of rows) {
      if (row.totpSecret === null || this.#keyRing.isCurrent(row.totpSecret)) continue;
      const totpSecret = this.#keyRing.encrypt(
        this.#decryptSecret(row.id, row.totpSecret),
        secretContext(row.id),
      );
      await tx.user.update({ where: { id: row.id }, data: { totpSecret } });
      changed++;
    }
    return changed;
  }

  async #redeemRecoveryCode(
    userId: string,
    code: string,
    by: Actor | undefined,
  ): Promise<SecondFactorResult> {
    const digest = recoveryCodeDigest(userId, code);
    const accepted = await this.#db.$transaction(async (tx) => {
      const taken = await tx.$executeRaw`
        UPDATE recovery_codes SET used_at = now()
        WHERE user_id = ${userId}::uuid AND digest = ${digest} AND used_at IS NULL`;
      if (taken !== 1) return false;
      const left = await tx.recoveryCode.count({ where: { userId, usedAt: null } });
      await this.#audit.record(
        {
          type: 'mfa.success',
          actor: by?.actor ?? `user:${userId}`,
          target: `user:${userId}`,
          ip: by?.ip,
          details: { method: 'recovery', recovery_codes_left: left },
        },
        tx,
      );
      return true;
    });
    if (accepted) return { ok: true, method: 'recovery' };
    const used = await this.#db.recoveryCode.count({ where: { userId, digest, usedAt: { not: null } } });
    return this.#refuse(userId, used > 0 ? 'replayed' : 'wrong', by, 'recovery');
  }

  async #refuse(
    userId: string | undefined,
    reason: SecondFactorFailure,
    by: Actor | undefined,
    method?: 'otp' | 'recovery',
  ): Promise<SecondFactorResult> {
    await this.#recordFailure(userId, reason, by, method ? { method } : {});
    return { ok: false, reason };
  }

  async #recordFailure(
    userId: string | undefined,
    reason: SecondFactorFailure,
    by: Actor | undefined,
    details: Record<string, unknown>,
  ): Promise<void> {
    await this.#audit.record({
      type: 'mfa.failure',
      actor: by?.actor ?? (userId ? `user:${userId}` : 'anonymous'),
      target: userId ? `user:${userId}` : undefined,
      ip: by?.ip,
      details: { ...details, reason },
    });
  }

  async #replaceRecoveryCodes(tx: Transaction, userId: string, codes: string[]): Promise<void> {
    await tx.recoveryCode.deleteMany({ where: { userId } });
    await tx.recoveryCode.createMany({
      data: codes.map((code) => ({ userId, digest: recoveryCodeDigest(userId, normaliseCode(code)!.code) })),
    });
  }

  #decryptSecret(userId: string, ciphertext: string): string {
    return this.#keyRing.decrypt(ciphertext, secretContext(userId));
  }

  async #requireUser(userId: unknown): Promise<{ id: string; email: string }> {
    if (typeof userId !== 'string' || !UUID.test(userId)) throw userNotFound();
    const user = await this.#db.user.findUnique({ where: { id: userId }, select: { id: true, email: true } });
    if (!user) throw userNotFound();
    return user;
  }
}

/**
 * SHA-256 of the normalised code, salted with the user id so a dump cannot be
 * attacked for every user at once. 50 random bits defeat online guessing (the
 * lockout allows a handful of tries), but not an offline search of a dumped
 * digest. TODO: key this hash (HMAC under a key from the key ring) once
 * KeyRing offers a MAC key that `gatehouse rekey` can rotate.
 */
export function recoveryCodeDigest(userId: string, normalisedCode: string): string {
  return createHash('sha256').update(`gatehouse-recovery:${userId}:${normalisedCode}`).digest('hex');
}

function freshRecoveryCodes(): string[] {
  const codes = new Set<string>();
  while (codes.size < RECOVERY_CODE_COUNT) codes.add(generateRecoveryCode());
  return [...codes];
}

function secretContext(userId: string): string {
  return `totp:${userId}`;
}

function pendingContext(userId: string): string {
  return `totp-pending:${userId}`;
}

function invalidCode(): CodedError {
  return new CodedError('invalid_code', 'the code is not valid: enter the current code from your app', 400);
}

function userNotFound(): CodedError {
  return new CodedError('not_found', 'no such user', 404);
}
