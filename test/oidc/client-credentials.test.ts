// Client credentials end to end: openid-client against a listening server on
// a real database, tokens verified offline with jose against /jwks.
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
} from 'jose';
import * as oidc from 'openid-client';
import t from 'tap';
import { startTestServer } from '../helpers/server.ts';

const API = 'https://api.example.com';
const OTHER_API = 'https://other.example.com';

t.test('client credentials', async (t) => {
  const server = await startTestServer(t);
  const { issuer } = server;
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));

  const svc = await server.gatehouse.clients.create(
    { name: 'svc', grants: ['client_credentials'], scope: 'api:read api:write', resources: [API, OTHER_API] },
    { actor: 'test' },
  );
  const clientId = svc.client.client_id;
  const secret = svc.client_secret!;

  const discover = (id = clientId, auth?: oidc.ClientAuth, metadata?: Partial<oidc.ClientMetadata>) =>
    oidc.discovery(new URL(issuer), id, metadata, auth, { execute: [oidc.allowInsecureRequests] });

  await t.test('issues an RFC 9068 JWT for the first registered resource, verifiable offline', async (t) => {
    const config = await discover(clientId, oidc.ClientSecretBasic(secret));
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'api:read' });
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
      issuer,
      audience: API,
      typ: 'at+jwt',
    });
    t.equal(protectedHeader.alg, 'ES256');
    t.equal(payload.sub, clientId);
    t.equal(payload.client_id, clientId);
    t.equal(payload.scope, 'api:read');
    t.type(payload.jti, 'string');
    t.type(payload.iat, 'number');
    t.equal((payload.exp ?? 0) - (payload.iat ?? 0), 600, 'default lifetime is 10 minutes');
    t.equal(tokens.token_type.toLowerCase(), 'bearer');
  });

  await t.test('no scope requested grants every registered scope', async (t) => {
    const config = await discover(clientId, oidc.ClientSecretBasic(secret));
    const tokens = await oidc.clientCredentialsGrant(config, {});
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer, audience: API });
    t.same(String(payload.scope).split(' ').sort(), ['api:read', 'api:write']);
  });

  await t.test('another registered resource can be asked for', async (t) => {
    const config = await discover(clientId, oidc.ClientSecretPost(secret));
    const tokens = await oidc.clientCredentialsGrant(config, { resource: OTHER_API, scope: 'api:write' });
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer, audience: OTHER_API });
    t.equal(payload.scope, 'api:write', 'client_secret_post works too');
  });

  await t.test('a scope the client was not registered for is refused with invalid_scope', async (t) => {
    const response = await tokenRequest(issuer, clientId, secret, { scope: 'api:read api:admin' });
    t.equal(response.status, 400);
    t.equal((await response.json()).error, 'invalid_scope');
    const openid = await tokenRequest(issuer, clientId, secret, { scope: 'openid' });
    t.equal((await openid.json()).error, 'invalid_scope', 'OIDC scopes are not granted to services');
  });

  await t.test('an unregistered resource is refused with invalid_target', async (t) => {
    const response = await tokenRequest(issuer, clientId, secret, { resource: 'https://evil.example.com' });
    t.equal(response.status, 400);
    t.equal((await response.json()).error, 'invalid_target');
  });

  await t.test('wrong or unknown credentials get 401 invalid_client, the same body either way', async (t) => {
    const wrong = await tokenRequest(issuer, clientId, 'not-the-secret', {});
    const unknown = await tokenRequest(issuer, 'no-such-client', 'whatever', {});
    t.equal(wrong.status, 401);
    t.equal(unknown.status, 401);
    t.same(await wrong.json(), await unknown.json());
  });

  await t.test('malformed token requests get an OAuth error, never a 5xx', async (t) => {
    const cases: Array<[string, RequestInit]> = [
      ['no grant type', { body: new URLSearchParams({}) }],
      [
        'JSON body',
        { body: '{"grant_type":"client_credentials"}', headers: { 'content-type': 'application/json' } },
      ],
      ['duplicated parameter', { body: 'grant_type=client_credentials&grant_type=client_credentials' }],
      [
        'NUL in client id',
        {
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            client_id: 'a\u0000b',
            client_secret: 'x',
          }),
        },
      ],
      ['huge body', { body: `grant_type=client_credentials&x=${'a'.repeat(100_000)}` }],
      [
        'broken basic header',
        { body: 'grant_type=client_credentials', headers: { authorization: 'Basic !!!' } },
      ],
    ];
    for (const [name, init] of cases) {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          ...(init.headers as Record<string, string>),
        },
        body: init.body ?? null,
      });
      t.ok(response.status >= 400 && response.status < 500, `${name}: ${response.status}`);
      t.type((await response.json()).error, 'string', `${name}: OAuth error body`);
    }
  });

  await t.test(
    'private_key_jwt: assertion works once; twenty parallel copies give exactly one token',
    async (t) => {
      const { publicKey, privateKey } = await generateKeyPair('ES256');
      const publicJwk = { ...(await exportJWK(publicKey)), kid: 'svc-key-1', alg: 'ES256', use: 'sig' };
      const keyed = await server.gatehouse.clients.create(
        {
          name: 'keyed',
          grants: ['client_credentials'],
          auth_method: 'private_key_jwt',
          jwks: { keys: [publicJwk] },
          scope: 'api:read',
          resources: [API],
        },
        { actor: 'test' },
      );
      t.notOk(keyed.client_secret, 'no secret for private_key_jwt clients');
      const keyedId = keyed.client.client_id;

      const config = await discover(keyedId, oidc.PrivateKeyJwt({ key: privateKey, kid: 'svc-key-1' }));
      const tokens = await oidc.clientCredentialsGrant(config, {});
      t.equal(decodeProtectedHeader(tokens.access_token).typ, 'at+jwt');

      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'svc-key-1' })
        .setIssuer(keyedId)
        .setSubject(keyedId)
        .setAudience(issuer)
        .setJti(crypto.randomUUID())
        .setIssuedAt()
        .setExpirationTime('60s')
        .sign(privateKey);
      const body = {
        grant_type: 'client_credentials',
        client_id: keyedId,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      };
      const responses = await Promise.all(
        Array.from({ length: 20 }, () =>
          fetch(`${issuer}/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams(body),
          }),
        ),
      );
      const statuses = responses.map((response) => response.status);
      t.equal(statuses.filter((status) => status === 200).length, 1, 'exactly one success');
      t.equal(statuses.filter((status) => status === 401).length, 19, 'every replay is invalid_client');
    },
  );
});

function tokenRequest(issuer: string, clientId: string, secret: string, params: Record<string, string>) {
  return fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
  });
}
