// OAuth clients: the rules for registering them (shared by the CLI and the
// admin API), secret generation and rotation. Secrets are generated here with
// 256 bits of entropy and only their SHA-256 digest is stored.
import { isIP } from 'node:net';
import type { Database } from '../db/prisma.ts';
import { type Client as ClientRow, Prisma } from '../generated/prisma/client.ts';
import { parseCidr } from '../lib/cidr.ts';
import { cursorDate, decodeCursor, encodeCursor } from '../lib/cursor.ts';
import { CodedError, invalidInput } from '../lib/errors.ts';
import { hasControlCharacters } from '../lib/text.ts';
import { generateSecret, sha256 } from '../lib/tokens.ts';
import type { AuditService } from './audit.ts';
import type { SessionRevocation } from './sessions.ts';

export const GRANTS = ['client_credentials', 'authorization_code', 'refresh_token'] as const;
export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

/** The registration options, named as the admin API's body (the CLI's flags in snake_case). */
export interface ClientInput {
  name: string;
  grants: string[];
  redirect_uris?: string[] | undefined;
  post_logout_redirect_uris?: string[] | undefined;
  scope?: string | undefined;
  resources?: string[] | undefined;
  public?: boolean | undefined;
  first_party?: boolean | undefined;
  introspection?: boolean | undefined;
  auth_method?: string | undefined;
  jwks_uri?: string | undefined;
  jwks?: unknown;
  cors_origins?: string[] | undefined;
  ip_allow?: string[] | undefined;
}

export interface ClientView {
  client_id: string;
  name: string;
  grants: string[];
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  scope: string;
  resources: string[];
  public: boolean;
  first_party: boolean;
  introspection: boolean;
  auth_method: string;
  jwks_uri: string | null;
  jwks: unknown;
  cors_origins: string[];
  ip_allow: string[];
  created_at: string;
  updated_at: string;
}

export interface Actor {
  actor: string;
  ip?: string | undefined;
}

/** What a change may say: the registration options, where `null` removes the client's JWKS or jwks_uri. */
export type ClientChanges = Partial<Omit<ClientInput, 'jwks_uri' | 'jwks'>> & {
  jwks_uri?: string | null | undefined;
  jwks?: unknown;
};

const SECRET_METHODS: readonly string[] = ['client_secret_basic', 'client_secret_post'];
/** Printable ASCII without spaces: anything else cannot be a client id and never reaches SQL (NUL bytes). */
const CLIENT_ID_SHAPE = /^[\x21-\x7e]{1,255}$/;

const MAX_LIST = 50;
const MAX_STRING = 2048;
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/;

export class ClientService {
  readonly #db: Database;
  readonly #audit: AuditService;

  readonly #sessions: SessionRevocation | undefined;
  #onChange: ((clientId: string) => void) | undefined;

  /** With `options.sessions`, deleting a client also revokes its grants and tokens. */
  constructor(db: Database, audit: AuditService, options: { sessions?: SessionRevocation } = {}) {
    this.#db = db;
    this.#audit = audit;
    this.#sessions = options.sessions;
  }

  /** Called with a client's id after each committed change to it (the client directory forgets its copy). */
  onChange(listener: (clientId: string) => void): void {
    this.#onChange = listener;
  }

