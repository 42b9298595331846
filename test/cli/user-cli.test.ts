// `gatehouse user …` and `gatehouse role …` as an operator runs them: a real
// process, the password on stdin (never echoed), --json on stdout, exit codes
// 1 (refused) and 2 (usage).
import pino from 'pino';
import t, { type Test } from 'tap';
import { applyMigrations } from '../../src/db/migrator.ts';
import { createDatabase } from '../../src/db/prisma.ts';
import { AuditService } from '../../src/services/audit.ts';
import { UserService } from '../../src/services/users.ts';
import { type CliResult, runCli } from '../helpers/cli.ts';
import { createTestDatabase } from '../helpers/database.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const databaseUrl = await createTestDatabase(t);
await applyMigrations(databaseUrl, {});
const db = createDatabase(databaseUrl, 2);
t.teardown(() => db.$disconnect());
const users = new UserService(db, new AuditService(db, pino({ level: 'silent' })));
const env = {
  DATABASE_URL: databaseUrl,
  GATEHOUSE_ENCRYPTION_KEY: Buffer.alloc(32, 9).toString('base64'),
  GATEHOUSE_COOKIE_KEYS: 'cli-test-cookie-key-0123456789abcdefghij',
};

/** Asserts that a run printed neither the password nor anything that looks like a hash. */
function assertNothingLeaked(t: Test, result: CliResult, password: string): void {
  t.notOk(
    result.stdout.includes(password) || result.stderr.includes(password),
    'the password is never echoed',
  );
  t.notOk(/\$argon2/.test(result.stdout + result.stderr), 'nor its hash');
}

t.test('user create reads the password from stdin and prints {id, email, roles}', async (t) => {
  const password = 'a long enough passphrase';
  const result = await runCli(
    [
      'user',
      'create',
      '--email',
      'ＣＡＲＯＬ@Example.com',
      '--name',
      'Carol',
      '--role',
      'admin',
      '--password-stdin',
      '--json',
    ],
    env,
    `${password}\r\nthe second line is not part of it\n`,
  );
  t.equal(result.code, 0, result.stderr);
  const document = JSON.parse(result.stdout);
  t.same(Object.keys(document).sort(), ['email', 'id', 'roles']);
  t.match(document.id, UUID);
  t.equal(document.email, 'carol@example.com', 'the email is normalised');
  t.same(document.roles, ['admin']);
  assertNothingLeaked(t, result, password);

  t.match(await users.authenticate('carol@example.com', password), { ok: true, user: { id: document.id } });
  t.match(
    await users.authenticate('carol@example.com', `${password}\r`),
    { ok: false },
    'the password is the first line, without its \\r\\n',
  );
  t.match(await users.findById(document.id), { name: 'Carol', emailVerified: true });

  const again = await runCli(
    ['user', 'create', '--email', 'carol@example.com', '--password-stdin', '--json'],
    env,
    `${password}\n`,
  );
  t.equal(again.code, 1);
  t.match(again.stderr, /a user with this email already exists/);
});

t.test('--email-unverified and a password without a final newline', async (t) => {
  const password = 'no newline at the end';
  const result = await runCli(
    ['user', 'create', '--email', 'dave@example.com', '--email-unverified', '--password-stdin'],
    env,
    password,
  );
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /email: dave@example\.com/);
  assertNothingLeaked(t, result, password);
  t.match(await users.findByEmail('dave@example.com'), { emailVerified: false, roles: [] });
  t.match(await users.authenticate('dave@example.com', password), { ok: true });
});

t.test('a weak password is refused with the policy message, exit 1', async (t) => {
  for (const [password, message] of [
    ['short\n', /password must be at least 12 characters/],
    ['erin@example.com\n', /password must not be the email address/],
    ['\n', /no password on stdin/],
    ['', /no password on stdin/],
  ] as const) {
    const result = await runCli(
      ['user', 'create', '--email', 'erin@example.com', '--password-stdin', '--json'],
      env,
      password,
    );
    t.equal(result.code, 1, JSON.stringify(password));
    t.equal(result.stdout, '');
    t.match(result.stderr, message);
    t.notMatch(result.stderr, /\n\s+at /, 'no stack trace');
  }
  t.equal(await users.findByEmail('erin@example.com'), undefined, 'nothing was created');
});

t.test('user set-password', async (t) => {
  const first = 'the first passphrase';
  const second = 'the second passphrase';
  const created = await runCli(
    ['user', 'create', '--email', 'frank@example.com', '--password-stdin', '--json'],
    env,
    `${first}\n`,
  );
  t.equal(created.code, 0, created.stderr);
  const { id } = JSON.parse(created.stdout);
  const changed = await runCli(
    ['user', 'set-password', '--email', 'Frank@Example.com', '--password-stdin', '--json'],
    env,
    `${second}\n`,
  );
  t.equal(changed.code, 0, changed.stderr);
  t.same(JSON.parse(changed.stdout), { id, email: 'frank@example.com' });
  assertNothingLeaked(t, changed, second);
  t.match(await users.authenticate('frank@example.com', first), { ok: false, reason: 'bad_password' });
  t.match(await users.authenticate('frank@example.com', second), { ok: true });

  const unknown = await runCli(
    ['user', 'set-password', '--email', 'nobody@example.com', '--password-stdin'],
    env,
    `${second}\n`,
  );
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no user with this email/);
  const weak = await runCli(
    ['user', 'set-password', '--email', 'frank@example.com', '--password-stdin'],
    env,
    'tiny\n',
  );
  t.equal(weak.code, 1);
  t.match(weak.stderr, /at least 12 characters/);
});

