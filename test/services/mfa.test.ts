// The second factor against a real, migrated database: enrolment that needs a
// valid code, secrets encrypted and recovery codes hashed at rest, every code
// accepted once (also when submitted in parallel), reset, operator enrolment,
// and an audit trail that never holds a code.
import { generateSync } from 'otplib';
import pino from 'pino';
import t from 'tap';
import { applyMigrations } from '../../src/db/migrator.ts';
import { createDatabase } from '../../src/db/prisma.ts';
import { KeyRing } from '../../src/lib/encryption.ts';
import { CodedError } from '../../src/lib/errors.ts';
import { AuditService } from '../../src/services/audit.ts';
import { MfaService } from '../../src/services/mfa.ts';
import { UserService } from '../../src/services/users.ts';
import { createTestDatabase } from '../helpers/database.ts';

const url = await createTestDatabase(t);
await applyMigrations(url, {});
const db = createDatabase(url);
t.teardown(() => db.$disconnect());

const keyRing = new KeyRing([Buffer.alloc(32, 7)]);
const audit = new AuditService(db, pino({ level: 'silent' }));
const users = new UserService(db, audit);
/** Mid-step, so codes from one step either side are unambiguous; tests move it explicitly. */
let clock = Math.floor(Date.now() / 30_000) * 30 + 15;
const mfa = new MfaService(db, keyRing, audit, { now: () => clock });
const by = { actor: 'cli', ip: '192.0.2.7' };

/** Every secret and recovery code handed out, and every TOTP code submitted: none may be at rest. */
const secretsIssued = new Set<string>();
const recoveryCodesIssued = new Set<string>();
const totpCodesSubmitted = new Set<string>();

function codeAt(secret: string, epoch: number): string {
  const code = generateSync({ secret, epoch });
  totpCodesSubmitted.add(code);
  return code;
}

let userCount = 0;
async function newUser(): Promise<string> {
  userCount++;
  const user = await users.create({ email: `mfa-user-${userCount}@example.com` }, by);
  return user.id;
}

/** A user enrolled through the page flow at the current clock. */
async function enrolledUser(): Promise<{ id: string; secret: string; recoveryCodes: string[] }> {
  const id = await newUser();
  const { secret } = await mfa.beginEnrolment(id);
  secretsIssued.add(secret);
  const { recoveryCodes } = await mfa.completeEnrolment(id, secret, codeAt(secret, clock));
  for (const code of recoveryCodes) recoveryCodesIssued.add(code);
  return { id, secret, recoveryCodes };
}

/** A 6-digit string that is no code of this secret within the window around `epoch`. */
function wrongCode(secret: string, epoch: number): string {
  const window = new Set([-1, 0, 1].map((offset) => generateSync({ secret, epoch: epoch + offset * 30 })));
  for (let candidate = 0; ; candidate++) {
    const code = String(candidate).padStart(6, '0');
    if (!window.has(code)) return code;
  }
}

async function auditFor(userId: string) {
  return db.auditEvent.findMany({ where: { target: `user:${userId}` }, orderBy: { id: 'asc' } });
}

