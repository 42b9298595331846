// Rate limits (RL-1), CORS (BR-7), client IP allowlists and trusted proxies (BR-9).
import t from 'tap';
import { createTestDatabase } from '../helpers/database.ts';
import { startTestServer } from '../helpers/server.ts';

const API = 'https://api.example.com';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

function tokenRequest(
  issuer: string,
  auth: string | undefined,
  extra: Record<string, string> = {},
  headers: Record<string, string> = {},
) {
  return fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(auth ? { authorization: auth } : {}),
      ...headers,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...extra }),
  });
}

t.test('RL-1: token endpoint limited per client, with Retry-After and an OAuth error body', async (t) => {
  const server = await startTestServer(t, { GATEHOUSE_RATE_LIMITS: 'token=3/60s' });
  const svc = await server.gatehouse.clients.create(
    { name: 'svc', grants: ['client_credentials'], resources: [API] },
    { actor: 'test' },
  );
  const auth = basic(svc.client.client_id, svc.client_secret!);
  for (let i = 0; i < 3; i++) {
    const ok = await tokenRequest(server.issuer, auth);
    t.equal(ok.status, 200, `request ${i + 1} allowed`);
    t.equal(ok.headers.get('ratelimit-limit'), '3');
  }
  const refused = await tokenRequest(server.issuer, auth);
  t.equal(refused.status, 429);
  t.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After in seconds');
  t.equal(refused.headers.get('ratelimit-remaining'), '0');
  t.equal((await refused.json()).error, 'too_many_requests');
});

t.test('RL-1: the per-IP limit holds across clients, including client ids sent in the body', async (t) => {
  const server = await startTestServer(t, { GATEHOUSE_RATE_LIMITS: 'token=4/60s' });
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    const response = await tokenRequest(server.issuer, undefined, {
      client_id: `nobody-${i}`,
      client_secret: 'x',
    });
    statuses.push(response.status);
  }
  t.same(statuses.slice(0, 4), [401, 401, 401, 401], 'unknown clients are refused as invalid_client');
  t.equal(statuses[4], 429, 'and the fifth request from the address is limited');
});

t.test('RL-1: per IP, an IPv6 client counts by its /64, whichever address in it it sends from', async (t) => {
  const server = await startTestServer(t, {
    GATEHOUSE_RATE_LIMITS: 'token=3/60s',
    GATEHOUSE_TRUST_PROXY: '127.0.0.1/32',
  });
  const from = (ip: string, i: number) =>
    tokenRequest(
      server.issuer,
      undefined,
      { client_id: `nobody-${i}`, client_secret: 'x' },
      { 'x-forwarded-for': ip },
    );
  const statuses = [];
  for (const [i, ip] of [
    '2001:db8:1:2::1',
    '2001:db8:1:2::2',
    '2001:db8:1:2:ffff::9',
    '2001:db8:1:2::abcd',
  ].entries())
    statuses.push((await from(ip, i)).status);
  t.same(statuses, [401, 401, 401, 429], 'the fourth address of the same /64 is limited');
  t.equal((await from('2001:db8:1:3::1', 9)).status, 401, 'the next /64 has its own count');
});

t.test('RL-1: sign-in attempts limited per account and per IP', async (t) => {
  const server = await startTestServer(t, { GATEHOUSE_RATE_LIMITS: 'login=2/60s,login_ip=100/60s' });
  const { issuer, gatehouse } = server;
  await gatehouse.users.create(
    { email: 'rl@example.com', password: 'correct horse battery staple' },
    { actor: 'test' },
  );
  const web = await gatehouse.clients.create(
    {
      name: 'web',
      grants: ['authorization_code'],
      redirect_uris: ['https://app.example.com/cb'],
      first_party: true,
    },
    { actor: 'test' },
  );
  const { Agent, csrfOf, formActionOf } = await import('../helpers/sign-in.ts');
  const agent = new Agent();
  const auth = new URL(`${issuer}/auth`);
  for (const [key, value] of Object.entries({
    client_id: web.client.client_id,
    response_type: 'code',
    redirect_uri: 'https://app.example.com/cb',
    scope: 'openid',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  }))
    auth.searchParams.set(key, value);
  const login = await agent.follow(await agent.request(auth.toString()), issuer);
  const action = new URL(formActionOf(login.body), issuer).toString();
  const form = { csrf: csrfOf(login.body), username: 'RL@example.com', password: 'wrong password here' };
  t.equal((await agent.request(action, { form })).status, 401);
  t.equal((await agent.request(action, { form: { ...form, username: 'rl@example.com' } })).status, 401);
  const limited = await agent.request(action, { form });
  t.equal(limited.status, 429, 'the third attempt for the account (any spelling) is limited');
  t.ok(limited.headers.get('retry-after'));
  t.match(limited.body, /Too many sign-in attempts/);
});

