// After the migrations, the database has a table for every model in
// schema.prisma and exactly a column for every scalar field (names mapped
// with @map / @@map), i.e. what the generated client will query.
import fs from 'node:fs/promises';
import pg from 'pg';
import t from 'tap';
import { applyMigrations } from '../../src/db/migrator.ts';
import { DEFAULT_SCHEMA_PATH } from '../../src/db/schema-diff.ts';
import { Prisma } from '../../src/generated/prisma/client.ts';
import { createTestDatabase } from '../helpers/database.ts';

interface ModelShape {
  table: string;
  /** Scalar field name → column name. */
  columns: Map<string, string>;
}

/** Removes a `//` comment (including `///` docs) unless it sits inside a string. */
function stripComment(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && c === '/' && line[i + 1] === '/') return line.slice(0, i);
  }
  return line;
}

/**
 * Models and their scalar fields, from the schema text. Relation fields (whose
 * type is another model) have no column; `@ignore`d models and fields are
 * left out as the client leaves them out.
 */
function parseModels(schema: string): Map<string, ModelShape> {
  const text = schema.split('\n').map(stripComment).join('\n');
  const blocks = [...text.matchAll(/^\s*model\s+(\w+)\s*\{([\s\S]*?)^\s*\}/gm)];
  const modelNames = new Set(blocks.map((b) => b[1]!));
  const models = new Map<string, ModelShape>();
  for (const [, name, body] of blocks) {
    const lines = body!
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    if (lines.some((l) => /^@@ignore\b/.test(l))) continue;
    const table = lines.map((l) => /^@@map\(\s*(?:name:\s*)?"([^"]+)"/.exec(l)?.[1]).find(Boolean) ?? name!;
    const columns = new Map<string, string>();
    for (const line of lines) {
      const field = /^(\w+)\s+(\w+)(\[\])?(\?)?(.*)$/.exec(line);
      if (!field || line.startsWith('@@')) continue;
      const [, fieldName, type, , , attributes = ''] = field;
      if (modelNames.has(type!) || /@ignore\b/.test(attributes)) continue;
      const mapped = /@map\(\s*(?:name:\s*)?"([^"]+)"/.exec(attributes)?.[1];
      columns.set(fieldName!, mapped ?? fieldName!);
    }
    models.set(name!, { table, columns });
  }
  return models;
}

const models = parseModels(await fs.readFile(DEFAULT_SCHEMA_PATH, 'utf8'));

t.test('the schema parser sees what the generated client sees', async (t) => {
  t.same([...models.keys()].sort(), Object.values(Prisma.ModelName).sort(), 'the same models');
  for (const [name, model] of models) {
    const enumName = `${name}ScalarFieldEnum` as keyof typeof Prisma;
    const clientFields = Object.values(Prisma[enumName] as Record<string, string>);
    t.same([...model.columns.keys()].sort(), clientFields.sort(), `the same scalar fields in ${name}`);
  }
});

t.test('every model is a table with a column per scalar field', async (t) => {
  const url = await createTestDatabase(t);
  await applyMigrations(url, {});
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());

  const { rows } = await client.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`,
  );
  const columnsByTable = new Map<string, string[]>();
  for (const row of rows) {
    columnsByTable.set(row.table_name, [...(columnsByTable.get(row.table_name) ?? []), row.column_name]);
  }
  for (const [name, model] of models) {
    const actual = columnsByTable.get(model.table);
    t.ok(actual, `model ${name} has table ${model.table}`);
    t.same(
      (actual ?? []).sort(),
      [...model.columns.values()].sort(),
      `table ${model.table} has exactly the columns of ${name}`,
    );
  }
});
