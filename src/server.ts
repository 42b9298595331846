// The only module that listens: opens the database, migrates, builds the
// services and the app, serves, runs background jobs, and closes gracefully.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { buildApp } from './app.ts';
import type { Config } from './config.ts';
import { createGatehouse, type Gatehouse } from './context.ts';
import { applyMigrations, pendingMigrations } from './db/migrator.ts';
import { EMBEDDED_POOL_SIZE, openServerDatabase } from './db/open-database.ts';
import { readTlsOptions, startHttpRedirect } from './https.ts';
import { resolveSecrets } from './lib/development-secrets.ts';
import { startBackgroundJobs } from './services/background-jobs.ts';

export interface RunningServer {
  app: FastifyInstance;
  gatehouse: Gatehouse;
  /** The URL the server listens on (the issuer may differ behind a proxy). */
  url: string;
  close(): Promise<void>;
}

export async function startServer(config: Readonly<Config>, log: FastifyBaseLogger): Promise<RunningServer> {
  // Unreadable TLS files stop start-up before anything else is opened.
  const https = config.tls ? readTlsOptions(config.tls) : undefined;
  const database = await openServerDatabase(config);
  let gatehouse: Gatehouse | undefined;
  try {
    const applied = await applyMigrations(database.url, { log });
    if (applied.applied.length) log.info({ migrations: applied.applied }, 'applied database migrations');

    const secrets = resolveSecrets(config);
    for (const name of secrets.generated) {
      log.warn(
        `${name} is not set: using a development value generated in ${config.dataDir} (never do this in production)`,
      );
    }
    gatehouse = await createGatehouse({
      config,
      log,
      databaseUrl: database.url,
      encryptionKeys: secrets.encryptionKeys,
      cookieKeys: secrets.cookieKeys,
      ...(database.kind === 'embedded' ? { poolSize: EMBEDDED_POOL_SIZE } : {}),
    });
    let migrated = false;
    const app = await buildApp({
      gatehouse,
      ...(https ? { fastify: { https } } : {}),
      // Once every migration is applied it stays so; stop asking.
      pendingMigrations: async () => {
        if (migrated) return [];
        const pending = await pendingMigrations(database.url);
        migrated = pending.length === 0;
        return pending;
      },
    });
    await explainFirstSteps(gatehouse);
    const jobs = startBackgroundJobs(gatehouse);
    await app.listen({ port: config.port, host: config.host });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `${https ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    const redirect =
      https && config.httpRedirectPort
        ? await startHttpRedirect(config.issuer, config.host, config.httpRedirectPort)
        : undefined;
    if (redirect) log.info(`plain HTTP on port ${config.httpRedirectPort} redirects to ${config.issuer}`);
    log.info(
      {
        issuer: config.issuer,
        database: database.kind === 'embedded' ? `embedded (${config.dataDir})` : 'postgresql',
      },
      `Gatehouse is serving ${config.issuer} on ${url}`,
    );
    if (database.kind === 'embedded') {
      log.warn(
        'the embedded database is for evaluation and one process; use DATABASE_URL (PostgreSQL) in production',
      );
    }
    const ready = gatehouse;
    return {
      app,
      gatehouse: ready,
      url,
      close: async () => {
        await new Promise<void>((resolve) => (redirect ? redirect.close(() => resolve()) : resolve()));
        await app.close();
        await jobs.stop();
        await ready.close();
        await database.close();
      },
    };
  } catch (error) {
    await gatehouse?.close();
    await database.close();
    throw error;
  }
}

/** On an empty database, say how to create the first admin and client. */
async function explainFirstSteps(gatehouse: Gatehouse): Promise<void> {
  const [users, clients] = await Promise.all([gatehouse.db.user.count(), gatehouse.db.client.count()]);
  if (users > 0 || clients > 0) return;
  gatehouse.log.info(
    [
      'The database is empty. Create the first admin and client:',
      "  printf '%s\\n' 'a long passphrase' | npx gatehouse user create --email admin@example.com --role admin --password-stdin",
      '  npx gatehouse client create --name my-app --grant authorization_code --grant refresh_token --redirect-uri https://app.example.com/callback',
      '  npx gatehouse client create --name my-service --grant client_credentials --scope "api:read" --resource https://api.example.com',
    ].join('\n'),
  );
}
