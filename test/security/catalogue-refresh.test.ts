// SECURITY-CATALOGUE §1 E (refresh tokens, RT-1…RT-6) and F (revocation,
// RV-1…RV-3), black-box against a listening Gatehouse. Each test is named
// after its row. Fixtures follow the catalogue: web1 and web2 (confidential),
// spa1 (public), rs1 (the resource server allowed to introspect). No test
// sleeps: where a row waits for minutes, the stored refresh token's
// timestamps are moved instead.
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { generateSync } from 'otplib';
import t from 'tap';
import { sha256 } from '../../src/lib/tokens.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { Agent, csrfOf, formActionOf, type Step } from '../helpers/sign-in.ts';

const APP1 = 'https://app1.test/cb';
const APP2 = 'https://app2.test/cb';
const SPA1 = 'https://spa1.test/cb';
const API = 'https://api.test';
const PASSWORD = 'correct horse battery staple';
const V = oidc.randomPKCECodeVerifier();
const CH = await oidc.calculatePKCECodeChallenge(V);

type Params = Record<string, string | undefined>;
interface Reply {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: assertions read arbitrary JSON.
  body: any;
  text: string;
}
interface TokenSet {
  access_token: string;
  refresh_token: string;
  scope?: string;
}

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function send(url: string, init: RequestInit): Promise<Reply> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown = {};
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, headers: response.headers, body, text };
}

function post(url: string, body: Record<string, string>, auth?: string): Promise<Reply> {
  return send(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(auth ? { authorization: auth } : {}),
    },
    body: new URLSearchParams(body),
  });
}

/** Releases `count` requests at once behind one barrier and waits for them all. */
async function race<T>(count: number, fire: (index: number) => Promise<T>): Promise<T[]> {
  let release!: () => void;
  const barrier = new Promise<void>((resolve) => {
    release = resolve;
  });
  const pending = Array.from({ length: count }, async (_, index) => {
    await barrier;
    return fire(index);
  });
  release();
  return Promise.all(pending);
}