  async create(input: ClientInput, by: Actor): Promise<{ client: ClientView; client_secret?: string }> {
    const data = validateClientInput(input);
    const secret =
      data.authMethod === 'client_secret_basic' || data.authMethod === 'client_secret_post'
        ? generateSecret()
        : undefined;
    const clientId = generateSecret(16);
    const row = await this.#db.$transaction(async (tx) => {
      const created = await tx.client.create({
        data: { ...data, clientId, secretDigest: secret ? sha256(secret) : null },
      });
      await this.#audit.record(
        {
          type: 'client.created',
          actor: by.actor,
          target: `client:${clientId}`,
          ip: by.ip,
          details: { name: data.name },
        },
        tx,
      );
      return created;
    });
    this.#onChange?.(clientId);
    return { client: toView(row), ...(secret ? { client_secret: secret } : {}) };
  }

  async get(clientId: string): Promise<ClientRow | undefined> {
    if (!isClientIdShape(clientId)) return undefined;
    return (await this.#db.client.findUnique({ where: { clientId } })) ?? undefined;
  }

  /** The client as the admin API shows it (never a secret or its digest). */
  async view(clientId: string): Promise<ClientView | undefined> {
    const row = await this.get(clientId);
    return row ? toView(row) : undefined;
  }

  /** Clients in registration order, `limit` at a time. */
  async list(query: { limit: number; cursor?: string | undefined }): Promise<{
    items: ClientView[];
    next: string | null;
  }> {
    let where: Prisma.ClientWhereInput = {};
    if (query.cursor !== undefined) {
      const [at = '', clientId = ''] = decodeCursor(query.cursor, 2);
      const createdAt = cursorDate(at);
      where = { OR: [{ createdAt: { gt: createdAt } }, { createdAt, clientId: { gt: clientId } }] };
    }
    const rows = await this.#db.client.findMany({
      where,
      orderBy: [{ createdAt: 'asc' }, { clientId: 'asc' }],
      take: query.limit + 1,
    });
    const items = rows.slice(0, query.limit).map(toView);
    const last = items.at(-1);
    return {
      items,
      next: rows.length > query.limit && last ? encodeCursor([last.created_at, last.client_id]) : null,
    };
  }

  /**
   * Changes a client's registration: the changes are merged over what is
   * registered and the result validated as a new registration would be. A
   * client that starts authenticating with a secret gets one (returned once,
   * here); one that stops has its secrets removed.
   */
  async update(
    clientId: string,
    changes: ClientChanges,
    by: Actor,
  ): Promise<{ client: ClientView; client_secret?: string }> {
    if (!isClientIdShape(clientId)) throw clientNotFound(clientId);
    let secret: string | undefined;
    const row = await this.#db.$transaction(async (tx) => {
      const [locked] = await tx.$queryRaw<{ client_id: string }[]>`
        SELECT client_id FROM clients WHERE client_id = ${clientId} FOR UPDATE`;
      if (!locked) throw clientNotFound(clientId);
      const current = await tx.client.findUniqueOrThrow({ where: { clientId } });
      const merged: ClientInput = { ...toInput(current) };
      for (const [field, value] of Object.entries(changes) as [keyof ClientInput, unknown][]) {
        if (value === undefined) continue;
        (merged as unknown as Record<string, unknown>)[field] = value === null ? undefined : value;
      }
      const data = validateClientInput(merged);
      const usesSecret = SECRET_METHODS.includes(data.authMethod);
      if (usesSecret && !current.secretDigest) secret = generateSecret();
      const updated = await tx.client.update({
        where: { clientId },
        data: {
          ...data,
          // Prisma leaves a field alone when given undefined: say "no JWKS" explicitly.
          jwks: data.jwks ?? Prisma.DbNull,
          ...(usesSecret
            ? secret
              ? { secretDigest: sha256(secret) }
              : {}
            : { secretDigest: null, previousSecretDigest: null, previousSecretExpiresAt: null }),
        },
      });
      await this.#audit.record(
        {
          type: 'client.updated',
          actor: by.actor,
          target: `client:${clientId}`,
          ip: by.ip,
          details: {
            fields: Object.keys(changes)
              .filter((field) => (changes as Record<string, unknown>)[field] !== undefined)
              .sort(),
            ...(secret ? { secret_issued: true } : {}),
            ...(!usesSecret && current.secretDigest ? { secret_removed: true } : {}),
          },
        },
        tx,
      );
      return updated;
    });
    this.#onChange?.(clientId);
    return { client: toView(row), ...(secret ? { client_secret: secret } : {}) };
  }

  /** Deletes a client, revoking every grant and token it holds (its users' consents go with it). */
  async delete(clientId: string, by: Actor): Promise<void> {
    if (!isClientIdShape(clientId)) throw clientNotFound(clientId);
    await this.#db.$transaction(async (tx) => {
      const [locked] = await tx.$queryRaw<{ name: string }[]>`
        SELECT name FROM clients WHERE client_id = ${clientId} FOR UPDATE`;
      if (!locked) throw clientNotFound(clientId);
      const revoked = this.#sessions ? await this.#sessions.revokeClient(clientId, tx) : undefined;
      await tx.client.delete({ where: { clientId } });
      await this.#audit.record(
        {
          type: 'client.deleted',
          actor: by.actor,
          target: `client:${clientId}`,
          ip: by.ip,
          details: { name: locked.name, ...(revoked ? { revoked } : {}) },
        },
        tx,
      );
    });
    this.#onChange?.(clientId);
  }

  /**
   * Issues a new secret. The previous one keeps working for `graceSeconds`
   * (0: it stops at once).
   */
  async rotateSecret(
    clientId: string,
    graceSeconds: number,
    by: Actor,
  ): Promise<{ client_id: string; client_secret: string; previous_secret_expires_at: string | null }> {
    if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > 30 * 86_400) {
      throw invalidInput('the grace period must be a whole number of seconds from 0 to 2592000 (30 days)');
    }
    if (!isClientIdShape(clientId)) throw clientNotFound(clientId);
    const secret = generateSecret();
    const expiresAt = graceSeconds > 0 ? new Date(Date.now() + graceSeconds * 1000) : null;
    await this.#db.$transaction(async (tx) => {
      const [current] = await tx.$queryRaw<{ secret_digest: string | null }[]>`
        SELECT secret_digest FROM clients WHERE client_id = ${clientId} FOR UPDATE`;
      if (!current) throw clientNotFound(clientId);
      if (!current.secret_digest) {
        throw new CodedError('conflict', `client ${clientId} does not authenticate with a secret`, 409);
      }
      await tx.client.update({
        where: { clientId },
        data: {
          secretDigest: sha256(secret),
          previousSecretDigest: expiresAt ? current.secret_digest : null,
          previousSecretExpiresAt: expiresAt,
        },
      });
      await this.#audit.record(
        {
          type: 'client.secret_rotated',
          actor: by.actor,
          target: `client:${clientId}`,
          ip: by.ip,
          details: { grace_seconds: graceSeconds },
        },
        tx,
      );
    });
    this.#onChange?.(clientId);
    return {
      client_id: clientId,
      client_secret: secret,
      previous_secret_expires_at: expiresAt?.toISOString() ?? null,
    };
  }
}

