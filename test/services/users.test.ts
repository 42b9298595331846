// Users, passwords and roles against a real, migrated database: one
// normalisation of emails at creation and sign-in, the password policy,
// argon2id at rest, sign-in that takes the same path whether or not the
// account exists, rehashing on sign-in, and the audit trail of every change.
import * as argon2 from 'argon2';
import pino from 'pino';
import t from 'tap';
import { applyMigrations } from '../../src/db/migrator.ts';
import { createDatabase } from '../../src/db/prisma.ts';
import { CodedError } from '../../src/lib/errors.ts';
import { AuditService } from '../../src/services/audit.ts';
import { argon2idHasher, needsRehash, type PasswordHasher } from '../../src/services/passwords.ts';
import { RoleService } from '../../src/services/roles.ts';
import { normaliseEmail, UserService } from '../../src/services/users.ts';
import { createTestDatabase } from '../helpers/database.ts';

const url = await createTestDatabase(t);
await applyMigrations(url, {});
const db = createDatabase(url);
t.teardown(() => db.$disconnect());

const audit = new AuditService(db, pino({ level: 'silent' }));
const roles = new RoleService(db, audit);
const users = new UserService(db, audit);
const by = { actor: 'cli', ip: '192.0.2.1' };
await roles.ensureDefaultRoles();

const CURRENT_PARAMS = '$argon2id$v=19$m=19456,t=2,p=1$';
/** Every password any test uses, so the last tests can look for them at rest. */
const passwordsUsed = new Set<string>();

function password(seed: string): string {
  const value = `correct horse ${seed} battery staple`;
  passwordsUsed.add(value);
  return value;
}

/** A hasher that does the real work and records what it was asked. */
function spyHasher() {
  const calls = { verify: [] as string[], hash: 0, dummyHash: 0 };
  const hasher: PasswordHasher = {
    hash: async (value) => {
      calls.hash++;
      return argon2idHasher.hash(value);
    },
    verify: async (hash, value) => {
      calls.verify.push(hash);
      return argon2idHasher.verify(hash, value);
    },
    needsRehash: (hash) => argon2idHasher.needsRehash(hash),
    dummyHash: async () => {
      calls.dummyHash++;
      return argon2idHasher.dummyHash();
    },
  };
  const reset = () => {
    calls.verify = [];
    calls.hash = 0;
    calls.dummyHash = 0;
  };
  return { hasher, calls, reset };
}

async function auditEvents(target: string) {
  return db.auditEvent.findMany({ where: { target }, orderBy: { id: 'asc' } });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  return undefined;
}

