// Scheduled rotation (GATEHOUSE_KEY_ROTATION_DAYS): a key that has signed for
// the period is rotated once, keeping its algorithm, however many instances check.
import pino from 'pino';
import t from 'tap';
import { loadConfig } from '../../src/config.ts';
import { createServices } from '../../src/context.ts';
import { applyMigrations } from '../../src/db/migrator.ts';
import { createTestDatabase } from '../helpers/database.ts';

t.test('rotateIfDue rotates an old key exactly once', async (t) => {
  const databaseUrl = await createTestDatabase(t);
  await applyMigrations(databaseUrl, {});
  const services = createServices({
    config: loadConfig({ DATABASE_URL: databaseUrl }),
    log: pino({ level: 'silent' }),
    databaseUrl,
    encryptionKeys: [Buffer.alloc(32, 4)],
    poolSize: 4,
  });
  t.teardown(() => services.close());
  await services.keys.rotate('EdDSA', 'test');
  const [first] = await services.keys.list();

  t.equal(await services.keys.rotateIfDue(90), undefined, 'a fresh key is kept');
  await services.db.signingKey.update({
    where: { kid: first!.kid },
    data: { activatedAt: new Date(Date.now() - 91 * 86_400_000) },
  });
  const results = await Promise.all([services.keys.rotateIfDue(90), services.keys.rotateIfDue(90)]);
  const rotated = results.filter(Boolean);
  t.equal(rotated.length, 1, 'two instances checking together rotate once');
  t.equal(rotated[0]?.alg, 'EdDSA', 'the algorithm is kept');
  const keys = await services.keys.list();
  t.equal(keys.find((key) => key.kid === first!.kid)?.status, 'verify', 'the old key still verifies');
  t.equal(keys.filter((key) => key.status === 'active').length, 1);
  const [event] = await services.audit.list({ type: 'key.rotated', limit: 1 });
  t.equal(event?.details.reason, 'scheduled');
  t.equal(event?.actor, 'system');
});
