// Who may call the admin API (SPEC "Admin API", AD-1, AD-2, AD-5): every
// route refuses missing, garbage, expired, forged and other-audience tokens
// with 401 and a WWW-Authenticate challenge, and valid admin-audience tokens
// without the right with 403; admin clients and admin users signed in with a
// second factor through a first-party client get in. Every refusal is audited.
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import t from 'tap';
import {
  Authenticator,
  adminClient,
  adminResource,
  call,
  clientCredentialsToken,
  createAdminConsole,
  createAdminService,
  REDIRECT,
} from '../helpers/admin.ts';
import { startTestServer } from '../helpers/server.ts';
import { discover, signIn } from '../helpers/sign-in.ts';

const PASSWORD = 'a long admin passphrase';
const UNKNOWN_UUID = '00000000-0000-4000-8000-000000000000';

t.test('admin API authorization', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const admin = await createAdminService(server);
  const adminToken = await admin.token();
  const api = adminClient(server.url, adminToken);

  // A service registered for the admin resource but without the admin scope.
  const reporter = await gatehouse.clients.create(
    {
      name: 'reporter',
      grants: ['client_credentials'],
      scope: 'reports:read',
      resources: [adminResource(issuer)],
    },
    { actor: 'test' },
  );
  const reporterToken = await clientCredentialsToken(
    issuer,
    reporter.client.client_id,
    reporter.client_secret!,
  );
  // A service with the admin scope name, but for another API: its tokens are not for /admin.
  const elsewhere = await gatehouse.clients.create(
    {
      name: 'elsewhere',
      grants: ['client_credentials'],
      scope: 'admin',
      resources: ['https://api.example.com'],
    },
    { actor: 'test' },
  );
  const elsewhereToken = await clientCredentialsToken(
    issuer,
    elsewhere.client.client_id,
    elsewhere.client_secret!,
  );

  /** A token with every right except time: signed by the active key, expired a minute ago. */
  async function expiredToken(): Promise<string> {
    const keystore = await gatehouse.keys.loadKeystore();
    const jwk = keystore.keys.find((key) => key.kid === keystore.activeKid)!;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ scope: 'admin', client_id: admin.clientId, jti: 'expired-1' })
      .setProtectedHeader({ alg: keystore.activeAlg, kid: keystore.activeKid, typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience(adminResource(issuer))
      .setSubject(admin.clientId)
      .setIssuedAt(now - 3600)
      .setExpirationTime(now - 60)
      .sign(await importJWK(jwk, keystore.activeAlg));
  }

  /** Right claims, valid times, the active kid, but someone else's key. */
  async function forgedToken(): Promise<string> {
    const keystore = await gatehouse.keys.loadKeystore();
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ scope: 'admin', client_id: admin.clientId, jti: 'forged-1' })
      .setProtectedHeader({ alg: 'ES256', kid: keystore.activeKid, typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience(adminResource(issuer))
      .setSubject(admin.clientId)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(await importJWK(await exportJWK(privateKey), 'ES256'));
  }

  // Users: an admin with TOTP, and one who signed in with a password only and became admin afterwards.
  const adminConsole = await createAdminConsole(server);
  await gatehouse.users.create(
    { email: 'root@example.com', password: PASSWORD, roles: ['admin'] },
    { actor: 'test' },
  );
  const app = new Authenticator((await gatehouse.mfa.enrollForOperator('root@example.com')).secret);
  const late = await gatehouse.users.create(
    { email: 'late@example.com', password: PASSWORD },
    { actor: 'test' },
  );

  await t.test(
    'an admin user signed in with a second factor through a first-party client gets in',
    async (t) => {
      const tokens = await adminConsole.signIn('root@example.com', PASSWORD, () => app.next());
      const reply = await call(server.url, tokens.access_token, 'GET', '/admin/users');
      t.equal(reply.status, 200, JSON.stringify(reply.body));
      t.ok(reply.body.items.some((user: { email: string }) => user.email === 'root@example.com'));
    },
  );

  const passwordOnly = await adminConsole.signIn('late@example.com', PASSWORD);
  await gatehouse.users.setRoles(late.id, ['admin'], { actor: 'test' });
  const passwordOnlyAdmin = passwordOnly.access_token;

  const routes = (await api('GET', '/admin/openapi.json')).body.paths as Record<
    string,
    Record<string, unknown>
  >;
  const operations = Object.entries(routes).flatMap(([path, methods]) =>
    Object.keys(methods).map((method) => ({
      method: method.toUpperCase(),
      path: path
        .replace('{id}', UNKNOWN_UUID)
        .replace('{kid}', 'es256-unknown')
        .replace('{name}', 'no-such-role'),
    })),
  );

  await t.test('every route refuses a caller without a valid admin-audience token with 401', async (t) => {
    t.ok(operations.length >= 22, `${operations.length} operations to check`);
    const tokens: Record<string, string | undefined> = {
      'no token': undefined,
      'a garbage token': 'not-a-jwt',
      'another resource': elsewhereToken.body.access_token,
      'an expired token': await expiredToken(),
      'a token signed by another key': await forgedToken(),
    };
    for (const [label, token] of Object.entries(tokens)) {
      for (const { method, path } of operations) {
        const reply = await call(
          server.url,
          token,
          method,
          path,
          method === 'GET' || method === 'DELETE' ? {} : { body: {} },
        );
        t.equal(reply.status, 401, `${label}: ${method} ${path}`);
        t.equal(reply.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
        t.equal(reply.body?.error, 'invalid_token');
      }
    }
    const malformed = await call(server.url, undefined, 'GET', '/admin/users', {
      headers: {
        authorization: `Basic ${Buffer.from(`${admin.clientId}:${admin.secret}`).toString('base64')}`,
      },
    });
    t.equal(malformed.status, 401, 'client credentials themselves are not accepted');
  });

  await t.test('every route refuses a valid admin-audience token without the right with 403', async (t) => {
    const tokens = {
      'a client without the admin scope': reporterToken.body.access_token!,
      'an admin without a second factor': passwordOnlyAdmin,
    };
    for (const [label, token] of Object.entries(tokens)) {
      for (const { method, path } of operations) {
        const reply = await call(
          server.url,
          token,
          method,
          path,
          method === 'GET' || method === 'DELETE' ? {} : { body: {} },
        );
        t.equal(reply.status, 403, `${label}: ${method} ${path}`);
      }
    }
    const noSecondFactor = await call(server.url, passwordOnlyAdmin, 'GET', '/admin/users');
    t.equal(noSecondFactor.body.error, 'insufficient_user_authentication');
  });

  await t.test('every route lets an admin client through', async (t) => {
    for (const { method, path } of operations) {
      if (path.endsWith('/rotate')) continue; // would rotate the key for real; keys.test.ts does
      const reply = await api(method, path, method === 'GET' || method === 'DELETE' ? {} : { body: {} });
      t.notOk([401, 403].includes(reply.status), `${method} ${path}: ${reply.status}`);
      t.ok(reply.status < 500, `${method} ${path}: no server error`);
    }
  });

  await t.test('refusals change nothing and are audited as admin.denied, without the token', async (t) => {
    const before = await gatehouse.db.role.count();
    const reply = await call(server.url, reporterToken.body.access_token, 'POST', '/admin/roles', {
      body: { name: 'sneaky' },
    });
    t.equal(reply.status, 403);
    t.equal(await gatehouse.db.role.count(), before, 'no role was created');
    const events = (await api('GET', '/admin/audit?type=admin.denied&limit=200')).body.items;
    const mine = events.find(
      (event: { actor: string; target: string }) =>
        event.actor === `client:${reporter.client.client_id}` && event.target === 'POST /admin/roles',
    );
    t.ok(mine, 'the denial names the caller and the route');
    t.same(mine.details, { status: 403, reason: 'no_admin_scope' });
    t.ok(
      events.some(
        (event: { actor: string; details: { reason: string } }) =>
          event.actor === 'anonymous' && event.details.reason === 'missing_token',
      ),
    );
    t.ok(events.some((event: { details: { reason: string } }) => event.details.reason === 'expired'));
    t.ok(events.some((event: { details: { reason: string } }) => event.details.reason === 'wrong_audience'));
    const dump = JSON.stringify(events);
    t.notOk(dump.includes(reporterToken.body.access_token!), 'no token in the audit log');
    t.notOk(dump.includes(admin.secret), 'no secret in the audit log');
  });

  await t.test(
    'rights are checked live: losing the role or the scope locks out an existing token',
    async (t) => {
      const helper = await createAdminService(server, 'short-lived-admin');
      const token = await helper.token();
      t.equal((await call(server.url, token, 'GET', '/admin/roles')).status, 200);
      await gatehouse.clients.update(helper.clientId, { scope: 'reports:read' }, { actor: 'test' });
      t.equal(
        (await call(server.url, token, 'GET', '/admin/roles')).status,
        403,
        'scope removed: refused at once',
      );
      await gatehouse.clients.delete(helper.clientId, { actor: 'test' });
      t.equal(
        (await call(server.url, token, 'GET', '/admin/roles')).status,
        401,
        'client deleted: its token is dead',
      );

      await gatehouse.users.setRoles(late.id, [], { actor: 'test' });
      const reply = await call(server.url, passwordOnlyAdmin, 'GET', '/admin/roles');
      t.equal(reply.status, 403);
      t.equal(reply.body.error, 'insufficient_scope', 'without the role the token grants nothing');
    },
  );

  await t.test('a third-party client cannot ask for the admin API in the code flow', async (t) => {
    const thirdParty = await gatehouse.clients.create(
      {
        name: 'Partner app',
        grants: ['authorization_code'],
        redirect_uris: [REDIRECT],
        scope: 'openid admin',
        resources: [adminResource(issuer)],
      },
      { actor: 'test' },
    );
    const config = await discover(issuer, thirdParty.client.client_id, thirdParty.client_secret);
    const flow = await signIn({
      issuer,
      config,
      redirectUri: REDIRECT,
      email: 'late@example.com',
      password: PASSWORD,
      scope: 'openid admin',
      params: { resource: adminResource(issuer) },
    }).catch((error: Error) => error);
    const callback = flow instanceof Error ? undefined : flow.callback;
    t.equal(
      callback?.searchParams.get('error'),
      'invalid_target',
      String(flow instanceof Error ? flow.message : ''),
    );
  });
});

