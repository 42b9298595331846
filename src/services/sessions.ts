// Ending what oidc-provider stored for a user or a client: sessions, grants
// and every artifact issued under those grants (authorization codes, refresh
// tokens, opaque access tokens). They all live in `oidc_artifacts`, whose
// payloads are JSON: a Session or Grant names its `accountId`, a Grant its
// `clientId`, and every token points at its grant through `grant_id`.
//
// JWT access tokens are not stored and cannot be recalled: they stay valid
// until they expire (GATEHOUSE_ACCESS_TOKEN_TTL), unless the resource server
// checks the subject live, as the admin API does.
import type { Database, DatabaseOrTransaction } from '../db/prisma.ts';
import type { ConsentService } from './consents.ts';

export interface RevokedArtifacts {
  sessions: number;
  grants: number;
  /** Codes, refresh tokens and opaque access tokens. */
  tokens: number;
  /** Sign-ins in progress (interactions), which would otherwise still complete. */
  interactions: number;
}

export class SessionRevocation {
  readonly #db: Database;
  readonly #consents: ConsentService;

  constructor(db: Database, consents: ConsentService) {
    this.#db = db;
    this.#consents = consents;
  }

  /**
   * Signs the user out everywhere and revokes every grant they gave, with its
   * tokens, and forgets their remembered consents so the next sign-in asks
   * again. Pass `tx` to do it in the transaction of another change.
   */
  async revokeUser(userId: string, tx: DatabaseOrTransaction = this.#db): Promise<RevokedArtifacts> {
    // One statement: the sub-select sees the grants as they were before the delete.
    const rows = await tx.$queryRaw<{ kind: string }[]>`
      DELETE FROM oidc_artifacts
      WHERE payload->>'accountId' = ${userId}
         OR (kind = 'Interaction' AND (payload->'session'->>'accountId' = ${userId}
                                       OR payload->'result'->'login'->>'accountId' = ${userId}))
         OR grant_id IN (SELECT grant_id FROM oidc_artifacts
                         WHERE kind = 'Grant' AND payload->>'accountId' = ${userId})
      RETURNING kind`;
    await this.#consents.forget(userId, tx);
    return tally(rows);
  }

  /** Revokes every grant and token of a client (before it is deleted). */
  async revokeClient(clientId: string, tx: DatabaseOrTransaction = this.#db): Promise<RevokedArtifacts> {
    const rows = await tx.$queryRaw<{ kind: string }[]>`
      DELETE FROM oidc_artifacts
      WHERE (kind <> 'Session' AND payload->>'clientId' = ${clientId})
         OR grant_id IN (SELECT grant_id FROM oidc_artifacts
                         WHERE kind = 'Grant' AND payload->>'clientId' = ${clientId})
      RETURNING kind`;
    return tally(rows);
  }
}

function tally(rows: { kind: string }[]): RevokedArtifacts {
  const counts: RevokedArtifacts = { sessions: 0, grants: 0, tokens: 0, interactions: 0 };
  for (const { kind } of rows) {
    if (kind === 'Session') counts.sessions++;
    else if (kind === 'Grant') counts.grants++;
    else if (kind === 'Interaction') counts.interactions++;
    else counts.tokens++;
  }
  return counts;
}
