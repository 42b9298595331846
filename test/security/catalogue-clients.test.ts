// SECURITY-CATALOGUE §1 G (client authentication, CA-*), H (userinfo and
// introspection with forged or misplaced tokens, UI-*) and I (scope
// escalation and client credentials, SC-*), black-box against a listening
// server. Each test is named after its row and covers every variant the row
// lists; every refusal is paired with a control that succeeds, so the test
// fails if the protection it covers were removed.
import { createHmac, randomBytes } from 'node:crypto';
import {
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import * as oidc from 'openid-client';
import t, { type Test } from 'tap';
import { sha256 } from '../../src/lib/tokens.ts';
import { startTestServer } from '../helpers/server.ts';
import { Agent, csrfOf, discover, exchange, formActionOf, signIn } from '../helpers/sign-in.ts';

const API = 'https://api.example.com';
const APP1 = 'https://app1.test/cb';
const APP2 = 'https://app2.test/cb';
const SPA = 'http://127.0.0.1:8080/cb';
const PASSWORD = 'correct horse battery staple';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Text that must never reach a client: stack frames, SQL, Prisma. */
const LEAK = /\bat .+\(|node_modules|prisma|SELECT |INSERT |\bP20\d\d\b/i;

// ---------------------------------------------------------------- helpers

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const b64json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A JWT with `alg: none` and an empty signature, built by hand (jose refuses to). */
function unsignedJwt(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${b64json({ ...header, alg: 'none' })}.${b64json(payload)}.`;
}

/** An HS256 JWT keyed with arbitrary bytes (here: someone's public key). */
function hs256Jwt(header: Record<string, unknown>, payload: Record<string, unknown>, key: string): string {
  const input = `${b64json({ ...header, alg: 'HS256' })}.${b64json(payload)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

/** The same JWT with its payload swapped, the original signature kept. */
function withPayload(jwt: string, payload: Record<string, unknown>): string {
  const [header, , signature] = jwt.split('.');
  return `${header}.${b64json(payload)}.${signature}`;
}

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

const server = await startTestServer(t);
const { issuer, gatehouse } = server;
const ADMIN = `${issuer}/admin`;

async function post(
  path: string,
  form: Record<string, string> | string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return answer(
    await fetch(`${issuer}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: typeof form === 'string' ? form : new URLSearchParams(form),
    }),
  );
}

const bearerAt = async (path: string, token: string) =>
  answer(await fetch(`${issuer}${path}`, { headers: { authorization: `Bearer ${token}` } }));

// ---------------------------------------------------------------- fixtures (catalogue §1 "Fixtures")

const bob = await gatehouse.users.create(
  { email: 'bob@example.com', name: 'Bob', password: PASSWORD },
  { actor: 'test' },
);
const web1 = await gatehouse.clients.create(
  {
    name: 'web1',
    grants: ['authorization_code', 'refresh_token'],
    redirect_uris: [APP1],
    scope: 'openid profile email offline_access api.read',
    resources: [API],
  },
  { actor: 'test' },
);
const web2 = await gatehouse.clients.create(
  { name: 'web2', grants: ['authorization_code'], redirect_uris: [APP2], scope: 'openid' },
  { actor: 'test' },
);
const spa1 = await gatehouse.clients.create(
  { name: 'spa1', grants: ['authorization_code'], redirect_uris: [SPA], public: true },
  { actor: 'test' },
);
const svc2 = await gatehouse.clients.create(
  { name: 'svc2', grants: ['client_credentials'], scope: 'api.read', resources: [API] },
  { actor: 'test' },
);
const rs1 = await gatehouse.clients.create(
  { name: 'rs1', grants: ['client_credentials'], resources: [API], introspection: true },
  { actor: 'test' },
);
const ops = await gatehouse.clients.create(
  { name: 'ops', grants: ['client_credentials'], scope: 'admin', resources: [ADMIN] },
  { actor: 'test' },
);

// svc1: private_key_jwt RS256 with an inline public JWKS; svc3: another such client.
const svc1Keys = await generateKeyPair('RS256', { extractable: true });
const svc1Public = { ...(await exportJWK(svc1Keys.publicKey)), kid: 'svc1-key', alg: 'RS256', use: 'sig' };
const svc1 = await gatehouse.clients.create(
  {
    name: 'svc1',
    grants: ['client_credentials'],
    auth_method: 'private_key_jwt',
    jwks: { keys: [svc1Public] },
    scope: 'api.read',
    resources: [API],
  },
  { actor: 'test' },
);
const svc3Keys = await generateKeyPair('RS256', { extractable: true });
const svc3Public = { ...(await exportJWK(svc3Keys.publicKey)), kid: 'svc3-key', alg: 'RS256', use: 'sig' };
const svc3 = await gatehouse.clients.create(
  {
    name: 'svc3',
    grants: ['client_credentials'],
    auth_method: 'private_key_jwt',
    jwks: { keys: [svc3Public] },
    scope: 'api.read',
    resources: [API],
  },
  { actor: 'test' },
);
const attacker = await generateKeyPair('RS256', { extractable: true });
const attackerPublic = { ...(await exportJWK(attacker.publicKey)), alg: 'RS256', use: 'sig' };

const W1 = web1.client.client_id;
const S1 = web1.client_secret!;
const SVC1 = svc1.client.client_id;
const SVC2 = svc2.client.client_id;
const SVC3 = svc3.client.client_id;
const asWeb1 = basic(W1, S1);
const asSvc2 = basic(SVC2, svc2.client_secret!);
const asRs1 = basic(rs1.client.client_id, rs1.client_secret!);

function assertionClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: SVC1,
    sub: SVC1,
    aud: issuer,
    jti: randomBytes(16).toString('base64url'),
    iat: now,
    exp: now + 60,
    ...overrides,
  };
  for (const [key, value] of Object.entries(claims)) if (value === undefined) delete claims[key];
  return claims;
}

async function signAssertion(
  claims: Record<string, unknown>,
  key: CryptoKey = svc1Keys.privateKey,
  header: Record<string, unknown> = { alg: 'RS256', kid: 'svc1-key' },
): Promise<string> {
  return new SignJWT(claims as JWTPayload).setProtectedHeader(header as { alg: string }).sign(key);
}

/** client_credentials with a client assertion; `clientId: null` sends no client_id (the assertion's sub names the client). */
function ccWithAssertion(assertion: string, clientId: string | null = SVC1) {
  return post('/token', {
    grant_type: 'client_credentials',
    ...(clientId === null ? {} : { client_id: clientId }),
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: assertion,
  });
}

function invalidClient(t: Test, got: Answer, label: string): void {
  t.equal(got.status, 401, `${label}: 401`);
  t.equal(got.json?.error, 'invalid_client', `${label}: invalid_client`);
  t.notOk(got.json?.access_token, `${label}: no token`);
}

// Tokens for the H rows, made before any test runs.
const web1Config = await discover(issuer, W1, S1);
/** A real sign-in as bob through web1: opaque AT, RT and ID token (for userinfo). */
const userTokens = await exchange(
  web1Config,
  await signIn({
    issuer,
    config: web1Config,
    redirectUri: APP1,
    email: 'bob@example.com',
    password: PASSWORD,
    scope: 'openid profile email offline_access',
    // offline_access needs prompt=consent (OIDC Core §11), or no refresh token is issued.
    params: { prompt: 'consent' },
  }),
);
/** bob's JWT access token for the API resource (RFC 9068). */
if (!userTokens.refresh_token || !userTokens.id_token)
  throw new Error('the fixture sign-in gave no RT or ID token');
const resourceTokens = await exchange(
  web1Config,
  await signIn({
    issuer,
    config: web1Config,
    redirectUri: APP1,
    email: 'bob@example.com',
    password: PASSWORD,
    scope: 'openid api.read',
    params: { resource: API },
  }),
  { resource: API },
);
const adminToken = (
  await post(
    '/token',
    { grant_type: 'client_credentials', resource: ADMIN },
    {
      authorization: basic(ops.client.client_id, ops.client_secret!),
    },
  )
).json.access_token as string;
const serviceToken = (await post('/token', { grant_type: 'client_credentials' }, { authorization: asSvc2 }))
  .json.access_token as string;

// ---------------------------------------------------------------- G. client authentication

t.test(
  'CA-1 wrong secret, unknown client and deleted client all get the same 401 invalid_client',
  async (t) => {
    const control = await post('/token', { grant_type: 'client_credentials' }, { authorization: asSvc2 });
    t.equal(control.status, 200, 'control: the right secret gets a token');

    // There is no "disabled" flag on clients: a client is switched off by deleting it.
    const gone = await gatehouse.clients.create(
      { name: 'gone', grants: ['client_credentials'], resources: [API] },
      { actor: 'test' },
    );
    t.equal(
      (
        await post(
          '/token',
          { grant_type: 'client_credentials' },
          { authorization: basic(gone.client.client_id, gone.client_secret!) },
        )
      ).status,
      200,
      'the soon-deleted client works before',
    );
    await gatehouse.clients.delete(gone.client.client_id, { actor: 'test' });

    const cases: Array<[string, string]> = [
      ['wrong secret', basic(SVC2, 'wrong')],
      ['unknown client', basic('nope', 'x')],
      ['deleted client with its correct secret', basic(gone.client.client_id, gone.client_secret!)],
    ];
    const bodies: string[] = [];
    for (const [label, authorization] of cases) {
      const got = await post('/token', { grant_type: 'client_credentials' }, { authorization });
      invalidClient(t, got, label);
      t.match(got.headers.get('www-authenticate') ?? '', /^Basic /, `${label}: WWW-Authenticate: Basic`);
      bodies.push(got.text);
    }
    t.equal(new Set(bodies).size, 1, 'one body for all three (no client enumeration)');

    // Failures count towards the token limiter (per client and per IP): after
    // three wrong secrets even the right one is refused for the window.
    const limited = await startTestServer(t, { GATEHOUSE_RATE_LIMITS: 'token=3/60s' });
    const svc = await limited.gatehouse.clients.create(
      { name: 'svc', grants: ['client_credentials'], resources: [API] },
      { actor: 'test' },
    );
    const tokenAt = (authorization: string) =>
      fetch(`${limited.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
        body: 'grant_type=client_credentials',
      });
    for (let i = 0; i < 3; i++) {
      t.equal((await tokenAt(basic(svc.client.client_id, `guess-${i}`))).status, 401, `guess ${i + 1}: 401`);
    }
    const after = await tokenAt(basic(svc.client.client_id, svc.client_secret!));
    t.equal(after.status, 429, 'the failures were counted: the right secret is now rate limited');
    t.ok(Number(after.headers.get('retry-after')) >= 1, 'with Retry-After');
  },
);

t.test('CA-2 malformed Basic headers, secrets in the URL and GET /token are refused', async (t) => {
  const malformed: Array<[string, string]> = [
    ['Basic !!!', 'Basic !!!'],
    ['Basic with nothing after it', 'Basic '],
    ['no colon', `Basic ${Buffer.from(SVC2).toString('base64')}`],
    [
      'unencoded % in the secret',
      `Basic ${Buffer.from(`${SVC2}:ab%zz${svc2.client_secret}`).toString('base64')}`,
    ],
    ['Bearer instead of Basic', `Bearer ${svc2.client_secret}`],
  ];
  for (const [label, authorization] of malformed) {
    const got = await post('/token', { grant_type: 'client_credentials' }, { authorization });
    t.ok(got.status === 400 || got.status === 401, `${label}: 400 or 401 (${got.status})`);
    t.ok(['invalid_request', 'invalid_client'].includes(got.json?.error), `${label}: ${got.json?.error}`);
    t.notOk(got.json?.access_token, `${label}: no token`);
  }

  const secret = svc2.client_secret!;
  const inQuery = await answer(
    await fetch(`${issuer}/token?client_id=${SVC2}&client_secret=${encodeURIComponent(secret)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    }),
  );
  t.ok(
    inQuery.status === 400 || inQuery.status === 401,
    `secret in the query string refused (${inQuery.status})`,
  );
  t.notOk(inQuery.json?.access_token, 'no token for a query-string secret');
  t.notOk(server.logs.join('').includes(secret), 'the query-string secret is not in the logs');

  for (const method of ['GET', 'HEAD']) {
    const got = await fetch(`${issuer}/token?grant_type=client_credentials`, {
      method,
      headers: { authorization: asSvc2 },
    });
    t.ok(got.status === 404 || got.status === 405, `${method} /token: ${got.status}`);
  }
});

t.test('CA-3 client_id mismatch and double authentication are refused', async (t) => {
  const control = await post('/token', { grant_type: 'client_credentials' }, { authorization: asSvc2 });
  t.equal(control.status, 200, 'control: Basic alone works');
  const assertion = await signAssertion(assertionClaims());
  const cases: Array<[string, Record<string, string>]> = [
    ['Basic + body client_id of another client', { client_id: SVC1 }],
    ['Basic + body client_secret', { client_secret: svc2.client_secret! }],
    ['Basic + client_assertion', { client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }],
  ];
  for (const [label, extra] of cases) {
    const got = await post(
      '/token',
      { grant_type: 'client_credentials', ...extra },
      { authorization: asSvc2 },
    );
    t.equal(got.status, 400, `${label}: 400`);
    t.equal(got.json?.error, 'invalid_request', `${label}: invalid_request`);
    t.notOk(got.json?.access_token, `${label}: never authenticated as either client`);
  }
});

t.test('CA-4 a client using another authentication method than registered gets invalid_client', async (t) => {
  invalidClient(
    t,
    await post(
      '/token',
      { grant_type: 'client_credentials' },
      { authorization: basic(SVC1, 'guessed-secret') },
    ),
    'private_key_jwt client with Basic and a guessed secret',
  );
  invalidClient(
    t,
    await post('/token', { grant_type: 'client_credentials', client_id: SVC1, client_secret: 'guessed' }),
    'private_key_jwt client with client_secret_post',
  );
  const empty = await post(
    '/token',
    { grant_type: 'client_credentials' },
    { authorization: `Basic ${Buffer.from(`${SVC1}:`).toString('base64')}` },
  );
  t.ok(
    (empty.status === 401 && empty.json?.error === 'invalid_client') ||
      (empty.status === 400 && empty.json?.error === 'invalid_request'),
    `private_key_jwt client with an empty Basic secret: ${empty.status} ${empty.json?.error}`,
  );
  t.notOk(empty.json?.access_token);

  const spaCode = {
    grant_type: 'authorization_code',
    code: randomBytes(32).toString('base64url'),
    redirect_uri: SPA,
    code_verifier: 'v'.repeat(43),
  };
  invalidClient(
    t,
    await post('/token', spaCode, { authorization: basic(spa1.client.client_id, 'made-up-secret') }),
    'public client (none) sending a secret',
  );
  invalidClient(
    t,
    await post('/token', { ...spaCode, client_id: spa1.client.client_id, client_secret: 'made-up-secret' }),
    'public client (none) sending client_secret_post',
  );
  const web1Assertion = await signAssertion(assertionClaims({ iss: W1, sub: W1 }), attacker.privateKey, {
    alg: 'RS256',
  });
  invalidClient(
    t,
    await post('/token', {
      grant_type: 'authorization_code',
      code: 'x',
      redirect_uri: APP1,
      client_id: W1,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: web1Assertion,
    }),
    'client_secret_basic client sending a client_assertion',
  );
});

t.test('CA-5 alg none and HS256-with-public-key assertions are refused', async (t) => {
  const control = await ccWithAssertion(await signAssertion(assertionClaims()));
  t.equal(control.status, 200, 'control: a properly signed svc1 assertion works');

  const pem = await exportSPKI(svc1Keys.publicKey);
  const jwkJson = JSON.stringify(svc1Public);
  const cases: Array<[string, string]> = [
    ['(a) alg none', unsignedJwt({ typ: 'JWT', kid: 'svc1-key' }, assertionClaims())],
    ['(a) alg none without kid', unsignedJwt({}, assertionClaims())],
    ['(b) HS256 keyed with the public PEM', hs256Jwt({ kid: 'svc1-key' }, assertionClaims(), pem)],
    ['(b) HS256 keyed with the public JWK JSON', hs256Jwt({ kid: 'svc1-key' }, assertionClaims(), jwkJson)],
    ['(b) HS256 keyed with the modulus', hs256Jwt({}, assertionClaims(), String(svc1Public.n))],
    [
      '(c) attacker key advertised in a jwk header, with svc1 kid',
      await signAssertion(assertionClaims(), attacker.privateKey, {
        alg: 'RS256',
        kid: 'svc1-key',
        jwk: attackerPublic,
      }),
    ],
    [
      '(c) attacker key advertised in a jwk header, no kid',
      await signAssertion(assertionClaims(), attacker.privateKey, { alg: 'RS256', jwk: attackerPublic }),
    ],
    [
      '(c) attacker key behind a jku header',
      await signAssertion(assertionClaims(), attacker.privateKey, {
        alg: 'RS256',
        jku: 'https://evil.test/jwks.json',
        kid: 'attacker',
      }),
    ],
    [
      '(c) attacker key behind an x5u header',
      await signAssertion(assertionClaims(), attacker.privateKey, {
        alg: 'RS256',
        x5u: 'https://evil.test/cert.pem',
      }),
    ],
    [
      "(d) another client's kid and key",
      await signAssertion(assertionClaims(), svc3Keys.privateKey, { alg: 'RS256', kid: 'svc3-key' }),
    ],
    [
      "(d) another client's key under svc1's kid",
      await signAssertion(assertionClaims(), svc3Keys.privateKey, { alg: 'RS256', kid: 'svc1-key' }),
    ],
  ];
  for (const [label, assertion] of cases) invalidClient(t, await ccWithAssertion(assertion), label);
  // svc3's own key still authenticates svc3: the refusal above is about whose key, not the key.
  const own = await ccWithAssertion(
    await signAssertion(assertionClaims({ iss: SVC3, sub: SVC3 }), svc3Keys.privateKey, {
      alg: 'RS256',
      kid: 'svc3-key',
    }),
    SVC3,
  );
  t.equal(own.status, 200, "control: svc3's key works for svc3");
});

t.test('CA-6 assertions with bad claims are refused', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const cases: Array<[string, Record<string, unknown>, string | null]> = [
    ['exp 5 minutes in the past', { iat: now - 360, exp: now - 300 }, SVC1],
    ['no exp', { exp: undefined }, SVC1],
    ['no jti', { jti: undefined }, SVC1],
    ['iss is not the client_id', { iss: SVC3 }, SVC1],
    ['iss is missing', { iss: undefined }, SVC1],
    ['sub missing', { sub: undefined }, SVC1],
    ['sub is another client (no client_id in the body)', { sub: SVC3 }, null],
    ['aud is another issuer', { aud: 'https://other-issuer.example.com' }, SVC1],
    ['aud array of foreign values only', { aud: ['https://a.example.com', 'https://b.example.com'] }, SVC1],
    ['aud missing', { aud: undefined }, SVC1],
    ['nbf 10 minutes in the future', { nbf: now + 600 }, SVC1],
    ['exp - iat over an hour', { iat: now, exp: now + 2 * 3600 }, SVC1],
    ['no iat and exp over an hour away', { iat: undefined, exp: now + 2 * 3600 }, SVC1],
  ];
  for (const [label, overrides, clientId] of cases) {
    invalidClient(t, await ccWithAssertion(await signAssertion(assertionClaims(overrides)), clientId), label);
  }
  // With client_id in the body, a different sub is a client_id mismatch (CA-3's refusal).
  const mismatch = await ccWithAssertion(await signAssertion(assertionClaims({ sub: SVC3 })), SVC1);
  t.ok(
    (mismatch.status === 400 && mismatch.json?.error === 'invalid_request') ||
      (mismatch.status === 401 && mismatch.json?.error === 'invalid_client'),
    `sub is another client, client_id=svc1 in the body: ${mismatch.status} ${mismatch.json?.error}`,
  );
  t.notOk(mismatch.json?.access_token);
  t.equal(
    (await ccWithAssertion(await signAssertion(assertionClaims()))).status,
    200,
    'control: good claims work',
  );
});

t.test('CA-7 an assertion is accepted once, sequentially and in parallel', async (t) => {
  const once = await signAssertion(assertionClaims());
  t.equal((await ccWithAssertion(once)).status, 200, 'first use');
  invalidClient(t, await ccWithAssertion(once), 'second use of the same jti');

  const parallel = await signAssertion(assertionClaims());
  let release!: () => void;
  const barrier = new Promise<void>((resolve) => (release = resolve));
  const racing = Array.from({ length: 10 }, async () => {
    await barrier;
    return ccWithAssertion(parallel);
  });
  release();
  const results = await Promise.all(racing);
  const statuses = results.map((result) => result.status);
  t.equal(
    statuses.filter((status) => status === 200).length,
    1,
    `exactly one success (${statuses.join(',')})`,
  );
  t.equal(
    results.filter((result) => result.status === 401 && result.json?.error === 'invalid_client').length,
    9,
    'nine invalid_client',
  );
});

// ---------------------------------------------------------------- H. userinfo with forged or misplaced tokens

/** The resource servers that accept JWT access tokens: userinfo, and the admin API (resource `${issuer}/admin`). */
async function refusedEverywhere(t: Test, token: string, label: string): Promise<void> {
  const me = await bearerAt('/me', token);
  t.equal(me.status, 401, `${label}: /me 401`);
  t.match(
    me.headers.get('www-authenticate') ?? '',
    /^Bearer .*error="invalid_token"/,
    `${label}: /me invalid_token`,
  );
  t.notOk(me.json?.sub, `${label}: /me returns no claims`);
  const admin = await bearerAt('/admin/keys', token);
  t.equal(admin.status, 401, `${label}: admin API 401`);
  t.match(
    admin.headers.get('www-authenticate') ?? '',
    /Bearer error="invalid_token"/,
    `${label}: admin invalid_token`,
  );
  t.notOk(admin.json?.items, `${label}: admin API returns no data`);
  for (const got of [me, admin]) t.notMatch(got.text, LEAK, `${label}: nothing leaks`);
}

/** A fresh sign-in as bob through web1 (opaque AT, RT, ID token), with the code it came from. */
async function freshTokens() {
  const flow = await signIn({
    issuer,
    config: web1Config,
    redirectUri: APP1,
    email: 'bob@example.com',
    password: PASSWORD,
    scope: 'openid profile email offline_access',
    // offline_access needs prompt=consent (OIDC Core §11), or no refresh token is issued.
    params: { prompt: 'consent' },
  });
  return { code: flow.callback.searchParams.get('code')!, tokens: await exchange(web1Config, flow) };
}

/** Ends a stored token's life now (as its TTL would): its row expires. */
async function expire(kind: string, token: string): Promise<void> {
  const { count } = await gatehouse.db.oidcArtifact.updateMany({
    where: { kind, id: sha256(token) },
    data: { expiresAt: new Date(Date.now() - 1000) },
  });
  if (count !== 1) throw new Error(`no stored ${kind} for that value`);
}

const introspect = (token: string, authorization = asRs1) =>
  post('/token/introspection', { token }, { authorization });

t.test('UI-1 missing, expired and misplaced access tokens at /me', async (t) => {
  const { tokens } = await freshTokens();
  const control = await bearerAt('/me', tokens.access_token);
  t.equal(control.status, 200, 'control: the AT works');
  t.equal(control.json?.sub, bob.id);

  const none = await answer(await fetch(`${issuer}/me`));
  t.equal(none.status, 401, 'no token: 401');
  const challenge = none.headers.get('www-authenticate') ?? '';
  t.match(challenge, /^Bearer\b/, 'no token: WWW-Authenticate: Bearer');
  t.notMatch(challenge, /error=/, 'no token: no error code (RFC 6750 §3.1)');

  const inQuery = await answer(
    await fetch(`${issuer}/me?access_token=${encodeURIComponent(tokens.access_token)}`),
  );
  // RFC 6750 §3.1 allows 400 invalid_request for a request using an unsupported method.
  t.ok(
    inQuery.status === 401 || (inQuery.status === 400 && inQuery.json?.error === 'invalid_request'),
    `a token in the query string is not accepted (${inQuery.status} ${inQuery.json?.error})`,
  );
  t.notOk(inQuery.json?.sub, 'and yields no claims');

  const lower = await answer(
    await fetch(`${issuer}/me`, { headers: { authorization: `bearer ${tokens.access_token}` } }),
  );
  t.equal(lower.status, 200, 'a lower-case "bearer" scheme is accepted (RFC 9110 §11.1)');

  await expire('AccessToken', tokens.access_token);
  const expired = await bearerAt('/me', tokens.access_token);
  t.equal(expired.status, 401, 'an expired AT: 401');
  t.match(
    expired.headers.get('www-authenticate') ?? '',
    /error="invalid_token"/,
    'an expired AT: invalid_token',
  );
  t.notOk(expired.json?.sub, 'an expired AT: no claims');
});

t.test('UI-2 forged tokens are refused at /me and at the admin API', async (t) => {
  t.equal(
    (await bearerAt('/me', userTokens.access_token)).status,
    200,
    'control: the real opaque AT works at /me',
  );
  t.equal(
    (await bearerAt('/admin/keys', adminToken)).status,
    200,
    'control: the real admin JWT works at the admin API',
  );

  const jwks = (await (await fetch(`${issuer}/jwks`)).json()) as { keys: JWK[] };
  const asKey = jwks.keys[0]!;
  const asPem = await exportSPKI((await importJWK(asKey, asKey.alg)) as CryptoKey);
  const jwtAts: Array<[string, string]> = [
    ['admin JWT AT', adminToken],
    ["bob's API JWT AT", resourceTokens.access_token],
  ];
  const forged: Array<[string, string]> = [
    ['random opaque string', randomBytes(32).toString('base64url')],
    ['opaque AT with one character changed', flipLast(userTokens.access_token)],
  ];
  for (const [name, jwt] of jwtAts) {
    const header = decodeProtectedHeader(jwt) as Record<string, unknown>;
    const claims = decodeJwt(jwt) as Record<string, unknown>;
    forged.push(
      [`alg:none copy of the ${name}`, unsignedJwt(header, claims)],
      [
        `HS256 re-signed with the AS public JWK JSON (${name})`,
        hs256Jwt(header, claims, JSON.stringify(asKey)),
      ],
      [`HS256 re-signed with the AS public PEM (${name})`, hs256Jwt(header, claims, asPem)],
      [
        `attacker-signed copy with the AS kid (${name})`,
        await new SignJWT(claims as JWTPayload)
          .setProtectedHeader({ ...(header as { alg: string }), alg: 'RS256', kid: asKey.kid! })
          .sign(attacker.privateKey),
      ],
      [
        `attacker-signed copy with its key in a jwk header (${name})`,
        await new SignJWT(claims as JWTPayload)
          .setProtectedHeader({ ...(header as { alg: string }), alg: 'RS256', jwk: attackerPublic })
          .sign(attacker.privateKey),
      ],
      [
        `scope widened, signature kept (${name})`,
        withPayload(jwt, { ...claims, scope: `${claims.scope} admin api.write` }),
      ],
      [
        `sub flipped, signature kept (${name})`,
        withPayload(jwt, { ...claims, sub: bob.id, client_id: SVC2 }),
      ],
      [
        `exp extended, signature kept (${name})`,
        withPayload(jwt, { ...claims, exp: Number(claims.exp) + 3600 }),
      ],
    );
  }
  const real = new Set([userTokens.access_token, adminToken, resourceTokens.access_token]);
  for (const [label, token] of forged) {
    t.notOk(real.has(token), `${label}: differs from every real token`);
    await refusedEverywhere(t, token, label);
  }
});

t.test(
  'UI-3 ID tokens, refresh tokens and tokens for other audiences are refused as access tokens',
  async (t) => {
    const cases: Array<[string, string]> = [
      ['an ID token', userTokens.id_token!],
      ['a refresh token', userTokens.refresh_token!],
      ['a JWT AT for the API resource', resourceTokens.access_token],
      ['a client-credentials AT', serviceToken],
    ];
    for (const [label, token] of cases) {
      const me = await bearerAt('/me', token);
      t.equal(me.status, 401, `${label} at /me: 401`);
      t.match(
        me.headers.get('www-authenticate') ?? '',
        /error="invalid_token"/,
        `${label} at /me: invalid_token`,
      );
      t.notOk(me.json?.sub ?? me.json?.email, `${label} at /me: never user claims`);
    }
    // The admin API is the resource server here: it needs typ at+jwt and its own audience.
    for (const [label, token] of [
      ['an ID token', userTokens.id_token!],
      ['a JWT AT for another resource', resourceTokens.access_token],
      ['a client-credentials AT for another resource', serviceToken],
      ['an opaque userinfo AT', userTokens.access_token],
    ] as const) {
      const admin = await bearerAt('/admin/keys', token);
      t.equal(admin.status, 401, `${label} at the admin API: 401`);
      t.notOk(admin.json?.items, `${label} at the admin API: no data`);
    }
    t.equal(
      decodeProtectedHeader(userTokens.id_token!).typ === 'at+jwt',
      false,
      'an ID token is not typ at+jwt',
    );
  },
);

t.test('UI-4 introspection without client authentication reveals nothing', async (t) => {
  const { tokens } = await freshTokens();
  t.equal((await introspect(tokens.access_token)).json?.active, true, 'control: rs1 sees the token');
  const anonymous = await post('/token/introspection', { token: tokens.access_token });
  // RFC 7662 §2.1 wants client authentication; oidc-provider answers a request with none at all as
  // 400 invalid_request ("no client authentication mechanism provided") rather than 401 invalid_client.
  t.ok(
    (anonymous.status === 401 && anonymous.json?.error === 'invalid_client') ||
      (anonymous.status === 400 && anonymous.json?.error === 'invalid_request'),
    `no authentication at all: refused (${anonymous.status} ${anonymous.json?.error})`,
  );
  const idOnly = await post('/token/introspection', {
    token: tokens.access_token,
    client_id: rs1.client.client_id,
  });
  t.equal(idOnly.status, 401, 'client_id=rs1 without its secret: 401');
  t.equal(idOnly.json?.error, 'invalid_client', 'client_id=rs1 without its secret: invalid_client');
  const wrong = await introspect(tokens.access_token, basic(rs1.client.client_id, 'wrong'));
  t.equal(wrong.status, 401, 'rs1 with a wrong secret: 401');
  for (const got of [anonymous, idOnly, wrong]) {
    t.notOk('active' in (got.json ?? {}), 'no active member');
    t.notOk(got.json?.sub ?? got.json?.scope ?? got.json?.client_id, 'no token data');
  }
});

t.test("UI-5 only the token's client and resource servers learn anything from introspection", async (t) => {
  const { tokens } = await freshTokens();
  t.equal((await introspect(tokens.access_token)).json?.active, true, 'control: rs1 sees the AT');
  t.equal((await introspect(tokens.refresh_token!)).json?.active, true, 'control: rs1 sees the RT');
  const callers: Array<[string, Record<string, string>, Record<string, string>]> = [
    ['web2 (Basic)', {}, { authorization: basic(web2.client.client_id, web2.client_secret!) }],
    ['svc2 (Basic)', {}, { authorization: asSvc2 }],
    ['public spa1', { client_id: spa1.client.client_id }, {}],
  ];
  for (const [label, form, headers] of callers) {
    for (const [kind, token] of [
      ['AT', tokens.access_token],
      ['RT', tokens.refresh_token!],
    ] as const) {
      const got = await post('/token/introspection', { token, ...form }, headers);
      if (got.status === 200)
        t.same(got.json, { active: false }, `${label} introspects web1's ${kind}: only active:false`);
      else
        t.ok(
          got.status >= 400 && got.status < 500 && !got.json?.active,
          `${label} introspects web1's ${kind}: refused (${got.status})`,
        );
    }
  }
});

t.test(
  'UI-6 expired, revoked, rotated-out, consumed and garbage tokens are exactly {active:false}',
  async (t) => {
    const expiredAt = (await freshTokens()).tokens.access_token;
    await expire('AccessToken', expiredAt);
    const revokedAt = (await freshTokens()).tokens.access_token;
    t.equal((await post('/token/revocation', { token: revokedAt }, { authorization: asWeb1 })).status, 200);
    const { code, tokens } = await freshTokens();
    const rotated = await post(
      '/token',
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! },
      { authorization: asWeb1 },
    );
    t.equal(rotated.status, 200, 'the refresh token rotated');
    t.equal((await introspect(rotated.json.access_token)).json?.active, true, 'control: a live AT is active');
    const cases: Array<[string, string]> = [
      ['an expired AT', expiredAt],
      ['a revoked AT', revokedAt],
      ['a rotated-out RT', tokens.refresh_token!],
      ['a consumed authorization code', code],
      ['a garbage string', 'garbage-token-value'],
      ['an empty-looking token', '.'],
    ];
    for (const [label, token] of cases) {
      const got = await introspect(token);
      t.equal(got.status, 200, `${label}: 200`);
      t.same(got.json, { active: false }, `${label}: exactly {"active":false}`);
    }
  },
);

t.test('UI-7 token scanning through introspection is throttled', async (t) => {
  const limited = await startTestServer(t, { GATEHOUSE_RATE_LIMITS: 'token=50/60s' });
  const rs = await limited.gatehouse.clients.create(
    { name: 'rs', grants: ['client_credentials'], resources: [API], introspection: true },
    { actor: 'test' },
  );
  const auth = basic(rs.client.client_id, rs.client_secret!);
  const answers: Answer[] = [];
  for (let batch = 0; batch < 20; batch++) {
    answers.push(
      ...(await Promise.all(
        Array.from({ length: 50 }, async () =>
          answer(
            await fetch(`${limited.issuer}/token/introspection`, {
              method: 'POST',
              headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
              body: new URLSearchParams({ token: randomBytes(32).toString('base64url') }),
            }),
          ),
        ),
      )),
    );
  }
  t.equal(answers.length, 1000, 'a thousand random tokens sent');
  const allowed = answers.filter((got) => got.status === 200);
  const limitedAnswers = answers.filter((got) => got.status === 429);
  t.equal(allowed.length, 50, 'the first 50 (the limit) are answered');
  t.ok(
    allowed.every((got) => JSON.stringify(got.json) === '{"active":false}'),
    'every answer is active:false',
  );
  t.equal(limitedAnswers.length, 950, 'the rest: 429');
  t.ok(
    limitedAnswers.every((got) => Number(got.headers.get('retry-after')) >= 1),
    'each with Retry-After',
  );
  t.equal(limitedAnswers[0]?.json?.error, 'too_many_requests', 'and an OAuth-style error body');
});

// ---------------------------------------------------------------- I. scope escalation and client credentials

t.test('SC-1 scopes beyond the allow-list are refused or dropped, never granted', async (t) => {
  for (const scope of ['api.read api.admin', 'api.admin', 'frobnicate', 'admin']) {
    const got = await post('/token', { grant_type: 'client_credentials', scope }, { authorization: asSvc2 });
    t.equal(got.status, 400, `client credentials scope=${scope}: 400`);
    t.equal(got.json?.error, 'invalid_scope', `client credentials scope=${scope}: invalid_scope`);
    t.notOk(got.json?.access_token);
  }
  const all = await post('/token', { grant_type: 'client_credentials' }, { authorization: asSvc2 });
  t.equal(decodeJwt(all.json.access_token).scope, 'api.read', 'no scope asked: exactly the allow-list');

  // An OIDC scope the client is not registered for: error redirect.
  const agent = new Agent();
  const refusedUrl = oidc.buildAuthorizationUrl(
    await discover(issuer, web2.client.client_id, web2.client_secret),
    {
      redirect_uri: APP2,
      scope: 'openid email',
      state: 'S',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    },
  );
  const refused = await agent.request(refusedUrl.toString());
  t.ok(
    refused.status === 302 || refused.status === 303,
    `unregistered OIDC scope: redirect (${refused.status})`,
  );
  const location = new URL(refused.location!);
  t.equal(`${location.origin}${location.pathname}`, APP2, 'to the registered redirect URI');
  t.equal(location.searchParams.get('error'), 'invalid_scope');
  t.equal(location.searchParams.get('state'), 'S');
  t.notOk(location.searchParams.get('code'), 'no code');

  // Unknown scopes: dropped, never shown on the consent page, never in a token.
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(web1Config, {
    redirect_uri: APP1,
    scope: 'openid profile admin api.admin frobnicate',
    state: 'S2',
    prompt: 'consent',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const browser = new Agent();
  let step = await browser.follow(await browser.request(url.toString()), issuer);
  const consentPages: string[] = [];
  for (let pages = 0; pages < 4 && step.status === 200; pages++) {
    const action = new URL(formActionOf(step.body), issuer).toString();
    if (action.endsWith('/login')) {
      step = await browser.request(action, {
        form: { csrf: csrfOf(step.body), username: 'bob@example.com', password: PASSWORD },
      });
    } else {
      consentPages.push(step.body);
      step = await browser.request(action, { form: { csrf: csrfOf(step.body) } });
    }
    step = await browser.follow(step, issuer);
  }
  for (const page of consentPages) {
    t.notMatch(page, /\badmin\b|frobnicate/, 'a consent page never mentions the unknown scopes');
  }
  const callback = new URL(step.location!);
  t.equal(`${callback.origin}${callback.pathname}`, APP1, 'back to the registered redirect URI');
  if (callback.searchParams.get('error')) {
    // Refused outright (before any page).
    t.equal(callback.searchParams.get('error'), 'invalid_scope', 'refused with invalid_scope');
    t.equal(callback.searchParams.get('state'), 'S2', 'with the original state');
    t.notOk(callback.searchParams.get('code'), 'no code');
  } else {
    // Or dropped: shown nowhere, granted never.
    t.equal(consentPages.length, 1, 'a consent page was shown');
    const tokens = await post(
      '/token',
      {
        grant_type: 'authorization_code',
        code: callback.searchParams.get('code')!,
        redirect_uri: APP1,
        code_verifier: verifier,
      },
      { authorization: asWeb1 },
    );
    t.equal(tokens.status, 200);
    const granted = String(tokens.json.scope).split(' ');
    t.same(
      granted.filter(
        (scope) => !['openid', 'profile', 'email', 'offline_access', 'api.read'].includes(scope),
      ),
      [],
      `token scope within the allow-list (${tokens.json.scope})`,
    );
    const introspected = await post(
      '/token/introspection',
      { token: tokens.json.access_token },
      {
        authorization: asRs1,
      },
    );
    t.notMatch(String(introspected.json.scope), /admin|frobnicate/, 'introspection agrees');
  }
});

t.test('SC-2 client credentials never pose as a user', async (t) => {
  const refused = await post(
    '/token',
    { grant_type: 'client_credentials', scope: 'openid offline_access' },
    { authorization: asSvc2 },
  );
  t.equal(refused.status, 400, 'openid offline_access for a service: 400');
  t.equal(refused.json?.error, 'invalid_scope');
  t.notOk(refused.json?.id_token ?? refused.json?.refresh_token);

  const issued = await post('/token', { grant_type: 'client_credentials' }, { authorization: asSvc2 });
  t.equal(issued.status, 200);
  t.notOk(issued.json.id_token, 'no ID token');
  t.notOk(issued.json.refresh_token, 'no refresh token');
  const claims = decodeJwt(issued.json.access_token);
  t.equal(claims.sub, SVC2, 'sub is the client id (RFC 9068 §2.2)');
  t.equal(claims.client_id, SVC2);
  t.notOk('auth_time' in claims, 'no auth_time');
  t.notOk('amr' in claims || 'acr' in claims, 'no user authentication claims');
  t.notMatch(String(claims.sub), UUID, 'client ids never take the shape of a user sub (a UUID)');
  t.equal((await bearerAt('/me', issued.json.access_token)).status, 401, 'a CC token gets no userinfo');

  // Client ids are generated by Gatehouse: one cannot be chosen to equal a user's sub.
  const viaService = await gatehouse.clients.create(
    { name: 'collide', grants: ['client_credentials'], resources: [API], client_id: bob.id } as Parameters<
      typeof gatehouse.clients.create
    >[0],
    { actor: 'test' },
  );
  t.not(viaService.client.client_id, bob.id, 'a client_id in the registration is ignored');
  const viaApi = await answer(
    await fetch(`${issuer}/admin/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'collide',
        grants: ['client_credentials'],
        resources: [API],
        client_id: bob.id,
      }),
    }),
  );
  t.ok(
    viaApi.status === 400 || (viaApi.status === 201 && viaApi.json?.client_id !== bob.id),
    `admin API: a client_id equal to a user sub is refused (${viaApi.status})`,
  );
  t.equal(
    await gatehouse.db.client.count({ where: { clientId: bob.id } }),
    0,
    'no client has a user sub as id',
  );
});

function flipLast(value: string): string {
  const last = value.at(-1);
  return `${value.slice(0, -1)}${last === 'A' ? 'B' : 'A'}`;
}
