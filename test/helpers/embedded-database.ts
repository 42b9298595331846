// Without TEST_DATABASE_URL the suite runs on the embedded database: each
// test database is an in-memory PGlite behind its own socket, closed at teardown.
import { openEmbeddedDatabase } from '../../src/db/embedded/embedded-database.ts';
import type { TestContext } from './database.ts';

export async function createEmbeddedTestDatabase(t: TestContext): Promise<string> {
  const database = await openEmbeddedDatabase({ inMemory: true, maxConnections: 24 });
  // tap runs teardowns last-in first-out: whatever uses this database closes before it does.
  t.teardown(() => database.close());
  return database.url;
}
