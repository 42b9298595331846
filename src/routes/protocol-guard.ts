// In front of oidc-provider (an onRequest hook registered before the mount):
// - CORS preflights on the endpoints browsers call are answered here, because
//   the library's own echo any origin: only origins some client registered get
//   CORS headers (the real request is then checked per client by clientBasedCORS);
// - the token-endpoint rate limits, per source IP and per client;
// - a client's IP allowlist: no token, introspection or revocation from elsewhere.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Client as ClientRow } from '../generated/prisma/client.ts';
import { createIpMatcher, limitKeyOfIp } from '../lib/cidr.ts';
import { type ClientDirectory, NOT_CACHED } from '../oidc/client-directory.ts';
import { pathOf } from '../oidc/mount.ts';
import { type LimitOutcome, type RateLimiter, setLimitHeaders } from './rate-limits.ts';

/** Endpoints a browser-based client calls, and the methods they answer. */
const CORS_ENDPOINTS: Record<string, string> = {
  '/token': 'POST',
  '/token/revocation': 'POST',
  '/token/introspection': 'POST',
  '/me': 'GET, POST',
};

/** Endpoints where a client authenticates: rate limited and IP allowlisted per client. */
const CLIENT_ENDPOINTS = new Set(['/token', '/token/introspection', '/token/revocation', '/request']);

/** oidc-provider's own body cap, so buffering here never accepts more than it would. */
const PROVIDER_BODY_LIMIT = 56 * 1024;

export interface ProtocolGuardDependencies {
  clients: ClientDirectory;
  limiter: RateLimiter;
}

export function registerProtocolGuard(app: FastifyInstance, deps: ProtocolGuardDependencies): void {
  // A callback hook, not an async one: the token endpoint's common case (Basic
  // credentials, counters in process, the client cached) is decided without
  // waiting a single promise, and only the other cases go through guardAsync.
  app.addHook('onRequest', (request, reply, done) => {
    const path = pathOf(request.url);
    if (request.method === 'OPTIONS' && path in CORS_ENDPOINTS) {
      answerPreflight(request, reply, deps.clients, CORS_ENDPOINTS[path]!).catch(done);
      return;
    }
    if (path === '/session/end') {
      dropUnvouchedLogoutRedirect(request).then((readable) => {
        if (readable) done();
        else oauthError(reply, 400, 'invalid_request', 'the request body could not be read');
      }, done);
      return;
    }
    if (request.method !== 'POST' || !CLIENT_ENDPOINTS.has(path)) {
      done();
      return;
    }
    const passed = guardClientRequest(request, reply, deps);
    if (passed === true) done();
    else if (passed !== false) passed.then((ok) => ok && done(), done);
  });
}

/**
 * The per-IP and per-client limits and the client's IP allowlist, for a request
 * to an endpoint where a client authenticates. True to let it through; false
 * once it has been refused (the reply is sent); a promise of either when a
 * counter, the body or the client's record has to be waited for.
 */
function guardClientRequest(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: ProtocolGuardDependencies,
): boolean | Promise<boolean> {
  const perIp = deps.limiter.hit('token', `ip:${limitKeyOfIp(request.ip)}`);
  const clientId = clientIdFromBasic(request.headers.authorization);
  if (perIp instanceof Promise || clientId === undefined) return guardAsync(request, reply, deps, perIp);
  if (!perIp.allowed) return refuseLimited(reply, perIp);
  if (!clientId) return true; // no client named: the provider refuses it
  const perClient = deps.limiter.hit('token', `client:${clientId}`);
  const client = deps.clients.cached(clientId);
  if (perClient instanceof Promise || client === NOT_CACHED)
    return guardAsync(request, reply, deps, perIp, clientId, perClient);
  return decide(request, reply, perIp, perClient, client);
}

/** guardClientRequest for what it could not decide at once; counts nothing twice. */
async function guardAsync(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: ProtocolGuardDependencies,
  perIpHit: LimitOutcome | Promise<LimitOutcome>,
  namedClientId?: string,
  perClientHit?: LimitOutcome | Promise<LimitOutcome>,
): Promise<boolean> {
  const perIp = await perIpHit;
  if (!perIp.allowed) return refuseLimited(reply, perIp);
  const clientId = namedClientId ?? (await claimedClientId(request));
  if (clientId === null) {
    // The rest of the body is never read: close the connection after answering (as
    // Fastify does with its 413), or the socket stays open with the client still
    // sending, and a keep-alive client's next request on it never gets an answer.
    reply.header('connection', 'close');
    return oauthError(reply, 400, 'invalid_request', 'the request body could not be read');
  }
  if (!clientId) return true; // no client named: the provider refuses it
  const perClient = await (perClientHit ?? deps.limiter.hit('token', `client:${clientId}`));
  return decide(request, reply, perIp, perClient, await deps.clients.load(clientId));
}

