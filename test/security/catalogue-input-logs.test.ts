// SECURITY-CATALOGUE §1 L (malformed input, IN-1..IN-4) and N (secrets in
// logs and at rest, LO-1, LO-2), black-box against listening servers. Each
// test is named after its row and covers every variant the row lists.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { generateSync } from 'otplib';
import pg from 'pg';
import t, { type Test } from 'tap';
import { testServerUrl } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { Agent, csrfOf, formActionOf, type Step } from '../helpers/sign-in.ts';

const API = 'https://api.example.com';
const APP = 'https://app1.test/cb';
const PASSWORD = 'correct horse battery staple';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Text that must never reach a client: stack frames, file paths, SQL, Prisma and driver errors. */
const LEAK =
  /\bat [\w.<>]+ \(|node_modules|\.ts:\d+|prisma|SELECT |INSERT |UPDATE |\bP\d{4}\b|relation ".*" does not exist|ECONNREFUSED|stack/i;

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: assertions read arbitrary JSON.
  json: any;
}

async function answer(response: Response): Promise<Answer> {
  const text = await response.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** One request; a hang or a dropped connection is an answer too (status 0), after at most 5 s. */
async function send(
  base: string,
  path: string,
  init: { method?: string; type?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  try {
    return await answer(
      await fetch(`${base}${path}`, {
        method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
        headers: { ...(init.type ? { 'content-type': init.type } : {}), ...init.headers },
        body: init.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(5_000),
      }),
    );
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return {
      status: 0,
      headers: new Headers(),
      text: `${(error as Error).message} ${cause ?? ''}`,
      json: undefined,
    };
  }
}

/** A request written byte by byte on a socket: for lying Content-Length headers and TRACE. */
function rawExchange(port: number, head: string, body = '', halfClose = true): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => (received += chunk));
    socket.on('close', () => resolve(received));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNRESET' ? resolve(received) : reject(error),
    );
    socket.write(head + body);
    if (halfClose) socket.end();
  });
}

/** How many of the sockets are still open once they all closed, or `ms` passed. */
async function settled(sockets: Socket[], ms: number): Promise<number> {
  const timer = new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
  await Promise.race([
    Promise.all(sockets.map((socket) => (socket.destroyed ? undefined : once(socket, 'close')))),
    timer,
  ]);
  return sockets.filter((socket) => !socket.destroyed).length;
}

function statusOf(raw: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
}

function portOf(server: TestServer): number {
  return Number(new URL(server.url).port);
}

async function adminTokenFor(server: TestServer): Promise<string> {
  const ops = await server.gatehouse.clients.create(
    { name: 'ops', grants: ['client_credentials'], scope: 'admin', resources: [`${server.issuer}/admin`] },
    { actor: 'test' },
  );
  const reply = await send(server.issuer, '/token', {
    type: 'application/x-www-form-urlencoded',
    headers: { authorization: basic(ops.client.client_id, ops.client_secret!) },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      resource: `${server.issuer}/admin`,
    }).toString(),
  });
  return reply.json.access_token as string;
}

async function loginPage(
  server: TestServer,
  clientId: string,
): Promise<{ agent: Agent; action: string; csrf: string }> {
  const agent = new Agent();
  const url = new URL(`${server.issuer}/auth`);
  for (const [key, value] of Object.entries({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: APP,
    scope: 'openid',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  }))
    url.searchParams.set(key, value);
  const page = await agent.follow(await agent.request(url.toString()), server.issuer);
  return {
    agent,
    action: new URL(formActionOf(page.body), server.issuer).toString(),
    csrf: csrfOf(page.body),
  };
}

function cookieHeader(agent: Agent): string {
  return [...agent.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
}

function noLeak(t: Test, got: { status: number; text: string }, label: string): void {
  t.ok(got.status < 500, `${label}: no 5xx (${got.status})`);
  t.notMatch(got.text, LEAK, `${label}: no stack, SQL or Prisma text`);
}

// ---------------------------------------------------------------- L. malformed input

const server = await startTestServer(t);
const { issuer, gatehouse } = server;
const web = await gatehouse.clients.create(
  { name: 'web', grants: ['authorization_code'], redirect_uris: [APP], scope: 'openid' },
  { actor: 'test' },
);
const svc = await gatehouse.clients.create(
  { name: 'svc', grants: ['client_credentials'], scope: 'api.read', resources: [API], introspection: true },
  { actor: 'test' },
);
const asSvc = basic(svc.client.client_id, svc.client_secret!);
const adminToken = await adminTokenFor(server);
const FORM = 'application/x-www-form-urlencoded';
// The LO rows' server, at trace level, started before any test runs.
const traced = await startTestServer(t, {
  LOG_LEVEL: 'trace',
  GATEHOUSE_RATE_LIMITS: 'token=100000/60s,login=100000/60s,login_ip=100000/60s,admin=100000/60s',
});

/** POSTs under way (IN-1 watches the server sockets they open). */
let postsInFlight = 0;

/**
 * A POST over node:http, on a fresh connection unless an agent is given, so a
 * connection the server leaves hanging cannot stall fetch's shared pool. A
 * hang or a dropped connection is an answer too (status 0), after 5 s.
 */
function post(
  path: string,
  headers: Record<string, string>,
  body: string,
  agent: HttpAgent | false = false,
): Promise<{ status: number; text: string; json: { error?: string } | undefined }> {
  postsInFlight++;
  return new Promise((resolve) => {
    let finished = false;
    const done = (status: number, text: string) => {
      if (finished) return;
      finished = true;
      postsInFlight--;
      let json: { error?: string } | undefined;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({ status, text, json });
    };
    const req = httpRequest(`${issuer}${path}`, { method: 'POST', headers, agent, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => {
        // A fresh connection is ours to end: the server may have stopped reading the body.
        if (agent === false) req.destroy();
        done(res.statusCode ?? 0, text);
      });
      res.on('error', (error) => done(0, error.message));
    });
    req.on('timeout', () => {
      req.destroy();
      done(0, 'no answer within 5 s');
    });
    req.on('error', (error) => done(0, error.message));
    req.end(body);
  });
}

