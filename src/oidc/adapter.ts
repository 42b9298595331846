// oidc-provider's storage adapter over Prisma (contract: oidc-provider's
// example/my_adapter.js). Every artifact lives in one table filtered by `kind`.
//
// A database dump must not yield a usable token, code, session or interaction:
// the row id is the SHA-256 of the artifact's value, and the payload is stored
// without `jti` (which IS the value) and without the session cookie value that
// interactions carry. `jti` is restored from the looked-up value in find().
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Database } from '../db/prisma.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import { sha256 } from '../lib/tokens.ts';

/** Stands in for the interaction id inside its stored `returnTo` URL. */
const UID_PLACEHOLDER = '{uid}';

export type ClientMetadataLookup = (clientId: string) => Promise<AdapterPayload | undefined>;

export function createAdapterFactory(db: Database, findClient: ClientMetadataLookup) {
  return class PrismaAdapter implements Adapter {
    readonly kind: string;

    constructor(kind: string) {
      this.kind = kind;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const stored = stripTokenValues(this.kind, id, payload);
      const columns = {
        payload: stored as Prisma.InputJsonObject,
        // A Grant's own id is the grantId its tokens point at.
        grantId: this.kind === 'Grant' ? id : (payload.grantId ?? null),
        uid: payload.uid ?? null,
        userCode: payload.userCode ? sha256(payload.userCode) : null,
        expiresAt: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
      };
      const key = { kind: this.kind, id: sha256(id) };
      await db.oidcArtifact.upsert({
        where: { kind_id: key },
        create: { ...key, ...columns },
        update: columns,
      });
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.kind === 'Client') return findClient(id);
      const row = await db.oidcArtifact.findUnique({
        where: { kind_id: { kind: this.kind, id: sha256(id) } },
      });
      return row ? restore(row, id) : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const row = await db.oidcArtifact.findFirst({ where: { kind: this.kind, userCode: sha256(userCode) } });
      // The value of a device code is not recoverable from its hash, so such a
      // row cannot be restored; Gatehouse does not enable the device flow.
      return row ? restore(row, undefined) : undefined;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const row = await db.oidcArtifact.findFirst({ where: { kind: this.kind, uid } });
      // A session found by uid has no recoverable cookie value (jti), so the
      // library makes up one: safe because it only reads such a session
      // (provider.js #getInteraction, token_helpers.js checkSessionBinding), never saves it.
      return row ? restore(row, undefined) : undefined;
    }

    /**
     * Marks the artifact used. oidc-provider checks `consumed` and then calls
     * consume() in a second step, so two parallel redemptions can both pass the
     * check: only the one whose conditional update wins may go on.
     */
    async consume(id: string): Promise<void> {
      const updated = await db.oidcArtifact.updateMany({
        where: { kind: this.kind, id: sha256(id), consumedAt: null },
        data: { consumedAt: new Date() },
      });
      if (updated.count !== 1) throw new errors.InvalidGrant(`${this.kind} has already been used`);
    }

    async destroy(id: string): Promise<void> {
      await db.oidcArtifact.deleteMany({ where: { kind: this.kind, id: sha256(id) } });
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await db.oidcArtifact.deleteMany({ where: { kind: this.kind, grantId } });
    }
  };
}

/**
 * Records `key` once: true for the first caller, false for every later or
 * concurrent one (a single INSERT … ON CONFLICT DO NOTHING decides).
 */
export async function insertIfAbsent(
  db: Database,
  kind: string,
  key: string,
  expiresIn: number,
): Promise<boolean> {
  const id = sha256(key);
  const expiresAt = new Date(Date.now() + Math.max(expiresIn, 1) * 1000);
  const inserted = await db.$executeRaw`
    INSERT INTO oidc_artifacts (kind, id, payload, expires_at) VALUES (${kind}, ${id}, '{}'::jsonb, ${expiresAt})
    ON CONFLICT (kind, id) DO UPDATE SET payload = oidc_artifacts.payload, expires_at = EXCLUDED.expires_at
    WHERE oidc_artifacts.expires_at <= now()`;
  return inserted === 1;
}

/** Only one instance sweeps at a time. */
const SWEEP_LOCK_ID = 4_823_772;

/**
 * Deletes expired artifacts in bounded batches, each in a short transaction
 * that first tries an exclusive advisory lock: no delete holds long locks, and
 * when another instance is sweeping this one stops.
 */
export async function deleteExpiredArtifacts(
  db: Database,
  batchSize = 1000,
  maxBatches = 100,
): Promise<number> {
  let total = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const deleted = await db.$transaction(async (tx) => {
      const [lock] = await tx.$queryRaw<
        { locked: boolean }[]
      >`SELECT pg_try_advisory_xact_lock(${SWEEP_LOCK_ID}) AS locked`;
      if (!lock?.locked) return -1;
      return tx.$executeRaw`
        DELETE FROM oidc_artifacts WHERE ctid IN (
          SELECT ctid FROM oidc_artifacts WHERE expires_at < now() LIMIT ${batchSize} FOR UPDATE SKIP LOCKED)`;
    });
    if (deleted < 0) break;
    total += deleted;
    if (deleted < batchSize) break;
  }
  return total;
}

function stripTokenValues(kind: string, id: string, payload: AdapterPayload): Record<string, unknown> {
  const { jti: _jti, ...rest } = payload;
  const stored: Record<string, unknown> = rest;
  if (kind === 'Interaction') {
    if (payload.session && typeof payload.session === 'object') {
      const { cookie: _cookie, ...session } = payload.session as Record<string, unknown>;
      stored.session = session;
    }
    if (typeof payload.returnTo === 'string')
      stored.returnTo = payload.returnTo.split(id).join(UID_PLACEHOLDER);
  }
  return stored;
}

function restore(
  row: { kind: string; payload: unknown; consumedAt: Date | null; expiresAt: Date | null },
  id: string | undefined,
): AdapterPayload | undefined {
  if (row.expiresAt && row.expiresAt.getTime() <= Date.now()) return undefined;
  const payload = { ...(row.payload as AdapterPayload) };
  if (id !== undefined) payload.jti = id;
  if (row.consumedAt) payload.consumed = Math.floor(row.consumedAt.getTime() / 1000);
  if (row.kind === 'Interaction' && id !== undefined && typeof payload.returnTo === 'string') {
    payload.returnTo = payload.returnTo.split(UID_PLACEHOLDER).join(id);
  }
  return payload;
}
