// The authorization-code flow through Gatehouse's sign-in pages, with
// openid-client as the relying party: claims, consent, PKCE and redirect rules.
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import t from 'tap';
import { startTestServer } from '../helpers/server.ts';
import { Agent, csrfOf, discover, exchange, formActionOf, signIn } from '../helpers/sign-in.ts';

const REDIRECT = 'https://app.example.com/callback';
const PASSWORD = 'correct horse battery staple';

t.test('authorization code flow', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  await gatehouse.roles.create('auditor', 'reads reports', { actor: 'test' });
  const alice = await gatehouse.users.create(
    { email: 'Alice@Example.com', name: 'Alice Liddell', password: PASSWORD, roles: ['auditor'] },
    { actor: 'test' },
  );
  const web = await gatehouse.clients.create(
    {
      name: 'Web App',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      scope: 'openid profile email roles offline_access api:read',
      resources: ['https://api.example.com'],
    },
    { actor: 'test' },
  );
  const config = await discover(issuer, web.client.client_id, web.client_secret);
  const base = { issuer, config, redirectUri: REDIRECT, email: 'alice@example.com', password: PASSWORD };

  await t.test('signs in through the pages; ID token and userinfo carry the SPEC claims', async (t) => {
    const flow = await signIn({ ...base, scope: 'openid profile email roles' });
    t.ok(flow.sawConsent, 'a third-party client asks for consent');
    t.equal(flow.callback.searchParams.get('iss'), issuer, 'RFC 9207 iss in the response');
    t.equal(flow.callback.searchParams.get('state'), flow.state, 'state round-trips');
    const tokens = await exchange(config, flow);
    const { payload } = await jwtVerify(tokens.id_token!, createRemoteJWKSet(new URL(`${issuer}/jwks`)), {
      issuer,
      audience: web.client.client_id,
    });
    t.equal(payload.sub, alice.id, 'sub is the user id');
    t.match(payload.sub, /^[0-9a-f-]{36}$/);
    t.equal(payload.nonce, flow.nonce);
    t.type(payload.auth_time, 'number');
    t.same(payload.amr, ['pwd']);
    t.equal(payload.acr, 'urn:gatehouse:loa:1');
    t.equal(payload.name, 'Alice Liddell');
    t.equal(payload.email, 'alice@example.com');
    t.equal(payload.email_verified, true);
    t.same(payload.roles, ['auditor']);
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, alice.id);
    t.match(userinfo, {
      sub: alice.id,
      name: 'Alice Liddell',
      email: 'alice@example.com',
      email_verified: true,
      roles: ['auditor'],
    });
  });

  await t.test('claims follow the granted scopes', async (t) => {
    const flow = await signIn({ ...base, scope: 'openid' });
    const tokens = await exchange(config, flow);
    const claims = decodeJwt(tokens.id_token!);
    t.equal(claims.sub, alice.id);
    t.notOk('email' in claims, 'no email without the email scope');
    t.notOk('name' in claims, 'no name without the profile scope');
    t.notOk('roles' in claims, 'no roles without the roles scope');
  });

  await t.test('consent is remembered for the scopes granted, across sessions', async (t) => {
    const again = await signIn({ ...base, scope: 'openid profile' });
    t.notOk(again.sawConsent, 'no consent page for scopes granted before, in a new browser');
    const more = await signIn({
      ...base,
      scope: 'openid profile email offline_access',
      params: { prompt: 'consent' },
    });
    t.ok(more.sawConsent, 'asked again for a new scope');
  });

  await t.test('denying consent returns access_denied to the client', async (t) => {
    const other = await gatehouse.clients.create(
      { name: 'Other', grants: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid email' },
      { actor: 'test' },
    );
    const otherConfig = await discover(issuer, other.client.client_id, other.client_secret);
    const flow = await signIn({ ...base, config: otherConfig, scope: 'openid email', consent: 'deny' });
    t.equal(flow.callback.searchParams.get('error'), 'access_denied');
    t.equal(flow.callback.searchParams.get('state'), flow.state);
  });

  await t.test('a first-party client skips consent', async (t) => {
    const first = await gatehouse.clients.create(
      { name: 'Portal', grants: ['authorization_code'], redirect_uris: [REDIRECT], first_party: true },
      { actor: 'test' },
    );
    const firstConfig = await discover(issuer, first.client.client_id, first.client_secret);
    const flow = await signIn({ ...base, config: firstConfig });
    t.notOk(flow.sawConsent);
    t.ok((await exchange(firstConfig, flow)).id_token);
  });

  await t.test('a public client signs in with PKCE and no secret', async (t) => {
    const spa = await gatehouse.clients.create(
      {
        name: 'SPA',
        grants: ['authorization_code'],
        redirect_uris: ['http://127.0.0.1:8080/cb'],
        public: true,
      },
      { actor: 'test' },
    );
    const spaConfig = await discover(issuer, spa.client.client_id);
    const flow = await signIn({ ...base, config: spaConfig, redirectUri: 'http://127.0.0.1:8080/cb' });
    const tokens = await exchange(spaConfig, flow);
    t.equal(decodeJwt(tokens.id_token!).sub, alice.id);
  });

  await t.test('an access token for a resource is a JWT with roles, acr and amr', async (t) => {
    const flow = await signIn({
      ...base,
      scope: 'openid roles api:read',
      params: { resource: 'https://api.example.com' },
    });
    const tokens = await exchange(config, flow, { resource: 'https://api.example.com' });
    const { payload, protectedHeader } = await jwtVerify(
      tokens.access_token,
      createRemoteJWKSet(new URL(`${issuer}/jwks`)),
      {
        issuer,
        audience: 'https://api.example.com',
      },
    );
    t.equal(protectedHeader.typ, 'at+jwt');
    t.equal(payload.sub, alice.id);
    t.equal(payload.scope, 'api:read');
    t.same(payload.roles, ['auditor']);
    t.equal(payload.acr, 'urn:gatehouse:loa:1');
    t.same(payload.amr, ['pwd']);
  });

  await t.test('PKCE is required of confidential clients; plain is refused', async (t) => {
    const agent = new Agent();
    for (const [name, extra] of [
      ['missing', {}],
      ['plain', { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }],
      ['implicit plain', { code_challenge: 'a'.repeat(43) }],
    ] as const) {
      const url = new URL(`${issuer}/auth`);
      const params = {
        client_id: web.client.client_id,
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'openid',
        state: 's1',
        ...extra,
      };
      for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
      const step = await agent.request(url.toString());
      t.equal(step.status, 303, `${name}: error redirect`);
      const location = new URL(step.location!);
      t.equal(location.origin + location.pathname, REDIRECT, `${name}: to the registered redirect URI`);
      t.equal(location.searchParams.get('error'), 'invalid_request', name);
      t.equal(location.searchParams.get('state'), 's1', name);
    }
  });

  await t.test('redirect URIs must match exactly and are required; mismatches never redirect', async (t) => {
    const agent = new Agent();
    for (const redirect of [
      'https://evil.example.com/callback',
      `${REDIRECT}/`,
      `${REDIRECT}?x=1`,
      'https://app.example.com:444/callback',
      'https://app.example.com/CALLBACK',
      null,
    ]) {
      const url = new URL(`${issuer}/auth`);
      url.searchParams.set('client_id', web.client.client_id);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('scope', 'openid');
      url.searchParams.set('code_challenge', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
      url.searchParams.set('code_challenge_method', 'S256');
      if (redirect) url.searchParams.set('redirect_uri', redirect);
      const step = await agent.request(url.toString());
      t.equal(step.status, 400, `${redirect ?? 'no redirect_uri'}: error page`);
      t.equal(step.location, null, `${redirect ?? 'no redirect_uri'}: no Location header`);
      t.match(step.headers.get('content-type') ?? '', /text\/html/);
      t.match(step.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    }
  });

  await t.test(
    'a double-submitted or expired sign-in form gets a clear 400 page and changes nothing',
    async (t) => {
      const agent = new Agent();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      });
      const login = await agent.follow(await agent.request(url.toString()), issuer);
      const action = new URL(formActionOf(login.body), issuer).toString();
      const form = { csrf: csrfOf(login.body), username: 'alice@example.com', password: PASSWORD };
      const first = await agent.request(action, { form });
      t.equal(first.status, 303);
      await agent.follow(first, issuer);
      const again = await agent.request(action, { form });
      t.equal(again.status, 400, 'the same form again, after the flow moved on');
      t.match(again.body, /expired or was already used/);

      const second = new Agent();
      const page = await second.follow(await second.request(url.toString()), issuer);
      const uid = new URL(formActionOf(page.body), issuer).pathname.split('/')[2]!;
      await gatehouse.db.oidcArtifact.updateMany({
        where: { kind: 'Interaction' },
        data: { expiresAt: new Date(Date.now() - 1000) },
      });
      const expired = await second.request(`${issuer}/interaction/${uid}`);
      t.equal(expired.status, 400, 'an expired interaction');
      t.match(expired.body, /expired/);
    },
  );
  await t.test(
    'sign-in pages: headers, CSRF, and the same answer for unknown user and wrong password',
    async (t) => {
      const agent = new Agent();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      });
      const login = await agent.follow(await agent.request(url.toString()), issuer);
      t.equal(login.status, 200);
      t.equal(login.headers.get('cache-control'), 'no-store');
      t.match(login.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      t.notMatch(login.headers.get('content-security-policy') ?? '', /form-action/);
      t.equal(login.headers.get('x-frame-options'), 'DENY');
      t.match(login.body, /name="username"/);
      t.match(login.body, /name="password"/);
      const action = new URL(formActionOf(login.body), issuer).toString();
      const csrf = csrfOf(login.body);

      const noCsrf = await agent.request(action, {
        form: { username: 'alice@example.com', password: PASSWORD },
      });
      t.equal(noCsrf.status, 403, 'a form without the CSRF token is refused');
      const crossSite = await agent.request(action, {
        form: { csrf, username: 'alice@example.com', password: PASSWORD },
        headers: { origin: 'https://evil.example.com' },
      });
      t.equal(crossSite.status, 403, 'a form posted from another origin is refused');
      const nullOrigin = await agent.request(action, {
        form: { csrf, username: 'alice@example.com', password: PASSWORD },
        headers: { origin: 'null', 'sec-fetch-site': 'cross-site' },
      });
      t.equal(nullOrigin.status, 403, 'Origin: null from another site is refused');
      const nullAlone = await agent.request(action, {
        form: { csrf, username: 'alice@example.com', password: PASSWORD },
        headers: { origin: 'null' },
      });
      t.equal(nullAlone.status, 403, "Origin: null without the browser's same-origin marker is refused");

      const wrong = await agent.request(action, {
        form: { csrf, username: 'alice@example.com', password: 'wrong password here' },
      });
      const unknown = await agent.request(action, {
        form: { csrf, username: 'nobody@example.com', password: 'wrong password here' },
      });
      t.equal(wrong.status, 401);
      t.equal(unknown.status, 401);
      const normalise = (body: string) => body.replace(/value="[^"]*"/g, 'value=""');
      t.equal(normalise(wrong.body), normalise(unknown.body), 'identical pages apart from the echoed email');
      t.match(wrong.body, /Incorrect email or password/);

      const huge = await agent.request(action, {
        form: { csrf, username: 'a'.repeat(10_000), password: 'x' },
      });
      t.equal(huge.status, 400, 'a 10 kB username gets a clear 400 page');
      t.match(huge.headers.get('content-type') ?? '', /text\/html/);
      const nul = await agent.request(action, {
        form: { csrf, username: 'alice@example.com\u0000', password: PASSWORD },
      });
      t.equal(nul.status, 401, 'a NUL byte is never a match, never a 5xx');

      const forged = await agent.request(`${issuer}/interaction/forged-uid-123/login`, {
        form: { csrf, username: 'alice@example.com', password: PASSWORD },
      });
      t.ok(forged.status === 400 || forged.status === 403, `a forged uid is refused (${forged.status})`);
      const noCookie = await new Agent().request(
        url.toString().replace(/.*/, `${issuer}/interaction/${action.split('/')[4]}`),
      );
      t.equal(noCookie.status, 400, 'without the interaction cookie the page is a 400 error page');
      t.match(noCookie.body, /expired/);
    },
  );
});