function decide(
  request: FastifyRequest,
  reply: FastifyReply,
  perIp: LimitOutcome,
  perClient: LimitOutcome,
  client: ClientRow | undefined,
): boolean {
  setLimitHeaders(reply, perClient.remaining < perIp.remaining ? perClient : perIp);
  if (!perClient.allowed) return refuseLimited(reply, perClient);
  if (client && client.ipAllow.length > 0 && !createIpMatcher(client.ipAllow)(request.ip)) {
    request.log.warn(
      { client_id: client.clientId, ip: request.ip },
      'request from outside the client IP allowlist',
    );
    return oauthError(
      reply,
      400,
      'unauthorized_client',
      'requests for this client are not allowed from this address',
    );
  }
  return true;
}

/**
 * The client named by a Basic Authorization header; '' when the header names
 * none (the provider refuses it), undefined when there is no Basic header (the
 * client may be named in the body).
 */
function clientIdFromBasic(header: string | undefined): string | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const index = decoded.indexOf(':');
  if (index <= 0) return '';
  try {
    return decodeURIComponent(decoded.slice(0, index));
  } catch {
    return '';
  }
}

/**
 * The client a request names: from the Basic header, or else from the form
 * body, which is read here (bounded like the provider reads it) and handed
 * on as `req.body`, the pre-parsed body oidc-provider accepts.
 * Returns '' when none is named, null when the body cannot be read.
 */
async function claimedClientId(request: FastifyRequest): Promise<string | null> {
  const named = clientIdFromBasic(request.headers.authorization);
  if (named !== undefined) return named;
  if (!request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded'))
    return '';
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of request.raw) {
      size += (chunk as Buffer).length;
      if (size > PROVIDER_BODY_LIMIT) return null;
      chunks.push(chunk as Buffer);
    }
  } catch {
    return null;
  }
  const body = Buffer.concat(chunks);
  (request.raw as unknown as { body: Buffer }).body = body;
  const ids = new URLSearchParams(body.toString('utf8')).getAll('client_id');
  return ids.length === 1 ? (ids[0] ?? '') : '';
}

/**
 * RP-Initiated Logout §3: after logout the browser goes back to the client
 * only when an id_token_hint vouches for the request; a bare client_id can be
 * sent by anyone, so without a hint the post_logout_redirect_uri (and the state
 * meant for it) is dropped and the logout ends on Gatehouse's own page. The
 * hint itself is validated by oidc-provider. False when a body cannot be read.
 */
async function dropUnvouchedLogoutRedirect(request: FastifyRequest): Promise<boolean> {
  const strip = (params: URLSearchParams) => {
    if (!params.has('post_logout_redirect_uri') || params.has('id_token_hint')) return false;
    params.delete('post_logout_redirect_uri');
    params.delete('state');
    return true;
  };
  const url = request.raw.url ?? '/';
  if (request.method === 'GET' || request.method === 'HEAD') {
    const index = url.indexOf('?');
    if (index === -1) return true;
    const params = new URLSearchParams(url.slice(index + 1));
    if (strip(params)) request.raw.url = `${url.slice(0, index)}?${params}`;
    return true;
  }
  if (
    request.method !== 'POST' ||
    !request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')
  )
    return true;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of request.raw) {
      size += (chunk as Buffer).length;
      if (size > PROVIDER_BODY_LIMIT) return false;
      chunks.push(chunk as Buffer);
    }
  } catch {
    return false;
  }
  const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  strip(params);
  (request.raw as unknown as { body: Buffer }).body = Buffer.from(params.toString());
  return true;
}

async function answerPreflight(
  request: FastifyRequest,
  reply: FastifyReply,
  clients: ClientDirectory,
  methods: string,
) {
  const origin = request.headers.origin;
  const res = reply.raw;
  res.setHeader('Vary', 'Origin');
  if (origin && (await clients.registeredOrigins()).has(origin)) {
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Allow-Methods', methods);
    res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, DPoP');
    res.setHeader('Access-Control-Max-Age', '600');
  }
  reply.code(204).send();
}

/** Sends the 429; false, like every refusal here, for "not let through". */
function refuseLimited(reply: FastifyReply, outcome: LimitOutcome): false {
  setLimitHeaders(reply, outcome);
  return oauthError(
    reply,
    429,
    'too_many_requests',
    `rate limit exceeded; retry after ${outcome.resetSeconds} seconds`,
  );
}

function oauthError(reply: FastifyReply, status: number, error: string, description: string): false {
  reply
    .code(status)
    .header('content-type', 'application/json; charset=utf-8')
    .header('cache-control', 'no-store')
    .send({ error, error_description: description });
  return false;
}
