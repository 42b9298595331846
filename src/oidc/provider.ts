// oidc-provider configuration. oidc-provider owns the protocol; this file sets
// each of its defaults that Gatehouse must change (see SECURITY-CATALOGUE §0
// and lib/helpers/defaults.js), with the reason beside it.
import type { FastifyBaseLogger } from 'fastify';
import Provider, {
  type Configuration,
  errors,
  interactionPolicy,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import type { Config } from '../config.ts';
import type { Database } from '../db/prisma.ts';
import { digestsEqual, sha256 } from '../lib/tokens.ts';
import type { AuditService } from '../services/audit.ts';
import type { ConsentService } from '../services/consents.ts';
import { ID_TOKEN_TTL } from '../services/key-policy.ts';
import type { Keystore } from '../services/keys.ts';
import type { Metrics } from '../services/metrics.ts';
import type { UserService } from '../services/users.ts';
import { ACR_PASSWORD, ACR_SECOND_FACTOR, createExtraTokenClaims, createFindAccount } from './accounts.ts';
import { createAdapterFactory, insertIfAbsent } from './adapter.ts';
import { type ClientDirectory, NOT_CACHED, OIDC_SCOPES } from './client-directory.ts';
import { createLoadExistingGrant } from './grants.ts';
import { auditProviderEvents, type ProviderContext } from './provider-events.ts';
import { logoutSource, postLogoutSuccessSource, renderError } from './provider-pages.ts';

export interface ProviderDependencies {
  config: Readonly<Config>;
  db: Database;
  keystore: Keystore;
  cookieKeys: string[];
  clients: ClientDirectory;
  users: UserService;
  consents: ConsentService;
  audit: AuditService;
  metrics: Metrics;
  log: FastifyBaseLogger;
}

/** The paths oidc-provider serves; everything else belongs to Fastify. */
export const PROVIDER_PATHS = new Set([
  '/.well-known/openid-configuration',
  '/auth',
  '/token',
  '/token/introspection',
  '/token/revocation',
  '/me',
  '/jwks',
  '/request',
  '/session/end',
  '/session/end/confirm',
  '/session/end/success',
]);
const RESUME_PATH = /^\/auth\/[A-Za-z0-9_-]{1,64}$/;
/** Discovery and keys: public metadata any origin may read (SPEC "CORS"). */
const PUBLIC_METADATA_PATHS = new Set(['/.well-known/openid-configuration', '/jwks']);
/** The longest a client assertion may stay valid, in seconds. */
const MAX_ASSERTION_LIFETIME = 3600;

export function isProviderPath(pathname: string): boolean {
  return PROVIDER_PATHS.has(pathname) || RESUME_PATH.test(pathname);
}

export function buildProvider(deps: ProviderDependencies): Provider {
  const { config, db, keystore, clients } = deps;
  const resourceServers = resourceServerPolicy(config, clients, keystore);
  const configuration: Configuration = {
    adapter: createAdapterFactory(db, (clientId) => clients.findMetadata(clientId)),
    jwks: { keys: keystore.keys as NonNullable<Configuration['jwks']>['keys'] },
    cookies: {
      keys: deps.cookieKeys,
      // Signed, HttpOnly, SameSite=Lax; Secure follows the issuer's scheme.
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    scopes: [...OIDC_SCOPES],
    claims: {
      openid: ['sub', 'auth_time', 'acr', 'amr'],
      profile: ['name'],
      email: ['email', 'email_verified'],
      roles: ['roles'],
    },
    // Put the claims of granted scopes in the ID token too (SPEC), not only in userinfo.
    conformIdTokenClaims: false,
    acrValues: [ACR_PASSWORD, ACR_SECOND_FACTOR],
    // OIDC Core §9 / RFC 7523 §3: client assertions are short-lived. oidc-provider only
    // checks that exp is in the future; refuse one that stays valid for over an hour.
    assertJwtClientAuthClaimsAndHeader: async (_ctx, claims) => {
      const now = Math.floor(Date.now() / 1000);
      const exp = Number(claims.exp);
      const iat = typeof claims.iat === 'number' ? claims.iat : now;
      if (exp - Math.min(iat, now) > MAX_ASSERTION_LIFETIME) {
        throw new errors.InvalidClientAuth('client assertions must expire within an hour of being issued');
      }
    },
    // SPEC: a client may receive only the scopes registered for it; asking for
    // more is refused with invalid_scope. The library checks only its own OIDC
    // scopes against the client (actions/authorization/scopes.js) and silently
    // drops every other one without a `resource` (shared/check_resource.js), so
    // the request's own scope parameter is checked here. This runs on /auth and
    // /request (PAR) after redirect_uri is validated, so the client gets an
    // error redirect; /auth with a PAR request_uri was checked at /request.
    extraParams: {
      scope: (ctx, _value, client) => {
        const raw = ctx.method === 'POST' ? ctx.oidc.body?.scope : ctx.query.scope;
        if (typeof raw !== 'string') return;
        const registered = new Set(clients.scopesOf(client.clientId));
        const refused = raw.split(' ').find((scope) => scope !== '' && !registered.has(scope));
        if (refused !== undefined) throw new errors.InvalidScope('requested scope is not allowed', refused);
      },
    },
    findAccount: createFindAccount(deps.users),
    extraTokenClaims: createExtraTokenClaims(deps.users),
    loadExistingGrant: createLoadExistingGrant(clients, deps.consents),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy: signInPolicy() },
    renderError,
    // Every signature follows the active key's algorithm; no per-client choice.
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: keystore.activeAlg,
    },
    enabledJWA: {
      // Client assertions: asymmetric algorithms only (no HS*: secrets are hashed here).
      clientAuthSigningAlgValues: ['ES256', 'ES384', 'PS256', 'PS384', 'RS256', 'RS384', 'EdDSA'],
      idTokenSigningAlgValues: [keystore.activeAlg],
    },
    // client_secret_jwt would need the plaintext secret as an HMAC key; Gatehouse only keeps digests.
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    // Implicit and hybrid flows leak tokens through the front channel (RFC 9700 §2.1.2).
    responseTypes: ['code'],
    // PKCE S256 for every client, confidential ones included (ASVS 10.4.6).
    pkce: { required: () => true },
    // OIDC Core §3.1.2.1: redirect_uri is required, even with a single registered one.
    allowOmittingSingleRegisteredRedirectUri: false,
    // Refresh tokens rotate on every use, so a reused one is detected and the grant revoked.
    rotateRefreshToken: true,
    ttl: {
      // RFC 6749 §4.1.2 recommends at most 10 minutes; one is plenty for a redirect.
      AuthorizationCode: 60,
      AccessToken: config.accessTokenTtl,
      ClientCredentials: config.accessTokenTtl,
      IdToken: ID_TOKEN_TTL,
      // Idle lifetime per token, capped by the absolute lifetime of the chain (iiat).
      RefreshToken: (_ctx, token) => refreshTokenTtl(config, token),
      // An unfinished sign-in expires after 10 minutes.
      Interaction: 600,
      // Sessions and grants live as long as a refresh chain may.
      Session: config.refreshTokenAbsoluteTtl,
      Grant: config.refreshTokenAbsoluteTtl,
      PushedAuthorizationRequest: 60,
    },
    // Browsers may call token, userinfo and revocation only from origins the client registered.
    clientBasedCORS: (_ctx, origin, client) => clients.corsOriginsOf(client.clientId).includes(origin),
    // The other defaults defaults.js marks shouldChange/mustChange belong to features Gatehouse
    // keeps off (left at the library's `enabled: false`): device flow (its pages and
    // DeviceCode TTL), CIBA, mTLS, attestation-based client auth, OpenID4VCI and
    // pre-authorized codes, rich authorization requests, and pairwise subjects
    // (subjectTypes stays ['public']). Turning one on means setting those too.
    features: {
      // Gatehouse renders its own sign-in pages.
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // RFC 7662 §4: only the token's own client or a registered resource server learns anything.
        allowedPolicy: async (_ctx, client, token) =>
          clients.mayIntrospect(client.clientId) ||
          ('clientId' in token && token.clientId === client.clientId),
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client revokes only its own tokens; anything else is a silent no-op.
        allowedPolicy: async (_ctx, client, token) =>
          'clientId' in token && token.clientId === client.clientId,
      },
      pushedAuthorizationRequests: { enabled: true },
      dPoP: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => {
          if (oneOf) return oneOf;
          // SPEC: a client-credentials request without `resource` uses the client's first one.
          if (ctx.oidc.params?.grant_type === 'client_credentials')
            return clients.resourcesOf(client.clientId)[0];
          return undefined;
        },
        getResourceServerInfo: async (ctx, resource, client) =>
          resourceServers(ctx, resource, client.clientId),
        // A code exchange without `resource` gets an opaque token for userinfo;
        // naming a granted resource gets a JWT for it (RFC 8707).
        useGrantedResource: async () => false,
      },
    },
  };

  const provider = new Provider(config.issuer, configuration);
  // The issuer is fixed configuration: Gatehouse pins Host, scheme and client IP
  // in X-Forwarded-* before handing a request over (see mount.ts).
  provider.proxy = true;

  // Client secrets are stored as SHA-256 digests (`client_secret` holds the
  // digest), and a rotated-out secret keeps working during its grace period.
  provider.Client.prototype.compareClientSecret = async function compareClientSecret(presented: string) {
    const digest = sha256(presented);
    if (this.clientSecret && digestsEqual(digest, this.clientSecret)) return true;
    const previous = clients.previousSecretDigest(this.clientId);
    return previous !== undefined && digestsEqual(digest, previous);
  };

  // The library finds the Client it built for a lookup by hashing the JSON of
  // the metadata the adapter returned, on every request (models/client.js).
  // The directory hands out one metadata object per client until that client
  // is read afresh, so the built Client is kept on that object instead: the
  // same answer without serialising and hashing per request. A changed client
  // comes back as a new object, and so as a newly built Client.
  const builtClients = new WeakMap<object, InstanceType<typeof provider.Client>>();
  const findClient = provider.Client.find.bind(provider.Client);
  provider.Client.find = async (id: string) => {
    if (typeof id !== 'string') return undefined;
    // The cached record without awaiting another async call: this runs on every token request.
    const cached = clients.cachedMetadata(id);
    const metadata = cached === NOT_CACHED ? await clients.findMetadata(id) : cached;
    if (!metadata) return undefined;
    const built = builtClients.get(metadata);
    if (built) return built;
    const client = await findClient(id);
    if (client) builtClients.set(metadata, client);
    return client;
  };

  // The library's ReplayDetection.unique() is find-then-save, so two parallel
  // uses of one client assertion (or DPoP proof) could both pass. One atomic
  // insert decides instead; the callers turn `false` into their own error.
  provider.ReplayDetection.unique = async (iss: string, jti: string, exp: number) =>
    insertIfAbsent(db, 'ReplayDetection', `${iss}${jti}`, exp - Math.floor(Date.now() / 1000));

  const audit = auditProviderEvents(provider, deps.audit, deps.metrics, deps.log, {
    auditClientCredentials: config.auditClientCredentials,
  });
  // One middleware around everything the library answers (each layer of Koa
  // middleware costs every request a promise): the corrections below, then the
  // request's audit writes, which (when there are any) the response waits for.
  provider.use(async (ctx, next) => {
    try {
      await next();
      answerUnknownRoutes(ctx);
      withdrawUnregisteredCors(ctx, clients);
      renameDisallowedGrantError(ctx);
      audit.recordRevocation(ctx);
    } finally {
      const writes = audit.writesOf(ctx);
      if (writes) await writes;
    }
  });
  provider.on('server_error', (_ctx, error) => deps.log.error({ err: error }, 'oidc-provider server error'));

  return provider;
}

