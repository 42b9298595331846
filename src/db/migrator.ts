// Applies prisma/migrations the way `prisma migrate deploy` does and records
// them in the same `_prisma_migrations` table, so either tool can take over
// from the other. Prisma's CLI needs a native engine that cannot be
// downloaded offline, and the server should not depend on the CLI at run
// time, hence this small reimplementation.
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

/** The key `prisma migrate deploy` locks, so Gatehouse and the CLI exclude each other too. */
const MIGRATION_LOCK_KEY = 72707369;

const DEFAULT_MIGRATIONS_DIR = path.resolve(import.meta.dirname, '../../prisma/migrations');

// Prisma's own definition of the table, column for column.
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

export type MigrationErrorCode = 'migration_failed' | 'migration_blocked' | 'migration_modified';

export class MigrationError extends Error {
  override name = 'MigrationError';
  readonly code: MigrationErrorCode;
  /** The migration directory the error is about. */
  readonly migration: string;

  constructor(code: MigrationErrorCode, migration: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.migration = migration;
  }
}

export interface MigrationLogger {
  info(obj: object, msg?: string): void;
}

export interface MigratorOptions {
  /** Defaults to the repository's prisma/migrations. */
  migrationsDir?: string;
  log?: MigrationLogger;
}

interface LocalMigration {
  name: string;
  script: string;
  checksum: string;
}