t.test('IN-1 oversized, short and slow bodies', async (t) => {
  const megabyteForm = `grant_type=client_credentials&padding=${'a'.repeat(1024 * 1024)}`;
  // Every server-side socket opened for this row's POSTs: each must close once its client is gone.
  const sockets: Socket[] = [];
  const track = (socket: Socket) => {
    if (postsInFlight > 0) sockets.push(socket);
  };
  server.app.server.on('connection', track);
  t.teardown(() => {
    server.app.server.off('connection', track);
    for (const socket of sockets) socket.destroy();
  });
  // Provider routes: the 56 KiB cap, every read error collapsed to 400 invalid_request.
  for (const path of ['/token', '/token/introspection', '/token/revocation']) {
    for (const [label, headers] of [
      ['with Basic', { 'content-type': FORM, authorization: asSvc }],
      ['client in the body', { 'content-type': FORM }],
    ] as const) {
      const got = await post(
        path,
        headers,
        label === 'with Basic' ? megabyteForm : `client_id=${svc.client.client_id}&${megabyteForm}`,
      );
      t.equal(got.status, 400, `1 MB form to ${path} (${label}): 400`);
      t.equal(got.json?.error, 'invalid_request', `1 MB form to ${path} (${label}): invalid_request`);
      noLeak(t, got, `1 MB form to ${path}`);
    }
  }
  // Several in a row on one keep-alive connection, as HTTP clients send them: each is answered.
  const agents: HttpAgent[] = [];
  t.teardown(() => {
    for (const agent of agents) agent.destroy();
  });
  for (const [label, headers] of [
    ['client in the body', { 'content-type': FORM }],
    ['with Basic', { 'content-type': FORM, authorization: asSvc }],
  ] as const) {
    const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    agents.push(keepAlive);
    for (let i = 0; i < 3; i++) {
      const got = await post(
        '/token',
        headers,
        label === 'with Basic' ? megabyteForm : `client_id=${svc.client.client_id}&${megabyteForm}`,
        keepAlive,
      );
      t.equal(
        got.status,
        400,
        `1 MB form to /token (${label}), ${i + 1} in a row on one connection: 400 (${got.text.slice(0, 40)})`,
      );
    }
  }
  const justOver = await post(
    '/token',
    { 'content-type': FORM, authorization: asSvc },
    `grant_type=client_credentials&padding=${'a'.repeat(57 * 1024)}`,
  );
  t.equal(justOver.status, 400, 'just over 56 KiB: 400');
  const justUnder = await post(
    '/token',
    { 'content-type': FORM, authorization: asSvc },
    `grant_type=client_credentials&padding=${'a'.repeat(40 * 1024)}`,
  );
  t.equal(justUnder.status, 200, 'control: 40 KiB is read');

  // Fastify routes: bodyLimit, 413.
  const login = await loginPage(server, web.client.client_id);
  const bigLogin = await post(
    new URL(login.action).pathname,
    { 'content-type': FORM, cookie: cookieHeader(login.agent) },
    `csrf=${login.csrf}&username=a%40example.com&password=${'p'.repeat(1024 * 1024)}`,
  );
  t.equal(bigLogin.status, 413, '1 MB form to the login page: 413');
  noLeak(t, bigLogin, 'login 1 MB');
  const bigAdmin = await post(
    '/admin/users',
    { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    JSON.stringify({ email: 'big@example.com', password: PASSWORD, name: 'x'.repeat(2 * 1024 * 1024) }),
  );
  t.equal(bigAdmin.status, 413, '2 MB JSON to /admin/users: 413');
  t.equal(bigAdmin.json?.error, 'payload_too_large');
  noLeak(t, bigAdmin, 'admin 2 MB');
  const anonymousBig = await post(
    '/admin/users',
    { 'content-type': 'application/json' },
    JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
  );
  t.equal(anonymousBig.status, 401, '2 MB JSON without a token: 401 before the body is read');
  for (const agent of agents) agent.destroy();
  // No connection is left open once its client has gone (a refused body must not pin a socket).
  const open = await settled(sockets, 3_000);
  t.equal(open, 0, `server sockets still open 3 s after their clients left: ${open}`);

  // Content-Length larger than the body: the request never completes, so it is never processed.
  const port = portOf(server);
  for (const [path, body, extra] of [
    ['/token', 'grant_type', `Authorization: ${asSvc}\r\n`],
    [new URL(login.action).pathname, 'csrf=x&u=', ''],
    ['/admin/users', '{"email":"', `Authorization: Bearer ${adminToken}\r\n`],
  ] as const) {
    const type = path === '/admin/users' ? 'application/json' : FORM;
    const reply = await rawExchange(
      port,
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\n${extra}Content-Length: 100\r\nConnection: close\r\n\r\n`,
      body,
    );
    const status = statusOf(reply);
    t.ok(
      status === 0 || status === 400,
      `Content-Length 100 with ${body.length} bytes to ${path}: ${status || 'closed, nothing processed'}`,
    );
    // Content-Length smaller than what follows: the rest is a malformed next request.
    const overrun = await rawExchange(
      port,
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\n${extra}Content-Length: 3\r\n\r\n`,
      `${body}&more=garbage-that-is-no-request\r\n\r\n`,
    );
    const statuses = [...overrun.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => Number(match[1]));
    t.ok(
      statuses.length > 0 && statuses.every((code) => code >= 400 && code < 500),
      `Content-Length 3 with more bytes to ${path}: ${statuses.join(',')}`,
    );
    t.notMatch(overrun, LEAK, `${path}: nothing leaks`);
  }

  // Slow clients: the listener cuts off a request that has not arrived in full within 30 s.
  const listener = server.app.server;
  t.ok(
    listener.requestTimeout > 0 && listener.requestTimeout <= 60_000,
    `requestTimeout ${listener.requestTimeout} ms`,
  );
  t.ok(
    listener.headersTimeout > 0 && listener.headersTimeout <= 60_000,
    `headersTimeout ${listener.headersTimeout} ms`,
  );

  // Memory stays flat under repeated oversized bodies.
  const before = process.memoryUsage().rss;
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      i % 2
        ? post('/token', { 'content-type': FORM, authorization: asSvc }, megabyteForm)
        : post(
            '/admin/users',
            { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
            JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
          ),
    ),
  );
  const grown = (process.memoryUsage().rss - before) / 1024 / 1024;
  t.ok(grown < 256, `RSS grew ${grown.toFixed(1)} MB for 30 MB of refused bodies`);
  t.equal((await send(issuer, '/healthz')).status, 200, 'the server still answers');
});

