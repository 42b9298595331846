// What oidc-provider needs to know about clients, read from the database.
// Each protocol request looks its client up through findMetadata() first, which
// also refreshes the record the synchronous policy lookups below read, so a
// change to a client takes effect on its next request without a restart.
import type { AdapterPayload } from 'oidc-provider';
import type { Database } from '../db/prisma.ts';
import type { Client as ClientRow } from '../generated/prisma/client.ts';

/** Scopes oidc-provider itself knows; any other registered scope is an API scope. */
export const OIDC_SCOPES: ReadonlySet<string> = new Set([
  'openid',
  'offline_access',
  'profile',
  'email',
  'roles',
]);

const CLIENT_ID_SHAPE = /^[\x21-\x7e]{1,255}$/;
/** How long the set of registered CORS origins is reused (SPEC: changes apply within 5 s). */
const ORIGINS_TTL_MS = 2_000;

export class ClientDirectory {
  readonly #db: Database;
  readonly #seen = new Map<string, ClientRow>();
  readonly extraMetadataProperties: readonly string[] = [];
  #origins: { set: Set<string>; at: number } | undefined;

  constructor(db: Database) {
    this.#db = db;
  }

  async findMetadata(clientId: string): Promise<AdapterPayload | undefined> {
    // Refuse what cannot be a client id before it reaches SQL (NUL bytes, huge values).
    if (!CLIENT_ID_SHAPE.test(clientId)) return undefined;
    const row = await this.#db.client.findUnique({ where: { clientId } });
    if (!row) {
      this.#seen.delete(clientId);
      return undefined;
    }
    this.#seen.set(clientId, row);
    return toMetadata(row);
  }

  /** Every origin some client registered (answers CORS preflights, which name no client). */
  async registeredOrigins(): Promise<Set<string>> {
    if (this.#origins && Date.now() - this.#origins.at < ORIGINS_TTL_MS) return this.#origins.set;
    const rows = await this.#db.$queryRaw<
      { origin: string }[]
    >`SELECT DISTINCT unnest(cors_origins) AS origin FROM clients`;
    this.#origins = { set: new Set(rows.map((row) => row.origin)), at: Date.now() };
    return this.#origins.set;
  }

  /** Reads a client afresh (for code outside a protocol request, which has not looked it up yet). */
  async load(clientId: string): Promise<ClientRow | undefined> {
    await this.findMetadata(clientId);
    return this.#seen.get(clientId);
  }

  resourcesOf(clientId: string): string[] {
    return this.#seen.get(clientId)?.resources ?? [];
  }

  scopesOf(clientId: string): string[] {
    return this.#seen.get(clientId)?.scopes ?? [];
  }

  mayIntrospect(clientId: string): boolean {
    return this.#seen.get(clientId)?.introspection === true;
  }

  isFirstParty(clientId: string): boolean {
    return this.#seen.get(clientId)?.firstParty === true;
  }

  corsOriginsOf(clientId: string): string[] {
    return this.#seen.get(clientId)?.corsOrigins ?? [];
  }

  ipAllowOf(clientId: string): string[] {
    return this.#seen.get(clientId)?.ipAllow ?? [];
  }

  /** The rotated-out secret's digest while its grace period lasts. */
  previousSecretDigest(clientId: string): string | undefined {
    const row = this.#seen.get(clientId);
    if (!row?.previousSecretDigest || !row.previousSecretExpiresAt) return undefined;
    return row.previousSecretExpiresAt.getTime() > Date.now() ? row.previousSecretDigest : undefined;
  }
}

function toMetadata(row: ClientRow): AdapterPayload {
  const oidcScopes = row.scopes.filter((scope) => OIDC_SCOPES.has(scope));
  return {
    client_id: row.clientId,
    client_name: row.name,
    grant_types: row.grants,
    response_types: row.grants.includes('authorization_code') ? ['code'] : [],
    redirect_uris: row.redirectUris,
    post_logout_redirect_uris: row.postLogoutRedirectUris,
    token_endpoint_auth_method: row.authMethod as AdapterPayload['token_endpoint_auth_method'],
    // The digest stands where the library expects the secret; compareClientSecret hashes what is presented.
    ...(row.secretDigest ? { client_secret: row.secretDigest } : {}),
    ...(row.jwksUri ? { jwks_uri: row.jwksUri } : {}),
    ...(row.jwks ? { jwks: row.jwks as unknown as AdapterPayload['jwks'] } : {}),
    ...(oidcScopes.length ? { scope: oidcScopes.join(' ') } : {}),
  };
}
