// SECURITY-CATALOGUE §1 C (authorization codes, AC-1…AC-5) and D (state,
// nonce, iss, prompt: SN-1…SN-4), black-box against a listening Gatehouse.
// Each test is named after its row. Fixtures follow the catalogue: web1 and
// web2 (confidential), svc1 (private_key_jwt) and svc2 (client_secret_basic)
// client-credentials services, rs1 (the resource server allowed to introspect),
// alice (password + TOTP) and bob (password only). No test sleeps: where a row
// waits for time to pass, the stored artifact's timestamps are moved instead.
import { request as httpRequest } from 'node:http';
import { createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { generateSync } from 'otplib';
import t, { type Test } from 'tap';
import { sha256 } from '../../src/lib/tokens.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { startTestServer } from '../helpers/server.ts';
import { Agent, csrfOf, formActionOf, type Step } from '../helpers/sign-in.ts';

const APP1 = 'https://app1.test/cb';
const APP2 = 'https://app2.test/cb';
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

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

function responseParams(location: string): URLSearchParams {
  const url = new URL(location);
  return url.hash ? new URLSearchParams(url.hash.slice(1)) : url.searchParams;
}

function withoutQuery(location: string): string {
  const url = new URL(location);
  return `${url.origin}${url.pathname}`;
}

async function send(url: string, init: RequestInit): Promise<Reply> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown = {};
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, headers: response.headers, body, text };
}

/** A form POST; `body` as a string is sent byte for byte (for duplicated parameters). */
function post(url: string, body: Record<string, string> | string, auth?: string): Promise<Reply> {
  return send(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(auth ? { authorization: auth } : {}),
    },
    body: typeof body === 'string' ? body : new URLSearchParams(body),
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

/** GET with explicit Host / X-Forwarded-* headers (fetch does not let a caller set Host). */
function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; location?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, location: response.headers.location, body }),
      );
    });
    request.on('error', reject);
    request.end();
  });
}