t.test('IN-2 malformed JSON, wrong media types, prototype pollution and duplicate parameters', async (t) => {
  const admin = (body: string, type = 'application/json') =>
    send(issuer, '/admin/users', { type, headers: { authorization: `Bearer ${adminToken}` }, body });
  const login = await loginPage(server, web.client.client_id);
  const loginPath = new URL(login.action).pathname;
  const toLogin = (body: string, type: string) =>
    send(issuer, loginPath, { type, headers: { cookie: cookieHeader(login.agent) }, body });

  const truncatedAdmin = await admin('{"a":');
  t.equal(truncatedAdmin.status, 400, 'truncated JSON to the admin API: 400');
  noLeak(t, truncatedAdmin, 'truncated JSON (admin)');
  const truncatedLogin = await toLogin('{"a":', 'application/json');
  t.equal(truncatedLogin.status, 400, 'truncated JSON to the login page: 400');
  noLeak(t, truncatedLogin, 'truncated JSON (login)');
  for (const path of ['/token', '/token/introspection', '/token/revocation']) {
    const json = await send(issuer, path, {
      type: 'application/json',
      headers: { authorization: asSvc },
      body: '{"grant_type":"client_credentials","token":"x"}',
    });
    t.equal(json.status, 400, `application/json to ${path}: 400`);
    t.equal(json.json?.error, 'invalid_request', `application/json to ${path}: invalid_request`);
  }
  for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x']) {
    const got = await admin('email=a@example.com', type);
    t.equal(got.status, 415, `${type} to the admin API: 415`);
    const page = await toLogin('username=a', type);
    t.ok(
      page.status === 415 || page.status === 400,
      `${type} to the login page: 400 or 415 (${page.status})`,
    );
    noLeak(t, page, `${type} to the login page`);
  }
  const usersBefore = await gatehouse.db.user.count();
  for (const body of [
    '{"__proto__":{"isAdmin":true},"email":"proto@example.com","password":"correct horse battery staple"}',
    '{"constructor":{"prototype":{"isAdmin":true}},"email":"ctor@example.com","password":"correct horse battery staple"}',
  ]) {
    const got = await admin(body);
    t.equal(got.status, 400, `${body.slice(0, 30)}… to the admin API: 400`);
    const page = await toLogin(body.replace('"email"', '"username"'), 'application/json');
    t.equal(page.status, 400, `${body.slice(0, 30)}… to the login page: 400`);
  }
  t.equal(await gatehouse.db.user.count(), usersBefore, 'nothing was created');
  t.equal(({} as Record<string, unknown>).isAdmin, undefined, 'no property appeared on other objects');
  t.equal(Object.hasOwn(Object.prototype, 'isAdmin'), false);

  // Duplicated OAuth parameters (RFC 6749 §3.1).
  const dupes: Array<[string, string]> = [
    ['/token', 'grant_type=client_credentials&scope=api.read&scope=admin'],
    ['/token', 'grant_type=client_credentials&grant_type=client_credentials'],
    ['/token/introspection', 'token=a&token=b'],
    ['/token/revocation', 'token=a&token=b'],
  ];
  for (const [path, body] of dupes) {
    const got = await send(issuer, path, { type: FORM, headers: { authorization: asSvc }, body });
    t.equal(got.status, 400, `${path} ${body}: 400`);
    t.equal(got.json?.error, 'invalid_request', `${path} ${body}: invalid_request`);
  }
  const auth = await new Agent().request(
    `${issuer}/auth?client_id=${web.client.client_id}&response_type=code&redirect_uri=${encodeURIComponent(APP)}&scope=openid&scope=admin&state=S&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256`,
  );
  const error = auth.location
    ? new URL(auth.location).searchParams.get('error')
    : /invalid_request/.exec(auth.body)?.[0];
  t.equal(error, 'invalid_request', `/auth with scope twice: invalid_request (${auth.status})`);
  t.notOk(auth.location && new URL(auth.location).searchParams.get('code'), 'no code');
  const twice = await toLogin(
    `csrf=${login.csrf}&username=a%40example.com&username=b%40example.com&password=x`,
    FORM,
  );
  t.equal(twice.status, 400, 'a login form with username twice: 400');
});

