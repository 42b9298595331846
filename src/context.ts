// The composition root: builds every service once, from configuration and an
// open database, and hands them to the HTTP app, the CLI and background jobs.
// Nothing here listens; nothing opens a connection at import time.
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from './config.ts';
import { createDatabase, type Database } from './db/prisma.ts';
import { KeyRing } from './lib/encryption.ts';
import { ClientDirectory } from './oidc/client-directory.ts';
import { buildProvider } from './oidc/provider.ts';
import { ProviderHost } from './oidc/provider-host.ts';
import { AuditService } from './services/audit.ts';
import { ClientService } from './services/clients.ts';
import { KeyService } from './services/keys.ts';

export interface Services {
  config: Readonly<Config>;
  log: FastifyBaseLogger;
  db: Database;
  keyRing: KeyRing;
  audit: AuditService;
  keys: KeyService;
  clients: ClientService;
  close(): Promise<void>;
}

export interface Gatehouse extends Services {
  clientDirectory: ClientDirectory;
  providerHost: ProviderHost;
}

export interface ServiceOptions {
  config: Readonly<Config>;
  log: FastifyBaseLogger;
  databaseUrl: string;
  encryptionKeys: Buffer[];
  poolSize?: number;
}

/** The services without the protocol: enough for the CLI. */
export function createServices(options: ServiceOptions): Services {
  const db = createDatabase(options.databaseUrl, options.poolSize);
  const keyRing = new KeyRing(options.encryptionKeys);
  const audit = new AuditService(db, options.log);
  return {
    config: options.config,
    log: options.log,
    db,
    keyRing,
    audit,
    keys: new KeyService(db, keyRing, audit),
    clients: new ClientService(db, audit),
    close: () => db.$disconnect(),
  };
}

/** Everything the server needs, with a signing key and a built provider. */
export async function createGatehouse(
  options: ServiceOptions & { cookieKeys: string[] },
): Promise<Gatehouse> {
  const services = createServices(options);
  try {
    await services.keys.ensureActiveKey();
    const clientDirectory = new ClientDirectory(services.db);
    const providerHost = await ProviderHost.create(async () => {
      const version = await services.keys.keysetVersion();
      const keystore = await services.keys.loadKeystore();
      const provider = buildProvider({
        config: options.config,
        db: services.db,
        keystore,
        cookieKeys: options.cookieKeys,
        clients: clientDirectory,
        log: options.log,
      });
      return { provider, version };
    });
    return { ...services, clientDirectory, providerHost };
  } catch (error) {
    await services.close();
    throw error;
  }
}
