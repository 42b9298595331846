// The one place a Prisma client is made: PostgreSQL through @prisma/adapter-pg.
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Database = PrismaClient;
export type Transaction = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];
export type DatabaseOrTransaction = Database | Transaction;

export function createDatabase(connectionString: string, poolSize = 10): Database {
  const adapter = new PrismaPg({
    connectionString,
    max: poolSize,
    // Fail fast instead of queueing forever when the database is gone.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  return new PrismaClient({ adapter });
}
