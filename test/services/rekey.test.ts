// Key rotation for secrets at rest: with a new first encryption key, `rekey`
// re-encrypts signing keys and TOTP secrets so the old key can be dropped.
import pino from 'pino';
import t from 'tap';
import { loadConfig } from '../../src/config.ts';
import { createServices } from '../../src/context.ts';
import { applyMigrations } from '../../src/db/migrator.ts';
import { createTestDatabase } from '../helpers/database.ts';

const OLD = Buffer.alloc(32, 1);
const NEW = Buffer.alloc(32, 2);

t.test('rekey moves every secret at rest to the first key', async (t) => {
  const databaseUrl = await createTestDatabase(t);
  await applyMigrations(databaseUrl, {});
  const config = loadConfig({ DATABASE_URL: databaseUrl });
  const open = (keys: Buffer[]) => {
    const services = createServices({
      config,
      log: pino({ level: 'silent' }),
      databaseUrl,
      encryptionKeys: keys,
      poolSize: 2,
    });
    t.teardown(() => services.close());
    return services;
  };

  const before = open([OLD]);
  await before.roles.ensureDefaultRoles();
  await before.keys.ensureActiveKey();
  await before.users.create(
    { email: 'eve@example.com', password: 'correct horse battery staple' },
    { actor: 'test' },
  );
  const { secret } = await before.mfa.enrollForOperator('eve@example.com');

  const both = open([NEW, OLD]);
  const counts = await both.db.$transaction(async (tx) => ({
    keys: await both.keys.rekey(tx),
    totp: await both.mfa.rekey(tx),
  }));
  t.same(counts, { keys: 1, totp: 1 }, 'one signing key and one TOTP secret re-encrypted');
  t.same(
    await both.db.$transaction(async (tx) => ({
      keys: await both.keys.rekey(tx),
      totp: await both.mfa.rekey(tx),
    })),
    { keys: 0, totp: 0 },
    'a second run has nothing left to do',
  );

  const after = open([NEW]);
  const keystore = await after.keys.loadKeystore();
  t.equal(keystore.keys.length, 1, 'the signing key decrypts with the new key alone');
  t.ok(secret.length > 0);
  const oldOnly = open([OLD]);
  await t.rejects(oldOnly.keys.loadKeystore(), 'and no longer with the old one');
});
