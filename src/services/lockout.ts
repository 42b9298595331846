// Account lockout (SPEC: 5 failed sign-ins for one account within 15 minutes
// lock it, with growing back-off; wrong second-factor codes count too).
//
// Every attempt first reserves a slot: one atomic UPDATE increments the
// counter unless the account is locked, so even 50 parallel guesses run at
// most THRESHOLD password checks (Zitadel GHSA-7h8m-vrxx-vr4m was exactly this
// race). A success resets the counter; the failure that reaches the threshold
// locks the account.
import type { Database, DatabaseOrTransaction } from '../db/prisma.ts';
import type { AuditService } from './audit.ts';

export interface LockoutPolicy {
  /** Failures within the window that lock the account. */
  threshold: number;
  windowSeconds: number;
  /** Lock durations for the 1st, 2nd, … lockout in a row; the last one repeats. */
  backoffSeconds: number[];
}

export const DEFAULT_LOCKOUT_POLICY: LockoutPolicy = {
  threshold: 5,
  windowSeconds: 15 * 60,
  // 1, 5, then 15 minutes: long enough to stop guessing, short enough that an
  // attacker cannot keep a victim locked out for good (lockout as DoS).
  backoffSeconds: [60, 300, 900],
};

/** Matches no user: keeps unknown-account attempts on the same path and cost. */
const NO_USER = '00000000-0000-0000-0000-000000000000';

export class AccountLockout {
  readonly #db: Database;
  readonly #audit: AuditService;
  readonly policy: LockoutPolicy;

  constructor(db: Database, audit: AuditService, policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY) {
    this.#db = db;
    this.#audit = audit;
    this.policy = policy;
  }

  /**
   * Counts an attempt before its credential is checked. Returns false when the
   * account is locked (or this attempt is over the threshold): do not check.
   */
  async reserve(userId: string | undefined): Promise<boolean> {
    const window = this.policy.windowSeconds;
    const rows = await this.#db.$queryRaw<{ failed_logins: number }[]>`
      UPDATE users SET
        failed_logins = CASE WHEN first_failed_at IS NULL OR first_failed_at < now() - make_interval(secs => ${window})
                             THEN 1 ELSE failed_logins + 1 END,
        first_failed_at = CASE WHEN first_failed_at IS NULL OR first_failed_at < now() - make_interval(secs => ${window})
                               THEN now() ELSE first_failed_at END
      WHERE id = ${userId ?? NO_USER}::uuid AND (locked_until IS NULL OR locked_until <= now())
      RETURNING failed_logins`;
    const count = rows[0]?.failed_logins;
    if (count === undefined) return false;
    return count <= this.policy.threshold;
  }

  /** A failed check: locks the account when it reached the threshold. */
  async fail(userId: string, ip?: string): Promise<void> {
    const [row] = await this.#db.$queryRaw<{ failed_logins: number; lockouts: number }[]>`
      SELECT failed_logins, lockouts FROM users WHERE id = ${userId}::uuid`;
    if (!row || row.failed_logins < this.policy.threshold) return;
    const steps = this.policy.backoffSeconds;
    const seconds = steps[Math.min(row.lockouts, steps.length - 1)] ?? 900;
    const locked = await this.#db.$executeRaw`
      UPDATE users SET locked_until = now() + make_interval(secs => ${seconds}), lockouts = lockouts + 1,
                       failed_logins = 0, first_failed_at = NULL
      WHERE id = ${userId}::uuid AND (locked_until IS NULL OR locked_until <= now())`;
    if (locked === 1) {
      await this.#audit.record({
        type: 'account.locked',
        actor: 'system',
        target: `user:${userId}`,
        ip,
        details: { seconds, failures: row.failed_logins },
      });
    }
  }

  /**
   * A right password that leads on to a second factor: gives back the slot
   * `reserve` took for it, keeping earlier failures, so the wrong codes that
   * follow lock the account after exactly THRESHOLD failures in all.
   */
  async release(userId: string): Promise<void> {
    await this.#db
      .$executeRaw`UPDATE users SET failed_logins = GREATEST(failed_logins - 1, 0) WHERE id = ${userId}::uuid`;
  }

  /** A completed sign-in: the counters start again. */
  async succeed(userId: string): Promise<void> {
    await this.#db.user.update({
      where: { id: userId },
      data: { failedLogins: 0, firstFailedAt: null, lockouts: 0 },
    });
  }

  /** Admin unlock; pass `tx` to do it in the transaction that audits it. */
  async unlock(userId: string, tx: DatabaseOrTransaction = this.#db): Promise<void> {
    await tx.user.update({
      where: { id: userId },
      data: { failedLogins: 0, firstFailedAt: null, lockedUntil: null, lockouts: 0 },
    });
  }

  async isLocked(userId: string): Promise<boolean> {
    const row = await this.#db.user.findUnique({ where: { id: userId }, select: { lockedUntil: true } });
    return row?.lockedUntil ? row.lockedUntil.getTime() > Date.now() : false;
  }
}