t.test('IN-3 unexpected HTTP methods get 404 or 405; TRACE never echoes', async (t) => {
  const port = portOf(server);
  const marker = `marker-${randomBytes(8).toString('hex')}`;
  for (const path of ['/', '/token', '/auth', '/me', '/interaction/x', '/admin/keys']) {
    const reply = await rawExchange(
      port,
      `TRACE ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Marker: ${marker}\r\nCookie: secret=${marker}\r\nConnection: close\r\n\r\n`,
      '',
      false,
    );
    const status = statusOf(reply);
    // The admin API answers 401 to anything without an admin token, before routing.
    const allowed = path.startsWith('/admin') ? [401, 404, 405] : [400, 404, 405];
    t.ok(allowed.includes(status), `TRACE ${path}: ${status}`);
    t.notOk(reply.includes(marker), `TRACE ${path}: the request is not echoed`);
    t.notMatch(reply, /message\/http/i, `TRACE ${path}: no message/http body`);
  }
  const cases: Array<[string, string]> = [
    ['PUT', '/token'],
    ['DELETE', '/token'],
    ['PATCH', '/token'],
    ['DELETE', '/auth'],
    ['PUT', '/auth'],
    ['PATCH', '/auth'],
    ['POST', '/jwks'],
    ['PUT', '/jwks'],
    ['DELETE', '/jwks'],
    ['PATCH', '/me'],
    ['PUT', '/me'],
    ['DELETE', '/me'],
    ['PUT', '/token/introspection'],
    ['DELETE', '/token/revocation'],
    ['POST', '/.well-known/openid-configuration'],
    ['DELETE', '/.well-known/openid-configuration'],
    ['PUT', '/session/end'],
    ['GET', '/token/introspection'],
    ['GET', '/token/revocation'],
  ];
  for (const [method, path] of cases) {
    const got = await send(issuer, path, {
      method,
      type: FORM,
      headers: { authorization: asSvc },
      ...(method === 'GET' ? {} : { body: 'grant_type=client_credentials&token=x' }),
    });
    t.ok(got.status === 404 || got.status === 405, `${method} ${path}: ${got.status}`);
    noLeak(t, got, `${method} ${path}`);
    t.notOk(got.json?.access_token, `${method} ${path}: no token`);
  }
});

