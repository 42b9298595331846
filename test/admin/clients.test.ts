// Clients through the admin API: register (the secret is shown once), read
// (never a secret), change (the merged registration is validated again),
// rotate the secret with and without a grace period, delete (its grants and
// tokens are revoked).
import t from 'tap';
import { adminClient, clientCredentialsToken, createAdminService } from '../helpers/admin.ts';
import { startTestServer } from '../helpers/server.ts';
import { discover, exchange, signIn } from '../helpers/sign-in.ts';

const API = 'https://api.example.com';
const REDIRECT = 'https://app.example.com/callback';
const PASSWORD = 'a long enough passphrase';

t.test('clients through the admin API', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const admin = await createAdminService(server);
  const api = adminClient(server.url, await admin.token());
  const actor = `client:${admin.clientId}`;

  let service: { client_id: string; client_secret: string };
  await t.test('create: 201 with the client and its secret, shown only then', async (t) => {
    const reply = await api('POST', '/admin/clients', {
      body: { name: 'Billing', grants: ['client_credentials'], scope: 'invoices:read', resources: [API] },
    });
    t.equal(reply.status, 201);
    t.match(reply.body, {
      name: 'Billing',
      grants: ['client_credentials'],
      scope: 'invoices:read',
      resources: [API],
      public: false,
      auth_method: 'client_secret_basic',
      jwks_uri: null,
      jwks: null,
    });
    t.type(reply.body.client_secret, 'string');
    t.ok(reply.body.client_secret.length >= 43, '256 bits');
    service = reply.body;

    const token = await clientCredentialsToken(issuer, service.client_id, service.client_secret);
    t.equal(token.status, 200, 'the new client gets tokens at once');

    const read = await api('GET', `/admin/clients/${service.client_id}`);
    t.equal(read.status, 200);
    t.notOk('client_secret' in read.body, 'GET never shows the secret');
    t.notMatch(read.text, service.client_secret);
    t.notMatch(read.text, /digest/i);
    const listed = await api('GET', '/admin/clients');
    t.notMatch(listed.text, service.client_secret, 'nor does the list');

    const pub = await api('POST', '/admin/clients', {
      body: { name: 'SPA', grants: ['authorization_code'], redirect_uris: [REDIRECT], public: true },
    });
    t.equal(pub.status, 201);
    t.notOk('client_secret' in pub.body, 'a public client has no secret');
    t.equal(pub.body.auth_method, 'none');

    const event = (await api('GET', '/admin/audit?type=client.created&limit=1')).body.items[0];
    t.match(event, { actor, target: `client:${pub.body.client_id}`, details: { name: 'SPA' } });
  });

  await t.test('list: pages follow `next`', async (t) => {
    const all = await api('GET', '/admin/clients');
    t.equal(all.body.items.length, 3, 'the admin client, Billing and SPA');
    const first = await api('GET', '/admin/clients?limit=2');
    t.equal(first.body.items.length, 2);
    const second = await api('GET', `/admin/clients?limit=2&cursor=${first.body.next}`);
    t.same(
      [...first.body.items, ...second.body.items].map((client: { client_id: string }) => client.client_id),
      all.body.items.map((client: { client_id: string }) => client.client_id),
    );
    t.equal(second.body.next, null);
  });

  await t.test('PATCH validates the merged registration again', async (t) => {
    const before = (await api('GET', `/admin/clients/${service.client_id}`)).body;
    const bad = await api('PATCH', `/admin/clients/${service.client_id}`, {
      body: { grants: ['authorization_code'], redirect_uris: ['http://evil.example.com/cb'] },
    });
    t.equal(bad.status, 400);
    t.match(bad.body.message, /redirect_uris/);
    const noResource = await api('PATCH', `/admin/clients/${service.client_id}`, { body: { resources: [] } });
    t.equal(noResource.status, 400, 'a client_credentials client keeps a resource');
    t.same((await api('GET', `/admin/clients/${service.client_id}`)).body, before, 'refusals change nothing');

    const changed = await api('PATCH', `/admin/clients/${service.client_id}`, {
      body: { name: 'Billing v2', scope: 'invoices:read invoices:write' },
    });
    t.equal(changed.status, 200);
    t.equal(changed.body.name, 'Billing v2');
    t.equal(changed.body.scope, 'invoices:read invoices:write');
    t.same(changed.body.resources, [API], 'what it does not name is kept');
    t.notOk('client_secret' in changed.body, 'the secret is not shown again');
    const token = await clientCredentialsToken(issuer, service.client_id, service.client_secret, {
      scope: 'invoices:write',
    });
    t.equal(token.status, 200, 'the change applies to the next token request');
    const event = (await api('GET', '/admin/audit?type=client.updated&limit=1')).body.items[0];
    t.match(event, { actor, target: `client:${service.client_id}`, details: { fields: ['name', 'scope'] } });
  });

  await t.test('secret rotation with a grace period: both secrets work meanwhile', async (t) => {
    const reply = await api('POST', `/admin/clients/${service.client_id}/secret`, {
      body: { grace_seconds: 300 },
    });
    t.equal(reply.status, 200);
    t.equal(reply.body.client_id, service.client_id);
    t.not(reply.body.client_secret, service.client_secret);
    const expires = Date.parse(reply.body.previous_secret_expires_at);
    t.ok(Math.abs(expires - (Date.now() + 300_000)) < 10_000, 'the old one expires in about 300 s');
    t.match(reply.body.previous_secret_expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    t.equal(
      (await clientCredentialsToken(issuer, service.client_id, service.client_secret)).status,
      200,
      'old secret',
    );
    t.equal(
      (await clientCredentialsToken(issuer, service.client_id, reply.body.client_secret)).status,
      200,
      'new secret',
    );
    service = { ...service, client_secret: reply.body.client_secret };
  });

  await t.test('secret rotation without grace: the old secret is refused at once', async (t) => {
    const reply = await api('POST', `/admin/clients/${service.client_id}/secret`);
    t.equal(reply.status, 200);
    t.equal(reply.body.previous_secret_expires_at, null);
    const old = await clientCredentialsToken(issuer, service.client_id, service.client_secret);
    t.equal(old.status, 401);
    t.equal(old.body.error, 'invalid_client');
    t.equal((await clientCredentialsToken(issuer, service.client_id, reply.body.client_secret)).status, 200);
    service = { ...service, client_secret: reply.body.client_secret };
    const events = (await api('GET', '/admin/audit?type=client.secret_rotated')).body.items;
    t.same(
      events.map((event: { details: { grace_seconds: number } }) => event.details.grace_seconds),
      [0, 300],
    );
    t.notMatch(JSON.stringify(events), reply.body.client_secret);

    const spa = (await api('GET', '/admin/clients')).body.items.find(
      (client: { name: string }) => client.name === 'SPA',
    );
    t.equal(
      (await api('POST', `/admin/clients/${spa.client_id}/secret`)).status,
      409,
      'a public client has no secret to rotate',
    );
  });

  await t.test('changing how a client authenticates adds or removes its secret', async (t) => {
    const spa = (await api('GET', '/admin/clients')).body.items.find(
      (client: { name: string }) => client.name === 'SPA',
    );
    const confidential = await api('PATCH', `/admin/clients/${spa.client_id}`, {
      body: { public: false, auth_method: 'client_secret_post' },
    });
    t.equal(confidential.status, 200);
    t.type(confidential.body.client_secret, 'string', 'a new secret, shown this once');
    const backToPublic = await api('PATCH', `/admin/clients/${spa.client_id}`, {
      body: { public: true, auth_method: 'none' },
    });
    t.equal(backToPublic.status, 200);
    t.notOk('client_secret' in backToPublic.body);
    const row = await gatehouse.clients.get(spa.client_id);
    t.equal(row?.secretDigest, null, 'its secret is gone');
  });

  await t.test('DELETE removes the client and revokes its grants and tokens', async (t) => {
    const web = await api('POST', '/admin/clients', {
      body: {
        name: 'Web',
        grants: ['authorization_code', 'refresh_token'],
        redirect_uris: [REDIRECT],
        scope: 'openid offline_access',
        first_party: true,
      },
    });
    await gatehouse.users.create({ email: 'erin@example.com', password: PASSWORD }, { actor: 'test' });
    const config = await discover(issuer, web.body.client_id, web.body.client_secret);
    const flow = await signIn({
      issuer,
      config,
      redirectUri: REDIRECT,
      email: 'erin@example.com',
      password: PASSWORD,
      scope: 'openid offline_access',
    });
    const tokens = await exchange(config, flow);
    const userinfo = async () =>
      (await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status;
    t.equal(await userinfo(), 200);

    const reply = await api('DELETE', `/admin/clients/${web.body.client_id}`);
    t.equal(reply.status, 204);
    t.equal((await api('GET', `/admin/clients/${web.body.client_id}`)).status, 404);
    t.equal(await userinfo(), 401, 'its access token is revoked');
    const left = await gatehouse.db.$queryRaw<{ n: bigint }[]>`
      SELECT count(*) AS n FROM oidc_artifacts WHERE kind <> 'Session' AND payload->>'clientId' = ${web.body.client_id}`;
    t.equal(Number(left[0]?.n), 0, 'no grant, code or token of it is left');
    const refreshed = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token!,
        client_id: web.body.client_id,
        client_secret: web.body.client_secret,
      }),
    });
    t.equal(refreshed.status, 401, 'the client is gone: its credentials no longer work');
    const event = (await api('GET', '/admin/audit?type=client.deleted&limit=1')).body.items[0];
    t.match(event, {
      actor,
      target: `client:${web.body.client_id}`,
      details: { name: 'Web', revoked: { grants: 1 } },
    });
    t.equal((await api('DELETE', `/admin/clients/${web.body.client_id}`)).status, 404);
  });
});
