// Users through the admin API: create, list (paged, filtered), read, change,
// disable (their refresh tokens and sign-in stop), unlock, reset the second
// factor, revoke their sessions, delete. The user object never carries the
// password hash.
import * as oidc from 'openid-client';
import t from 'tap';
import { adminClient, createAdminService } from '../helpers/admin.ts';
import { startTestServer } from '../helpers/server.ts';
import { Agent, discover, exchange, signIn } from '../helpers/sign-in.ts';

const REDIRECT = 'https://portal.example.com/callback';
const PASSWORD = 'a long enough passphrase';
const USER_FIELDS = [
  'created_at',
  'disabled',
  'email',
  'email_verified',
  'id',
  'locked_until',
  'mfa_enabled',
  'mfa_required',
  'name',
  'roles',
  'updated_at',
];

t.test('users through the admin API', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const admin = await createAdminService(server);
  const api = adminClient(server.url, await admin.token());
  const actor = `client:${admin.clientId}`;
  const portal = await gatehouse.clients.create(
    {
      name: 'Portal',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      scope: 'openid profile email offline_access',
      first_party: true,
    },
    { actor: 'test' },
  );
  const config = await discover(issuer, portal.client.client_id, portal.client_secret);
  const signInAs = (email: string, password = PASSWORD, agent?: Agent) =>
    signIn({
      issuer,
      config,
      redirectUri: REDIRECT,
      email,
      password,
      scope: 'openid offline_access',
      ...(agent ? { agent } : {}),
    });
  const userinfo = async (token: string) =>
    (await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${token}` } })).status;
  const refresh = async (token: string) => {
    const basic = Buffer.from(`${portal.client.client_id}:${portal.client_secret}`).toString('base64');
    const response = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }),
    });
    return { status: response.status, body: (await response.json()) as { error?: string } };
  };

  let carol: { id: string; email: string };
  await t.test('create: 201 with the user object, never the password hash', async (t) => {
    await gatehouse.roles.create('support', null, { actor: 'test' });
    const reply = await api('POST', '/admin/users', {
      body: {
        email: '  Carol@Example.COM ',
        password: PASSWORD,
        name: 'Carol',
        roles: ['support'],
        mfa_required: true,
      },
    });
    t.equal(reply.status, 201);
    t.same(Object.keys(reply.body).sort(), USER_FIELDS);
    t.match(reply.body, {
      email: 'carol@example.com',
      name: 'Carol',
      email_verified: true,
      disabled: false,
      mfa_required: true,
      mfa_enabled: false,
      roles: ['support'],
      locked_until: null,
    });
    t.notMatch(reply.text, /argon2|password/i, 'no hash, no password');
    carol = reply.body;
    t.same((await api('GET', `/admin/users/${carol.id}`)).body, reply.body, 'GET shows the same object');

    const duplicate = await api('POST', '/admin/users', { body: { email: 'CAROL@example.com' } });
    t.equal(duplicate.status, 409);
    const unverified = await api('POST', '/admin/users', {
      body: { email: 'dave_ops@example.com', email_verified: false },
    });
    t.equal(unverified.status, 201);
    t.equal(unverified.body.email_verified, false);
    t.equal(unverified.body.name, null);

    const created = (await api('GET', '/admin/audit?type=user.created')).body.items[0];
    t.equal(created.actor, actor);
    t.equal(created.target, `user:${unverified.body.id}`);
  });

  await t.test('list: pages follow `next`; the email filter matches fragments literally', async (t) => {
    for (const name of ['erin', 'frank', 'grace']) {
      await api('POST', '/admin/users', { body: { email: `${name}@example.org` } });
    }
    const all = await api('GET', '/admin/users');
    t.equal(all.body.items.length, 5);
    t.equal(all.body.next, null);

    const seen: string[] = [];
    let page = await api('GET', '/admin/users?limit=1');
    t.equal(page.body.items.length, 1);
    t.type(page.body.next, 'string', 'limit=1 gives a next cursor');
    seen.push(page.body.items[0].email);
    const second = await api('GET', `/admin/users?limit=1&cursor=${page.body.next}`);
    t.equal(second.body.items.length, 1);
    t.not(second.body.items[0].email, seen[0], 'following it gives the next user');
    while (page.body.next) {
      page = await api('GET', `/admin/users?limit=2&cursor=${page.body.next}`);
      seen.push(...page.body.items.map((user: { email: string }) => user.email));
    }
    t.same(
      seen,
      all.body.items.map((user: { email: string }) => user.email),
      'walking the pages gives every user once, in order',
    );

    const filtered = await api('GET', '/admin/users?email=EXAMPLE.ORG');
    t.same(
      filtered.body.items.map((user: { email: string }) => user.email),
      ['erin@example.org', 'frank@example.org', 'grace@example.org'],
    );
    const exact = await api('GET', `/admin/users?email=${encodeURIComponent('carol@example.com')}`);
    t.same(
      exact.body.items.map((user: { id: string }) => user.id),
      [carol.id],
    );
    const underscore = await api('GET', '/admin/users?email=_');
    t.same(
      underscore.body.items.map((user: { email: string }) => user.email),
      ['dave_ops@example.com'],
      '_ is a character, not a wildcard',
    );
    const filteredPage = await api('GET', '/admin/users?email=example.org&limit=2');
    t.equal(filteredPage.body.items.length, 2);
    const rest = await api('GET', `/admin/users?email=example.org&limit=2&cursor=${filteredPage.body.next}`);
    t.same(
      rest.body.items.map((user: { email: string }) => user.email),
      ['grace@example.org'],
    );
  });

  await t.test('PATCH changes what it names; a new password works at once', async (t) => {
    const renamed = await api('PATCH', `/admin/users/${carol.id}`, {
      body: { name: 'Carol B.', mfa_required: false },
    });
    t.equal(renamed.status, 200);
    t.equal(renamed.body.name, 'Carol B.');
    t.equal(renamed.body.mfa_required, false);
    t.equal(renamed.body.roles.length, 1, 'what it does not name is left alone');
    const newPassword = 'another long passphrase';
    t.equal(
      (await api('PATCH', `/admin/users/${carol.id}`, { body: { password: newPassword } })).status,
      200,
    );
    t.equal(
      (await gatehouse.users.authenticate(carol.email, PASSWORD)).ok,
      false,
      'the old password is refused',
    );
    t.equal((await gatehouse.users.authenticate(carol.email, newPassword)).ok, true);
    await api('PATCH', `/admin/users/${carol.id}`, { body: { password: PASSWORD } });
    const cleared = await api('PATCH', `/admin/users/${carol.id}`, { body: { name: null } });
    t.equal(cleared.body.name, null);

    const events = (await api('GET', '/admin/audit?type=user.updated&limit=4')).body.items;
    t.same(
      events.map((event: { details: { fields: string[] } }) => event.details.fields),
      [['name'], ['password'], ['password'], ['name', 'mfa_required']],
    );
    for (const event of events) t.equal(event.actor, actor);
  });

  await t.test('disabling a user stops their sign-in and their refresh tokens', async (t) => {
    const tokens = await exchange(config, await signInAs(carol.email));
    t.equal(await userinfo(tokens.access_token), 200);
    const disabled = await api('PATCH', `/admin/users/${carol.id}`, { body: { disabled: true } });
    t.equal(disabled.status, 200);
    t.equal(disabled.body.disabled, true);

    const refreshed = await refresh(tokens.refresh_token!);
    t.equal(refreshed.status, 400);
    t.equal(refreshed.body.error, 'invalid_grant', 'the refresh token stopped working');
    t.equal(await userinfo(tokens.access_token), 401, 'and so did the opaque access token');
    await t.rejects(
      signInAs(carol.email),
      /sign-in page answered 401/,
      'sign-in fails like a wrong password',
    );
    const artifacts = await gatehouse.db.$queryRaw<{ n: bigint }[]>`
      SELECT count(*) AS n FROM oidc_artifacts WHERE payload->>'accountId' = ${carol.id}`;
    t.equal(Number(artifacts[0]?.n), 0, 'their sessions and grants are gone');
    const event = (await api('GET', '/admin/audit?type=user.updated&limit=1')).body.items[0];
    t.match(event.details, { fields: ['disabled'], disabled: true, revoked: { grants: 1 } });

    const enabled = await api('PATCH', `/admin/users/${carol.id}`, { body: { disabled: false } });
    t.equal(enabled.body.disabled, false);
    await t.resolves(signInAs(carol.email), 'enabled again, they sign in');
  });

  await t.test('unlock lifts a lockout', async (t) => {
    for (let attempt = 0; attempt < 5; attempt++)
      await gatehouse.users.authenticate(carol.email, 'wrong password!!');
    const locked = await api('GET', `/admin/users/${carol.id}`);
    t.type(locked.body.locked_until, 'string', 'locked after five failures');
    t.equal((await gatehouse.users.authenticate(carol.email, PASSWORD)).ok, false);

    const unlocked = await api('POST', `/admin/users/${carol.id}/unlock`);
    t.equal(unlocked.status, 200);
    t.equal(unlocked.body.locked_until, null);
    t.equal(
      (await gatehouse.users.authenticate(carol.email, PASSWORD)).ok,
      true,
      'the right password works again',
    );
    const event = (await api('GET', '/admin/audit?type=user.updated&limit=1')).body.items[0];
    t.match(event, { actor, target: `user:${carol.id}`, details: { unlocked: true, was_locked: true } });
  });

  await t.test('DELETE …/mfa removes the second factor', async (t) => {
    await gatehouse.mfa.enrollForOperator(carol.email);
    t.equal((await api('GET', `/admin/users/${carol.id}`)).body.mfa_enabled, true);
    const reply = await api('DELETE', `/admin/users/${carol.id}/mfa`);
    t.equal(reply.status, 204);
    t.equal((await api('GET', `/admin/users/${carol.id}`)).body.mfa_enabled, false);
    t.equal(await gatehouse.db.recoveryCode.count({ where: { userId: carol.id } }), 0, 'recovery codes too');
    const event = (await api('GET', '/admin/audit?type=user.updated&limit=1')).body.items[0];
    t.match(event, { actor, target: `user:${carol.id}`, details: { mfa: 'reset' } });
  });

  await t.test('revoke-sessions ends their sessions and revokes their tokens', async (t) => {
    const agent = new Agent();
    const tokens = await exchange(config, await signInAs(carol.email, PASSWORD, agent));
    t.equal(await userinfo(tokens.access_token), 200);
    const reply = await api('POST', `/admin/users/${carol.id}/revoke-sessions`);
    t.equal(reply.status, 204);
    t.equal(await userinfo(tokens.access_token), 401, 'the opaque access token is revoked');
    t.equal((await refresh(tokens.refresh_token!)).body.error, 'invalid_grant', 'and the refresh token');

    // The browser's session is gone too: a new authorization request shows the login form again.
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const page = await agent.follow(await agent.request(url.toString()), issuer);
    t.equal(page.status, 200);
    t.match(page.body, /name="password"/, 'asked to sign in again');
    const event = (await api('GET', '/admin/audit?type=token.revoked&limit=1')).body.items[0];
    t.match(event, { actor, target: `user:${carol.id}`, details: { reason: 'sessions_revoked' } });
    // Only this sign-in's: resetting the factor above already ended the earlier one.
    t.same([event.details.sessions, event.details.grants], [1, 1]);
  });

  await t.test('DELETE removes the user and what they were issued', async (t) => {
    const tokens = await exchange(config, await signInAs(carol.email));
    const reply = await api('DELETE', `/admin/users/${carol.id}`);
    t.equal(reply.status, 204);
    t.equal((await api('GET', `/admin/users/${carol.id}`)).status, 404);
    t.equal((await api('DELETE', `/admin/users/${carol.id}`)).status, 404, 'a second delete finds nothing');
    t.equal(await userinfo(tokens.access_token), 401);
    const event = (await api('GET', '/admin/audit?type=user.deleted&limit=1')).body.items[0];
    t.match(event, { actor, target: `user:${carol.id}`, details: { email: carol.email } });
  });
});
