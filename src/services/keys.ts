// Token signing keys. Private JWKs are stored encrypted under the key ring; the
// JWKS publishes public parts only. Status moves one way: active (signs) →
// verify (published, no longer signs) → retired (gone from the JWKS).
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Database, Transaction } from '../db/prisma.ts';
import type { KeyRing } from '../lib/encryption.ts';
import { CodedError } from '../lib/errors.ts';
import type { AuditService } from './audit.ts';

export const SIGNING_ALGS = ['ES256', 'PS256', 'RS256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];
export const DEFAULT_SIGNING_ALG: SigningAlg = 'ES256';

/** Serialises key-set changes across instances sharing the database. */
const KEY_LOCK_ID = 4_823_771;
const PRIVATE_KEY_CONTEXT = 'signing-key';
/** Kids are `<alg>-<thumbprint>` (see #insertActiveKey); a looser shape keeps older or imported ones findable. */
const KID_SHAPE = /^[A-Za-z0-9._~-]{1,128}$/;

export interface SigningKeyInfo {
  kid: string;
  alg: string;
  status: 'active' | 'verify' | 'retired';
  created_at: string;
  activated_at: string | null;
  demoted_at: string | null;
  retired_at: string | null;
}

/** What the provider is built from: private JWKs, the signing one first. */
export interface Keystore {
  keys: JWK[];
  activeAlg: SigningAlg;
  activeKid: string;
}

export class KeyService {
  readonly #db: Database;
  readonly #keyRing: KeyRing;
  readonly #audit: AuditService;

  constructor(db: Database, keyRing: KeyRing, audit: AuditService) {
    this.#db = db;
    this.#keyRing = keyRing;
    this.#audit = audit;
  }

  /** On first start there is no key: generate the default one. */
  async ensureActiveKey(): Promise<void> {
    const existing = await this.#db.signingKey.findFirst({
      where: { status: 'active' },
      select: { kid: true },
    });
    if (existing) return;
    await this.#db.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${KEY_LOCK_ID})`;
      if (await tx.signingKey.findFirst({ where: { status: 'active' }, select: { kid: true } })) return;
      await this.#insertActiveKey(tx, DEFAULT_SIGNING_ALG);
    });
  }

  async list(): Promise<SigningKeyInfo[]> {
    const rows = await this.#db.signingKey.findMany({ orderBy: { createdAt: 'desc' } });
    return rows.map(toInfo);
  }

  /** The new key signs from now on; the previous active key becomes `verify`. */
  async rotate(alg: SigningAlg = DEFAULT_SIGNING_ALG, actor = 'cli', ip?: string): Promise<SigningKeyInfo> {
    return this.#db.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${KEY_LOCK_ID})`;
      return this.#rotateLocked(tx, alg, { actor, ip });
    });
  }

  /**
   * Automatic rotation (GATEHOUSE_KEY_ROTATION_DAYS): rotates when the active
   * key has signed for `days`, keeping its algorithm. The age is checked under
   * the lock, so instances checking together rotate once.
   */
  async rotateIfDue(days: number): Promise<SigningKeyInfo | undefined> {
    return this.#db.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${KEY_LOCK_ID})`;
      const active = await tx.signingKey.findFirst({ where: { status: 'active' } });
      if (!active) return undefined;
      const since = (active.activatedAt ?? active.createdAt).getTime();
      if (Date.now() - since < days * 86_400_000) return undefined;
      return this.#rotateLocked(tx, active.alg as SigningAlg, { actor: 'system', reason: 'scheduled' });
    });
  }

  async #rotateLocked(
    tx: Transaction,
    alg: SigningAlg,
    by: { actor: string; ip?: string | undefined; reason?: string },
  ): Promise<SigningKeyInfo> {
    const now = new Date();
    const previous = await tx.signingKey.findMany({ where: { status: 'active' }, select: { kid: true } });
    await tx.signingKey.updateMany({
      where: { status: 'active' },
      data: { status: 'verify', demotedAt: now },
    });
    const created = await this.#insertActiveKey(tx, alg);
    await this.#audit.record(
      {
        type: 'key.rotated',
        actor: by.actor,
        target: `key:${created.kid}`,
        ip: by.ip,
        details: {
          alg,
          previous: previous.map((key) => key.kid),
          ...(by.reason ? { reason: by.reason } : {}),
        },
      },
      tx,
    );
    return created;
  }

  /**
   * Removes a key from the JWKS. The active key never; a `verify` key only once
   * nothing it signed can still be valid (`safeAfterSeconds` since it stopped
   * signing), unless forced.
   */
  async retire(
    kid: string,
    options: { force?: boolean; safeAfterSeconds: number; actor?: string; ip?: string },
  ): Promise<SigningKeyInfo> {
    // Not a kid Gatehouse makes: not found, and it never reaches SQL (NUL bytes, huge values).
    if (typeof kid !== 'string' || !KID_SHAPE.test(kid)) {
      throw new CodedError('not_found', 'no such signing key', 404);
    }
    return this.#db.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${KEY_LOCK_ID})`;
      const key = await tx.signingKey.findUnique({ where: { kid } });
      if (!key) throw new CodedError('not_found', `no signing key ${kid}`, 404);
      if (key.status === 'retired') return toInfo(key);
      if (key.status === 'active') {
        throw new CodedError('conflict', 'the active signing key cannot be retired; rotate first', 409);
      }
      const stoppedSigning = key.demotedAt ?? key.createdAt;
      const safeAt = new Date(stoppedSigning.getTime() + options.safeAfterSeconds * 1000);
      const early = safeAt.getTime() > Date.now();
      if (early && !options.force) {
        throw new CodedError(
          'conflict',
          `tokens signed by ${kid} may be valid until ${safeAt.toISOString()}; retire it then, or force`,
          409,
        );
      }
      const retired = await tx.signingKey.update({
        where: { kid },
        data: { status: 'retired', retiredAt: new Date() },
      });
      await this.#audit.record(
        {
          type: 'key.retired',
          actor: options.actor ?? 'cli',
          target: `key:${kid}`,
          ip: options.ip,
          details: { forced: early, ...(early ? { safe_at: safeAt.toISOString() } : {}) },
        },
        tx,
      );
      return toInfo(retired);
    });
  }

  /** Decrypts the published keys for the provider: the active key first. */
  async loadKeystore(): Promise<Keystore> {
    const rows = await this.#db.signingKey.findMany({
      where: { status: { in: ['active', 'verify'] } },
      orderBy: { createdAt: 'desc' },
    });
    const active = rows.find((row) => row.status === 'active');
    if (!active) throw new Error('no active signing key');
    const ordered = [active, ...rows.filter((row) => row !== active)];
    const keys = ordered.map((row) => {
      const jwk = JSON.parse(
        this.#keyRing.decrypt(row.privateJwk, `${PRIVATE_KEY_CONTEXT}:${row.kid}`),
      ) as JWK;
      // key_ops keeps demoted keys out of oidc-provider's signing-key choice.
      return {
        ...jwk,
        kid: row.kid,
        alg: row.alg,
        use: 'sig',
        ...(row.status === 'verify' ? { key_ops: ['verify'] } : {}),
      };
    });
    return { keys, activeAlg: active.alg as SigningAlg, activeKid: active.kid };
  }

  /** A fingerprint of the published key set: changes whenever it must be rebuilt. */
  async keysetVersion(): Promise<string> {
    const rows = await this.#db.signingKey.findMany({
      where: { status: { in: ['active', 'verify'] } },
      select: { kid: true, status: true },
      orderBy: { kid: 'asc' },
    });
    return rows.map((row) => `${row.kid}:${row.status}`).join(',');
  }

  /** Re-encrypts every private key under the first encryption key. */
  async rekey(tx: Transaction): Promise<number> {
    const rows = await tx.signingKey.findMany({ select: { kid: true, privateJwk: true } });
    let changed = 0;
    for (const row of rows) {
      if (this.#keyRing.isCurrent(row.privateJwk)) continue;
      const context = `${PRIVATE_KEY_CONTEXT}:${row.kid}`;
      const privateJwk = this.#keyRing.encrypt(this.#keyRing.decrypt(row.privateJwk, context), context);
      await tx.signingKey.update({ where: { kid: row.kid }, data: { privateJwk } });
      changed++;
    }
    return changed;
  }

  async #insertActiveKey(tx: Transaction, alg: SigningAlg): Promise<SigningKeyInfo> {
    const { privateKey } = await generateKeyPair(alg, {
      extractable: true,
      ...(alg === 'PS256' || alg === 'RS256' ? { modulusLength: 3072 } : {}),
    });
    const privateJwk = await exportJWK(privateKey);
    // The algorithm first: readable, and never a leading '-' that a shell or parser takes for a flag.
    const kid = `${alg.toLowerCase()}-${(await calculateJwkThumbprint(privateJwk)).slice(0, 22)}`;
    const publicJwk = publicPart(privateJwk);
    const row = await tx.signingKey.create({
      data: {
        kid,
        alg,
        status: 'active',
        activatedAt: new Date(),
        publicJwk: { ...publicJwk, kid, alg, use: 'sig' },
        privateJwk: this.#keyRing.encrypt(JSON.stringify(privateJwk), `${PRIVATE_KEY_CONTEXT}:${kid}`),
      },
    });
    return toInfo(row);
  }
}

const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']);

function publicPart(jwk: JWK): Record<string, string> {
  return Object.fromEntries(
    Object.entries(jwk).filter(([name, value]) => !PRIVATE_MEMBERS.has(name) && typeof value === 'string'),
  ) as Record<string, string>;
}

function toInfo(row: {
  kid: string;
  alg: string;
  status: string;
  createdAt: Date;
  activatedAt: Date | null;
  demotedAt: Date | null;
  retiredAt: Date | null;
}): SigningKeyInfo {
  return {
    kid: row.kid,
    alg: row.alg,
    status: row.status as SigningKeyInfo['status'],
    created_at: row.createdAt.toISOString(),
    activated_at: row.activatedAt?.toISOString() ?? null,
    demoted_at: row.demotedAt?.toISOString() ?? null,
    retired_at: row.retiredAt?.toISOString() ?? null,
  };
}
