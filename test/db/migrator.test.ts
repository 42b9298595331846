// Applying prisma/migrations: recorded exactly as `prisma migrate deploy`
// records them, once even when processes race, atomically per migration, and
// refusing to build on a failed or edited migration.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import t from 'tap';
import { applyMigrations, MigrationError, pendingMigrations } from '../../src/db/migrator.ts';
import { createTestDatabase, type TestContext, testServerUrl } from '../helpers/database.ts';

const migrationsDir = path.resolve(import.meta.dirname, '../../prisma/migrations');
const realMigrations = (await fs.readdir(migrationsDir, { withFileTypes: true }))
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort();

/** A client on `url`, ended at teardown. */
async function connect(t: TestContext, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  return client;
}

/** A temporary copy of prisma/migrations plus `extra` migrations (name → SQL), removed at teardown. */
async function copyMigrations(t: TestContext, extra: Record<string, string> = {}): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-migrations-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  await fs.cp(migrationsDir, dir, { recursive: true });
  for (const [name, sql] of Object.entries(extra)) {
    await fs.mkdir(path.join(dir, name));
    await fs.writeFile(path.join(dir, name, 'migration.sql'), sql);
  }
  return dir;
}

interface Row {
  id: string;
  checksum: string;
  migration_name: string;
  logs: string | null;
  started_at: Date;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  applied_steps_count: number;
}

async function migrationRows(client: pg.Client): Promise<Row[]> {
  const { rows } = await client.query<Row>('SELECT * FROM "_prisma_migrations" ORDER BY started_at');
  return rows;
}

t.test('applies every migration to a fresh database and records it as Prisma does', async (t) => {
  const url = await createTestDatabase(t);
  t.same(await pendingMigrations(url), realMigrations, 'all pending before the first run');

  const logged: { obj: object; msg?: string }[] = [];
  const log = { info: (obj: object, msg?: string) => logged.push({ obj, msg }) };
  const { applied } = await applyMigrations(url, { log });
  t.same(applied, realMigrations);
  t.same(
    logged
      .filter((l) => l.msg === 'migration applied')
      .map((l) => (l.obj as { migration: string }).migration),
    realMigrations,
  );

  const client = await connect(t, url);
  const { rows: columns } = await client.query(
    `SELECT column_name, data_type, character_maximum_length, is_nullable, column_default
       FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = '_prisma_migrations'
      ORDER BY ordinal_position`,
  );
  t.same(
    columns.map((c) => [c.column_name, c.data_type, c.character_maximum_length, c.is_nullable]),
    [
      ['id', 'character varying', 36, 'NO'],
      ['checksum', 'character varying', 64, 'NO'],
      ['finished_at', 'timestamp with time zone', null, 'YES'],
      ['migration_name', 'character varying', 255, 'NO'],
      ['logs', 'text', null, 'YES'],
      ['rolled_back_at', 'timestamp with time zone', null, 'YES'],
      ['started_at', 'timestamp with time zone', null, 'NO'],
      ['applied_steps_count', 'integer', null, 'NO'],
    ],
    "the table has Prisma's columns",
  );

  const rows = await migrationRows(client);
  t.same(
    rows.map((r) => r.migration_name),
    realMigrations,
  );
  for (const row of rows) {
    const bytes = await fs.readFile(path.join(migrationsDir, row.migration_name, 'migration.sql'));
    t.equal(row.checksum, createHash('sha256').update(bytes).digest('hex'), 'checksum is sha256 of the file');
    t.match(
      row.id,
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      'id is a v4 uuid',
    );
    t.equal(row.applied_steps_count, 1);
    t.ok(row.finished_at && row.finished_at >= row.started_at, 'finished after it started');
    t.equal(row.logs, null);
    t.equal(row.rolled_back_at, null);
  }

  t.same(await applyMigrations(url, { log }), { applied: [] }, 'a second run applies nothing');
  t.equal((await migrationRows(client)).length, realMigrations.length, 'and records nothing');
  t.same(await pendingMigrations(url), []);
});