t.test(
  'RL-1: with Redis the counters are shared by every instance; Redis down fails open for tokens, closed for sign-in',
  async (t) => {
    const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
    const databaseUrl = await createTestDatabase(t);
    // One deployment (one issuer) on two instances; the issuer also keys the Redis counters, so no other run shares them.
    const shared = {
      REDIS_URL: redisUrl,
      GATEHOUSE_RATE_LIMITS: 'token=3/60s',
      GATEHOUSE_ISSUER: `https://id-${crypto.randomUUID()}.example.com`,
    };
    const a = await startTestServer(t, shared, { databaseUrl });
    const b = await startTestServer(t, shared, { databaseUrl });
    const svc = await a.gatehouse.clients.create(
      { name: 'shared', grants: ['client_credentials'], resources: [API] },
      { actor: 'test' },
    );
    const auth = basic(svc.client.client_id, svc.client_secret!);
    t.equal((await tokenRequest(a.url, auth)).status, 200);
    t.equal((await tokenRequest(b.url, auth)).status, 200);
    t.equal((await tokenRequest(a.url, auth)).status, 200);
    t.equal(
      (await tokenRequest(b.url, auth)).status,
      429,
      'the fourth request, on the other instance, is limited',
    );

    const down = await startTestServer(t, {
      REDIS_URL: 'redis://127.0.0.1:1',
      GATEHOUSE_RATE_LIMITS: 'token=1/60s,login=1/60s',
    });
    const other = await down.gatehouse.clients.create(
      { name: 'svc', grants: ['client_credentials'], resources: [API] },
      { actor: 'test' },
    );
    const otherAuth = basic(other.client.client_id, other.client_secret!);
    t.equal((await tokenRequest(down.issuer, otherAuth)).status, 200, 'tokens keep flowing');
    t.equal(
      (await tokenRequest(down.issuer, otherAuth)).status,
      200,
      'the limit is not enforced while Redis is down (fail open)',
    );
    t.match(down.logs.join(''), /failing open/, 'and that is logged');
  },
);

t.test('BR-7: CORS only for registered origins on the endpoints browsers call', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const spa = await gatehouse.clients.create(
    {
      name: 'spa',
      grants: ['authorization_code'],
      redirect_uris: ['https://spa.example.com/cb'],
      public: true,
      cors_origins: ['https://spa.example.com'],
    },
    { actor: 'test' },
  );
  const preflight = (path: string, origin: string) =>
    fetch(`${issuer}${path}`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
  for (const path of ['/token', '/token/revocation', '/me']) {
    const allowed = await preflight(path, 'https://spa.example.com');
    t.equal(
      allowed.headers.get('access-control-allow-origin'),
      'https://spa.example.com',
      `${path}: registered origin`,
    );
    t.not(allowed.headers.get('access-control-allow-credentials'), 'true');
    for (const evil of ['https://evil.example.com', 'null', 'https://spa.example.com.evil.example.com']) {
      const refused = await preflight(path, evil);
      t.equal(refused.headers.get('access-control-allow-origin'), null, `${path}: no CORS for ${evil}`);
    }
  }
  const real = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { origin: 'https://spa.example.com', 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: spa.client.client_id,
      code: 'x',
      redirect_uri: 'https://spa.example.com/cb',
      code_verifier: 'y'.repeat(43),
    }),
  });
  t.equal(
    real.headers.get('access-control-allow-origin'),
    'https://spa.example.com',
    'the real request too (clientBasedCORS)',
  );
  const foreign = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { origin: 'https://evil.example.com', 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: spa.client.client_id,
      code: 'x',
    }),
  });
  t.equal(foreign.headers.get('access-control-allow-origin'), null, 'never for an unregistered origin');
  const jwks = await fetch(`${issuer}/jwks`, { headers: { origin: 'https://anyone.example.com' } });
  t.ok(
    ['*', 'https://anyone.example.com'].includes(jwks.headers.get('access-control-allow-origin') ?? ''),
    'public metadata may allow any origin',
  );
  t.not(jwks.headers.get('access-control-allow-credentials'), 'true', 'never with credentials');
  for (const path of ['/healthz', '/interaction/abc', '/account/mfa']) {
    const page = await fetch(`${issuer}${path}`, { headers: { origin: 'https://spa.example.com' } });
    t.equal(page.headers.get('access-control-allow-origin'), null, `${path}: no CORS`);
  }
});

t.test('client IP allowlists; X-Forwarded-For counts only through a trusted proxy', async (t) => {
  const direct = await startTestServer(t);
  const fenced = await direct.gatehouse.clients.create(
    {
      name: 'fenced',
      grants: ['client_credentials'],
      resources: [API],
      ip_allow: ['10.0.0.0/8', '2001:db8::/32'],
    },
    { actor: 'test' },
  );
  const open = await direct.gatehouse.clients.create(
    {
      name: 'local',
      grants: ['client_credentials'],
      resources: [API],
      ip_allow: ['127.0.0.1/32', '::1/128'],
    },
    { actor: 'test' },
  );
  const refused = await tokenRequest(
    direct.issuer,
    basic(fenced.client.client_id, fenced.client_secret!),
    {},
    { 'x-forwarded-for': '10.1.2.3' },
  );
  t.equal(refused.status, 400, 'from 127.0.0.1 (a spoofed X-Forwarded-For is ignored)');
  t.equal((await refused.json()).error, 'unauthorized_client');
  t.equal(
    (await tokenRequest(direct.issuer, basic(open.client.client_id, open.client_secret!))).status,
    200,
    'allowed address',
  );

  const proxied = await startTestServer(t, { GATEHOUSE_TRUST_PROXY: '127.0.0.1/32' });
  const behind = await proxied.gatehouse.clients.create(
    { name: 'fenced', grants: ['client_credentials'], resources: [API], ip_allow: ['10.0.0.0/8'] },
    { actor: 'test' },
  );
  const auth = basic(behind.client.client_id, behind.client_secret!);
  t.equal(
    (await tokenRequest(proxied.issuer, auth, {}, { 'x-forwarded-for': '10.1.2.3' })).status,
    200,
    'the client address from the trusted proxy',
  );
  t.equal(
    (await tokenRequest(proxied.issuer, auth, {}, { 'x-forwarded-for': '192.0.2.7' })).status,
    400,
    'another address through the proxy',
  );
});