t.test('GATEHOUSE_ADMIN_IP_ALLOWLIST refuses other addresses before anything else', async (t) => {
  const server = await startTestServer(t, { GATEHOUSE_ADMIN_IP_ALLOWLIST: '10.0.0.0/8,fd00::/8' });
  const admin = await createAdminService(server);
  const token = await admin.token();
  const reply = await call(server.url, token, 'GET', '/admin/users');
  t.equal(reply.status, 403);
  t.equal(reply.body.error, 'forbidden');
  const anonymous = await call(server.url, undefined, 'GET', '/admin/users');
  t.equal(anonymous.status, 403, 'even without a token: the address decides first');
  const events = await server.gatehouse.audit.list({ type: 'admin.denied', limit: 10 });
  t.equal(events[0]?.details.reason, 'ip_not_allowed');
  t.equal(events[0]?.ip, '127.0.0.1');
  t.equal(
    (await call(server.url, token, 'GET', '/healthz')).status,
    200,
    'the rest of the server is unaffected',
  );
});

t.test('an allowlist that includes the caller lets admin calls through', async (t) => {
  const server = await startTestServer(t, { GATEHOUSE_ADMIN_IP_ALLOWLIST: '127.0.0.0/8' });
  const admin = await createAdminService(server);
  t.equal((await call(server.url, await admin.token(), 'GET', '/admin/users')).status, 200);
});

