// Consent a user gave a client, remembered across sessions: the next sign-in
// is asked only for what was not granted before.
import type { Database, DatabaseOrTransaction } from '../db/prisma.ts';
import type { Prisma } from '../generated/prisma/client.ts';

export interface RememberedConsent {
  scopes: string[];
  claims: string[];
  /** Resource indicator → scopes. */
  resourceScopes: Record<string, string[]>;
}

export class ConsentService {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  async recall(userId: string, clientId: string): Promise<RememberedConsent | undefined> {
    const row = await this.#db.consent.findUnique({ where: { userId_clientId: { userId, clientId } } });
    if (!row) return undefined;
    return {
      scopes: row.scopes,
      claims: row.claims,
      resourceScopes: row.resourceScopes as Record<string, string[]>,
    };
  }

  /** Adds to what the user has granted the client (never narrows it). */
  async remember(userId: string, clientId: string, granted: RememberedConsent): Promise<void> {
    const before = await this.recall(userId, clientId);
    const merged: RememberedConsent = {
      scopes: union(before?.scopes, granted.scopes),
      claims: union(before?.claims, granted.claims),
      resourceScopes: { ...before?.resourceScopes },
    };
    for (const [resource, scopes] of Object.entries(granted.resourceScopes)) {
      merged.resourceScopes[resource] = union(merged.resourceScopes[resource], scopes);
    }
    const data = {
      scopes: merged.scopes,
      claims: merged.claims,
      resourceScopes: merged.resourceScopes as Prisma.InputJsonObject,
    };
    await this.#db.consent.upsert({
      where: { userId_clientId: { userId, clientId } },
      create: { userId, clientId, ...data },
      update: data,
    });
  }

  /** Forgets every consent the user gave; pass `tx` to do it in the transaction of another change. */
  async forget(userId: string, tx: DatabaseOrTransaction = this.#db): Promise<void> {
    await tx.consent.deleteMany({ where: { userId } });
  }
}

function union(a: string[] | undefined, b: string[]): string[] {
  return [...new Set([...(a ?? []), ...b])];
}
