// The composition root: builds every service once, from configuration and an
// open database, and hands them to the HTTP app, the CLI and background jobs.
// Nothing here listens; nothing opens a connection at import time.
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from './config.ts';
import { createDatabase, type Database } from './db/prisma.ts';
import type { CsrfTokens } from './lib/csrf.ts';
import { KeyRing } from './lib/encryption.ts';
import type { ClientDirectory } from './oidc/client-directory.ts';
import type { ProviderHost } from './oidc/provider-host.ts';
import { AuditService } from './services/audit.ts';
import { ClientService } from './services/clients.ts';
import { ConsentService } from './services/consents.ts';
import { KeyService } from './services/keys.ts';
import { AccountLockout } from './services/lockout.ts';
import type { Metrics } from './services/metrics.ts';
import { MfaService } from './services/mfa.ts';
import { dummyHash } from './services/passwords.ts';
import { RoleService } from './services/roles.ts';
import { SessionRevocation } from './services/sessions.ts';
import { UserService } from './services/users.ts';

export interface Services {
  config: Readonly<Config>;
  log: FastifyBaseLogger;
  db: Database;
  keyRing: KeyRing;
  audit: AuditService;
  keys: KeyService;
  clients: ClientService;
  users: UserService;
  mfa: MfaService;
  roles: RoleService;
  consents: ConsentService;
  lockout: AccountLockout;
  sessions: SessionRevocation;
  close(): Promise<void>;
}

export interface Gatehouse extends Services {
  clientDirectory: ClientDirectory;
  providerHost: ProviderHost;
  csrf: CsrfTokens;
  metrics: Metrics;
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
  const lockout = new AccountLockout(db, audit);
  const consents = new ConsentService(db);
  const sessions = new SessionRevocation(db, consents);
  return {
    config: options.config,
    log: options.log,
    db,
    keyRing,
    audit,
    keys: new KeyService(db, keyRing, audit),
    clients: new ClientService(db, audit, { sessions }),
    users: new UserService(db, audit, { lockout, sessions }),
    lockout,
    sessions,
    mfa: new MfaService(db, keyRing, audit, { sessions }),
    roles: new RoleService(db, audit),
    consents,
    close: () => db.$disconnect(),
  };
}

/** Everything the server needs, with a signing key and a built provider. */
export async function createGatehouse(
  options: ServiceOptions & { cookieKeys: string[] },
): Promise<Gatehouse> {
  const services = createServices(options);
  // The protocol stack loads here, not at import: CLI commands never need it.
  const [{ CsrfTokens }, { ClientDirectory }, { buildProvider }, { ProviderHost }, { Metrics }] =
    await Promise.all([
      import('./lib/csrf.ts'),
      import('./oidc/client-directory.ts'),
      import('./oidc/provider.ts'),
      import('./oidc/provider-host.ts'),
      import('./services/metrics.ts'),
    ]);
  try {
    await services.roles.ensureDefaultRoles();
    // The first failed sign-in would otherwise pay for making the dummy hash.
    await dummyHash();
    await services.keys.ensureActiveKey();
    const clientDirectory = new ClientDirectory(services.db);
    // Changes made through this process (admin API) apply at once; others within the directory's TTL.
    services.clients.onChange((clientId) => clientDirectory.forget(clientId));
    const metrics = new Metrics(services.db);
    services.audit.observe((type) => metrics.countAuditEvent(type));
    const providerHost = await ProviderHost.create(async () => {
      const version = await services.keys.keysetVersion();
      const keystore = await services.keys.loadKeystore();
      const provider = buildProvider({
        config: options.config,
        db: services.db,
        keystore,
        cookieKeys: options.cookieKeys,
        clients: clientDirectory,
        users: services.users,
        consents: services.consents,
        audit: services.audit,
        metrics,
        log: options.log,
      });
      return { provider, version };
    });
    return {
      ...services,
      clientDirectory,
      providerHost,
      metrics,
      csrf: new CsrfTokens(options.cookieKeys[0]!),
    };
  } catch (error) {
    await services.close();
    throw error;
  }
}