t.test('IN-4 errors leak nothing: validation errors and a broken database', async (t) => {
  // Validation errors: a clear 4xx, no internals.
  for (const [label, got] of [
    [
      'admin validation',
      await send(issuer, '/admin/users', {
        type: 'application/json',
        headers: { authorization: `Bearer ${adminToken}` },
        body: '{"email":5}',
      }),
    ],
    [
      'token validation',
      await send(issuer, '/token', {
        type: FORM,
        headers: { authorization: asSvc },
        body: 'grant_type=nope',
      }),
    ],
    ['auth validation', await send(issuer, `/auth?client_id=${web.client.client_id}&response_type=code`)],
  ] as const) {
    t.ok(got.status >= 400 && got.status < 500, `${label}: ${got.status}`);
    noLeak(t, got, label);
  }

  // A server whose database breaks under it.
  const broken = await startTestServer(t);
  const client = await broken.gatehouse.clients.create(
    { name: 'svc', grants: ['client_credentials'], resources: [API] },
    { actor: 'test' },
  );
  const webClient = await broken.gatehouse.clients.create(
    { name: 'web', grants: ['authorization_code'], redirect_uris: [APP], scope: 'openid' },
    { actor: 'test' },
  );
  await broken.gatehouse.users.create({ email: 'in4@example.com', password: PASSWORD }, { actor: 'test' });
  const brokenAdmin = await adminTokenFor(broken);
  const asClient = basic(client.client.client_id, client.client_secret!);
  const login = await loginPage(broken, webClient.client.client_id);

  async function probe(label: string): Promise<void> {
    const calls: Array<[string, Answer]> = [
      [
        'POST /token',
        await send(broken.issuer, '/token', {
          type: FORM,
          headers: { authorization: asClient },
          body: 'grant_type=client_credentials',
        }),
      ],
      [
        'GET /me',
        await send(broken.issuer, '/me', {
          headers: { authorization: `Bearer ${randomBytes(32).toString('base64url')}` },
        }),
      ],
      [
        'POST /token/introspection',
        await send(broken.issuer, '/token/introspection', {
          type: FORM,
          headers: { authorization: asClient },
          body: 'token=x',
        }),
      ],
      [
        'GET /auth',
        await send(
          broken.issuer,
          `/auth?client_id=${webClient.client.client_id}&response_type=code&redirect_uri=${encodeURIComponent(APP)}&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256`,
        ),
      ],
      [
        'POST login',
        await send(broken.issuer, new URL(login.action).pathname, {
          type: FORM,
          headers: { cookie: cookieHeader(login.agent) },
          body: new URLSearchParams({
            csrf: login.csrf,
            username: 'in4@example.com',
            password: PASSWORD,
          }).toString(),
        }),
      ],
      [
        'GET /admin/users',
        await send(broken.issuer, '/admin/users', { headers: { authorization: `Bearer ${brokenAdmin}` } }),
      ],
    ];
    for (const [name, got] of calls) {
      // A server-side failure is reported as one (5xx), never as the caller's fault (expired, bad token).
      t.ok(got.status >= 500, `${label}, ${name}: a server error (${got.status})`);
      t.notMatch(got.text, LEAK, `${label}, ${name}: no stack, SQL, Prisma or driver text`);
      t.notMatch(got.text, /oidc_artifacts|clients|users/i, `${label}, ${name}: no table names`);
      if (got.json) {
        t.ok(
          ['server_error', 'temporarily_unavailable'].includes(got.json.error),
          `${label}, ${name}: error ${got.json.error}`,
        );
        t.same(
          Object.keys(got.json).filter(
            (key) => !['error', 'error_description', 'message', 'request_id'].includes(key),
          ),
          [],
          `${label}, ${name}: nothing but the error (and a correlation id)`,
        );
      } else {
        t.match(got.headers.get('content-type') ?? '', /text\/html/, `${label}, ${name}: an error page`);
      }
    }
  }

  // Missing tables: every query fails with a Prisma "table does not exist" error.
  const tables = ['clients', 'users', 'oidc_artifacts', 'signing_keys'];
  for (const table of tables)
    await broken.gatehouse.db.$executeRawUnsafe(`ALTER TABLE "${table}" RENAME TO "${table}_away"`);
  try {
    await probe('tables missing');
  } finally {
    for (const table of tables)
      await broken.gatehouse.db.$executeRawUnsafe(`ALTER TABLE "${table}_away" RENAME TO "${table}"`);
  }
  t.equal(
    (
      await send(broken.issuer, '/token', {
        type: FORM,
        headers: { authorization: asClient },
        body: 'grant_type=client_credentials',
      })
    ).status,
    200,
    'restored',
  );

  // The database down (needs a PostgreSQL server to switch off: TEST_DATABASE_URL).
  const serverUrl = testServerUrl();
  if (serverUrl) {
    const name = (
      await broken.gatehouse.db.$queryRaw<{ name: string }[]>`SELECT current_database() AS name`
    )[0]!.name;
    const adminDb = new pg.Client({ connectionString: serverUrl });
    await adminDb.connect();
    try {
      await adminDb.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
      await adminDb.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [
        name,
      ]);
      const ready = await send(broken.issuer, '/readyz');
      t.equal(ready.status, 503, 'readiness says the database is down');
      noLeak(t, { status: 200, text: ready.text }, 'readyz');
      // The client was used a moment ago and is in the 2 s client cache, from
      // which a JWT can be issued without the database: forget it, so the
      // token request must read the database, which is down.
      broken.gatehouse.clientDirectory.forget(client.client.client_id);
      await probe('database down');
    } finally {
      await adminDb.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
      await adminDb.end();
    }
  }
  const errors = broken.logs.filter((line) => line.includes('"level":50'));
  t.ok(errors.length > 0, 'the failures are logged server-side (where the details belong)');
});

