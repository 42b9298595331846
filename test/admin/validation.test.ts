// Bad input to the admin API (SPEC "Security behaviour", AD-3, AD-4, L.*):
// unknown fields, wrong types, malformed JSON, other content types, oversized
// bodies and hostile ids get a 4xx with {"error","message"}, never a 5xx, and
// change nothing.
import t from 'tap';
import { adminClient, call, createAdminService } from '../helpers/admin.ts';
import { startTestServer } from '../helpers/server.ts';

/** Unknown and hostile ids, SQL, NUL, Unicode, and one longer than the router takes. */
const HOSTILE_IDS = [
  "1' OR '1'='1",
  "'; DROP TABLE users; --",
  '%00',
  'abc%00def',
  encodeURIComponent('ünïcödé-☃-𝔘'),
  encodeURIComponent('\u202Eevil'),
  '00000000-0000-4000-8000-000000000000',
  '..%2F..%2Fetc%2Fpasswd',
  'x'.repeat(200),
];

t.test('admin API input validation', async (t) => {
  const server = await startTestServer(t);
  const { gatehouse } = server;
  const admin = await createAdminService(server);
  const token = await admin.token();
  const api = adminClient(server.url, token);

  const victim = await gatehouse.users.create(
    { email: 'victim@example.com', password: 'a long enough passphrase', name: 'Victim' },
    { actor: 'test' },
  );
  const app = await gatehouse.clients.create(
    { name: 'App', grants: ['authorization_code'], redirect_uris: ['https://app.example.com/cb'] },
    { actor: 'test' },
  );
  const appId = app.client.client_id;

  /** Everything a refusal must leave alone. */
  async function snapshot() {
    const [users, clients, roles, keys, events, victimRow, appRow] = await Promise.all([
      gatehouse.db.user.count(),
      gatehouse.db.client.count(),
      gatehouse.db.role.findMany({ orderBy: { name: 'asc' } }),
      gatehouse.keys.list(),
      gatehouse.db.auditEvent.count({ where: { type: { not: 'admin.denied' } } }),
      gatehouse.users.get(victim.id),
      gatehouse.clients.view(appId),
    ]);
    return { users, clients, roles, keys, events, victimRow, appRow };
  }
  const before = await snapshot();

  await t.test('unknown fields are refused (no mass assignment)', async (t) => {
    const cases: [string, string, unknown][] = [
      ['POST', '/admin/users', { email: 'new@example.com', isAdmin: true }],
      ['POST', '/admin/users', { email: 'new@example.com', password_hash: '$argon2id$...' }],
      ['PATCH', `/admin/users/${victim.id}`, { roles: ['admin'] }],
      ['PATCH', `/admin/users/${victim.id}`, { email_verified: false, tenantId: 'other' }],
      ['PUT', `/admin/users/${victim.id}/roles`, { roles: ['admin'], extra: 1 }],
      ['POST', '/admin/roles', { name: 'ops', admin: true }],
      [
        'POST',
        '/admin/clients',
        { name: 'x', grants: ['client_credentials'], resources: ['https://a.example'], client_secret: 's' },
      ],
      ['PATCH', `/admin/clients/${appId}`, { client_id: 'mine-now' }],
      ['POST', '/admin/keys/rotate', { alg: 'ES256', private_key: 'x' }],
      ['POST', `/admin/clients/${appId}/secret`, { grace_seconds: 1, secret: 'chosen' }],
      ['POST', `/admin/users/${victim.id}/unlock`, { now: true }],
    ];
    for (const [method, path, body] of cases) {
      const reply = await api(method, path, { body });
      t.equal(reply.status, 400, `${method} ${path} ${JSON.stringify(body)}`);
      t.equal(reply.body.error, 'invalid_request');
      t.type(reply.body.message, 'string');
    }
    const query = await api('GET', '/admin/users?admin=true');
    t.equal(query.status, 400, 'unknown query parameters too');
  });

  await t.test('wrong types are refused', async (t) => {
    const cases: [string, string, unknown][] = [
      ['POST', '/admin/users', { email: 42 }],
      ['POST', '/admin/users', { email: ['a@example.com'] }],
      ['POST', '/admin/users', ['not', 'an', 'object']],
      ['POST', '/admin/users', 'a string'],
      ['PATCH', `/admin/users/${victim.id}`, { disabled: 'true' }],
      ['PATCH', `/admin/users/${victim.id}`, { name: { first: 'x' } }],
      ['PUT', `/admin/users/${victim.id}/roles`, { roles: 'admin' }],
      ['PUT', `/admin/users/${victim.id}/roles`, {}],
      ['POST', '/admin/clients', { name: 'x', grants: 'client_credentials' }],
      ['POST', '/admin/clients', { name: 'x', grants: ['implicit'] }],
      ['POST', `/admin/clients/${appId}/secret`, { grace_seconds: '60' }],
      ['POST', `/admin/clients/${appId}/secret`, { grace_seconds: -1 }],
      ['POST', '/admin/keys/rotate', { alg: 'HS256' }],
      ['POST', '/admin/keys/rotate', { alg: 'none' }],
      ['POST', '/admin/roles', { name: 7 }],
    ];
    for (const [method, path, body] of cases) {
      const reply = await api(method, path, { body });
      t.equal(reply.status, 400, `${method} ${path} ${JSON.stringify(body)}`);
    }
    for (const query of [
      'limit=0',
      'limit=abc',
      'limit=201',
      'limit=-1',
      'cursor=garbage!',
      'cursor=eyJ4IjoxfQ',
    ]) {
      t.equal((await api('GET', `/admin/users?${query}`)).status, 400, `GET /admin/users?${query}`);
    }
    for (const query of ['type=nope', 'before=abc', 'before=99999999999999999999999', 'limit=1.5']) {
      t.equal((await api('GET', `/admin/audit?${query}`)).status, 400, `GET /admin/audit?${query}`);
    }
    t.equal((await api('DELETE', '/admin/roles/admin?force=yes')).status, 400);
  });

  await t.test('values the rules refuse get a clear 400', async (t) => {
    const cases: [string, string, unknown, RegExp][] = [
      ['POST', '/admin/users', { email: 'not-an-email' }, /email/],
      ['POST', '/admin/users', { email: 'nul\u0000@example.com' }, /control/],
      ['POST', '/admin/users', { email: 'short@example.com', password: 'short' }, /12/],
      ['POST', '/admin/users', { email: 'r@example.com', roles: ['no-such-role'] }, /no role/],
      ['PATCH', `/admin/users/${victim.id}`, { name: 'bad\u0000name' }, /control/],
      ['PATCH', `/admin/users/${victim.id}`, { password: 'victim@example.com' }, /./],
      ['PUT', `/admin/users/${victim.id}/roles`, { roles: ['ghost'] }, /no role/],
      ['POST', '/admin/roles', { name: 'Bad Name' }, /role name/],
      ['POST', '/admin/roles', { name: 'ok', description: 'nul\u0000' }, /control/],
      ['POST', '/admin/clients', { name: 'x', grants: ['client_credentials'] }, /resource/],
      [
        'POST',
        '/admin/clients',
        { name: 'x', grants: ['authorization_code'], redirect_uris: ['javascript:alert(1)'] },
        /redirect_uris/,
      ],
      [
        'POST',
        '/admin/clients',
        {
          name: 'x',
          grants: ['client_credentials'],
          resources: ['https://a.example'],
          auth_method: 'private_key_jwt',
          jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: '\u0000', y: 'y' }] },
        },
        /NUL/,
      ],
      [
        'PATCH',
        `/admin/clients/${appId}`,
        { redirect_uris: ['http://evil.example.com/cb'] },
        /redirect_uris/,
      ],
    ];
    for (const [method, path, body, message] of cases) {
      const reply = await api(method, path, { body });
      t.equal(reply.status, 400, `${method} ${path} ${JSON.stringify(body)}`);
      t.match(reply.body.message, message);
    }
  });

  await t.test('malformed JSON, other content types and oversized bodies', async (t) => {
    const malformed = await api('POST', '/admin/users', {
      raw: { type: 'application/json', data: '{"email": ' },
    });
    t.equal(malformed.status, 400);
    t.equal(malformed.body.error, 'invalid_request');
    const poisoned = await api('POST', '/admin/roles', {
      raw: { type: 'application/json', data: '{"name":"x","__proto__":{"admin":true}}' },
    });
    t.equal(poisoned.status, 400, 'prototype poisoning is refused');
    const empty = await api('POST', '/admin/users', { raw: { type: 'application/json', data: '' } });
    t.equal(empty.status, 400);

    const text = await api('POST', '/admin/users', {
      raw: { type: 'text/plain', data: '{"email":"t@example.com"}' },
    });
    t.equal(text.status, 415);
    t.equal(text.body.error, 'unsupported_media_type');
    const form = await api('POST', '/admin/roles', {
      raw: { type: 'application/x-www-form-urlencoded', data: 'name=formrole' },
    });
    t.equal(form.status, 415);

    const big = await api('POST', '/admin/users', {
      raw: {
        type: 'application/json',
        data: JSON.stringify({ email: 'big@example.com', name: 'x'.repeat(2 * 1024 * 1024) }),
      },
    });
    t.equal(big.status, 413);
    t.equal(big.body.error, 'payload_too_large');
  });

  await t.test('unknown and hostile ids are 404 (or 400), never 5xx', async (t) => {
    for (const id of HOSTILE_IDS) {
      const paths: [string, string, unknown?][] = [
        ['GET', `/admin/users/${id}`],
        ['PATCH', `/admin/users/${id}`, { name: 'x' }],
        ['DELETE', `/admin/users/${id}`],
        ['PUT', `/admin/users/${id}/roles`, { roles: [] }],
        ['DELETE', `/admin/users/${id}/mfa`],
        ['POST', `/admin/users/${id}/unlock`],
        ['POST', `/admin/users/${id}/revoke-sessions`],
        ['GET', `/admin/clients/${id}`],
        ['PATCH', `/admin/clients/${id}`, { name: 'x' }],
        ['DELETE', `/admin/clients/${id}`],
        ['POST', `/admin/clients/${id}/secret`, { grace_seconds: 0 }],
        ['POST', `/admin/keys/${id}/retire`, { force: true }],
        ['DELETE', `/admin/roles/${id}?force=true`],
      ];
      for (const [method, path, body] of paths) {
        const reply = await api(method, path, body === undefined ? {} : { body });
        // 414: Fastify's router refuses path parameters over 100 characters before routing.
        t.ok(
          [400, 404, 414].includes(reply.status),
          `${method} ${path}: ${reply.status} ${reply.text.slice(0, 120)}`,
        );
        t.type(reply.body?.error, 'string');
      }
    }
    const hostileFilters = ["' OR 1=1 --", '%', '_', '\\', '\u0000'];
    for (const filter of hostileFilters) {
      const reply = await api('GET', `/admin/users?email=${encodeURIComponent(filter)}`);
      t.ok(
        reply.status === 200 || reply.status === 400,
        `email filter ${JSON.stringify(filter)}: ${reply.status}`,
      );
      if (reply.status === 200) t.same(reply.body.items, [], 'matches no one: wildcards are taken literally');
    }
  });

  await t.test('unknown admin paths: 404 for admins, 401 for everyone else', async (t) => {
    const known = await api('GET', '/admin/nothing-here');
    t.equal(known.status, 404);
    t.equal(known.body.error, 'not_found');
    const anonymous = await call(server.url, undefined, 'GET', '/admin/nothing-here');
    t.equal(anonymous.status, 401, 'the route map is not revealed to anonymous callers');
  });

  await t.test('nothing changed after all these refusals', async (t) => {
    t.same(await snapshot(), before);
  });
});
