// The audit log through the admin API: every admin change is an event naming
// the caller and the target, newest first, paged with `before`, filtered by
// `type`; no password, client secret or token ever appears in it (nor in
// the server's log).
import t from 'tap';
import { adminClient, call, createAdminService } from '../helpers/admin.ts';
import { startTestServer } from '../helpers/server.ts';

const EVENT_FIELDS = ['actor', 'at', 'details', 'id', 'ip', 'target', 'type'];

t.test('the audit log through the admin API', async (t) => {
  const server = await startTestServer(t);
  const admin = await createAdminService(server);
  const token = await admin.token();
  const api = adminClient(server.url, token);
  const actor = `client:${admin.clientId}`;
  const secrets = new Set<string>([admin.secret, token]);

  // One of each admin change, with secrets in play.
  const firstPassword = 'first long passphrase';
  const secondPassword = 'second long passphrase';
  secrets.add(firstPassword).add(secondPassword);
  const user = (
    await api('POST', '/admin/users', { body: { email: 'hank@example.com', password: firstPassword } })
  ).body;
  await api('PATCH', `/admin/users/${user.id}`, { body: { password: secondPassword, name: 'Hank' } });
  await api('POST', '/admin/roles', { body: { name: 'ops' } });
  await api('PUT', `/admin/users/${user.id}/roles`, { body: { roles: ['ops'] } });
  await api('PUT', `/admin/users/${user.id}/roles`, { body: { roles: [] } });
  const created = (
    await api('POST', '/admin/clients', {
      body: { name: 'Batch', grants: ['client_credentials'], resources: ['https://api.example.com'] },
    })
  ).body;
  secrets.add(created.client_secret);
  await api('PATCH', `/admin/clients/${created.client_id}`, { body: { name: 'Batch jobs' } });
  const rotated = (
    await api('POST', `/admin/clients/${created.client_id}/secret`, { body: { grace_seconds: 60 } })
  ).body;
  secrets.add(rotated.client_secret);
  const key = (await api('POST', '/admin/keys/rotate')).body;
  await api('POST', `/admin/users/${user.id}/unlock`);
  await api('POST', `/admin/users/${user.id}/revoke-sessions`);
  await api('DELETE', `/admin/users/${user.id}/mfa`);
  await api('DELETE', `/admin/clients/${created.client_id}`);
  await api('DELETE', `/admin/users/${user.id}`);
  await api('DELETE', '/admin/roles/ops');
  await call(server.url, 'not-a-token', 'GET', '/admin/users');

  // Everything, page by page.
  const events: { id: string; type: string; at: string; actor: string; target: string; ip: string }[] = [];
  let page = await api('GET', '/admin/audit?limit=5');
  events.push(...page.body.items);
  while (page.body.next) {
    page = await api('GET', `/admin/audit?limit=5&before=${page.body.next}`);
    events.push(...page.body.items);
  }

  await t.test('every admin change is an event naming the caller and the target', async (t) => {
    const mine = events.filter((event) => event.actor === actor);
    const expected: [string, string][] = [
      ['user.created', `user:${user.id}`],
      ['user.updated', `user:${user.id}`],
      ['role.assigned', `user:${user.id}`],
      ['role.removed', `user:${user.id}`],
      ['client.created', `client:${created.client_id}`],
      ['client.updated', `client:${created.client_id}`],
      ['client.secret_rotated', `client:${created.client_id}`],
      ['key.rotated', `key:${key.kid}`],
      ['token.revoked', `user:${user.id}`],
      ['client.deleted', `client:${created.client_id}`],
      ['user.deleted', `user:${user.id}`],
    ];
    for (const [type, target] of expected) {
      t.ok(
        mine.some((event) => event.type === type && event.target === target),
        `${type} on ${target}`,
      );
    }
    for (const event of mine) t.equal(event.ip, '127.0.0.1', `${event.type} records the caller's address`);
    t.ok(
      events.some((event) => event.type === 'admin.denied' && event.actor === 'anonymous'),
      'the refused call too',
    );
  });

  await t.test('newest first, each event in the documented shape', async (t) => {
    const ids = events.map((event) => BigInt(event.id));
    t.same(
      ids,
      [...ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)),
      'ids descend',
    );
    t.equal(new Set(ids).size, ids.length, 'paging with before repeats nothing');
    for (let index = 1; index < events.length; index++) {
      t.ok(events[index - 1]!.at >= events[index]!.at, 'times do not go back');
    }
    for (const event of events) t.same(Object.keys(event).sort(), EVENT_FIELDS);
    const all = await api('GET', `/admin/audit?limit=${events.length + 10}`);
    t.same(all.body.items, events, 'the pages add up to the whole log');
    t.equal(all.body.next, null, 'a short page is the last one');
  });

  await t.test('type filters, before pages', async (t) => {
    const updates = await api('GET', '/admin/audit?type=user.updated');
    t.equal(updates.body.items.length, 2, 'the PATCH and the unlock');
    t.ok(updates.body.items.every((event: { type: string }) => event.type === 'user.updated'));
    const first = await api('GET', '/admin/audit?type=user.updated&limit=1');
    t.equal(first.body.next, first.body.items[0].id, 'next is the id of the oldest event of the page');
    const second = await api('GET', `/admin/audit?type=user.updated&limit=1&before=${first.body.next}`);
    t.same(second.body.items[0], updates.body.items[1]);
    const none = await api('GET', '/admin/audit?type=login.success');
    t.same(none.body, { items: [], next: null });
  });

  await t.test('no secret anywhere in the audit log or the server log', async (t) => {
    const dump = JSON.stringify(events);
    const logs = server.logs.join('');
    for (const secret of secrets) {
      t.notOk(dump.includes(secret), `audit log free of ${secret.slice(0, 4)}…`);
      t.notOk(logs.includes(secret), `server log free of ${secret.slice(0, 4)}…`);
    }
    t.notMatch(dump, /\$argon2/, 'no password hash either');
  });
});