interface MigrationRow {
  id: string;
  checksum: string;
  migration_name: string;
  started_at: Date;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Every subdirectory holding a migration.sql, in name order (code-point
 * order: Prisma's names start with a UTC timestamp, so this is time order).
 */
async function readLocalMigrations(migrationsDir: string): Promise<LocalMigration[]> {
  const entries = await readdir(migrationsDir, { withFileTypes: true }).catch(
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw error;
    },
  );
  const migrations: LocalMigration[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    let bytes: Buffer;
    try {
      bytes = await readFile(path.join(migrationsDir, entry.name, 'migration.sql'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    migrations.push({ name: entry.name, script: bytes.toString('utf8'), checksum: sha256Hex(bytes) });
  }
  return migrations.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Prisma accepts a checksum computed with either line ending, because git may
 * convert them on checkout; do the same so the two tools agree.
 */
function matchesChecksum(migration: LocalMigration, checksum: string): boolean {
  return (
    checksum === migration.checksum ||
    checksum === sha256Hex(migration.script.replaceAll('\r\n', '\n')) ||
    checksum === sha256Hex(migration.script.replaceAll('\r\n', '\n').replaceAll('\n', '\r\n'))
  );
}

const isApplied = (row: MigrationRow): boolean => row.finished_at !== null && row.rolled_back_at === null;
const isFailed = (row: MigrationRow): boolean => row.finished_at === null && row.rolled_back_at === null;

async function readRows(client: pg.Client): Promise<MigrationRow[]> {
  const { rows } = await client.query<MigrationRow>(
    `SELECT id, checksum, migration_name, started_at, finished_at, rolled_back_at
       FROM "_prisma_migrations" ORDER BY started_at`,
  );
  return rows;
}

/** Refuses, as Prisma does, to build on a failed or edited migration. */
function checkHistory(rows: MigrationRow[], local: LocalMigration[]): void {
  const failed = rows.find(isFailed);
  if (failed) {
    throw new MigrationError(
      'migration_blocked',
      failed.migration_name,
      `Migration ${failed.migration_name} started at ${failed.started_at.toISOString()} failed (its error is ` +
        'in the logs column of _prisma_migrations); no further migration will be applied until it is resolved. ' +
        'Fix the cause (Gatehouse rolled its changes back; a tool that does not may have left some to repair), ' +
        `then mark the attempt rolled back so it is retried: UPDATE "_prisma_migrations" SET rolled_back_at = ` +
        `now() WHERE id = '${failed.id}' (or \`prisma migrate resolve --rolled-back ${failed.migration_name}\`).`,
    );
  }
  const byName = new Map(local.map((m) => [m.name, m]));
  for (const row of rows.filter(isApplied)) {
    const migration = byName.get(row.migration_name);
    if (migration && !matchesChecksum(migration, row.checksum)) {
      throw new MigrationError(
        'migration_modified',
        row.migration_name,
        `Migration ${row.migration_name} was modified after it was applied (checksum ${row.checksum} in ` +
          `_prisma_migrations, ${migration.checksum} on disk). Restore the applied version and put the ` +
          'change in a new migration.',
      );
    }
  }
}

/** PostgreSQL's error as Prisma records it in `logs`, with the line it points at. */
function describeFailure(error: unknown, script: string): string {
  if (!(error instanceof Error)) return String(error);
  const pgError = error as Partial<pg.DatabaseError>;
  const lines = [];
  if (pgError.code) lines.push(`Database error code: ${pgError.code}`);
  lines.push('Database error:', `${pgError.severity ?? 'ERROR'}: ${error.message}`);
  if (pgError.detail) lines.push(`DETAIL: ${pgError.detail}`);
  if (pgError.hint) lines.push(`HINT: ${pgError.hint}`);
  const position = Number(pgError.position);
  if (position > 0) {
    const line = script.slice(0, position - 1).split('\n').length;
    lines.push(`Position: line ${line}: ${script.split('\n')[line - 1]?.trim() ?? ''}`);
  }
  return lines.join('\n');
}

/** Takes Prisma's migration lock, saying so if another process holds it. */
async function lockMigrations(client: pg.Client, log: MigrationLogger | undefined): Promise<void> {
  const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
    MIGRATION_LOCK_KEY,
  ]);
  if (rows[0]?.locked) return;
  log?.info({ lock: MIGRATION_LOCK_KEY }, 'another process is applying migrations; waiting for it');
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
}

async function applyOne(client: pg.Client, migration: LocalMigration): Promise<void> {
  const id = randomUUID();
  // Recorded before the script runs and outside its transaction, so a failed
  // attempt stays visible (and blocks the next run) as with Prisma.
  await client.query(
    `INSERT INTO "_prisma_migrations" (id, checksum, started_at, migration_name) VALUES ($1, $2, now(), $3)`,
    [id, migration.checksum, migration.name],
  );
  try {
    await client.query('BEGIN');
    await client.query(migration.script);
    // In the same transaction as the script: a crash cannot leave the schema
    // changed but the migration unrecorded. clock_timestamp(), not now(),
    // which is the transaction's start.
    await client.query(
      `UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = $1`,
      [id],
    );
    await client.query('COMMIT');
  } catch (error) {
    const logs = describeFailure(error, migration.script);
    // If the connection itself broke, PostgreSQL has rolled back already and
    // the row cannot be updated; the error below still says what happened.
    await client.query('ROLLBACK').catch(() => {});
    await client.query(`UPDATE "_prisma_migrations" SET logs = $2 WHERE id = $1`, [id, logs]).catch(() => {});
    throw new MigrationError(
      'migration_failed',
      migration.name,
      `Migration ${migration.name} failed to apply; the database was left as it was before it.\n${logs}`,
      { cause: error },
    );
  }
}

/**
 * Applies every migration not yet recorded as applied, in name order, while
 * holding Prisma's advisory lock: processes starting together apply each
 * migration once, the later ones finding it done.
 */
export async function applyMigrations(
  connectionString: string,
  opts: MigratorOptions = {},
): Promise<{ applied: string[] }> {
  const local = await readLocalMigrations(opts.migrationsDir ?? DEFAULT_MIGRATIONS_DIR);
  const client = new pg.Client({ connectionString });
  await client.connect();
  const applied: string[] = [];
  try {
    await lockMigrations(client, opts.log);
    try {
      await client.query(CREATE_MIGRATIONS_TABLE);
      const rows = await readRows(client);
      checkHistory(rows, local);
      const done = new Set(rows.filter(isApplied).map((row) => row.migration_name));
      for (const migration of local) {
        if (done.has(migration.name)) continue;
        const started = performance.now();
        await applyOne(client, migration);
        applied.push(migration.name);
        opts.log?.info(
          { migration: migration.name, ms: Math.round(performance.now() - started) },
          'migration applied',
        );
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {
        // The session is gone, and PostgreSQL released the lock with it.
      });
    }
  } finally {
    await client.end().catch(() => {});
  }
  return { applied };
}

/** Names of local migrations not recorded as applied (failed ones included), in order. */
export async function pendingMigrations(
  connectionString: string,
  opts: Pick<MigratorOptions, 'migrationsDir'> = {},
): Promise<string[]> {
  const local = await readLocalMigrations(opts.migrationsDir ?? DEFAULT_MIGRATIONS_DIR);
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const { rows } = await client.query<{ exists: boolean }>(
      `SELECT to_regclass('"_prisma_migrations"') IS NOT NULL AS exists`,
    );
    if (!rows[0]?.exists) return local.map((m) => m.name);
    const done = new Set((await readRows(client)).filter(isApplied).map((row) => row.migration_name));
    return local.filter((m) => !done.has(m.name)).map((m) => m.name);
  } finally {
    await client.end().catch(() => {});
  }
}