/** Validates registration options; throws a 400 CodedError naming the field. */
export function validateClientInput(input: ClientInput): Omit<Prisma.ClientCreateInput, 'clientId'> {
  const name = requireText(input.name, 'name', 200);
  const grants = unique(list(input.grants, 'grants'));
  if (grants.length === 0) throw invalidInput(`grants: at least one of ${GRANTS.join(', ')} is required`);
  for (const grant of grants) {
    if (!(GRANTS as readonly string[]).includes(grant)) {
      throw invalidInput(`grants: "${grant}" is not one of ${GRANTS.join(', ')}`);
    }
  }
  const isPublic = input.public === true;
  const authMethod = input.auth_method ?? (isPublic ? 'none' : 'client_secret_basic');
  if (!(AUTH_METHODS as readonly string[]).includes(authMethod)) {
    throw invalidInput(`auth_method: "${authMethod}" is not one of ${AUTH_METHODS.join(', ')}`);
  }
  if (isPublic !== (authMethod === 'none')) {
    throw invalidInput('auth_method: public clients use "none", and only public clients may');
  }
  const codeFlow = grants.includes('authorization_code');
  if (grants.includes('refresh_token') && !codeFlow) {
    throw invalidInput('grants: refresh_token needs authorization_code');
  }
  if (isPublic && grants.includes('client_credentials')) {
    throw invalidInput('grants: a public client cannot use client_credentials');
  }
  const redirectUris = unique(
    list(input.redirect_uris, 'redirect_uris').map((uri) => checkRedirectUri(uri, 'redirect_uris')),
  );
  if (codeFlow && redirectUris.length === 0) {
    throw invalidInput('redirect_uris: an authorization_code client needs at least one redirect URI');
  }
  if (!codeFlow && redirectUris.length > 0) {
    throw invalidInput('redirect_uris: only authorization_code clients have redirect URIs');
  }
  const postLogoutRedirectUris = unique(
    list(input.post_logout_redirect_uris, 'post_logout_redirect_uris').map((uri) =>
      checkRedirectUri(uri, 'post_logout_redirect_uris'),
    ),
  );
  const resources = unique(list(input.resources, 'resources').map(checkResource));
  if (grants.includes('client_credentials') && resources.length === 0) {
    throw invalidInput('resources: a client_credentials client needs at least one resource');
  }
  const scopes = input.scope === undefined ? defaultScopes(grants) : parseScope(input.scope);
  if (input.jwks_uri !== undefined && input.jwks !== undefined) {
    throw invalidInput('jwks_uri and jwks are exclusive: give one');
  }
  const jwksUri = input.jwks_uri === undefined ? null : checkHttpsUrl(input.jwks_uri, 'jwks_uri');
  const jwks = input.jwks === undefined ? null : checkPublicJwks(input.jwks);
  if (authMethod === 'private_key_jwt' && !jwksUri && !jwks) {
    throw invalidInput("private_key_jwt needs jwks_uri or jwks (the client's public keys)");
  }
  if (authMethod !== 'private_key_jwt' && (jwksUri || jwks)) {
    throw invalidInput('jwks_uri and jwks are only for private_key_jwt clients');
  }
  const introspection = input.introspection === true;
  if (introspection && isPublic)
    throw invalidInput('introspection: a public client cannot introspect tokens');
  return {
    name,
    grants,
    redirectUris,
    postLogoutRedirectUris,
    scopes,
    resources,
    public: isPublic,
    firstParty: input.first_party === true,
    introspection,
    authMethod,
    jwksUri,
    jwks: (jwks ?? undefined) as Prisma.InputJsonValue | undefined,
    corsOrigins: unique(list(input.cors_origins, 'cors_origins').map(checkOrigin)),
    ipAllow: unique(
      list(input.ip_allow, 'ip_allow').map((cidr) => {
        try {
          parseCidr(cidr);
        } catch (error) {
          throw invalidInput(`ip_allow: ${(error as Error).message}`);
        }
        return cidr.trim();
      }),
    ),
  };
}

