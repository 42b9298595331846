// Where the database is: DATABASE_URL, or the embedded one in the data dir.
// A server opens the embedded database itself and advertises its socket; a CLI
// command uses a running server's socket when there is one, or opens the
// embedded database for the length of the command.
import { findRunningServer, openEmbeddedDatabase } from './embedded/embedded-database.ts';

export interface OpenDatabase {
  url: string;
  /** 'postgresql' (DATABASE_URL), 'embedded' (opened here), 'server' (a running server's socket). */
  kind: 'postgresql' | 'embedded' | 'server';
  close(): Promise<void>;
}

interface DatabaseSettings {
  databaseUrl: string | undefined;
  dataDir: string;
}

/** The embedded database's connection limit; it must exceed the server's pool plus CLI connections. */
const EMBEDDED_MAX_CONNECTIONS = 24;
export const EMBEDDED_POOL_SIZE = 10;

export async function openServerDatabase(settings: DatabaseSettings): Promise<OpenDatabase> {
  if (settings.databaseUrl) return { url: settings.databaseUrl, kind: 'postgresql', close: async () => {} };
  const embedded = await openEmbeddedDatabase({
    dataDir: settings.dataDir,
    advertise: true,
    maxConnections: EMBEDDED_MAX_CONNECTIONS,
  });
  return { url: embedded.url, kind: 'embedded', close: () => embedded.close() };
}

export async function openCliDatabase(settings: DatabaseSettings): Promise<OpenDatabase> {
  if (settings.databaseUrl) return { url: settings.databaseUrl, kind: 'postgresql', close: async () => {} };
  const running = await findRunningServer(settings.dataDir);
  if (running) return { url: running.url, kind: 'server', close: async () => {} };
  const embedded = await openEmbeddedDatabase({ dataDir: settings.dataDir, maxConnections: 4 });
  return { url: embedded.url, kind: 'embedded', close: () => embedded.close() };
}