t.test('the admin rate limit counts per caller and answers 429 with Retry-After', async (t) => {
  const server = await startTestServer(t, {
    GATEHOUSE_RATE_LIMITS: 'token=1000/60s,login=1000/60s,login_ip=1000/60s,admin=3/60s',
  });
  const first = await createAdminService(server, 'first');
  const second = await createAdminService(server, 'second');
  const firstToken = await first.token();
  const statuses = [];
  for (let index = 0; index < 4; index++) {
    statuses.push((await call(server.url, firstToken, 'GET', '/admin/roles')).status);
  }
  t.same(statuses, [200, 200, 200, 429]);
  const refused = await call(server.url, firstToken, 'GET', '/admin/roles');
  t.equal(refused.body.error, 'rate_limited');
  t.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After says when to come back');
  t.equal(
    (await call(server.url, await second.token(), 'GET', '/admin/roles')).status,
    200,
    'another caller is not affected',
  );
});

t.test('the admin API sends no CORS headers', async (t) => {
  const server = await startTestServer(t);
  await server.gatehouse.clients.create(
    {
      name: 'SPA',
      grants: ['authorization_code'],
      redirect_uris: ['https://spa.example.com/cb'],
      public: true,
      cors_origins: ['https://spa.example.com'],
    },
    { actor: 'test' },
  );
  const admin = await createAdminService(server);
  const origin = { origin: 'https://spa.example.com' };
  const reply = await call(server.url, await admin.token(), 'GET', '/admin/users', { headers: origin });
  t.equal(reply.status, 200);
  t.equal(reply.headers.get('access-control-allow-origin'), null);
  const preflight = await fetch(`${server.url}/admin/users`, {
    method: 'OPTIONS',
    headers: { ...origin, 'access-control-request-method': 'GET' },
  });
  t.equal(preflight.headers.get('access-control-allow-origin'), null, 'not even to a registered origin');
});