t.test('role create, then user role add and remove', async (t) => {
  const created = await runCli(
    ['role', 'create', 'auditor', '--description', 'reads the audit log', '--json'],
    env,
  );
  t.equal(created.code, 0, created.stderr);
  t.same(JSON.parse(created.stdout), { name: 'auditor', description: 'reads the audit log' });
  const plain = await runCli(['role', 'create', 'support', '--json'], env);
  t.same(JSON.parse(plain.stdout), { name: 'support', description: null });

  const duplicate = await runCli(['role', 'create', 'auditor'], env);
  t.equal(duplicate.code, 1);
  t.match(duplicate.stderr, /role auditor already exists/);
  const invalid = await runCli(['role', 'create', 'Not A Role'], env);
  t.equal(invalid.code, 1);
  t.match(invalid.stderr, /role name must be/);

  const user = await runCli(
    ['user', 'create', '--email', 'grace@example.com', '--password-stdin', '--json'],
    env,
    'graceful passphrase\n',
  );
  const { id } = JSON.parse(user.stdout);
  const added = await runCli(
    ['user', 'role', 'add', '--email', 'grace@example.com', '--role', 'auditor', '--json'],
    env,
  );
  t.equal(added.code, 0, added.stderr);
  t.same(JSON.parse(added.stdout), { id, email: 'grace@example.com', roles: ['auditor'] });
  const addedAgain = await runCli(
    ['user', 'role', 'add', '--email', 'grace@example.com', '--role', 'admin', '--json'],
    env,
  );
  t.same(JSON.parse(addedAgain.stdout).roles, ['admin', 'auditor']);
  const removed = await runCli(
    ['user', 'role', 'remove', '--email', 'grace@example.com', '--role', 'auditor', '--json'],
    env,
  );
  t.equal(removed.code, 0, removed.stderr);
  t.same(JSON.parse(removed.stdout), { id, email: 'grace@example.com', roles: ['admin'] });
  const events = await db.auditEvent.findMany({ where: { target: `user:${id}` }, orderBy: { id: 'asc' } });
  t.same(
    events.map((event) => [event.type, event.actor]),
    [
      ['user.created', 'cli'],
      ['role.assigned', 'cli'],
      ['role.assigned', 'cli'],
      ['role.removed', 'cli'],
    ],
  );
});

t.test('an unknown role or user is refused with exit 1', async (t) => {
  const unknownRole = await runCli(
    ['user', 'role', 'add', '--email', 'grace@example.com', '--role', 'ghost', '--json'],
    env,
  );
  t.equal(unknownRole.code, 1);
  t.equal(unknownRole.stdout, '');
  t.match(unknownRole.stderr, /no role named "ghost"/);
  const unknownUser = await runCli(
    ['user', 'role', 'add', '--email', 'ghost@example.com', '--role', 'admin'],
    env,
  );
  t.equal(unknownUser.code, 1);
  t.match(unknownUser.stderr, /no user with this email/);
  const createWithGhost = await runCli(
    ['user', 'create', '--email', 'heidi@example.com', '--role', 'ghost', '--password-stdin'],
    env,
    'heidi passphrase\n',
  );
  t.equal(createWithGhost.code, 1);
  t.match(createWithGhost.stderr, /roles: no role named "ghost"/);
  const badEmail = await runCli(
    ['user', 'create', '--email', '\u202Eheidi@example.com', '--password-stdin'],
    env,
    'heidi passphrase\n',
  );
  t.equal(badEmail.code, 1);
  t.match(badEmail.stderr, /email must not contain bidirectional control characters/);
});

t.test('usage errors exit 2', async (t) => {
  for (const args of [
    ['user', 'create', '--email', 'ivan@example.com'],
    ['user', 'set-password', '--email', 'ivan@example.com'],
    ['user', 'create', '--email', 'ivan@example.com', '--password', 'on the command line'],
    ['user', 'role', 'add', '--email', 'ivan@example.com'],
    ['user', 'role', 'promote', '--email', 'ivan@example.com', '--role', 'admin'],
    ['user'],
    ['role', 'create'],
  ]) {
    const result = await runCli(args, env);
    t.equal(result.code, 2, `${args.join(' ')} exits 2`);
    t.match(result.stderr, /usage: gatehouse/);
    t.equal(result.stdout, '');
  }
  t.equal(await users.findByEmail('ivan@example.com'), undefined);
});
