// What oidc-provider needs to know about clients, read from the database.
// Each protocol request looks its client up through findMetadata() first, which
// also refreshes the record the synchronous policy lookups below read. Records
// are reused for CLIENT_TTL_MS: a change made through this process's
// ClientService (admin API) is forgotten at once; one made elsewhere (the CLI,
// another instance) applies within that time, without a restart.
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
/**
 * How long a looked-up client (or its absence) is reused: 2 s, like the origins
 * (SPEC: changes apply within 5 s). Without it every token request read the
 * client twice (protocol guard, then oidc-provider), which halved throughput.
 */
const CLIENT_TTL_MS = 2_000;
/** Bounds the cache against floods of made-up client ids (each is cached as absent). */
const MAX_CACHED_CLIENTS = 10_000;

/** What ClientDirectory.cached() answers when only a database read can tell. */
export const NOT_CACHED: unique symbol = Symbol('not cached');

interface CachedClient {
  row: ClientRow | undefined;
  metadata: AdapterPayload | undefined;
  /** The registered scopes that are not OIDC scopes: what resource servers grant. */
  apiScopes: readonly string[];
  at: number;
}

export class ClientDirectory {
  readonly #db: Database;
  readonly #seen = new Map<string, CachedClient>();
  /** One query per client id at a time: concurrent misses wait for the same read. */
  readonly #reading = new Map<string, Promise<CachedClient>>();
  readonly extraMetadataProperties: readonly string[] = [];
  #origins: { set: Set<string>; at: number } | undefined;

  constructor(db: Database) {
    this.#db = db;
  }

  async findMetadata(clientId: string): Promise<AdapterPayload | undefined> {
    const cached = this.#fresh(clientId);
    return cached === NOT_CACHED ? (await this.#read(clientId)).metadata : cached?.metadata;
  }

  /** findMetadata() without waiting: the metadata (or undefined) while fresh, else NOT_CACHED. */
  cachedMetadata(clientId: string): AdapterPayload | undefined | typeof NOT_CACHED {
    const cached = this.#fresh(clientId);
    return cached === NOT_CACHED ? NOT_CACHED : cached?.metadata;
  }

  /**
   * Marks what is cached about a client stale, so its next request reads it
   * afresh (ClientService calls this after every change). The record stays for
   * the synchronous lookups of requests already past findMetadata().
   */
  forget(clientId: string): void {
    const cached = this.#seen.get(clientId);
    if (cached) cached.at = 0;
    this.#reading.delete(clientId);
    this.#origins = undefined;
  }

  #read(clientId: string): Promise<CachedClient> {
    const pending = this.#reading.get(clientId);
    if (pending) return pending;
    const read = this.#db.client
      .findUnique({ where: { clientId } })
      .then((found) => {
        const row = found ?? undefined;
        const entry: CachedClient = {
          row,
          metadata: row ? toMetadata(row) : undefined,
          apiScopes: row?.scopes.filter((scope) => !OIDC_SCOPES.has(scope)) ?? [],
          at: Date.now(),
        };
        // A forget() while the query ran means the row may be stale: answer with it, cache nothing.
        if (this.#reading.get(clientId) === read) {
          this.#seen.delete(clientId);
          if (this.#seen.size >= MAX_CACHED_CLIENTS) this.#seen.delete(this.#seen.keys().next().value!);
          this.#seen.set(clientId, entry);
        }
        return entry;
      })
      .finally(() => {
        if (this.#reading.get(clientId) === read) this.#reading.delete(clientId);
      });
    this.#reading.set(clientId, read);
    return read;
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

  /** The client's record (for code outside a protocol request, which has not looked it up yet). */
  async load(clientId: string): Promise<ClientRow | undefined> {
    const cached = this.cached(clientId);
    return cached === NOT_CACHED ? (await this.#read(clientId)).row : cached;
  }

  /** load() without waiting: the record (or its known absence) while fresh, else NOT_CACHED. */
  cached(clientId: string): ClientRow | undefined | typeof NOT_CACHED {
    const cached = this.#fresh(clientId);
    return cached === NOT_CACHED ? NOT_CACHED : cached?.row;
  }

  /** What is cached about a client while fresh; undefined for ids that cannot be clients. */
  #fresh(clientId: string): CachedClient | undefined | typeof NOT_CACHED {
    // Refuse what cannot be a client id before it reaches SQL (NUL bytes, huge values).
    if (!CLIENT_ID_SHAPE.test(clientId)) return undefined;
    const cached = this.#seen.get(clientId);
    return cached && Date.now() - cached.at < CLIENT_TTL_MS ? cached : NOT_CACHED;
  }

  resourcesOf(clientId: string): string[] {
    return this.#seen.get(clientId)?.row?.resources ?? [];
  }

  scopesOf(clientId: string): string[] {
    return this.#seen.get(clientId)?.row?.scopes ?? [];
  }

  /** The client's registered scopes other than OIDC ones (computed once per read of the client). */
  apiScopesOf(clientId: string): readonly string[] {
    return this.#seen.get(clientId)?.apiScopes ?? [];
  }

  mayIntrospect(clientId: string): boolean {
    return this.#seen.get(clientId)?.row?.introspection === true;
  }

  isFirstParty(clientId: string): boolean {
    return this.#seen.get(clientId)?.row?.firstParty === true;
  }

  corsOriginsOf(clientId: string): string[] {
    return this.#seen.get(clientId)?.row?.corsOrigins ?? [];
  }

  ipAllowOf(clientId: string): string[] {
    return this.#seen.get(clientId)?.row?.ipAllow ?? [];
  }

  /** The rotated-out secret's digest while its grace period lasts. */
  previousSecretDigest(clientId: string): string | undefined {
    const row = this.#seen.get(clientId)?.row;
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
