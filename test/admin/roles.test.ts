// Roles through the admin API: create and list them, give users a set of
// roles (each change audited), see a new role in the next sign-in's `roles`
// claim, and delete roles: refused while held unless forced, never `admin`.
import t from 'tap';
import { adminClient, createAdminService } from '../helpers/admin.ts';
import { startTestServer } from '../helpers/server.ts';
import { discover, exchange, signIn } from '../helpers/sign-in.ts';

const REDIRECT = 'https://portal.example.com/callback';
const PASSWORD = 'a long enough passphrase';

t.test('roles through the admin API', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const admin = await createAdminService(server);
  const api = adminClient(server.url, await admin.token());
  const actor = `client:${admin.clientId}`;
  const portal = await gatehouse.clients.create(
    {
      name: 'Portal',
      grants: ['authorization_code'],
      redirect_uris: [REDIRECT],
      scope: 'openid roles',
      first_party: true,
    },
    { actor: 'test' },
  );
  const config = await discover(issuer, portal.client.client_id, portal.client_secret);
  const alice = await gatehouse.users.create(
    { email: 'alice@example.com', password: PASSWORD },
    { actor: 'test' },
  );
  const rolesInIdToken = async () => {
    const flow = await signIn({
      issuer,
      config,
      redirectUri: REDIRECT,
      email: 'alice@example.com',
      password: PASSWORD,
      scope: 'openid roles',
    });
    return (await exchange(config, flow)).claims()?.roles;
  };

  await t.test('create and list roles', async (t) => {
    const created = await api('POST', '/admin/roles', {
      body: { name: 'auditor', description: 'Reads the audit log' },
    });
    t.equal(created.status, 201);
    t.same(created.body, { name: 'auditor', description: 'Reads the audit log' });
    t.equal((await api('POST', '/admin/roles', { body: { name: 'support' } })).status, 201);
    const duplicate = await api('POST', '/admin/roles', { body: { name: 'auditor' } });
    t.equal(duplicate.status, 409);
    t.equal(duplicate.body.error, 'conflict');

    const all = await api('GET', '/admin/roles');
    t.same(
      all.body.items.map((role: { name: string }) => role.name),
      ['admin', 'auditor', 'support'],
    );
    t.equal(all.body.next, null);
    const first = await api('GET', '/admin/roles?limit=2');
    t.equal(first.body.items.length, 2);
    t.type(first.body.next, 'string');
    const second = await api('GET', `/admin/roles?limit=2&cursor=${first.body.next}`);
    t.same(
      second.body.items.map((role: { name: string }) => role.name),
      ['support'],
    );
    t.equal(second.body.next, null);
  });

  await t.test("PUT replaces a user's roles; the next sign-in carries them", async (t) => {
    t.same(await rolesInIdToken(), [], 'no roles yet');
    const assigned = await api('PUT', `/admin/users/${alice.id}/roles`, {
      body: { roles: ['auditor', 'support'] },
    });
    t.equal(assigned.status, 200);
    t.same(assigned.body.roles, ['auditor', 'support']);
    t.same(await rolesInIdToken(), ['auditor', 'support'], 'the roles claim of a new ID token');

    const replaced = await api('PUT', `/admin/users/${alice.id}/roles`, { body: { roles: ['support'] } });
    t.same(replaced.body.roles, ['support']);
    t.same(await rolesInIdToken(), ['support']);

    const unchanged = await api('PUT', `/admin/users/${alice.id}/roles`, { body: { roles: ['support'] } });
    t.equal(unchanged.status, 200, 'idempotent');

    const assignedEvents = (await api('GET', '/admin/audit?type=role.assigned')).body.items;
    t.same(
      assignedEvents.map((event: { details: { role: string } }) => event.details.role).sort(),
      ['auditor', 'support'],
      'one role.assigned per role added, none for the idempotent PUT',
    );
    for (const event of assignedEvents) {
      t.equal(event.actor, actor);
      t.equal(event.target, `user:${alice.id}`);
    }
    const removedEvents = (await api('GET', '/admin/audit?type=role.removed')).body.items;
    t.equal(removedEvents.length, 1);
    t.same(removedEvents[0].details, { role: 'auditor' });

    const unknown = await api('PUT', `/admin/users/${alice.id}/roles`, {
      body: { roles: ['support', 'ghost'] },
    });
    t.equal(unknown.status, 400);
    t.same((await gatehouse.users.get(alice.id))?.roles, ['support'], 'an unknown role changes nothing');
  });

  await t.test('a role in use is deleted only with force; admin never', async (t) => {
    const held = await api('DELETE', '/admin/roles/support');
    t.equal(held.status, 409);
    t.match(held.body.message, /held by 1 user/);
    t.same((await gatehouse.users.get(alice.id))?.roles, ['support'], 'nothing changed');

    const forced = await api('DELETE', '/admin/roles/support?force=true');
    t.equal(forced.status, 204);
    t.equal(forced.text, '');
    t.same((await gatehouse.users.get(alice.id))?.roles, [], 'taken from its holders');
    const removal = (await api('GET', '/admin/audit?type=role.removed&limit=1')).body.items[0];
    t.same(removal.details, { role: 'support', role_deleted: true });
    t.equal(removal.actor, actor);

    t.equal((await api('DELETE', '/admin/roles/auditor')).status, 204, 'an unused role goes without force');
    t.equal((await api('DELETE', '/admin/roles/auditor')).status, 404, 'and is then unknown');
    const adminRole = await api('DELETE', '/admin/roles/admin?force=true');
    t.equal(adminRole.status, 409);
    t.match(adminRole.body.message, /admin role cannot be deleted/);
    t.same(
      (await api('GET', '/admin/roles')).body.items.map((role: { name: string }) => role.name),
      ['admin'],
    );
  });
});
