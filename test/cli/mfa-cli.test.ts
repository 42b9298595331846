// `gatehouse user mfa enroll` as an operator runs it: a real process, SPEC's
// exact JSON keys, and a secret that really works for the second factor.
import { generateSync } from 'otplib';
import pino from 'pino';
import t from 'tap';
import { applyMigrations } from '../../src/db/migrator.ts';
import { createDatabase } from '../../src/db/prisma.ts';
import { KeyRing } from '../../src/lib/encryption.ts';
import { AuditService } from '../../src/services/audit.ts';
import { MfaService } from '../../src/services/mfa.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestDatabase } from '../helpers/database.ts';

const databaseUrl = await createTestDatabase(t);
await applyMigrations(databaseUrl, {});
const db = createDatabase(databaseUrl, 2);
t.teardown(() => db.$disconnect());
const encryptionKey = Buffer.alloc(32, 11);
const mfa = new MfaService(db, new KeyRing([encryptionKey]), new AuditService(db, pino({ level: 'silent' })));
const env = {
  DATABASE_URL: databaseUrl,
  GATEHOUSE_ENCRYPTION_KEY: encryptionKey.toString('base64'),
  GATEHOUSE_COOKIE_KEYS: 'cli-test-cookie-key-0123456789abcdefghij',
};

const created = await runCli(
  ['user', 'create', '--email', 'dana@example.com', '--password-stdin', '--json'],
  env,
  'a long enough passphrase\n',
);
if (created.code !== 0) throw new Error(`user create failed: ${created.stderr}`);
const userId = JSON.parse(created.stdout).id as string;

t.test(
  'user mfa enroll --json prints {secret, otpauth_url, recovery_codes} and the secret works',
  async (t) => {
    const result = await runCli(['user', 'mfa', 'enroll', '--email', 'Dana@Example.com', '--json'], env);
    t.equal(result.code, 0, result.stderr);
    const document = JSON.parse(result.stdout);
    t.same(Object.keys(document).sort(), ['otpauth_url', 'recovery_codes', 'secret']);
    t.match(document.secret, /^[A-Z2-7]{32}$/);
    const url = new URL(document.otpauth_url);
    t.equal(url.protocol, 'otpauth:');
    t.equal(url.host, 'totp');
    t.equal(url.searchParams.get('secret'), document.secret);
    t.equal(url.searchParams.get('issuer'), 'Gatehouse');
    t.equal(decodeURIComponent(url.pathname), '/Gatehouse:dana@example.com');
    t.equal(document.recovery_codes.length, 10);
    for (const code of document.recovery_codes)
      t.match(code, /^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);

    t.equal(await mfa.hasFactor(userId), true);
    const code = generateSync({ secret: document.secret });
    t.same(await mfa.verifySecondFactor(userId, code), { ok: true, method: 'otp' }, 'a code from the secret');
    t.same(await mfa.verifySecondFactor(userId, code), { ok: false, reason: 'replayed' }, 'once');
    t.same(await mfa.verifySecondFactor(userId, document.recovery_codes[0]), {
      ok: true,
      method: 'recovery',
    });

    const row = await db.user.findUniqueOrThrow({ where: { id: userId } });
    t.not(row.totpSecret, document.secret, 'stored encrypted');
    t.notOk(row.totpSecret?.includes(document.secret));
    const audit = await db.auditEvent.findMany({ where: { type: 'user.updated', target: `user:${userId}` } });
    t.match(audit, [{ actor: 'cli', details: { mfa: 'enrolled', replaced: false } }]);
    t.notOk(
      JSON.stringify(audit.map((event) => event.details)).includes(document.secret),
      'the audit log holds no secret',
    );
  },
);

t.test('enrolling again replaces the secret and the recovery codes', async (t) => {
  const first = JSON.parse(
    (await runCli(['user', 'mfa', 'enroll', '--email', 'dana@example.com', '--json'], env)).stdout,
  );
  const second = await runCli(['user', 'mfa', 'enroll', '--email', 'dana@example.com', '--json'], env);
  t.equal(second.code, 0, second.stderr);
  const document = JSON.parse(second.stdout);
  t.not(document.secret, first.secret);
  t.same(await mfa.verifySecondFactor(userId, first.recovery_codes[1]), { ok: false, reason: 'wrong' });
  t.same(await mfa.verifySecondFactor(userId, document.recovery_codes[1]), { ok: true, method: 'recovery' });
});

t.test('the human output lists the secret and the codes', async (t) => {
  const result = await runCli(['user', 'mfa', 'enroll', '--email', 'dana@example.com'], env);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /^TOTP enrolled for dana@example\.com/);
  t.match(result.stdout, /secret: [A-Z2-7]{32}\n/);
  t.match(result.stdout, /otpauth URL: otpauth:\/\/totp\//);
  t.equal(result.stdout.match(/^ {2}[0-9A-Z]{5}-[0-9A-Z]{5}$/gm)?.length, 10);
});

t.test('refusals: unknown user (1), usage errors (2)', async (t) => {
  const unknown = await runCli(['user', 'mfa', 'enroll', '--email', 'nobody@example.com', '--json'], env);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no user with this email/);
  t.equal(unknown.stdout, '');

  for (const args of [
    ['user', 'mfa', 'enroll'],
    ['user', 'mfa'],
    ['user', 'mfa', 'disable', '--email', 'dana@example.com'],
    ['user', 'mfa', 'enroll', '--email', 'dana@example.com', '--secret', 'X'],
  ]) {
    const result = await runCli(args, env);
    t.equal(result.code, 2, args.join(' '));
    t.match(result.stderr, /usage: gatehouse/);
  }
});