/**
 * The library's prompts, plus step-up: acr_values that are not essential
 * never prompt by themselves, so a relying party asking for
 * urn:gatehouse:loa:2 gets the login prompt (and there the second factor)
 * whenever the session signed in without one.
 */
function signInPolicy() {
  const policy = interactionPolicy.base();
  policy.get('login')!.checks.add(
    new interactionPolicy.Check('acr_step_up', 'a second factor is requested', (ctx) => {
      const requested = String(ctx.oidc.params?.acr_values ?? '').split(' ');
      const session = ctx.oidc.session as { acr?: string } | undefined;
      return requested.includes(ACR_SECOND_FACTOR) && session?.acr !== ACR_SECOND_FACTOR
        ? interactionPolicy.Check.REQUEST_PROMPT
        : interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }),
  );
  return policy;
}

/** One 404 for every unknown path or method, whichever side would own it. */
function answerUnknownRoutes(ctx: ProviderContext): void {
  if (ctx.status === 404 && !ctx.body) {
    ctx.status = 404;
    ctx.body = notFoundBody(ctx.method, ctx.path);
  }
}

/**
 * The library's CORS middleware echoes any Origin and withdraws it only once a
 * client is assigned (clientBasedCORS), so answers that never get that far (an
 * unknown or missing client, a bad token at /me) let any site read them. Keep
 * the header only for the registered origins of the request's client; public
 * metadata may be read by anyone.
 */