t.test('enrolment stores nothing until a valid code proves the app has the secret', async (t) => {
  const id = await newUser();
  const pending = await mfa.beginEnrolment(id);
  secretsIssued.add(pending.secret);
  t.match(pending.secret, /^[A-Z2-7]{32}$/);
  t.match(pending.otpauthUrl, /^otpauth:\/\/totp\/Gatehouse:mfa-user-\d+%40example\.com\?secret=/);
  t.match(pending.qrSvg, /^<svg /);
  t.notOk(pending.pendingSecret.includes(pending.secret), 'the pending secret is sealed');
  t.equal(await mfa.hasFactor(id), false);
  t.match(await db.user.findUnique({ where: { id } }), { totpSecret: null, totpEnabledAt: null });

  await t.rejects(
    mfa.completeEnrolment(id, pending.secret, wrongCode(pending.secret, clock)),
    new CodedError('invalid_code', 'the code is not valid: enter the current code from your app', 400),
    'a wrong code',
  );
  for (const malformed of ['', 'abcdef', '12345', '１２３４５６', 'ABCDE-FGHJK', undefined]) {
    await t.rejects(
      mfa.completeEnrolment(id, pending.secret, malformed),
      { code: 'invalid_code', statusCode: 400 },
      `malformed ${JSON.stringify(malformed)}`,
    );
  }
  await t.rejects(
    mfa.completeEnrolment(id, 'JBSWY3DPEHPK3PXP', codeAt(pending.secret, clock)),
    { code: 'invalid_request', statusCode: 400 },
    'a secret that is not one of ours',
  );
  t.equal(await mfa.hasFactor(id), false, 'still not enrolled');
  t.equal(await db.recoveryCode.count({ where: { userId: id } }), 0);

  const code = codeAt(pending.secret, clock);
  const { recoveryCodes } = await mfa.completeEnrolment(id, pending.secret, code);
  for (const recovery of recoveryCodes) recoveryCodesIssued.add(recovery);
  t.equal(recoveryCodes.length, 10);
  t.equal(new Set(recoveryCodes).size, 10, 'all different');
  for (const recovery of recoveryCodes) t.match(recovery, /^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
  t.equal(await mfa.hasFactor(id), true);

  const row = await db.user.findUniqueOrThrow({ where: { id } });
  t.not(row.totpSecret, pending.secret, 'the secret is not stored as is');
  t.match(row.totpSecret, /^g1\./, 'but as key-ring ciphertext');
  t.equal(keyRing.decrypt(row.totpSecret!, `totp:${id}`), pending.secret, 'bound to this user');
  t.throws(() => keyRing.decrypt(row.totpSecret!, 'totp:someone-else'), 'and to nobody else');
  t.equal(row.totpLastStep, BigInt(Math.floor(clock / 30)), 'the enrolment code step is used up');
  t.ok(row.totpEnabledAt instanceof Date);
  const digests = await db.recoveryCode.findMany({ where: { userId: id } });
  t.equal(digests.length, 10);
  for (const digest of digests) {
    t.match(digest.digest, /^[0-9a-f]{64}$/);
    t.equal(digest.usedAt, null);
  }

  t.same(await mfa.verifySecondFactor(id, code), { ok: false, reason: 'replayed' }, 'the enrolment code');
  await t.rejects(
    mfa.completeEnrolment(id, pending.secret, code),
    { code: 'invalid_code' },
    'the same enrolment submitted twice',
  );
  t.same(await db.recoveryCode.count({ where: { userId: id } }), 10);

  const events = await auditFor(id);
  t.match(
    events.filter((event) => event.type === 'mfa.success'),
    [{ actor: `user:${id}`, details: { enrolled: true, method: 'otp' } }],
  );
  t.ok(
    events.filter((event) => event.type === 'mfa.failure').length >= 8,
    'each refused enrolment attempt is audited',
  );
  t.match(
    events.find((event) => event.type === 'mfa.failure'),
    { details: { enrolment: true, reason: 'wrong' } },
  );
});

t.test('the sealed pending secret opens only for its user, unaltered and in time', async (t) => {
  const id = await newUser();
  const other = await newUser();
  const pending = await mfa.beginEnrolment(id);
  secretsIssued.add(pending.secret);
  t.equal(mfa.openPendingSecret(id, pending.pendingSecret), pending.secret);
  t.equal(mfa.openPendingSecret(other, pending.pendingSecret), undefined, 'another user');
  const tampered = `${pending.pendingSecret.slice(0, -2)}${pending.pendingSecret.endsWith('A') ? 'BB' : 'AA'}`;
  t.equal(mfa.openPendingSecret(id, tampered), undefined, 'tampered');
  for (const junk of ['', 'g1.x.y.z', null, 42, 'x'.repeat(5000)]) {
    t.equal(mfa.openPendingSecret(id, junk), undefined, `junk ${String(junk).slice(0, 10)}`);
  }
  const saved = clock;
  clock += 16 * 60;
  t.teardown(() => {
    clock = saved;
  });
  t.equal(mfa.openPendingSecret(id, pending.pendingSecret), undefined, 'expired after 15 minutes');
});

t.test('a TOTP code is accepted once; wrong, malformed and missing factors are told apart', async (t) => {
  const { id, secret } = await enrolledUser();
  const saved = clock;
  t.teardown(() => {
    clock = saved;
  });
  clock += 30;
  const code = codeAt(secret, clock);
  t.same(await mfa.verifySecondFactor(id, code, by), { ok: true, method: 'otp' });
  t.same(await mfa.verifySecondFactor(id, code, by), { ok: false, reason: 'replayed' }, 'the same code');
  t.same(
    await mfa.verifySecondFactor(id, codeAt(secret, clock - 30), by),
    { ok: false, reason: 'replayed' },
    'an older step, still in the window',
  );
  t.same(await mfa.verifySecondFactor(id, wrongCode(secret, clock), by), { ok: false, reason: 'wrong' });
  t.same(await mfa.verifySecondFactor(id, codeAt(secret, clock + 60), by), {
    ok: false,
    reason: 'wrong',
  });
  for (const malformed of ['12345', '1234567', 'abcdef', '１２３４５６', '', '1'.repeat(100), null, 5]) {
    t.same(await mfa.verifySecondFactor(id, malformed, by), { ok: false, reason: 'malformed' });
  }

  const spaced = codeAt(secret, clock + 30);
  t.same(
    await mfa.verifySecondFactor(id, `${spaced.slice(0, 3)} ${spaced.slice(3)}`, by),
    { ok: true, method: 'otp' },
    'the next step, typed with a space',
  );
  t.equal(
    (await db.user.findUniqueOrThrow({ where: { id } })).totpLastStep,
    BigInt(Math.floor(clock / 30) + 1),
  );

  const plain = await newUser();
  t.same(await mfa.verifySecondFactor(plain, code), { ok: false, reason: 'not_enrolled' });
  t.same(await mfa.verifySecondFactor('not-a-uuid', code), { ok: false, reason: 'not_enrolled' });
  t.same(await mfa.verifySecondFactor('00000000-0000-4000-8000-000000000000', code), {
    ok: false,
    reason: 'not_enrolled',
  });

  const events = await auditFor(id);
  t.match(
    events.filter(
      (event) => event.type === 'mfa.success' && (event.details as { enrolled?: boolean }).enrolled !== true,
    ),
    [
      { actor: 'cli', ip: '192.0.2.7', details: { method: 'otp' } },
      { actor: 'cli', details: { method: 'otp' } },
    ],
  );
  const reasons = events.filter((event) => event.type === 'mfa.failure').map((event) => event.details);
  t.match(reasons, [
    { reason: 'replayed', method: 'otp' },
    { reason: 'replayed', method: 'otp' },
    { reason: 'wrong', method: 'otp' },
    { reason: 'wrong', method: 'otp' },
    ...Array.from({ length: 8 }, () => ({ reason: 'malformed' })),
  ]);
});

t.test('one valid TOTP code submitted 10 times in parallel passes exactly once', async (t) => {
  const { id, secret } = await enrolledUser();
  const saved = clock;
  t.teardown(() => {
    clock = saved;
  });
  clock += 30;
  const code = codeAt(secret, clock);
  const results = await Promise.all(Array.from({ length: 10 }, () => mfa.verifySecondFactor(id, code)));
  t.equal(results.filter((result) => result.ok).length, 1, 'one success');
  t.equal(
    results.filter((result) => !result.ok && result.reason === 'replayed').length,
    9,
    'nine refused as replays',
  );
  const successes = (await auditFor(id)).filter(
    (event) => event.type === 'mfa.success' && (event.details as { method?: string }).method === 'otp',
  );
  t.equal(successes.length, 2, 'the enrolment and the one accepted code');
});

t.test('a recovery code works once, in any case, with or without its dash', async (t) => {
  const { id, recoveryCodes } = await enrolledUser();
  const [first, second, third] = recoveryCodes as [string, string, string];
  t.same(await mfa.verifySecondFactor(id, first.toLowerCase()), { ok: true, method: 'recovery' });
  t.same(await mfa.verifySecondFactor(id, first), { ok: false, reason: 'replayed' }, 'used up');
  t.same(
    await mfa.verifySecondFactor(id, first.replace('-', '')),
    { ok: false, reason: 'replayed' },
    'in any spelling',
  );
  t.same(await mfa.verifySecondFactor(id, `  ${second.replace('-', ' ')} `), {
    ok: true,
    method: 'recovery',
  });
  t.same(await mfa.verifySecondFactor(id, 'ZZZZZ-ZZZZZ'), { ok: false, reason: 'wrong' });

  const other = await enrolledUser();
  t.same(
    await mfa.verifySecondFactor(other.id, third),
    { ok: false, reason: 'wrong' },
    "another user's code is no code of yours",
  );
  t.same(await mfa.verifySecondFactor(id, third), { ok: true, method: 'recovery' }, 'and still yours');

  const rows = await db.recoveryCode.findMany({ where: { userId: id } });
  t.equal(rows.filter((row) => row.usedAt !== null).length, 3);
  const last = (await auditFor(id)).filter((event) => event.type === 'mfa.success').at(-1);
  t.match(last, { details: { method: 'recovery', recovery_codes_left: 7 } });
});

t.test('one recovery code submitted 10 times in parallel passes exactly once', async (t) => {
  const { id, recoveryCodes } = await enrolledUser();
  const code = recoveryCodes[4]!;
  const results = await Promise.all(Array.from({ length: 10 }, () => mfa.verifySecondFactor(id, code)));
  t.equal(results.filter((result) => result.ok).length, 1, 'one success');
  t.equal(
    results.filter((result) => !result.ok && result.reason === 'replayed').length,
    9,
    'nine refused as used',
  );
  t.equal(await db.recoveryCode.count({ where: { userId: id, usedAt: { not: null } } }), 1);
});

t.test('reset removes the secret, its last step, the enrolment and every recovery code', async (t) => {
  const { id, secret, recoveryCodes } = await enrolledUser();
  t.same(await mfa.resetFactors(id, { actor: 'user:admin-1', ip: '192.0.2.9' }), { removed: true });
  t.equal(await mfa.hasFactor(id), false);
  t.match(await db.user.findUniqueOrThrow({ where: { id } }), {
    totpSecret: null,
    totpLastStep: null,
    totpEnabledAt: null,
  });
  t.equal(await db.recoveryCode.count({ where: { userId: id } }), 0);
  t.same(await mfa.verifySecondFactor(id, codeAt(secret, clock + 30)), { ok: false, reason: 'not_enrolled' });
  t.same(await mfa.verifySecondFactor(id, recoveryCodes[0]), { ok: false, reason: 'not_enrolled' });

  t.same(await mfa.resetFactors(id, by), { removed: false }, 'idempotent');
  const resets = (await auditFor(id)).filter((event) => event.type === 'user.updated');
  t.match(resets, [{ actor: 'user:admin-1', ip: '192.0.2.9', details: { mfa: 'reset' } }], 'audited once');

  await t.rejects(mfa.resetFactors('00000000-0000-4000-8000-000000000000', by), {
    code: 'not_found',
    statusCode: 404,
  });
  await t.rejects(mfa.resetFactors('nope', by), { code: 'not_found', statusCode: 404 });

  const again = await mfa.beginEnrolment(id);
  secretsIssued.add(again.secret);
  const { recoveryCodes: fresh } = await mfa.completeEnrolment(id, again.secret, codeAt(again.secret, clock));
  for (const code of fresh) recoveryCodesIssued.add(code);
  t.equal(await mfa.hasFactor(id), true, 'the user can enrol again');
});

t.test('operator enrolment: a working secret and recovery codes, no code needed', async (t) => {
  const { id } = await enrolledUser();
  const user = await db.user.findUniqueOrThrow({ where: { id } });
  const enrolment = await mfa.enrollForOperator(user.email.toUpperCase());
  secretsIssued.add(enrolment.secret);
  for (const code of enrolment.recoveryCodes) recoveryCodesIssued.add(code);
  t.equal(enrolment.userId, id);
  t.equal(enrolment.email, user.email);
  t.match(enrolment.otpauthUrl, new RegExp(`secret=${enrolment.secret}`));
  t.equal(enrolment.recoveryCodes.length, 10);
  t.equal(await db.recoveryCode.count({ where: { userId: id } }), 10, 'the old codes are replaced');
  t.same(
    await mfa.verifySecondFactor(id, codeAt(enrolment.secret, clock)),
    { ok: true, method: 'otp' },
    'the current code works (no step used yet)',
  );
  t.same(await mfa.verifySecondFactor(id, enrolment.recoveryCodes[0]), { ok: true, method: 'recovery' });
  t.match(
    (await auditFor(id)).filter((event) => event.type === 'user.updated'),
    [{ actor: 'cli', details: { mfa: 'enrolled', replaced: true } }],
  );
  await t.rejects(mfa.enrollForOperator('nobody@example.com'), { code: 'not_found', statusCode: 404 });
  await t.rejects(mfa.enrollForOperator('not an email'), { code: 'invalid_request', statusCode: 400 });
});

t.test('at rest: no secret and no code in any text column of any table', async (t) => {
  t.ok(secretsIssued.size >= 8 && recoveryCodesIssued.size >= 70, 'the earlier tests issued them');
  const columns = await db.$queryRaw<{ table_name: string; column_name: string }[]>`
    SELECT table_name, column_name FROM information_schema.columns
    WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'json', 'jsonb')`;
  t.ok(columns.some((column) => column.table_name === 'users' && column.column_name === 'totp_secret'));
  t.ok(columns.some((column) => column.table_name === 'recovery_codes' && column.column_name === 'digest'));
  const needles = [
    ...secretsIssued,
    ...[...recoveryCodesIssued].flatMap((code) => [code, code.replace('-', ''), code.toLowerCase()]),
  ];
  let scanned = 0;
  for (const { table_name: table, column_name: column } of columns) {
    const rows = await db.$queryRawUnsafe<{ value: string | null }[]>(
      `SELECT "${column}"::text AS value FROM "${table}"`,
    );
    for (const { value } of rows) {
      if (value === null) continue;
      scanned++;
      const found = needles.find((needle) => value.includes(needle));
      if (found) t.fail(`${table}.${column} holds a secret or recovery code`);
    }
  }
  t.ok(scanned > 100, `scanned ${scanned} values`);

  const details = await db.$queryRaw<
    { details: string }[]
  >`SELECT details::text AS details FROM audit_events`;
  for (const { details: text } of details) {
    for (const code of totpCodesSubmitted) {
      if (text.includes(code)) t.fail(`an audit event holds a TOTP code: ${text}`);
    }
  }
  t.ok(details.length > 20 && totpCodesSubmitted.size > 5, 'audit details checked for every submitted code');
});