t.test('an email has one normal form, at creation and at sign-in', async (t) => {
  const pw = password('normalise');
  const created = await users.create({ email: '  Alice@Example.COM ', password: pw }, by);
  t.equal(created.email, 'alice@example.com');
  t.match(created.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  for (const spelling of [
    'ＡＬＩＣＥ@example.com',
    'alice@ＥＸＡＭＰＬＥ.com',
    'ᴬlice@example.com',
    'ALICE@EXAMPLE.COM ',
  ]) {
    t.equal((await users.findByEmail(spelling))?.id, created.id, `${spelling} finds the account`);
    const result = await users.authenticate(spelling, pw);
    t.equal(result.ok && result.user.id, created.id, `${spelling} signs in to the account`);
  }
  t.equal(normaliseEmail(created.email), created.email, 'normalising is idempotent');
  const duplicate = await rejection(users.create({ email: 'ＡＬＩＣＥ@EXAMPLE.com', password: pw }, by));
  t.match(duplicate, { code: 'conflict', statusCode: 409, message: 'a user with this email already exists' });
  t.not(
    (await users.findByEmail('alice\u0301@example.com'))?.id,
    created.id,
    'a different letter is not alice',
  );
});

t.test('odd Unicode, NUL and injection-shaped emails get a 400, never a database error', async (t) => {
  const pw = password('odd');
  for (const email of [
    'alice@example.com\u0000',
    'alice\u0000@example.com',
    '\u202Ealice@example.com',
    'alice@example.com\u2066',
    'ali\u200Bce@example.com',
    'alice\n@example.com',
    'alice @example.com',
    'alice',
    '@example.com',
    'alice@',
    'a@b@example.com',
    '',
    '   ',
    `${'a'.repeat(250)}@example.com`,
    'x'.repeat(100_000),
    "admin'--",
    "' OR '1'='1",
  ]) {
    const label = JSON.stringify(email.slice(0, 40));
    const error = await rejection(users.create({ email, password: pw }, by));
    t.ok(error instanceof CodedError, `${label} is refused with a coded error`);
    t.match(error, { statusCode: 400, code: 'invalid_request', message: /^email / }, label);
    t.equal(await users.findByEmail(email), undefined, `${label} finds nothing`);
    t.match(
      await users.authenticate(email, pw),
      { ok: false, reason: 'unknown_user' },
      `${label} is unknown`,
    );
  }
  for (const value of [undefined, null, 42, { not: '' }, { contains: '' }, ['a@b.c']]) {
    t.equal(await users.findByEmail(value), undefined, `${JSON.stringify(value)} finds nothing`);
    t.match(await users.authenticate(value, pw), { ok: false, reason: 'unknown_user' });
  }
  t.equal(await db.user.count({ where: { email: { contains: 'alice@example.com\u2066' } } }), 0);
});

t.test('the password policy', async (t) => {
  const cases: [string, string, RegExp | null][] = [
    ['eleven', 'a'.repeat(11), /^password must be at least 12 characters$/],
    ['twelve', 'a'.repeat(12), null],
    ['twelve emoji (code points, not UTF-16 units)', '🔑'.repeat(12), null],
    ['eleven emoji', '🔑'.repeat(11), /at least 12 characters/],
    ['1024', 'b'.repeat(1024), null],
    ['1025', 'b'.repeat(1025), /^password must be at most 1024 characters$/],
    ['100 KB', 'c'.repeat(100_000), /at most 1024 characters/],
    ['NUL', `${'d'.repeat(12)}\u0000`, /must not contain NUL/],
    ['a lone surrogate', `${'e'.repeat(12)}\uD800`, /valid Unicode/],
    ['the email', 'policy-email@example.com', /must not be the email address/],
    ['the email in capitals', 'POLICY-EMAIL@EXAMPLE.COM', /must not be the email address/],
    ['the email in full width', 'ｐｏｌｉｃｙ-email@example.com', /must not be the email address/],
  ];
  let index = 0;
  for (const [label, pw, refusal] of cases) {
    passwordsUsed.add(pw);
    const email = refusal?.source.includes('email')
      ? 'policy-email@example.com'
      : `policy-${index++}@example.com`;
    const result = users.create({ email, password: pw }, by);
    if (refusal) {
      t.match(await rejection(result), { statusCode: 400, message: refusal }, `${label} is refused`);
    } else {
      const user = await result;
      t.ok(user.id, `${label} is accepted`);
      t.match(await users.authenticate(email, pw), { ok: true }, `${label} signs in unmodified`);
    }
  }
  const other = await users.create({ email: 'policy-other@example.com', password: password('other') }, by);
  t.match(await rejection(users.setPassword(other.email, 'short', by)), { statusCode: 400 });
  t.match(await rejection(users.setPassword(other.email, 'Policy-Other@Example.com', by)), {
    statusCode: 400,
    message: /email address/,
  });
});

t.test('passwords are stored as argon2id with the current parameters, and nowhere in clear', async (t) => {
  const pw = password('at rest');
  const user = await users.create({ email: 'rest@example.com', password: pw, name: 'Rest' }, by);
  const record = await users.findById(user.id);
  t.ok(record?.passwordHash?.startsWith(CURRENT_PARAMS), record?.passwordHash ?? 'no hash');
  const [row] = await db.$queryRaw<{ text: string }[]>`
    SELECT row_to_json(u)::text AS text FROM users u WHERE id = ${user.id}::uuid`;
  t.ok(row);
  t.notOk(row!.text.includes(pw), 'no column holds the password');
  t.notOk(row!.text.includes(pw.normalize('NFKC').toLowerCase()), 'nor a folded form of it');
});

t.test('authenticate: success, wrong password, unknown, disabled, no password', async (t) => {
  const pw = password('sign in');
  const user = await users.create({ email: 'signin@example.com', password: pw, roles: ['admin'] }, by);
  const ok = await users.authenticate('signin@example.com', pw);
  t.match(ok, {
    ok: true,
    user: { id: user.id, email: 'signin@example.com', roles: ['admin'], disabled: false, totpEnabled: false },
  });
  t.same(await users.authenticate('signin@example.com', `${pw}x`), {
    ok: false,
    reason: 'bad_password',
    userId: user.id,
  });
  t.same(await users.authenticate('nobody@example.com', pw), { ok: false, reason: 'unknown_user' });
  t.same(await users.authenticate('signin@example.com', 'c'.repeat(100_000)), {
    ok: false,
    reason: 'bad_password',
    userId: user.id,
  });
  await db.user.update({ where: { id: user.id }, data: { disabled: true } });
  t.same(
    await users.authenticate('signin@example.com', pw),
    { ok: false, reason: 'disabled', userId: user.id },
    'a disabled user is refused even with the right password',
  );
  const passwordless = await users.create({ email: 'nopw@example.com' }, by);
  t.same(await users.authenticate('nopw@example.com', pw), {
    ok: false,
    reason: 'no_password',
    userId: passwordless.id,
  });
  t.same(await users.authenticate('nopw@example.com', ''), {
    ok: false,
    reason: 'no_password',
    userId: passwordless.id,
  });
});

t.test(
  'every sign-in runs exactly one argon2 verify, against the dummy hash when there is no user hash',
  async (t) => {
    const spy = spyHasher();
    const spied = new UserService(db, audit, { hasher: spy.hasher });
    const pw = password('structural');
    await spied.create({ email: 'structural@example.com', password: pw }, by);
    const disabled = await spied.create({ email: 'structural-off@example.com', password: pw }, by);
    await db.user.update({ where: { id: disabled.id }, data: { disabled: true } });
    await spied.create({ email: 'structural-nopw@example.com' }, by);
    const userHash = (await spied.findByEmail('structural@example.com'))!.passwordHash!;
    const dummy = await argon2idHasher.dummyHash();
    t.ok(dummy.startsWith(CURRENT_PARAMS), 'the dummy hash costs what a user hash costs');
    t.equal(await argon2idHasher.dummyHash(), dummy, 'the dummy hash is made once');

    const cases: [string, string, string, string][] = [
      ['unknown user', 'nobody-structural@example.com', pw, dummy],
      ['invalid email', "admin'--", pw, dummy],
      ['disabled user', 'structural-off@example.com', pw, dummy],
      ['user without a password', 'structural-nopw@example.com', pw, dummy],
      ['wrong password', 'structural@example.com', `${pw}!`, userHash],
      ['right password', 'structural@example.com', pw, userHash],
    ];
    for (const [label, email, attempt, expectedHash] of cases) {
      spy.reset();
      await spied.authenticate(email, attempt);
      t.same(spy.calls.verify, [expectedHash], `${label}: one verify against the expected hash`);
      t.equal(spy.calls.dummyHash, 1, `${label}: the dummy hash is awaited on this path too`);
      t.equal(spy.calls.hash, 0, `${label}: no hash is computed`);
    }

    spy.reset();
    const started = performance.now();
    const oversized = await spied.authenticate('structural@example.com', 'x'.repeat(100_000));
    t.match(oversized, { ok: false, reason: 'bad_password' });
    t.same(spy.calls.verify, [], 'an oversized password is refused before any argon2 work');
    t.ok(performance.now() - started < 1000, 'and fast');
    spy.reset();
    await spied.authenticate('nobody-structural@example.com', 'x'.repeat(100_000));
    t.same(spy.calls.verify, [], 'for an unknown user as well: it depends on the input alone');
  },
);

t.test('a hash with old parameters is replaced on the next successful sign-in', async (t) => {
  const pw = password('rehash');
  const user = await users.create({ email: 'rehash@example.com', password: pw }, by);
  const old = await argon2.hash(pw, { type: argon2.argon2id, memoryCost: 8192, timeCost: 1, parallelism: 1 });
  t.ok(needsRehash(old));
  await db.user.update({ where: { id: user.id }, data: { passwordHash: old } });

  t.match(await users.authenticate('rehash@example.com', `${pw}?`), { ok: false, reason: 'bad_password' });
  t.equal((await users.findById(user.id))?.passwordHash, old, 'a failed sign-in changes nothing');

  const result = await users.authenticate('rehash@example.com', pw);
  t.ok(result.ok);
  const stored = (await users.findById(user.id))?.passwordHash;
  t.not(stored, old);
  t.ok(stored?.startsWith(CURRENT_PARAMS), stored ?? 'no hash');
  t.equal(result.ok && result.user.passwordHash, stored, 'the returned user carries the new hash');
  t.notOk(needsRehash(stored!));
  t.match(await users.authenticate('rehash@example.com', pw), { ok: true }, 'the new hash verifies');
  t.equal((await users.findById(user.id))?.passwordHash, stored, 'and is not rehashed again');
});

t.test('malformed hashes never throw', async (t) => {
  t.equal(await argon2idHasher.verify('not a hash', 'whatever password'), false);
  t.equal(await argon2idHasher.verify('$argon2id$v=19$m=19456,t=2,p=1$$', 'whatever password'), false);
  t.equal(await argon2idHasher.verify('', 'whatever password'), false);
  t.equal(needsRehash('garbage'), true);
  t.equal(needsRehash('$2b$12$abcdefghijklmnopqrstuu'), true, 'bcrypt or anything else is upgraded');
  const user = await users.create({ email: 'broken@example.com', password: password('broken') }, by);
  await db.user.update({ where: { id: user.id }, data: { passwordHash: 'corrupt' } });
  t.match(await users.authenticate('broken@example.com', password('broken')), {
    ok: false,
    reason: 'bad_password',
  });
});

t.test('setPassword replaces the password and records which field changed', async (t) => {
  const first = password('first');
  const second = password('second');
  const user = await users.create({ email: 'change@example.com', password: first }, by);
  t.same(await users.setPassword('CHANGE@example.com', second, by), {
    id: user.id,
    email: 'change@example.com',
  });
  t.match(await users.authenticate('change@example.com', first), { ok: false, reason: 'bad_password' });
  t.match(await users.authenticate('change@example.com', second), { ok: true });
  const events = await auditEvents(`user:${user.id}`);
  t.match(
    events.map((event) => ({ type: event.type, actor: event.actor, ip: event.ip, details: event.details })),
    [
      { type: 'user.created', actor: 'cli', ip: '192.0.2.1' },
      { type: 'user.updated', actor: 'cli', ip: '192.0.2.1', details: { fields: ['password'] } },
    ],
  );
  t.match(await rejection(users.setPassword('ghost@example.com', second, by)), {
    code: 'not_found',
    statusCode: 404,
  });
});

t.test('create with roles, then add and remove roles, each audited once', async (t) => {
  await roles.create('auditor', 'reads the audit log', by);
  const user = await users.create(
    { email: 'roles@example.com', password: password('roles'), roles: ['auditor', 'admin', 'admin'] },
    by,
  );
  t.same(user.roles, ['admin', 'auditor']);
  t.match(await rejection(users.create({ email: 'roles2@example.com', roles: ['ghost'] }, by)), {
    statusCode: 400,
    message: /roles: no role named "ghost"/,
  });
  t.equal(await users.findByEmail('roles2@example.com'), undefined, 'nothing is created');

  t.same((await users.removeRole('roles@example.com', 'admin', by)).roles, ['auditor']);
  t.same((await users.removeRole('roles@example.com', 'admin', by)).roles, ['auditor'], 'idempotent');
  t.same((await users.addRole('roles@example.com', 'admin', by)).roles, ['admin', 'auditor']);
  t.same((await users.addRole('ROLES@example.com', 'admin', by)).roles, ['admin', 'auditor'], 'idempotent');
  t.same((await users.findById(user.id))?.roles, ['admin', 'auditor']);

  const events = (await auditEvents(`user:${user.id}`)).map((event) => [event.type, event.details]);
  t.same(events, [
    [
      'user.created',
      {
        email: 'roles@example.com',
        roles: ['admin', 'auditor'],
        email_verified: true,
        mfa_required: false,
        password_set: true,
      },
    ],
    ['role.assigned', { role: 'admin' }],
    ['role.assigned', { role: 'auditor' }],
    ['role.removed', { role: 'admin' }],
    ['role.assigned', { role: 'admin' }],
  ]);

  const refusals: [string, () => Promise<unknown>][] = [
    ['unknown role', () => users.addRole('roles@example.com', 'ghost', by)],
    ['malformed role', () => users.addRole('roles@example.com', "admin' OR 1=1--", by)],
    ['unknown user', () => users.addRole('ghost@example.com', 'admin', by)],
    ['remove unknown role', () => users.removeRole('roles@example.com', 'ghost', by)],
  ];
  for (const [label, attempt] of refusals) {
    t.match(await rejection(attempt()), { code: 'not_found', statusCode: 404 }, label);
  }
});

t.test('findById and findByEmail', async (t) => {
  const user = await users.create(
    { email: 'find@example.com', name: '  Find Me ', emailVerified: false, mfaRequired: true },
    by,
  );
  t.same(await users.findById(user.id), {
    id: user.id,
    email: 'find@example.com',
    name: 'Find Me',
    emailVerified: false,
    disabled: false,
    mfaRequired: true,
    roles: [],
    passwordHash: null,
    totpEnabled: false,
  });
  for (const id of ["' OR 1=1--", '', 'not-a-uuid', `${user.id} `, null, 7, { not: '' }]) {
    t.equal(await users.findById(id), undefined, `${JSON.stringify(id)} finds nothing and throws nothing`);
  }
  t.equal(await users.findById('00000000-0000-4000-8000-000000000000'), undefined);
  t.match(await rejection(users.create({ email: 'name@example.com', name: 'x'.repeat(201) }, by)), {
    statusCode: 400,
    message: /name must be at most 200/,
  });
  t.match(await rejection(users.create({ email: 'name@example.com', name: 'a\u0000b' }, by)), {
    statusCode: 400,
    message: /control characters/,
  });
});

t.test('roles: admin always exists, names are checked, deletion is guarded', async (t) => {
  await Promise.all([roles.ensureDefaultRoles(), new RoleService(db, audit).ensureDefaultRoles()]);
  t.equal(await db.role.count({ where: { name: 'admin' } }), 1, 'ensureDefaultRoles is idempotent');
  t.same(await roles.create('billing.read', undefined, by), { name: 'billing.read', description: null });
  t.match(await rejection(roles.create('billing.read', 'again', by)), { statusCode: 409, code: 'conflict' });
  for (const name of ['', 'Admin', '1role', 'has space', "x'--", 'a'.repeat(65), 'rôle', 42]) {
    t.match(await rejection(roles.create(name, undefined, by)), { statusCode: 400 }, JSON.stringify(name));
  }
  t.ok((await roles.list()).some((role) => role.name === 'admin'));

  t.match(await rejection(roles.delete('admin', { force: true }, by)), { statusCode: 409 });
  t.match(await rejection(roles.delete('ghost', {}, by)), { statusCode: 404 });
  const holder = await users.create({ email: 'holder@example.com', roles: ['billing.read'] }, by);
  t.match(await rejection(roles.delete('billing.read', {}, by)), {
    statusCode: 409,
    message: /held by 1 user/,
  });
  await roles.delete('billing.read', { force: true }, by);
  t.same((await users.findById(holder.id))?.roles, []);
  t.notOk((await roles.list()).some((role) => role.name === 'billing.read'));
  const last = (await auditEvents(`user:${holder.id}`)).at(-1);
  t.match(last, { type: 'role.removed', details: { role: 'billing.read', role_deleted: true } });
});

t.test('no audit event and no column holds a password or a hash', async (t) => {
  const events = await db.$queryRaw<
    { text: string }[]
  >`SELECT row_to_json(a)::text AS text FROM audit_events a`;
  t.ok(events.length > 10);
  const userRows = await db.$queryRaw<{ text: string }[]>`
    SELECT (row_to_json(u)::jsonb - 'password_hash')::text AS text FROM users u`;
  for (const pw of passwordsUsed) {
    if (pw.length < 12) continue;
    t.notOk(
      events.some((event) => event.text.includes(pw)),
      `audit log free of ${pw.slice(0, 20)}…`,
    );
    t.notOk(
      userRows.some((row) => row.text.includes(pw)),
      `users free of ${pw.slice(0, 20)}…`,
    );
  }
  t.notOk(
    events.some((event) => event.text.includes('$argon2')),
    'no hash in the audit log',
  );
});