t.test('catalogue C and D: authorization codes; state, nonce, iss and prompt', async (t) => {
  const databaseUrl = await createTestDatabase(t);
  const server = await startTestServer(t, {}, { databaseUrl });
  const { issuer, gatehouse } = server;
  const actor = { actor: 'test' };
  const db = gatehouse.db;

  const web1 = await gatehouse.clients.create(
    {
      name: 'web1',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: [APP1],
      scope: 'openid profile email offline_access api.read',
      resources: [API],
      // First-party: no consent page, so every code below costs one redirect chain.
      first_party: true,
    },
    actor,
  );
  const web2 = await gatehouse.clients.create(
    { name: 'web2', grants: ['authorization_code'], redirect_uris: [APP2], scope: 'openid profile' },
    actor,
  );
  const svc1Keys = await generateKeyPair('ES256', { extractable: true });
  const svc1Jwk = { ...(await exportJWK(svc1Keys.publicKey)), kid: 'svc1-key', alg: 'ES256', use: 'sig' };
  const svc1 = await gatehouse.clients.create(
    {
      name: 'svc1',
      grants: ['client_credentials'],
      scope: 'api.read',
      resources: [API],
      auth_method: 'private_key_jwt',
      jwks: { keys: [svc1Jwk] },
    },
    actor,
  );
  const svc2 = await gatehouse.clients.create(
    { name: 'svc2', grants: ['client_credentials'], scope: 'api.read', resources: [API] },
    actor,
  );
  const rs1 = await gatehouse.clients.create(
    { name: 'rs1', grants: ['client_credentials'], resources: [API], introspection: true },
    actor,
  );
  const web1Id = web1.client.client_id;
  const web1Auth = basic(web1Id, web1.client_secret!);
  const web2Auth = basic(web2.client.client_id, web2.client_secret!);
  const rs1Auth = basic(rs1.client.client_id, rs1.client_secret!);
  const bob = await gatehouse.users.create({ email: 'bob@example.com', password: PASSWORD }, actor);
  const alice = await gatehouse.users.create({ email: 'alice@example.com', password: PASSWORD }, actor);
  const aliceTotp = await gatehouse.mfa.enrollForOperator('alice@example.com', actor);

  const ar = (overrides: Params = {}): Params => ({
    response_type: 'code',
    client_id: web1Id,
    redirect_uri: APP1,
    scope: 'openid',
    state: 'S',
    nonce: 'N',
    code_challenge: CH,
    code_challenge_method: 'S256',
    ...overrides,
  });
  const authorizeUrl = (params: Params, base = issuer) => {
    const url = new URL(`${base}/auth`);
    for (const [key, value] of Object.entries(params))
      if (value !== undefined) url.searchParams.set(key, value);
    return url.toString();
  };
  /** The AR, followed through the AS's own redirects to where it leaves the AS (or a page). */
  const authorize = async (agent: Agent, params: Params) =>
    agent.follow(await agent.request(authorizeUrl(params)), issuer);

  /** The TOTP for alice; her last accepted step is cleared first so a row never waits for the clock (LG-5 covers replay). */
  const aliceCode = async () => {
    await db.user.update({ where: { id: alice.id }, data: { totpLastStep: null } });
    return generateSync({ secret: aliceTotp.secret });
  };

  /**
   * Answers the sign-in pages from `step` on (login, second factor, consent)
   * and returns where the flow leaves the AS, with the forms it saw.
   */
  async function drive(
    agent: Agent,
    step: Step,
    who: { email: string; totp?: boolean },
    consent: 'approve' | 'deny' = 'approve',
  ): Promise<{ step: Step; pages: string[] }> {
    const pages: string[] = [];
    let current = await agent.follow(step, issuer);
    for (let count = 0; count < 6 && current.status === 200; count++) {
      const action = new URL(formActionOf(current.body), issuer).toString();
      const page = action.split('/').at(-1)!;
      pages.push(page);
      const form: Record<string, string> = { csrf: csrfOf(current.body) };
      let target = action;
      if (page === 'login') Object.assign(form, { username: who.email, password: PASSWORD });
      else if (page === 'mfa') form.code = await aliceCode();
      else if (page === 'confirm' && consent === 'deny')
        target = new URL(formActionOf(current.body, 1), issuer).toString();
      current = await agent.follow(await agent.request(target, { form }), issuer);
    }
    return { step: current, pages };
  }

  /** A browser signed in (first-party web1) as the given user. */
  async function signedInAs(who: { email: string; totp?: boolean }): Promise<Agent> {
    const agent = new Agent();
    const { step } = await drive(agent, await agent.request(authorizeUrl(ar())), who);
    if (!step.location?.startsWith(APP1)) throw new Error(`sign-in failed: ${step.status} ${step.location}`);
    return agent;
  }

  const bobBrowser = await signedInAs({ email: 'bob@example.com' });

  /** A fresh code for web1 from bob's browser (no page is shown: first-party, signed in). */
  async function mintCode(overrides: Params = {}): Promise<string> {
    const step = await authorize(bobBrowser, ar(overrides));
    const code = step.location ? responseParams(step.location).get('code') : null;
    if (!code) throw new Error(`no code: ${step.status} ${step.location} ${step.body.slice(0, 200)}`);
    return code;
  }
  const tr = (code: string, extra: Record<string, string> = {}, auth = web1Auth, base = issuer) =>
    post(
      `${base}/token`,
      { grant_type: 'authorization_code', code, redirect_uri: APP1, code_verifier: V, ...extra },
      auth,
    );
  const userinfo = (token: string) => send(`${issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
  const introspect = (token: string) => post(`${issuer}/token/introspection`, { token }, rs1Auth);
  const refresh = (token: string) =>
    post(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: token }, web1Auth);
  const codeKey = (code: string) => ({ kind_id: { kind: 'AuthorizationCode', id: sha256(code) } });

  /** Moves a stored code `seconds` into the past: its issue time, expiry, and (when used) when it was used. */
  async function age(code: string, seconds: number) {
    const row = await db.oidcArtifact.findUniqueOrThrow({ where: codeKey(code) });
    const payload = row.payload as { iat: number; exp: number };
    await db.oidcArtifact.update({
      where: codeKey(code),
      data: {
        payload: { ...payload, iat: payload.iat - seconds, exp: payload.exp - seconds },
        expiresAt: new Date(row.expiresAt!.getTime() - seconds * 1000),
        ...(row.consumedAt ? { consumedAt: new Date(row.consumedAt.getTime() - seconds * 1000) } : {}),
      },
    });
  }

  async function replayRevokes(t: Test, label: string, secondsLater: number) {
    const code = await mintCode({ scope: 'openid offline_access', prompt: 'consent' });
    const first = await tr(code);
    t.equal(first.status, 200, `${label}: the first TR succeeds`);
    const { access_token: at1, refresh_token: rt1 } = first.body as Record<string, string>;
    t.ok(rt1, `${label}: with a refresh token`);
    t.equal((await introspect(at1!)).body.active, true, `${label}: rs1 sees AT1 active before the replay`);
    // "Repeat the TR after 1 s / 30 s": what counts is that the used code is still
    // remembered then. Time is moved on the stored code instead of waiting.
    if (secondsLater > 1) await age(code, secondsLater);
    const replay = await tr(code);
    t.equal(replay.status, 400, `${label}: the replay is refused`);
    t.equal(replay.body.error, 'invalid_grant', `${label}: invalid_grant`);
    const me = await userinfo(at1!);
    t.equal(me.status, 401, `${label}: AT1 is revoked at /me`);
    t.match(me.headers.get('www-authenticate') ?? '', /error="invalid_token"/, `${label}: invalid_token`);
    const refreshed = await refresh(rt1!);
    t.equal(refreshed.status, 400, `${label}: RT1 is revoked`);
    t.equal(refreshed.body.error, 'invalid_grant', `${label}: invalid_grant for RT1`);
    t.same((await introspect(at1!)).body, { active: false }, `${label}: AT1 introspects inactive`);
    t.same((await introspect(rt1!)).body, { active: false }, `${label}: RT1 introspects inactive`);
  }

  t.test('AC-1 replaying a code is refused and revokes what the code issued', async (t) => {
    await replayRevokes(t, 'replay after 1 s', 1);
    await replayRevokes(t, 'replay after 30 s', 30);

    // JWT access tokens are not stored, so they cannot be recalled: their
    // residual validity after a replay is bounded by their lifetime (SPEC:
    // GATEHOUSE_ACCESS_TOKEN_TTL, default 600 s; documented in the README).
    const code = await mintCode({ scope: 'openid api.read', resource: API });
    const first = await tr(code, { resource: API });
    t.equal(first.status, 200, 'a JWT access token for the API');
    t.equal(
      (await tr(code, { resource: API })).body.error,
      'invalid_grant',
      'its code cannot be replayed either',
    );
    const { payload } = await jwtVerify(
      first.body.access_token,
      createRemoteJWKSet(new URL(`${issuer}/jwks`)),
      {
        issuer,
        audience: API,
      },
    );
    t.ok(
      payload.exp! - payload.iat! <= 600,
      `the JWT's residual validity is at most 600 s (${payload.exp! - payload.iat!})`,
    );
  });

  t.test('AC-2 twenty parallel exchanges of one code: one success, no 5xx, one token set', async (t) => {
    // Two instances share the database and the issuer; requests alternate.
    const second = await startTestServer(t, { GATEHOUSE_ISSUER: issuer }, { databaseUrl });
    const secondBase = second.url.replace(/\/$/, '');
    for (const [label, bases] of [
      ['one instance', [issuer]],
      ['two instances', [issuer, secondBase]],
    ] as const) {
      const code = await mintCode({ scope: 'openid offline_access', prompt: 'consent' });
      const { grantId } = await db.oidcArtifact.findUniqueOrThrow({ where: codeKey(code) });
      const replies = await race(20, (index) => tr(code, {}, web1Auth, bases[index % bases.length]));
      const statuses = replies.map((reply) => reply.status);
      t.equal(
        statuses.filter((status) => status === 200).length,
        1,
        `${label}: exactly one 200 (${statuses.join(',')})`,
      );
      t.equal(
        replies.filter((reply) => reply.status === 400 && reply.body.error === 'invalid_grant').length,
        19,
        `${label}: nineteen 400 invalid_grant`,
      );
      t.equal(statuses.filter((status) => status >= 500).length, 0, `${label}: zero 5xx`);
      // A loser that finds the code already used treats it as a replay and
      // revokes the grant (AC-1), which may take the winner's tokens with it:
      // accepted by the catalogue. Either way the database never holds more
      // than one token set for the code.
      for (const kind of ['AccessToken', 'RefreshToken']) {
        const count = await db.oidcArtifact.count({ where: { kind, grantId } });
        t.ok(count <= 1, `${label}: at most one ${kind} stored for the grant (${count})`);
      }
    }
  });

  t.test('AC-3 a code is bound to its client and redirect_uri', async (t) => {
    const code = await mintCode();
    const otherClient = await tr(code, {}, web2Auth);
    t.equal(otherClient.status, 400, 'web2 with web1’s code: 400');
    t.equal(otherClient.body.error, 'invalid_grant', 'web2 with web1’s code: invalid_grant');
    const otherUri = await tr(code, { redirect_uri: 'https://app1.test/cb2' });
    t.equal(otherUri.status, 400, 'another redirect_uri: 400');
    t.equal(otherUri.body.error, 'invalid_grant', 'another redirect_uri: invalid_grant');
    const omitted = await post(
      `${issuer}/token`,
      { grant_type: 'authorization_code', code, code_verifier: V },
      web1Auth,
    );
    t.equal(omitted.status, 400, 'redirect_uri omitted: 400');
    // RFC 6749 §5.2 names a missing required parameter invalid_request; the
    // catalogue's invalid_grant is for a mismatch. Either way, no token.
    t.ok(
      ['invalid_grant', 'invalid_request'].includes(omitted.body.error),
      `redirect_uri omitted: ${omitted.text}`,
    );
    t.notOk(omitted.body.access_token, 'redirect_uri omitted: no token');
    const legit = await tr(code);
    t.equal(legit.status, 200, 'the code still works for web1 with the right URI');
  });

  t.test('AC-4 expired, forged and absurd codes: one response shape, no 5xx, no DB text', async (t) => {
    const ttlCode = await mintCode();
    const stored = await db.oidcArtifact.findUniqueOrThrow({ where: codeKey(ttlCode) });
    const ttl = (stored.expiresAt!.getTime() - Date.now()) / 1000;
    t.ok(ttl <= 60, `codes live at most 60 s (ASVS 10.4.3 L3): ${ttl.toFixed(1)} s left`);
    // "TR after TTL + 5 s", without waiting: the stored code is moved 65 s into the past.
    await age(ttlCode, 65);
    const cases: [string, string, string][] = [
      [
        'expired (TTL + 5 s)',
        new URLSearchParams({
          grant_type: 'authorization_code',
          code: ttlCode,
          redirect_uri: APP1,
          code_verifier: V,
        }).toString(),
        'invalid_grant',
      ],
      ...(
        [
          ['random 43 chars', oidc.randomPKCECodeVerifier()],
          ['SQL-shaped', "' OR '1'='1"],
          ['8 KB', 'A'.repeat(8192)],
        ] as const
      ).map(([label, code]): [string, string, string] => [
        label,
        new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: APP1,
          code_verifier: V,
        }).toString(),
        'invalid_grant',
      ]),
      [
        'empty',
        `grant_type=authorization_code&code=&redirect_uri=${encodeURIComponent(APP1)}&code_verifier=${V}`,
        'invalid_request',
      ],
      [
        'duplicated',
        `grant_type=authorization_code&code=a&code=b&redirect_uri=${encodeURIComponent(APP1)}&code_verifier=${V}`,
        'invalid_request',
      ],
    ];
    const grantBodies = new Set<string>();
    for (const [label, body, error] of cases) {
      const reply = await post(`${issuer}/token`, body, web1Auth);
      t.equal(reply.status, 400, `${label}: 400`);
      t.equal(reply.body.error, error, `${label}: ${error}`);
      t.same(Object.keys(reply.body).sort(), ['error', 'error_description'], `${label}: the usual shape`);
      t.match(reply.headers.get('content-type') ?? '', /^application\/json/, `${label}: JSON`);
      t.notMatch(
        reply.text,
        /prisma|postgres|sql|select |syntax|relation|stack|\.ts:|\.js:/i,
        `${label}: no DB text`,
      );
      if (error === 'invalid_grant') grantBodies.add(reply.text);
    }
    t.equal(grantBodies.size, 1, 'every invalid_grant answer is byte-identical');
  });

  t.test('AC-5 grant types a client must not use are refused', async (t) => {
    const assertion = () =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'svc1-key' })
        .setIssuer(svc1.client.client_id)
        .setSubject(svc1.client.client_id)
        .setAudience(issuer)
        .setJti(oidc.randomState())
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(svc1Keys.privateKey);
    const svc1Auth = async () => ({
      client_id: svc1.client.client_id,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion(),
    });
    const control = await post(`${issuer}/token`, {
      grant_type: 'client_credentials',
      ...(await svc1Auth()),
    });
    t.equal(control.status, 200, 'fixture: svc1 authenticates with its key');

    const code = await mintCode();
    const svc1Code = await post(`${issuer}/token`, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: APP1,
      code_verifier: V,
      ...(await svc1Auth()),
    });
    t.equal(svc1Code.status, 400, 'svc1 authorization_code: 400');
    t.equal(
      svc1Code.body.error,
      'unauthorized_client',
      `svc1 authorization_code: unauthorized_client (RFC 6749 §5.2), got ${svc1Code.text}`,
    );
    t.notOk(svc1Code.body.access_token, 'svc1 authorization_code: no token');
    const svc2Code = await tr(code, {}, basic(svc2.client.client_id, svc2.client_secret!));
    t.equal(
      svc2Code.body.error,
      'unauthorized_client',
      `svc2 authorization_code: unauthorized_client (RFC 6749 §5.2), got ${svc2Code.text}`,
    );
    t.notOk(svc2Code.body.access_token, 'svc2 authorization_code: no token');
    const web1Cc = await post(
      `${issuer}/token`,
      { grant_type: 'client_credentials', resource: API },
      web1Auth,
    );
    t.equal(web1Cc.status, 400, 'web1 client_credentials: 400');
    t.equal(
      web1Cc.body.error,
      'unauthorized_client',
      `web1 client_credentials: unauthorized_client (RFC 6749 §5.2), got ${web1Cc.text}`,
    );
    t.notOk(web1Cc.body.access_token, 'web1 client_credentials: no token');
    const password = await post(
      `${issuer}/token`,
      { grant_type: 'password', username: 'bob@example.com', password: PASSWORD },
      web1Auth,
    );
    t.equal(password.status, 400, 'password grant: 400');
    t.equal(password.body.error, 'unsupported_grant_type', 'password grant: unsupported_grant_type');
    t.notOk(password.body.access_token);
    const metadata = (await send(`${issuer}/.well-known/openid-configuration`, {})).body;
    t.notOk(metadata.grant_types_supported.includes('password'), 'discovery: no password grant');
    t.notOk(metadata.grant_types_supported.includes('implicit'), 'discovery: no implicit grant');
  });

  t.test('SN-1 state comes back byte-identical on success and error paths, and only when sent', async (t) => {
    const state = '&=+%/?#ü '.repeat(120).slice(0, 1024);
    t.equal(state.length, 1024, 'fixture: a 1 KB state');
    const success = await authorize(bobBrowser, ar({ state }));
    t.equal(withoutQuery(success.location!), APP1, 'success path');
    t.ok(responseParams(success.location!).get('code'), 'success path: a code');
    t.equal(responseParams(success.location!).get('state'), state, 'success path: state byte-identical');
    const error = await authorize(bobBrowser, ar({ state, code_challenge: undefined }));
    t.equal(responseParams(error.location!).get('error'), 'invalid_request', 'error path');
    t.equal(responseParams(error.location!).get('state'), state, 'error path: state byte-identical');
    const noState = await authorize(bobBrowser, ar({ state: undefined }));
    t.notOk(responseParams(noState.location!).has('state'), 'success path without state: none comes back');
    const noStateError = await authorize(bobBrowser, ar({ state: undefined, code_challenge: undefined }));
    t.equal(responseParams(noStateError.location!).get('error'), 'invalid_request');
    t.notOk(responseParams(noStateError.location!).has('state'), 'error path without state: none comes back');
  });

  t.test(
    'SN-2 nonce round-trips; the code flow works without one; front-channel ID tokens are refused',
    async (t) => {
      const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
      const withNonce = await tr(await mintCode({ nonce: 'N-0123456789' }));
      const { payload } = await jwtVerify(withNonce.body.id_token, jwks, { issuer, audience: web1Id });
      t.equal(payload.nonce, 'N-0123456789', 'the ID token carries the nonce');
      const without = await tr(await mintCode({ nonce: undefined }));
      t.equal(without.status, 200, 'the code flow succeeds without a nonce');
      const { payload: bare } = await jwtVerify(without.body.id_token, jwks, { issuer, audience: web1Id });
      t.notOk('nonce' in bare, 'and its ID token has no nonce');
      // Implicit and hybrid are off (responseTypes: ['code']), so a front-channel
      // ID token is refused before the nonce is even looked at.
      for (const responseType of ['id_token', 'code id_token', 'id_token token']) {
        const step = await authorize(bobBrowser, ar({ response_type: responseType, nonce: undefined }));
        const params = responseParams(step.location!);
        t.ok(
          ['invalid_request', 'unsupported_response_type'].includes(params.get('error') ?? ''),
          `${responseType} without nonce: refused (${params.get('error')})`,
        );
        t.notOk(params.has('id_token') || params.has('code'), `${responseType}: no ID token or code`);
      }
    },
  );

  t.test('SN-3 every authorization response carries iss; the issuer ignores Host', async (t) => {
    const metadata = (await send(`${issuer}/.well-known/openid-configuration`, {})).body;
    t.equal(metadata.issuer, issuer, 'discovery issuer');
    t.equal(metadata.authorization_response_iss_parameter_supported, true, 'RFC 9207 advertised');
    const responses: [string, Step][] = [];
    responses.push(['success', await authorize(bobBrowser, ar())]);
    responses.push([
      'invalid_scope',
      await authorize(
        bobBrowser,
        ar({ client_id: web2.client.client_id, redirect_uri: APP2, scope: 'openid email' }),
      ),
    ]);
    responses.push(['login_required', await authorize(new Agent(), ar({ prompt: 'none' }))]);
    const denying = new Agent();
    const denied = await drive(
      denying,
      await denying.request(authorizeUrl(ar({ client_id: web2.client.client_id, redirect_uri: APP2 }))),
      { email: 'bob@example.com' },
      'deny',
    );
    responses.push(['access_denied', denied.step]);
    for (const [label, step] of responses) {
      const params = responseParams(step.location!);
      if (label !== 'success') t.equal(params.get('error'), label, `${label}: the expected error`);
      t.equal(params.get('iss'), metadata.issuer, `${label}: iss equals the discovery issuer`);
    }
    const code = responseParams(responses[0]![1].location!).get('code')!;
    t.equal(decodeJwt((await tr(code)).body.id_token).iss, metadata.issuer, 'the ID token iss is the same');

    const spoofed = { host: 'evil.test', 'x-forwarded-host': 'evil.test', 'x-forwarded-proto': 'https' };
    const discovery = await rawGet(`${issuer}/.well-known/openid-configuration`, spoofed);
    const spoofedMetadata = JSON.parse(discovery.body);
    t.equal(spoofedMetadata.issuer, issuer, 'Host / X-Forwarded-Host do not change the issuer');
    for (const [name, value] of Object.entries(spoofedMetadata)) {
      if (name.endsWith('_endpoint') || name === 'jwks_uri')
        t.ok(String(value).startsWith(`${issuer}/`), `nor ${name} (${value})`);
    }
    const redirected = await rawGet(authorizeUrl(ar({ code_challenge: undefined })), spoofed);
    t.equal(responseParams(redirected.location!).get('iss'), issuer, 'nor the iss of a redirect');
  });

  t.test(
    'SN-4 prompt=none never shows UI; max_age and prompt=login force password and TOTP again',
    async (t) => {
      const none = await authorize(new Agent(), ar({ prompt: 'none' }));
      t.equal(
        withoutQuery(none.location!),
        APP1,
        'prompt=none without a session: straight back to the client',
      );
      t.equal(responseParams(none.location!).get('error'), 'login_required', 'login_required');

      // bob is signed in but never consented to web2 (third-party).
      const web2Ar = { client_id: web2.client.client_id, redirect_uri: APP2 };
      const consent = await authorize(bobBrowser, ar({ ...web2Ar, prompt: 'none' }));
      t.equal(withoutQuery(consent.location!), APP2, 'prompt=none, consent needed: no UI');
      t.equal(responseParams(consent.location!).get('error'), 'consent_required', 'consent_required');
      // Consent to openid only, then ask silently for one more scope.
      const granted = await drive(bobBrowser, await bobBrowser.request(authorizeUrl(ar(web2Ar))), {
        email: 'bob@example.com',
      });
      t.ok(responseParams(granted.step.location!).get('code'), 'fixture: bob consents to web2 for openid');
      const moreScope = await authorize(
        bobBrowser,
        ar({ ...web2Ar, scope: 'openid profile', prompt: 'none' }),
      );
      t.equal(
        responseParams(moreScope.location!).get('error'),
        'consent_required',
        'a new scope silently: consent_required',
      );

      // alice signs in with password and TOTP.
      const browser = new Agent();
      const first = await drive(browser, await browser.request(authorizeUrl(ar())), {
        email: 'alice@example.com',
        totp: true,
      });
      t.same(first.pages, ['login', 'mfa'], 'fixture: alice signs in with password and TOTP');
      const exchange = async (step: Step) => {
        const code = responseParams(step.location!).get('code');
        if (!code) throw new Error(`no code: ${step.status} ${step.location}`);
        return decodeJwt((await tr(code)).body.id_token);
      };
      /** Moves alice's session sign-in time `seconds` into the past ("after 2 s", without waiting). */
      const ageSession = async (seconds: number) => {
        const sessions = await db.oidcArtifact.findMany({
          where: { kind: 'Session', payload: { path: ['accountId'], equals: alice.id } },
        });
        t.equal(sessions.length, 1, 'fixture: one session for alice');
        const payload = sessions[0]!.payload as { loginTs: number };
        await db.oidcArtifact.update({
          where: { kind_id: { kind: 'Session', id: sessions[0]!.id } },
          data: { payload: { ...payload, loginTs: payload.loginTs - seconds } },
        });
        return payload.loginTs - seconds;
      };

      const silent = await authorize(browser, ar({ prompt: 'none' }));
      t.ok(
        responseParams(silent.location!).get('code'),
        'control: a silent request with a fresh session succeeds',
      );
      let signedInAt = await ageSession(5);
      const maxAgeSilent = await authorize(browser, ar({ prompt: 'none', max_age: '1' }));
      t.equal(
        responseParams(maxAgeSilent.location!).get('error'),
        'login_required',
        'max_age=1 after 5 s, silently: login_required',
      );
      const maxAge = await drive(browser, await browser.request(authorizeUrl(ar({ max_age: '1' }))), {
        email: 'alice@example.com',
        totp: true,
      });
      t.same(maxAge.pages, ['login', 'mfa'], 'max_age=1 after 5 s: password and TOTP again');
      const afterMaxAge = await exchange(maxAge.step);
      t.ok(
        (afterMaxAge.auth_time as number) > signedInAt,
        `auth_time increases (${signedInAt} → ${afterMaxAge.auth_time})`,
      );
      t.same(afterMaxAge.amr, ['pwd', 'otp']);

      signedInAt = await ageSession(5);
      const login = await drive(browser, await browser.request(authorizeUrl(ar({ prompt: 'login' }))), {
        email: 'alice@example.com',
        totp: true,
      });
      t.same(login.pages, ['login', 'mfa'], 'prompt=login: password and TOTP again, though signed in');
      const afterLogin = await exchange(login.step);
      t.ok(
        (afterLogin.auth_time as number) > signedInAt,
        `auth_time increases (${signedInAt} → ${afterLogin.auth_time})`,
      );
      t.same(afterLogin.amr, ['pwd', 'otp']);
      t.ok(bob.id);
    },
  );
});
