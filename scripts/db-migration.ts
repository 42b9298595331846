// `npm run db:migration NAME`: writes the SQL that takes the database from
// the existing migrations to prisma/schema.prisma as a new migration, laid out
// the way `prisma migrate dev` lays it out, so `prisma migrate deploy` and
// Gatehouse's own migrator both accept it. Works offline (see
// src/db/schema-diff.ts).
import { access, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  DEFAULT_MIGRATIONS_DIR,
  diffMigrationsToSchema,
  MIGRATION_LOCK_TOML,
} from '../src/db/schema-diff.ts';

const USAGE = 'usage: npm run db:migration NAME   (NAME: lowercase letters, digits and underscores)';

/** Prisma's directory prefix: the UTC time as YYYYMMDDHHMMSS. */
function migrationTimestamp(now: Date): string {
  return now.toISOString().replace(/\D/g, '').slice(0, 14);
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

async function main(argv: string[]): Promise<number> {
  const name = argv[0];
  if (argv.length !== 1 || !name || !/^[a-z0-9_]+$/.test(name)) {
    console.error(USAGE);
    return 2;
  }
  const migrationsDir = DEFAULT_MIGRATIONS_DIR;
  const sql = await diffMigrationsToSchema({ migrationsDir });
  if (sql === '') {
    console.log('schema.prisma and the migrations agree; nothing to write');
    return 0;
  }
  const dir = path.join(migrationsDir, `${migrationTimestamp(new Date())}_${name}`);
  await mkdir(dir, { recursive: true });
  // 'wx': never overwrite a migration written in the same second.
  await writeFile(path.join(dir, 'migration.sql'), sql, { flag: 'wx' });
  const lockFile = path.join(migrationsDir, 'migration_lock.toml');
  if (!(await exists(lockFile))) await writeFile(lockFile, MIGRATION_LOCK_TOML, { flag: 'wx' });
  console.log(`wrote ${path.relative(process.cwd(), path.join(dir, 'migration.sql'))}`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
