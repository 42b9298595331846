// The HTTP host: oidc-provider mounted inside Fastify, with Fastify's hooks
// and logging applied to the provider's responses, one 404 shape, health.
import t from 'tap';
import { startTestServer } from './helpers/server.ts';

t.test('HTTP host', async (t) => {
  const server = await startTestServer(t);
  const { issuer } = server;

  await t.test('discovery is served by oidc-provider with endpoints under the issuer', async (t) => {
    const response = await fetch(`${issuer}/.well-known/openid-configuration`);
    t.equal(response.status, 200);
    const document = await response.json();
    t.equal(document.issuer, issuer);
    t.equal(document.token_endpoint, `${issuer}/token`);
    t.equal(document.jwks_uri, `${issuer}/jwks`);
    t.same(document.code_challenge_methods_supported, ['S256']);
    t.same(document.response_types_supported, ['code']);
    t.notOk(document.token_endpoint_auth_methods_supported.includes('client_secret_jwt'));
  });

  await t.test('a spoofed Host header does not change the issuer or endpoint URLs', async (t) => {
    const response = await server.app.inject({
      method: 'GET',
      url: '/.well-known/openid-configuration',
      headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    });
    const document = response.json();
    t.equal(document.issuer, issuer);
    t.equal(document.authorization_endpoint, `${issuer}/auth`);
  });

  await t.test(
    "Fastify's security-header hook runs on provider responses and on Fastify's own",
    async (t) => {
      for (const path of ['/jwks', '/.well-known/openid-configuration', '/healthz', '/nope']) {
        const response = await fetch(`${issuer}${path}`);
        t.equal(response.headers.get('x-content-type-options'), 'nosniff', `${path} nosniff`);
        t.equal(response.headers.get('x-frame-options'), 'DENY', `${path} frame options`);
        t.match(
          response.headers.get('content-security-policy') ?? '',
          /frame-ancestors 'none'/,
          `${path} CSP`,
        );
      }
    },
  );

  await t.test('JWKS publishes public keys only, with kid, alg and use', async (t) => {
    const { keys } = await (await fetch(`${issuer}/jwks`)).json();
    t.equal(keys.length, 1);
    const [key] = keys;
    t.equal(key.alg, 'ES256');
    t.equal(key.use, 'sig');
    t.type(key.kid, 'string');
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) t.notOk(member in key, `no ${member}`);
  });

  await t.test('an unknown path or method gets one 404 shape, whichever side would own it', async (t) => {
    const fastifySide = await fetch(`${issuer}/no/such/path`);
    const providerPath = await fetch(`${issuer}/token`); // GET is not a token route
    const providerPrefix = await fetch(`${issuer}/token/nope`);
    for (const [name, response] of [
      ['fastify', fastifySide],
      ['provider method', providerPath],
      ['provider prefix', providerPrefix],
    ] as const) {
      t.equal(response.status, 404, `${name}: 404`);
      const body = await response.json();
      t.same(Object.keys(body).sort(), ['error', 'message'], `${name}: same body shape`);
      t.equal(body.error, 'not_found', `${name}: not_found`);
    }
  });

  await t.test('health: /healthz alive, /readyz checks the database', async (t) => {
    const health = await fetch(`${issuer}/healthz`);
    t.equal(health.status, 200);
    t.same(await health.json(), { status: 'ok' });
    const ready = await fetch(`${issuer}/readyz`);
    t.equal(ready.status, 200);
    t.same(await ready.json(), { status: 'ready' });
  });

  await t.test('provider requests are logged by Fastify, without credentials or query strings', async (t) => {
    const before = server.logs.length;
    const secret = 'very-secret-value-0123456789';
    await fetch(`${issuer}/token?code=${secret}`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`someone:${secret}`).toString('base64')}`,
        cookie: `_session=${secret}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: `grant_type=client_credentials&client_secret=${secret}`,
    });
    const lines = server.logs.slice(before).join('');
    t.match(lines, /"url":"\/token\?\[redacted\]"/, 'the provider request is logged');
    t.match(lines, /request completed/, 'its completion is logged');
    t.notMatch(lines, secret, 'no secret, header, cookie or query value in the logs');
  });

  await t.test('the request id comes from X-Request-Id when present', async (t) => {
    const before = server.logs.length;
    await fetch(`${issuer}/jwks`, { headers: { 'x-request-id': 'trace-abc-123' } });
    t.match(server.logs.slice(before).join(''), /"request_id":"trace-abc-123"/);
  });
});