export function toView(row: ClientRow): ClientView {
  return {
    client_id: row.clientId,
    name: row.name,
    grants: row.grants,
    redirect_uris: row.redirectUris,
    post_logout_redirect_uris: row.postLogoutRedirectUris,
    scope: row.scopes.join(' '),
    resources: row.resources,
    public: row.public,
    first_party: row.firstParty,
    introspection: row.introspection,
    auth_method: row.authMethod,
    jwks_uri: row.jwksUri,
    jwks: row.jwks ?? null,
    cors_origins: row.corsOrigins,
    ip_allow: row.ipAllow,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

/** A registered client as registration options, so a change can be merged over it and validated whole. */
function toInput(row: ClientRow): ClientInput {
  return {
    name: row.name,
    grants: row.grants,
    redirect_uris: row.redirectUris,
    post_logout_redirect_uris: row.postLogoutRedirectUris,
    scope: row.scopes.join(' '),
    resources: row.resources,
    public: row.public,
    first_party: row.firstParty,
    introspection: row.introspection,
    auth_method: row.authMethod,
    jwks_uri: row.jwksUri ?? undefined,
    jwks: row.jwks ?? undefined,
    cors_origins: row.corsOrigins,
    ip_allow: row.ipAllow,
  };
}

export function isClientIdShape(clientId: unknown): clientId is string {
  return typeof clientId === 'string' && CLIENT_ID_SHAPE.test(clientId);
}

function clientNotFound(clientId: string): CodedError {
  return new CodedError('not_found', `no client ${printable(clientId)}`, 404);
}

function defaultScopes(grants: string[]): string[] {
  if (!grants.includes('authorization_code')) return [];
  return ['openid', 'profile', 'email', ...(grants.includes('refresh_token') ? ['offline_access'] : [])];
}

export function parseScope(scope: string): string[] {
  if (typeof scope !== 'string') throw invalidInput('scope must be a string of space-separated scopes');
  const scopes = unique(scope.split(' ').filter(Boolean));
  for (const token of scopes) {
    if (!SCOPE_TOKEN.test(token)) throw invalidInput(`scope: "${printable(token)}" is not a valid scope`);
  }
  if (scopes.length > MAX_LIST) throw invalidInput(`scope: at most ${MAX_LIST} scopes`);
  return scopes;
}

function requireText(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string' || value.trim() === '') throw invalidInput(`${field} is required`);
  if (value.length > max) throw invalidInput(`${field} must be at most ${max} characters`);
  if (hasControlCharacters(value)) throw invalidInput(`${field} must not contain control characters`);
  return value.trim();
}

function list(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidInput(`${field} must be a list`);
  if (value.length > MAX_LIST) throw invalidInput(`${field}: at most ${MAX_LIST} entries`);
  return value.map((entry) => {
    if (typeof entry !== 'string' || entry === '' || entry.length > MAX_STRING) {
      throw invalidInput(`${field} entries must be non-empty strings of at most ${MAX_STRING} characters`);
    }
    return entry;
  });
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function printable(value: string): string {
  return JSON.stringify(value.slice(0, 64)).slice(1, -1);
}

function parseUrl(value: string, field: string): URL {
  try {
    if (/\s/.test(value) || hasControlCharacters(value)) throw new Error();
    return new URL(value);
  } catch {
    throw invalidInput(`${field}: "${printable(value)}" is not an absolute URL`);
  }
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
}

/** RFC 9700 §2.1 / RFC 8252: https, http on loopback, or a private-use scheme; never a fragment. */
function checkRedirectUri(value: string, field: string): string {
  const url = parseUrl(value, field);
  if (url.hash || value.includes('#'))
    throw invalidInput(`${field}: "${printable(value)}" must not have a fragment`);
  const scheme = url.protocol.slice(0, -1);
  const allowed =
    scheme === 'https' ||
    (scheme === 'http' && isLoopback(url.hostname)) ||
    (/^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+$/.test(scheme) &&
      !['javascript', 'data', 'vbscript', 'file'].includes(scheme));
  if (!allowed) {
    throw invalidInput(
      `${field}: "${printable(value)}" must use https, http on a loopback host, or a private-use scheme (com.example.app:/cb)`,
    );
  }
  return value;
}

/** RFC 8707: an absolute URI without a fragment. */
function checkResource(value: string): string {
  const url = parseUrl(value, 'resources');
  if (url.hash || value.includes('#'))
    throw invalidInput(`resources: "${printable(value)}" must not have a fragment`);
  if (url.protocol !== 'https:' && url.protocol !== 'http:' && url.protocol !== 'urn:') {
    throw invalidInput(`resources: "${printable(value)}" must be an http(s) or urn URI`);
  }
  return value;
}

function checkHttpsUrl(value: unknown, field: string): string {
  if (typeof value !== 'string') throw invalidInput(`${field} must be a string`);
  const url = parseUrl(value, field);
  if (url.protocol !== 'https:') throw invalidInput(`${field} must be an https URL`);
  return value;
}

function checkOrigin(value: string): string {
  const url = parseUrl(value, 'cors_origins');
  if (url.origin !== value || url.origin === 'null') {
    throw invalidInput(
      `cors_origins: "${printable(value)}" must be an origin such as https://app.example.com`,
    );
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
    throw invalidInput(`cors_origins: "${printable(value)}" must use https (http only on loopback)`);
  }
  return value;
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

function checkPublicJwks(value: unknown): { keys: Record<string, unknown>[] } {
  const keys = (value as { keys?: unknown })?.keys;
  if (
    typeof value !== 'object' ||
    value === null ||
    !Array.isArray(keys) ||
    keys.length === 0 ||
    keys.length > 10
  ) {
    throw invalidInput('jwks must be a JSON Web Key Set: {"keys":[…]} with 1 to 10 keys');
  }
  // PostgreSQL's jsonb cannot hold NUL; no key member ever needs one.
  if (JSON.stringify(value).includes('\\u0000')) throw invalidInput('jwks must not contain NUL characters');
  for (const key of keys as unknown[]) {
    if (typeof key !== 'object' || key === null || typeof (key as { kty?: unknown }).kty !== 'string') {
      throw invalidInput('jwks: every key needs a "kty"');
    }
    if (PRIVATE_JWK_MEMBERS.some((member) => member in key)) {
      throw invalidInput('jwks must hold public keys only (a private or symmetric key was given)');
    }
  }
  return { keys: keys as Record<string, unknown>[] };
}
