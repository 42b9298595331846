// The one place a Prisma client is made: PostgreSQL through @prisma/adapter-pg,
// on a pg.Pool of our own so its usage can be reported (/metrics).
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Database = PrismaClient;
export type Transaction = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];
export type DatabaseOrTransaction = Database | Transaction;

const pools = new WeakMap<Database, pg.Pool>();

export function createDatabase(connectionString: string, poolSize = 10): Database {
  const pool = new pg.Pool({
    connectionString,
    max: poolSize,
    // Fail fast instead of queueing forever when the database is gone.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client's connection dropping (database restart) must not crash the process.
  pool.on('error', () => {});
  const db = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  pools.set(db, pool);
  return db;
}

/** Connections in use, idle and waited for, for /metrics. */
export function poolUsage(
  db: Database,
): { total: number; idle: number; waiting: number; max: number } | undefined {
  const pool = pools.get(db);
  return pool
    ? { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: pool.options.max }
    : undefined;
}
