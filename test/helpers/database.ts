// Each test file gets its own freshly created database, dropped at teardown,
// so runs never collide and leave nothing behind. With TEST_DATABASE_URL (CI:
// a real PostgreSQL) a new database is created on that server; without it the
// embedded database is used.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface TestContext {
  teardown(fn: () => unknown): void;
}

export function testServerUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL || undefined;
}

/** Creates an empty database and returns its connection string. */
export async function createTestDatabase(t: TestContext): Promise<string> {
  const serverUrl = testServerUrl();
  if (!serverUrl) {
    const { createEmbeddedTestDatabase } = await import('./embedded-database.ts');
    return createEmbeddedTestDatabase(t);
  }
  const name = `gatehouse_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  t.teardown(async () => {
    const dropper = new pg.Client({ connectionString: serverUrl });
    await dropper.connect();
    try {
      await dropper.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await dropper.end();
    }
  });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