// ---------------------------------------------------------------- N. secrets in logs and at rest

/** Everything secret the LO flow handles, by kind. */
const secrets = new Map<string, string>();
const totpCodes = new Set<string>();
const interactionUids = new Set<string>();
function remember(kind: string, value: string | undefined | null): void {
  if (typeof value === 'string' && value.length >= 8) secrets.set(value, kind);
}

/** An Agent that remembers every cookie value the server set. */
class RecordingAgent extends Agent {
  override async request(
    url: string,
    init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
  ): Promise<Step> {
    const step = await super.request(url, init);
    for (const line of step.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const name = pair.slice(0, pair.indexOf('='));
      const value = pair.slice(pair.indexOf('=') + 1);
      if (!value) continue;
      // _interaction and _interaction_resume carry the interaction uid, which is also
      // in every /interaction/:uid URL: not a secret without its signature cookie.
      if (name === '_interaction' || name === '_interaction_resume') interactionUids.add(value);
      else remember(`cookie ${name}`, value);
    }
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (cookie) remember('Cookie header', cookie);
    return step;
  }
}

/** A fetch that records the Authorization header and every token in the answer. */
async function recorded(path: string, form: Record<string, string>, authorization?: string): Promise<Answer> {
  if (authorization) remember('Authorization header', authorization);
  const got = await send(traced.issuer, path, {
    type: FORM,
    body: new URLSearchParams(form).toString(),
    ...(authorization ? { headers: { authorization } } : {}),
  });
  for (const key of ['access_token', 'refresh_token', 'id_token']) remember(key, got.json?.[key]);
  return got;
}

async function browserSignIn(
  clientId: string,
  email: string,
  password: string,
  second?: () => string,
  scope = 'openid profile offline_access',
): Promise<{ code: string; verifier: string }> {
  const agent = new RecordingAgent();
  const verifier = oidc.randomPKCECodeVerifier();
  remember('code_verifier', verifier);
  const url = new URL(`${traced.issuer}/auth`);
  for (const [key, value] of Object.entries({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: APP,
    scope,
    prompt: 'consent',
    state: oidc.randomState(),
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }))
    url.searchParams.set(key, value);
  let step = await agent.follow(await agent.request(url.toString()), traced.issuer);
  for (let pages = 0; pages < 5 && step.status === 200; pages++) {
    const action = new URL(formActionOf(step.body), traced.issuer).toString();
    remember('csrf token', csrfOf(step.body));
    if (action.endsWith('/login')) {
      step = await agent.request(action, { form: { csrf: csrfOf(step.body), username: email, password } });
    } else if (action.endsWith('/mfa')) {
      const code = second!();
      step = await agent.request(action, { form: { csrf: csrfOf(step.body), code } });
    } else {
      step = await agent.request(action, { form: { csrf: csrfOf(step.body) } });
    }
    step = await agent.follow(step, traced.issuer);
  }
  const code = new URL(step.location!).searchParams.get('code');
  if (!code) throw new Error(`no code: ${step.status} ${step.location}`);
  remember('authorization code', code);
  return { code, verifier };
}

