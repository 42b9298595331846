// Account lockout: five failures in the window lock the account with growing
// back-off, parallel guesses cannot overrun the limit, a lock is audited, and
// the right password is refused while locked.
import pino from 'pino';
import t from 'tap';
import { applyMigrations } from '../../src/db/migrator.ts';
import { createDatabase } from '../../src/db/prisma.ts';
import { AuditService } from '../../src/services/audit.ts';
import { AccountLockout } from '../../src/services/lockout.ts';
import { argon2idHasher, type PasswordHasher } from '../../src/services/passwords.ts';
import { UserService } from '../../src/services/users.ts';
import { createTestDatabase } from '../helpers/database.ts';

const PASSWORD = 'correct horse battery staple';

const url = await createTestDatabase(t);
await applyMigrations(url, {});
const db = createDatabase(url, 10);
t.teardown(() => db.$disconnect());
const audit = new AuditService(db, pino({ level: 'silent' }));
const lockout = new AccountLockout(db, audit);
let verifications = 0;
const countingHasher: PasswordHasher = {
  ...argon2idHasher,
  verify: async (hash, password) => {
    verifications++;
    return argon2idHasher.verify(hash, password);
  },
};
const users = new UserService(db, audit, { lockout, hasher: countingHasher });

/** The lock expires: moved into the past rather than waited for. */
const expireLock = (id: string) =>
  db.$executeRaw`UPDATE users SET locked_until = now() - interval '1 second' WHERE id = ${id}::uuid`;

t.test('five wrong passwords lock the account; then even the right one fails', async (t) => {
  const user = await users.create({ email: 'lock@example.com', password: PASSWORD }, { actor: 'test' });
  for (let attempt = 1; attempt <= 5; attempt++) {
    const result = await users.authenticate('lock@example.com', 'wrong password!!');
    t.match(result, { ok: false, reason: 'bad_password' }, `attempt ${attempt}`);
  }
  t.ok(await lockout.isLocked(user.id), 'locked after the fifth failure');
  t.match(
    await users.authenticate('lock@example.com', PASSWORD),
    { ok: false, reason: 'locked' },
    'right password refused while locked',
  );
  const locks = await audit.list({ type: 'account.locked', limit: 5 });
  t.equal(locks.length, 1, 'the lock is audited');
  t.equal(locks[0]?.target, `user:${user.id}`);
  t.equal(locks[0]?.details.seconds, 60, 'the first lock lasts a minute');

  await expireLock(user.id);
  t.match(
    await users.authenticate('lock@example.com', PASSWORD),
    { ok: true },
    'works again once the lock expires',
  );
});

t.test('locks grow: the second lockout in a row lasts longer', async (t) => {
  const user = await users.create({ email: 'grow@example.com', password: PASSWORD }, { actor: 'test' });
  for (let round = 0; round < 2; round++) {
    for (let attempt = 0; attempt < 5; attempt++)
      await users.authenticate('grow@example.com', 'wrong password!!');
    if (round === 0) await expireLock(user.id);
  }
  const [latest] = await audit.list({ type: 'account.locked', limit: 1 });
  t.equal(latest?.details.seconds, 300, 'five minutes the second time');
  await lockout.unlock(user.id);
  t.notOk(await lockout.isLocked(user.id), 'an admin unlock ends it at once');
  t.match(await users.authenticate('grow@example.com', PASSWORD), { ok: true });
});

t.test('fifty parallel wrong passwords run at most five password checks', async (t) => {
  const user = await users.create({ email: 'race@example.com', password: PASSWORD }, { actor: 'test' });
  verifications = 0;
  const results = await Promise.all(
    Array.from({ length: 50 }, () => users.authenticate('race@example.com', 'wrong password!!')),
  );
  const checkedAgainstTheUser = results.filter(
    (result) => !result.ok && result.reason === 'bad_password',
  ).length;
  t.ok(checkedAgainstTheUser <= 5, `at most five real checks (${checkedAgainstTheUser})`);
  t.ok(await lockout.isLocked(user.id), 'and the account is locked');
  t.equal(
    verifications,
    50,
    'every attempt still pays one argon2 verify (real or dummy), so timing says nothing',
  );
});

t.test('failures outside the window do not add up', async (t) => {
  const user = await users.create({ email: 'window@example.com', password: PASSWORD }, { actor: 'test' });
  for (let attempt = 0; attempt < 4; attempt++)
    await users.authenticate('window@example.com', 'wrong password!!');
  await db.$executeRaw`UPDATE users SET first_failed_at = now() - interval '16 minutes' WHERE id = ${user.id}::uuid`;
  await users.authenticate('window@example.com', 'wrong password!!');
  t.notOk(await lockout.isLocked(user.id), 'the count started again');
});
