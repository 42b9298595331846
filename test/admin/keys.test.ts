// Signing keys through the admin API (SPEC, KR-1..KR-3): rotation makes the
// new key the signer at once while the old one keeps verifying from /jwks;
// the active key is never retired, a recent verify key only with force (and
// the audit says so); a retired key leaves /jwks and its tokens stop verifying.
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import t from 'tap';
import { adminClient, adminResource, call, createAdminService } from '../helpers/admin.ts';
import { startTestServer } from '../helpers/server.ts';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

t.test('signing keys through the admin API', async (t) => {
  const server = await startTestServer(t);
  const { issuer } = server;
  const admin = await createAdminService(server);
  const firstToken = await admin.token();
  const api = adminClient(server.url, firstToken);
  /** A fresh key set each time: no cache hides what /jwks publishes now. */
  const verify = (token: string) =>
    jwtVerify(token, createRemoteJWKSet(new URL(`${issuer}/jwks`)), {
      issuer,
      audience: adminResource(issuer),
    });
  const publishedKids = async () =>
    ((await (await fetch(`${issuer}/jwks`)).json()) as { keys: { kid: string }[] }).keys.map(
      (key) => key.kid,
    );

  const listed = await api('GET', '/admin/keys');
  t.equal(listed.status, 200);
  t.equal(listed.body.next, null);
  t.equal(listed.body.items.length, 1);
  const [original] = listed.body.items;
  t.equal(original.status, 'active');
  t.equal(decodeProtectedHeader(firstToken).kid, original.kid, 'tokens are signed by the active key');

  await t.test('no key material leaves the server (KR-3)', async (t) => {
    const keys = (await (await fetch(`${issuer}/jwks`)).json()) as { keys: Record<string, unknown>[] };
    for (const key of keys.keys)
      for (const member of PRIVATE_MEMBERS) t.notOk(member in key, `/jwks has no ${member}`);
    for (const item of listed.body.items) {
      t.same(Object.keys(item).sort(), [
        'activated_at',
        'alg',
        'created_at',
        'demoted_at',
        'kid',
        'retired_at',
        'status',
      ]);
    }
  });

  let rotated: { kid: string; alg: string; status: string };
  await t.test('rotation makes the new key the signer at once; the old one keeps verifying', async (t) => {
    const reply = await api('POST', '/admin/keys/rotate', { body: {} });
    t.equal(reply.status, 201);
    rotated = reply.body;
    t.equal(rotated.status, 'active');
    t.not(rotated.kid, original.kid);

    const keys = (await api('GET', '/admin/keys')).body.items as { kid: string; status: string }[];
    t.equal(keys.find((key) => key.kid === rotated.kid)?.status, 'active');
    t.equal(
      keys.find((key) => key.kid === original.kid)?.status,
      'verify',
      'the previous key becomes verify',
    );
    t.same((await publishedKids()).sort(), [original.kid, rotated.kid].sort(), 'both are in /jwks');

    const fresh = await admin.token();
    t.equal(
      decodeProtectedHeader(fresh).kid,
      rotated.kid,
      'the next token is signed by the new key, right away',
    );
    await t.resolves(verify(firstToken), 'a token from before the rotation still verifies offline');
    await t.resolves(verify(fresh));
    t.equal((await call(server.url, firstToken, 'GET', '/admin/keys')).status, 200, 'and still works here');
  });

  await t.test('the active key is never retired', async (t) => {
    const reply = await api('POST', `/admin/keys/${rotated.kid}/retire`, { body: { force: true } });
    t.equal(reply.status, 409);
    t.equal(reply.body.error, 'conflict');
  });

  await t.test('a recent verify key is retired only with force, and the audit says so', async (t) => {
    const early = await api('POST', `/admin/keys/${original.kid}/retire`);
    t.equal(early.status, 409, 'tokens it signed may still be valid');
    t.match(early.body.message, /force/);
    t.ok((await publishedKids()).includes(original.kid), 'still published after the refusal');

    const newToken = await admin.token();
    const forced = await call(server.url, newToken, 'POST', `/admin/keys/${original.kid}/retire`, {
      body: { force: true },
    });
    t.equal(forced.status, 200);
    t.equal(forced.body.status, 'retired');
    t.type(forced.body.retired_at, 'string');
    t.same(await publishedKids(), [rotated.kid], 'the retired key left /jwks at once');
    await t.rejects(verify(firstToken), 'its tokens no longer verify offline');
    const old = await call(server.url, firstToken, 'GET', '/admin/keys');
    t.equal(old.status, 401, 'nor here');

    const audit = adminClient(server.url, newToken);
    const retiredEvents = (await audit('GET', '/admin/audit?type=key.retired')).body.items;
    t.equal(retiredEvents.length, 1);
    t.equal(retiredEvents[0].target, `key:${original.kid}`);
    t.equal(retiredEvents[0].actor, `client:${admin.clientId}`);
    t.equal(retiredEvents[0].details.forced, true);
    const rotatedEvents = (await audit('GET', '/admin/audit?type=key.rotated')).body.items;
    t.equal(rotatedEvents.length, 1);
    t.equal(rotatedEvents[0].target, `key:${rotated.kid}`);
    t.same(rotatedEvents[0].details.previous, [original.kid]);
    t.equal(rotatedEvents[0].actor, `client:${admin.clientId}`);
  });

  await t.test('rotation to another algorithm', async (t) => {
    const token = await admin.token();
    const reply = await call(server.url, token, 'POST', '/admin/keys/rotate', { body: { alg: 'EdDSA' } });
    t.equal(reply.status, 201);
    t.equal(reply.body.alg, 'EdDSA');
    const next = await admin.token();
    t.equal(decodeProtectedHeader(next).alg, 'EdDSA');
    t.equal(decodeProtectedHeader(next).kid, reply.body.kid);
    t.equal((await call(server.url, next, 'GET', '/admin/keys')).status, 200);
    t.equal(
      (await call(server.url, token, 'GET', '/admin/keys')).status,
      200,
      'the ES256 token keeps working',
    );
  });

  await t.test('unknown keys are 404', async (t) => {
    const token = await admin.token();
    const reply = await call(server.url, token, 'POST', '/admin/keys/es256-nope/retire', {
      body: { force: true },
    });
    t.equal(reply.status, 404);
  });
});
