// The oidc-provider storage adapter against a real, migrated database: every
// method of the upstream contract (oidc-provider's example/my_adapter.js),
// single use that holds under concurrency, and rows that give nothing usable
// away when the database is dumped.
import { randomBytes } from 'node:crypto';
import type { AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import t from 'tap';
import { applyMigrations } from '../../src/db/migrator.ts';
import { createDatabase } from '../../src/db/prisma.ts';
import { sha256 } from '../../src/lib/tokens.ts';
import { createAdapterFactory, deleteExpiredArtifacts, insertIfAbsent } from '../../src/oidc/adapter.ts';
import { createTestDatabase } from '../helpers/database.ts';

const url = await createTestDatabase(t);
await applyMigrations(url, {});
const db = createDatabase(url);
t.teardown(() => db.$disconnect());

const ISSUER = 'https://id.example.com';
const clientLookups: string[] = [];
const Adapter = createAdapterFactory(db, async (id) => {
  clientLookups.push(id);
  return id === 'c1' ? { client_id: 'c1' } : undefined;
});

interface StoredRow {
  kind: string;
  id: string;
  payload: Record<string, unknown>;
  text: string;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  consumed_at: Date | null;
  expires_at: Date | null;
}

/** oidc-provider's opaque values: 256 random bits, base64url. */
const newId = () => randomBytes(32).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function tokenPayload(kind: string, id: string, extra: AdapterPayload = {}): AdapterPayload {
  return {
    jti: id,
    kind,
    iat: now(),
    exp: now() + 3600,
    accountId: 'user-1',
    clientId: 'web1',
    grantId: 'grant-1',
    scope: 'openid profile',
    ...extra,
  };
}

async function storedRow(kind: string, id: string): Promise<StoredRow | undefined> {
  const rows = await db.$queryRaw<StoredRow[]>`
    SELECT kind, id, payload, payload::text AS text, grant_id, uid, user_code, consumed_at, expires_at
    FROM oidc_artifacts WHERE kind = ${kind} AND id = ${sha256(id)}`;
  return rows[0];
}

/** Awaits `promise` and returns what it rejected with (undefined when it resolved). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  return undefined;
}

t.test('upsert then find returns the payload, jti restored from the id', async (t) => {
  const adapter = new Adapter('AccessToken');
  const id = newId();
  const payload = tokenPayload('AccessToken', id, {
    aud: ['https://api.example.com'],
    claims: { userinfo: { email: null } },
    extra: { tenant: 't1' },
    gty: 'authorization_code',
    sessionUid: 'session-uid-1',
    expiresWithSession: true,
  });
  await adapter.upsert(id, structuredClone(payload), 3600);
  t.strictSame(await adapter.find(id), payload, 'nothing added, nothing lost');

  const row = await storedRow('AccessToken', id);
  t.ok(row, 'stored');
  t.notOk(row && 'jti' in row.payload, 'jti is not stored');
  t.equal(row?.grant_id, 'grant-1');
  t.ok(row?.expires_at && Math.abs(row.expires_at.getTime() - (Date.now() + 3_600_000)) < 60_000);

  const updated = { ...payload, scope: 'openid' };
  await adapter.upsert(id, structuredClone(updated), 3600);
  t.strictSame(await adapter.find(id), updated, 'a second upsert replaces the payload');
});

t.test('find of a missing id is undefined', async (t) => {
  t.equal(await new Adapter('AccessToken').find(newId()), undefined);
  t.equal(await new Adapter('Session').find(''), undefined);
});

t.test('find of an expired row is undefined', async (t) => {
  const adapter = new Adapter('AuthorizationCode');
  const id = newId();
  await adapter.upsert(id, tokenPayload('AuthorizationCode', id), 1);
  t.ok(await adapter.find(id), 'found while live');
  await db.$executeRaw`
    UPDATE oidc_artifacts SET expires_at = now() - interval '1 second'
    WHERE kind = 'AuthorizationCode' AND id = ${sha256(id)}`;
  t.equal(await adapter.find(id), undefined);
});

t.test('models are isolated by kind', async (t) => {
  const id = newId();
  const accessTokens = new Adapter('AccessToken');
  const refreshTokens = new Adapter('RefreshToken');
  await accessTokens.upsert(id, tokenPayload('AccessToken', id), 3600);
  t.equal(await refreshTokens.find(id), undefined, 'find');
  t.equal(await new Adapter('Session').findByUid('session-uid-x'), undefined);
  t.equal((await rejection(refreshTokens.consume(id))) instanceof errors.InvalidGrant, true, 'consume');
  await refreshTokens.destroy(id);
  await refreshTokens.revokeByGrantId('grant-1');
  const found = await accessTokens.find(id);
  t.equal(found?.jti, id, 'destroy and revokeByGrantId of another kind leave it alone');
  t.equal(found?.consumed, undefined, 'and it was not consumed');
});

t.test('consume marks the artifact used, in epoch seconds', async (t) => {
  const adapter = new Adapter('AuthorizationCode');
  const id = newId();
  const payload = tokenPayload('AuthorizationCode', id, {
    codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    codeChallengeMethod: 'S256',
    redirectUri: 'https://app1.test/cb',
  });
  await adapter.upsert(id, structuredClone(payload), 60);
  t.equal((await adapter.find(id))?.consumed, undefined, 'not consumed yet');
  const before = now();
  await adapter.consume(id);
  const found = await adapter.find(id);
  t.type(found?.consumed, 'number');
  t.ok(found?.consumed >= before - 1 && found?.consumed <= now() + 1, 'consumed is the current epoch second');
  const { consumed: _consumed, ...rest } = found ?? {};
  t.strictSame(rest, payload, 'the rest of the payload is unchanged');
});

t.test('consuming twice throws InvalidGrant', async (t) => {
  const adapter = new Adapter('RefreshToken');
  const id = newId();
  await adapter.upsert(id, tokenPayload('RefreshToken', id), 3600);
  await adapter.consume(id);
  const error = await rejection(adapter.consume(id));
  t.type(error, errors.InvalidGrant);
  t.equal((error as InstanceType<typeof errors.InvalidGrant>).error, 'invalid_grant');
  t.type(await rejection(adapter.consume(newId())), errors.InvalidGrant, 'so does consuming a missing id');
});

t.test('20 parallel consume() calls on one id: exactly one wins', async (t) => {
  const adapter = new Adapter('AuthorizationCode');
  const id = newId();
  await adapter.upsert(id, tokenPayload('AuthorizationCode', id), 60);
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => adapter.consume(id)));
  const fulfilled = results.filter((result) => result.status === 'fulfilled');
  const rejected = results.filter((result) => result.status === 'rejected');
  t.equal(fulfilled.length, 1, 'one resolves');
  t.equal(rejected.length, 19, 'nineteen reject');
  t.ok(
    rejected.every((result) => result.reason instanceof errors.InvalidGrant),
    'every loser gets InvalidGrant',
  );
});

t.test('destroy removes the artifact', async (t) => {
  const adapter = new Adapter('Session');
  const id = newId();
  await adapter.upsert(id, { jti: id, kind: 'Session', uid: 'uid-destroy', accountId: 'user-1' }, 3600);
  t.ok(await adapter.find(id));
  await adapter.destroy(id);
  t.equal(await adapter.find(id), undefined);
  t.equal(await storedRow('Session', id), undefined, 'the row is gone');
  await adapter.destroy(id);
  t.pass('destroying a missing id is not an error');
});

t.test('revokeByGrantId removes every artifact of that kind and grant, and only those', async (t) => {
  const refreshTokens = new Adapter('RefreshToken');
  const accessTokens = new Adapter('AccessToken');
  const grants = new Adapter('Grant');
  const revoked = 'grant-revoked';
  const kept = 'grant-kept';
  const [rt1, rt2, rtOther, atSameGrant, grantOther] = [newId(), newId(), newId(), newId(), newId()];
  await refreshTokens.upsert(rt1, tokenPayload('RefreshToken', rt1, { grantId: revoked }), 3600);
  await refreshTokens.upsert(rt2, tokenPayload('RefreshToken', rt2, { grantId: revoked }), 3600);
  await refreshTokens.upsert(rtOther, tokenPayload('RefreshToken', rtOther, { grantId: kept }), 3600);
  await accessTokens.upsert(
    atSameGrant,
    tokenPayload('AccessToken', atSameGrant, { grantId: revoked }),
    3600,
  );
  await grants.upsert(revoked, { jti: revoked, kind: 'Grant', accountId: 'user-1', clientId: 'web1' }, 3600);
  await grants.upsert(grantOther, { jti: grantOther, kind: 'Grant', accountId: 'user-1' }, 3600);

  await refreshTokens.revokeByGrantId(revoked);
  t.equal(await refreshTokens.find(rt1), undefined);
  t.equal(await refreshTokens.find(rt2), undefined);
  t.equal((await refreshTokens.find(rtOther))?.jti, rtOther, 'another grant is kept');
  t.equal((await accessTokens.find(atSameGrant))?.jti, atSameGrant, 'another kind is kept');

  await accessTokens.revokeByGrantId(revoked);
  t.equal(await accessTokens.find(atSameGrant), undefined);

  // oidc-provider destroys the Grant itself by its id (helpers/revoke.js).
  await grants.destroy(revoked);
  t.equal(await grants.find(revoked), undefined);
  t.equal((await grants.find(grantOther))?.jti, grantOther);
});

t.test('findByUid finds a Session by its uid', async (t) => {
  const sessions = new Adapter('Session');
  const id = newId();
  const uid = `uid-${newId()}`;
  const payload: AdapterPayload = {
    jti: id,
    kind: 'Session',
    uid,
    iat: now(),
    exp: now() + 3600,
    accountId: 'user-1',
    loginTs: now(),
    amr: ['pwd', 'otp'],
    authorizations: { web1: { sid: 'sid-1', grantId: 'grant-1' } },
  };
  await sessions.upsert(id, structuredClone(payload), 3600);
  const { jti: _jti, ...withoutCookieValue } = payload;
  // The session cookie value (the jti) is only stored as its digest, so a
  // session found by uid carries everything but it; the library only reads it.
  t.strictSame(await sessions.findByUid(uid), withoutCookieValue);
  t.equal(await sessions.findByUid(`uid-${newId()}`), undefined, 'an unknown uid');
  t.equal(await new Adapter('Interaction').findByUid(uid), undefined, 'filtered by kind');

  await db.$executeRaw`
    UPDATE oidc_artifacts SET expires_at = now() - interval '1 second'
    WHERE kind = 'Session' AND id = ${sha256(id)}`;
  t.equal(await sessions.findByUid(uid), undefined, 'an expired session is not found');
});

t.test('findByUserCode finds by user code', async (t) => {
  const deviceCodes = new Adapter('DeviceCode');
  const id = newId();
  const userCode = 'WDJB-MJHT';
  const payload = tokenPayload('DeviceCode', id, {
    userCode,
    params: { client_id: 'tv', scope: 'openid' },
    deviceInfo: { ip: '192.0.2.1', ua: 'tv/1.0' },
  });
  await deviceCodes.upsert(id, structuredClone(payload), 600);
  const { jti: _jti, ...withoutValue } = payload;
  t.strictSame(await deviceCodes.findByUserCode(userCode), withoutValue);
  t.equal(await deviceCodes.findByUserCode('XXXX-XXXX'), undefined, 'an unknown user code');
  t.equal(await new Adapter('AccessToken').findByUserCode(userCode), undefined, 'filtered by kind');
  const row = await storedRow('DeviceCode', id);
  t.equal(row?.user_code, sha256(userCode), 'the user code column holds its digest');
});

t.test('Interaction rows hold neither their id nor the session cookie', async (t) => {
  const interactions = new Adapter('Interaction');
  const id = newId();
  const sessionCookie = newId();
  const payload: AdapterPayload = {
    jti: id,
    kind: 'Interaction',
    iat: now(),
    exp: now() + 600,
    returnTo: `${ISSUER}/auth/${id}`,
    prompt: { name: 'login', reasons: ['no_session'], details: {} },
    params: {
      client_id: 'web1',
      redirect_uri: 'https://app1.test/cb',
      response_type: 'code',
      scope: 'openid',
    },
    trusted: [],
    session: { accountId: 'user-1', uid: 'session-uid-1', cookie: sessionCookie, acr: 'urn:gatehouse:pwd' },
  };
  await interactions.upsert(id, structuredClone(payload), 600);

  const row = await storedRow('Interaction', id);
  t.ok(row, 'stored');
  t.notOk(row && 'jti' in row.payload, 'no jti');
  t.strictSame(
    row?.payload.session,
    { accountId: 'user-1', uid: 'session-uid-1', acr: 'urn:gatehouse:pwd' },
    'no session.cookie',
  );
  t.type(row?.payload.returnTo, 'string');
  t.notOk(String(row?.payload.returnTo).includes(id), 'returnTo does not contain the id');
  t.notOk(row?.text.includes(id), 'the id appears nowhere in the payload');
  t.notOk(row?.text.includes(sessionCookie), 'nor does the session cookie');

  const found = await interactions.find(id);
  t.equal(found?.returnTo, `${ISSUER}/auth/${id}`, 'find() restores returnTo exactly');
  t.equal(found?.jti, id);
  const { session, ...rest } = payload;
  const { cookie: _cookie, ...sessionWithoutCookie } = session as Record<string, unknown>;
  t.strictSame(found, { ...rest, session: sessionWithoutCookie }, 'everything else round-trips');
});

t.test('no stored row reveals its artifact value', async (t) => {
  const artifacts: [kind: string, id: string, payload: AdapterPayload][] = [];
  for (const kind of ['AccessToken', 'AuthorizationCode', 'RefreshToken', 'ClientCredentials']) {
    const id = newId();
    artifacts.push([kind, id, tokenPayload(kind, id)]);
  }
  const sessionId = newId();
  artifacts.push([
    'Session',
    sessionId,
    { jti: sessionId, kind: 'Session', uid: 'uid-dump', accountId: 'user-1', exp: now() + 60 },
  ]);
  const interactionId = newId();
  artifacts.push([
    'Interaction',
    interactionId,
    {
      jti: interactionId,
      kind: 'Interaction',
      exp: now() + 60,
      returnTo: `${ISSUER}/auth/${interactionId}?again=${interactionId}`,
      session: { accountId: 'user-1', uid: 'uid-dump', cookie: sessionId },
    },
  ]);
  const replayId = newId();
  artifacts.push(['ReplayDetection', replayId, { jti: replayId, kind: 'ReplayDetection', iss: 'svc1' }]);

  for (const [kind, id, payload] of artifacts) await new Adapter(kind).upsert(id, payload, 60);

  const rows = await db.$queryRaw<{ kind: string; id: string; text: string }[]>`
    SELECT kind, id, payload::text AS text FROM oidc_artifacts`;
  for (const [kind, id] of artifacts) {
    const row = rows.find((r) => r.kind === kind && r.id === sha256(id));
    t.ok(row, `${kind} is stored under the SHA-256 digest of its value`);
  }
  const values = artifacts.map(([, id]) => id);
  for (const row of rows) {
    t.notOk(values.includes(row.id), `${row.kind} ${row.id}: the id column is no plaintext value`);
    const leaked = values.filter((value) => row.text.includes(value));
    t.strictSame(leaked, [], `${row.kind} ${row.id}: the payload contains no artifact value`);
  }
  const restored = await new Adapter('Interaction').find(interactionId);
  t.equal(restored?.returnTo, `${ISSUER}/auth/${interactionId}?again=${interactionId}`, 'every occurrence');
});

t.test('insertIfAbsent records a key exactly once', async (t) => {
  const key = `https://as.test${newId()}`;
  t.equal(await insertIfAbsent(db, 'ReplayDetection', key, 60), true, 'first time');
  t.equal(await insertIfAbsent(db, 'ReplayDetection', key, 60), false, 'second time');
  t.equal(await insertIfAbsent(db, 'ReplayDetection', key, 60), false, 'and after');
  t.equal(await insertIfAbsent(db, 'OtherKind', key, 60), true, 'another kind has its own keys');
  const rows = await db.$queryRaw<{ id: string }[]>`
    SELECT id FROM oidc_artifacts WHERE kind = 'ReplayDetection' AND id = ${sha256(key)}`;
  t.equal(rows.length, 1, 'stored under the digest of the key');

  await db.$executeRaw`
    UPDATE oidc_artifacts SET expires_at = now() - interval '1 second'
    WHERE kind = 'ReplayDetection' AND id = ${sha256(key)}`;
  t.equal(await insertIfAbsent(db, 'ReplayDetection', key, 60), true, 'an expired record counts as absent');
  t.equal(await insertIfAbsent(db, 'ReplayDetection', key, 60), false, 'and is live again');
});

t.test('20 parallel insertIfAbsent calls with one key: exactly one true', async (t) => {
  const key = newId();
  const results = await Promise.all(
    Array.from({ length: 20 }, () => insertIfAbsent(db, 'ReplayDetection', key, 60)),
  );
  t.equal(results.filter(Boolean).length, 1);
  t.equal(results.filter((result) => !result).length, 19);
});

t.test('deleteExpiredArtifacts removes expired rows and keeps live and non-expiring ones', async (t) => {
  await db.$executeRaw`DELETE FROM oidc_artifacts`;
  const adapter = new Adapter('AccessToken');
  const expired = [newId(), newId(), newId(), newId(), newId()];
  const live = newId();
  const forever = newId();
  for (const id of expired) await adapter.upsert(id, tokenPayload('AccessToken', id), 60);
  await adapter.upsert(live, tokenPayload('AccessToken', live), 3600);
  await adapter.upsert(forever, tokenPayload('AccessToken', forever), 0);
  const digests = expired.map((id) => sha256(id));
  await db.$executeRaw`
    UPDATE oidc_artifacts SET expires_at = now() - interval '1 minute' WHERE id = ANY(${digests})`;
  t.equal((await storedRow('AccessToken', forever))?.expires_at, null, 'expiresIn 0 stores no expiry');

  t.equal(await deleteExpiredArtifacts(db, 2, 1), 2, 'stops after maxBatches batches');
  t.equal(await deleteExpiredArtifacts(db, 2), 3, 'then deletes the rest, batch after batch');
  t.equal(await deleteExpiredArtifacts(db), 0, 'nothing left to delete');
  for (const id of expired) t.equal(await storedRow('AccessToken', id), undefined);
  t.ok(await adapter.find(live), 'the live row is kept');
  t.ok(await adapter.find(forever), 'the row without expiry is kept');
});

t.test('the Client kind delegates to the client lookup', async (t) => {
  const clients = new Adapter('Client');
  clientLookups.length = 0;
  t.strictSame(await clients.find('c1'), { client_id: 'c1' });
  t.equal(await clients.find('c2'), undefined);
  t.strictSame(clientLookups, ['c1', 'c2'], 'the lookup got each client id');
  const rows = await db.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM oidc_artifacts WHERE kind = 'Client'`;
  t.equal(rows[0]?.n, 0, 'clients are not read from or written to the artifact table');
});