let flowDone: Promise<void> | undefined;
/** The LO flow, run once for both rows. */
function runFlow(t: Test): Promise<void> {
  flowDone ??= (async () => {
    const g = traced.gatehouse;
    const userPassword = `first user passphrase ${randomBytes(6).toString('hex')}`;
    const mfaPassword = `second user passphrase ${randomBytes(6).toString('hex')}`;
    const wrongPassword = `wrong passphrase attempt ${randomBytes(6).toString('hex')}`;
    remember('password', userPassword);
    remember('password', mfaPassword);
    remember('password', wrongPassword);
    await g.users.create({ email: 'lo-user@example.com', password: userPassword }, { actor: 'test' });
    await g.users.create({ email: 'lo-mfa@example.com', password: mfaPassword }, { actor: 'test' });
    const enrolment = await g.mfa.enrollForOperator('lo-mfa@example.com', { actor: 'test' });
    remember('TOTP secret', enrolment.secret);
    for (const code of enrolment.recoveryCodes) remember('recovery code', code);
    remember('otpauth URL', enrolment.otpauthUrl);

    const webClient = await g.clients.create(
      {
        name: 'lo-web',
        grants: ['authorization_code', 'refresh_token'],
        redirect_uris: [APP],
        scope: 'openid profile offline_access',
      },
      { actor: 'test' },
    );
    const rs = await g.clients.create(
      { name: 'lo-rs', grants: ['client_credentials'], resources: [API], introspection: true },
      { actor: 'test' },
    );
    const service = await g.clients.create(
      { name: 'lo-svc', grants: ['client_credentials'], scope: 'api.read', resources: [API] },
      { actor: 'test' },
    );
    const keys = await generateKeyPair('ES256', { extractable: true });
    const keyed = await g.clients.create(
      {
        name: 'lo-keyed',
        grants: ['client_credentials'],
        auth_method: 'private_key_jwt',
        jwks: { keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'lo-key', alg: 'ES256' }] },
        scope: 'api.read',
        resources: [API],
      },
      { actor: 'test' },
    );
    for (const secret of [webClient.client_secret, rs.client_secret, service.client_secret])
      remember('client secret', secret);
    const asWeb = basic(webClient.client.client_id, webClient.client_secret!);
    const asRs = basic(rs.client.client_id, rs.client_secret!);

    // Password sign-in, consent, code exchange, refresh, introspection, revocation.
    const first = await browserSignIn(webClient.client.client_id, 'lo-user@example.com', userPassword);
    const tokens = await recorded(
      '/token',
      {
        grant_type: 'authorization_code',
        code: first.code,
        redirect_uri: APP,
        code_verifier: first.verifier,
      },
      asWeb,
    );
    t.equal(tokens.status, 200, 'code exchange');
    const userinfo = await fetch(`${traced.issuer}/me`, {
      headers: { authorization: `Bearer ${tokens.json.access_token}` },
    });
    remember('Authorization header', `Bearer ${tokens.json.access_token}`);
    t.equal(userinfo.status, 200, 'userinfo');
    const refreshed = await recorded(
      '/token',
      { grant_type: 'refresh_token', refresh_token: tokens.json.refresh_token },
      asWeb,
    );
    t.equal(refreshed.status, 200, 'refresh');
    const introspected = await recorded('/token/introspection', { token: refreshed.json.access_token }, asRs);
    t.equal(introspected.json?.active, true, 'introspection');
    await recorded('/token/introspection', { token: refreshed.json.refresh_token }, asRs);
    const revoked = await recorded(
      '/token/revocation',
      { token: refreshed.json.refresh_token, token_type_hint: 'refresh_token' },
      asWeb,
    );
    t.equal(revoked.status, 200, 'revocation');
    // Client credentials with a secret, in the header and in the body.
    t.equal(
      (
        await recorded(
          '/token',
          { grant_type: 'client_credentials' },
          basic(service.client.client_id, service.client_secret!),
        )
      ).status,
      200,
    );
    t.equal(
      (
        await recorded('/token', {
          grant_type: 'client_credentials',
          client_id: service.client.client_id,
          client_secret: service.client_secret!,
        })
      ).status,
      200,
      'client credentials (client_secret_post)',
    );
    // A private_key_jwt assertion.
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'lo-key' })
      .setIssuer(keyed.client.client_id)
      .setSubject(keyed.client.client_id)
      .setAudience(traced.issuer)
      .setJti(randomBytes(16).toString('base64url'))
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(keys.privateKey);
    remember('client assertion', assertion);
    const asserted = await recorded('/token', {
      grant_type: 'client_credentials',
      client_id: keyed.client.client_id,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: assertion,
    });
    t.equal(asserted.status, 200, 'private_key_jwt');
    // A wrong password, a wrong client secret, a forged token.
    await t.rejects(
      browserSignIn(webClient.client.client_id, 'lo-user@example.com', wrongPassword),
      'wrong password refused',
    );
    const wrongSecret = `not-the-secret-${randomBytes(8).toString('hex')}`;
    t.equal(
      (
        await recorded(
          '/token',
          { grant_type: 'client_credentials' },
          basic(service.client.client_id, wrongSecret),
        )
      ).status,
      401,
    );
    remember('wrong client secret', wrongSecret);
    // A username that tries to forge log lines.
    await t.rejects(
      browserSignIn(
        webClient.client.client_id,
        'evil\n{"level":60,"msg":"forged"}\u001b[31m@example.com',
        wrongPassword,
      ),
      'hostile username refused',
    );
    // TOTP sign-in, then a recovery code.
    const step = Math.floor(Date.now() / 1000 / 30);
    const mfa = await browserSignIn(webClient.client.client_id, 'lo-mfa@example.com', mfaPassword, () => {
      const code = generateSync({ secret: enrolment.secret, epoch: step * 30 });
      totpCodes.add(code);
      return code;
    });
    const mfaTokens = await recorded(
      '/token',
      { grant_type: 'authorization_code', code: mfa.code, redirect_uri: APP, code_verifier: mfa.verifier },
      asWeb,
    );
    t.equal(mfaTokens.status, 200, 'TOTP sign-in');
    const recovery = await browserSignIn(
      webClient.client.client_id,
      'lo-mfa@example.com',
      mfaPassword,
      () => enrolment.recoveryCodes[0]!,
    );
    t.ok(recovery.code, 'recovery-code sign-in');
    await recorded(
      '/token',
      {
        grant_type: 'authorization_code',
        code: recovery.code,
        redirect_uri: APP,
        code_verifier: recovery.verifier,
      },
      asWeb,
    );
  })();
  return flowDone;
}

