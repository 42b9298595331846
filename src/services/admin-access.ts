// Who may call the admin API (SPEC "Admin API"): a bearer access token issued
// by this server for the resource `${issuer}/admin` with scope `admin`, from
//   - a client-credentials client registered with that scope and resource, or
//   - a user holding the role `admin` whose sign-in used a second factor
//     (acr urn:gatehouse:loa:2), through a first-party client.
// The token is a JWT verified offline against Gatehouse's published keys; the
// rights behind it are read from the database on every call, so removing a
// role, a scope, a client or disabling a user takes effect at once on every
// instance, without waiting for the token to expire (AD-5).
import { createLocalJWKSet, type JWK, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import type { Config } from '../config.ts';
import type { Database } from '../db/prisma.ts';
import { ACR_SECOND_FACTOR } from '../oidc/accounts.ts';
import { adminResource } from '../oidc/provider.ts';
import type { ClientService } from './clients.ts';
import { type KeyService, SIGNING_ALGS } from './keys.ts';
import { ADMIN_ROLE } from './roles.ts';
import type { UserService } from './users.ts';

export const ADMIN_SCOPE = 'admin';

/** Far above any JWT Gatehouse issues; longer input is refused unparsed. */
const MAX_TOKEN_LENGTH = 8192;

export interface AdminCaller {
  kind: 'client' | 'user';
  /** The client id, or the user's id. */
  id: string;
  /** How audit events name the caller: `client:<id>` or `user:<id>`. */
  actor: string;
}

/**
 * `status` 401: no usable token (missing, malformed, expired, foreign, for
 * another audience, or its subject is gone); 403: a valid admin token without
 * the right. `reason` is for the audit log; `message` may be shown.
 */
export type AdminDecision =
  | { ok: true; caller: AdminCaller }
  | {
      ok: false;
      status: 401 | 403;
      error: 'invalid_token' | 'insufficient_scope' | 'insufficient_user_authentication';
      reason: string;
      message: string;
      actor?: string;
    };

type KeySet = ReturnType<typeof createLocalJWKSet>;

export class AdminAccess {
  readonly #config: Readonly<Config>;
  readonly #db: Database;
  readonly #keys: KeyService;
  readonly #clients: ClientService;
  readonly #users: UserService;
  #keySet: { version: string; keys: KeySet } | undefined;

  constructor(deps: {
    config: Readonly<Config>;
    db: Database;
    keys: KeyService;
    clients: ClientService;
    users: UserService;
  }) {
    this.#config = deps.config;
    this.#db = deps.db;
    this.#keys = deps.keys;
    this.#clients = deps.clients;
    this.#users = deps.users;
  }

  get audience(): string {
    return adminResource(this.#config.issuer);
  }

  /** Decides on the value of an `Authorization` header (undefined when none was sent). */
  async authorize(header: string | undefined): Promise<AdminDecision> {
    if (header === undefined || header === '')
      return unauthenticated('missing_token', 'a bearer token is required');
    const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
    if (!match?.[1] || match[1].length > MAX_TOKEN_LENGTH) {
      return unauthenticated('malformed_token', 'the Authorization header must be "Bearer <access token>"');
    }
    // Outside the try: failing to load the keys (the database) is a server error, not a bad token.
    const keySet = await this.#keySetNow();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(match[1], keySet, {
        issuer: this.#config.issuer,
        audience: this.audience,
        typ: 'at+jwt',
        algorithms: [...SIGNING_ALGS],
        requiredClaims: ['sub', 'exp', 'iat'],
      }));
    } catch (error) {
      return unauthenticated(rejectionReason(error), 'the access token is not valid for the admin API');
    }
    const sub = payload.sub;
    const clientId = payload.client_id;
    if (typeof sub !== 'string' || typeof clientId !== 'string') {
      return unauthenticated('malformed_token', 'the access token is not valid for the admin API');
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    // Client-credentials tokens are about the client itself (RFC 9068 §2.2: sub is the client id).
    const kind = sub === clientId ? 'client' : 'user';
    const actor = `${kind}:${sub}`;
    const client = await this.#clients.get(clientId);
    if (!client)
      return unauthenticated('client_gone', 'the access token is not valid for the admin API', actor);
    if (kind === 'user') {
      const user = await this.#users.findById(sub);
      if (!user || user.disabled) {
        return unauthenticated('user_gone', 'the access token is not valid for the admin API', actor);
      }
      if (!scopes.includes(ADMIN_SCOPE)) return forbidden('no_admin_scope', actor);
      if (!client.firstParty) return forbidden('not_first_party_client', actor);
      if (!registeredForAdmin(client, this.audience))
        return forbidden('client_not_registered_for_admin', actor);
      if (!user.roles.includes(ADMIN_ROLE)) return forbidden('no_admin_role', actor);
      if (payload.acr !== ACR_SECOND_FACTOR) {
        return {
          ok: false,
          status: 403,
          error: 'insufficient_user_authentication',
          reason: 'no_second_factor',
          message: `the admin API needs a sign-in with a second factor (acr ${ACR_SECOND_FACTOR})`,
          actor,
        };
      }
    } else {
      if (!scopes.includes(ADMIN_SCOPE)) return forbidden('no_admin_scope', actor);
      if (!registeredForAdmin(client, this.audience))
        return forbidden('client_not_registered_for_admin', actor);
    }
    return { ok: true, caller: { kind, id: sub, actor } };
  }

  /**
   * The public keys of every published (active or verify) signing key,
   * rebuilt whenever the key set changes: a retired key stops verifying here
   * on the next call, on every instance.
   */
  async #keySetNow(): Promise<KeySet> {
    const version = await this.#keys.keysetVersion();
    if (this.#keySet?.version === version) return this.#keySet.keys;
    const rows = await this.#db.signingKey.findMany({
      where: { status: { in: ['active', 'verify'] } },
      select: { publicJwk: true },
    });
    const keys = createLocalJWKSet({ keys: rows.map((row) => row.publicJwk as unknown as JWK) });
    this.#keySet = { version, keys };
    return keys;
  }
}

function registeredForAdmin(client: { scopes: string[]; resources: string[] }, audience: string): boolean {
  return client.scopes.includes(ADMIN_SCOPE) && client.resources.includes(audience);
}

function unauthenticated(reason: string, message: string, actor?: string): AdminDecision {
  return { ok: false, status: 401, error: 'invalid_token', reason, message, ...(actor ? { actor } : {}) };
}

function forbidden(reason: string, actor: string): AdminDecision {
  return {
    ok: false,
    status: 403,
    error: 'insufficient_scope',
    reason,
    message: 'this token does not grant access to the admin API',
    actor,
  };
}

/** A short reason for the audit log (never the token). */
function rejectionReason(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return error.claim === 'aud' ? 'wrong_audience' : `bad_claim_${error.claim}`;
  }
  if (
    error instanceof joseErrors.JWKSNoMatchingKey ||
    error instanceof joseErrors.JWSSignatureVerificationFailed
  ) {
    return 'unknown_key_or_signature';
  }
  return 'malformed_token';
}