function withdrawUnregisteredCors(ctx: ProviderContext, clients: ClientDirectory): void {
  const origin = ctx.get('origin');
  if (!origin) return;
  const allowed = ctx.response.get('access-control-allow-origin');
  if (!allowed || allowed === '*' || PUBLIC_METADATA_PATHS.has(ctx.path)) return;
  const clientId = (ctx as { oidc?: { client?: { clientId: string } } }).oidc?.client?.clientId;
  if (!clientId || !clients.corsOriginsOf(clientId).includes(origin)) {
    ctx.remove('Access-Control-Allow-Origin');
    ctx.remove('Access-Control-Expose-Headers');
  }
}

/**
 * RFC 6749 §5.2: a grant type the client is not registered for is
 * `unauthorized_client`; the library answers `invalid_request` (lib/actions/token.js).
 */
function renameDisallowedGrantError(ctx: ProviderContext): void {
  const body = ctx.body as { error?: string; error_description?: string } | undefined;
  if (
    ctx.status === 400 &&
    ctx.path === '/token' &&
    body?.error === 'invalid_request' &&
    body.error_description === 'requested grant type is not allowed for this client'
  ) {
    body.error = 'unauthorized_client';
  }
}

export function adminResource(issuer: string): string {
  return `${issuer}/admin`;
}

