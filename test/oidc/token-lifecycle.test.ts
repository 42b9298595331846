// What happens to tokens after sign-in: refresh rotation and reuse detection,
// single use of codes under concurrency, introspection and revocation rules,
// disabled users, and logout.
import * as oidc from 'openid-client';
import t from 'tap';
import { startTestServer } from '../helpers/server.ts';
import { Agent, discover, exchange, signIn } from '../helpers/sign-in.ts';

const REDIRECT = 'https://app.example.com/callback';
const LOGGED_OUT = 'https://app.example.com/logged-out';
const PASSWORD = 'correct horse battery staple';

t.test('token lifecycle', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const bob = await gatehouse.users.create(
    { email: 'bob@example.com', name: 'Bob', password: PASSWORD },
    { actor: 'test' },
  );
  const web = await gatehouse.clients.create(
    {
      name: 'Web',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      post_logout_redirect_uris: [LOGGED_OUT],
      scope: 'openid profile email offline_access',
      first_party: true,
    },
    { actor: 'test' },
  );
  const other = await gatehouse.clients.create(
    { name: 'Other', grants: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid' },
    { actor: 'test' },
  );
  const resourceServer = await gatehouse.clients.create(
    {
      name: 'RS',
      grants: ['client_credentials'],
      resources: ['https://api.example.com'],
      introspection: true,
    },
    { actor: 'test' },
  );
  const webId = web.client.client_id;
  const webSecret = web.client_secret!;
  const config = await discover(issuer, webId, webSecret);
  const offline = {
    issuer,
    config,
    redirectUri: REDIRECT,
    email: 'bob@example.com',
    password: PASSWORD,
    scope: 'openid profile offline_access',
    params: { prompt: 'consent' },
  };

  const basic = (id: string, secret: string) =>
    `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  const post = (path: string, form: Record<string, string>, auth = basic(webId, webSecret)) =>
    fetch(`${issuer}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
      body: new URLSearchParams(form),
    });
  const userinfo = (token: string) =>
    fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
  const introspect = async (token: string, auth: string) =>
    (await post('/token/introspection', { token }, auth)).json();

  await t.test('refresh tokens rotate; reusing one revokes the whole grant and is audited', async (t) => {
    const tokens = await exchange(config, await signIn(offline));
    t.ok(tokens.refresh_token, 'offline_access gives a refresh token');
    const rotated = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    t.not(rotated.refresh_token, tokens.refresh_token, 'a new refresh token on every use');
    t.equal((await userinfo(rotated.access_token)).status, 200);

    const reuse = await post('/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! });
    t.equal(reuse.status, 400);
    t.equal((await reuse.json()).error, 'invalid_grant');
    const afterReuse = await post('/token', {
      grant_type: 'refresh_token',
      refresh_token: rotated.refresh_token!,
    });
    t.equal(
      (await afterReuse.json()).error,
      'invalid_grant',
      'the newest refresh token of the grant is revoked too',
    );
    t.equal((await userinfo(rotated.access_token)).status, 401, 'and its access tokens');
    const events = await gatehouse.audit.list({ type: 'refresh_token.reuse_detected', limit: 5 });
    t.equal(events.length, 1, 'the reuse is in the audit log');
    t.equal(events[0]?.target, `user:${bob.id}`);
  });

  await t.test('twenty parallel uses of one refresh token: exactly one success, no 5xx', async (t) => {
    const tokens = await exchange(config, await signIn(offline));
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        post('/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }),
      ),
    );
    const statuses = responses.map((response) => response.status);
    t.equal(statuses.filter((status) => status === 200).length, 1, `one success (${statuses.join(',')})`);
    t.equal(statuses.filter((status) => status >= 500).length, 0, 'no server errors');
  });

  await t.test(
    'an authorization code works once; twenty parallel exchanges give one token set',
    async (t) => {
      const flow = await signIn(offline);
      const code = flow.callback.searchParams.get('code')!;
      const form = {
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT,
        code_verifier: flow.verifier,
      };
      const responses = await Promise.all(Array.from({ length: 20 }, () => post('/token', form)));
      const statuses = responses.map((response) => response.status);
      t.equal(statuses.filter((status) => status === 200).length, 1, `one success (${statuses.join(',')})`);
      t.equal(statuses.filter((status) => status >= 500).length, 0, 'no server errors');
    },
  );

  await t.test('replaying a code is refused and revokes what the first exchange issued', async (t) => {
    const flow = await signIn(offline);
    const tokens = await exchange(config, flow);
    const replay = await post('/token', {
      grant_type: 'authorization_code',
      code: flow.callback.searchParams.get('code')!,
      redirect_uri: REDIRECT,
      code_verifier: flow.verifier,
    });
    t.equal(replay.status, 400);
    t.equal((await replay.json()).error, 'invalid_grant');
    t.equal((await userinfo(tokens.access_token)).status, 401, 'the first access token is revoked');
    const refresh = await post('/token', {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
    });
    t.equal((await refresh.json()).error, 'invalid_grant', 'the first refresh token is revoked');
  });

  await t.test('a wrong code_verifier is refused and the code still works with the right one', async (t) => {
    const flow = await signIn(offline);
    const code = flow.callback.searchParams.get('code')!;
    const wrong = await post('/token', {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: 'x'.repeat(43),
    });
    t.equal((await wrong.json()).error, 'invalid_grant');
    const right = await post('/token', {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: flow.verifier,
    });
    t.equal(right.status, 200);
  });

  await t.test('introspection: own client and registered resource servers only', async (t) => {
    const tokens = await exchange(config, await signIn(offline));
    const own = await introspect(tokens.access_token, basic(webId, webSecret));
    t.equal(own.active, true, "the token's own client");
    t.equal(own.sub, bob.id);
    const rs = await introspect(
      tokens.refresh_token!,
      basic(resourceServer.client.client_id, resourceServer.client_secret!),
    );
    t.equal(rs.active, true, 'a client registered with --introspection');
    const stranger = await introspect(
      tokens.access_token,
      basic(other.client.client_id, other.client_secret!),
    );
    t.same(stranger, { active: false }, 'any other client learns nothing');
    const anonymous = await fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.access_token }),
    });
    t.ok(
      anonymous.status === 400 || anonymous.status === 401,
      `an unauthenticated caller is refused (${anonymous.status})`,
    );
    const refusal = await anonymous.json();
    t.type(refusal.error, 'string');
    t.notOk('active' in refusal, 'and learns nothing about the token');
    t.same(await introspect('garbage-token', basic(webId, webSecret)), { active: false });
  });

  await t.test('revocation ends a refresh token and its grant; others cannot revoke it', async (t) => {
    const tokens = await exchange(config, await signIn(offline));
    const foreign = await post(
      '/token/revocation',
      { token: tokens.refresh_token! },
      basic(other.client.client_id, other.client_secret!),
    );
    t.equal(foreign.status, 200, 'another client gets the RFC 7009 answer…');
    t.equal(
      (await introspect(tokens.refresh_token!, basic(webId, webSecret))).active,
      true,
      '…and the token is still active',
    );
    const revoked = await post('/token/revocation', {
      token: tokens.refresh_token!,
      token_type_hint: 'refresh_token',
    });
    t.equal(revoked.status, 200);
    t.same(await introspect(tokens.refresh_token!, basic(webId, webSecret)), { active: false });
    const refresh = await post('/token', {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
    });
    t.equal((await refresh.json()).error, 'invalid_grant');
    t.ok((await gatehouse.audit.list({ type: 'token.revoked', limit: 10 })).length > 0, 'revocation audited');
  });

  await t.test('a disabled user cannot sign in and their refresh tokens stop working', async (t) => {
    const carol = await gatehouse.users.create(
      { email: 'carol@example.com', password: PASSWORD },
      { actor: 'test' },
    );
    const tokens = await exchange(config, await signIn({ ...offline, email: 'carol@example.com' }));
    await gatehouse.db.user.update({ where: { id: carol.id }, data: { disabled: true } });
    const refresh = await post('/token', {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
    });
    t.equal((await refresh.json()).error, 'invalid_grant', 'refresh refused');
    t.equal((await userinfo(tokens.access_token)).status, 401, 'opaque access token refused');
    const attempt = signIn({ ...offline, email: 'carol@example.com' });
    await t.rejects(attempt, /answered 401/, 'sign-in refused with the generic failure');
    const failures = await gatehouse.audit.list({ type: 'login.failure', limit: 10 });
    t.ok(
      failures.some((event) => event.details.reason === 'disabled'),
      'audited with the reason',
    );
  });

  await t.test(
    'RP-initiated logout confirms, ends the session, and goes to the registered URI',
    async (t) => {
      const flow = await signIn({ ...offline, params: {} });
      const tokens = await exchange(config, flow);
      const agent = flow.agent;
      const endUrl = oidc.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token!,
        post_logout_redirect_uri: LOGGED_OUT,
        state: 'bye',
      });
      const confirm = await agent.request(endUrl.toString());
      t.equal(confirm.status, 200, 'a confirmation page first');
      t.match(confirm.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)?.[1];
      t.ok(xsrf, 'the confirmation form carries an xsrf token');
      const done = await agent.request(`${issuer}/session/end/confirm`, {
        form: { xsrf: xsrf!, logout: 'yes' },
      });
      t.equal(done.status, 303);
      t.match(done.location ?? '', new RegExp(`^${LOGGED_OUT}\\?state=bye`));
      const silent = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        prompt: 'none',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      });
      const after = await agent.follow(await agent.request(silent.toString()), issuer);
      t.equal(new URL(after.location!).searchParams.get('error'), 'login_required', 'the session is gone');

      const unregistered = await new Agent().request(
        oidc.buildEndSessionUrl(config, { post_logout_redirect_uri: 'https://evil.example.com/' }).toString(),
      );
      t.equal(unregistered.location, null, 'never redirects to an unregistered post-logout URI');
    },
  );
});