// Against a real PostgreSQL only (CI always has one): the embedded database
// runs every connection in one backend session, where advisory locks cannot
// exclude each other, so there one process owns the data dir instead (the
// lock tested in embedded-database.test.ts).
if (testServerUrl())
  t.test('two processes starting together apply each migration once', async (t) => {
    const url = await createTestDatabase(t);
    const results = await Promise.all([applyMigrations(url), applyMigrations(url)]);
    t.same(results.flatMap((r) => r.applied).sort(), realMigrations, 'applied once between them');
    t.ok(
      results.some((r) => r.applied.length === 0),
      'the one that waited for the lock found the work done',
    );
    const client = await connect(t, url);
    t.equal((await migrationRows(client)).length, realMigrations.length, 'one row per migration');
  });

t.test('a failing migration leaves the schema as it was and blocks later runs', async (t) => {
  const url = await createTestDatabase(t);
  const broken = '99999999999999_broken';
  const dir = await copyMigrations(t, { [broken]: 'CREATE TABLE a(x int);\nSELECT nonsense_fn();\n' });

  const error = await applyMigrations(url, { migrationsDir: dir }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(error, MigrationError);
  t.match(error, { code: 'migration_failed', migration: broken, message: /99999999999999_broken/ });
  t.match((error as Error).message, /nonsense_fn/, 'the message carries the database error');

  const client = await connect(t, url);
  const { rows: tables } = await client.query(`SELECT to_regclass('a') AS a`);
  t.equal(tables[0].a, null, 'the table created before the failure was rolled back');

  const rows = await migrationRows(client);
  t.same(
    rows.filter((r) => r.finished_at !== null).map((r) => r.migration_name),
    realMigrations,
    'the migrations before it stay applied',
  );
  const failed = rows.find((r) => r.migration_name === broken);
  t.ok(failed, 'the failed attempt is recorded');
  t.equal(failed?.finished_at, null);
  t.equal(failed?.applied_steps_count, 0);
  t.match(failed?.logs, /nonsense_fn\(\) does not exist/);
  t.match(failed?.logs, /42883/, 'with the PostgreSQL error code');

  await t.rejects(applyMigrations(url, { migrationsDir: dir }), {
    name: 'MigrationError',
    code: 'migration_blocked',
    migration: broken,
    message: /99999999999999_broken/,
  });
  t.same(await pendingMigrations(url, { migrationsDir: dir }), [broken], 'it is still pending');

  // Resolved the Prisma way: marked rolled back, fixed, retried.
  await client.query(`UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = $1`, [
    broken,
  ]);
  await fs.writeFile(path.join(dir, broken, 'migration.sql'), 'CREATE TABLE a(x int);\n');
  t.same(await applyMigrations(url, { migrationsDir: dir }), { applied: [broken] }, 'applied once resolved');
  const { rows: after } = await client.query(`SELECT to_regclass('a') IS NOT NULL AS a`);
  t.equal(after[0].a, true);
});

t.test('a migration edited after it was applied is refused', async (t) => {
  const url = await createTestDatabase(t);
  const dir = await copyMigrations(t);
  await applyMigrations(url, { migrationsDir: dir });
  const first = realMigrations[0]!;
  const file = path.join(dir, first, 'migration.sql');
  const original = await fs.readFile(file, 'utf8');

  // Git may check a file out with CRLF line endings; Prisma accepts that.
  await fs.writeFile(file, original.replaceAll('\n', '\r\n'));
  t.same(await applyMigrations(url, { migrationsDir: dir }), { applied: [] }, 'line endings are not an edit');

  await fs.writeFile(file, `${original}\nCREATE TABLE sneaky (x int);\n`);
  await t.rejects(applyMigrations(url, { migrationsDir: dir }), {
    name: 'MigrationError',
    code: 'migration_modified',
    migration: first,
    message: new RegExp(`${first} was modified`),
  });
});

t.test('only directories holding a migration.sql are migrations', async (t) => {
  const url = await createTestDatabase(t);
  const dir = await copyMigrations(t);
  await fs.writeFile(path.join(dir, 'README.md'), 'not a migration');
  await fs.mkdir(path.join(dir, '00000000000000_empty_dir'));
  t.same(await applyMigrations(url, { migrationsDir: dir }), { applied: realMigrations });
});