export function notFoundBody(method: string, path: string): { error: string; message: string } {
  return { error: 'not_found', message: `no route for ${method} ${path}` };
}

export function refreshTokenTtl(config: Readonly<Config>, token: { iiat?: number }): number {
  const now = Math.floor(Date.now() / 1000);
  const chainEnds = (token.iiat ?? now) + config.refreshTokenAbsoluteTtl;
  // At least 1: oidc-provider treats 0 as "no expiry" and fails.
  return Math.max(1, Math.min(config.refreshTokenIdleTtl, chainEnds - now));
}

/**
 * getResourceServerInfo: a client gets tokens only for its registered
 * resources, with its registered API scopes. What is the same for every
 * request (the admin resource, the signing key) is worked out once per build.
 */
function resourceServerPolicy(config: Readonly<Config>, clients: ClientDirectory, keystore: Keystore) {
  const adminApi = adminResource(config.issuer);
  // The library only reads it (models/formats/jwt.js), so one object serves every token of this build.
  const jwt = Object.freeze({ sign: Object.freeze({ alg: keystore.activeAlg, kid: keystore.activeKid }) });
  return (ctx: KoaContextWithOIDC, resource: string, clientId: string) => {
    if (!clients.resourcesOf(clientId).includes(resource)) {
      throw new errors.InvalidTarget('the client is not registered for this resource');
    }
    const params = ctx.oidc.params as Record<string, string | undefined> | undefined;
    // SPEC: in user flows only first-party clients may ask for the admin API.
    if (
      resource === adminApi &&
      params?.grant_type !== 'client_credentials' &&
      !clients.isFirstParty(clientId)
    ) {
      throw new errors.InvalidTarget('only first-party clients may request the admin API for a user');
    }
    const apiScopes = clients.apiScopesOf(clientId);
    if (params?.grant_type === 'client_credentials') {
      const requested = (params.scope ?? '').split(' ').filter(Boolean);
      const refused = requested.find((scope) => !apiScopes.includes(scope));
      if (refused !== undefined) throw new errors.InvalidScope('requested scope is not allowed', refused);
      // SPEC: asking for no scope grants every scope registered for the client.
      if (requested.length === 0 && apiScopes.length > 0) params.scope = apiScopes.join(' ');
    }
    return {
      scope: apiScopes.join(' '),
      audience: resource,
      accessTokenTTL: config.accessTokenTtl,
      accessTokenFormat: 'jwt' as const,
      jwt,
    };
  };
}
