// The `gatehouse` command as an operator runs it: a real process, --json on
// stdout, errors on stderr with exit codes 1 (failure) and 2 (usage).
import t from 'tap';
import { applyMigrations } from '../../src/db/migrator.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestDatabase } from '../helpers/database.ts';

t.test('gatehouse CLI', async (t) => {
  const databaseUrl = await createTestDatabase(t);
  await applyMigrations(databaseUrl, {});
  const env = {
    DATABASE_URL: databaseUrl,
    GATEHOUSE_ENCRYPTION_KEY: Buffer.alloc(32, 9).toString('base64'),
    GATEHOUSE_COOKIE_KEYS: 'cli-test-cookie-key-0123456789abcdefghij',
  };

  await t.test('client create --json prints exactly one JSON document with the id and secret', async (t) => {
    const result = await runCli(
      [
        'client',
        'create',
        '--name',
        'svc',
        '--grant',
        'client_credentials',
        '--scope',
        'api:read',
        '--resource',
        'https://api.example.com',
        '--json',
      ],
      env,
    );
    t.equal(result.code, 0, result.stderr);
    const document = JSON.parse(result.stdout);
    t.same(Object.keys(document).sort(), ['client_id', 'client_secret']);
    t.ok(Buffer.from(document.client_secret, 'base64url').length >= 32, 'secret has at least 256 bits');
  });

  await t.test('a public client gets no secret', async (t) => {
    const result = await runCli(
      [
        'client',
        'create',
        '--name',
        'spa',
        '--grant',
        'authorization_code',
        '--redirect-uri',
        'http://127.0.0.1:8080/cb',
        '--public',
        '--json',
      ],
      env,
    );
    t.equal(result.code, 0, result.stderr);
    t.same(Object.keys(JSON.parse(result.stdout)), ['client_id']);
  });

  await t.test('invalid client options fail with exit 1 and a message naming the field', async (t) => {
    const result = await runCli(
      ['client', 'create', '--name', 'svc', '--grant', 'client_credentials', '--json'],
      env,
    );
    t.equal(result.code, 1);
    t.equal(result.stdout, '');
    t.match(result.stderr, /resources: a client_credentials client needs at least one resource/);
    t.notMatch(result.stderr, /\n\s+at /, 'no stack trace');
  });

  await t.test('key list, rotate and retire', async (t) => {
    const first = JSON.parse((await runCli(['key', 'list', '--json'], env)).stdout);
    t.equal(first.length, 1);
    t.match(first[0], { alg: 'ES256', status: 'active' });
    const rotated = await runCli(['key', 'rotate', '--alg', 'EdDSA', '--json'], env);
    t.equal(rotated.code, 0, rotated.stderr);
    t.match(JSON.parse(rotated.stdout), { alg: 'EdDSA', status: 'active' });
    const after = JSON.parse((await runCli(['key', 'list', '--json'], env)).stdout);
    t.same(after.map((key: { status: string }) => key.status).sort(), ['active', 'verify']);
    const active = after.find((key: { status: string }) => key.status === 'active');
    const retireActive = await runCli(['key', 'retire', active.kid, '--json'], env);
    t.equal(retireActive.code, 1);
    t.match(retireActive.stderr, /active signing key cannot be retired/);
    const retireEarly = await runCli(['key', 'retire', first[0].kid], env);
    t.equal(retireEarly.code, 1, 'a freshly demoted key needs --force');
    const forced = await runCli(['key', 'retire', first[0].kid, '--force', '--json'], env);
    t.equal(forced.code, 0, forced.stderr);
    t.match(JSON.parse(forced.stdout), { kid: first[0].kid, status: 'retired' });
  });

  await t.test('usage errors exit 2 with usage on stderr', async (t) => {
    for (const args of [['frobnicate'], ['client', 'create', '--bogus'], ['key', 'explode'], []]) {
      const result = await runCli(args, env);
      t.equal(result.code, 2, `${args.join(' ') || '(none)'} exits 2`);
      t.match(result.stderr, /usage: gatehouse/);
      t.equal(result.stdout, '');
    }
  });

  await t.test('an invalid environment value stops with one line naming the variable', async (t) => {
    const result = await runCli(['key', 'list'], { ...env, PORT: 'abc' });
    t.equal(result.code, 1);
    t.match(result.stderr, /^gatehouse: PORT must be a port number/);
    t.equal(result.stderr.trim().split('\n').length, 1);
  });

  await t.test('an unreachable database stops with a clear message, no stack trace', async (t) => {
    const result = await runCli(['migrate'], {
      ...env,
      DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/nothing',
    });
    t.equal(result.code, 1);
    t.match(result.stderr, /cannot reach the database/);
    t.notMatch(result.stderr, /\n\s+at /);
  });

  await t.test('production refuses to start without keys', async (t) => {
    const result = await runCli(['serve'], {
      DATABASE_URL: databaseUrl,
      NODE_ENV: 'production',
      GATEHOUSE_ISSUER: 'https://id.example.com',
    });
    t.equal(result.code, 1);
    t.match(result.stderr, /GATEHOUSE_ENCRYPTION_KEY must be set in production/);
  });
});
