// schema.prisma and prisma/migrations must describe the same database: a
// model changed without `npm run db:migration NAME` fails here.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { DEFAULT_SCHEMA_PATH, diffMigrationsToSchema } from '../../src/db/schema-diff.ts';

t.test('the migrations produce exactly what schema.prisma describes', async (t) => {
  const started = performance.now();
  const sql = await diffMigrationsToSchema();
  t.comment(`diff took ${Math.round(performance.now() - started)} ms`);
  t.equal(
    sql,
    '',
    'no SQL is missing from prisma/migrations (run `npm run db:migration NAME` if this fails)',
  );
});

t.test('a model missing from the migrations is reported', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-schema-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const schemaPath = path.join(dir, 'schema.prisma');
  const schema = await fs.readFile(DEFAULT_SCHEMA_PATH, 'utf8');
  await fs.writeFile(
    schemaPath,
    `${schema}\nmodel DriftProbe {\n  id    Int    @id\n  label String @map("probe_label")\n\n  @@map("drift_probes")\n}\n`,
  );

  const sql = await diffMigrationsToSchema({ schemaPath });
  t.match(sql, /CREATE TABLE "drift_probes"/, 'the missing table is in the diff');
  t.match(sql, /"probe_label" TEXT NOT NULL/);
  t.notMatch(sql, /CREATE SCHEMA/, 'without a schema-creating statement');
  t.notMatch(sql, /"users"/, 'and nothing that is already migrated');
});