/** Where each secret appears in `text`: a list of kinds (empty when clean). */
function hits(text: string, extra: Map<string, string> = new Map()): string[] {
  const found: string[] = [];
  for (const [value, kind] of [...secrets, ...extra]) {
    if (text.includes(value) || text.includes(encodeURIComponent(value)))
      found.push(`${kind} (${value.slice(0, 12)}…)`);
  }
  for (const code of totpCodes) {
    if (new RegExp(`(?<![0-9.])${code}(?![0-9])`).test(text)) found.push(`TOTP code ${code}`);
  }
  return found;
}

t.test('LO-1 secrets are never logged, at trace level', async (t) => {
  await runFlow(t);
  t.ok(secrets.size > 20, `${secrets.size} secret values to look for`);
  const logs = traced.logs.join('');
  t.ok(traced.logs.length > 50, `${traced.logs.length} log lines at trace level`);
  t.equal(traced.app.log.level, 'trace', 'the server logs at trace level');
  const hashes = await traced.gatehouse.db.user.findMany({ select: { passwordHash: true } });
  const extra = new Map(hashes.map((row) => [row.passwordHash!, 'argon2 hash']));
  t.same(hits(logs, extra), [], 'no secret appears in the logs');
  t.notMatch(logs, /"d":"/, 'no private JWK member');
  t.notMatch(logs, /\$argon2id\$/, 'no argon2 hash');
  for (const line of logs.split('\n').filter(Boolean)) {
    let parsed = true;
    try {
      JSON.parse(line);
    } catch {
      parsed = false;
    }
    if (!parsed) t.fail(`a log line is not one JSON document: ${line.slice(0, 120)}`);
  }
  t.notOk(logs.includes('\u001b'), 'no raw ANSI escape in the logs');
  t.notMatch(logs, /^\{"level":60,"msg":"forged"/m, 'a username cannot forge a log line');
});

t.test('LO-2 secrets at rest: nothing usable in a database dump', async (t) => {
  await runFlow(t);
  const db = traced.gatehouse.db;
  const columns = await db.$queryRaw<{ table_name: string; column_name: string }[]>`
    SELECT table_name::text, column_name::text FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name NOT LIKE '\\_prisma%'
      AND data_type IN ('text', 'character varying', 'character', 'jsonb', 'json', 'ARRAY', 'USER-DEFINED', 'bytea')
    ORDER BY table_name, column_name`;
  t.ok(columns.length > 20, `${columns.length} text, JSON and array columns`);
  const dump: string[] = [];
  for (const { table_name: table, column_name: column } of columns) {
    const rows = await db.$queryRawUnsafe<{ value: string | null }[]>(
      `SELECT "${column}"::text AS value FROM "${table}"`,
    );
    const text = rows.map((row) => row.value ?? '').join('\n');
    dump.push(text);
    t.same(hits(text), [], `${table}.${column}: no secret`);
  }
  const whole = dump.join('\n');
  t.ok(whole.includes('lo-user@example.com'), 'control: the dump does hold the data (emails)');
  const keys = await db.signingKey.findMany();
  t.ok(keys.length > 0, 'signing keys are stored');
  for (const key of keys) {
    t.notMatch(key.privateJwk, /"d"\s*:/, `signing key ${key.kid}: the private JWK is ciphertext`);
    t.notMatch(
      JSON.stringify(key.publicJwk),
      /"d"\s*:/,
      `signing key ${key.kid}: the public JWK has no private member`,
    );
  }
  for (const user of await db.user.findMany()) {
    if (user.passwordHash) t.match(user.passwordHash, /^\$argon2id\$/, `${user.email}: argon2id hash`);
  }
  const artifacts = await db.oidcArtifact.findMany({
    where: { kind: { in: ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'Session', 'Interaction'] } },
  });
  t.ok(artifacts.length > 0, 'tokens and sessions are stored');
  for (const row of artifacts) {
    t.notOk('jti' in (row.payload as object), `${row.kind}: the payload holds no jti`);
    t.match(row.id, /^[0-9a-f]{64}$|^[A-Za-z0-9_-]{43}$/, `${row.kind}: the row id is a digest`);
  }
  const uids = [...interactionUids];
  t.ok(uids.length > 0, 'interaction uids were seen');
  t.notOk(
    artifacts.some((row) => uids.includes(row.id)),
    'an interaction uid (cookie value) is never a row id',
  );
});