/** A Gatehouse with the catalogue's clients, and the flows and calls the rows share. */
async function setUp(server: TestServer) {
  const { issuer, gatehouse } = server;
  const actor = { actor: 'test' };
  const web1 = await gatehouse.clients.create(
    {
      name: 'web1',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: [APP1],
      scope: 'openid profile email offline_access api.read',
      resources: [API],
      // First-party: no consent page, so every token set costs one redirect chain.
      first_party: true,
    },
    actor,
  );
  const web2 = await gatehouse.clients.create(
    {
      name: 'web2',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: [APP2],
      scope: 'openid offline_access',
    },
    actor,
  );
  const spa1 = await gatehouse.clients.create(
    { name: 'spa1', grants: ['authorization_code'], redirect_uris: [SPA1], scope: 'openid', public: true },
    actor,
  );
  const rs1 = await gatehouse.clients.create(
    { name: 'rs1', grants: ['client_credentials'], resources: [API], introspection: true },
    actor,
  );
  const web1Auth = basic(web1.client.client_id, web1.client_secret!);
  const web2Auth = basic(web2.client.client_id, web2.client_secret!);
  const rs1Auth = basic(rs1.client.client_id, rs1.client_secret!);
  const totpSecrets = new Map<string, string>();

  const authorizeUrl = (params: Params) => {
    const url = new URL(`${issuer}/auth`);
    for (const [key, value] of Object.entries(params))
      if (value !== undefined) url.searchParams.set(key, value);
    return url.toString();
  };

  /**
   * Signs in through the pages (login, TOTP when enrolled, consent) for
   * `client`, and returns the pages seen and the code.
   */
  async function flow(
    email: string,
    options: { client?: 'web1' | 'web2'; agent?: Agent; params?: Params } = {},
  ): Promise<{ agent: Agent; code: string; pages: string[] }> {
    const agent = options.agent ?? new Agent();
    const onWeb2 = options.client === 'web2';
    let step: Step = await agent.request(
      authorizeUrl({
        response_type: 'code',
        client_id: onWeb2 ? web2.client.client_id : web1.client.client_id,
        redirect_uri: onWeb2 ? APP2 : APP1,
        scope: 'openid offline_access',
        prompt: 'consent',
        state: 'S',
        code_challenge: CH,
        code_challenge_method: 'S256',
        ...options.params,
      }),
    );
    step = await agent.follow(step, issuer);
    const pages: string[] = [];
    for (let count = 0; count < 6 && step.status === 200; count++) {
      const action = new URL(formActionOf(step.body), issuer).toString();
      const page = action.split('/').at(-1)!;
      pages.push(page);
      const form: Record<string, string> = { csrf: csrfOf(step.body) };
      if (page === 'login') Object.assign(form, { username: email, password: PASSWORD });
      if (page === 'mfa') {
        // Cleared so no row waits for the next TOTP step (replay is LG-5's subject).
        await gatehouse.db.user.update({ where: { email }, data: { totpLastStep: null } });
        form.code = generateSync({ secret: totpSecrets.get(email)! });
      }
      step = await agent.follow(await agent.request(action, { form }), issuer);
    }
    const code = step.location ? new URL(step.location).searchParams.get('code') : null;
    if (!code)
      throw new Error(
        `sign-in ended without a code: ${step.status} ${step.location} ${step.body.slice(0, 200)}`,
      );
    return { agent, code, pages };
  }

  async function createUser(email: string, options: { totp?: boolean } = {}) {
    const user = await gatehouse.users.create({ email, password: PASSWORD }, actor);
    if (options.totp) totpSecrets.set(email, (await gatehouse.mfa.enrollForOperator(email, actor)).secret);
    return user;
  }

  const tokenAt = (base = issuer) => `${base}/token`;
  const exchange = async (
    code: string,
    client: 'web1' | 'web2' = 'web1',
    extra: Record<string, string> = {},
  ) => {
    const reply = await post(
      tokenAt(),
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: client === 'web2' ? APP2 : APP1,
        code_verifier: V,
        ...extra,
      },
      client === 'web2' ? web2Auth : web1Auth,
    );
    if (reply.status !== 200) throw new Error(`exchange failed: ${reply.text}`);
    return reply.body as TokenSet;
  };
  /** `auth` null: no Authorization header at all (undefined would pick the default). */
  const refresh = (
    refreshToken: string,
    auth: string | null = web1Auth,
    extra: Record<string, string> = {},
    base = issuer,
  ) =>
    post(
      tokenAt(base),
      { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra },
      auth ?? undefined,
    );
  const userinfo = (token: string) => send(`${issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
  const introspect = async (token: string) =>
    (await post(`${issuer}/token/introspection`, { token }, rs1Auth)).body;
  const revoke = (form: Record<string, string>, auth: string | null = web1Auth) =>
    post(`${issuer}/token/revocation`, form, auth ?? undefined);

  /** Moves a stored refresh token `seconds` into the past: issue time, expiry and chain start (iiat). */
  async function age(refreshToken: string, seconds: number) {
    const key = { kind_id: { kind: 'RefreshToken', id: sha256(refreshToken) } };
    const row = await gatehouse.db.oidcArtifact.findUniqueOrThrow({ where: key });
    const payload = row.payload as { iat: number; exp: number; iiat?: number };
    await gatehouse.db.oidcArtifact.update({
      where: key,
      data: {
        payload: {
          ...payload,
          iat: payload.iat - seconds,
          exp: payload.exp - seconds,
          iiat: (payload.iiat ?? payload.iat) - seconds,
        },
        expiresAt: new Date(row.expiresAt!.getTime() - seconds * 1000),
      },
    });
  }

  const secondsLeft = async (refreshToken: string) => {
    const row = await gatehouse.db.oidcArtifact.findUniqueOrThrow({
      where: { kind_id: { kind: 'RefreshToken', id: sha256(refreshToken) } },
    });
    return (row.expiresAt!.getTime() - Date.now()) / 1000;
  };

  return {
    issuer,
    gatehouse,
    web1,
    web2,
    spa1,
    web1Auth,
    web2Auth,
    flow,
    createUser,
    exchange,
    refresh,
    userinfo,
    introspect,
    revoke,
    age,
    secondsLeft,
  };
}

t.test('catalogue E and F: refresh tokens and revocation', async (t) => {
  const databaseUrl = await createTestDatabase(t);
  const server = await startTestServer(t, {}, { databaseUrl });
  const ctx = await setUp(server);
  const { issuer, gatehouse, flow, exchange, refresh, userinfo, introspect, revoke } = ctx;
  await ctx.createUser('bob@example.com');
  const bobBrowser = new Agent();
  /** A fresh token set for bob through web1 (signed in once; first-party, so no pages after that). */
  const tokens = async (params: Params = {}) =>
    exchange((await flow('bob@example.com', { agent: bobBrowser, params })).code);

  t.test('RT-1 refresh tokens rotate; replaying a used one revokes the whole grant', async (t) => {
    const first = await tokens();
    const rotated = await refresh(first.refresh_token);
    t.equal(rotated.status, 200, 'RT1 gives RT2 and AT2');
    const { refresh_token: rt2, access_token: at2 } = rotated.body as TokenSet;
    t.ok(rt2, 'a new refresh token');
    t.not(rt2, first.refresh_token, 'RT2 ≠ RT1');
    t.equal((await userinfo(at2)).status, 200, 'control: AT2 works before the replay');
    const replay = await refresh(first.refresh_token);
    t.equal(replay.status, 400, 'the RT1 replay: 400');
    t.equal(replay.body.error, 'invalid_grant', 'the RT1 replay: invalid_grant');
    const afterReplay = await refresh(rt2);
    t.equal(afterReplay.status, 400, 'RT2 after the replay: 400');
    t.equal(afterReplay.body.error, 'invalid_grant', 'RT2 after the replay: invalid_grant');
    const me = await userinfo(at2);
    t.equal(me.status, 401, 'AT2 after the replay: 401');
    t.match(me.headers.get('www-authenticate') ?? '', /invalid_token/);
  });

  t.test('RT-2 ten parallel refreshes of one token: at most one 200, no 5xx, one valid RT', async (t) => {
    // Two instances share the database and the issuer; requests alternate.
    const second = await startTestServer(t, { GATEHOUSE_ISSUER: issuer }, { databaseUrl });
    const secondBase = second.url.replace(/\/$/, '');
    for (const [label, bases] of [
      ['one instance', [issuer]],
      ['two instances', [issuer, secondBase]],
    ] as const) {
      const set = await tokens();
      const replies = await race(10, (index) =>
        refresh(set.refresh_token, ctx.web1Auth, {}, bases[index % bases.length]),
      );
      const statuses = replies.map((reply) => reply.status);
      const wins = replies.filter((reply) => reply.status === 200);
      t.ok(wins.length <= 1, `${label}: at most one 200 (${statuses.join(',')})`);
      t.equal(
        replies.filter((reply) => reply.status === 400 && reply.body.error === 'invalid_grant').length,
        10 - wins.length,
        `${label}: the others get 400 invalid_grant`,
      );
      t.equal(statuses.filter((status) => status >= 500).length, 0, `${label}: zero 5xx`);
      // A loser that finds the token already used treats it as a replay and
      // revokes the grant (RT-1), which may include the winner's new token.
      // There is no grace window. At most one refresh token of the grant stays valid.
      const candidates = [set.refresh_token, ...wins.map((reply) => (reply.body as TokenSet).refresh_token)];
      const active = [];
      for (const candidate of candidates) if ((await introspect(candidate)).active) active.push(candidate);
      t.ok(active.length <= 1, `${label}: at most one valid refresh token afterwards (${active.length})`);
      t.not(active[0], set.refresh_token, `${label}: and never the one that was raced`);
    }
  });

  t.test('RT-3 refresh cannot widen the scope; narrowing keeps the refresh token’s scope', async (t) => {
    const set = await tokens({ scope: 'openid profile offline_access' });
    for (const scope of ['openid profile email', 'admin']) {
      const wider = await refresh(set.refresh_token, ctx.web1Auth, { scope });
      t.equal(wider.status, 400, `scope=${scope}: 400`);
      t.equal(wider.body.error, 'invalid_scope', `scope=${scope}: invalid_scope`);
      t.notOk(wider.body.access_token, `scope=${scope}: no token`);
    }
    const narrow = await refresh(set.refresh_token, ctx.web1Auth, { scope: 'openid' });
    t.equal(narrow.status, 200, 'scope=openid: 200 (the refused attempts did not use the token up)');
    const narrowed = narrow.body as TokenSet;
    t.equal(narrowed.scope, 'openid', 'the response says openid');
    t.equal((await introspect(narrowed.access_token)).scope, 'openid', 'the new AT is limited to openid');
    const kept = (await introspect(narrowed.refresh_token)).scope.split(' ').sort();
    t.same(kept, ['offline_access', 'openid', 'profile'], 'the new RT keeps the original scope');
  });

  t.test('RT-4 a refresh token is bound to its client, which must authenticate', async (t) => {
    const set = await tokens();
    const web2 = await refresh(set.refresh_token, ctx.web2Auth);
    t.equal(web2.status, 400, 'Basic web2: 400');
    t.equal(web2.body.error, 'invalid_grant', 'Basic web2: invalid_grant');
    const noSecret = await refresh(set.refresh_token, null, { client_id: ctx.web1.client.client_id });
    t.equal(
      noSecret.status,
      401,
      `client_id=web1 without a secret: 401 (got ${noSecret.status} ${noSecret.text})`,
    );
    t.equal(noSecret.body.error, 'invalid_client', 'without a secret: invalid_client');
    const wrong = await refresh(set.refresh_token, basic(ctx.web1.client.client_id, 'wrong-secret'));
    t.equal(wrong.status, 401, 'a wrong secret: 401');
    t.equal(wrong.body.error, 'invalid_client', 'a wrong secret: invalid_client');
    t.match(
      wrong.headers.get('www-authenticate') ?? '',
      /^Basic /,
      'a wrong secret: WWW-Authenticate: Basic (RFC 6749 §5.2)',
    );
    const after = await refresh(set.refresh_token);
    t.equal(after.status, 200, `the RT still works for web1 (got ${after.text})`);
  });

  t.test('RT-5 idle and absolute lifetimes end refresh chains', async (t) => {
    // The catalogue's test configuration: idle 60 s, absolute 180 s.
    const short = await startTestServer(t, {
      GATEHOUSE_REFRESH_TOKEN_IDLE_TTL: '60',
      GATEHOUSE_REFRESH_TOKEN_ABSOLUTE_TTL: '180',
    });
    const s = await setUp(short);
    await s.createUser('carol@example.com');
    const browser = new Agent();
    const start = async () => s.exchange((await s.flow('carol@example.com', { agent: browser })).code);

    // "Rotate every 30 s": before each refresh the current token is moved 30 s
    // into the past, iiat (the chain's start, which rotation carries over)
    // included, so the chain ages as it would in real time. The grant is left
    // alone: what must end the chain is the refresh token's own lifetime,
    // capped by iiat + absolute TTL (oidc/provider.ts refreshTokenTtl).
    let current = (await start()).refresh_token;
    t.ok((await s.secondsLeft(current)) <= 60, 'a fresh refresh token lives the idle TTL');
    for (let elapsed = 30; elapsed <= 150; elapsed += 30) {
      await s.age(current, 30);
      const rotated = await s.refresh(current);
      t.equal(rotated.status, 200, `${elapsed} s into the chain: rotates`);
      current = (rotated.body as TokenSet).refresh_token;
    }
    const left = await s.secondsLeft(current);
    t.ok(left <= 30.5, `the token issued at 150 s lives only to 180 s (${left.toFixed(1)} s left)`);
    await s.age(current, 30);
    const dead = await s.refresh(current);
    t.equal(dead.status, 400, '180 s into the chain: refused although every rotation renewed the token');
    t.equal(dead.body.error, 'invalid_grant', 'invalid_grant');
    await s.age(current, 20);
    t.equal((await s.refresh(current)).body.error, 'invalid_grant', '200 s: still refused');

    const idle = (await start()).refresh_token;
    await s.age(idle, 70);
    const idleReply = await s.refresh(idle);
    t.equal(idleReply.status, 400, 'left idle for 70 s: refused');
    t.equal(idleReply.body.error, 'invalid_grant', 'left idle for 70 s: invalid_grant');
    const resting = (await start()).refresh_token;
    await s.age(resting, 50);
    t.equal((await s.refresh(resting)).status, 200, 'control: idle for 50 s still works');
  });

  t.test('RT-6 security events kill refresh tokens and opaque access tokens', async (t) => {
    const ops = await gatehouse.clients.create(
      { name: 'ops', grants: ['client_credentials'], scope: 'admin', resources: [`${issuer}/admin`] },
      { actor: 'test' },
    );
    const cc = await post(
      `${issuer}/token`,
      { grant_type: 'client_credentials', resource: `${issuer}/admin` },
      basic(ops.client.client_id, ops.client_secret!),
    );
    t.equal(cc.status, 200, 'fixture: an admin token');
    const admin = (method: string, path: string, body?: unknown) =>
      send(`${issuer}/admin${path}`, {
        method,
        headers: {
          authorization: `Bearer ${cc.body.access_token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const newPassword = 'an entirely different passphrase';

    const events: [string, { totp?: boolean }, (id: string, email: string) => Promise<number>][] = [
      [
        'password change (admin API)',
        {},
        async (id) => (await admin('PATCH', `/users/${id}`, { password: newPassword })).status,
      ],
      [
        'password change (gatehouse user set-password)',
        {},
        async (_id, email) => {
          await gatehouse.users.setPassword(email, newPassword, { actor: 'cli' });
          return 200;
        },
      ],
      [
        'account disabled',
        {},
        async (id) => (await admin('PATCH', `/users/${id}`, { disabled: true })).status,
      ],
      ['MFA reset', { totp: true }, async (id) => (await admin('DELETE', `/users/${id}/mfa`)).status],
      [
        'log out everywhere',
        {},
        async (id) => (await admin('POST', `/users/${id}/revoke-sessions`, {})).status,
      ],
    ];
    for (const [index, [label, options, event]] of events.entries()) {
      const email = `event${index}@example.com`;
      const user = await ctx.createUser(email, options);
      const signIn = await flow(email);
      if (options.totp) t.same(signIn.pages, ['login', 'mfa'], `${label}: fixture signs in with TOTP`);
      const set = await exchange(signIn.code);
      t.equal((await userinfo(set.access_token)).status, 200, `${label}: control, the AT works before`);
      const status = await event(user.id, email);
      t.ok(status >= 200 && status < 300, `${label}: the event is accepted (${status})`);
      const refreshed = await refresh(set.refresh_token);
      t.equal(refreshed.status, 400, `${label}: refresh with the old RT is refused`);
      t.equal(
        refreshed.body.error,
        'invalid_grant',
        `${label}: invalid_grant (got ${refreshed.status} ${refreshed.body.error ?? 'a new token set'})`,
      );
      t.equal((await userinfo(set.access_token)).status, 401, `${label}: the old opaque AT gets 401`);
    }

    // Consent revocation: Gatehouse has no separate "revoke consent" action;
    // "log out everywhere" also forgets remembered consents. For a third-party
    // client (web2): the tokens die and the next sign-in asks for consent again.
    const email = 'consent@example.com';
    const user = await ctx.createUser(email);
    const first = await flow(email, { client: 'web2' });
    t.ok(first.pages.includes('confirm'), 'fixture: web2 asks for consent');
    const set = await exchange(first.code, 'web2');
    const remembered = await flow(email, { client: 'web2', params: { prompt: undefined, scope: 'openid' } });
    t.notOk(remembered.pages.includes('confirm'), 'fixture: the consent is remembered');
    t.equal((await admin('POST', `/users/${user.id}/revoke-sessions`, {})).status, 204, 'consents revoked');
    const refreshed = await refresh(set.refresh_token, ctx.web2Auth);
    t.equal(refreshed.body.error, 'invalid_grant', 'consent revoked: the RT is refused');
    t.equal((await userinfo(set.access_token)).status, 401, 'consent revoked: the AT gets 401');
    const again = await flow(email, { client: 'web2', params: { prompt: undefined, scope: 'openid' } });
    t.ok(again.pages.includes('confirm'), 'consent revoked: the next sign-in asks again');
  });

  t.test('RV-1 revoking a refresh token ends its grant; revoking an AT ends that AT', async (t) => {
    const set = await tokens();
    t.equal((await introspect(set.access_token)).active, true, 'control: rs1 sees the AT active');
    const revoked = await revoke({ token: set.refresh_token, token_type_hint: 'refresh_token' });
    t.equal(revoked.status, 200, 'revocation: 200');
    t.equal(revoked.text, '', 'with an empty body');
    t.equal((await refresh(set.refresh_token)).body.error, 'invalid_grant', 'the RT: invalid_grant');
    t.equal((await userinfo(set.access_token)).status, 401, "the grant's AT: 401");
    t.same(await introspect(set.refresh_token), { active: false }, 'the RT introspects inactive');
    t.same(await introspect(set.access_token), { active: false }, 'the AT introspects inactive');

    const other = await tokens();
    const atOnly = await revoke({ token: other.access_token, token_type_hint: 'access_token' });
    t.equal(atOnly.status, 200, 'revoking an opaque AT: 200');
    t.equal(atOnly.text, '', 'with an empty body');
    t.equal((await userinfo(other.access_token)).status, 401, 'the AT is dead at once');
    t.same(await introspect(other.access_token), { active: false }, 'and introspects inactive');

    // JWT access tokens are not stored, so they cannot be revoked: oidc-provider
    // says so (unsupported_token_type). They expire with their short TTL (README).
    const jwtSet = await exchange(
      (
        await flow('bob@example.com', {
          agent: bobBrowser,
          params: { scope: 'openid api.read', resource: API },
        })
      ).code,
      'web1',
      { resource: API },
    );
    await jwtVerify(jwtSet.access_token, createRemoteJWKSet(new URL(`${issuer}/jwks`)), {
      issuer,
      audience: API,
    });
    const jwt = await revoke({ token: jwtSet.access_token });
    t.equal(jwt.status, 400, 'revoking a JWT AT: 400');
    t.equal(jwt.body.error, 'unsupported_token_type', 'unsupported_token_type (documented)');
  });

  t.test(
    'RV-2 revocation answers the same for garbage, expired, revoked and mis-hinted tokens',
    async (t) => {
      const expired = (await tokens()).refresh_token;
      await ctx.age(expired, 60 * 60 * 24 * 31);
      const revoked = (await tokens()).refresh_token;
      t.equal((await revoke({ token: revoked })).status, 200, 'fixture: revoked once');
      const misHinted = await tokens();
      const cases: [string, Record<string, string>][] = [
        ['garbage', { token: 'garbage-token-value' }],
        ['expired', { token: expired, token_type_hint: 'refresh_token' }],
        ['already revoked', { token: revoked, token_type_hint: 'refresh_token' }],
        ['wrong token_type_hint', { token: misHinted.refresh_token, token_type_hint: 'access_token' }],
      ];
      const answers = new Set<string>();
      for (const [label, form] of cases) {
        const reply = await revoke(form);
        t.equal(reply.status, 200, `${label}: 200`);
        answers.add(`${reply.status} ${reply.headers.get('content-type')} ${reply.text}`);
      }
      t.equal(answers.size, 1, `one answer for every case: ${[...answers].join(' | ')}`);
      // Timing is not asserted here (wall-clock assertions are flaky); every case
      // is one lookup by digest, as LG-4 reasons for sign-in.
    },
  );

  t.test('RV-3 nobody else revokes a client’s token; revocation needs authentication', async (t) => {
    const set = await tokens();
    const web2 = await revoke({ token: set.refresh_token, token_type_hint: 'refresh_token' }, ctx.web2Auth);
    t.ok(
      web2.status === 200 || (web2.status === 400 && web2.body.error === 'invalid_request'),
      `Basic web2: a 200 no-op or 400 invalid_request (${web2.status} ${web2.text})`,
    );
    const noSecret = await revoke({ token: set.refresh_token, client_id: ctx.web1.client.client_id }, null);
    t.equal(
      noSecret.status,
      401,
      `client_id=web1 without a secret: 401 (got ${noSecret.status} ${noSecret.text})`,
    );
    t.equal(noSecret.body.error, 'invalid_client', 'without a secret: invalid_client');
    const spa = await revoke({ token: set.refresh_token, client_id: ctx.spa1.client.client_id }, null);
    t.ok(
      spa.status === 200 || (spa.status === 400 && spa.body.error === 'invalid_request'),
      `public spa1: a 200 no-op or 400 invalid_request (${spa.status} ${spa.text})`,
    );
    t.equal((await introspect(set.refresh_token)).active, true, 'the RT is still active');
    t.equal((await refresh(set.refresh_token)).status, 200, 'and still refreshes for web1');
  });
});
