// Builds the Fastify app from Gatehouse's services: security headers, the
// mounted oidc-provider, health, and one error and not-found shape. Never
// listens (server.ts does), so tests drive it with inject() or a listener.
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { Gatehouse } from './context.ts';
import { CodedError } from './lib/errors.ts';
import { deferredChildLogger } from './logger.ts';
import { mountProvider, pathOf } from './oidc/mount.ts';
import { notFoundBody } from './oidc/provider.ts';
import { accountRoutes } from './routes/account.ts';
import { adminRoutes } from './routes/admin/index.ts';
import { healthRoutes } from './routes/health.ts';
import { interactionRoutes } from './routes/interaction.ts';
import { metricsRoute, registerHttpMetrics } from './routes/metrics.ts';
import { registerProtocolGuard } from './routes/protocol-guard.ts';
import { createRateLimiter } from './routes/rate-limits.ts';
import { registerSecurityHeaders } from './routes/security-headers.ts';
import { PendingSignIns } from './services/pending-sign-ins.ts';

export interface AppOptions {
  gatehouse: Gatehouse;
  pendingMigrations: () => Promise<string[]>;
  /** Fastify options for the host (HTTPS), merged over the defaults. */
  fastify?: Partial<FastifyServerOptions> & Record<string, unknown>;
}

/** Fastify's own routes take bodies up to this size; larger ones get 413. */
export const BODY_LIMIT = 64 * 1024;

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { gatehouse } = options;
  const { config } = gatehouse;
  const app = Fastify({
    loggerInstance: gatehouse.log,
    childLoggerFactory: deferredChildLogger,
    trustProxy: config.trustProxy.length > 0 ? config.trustProxy : false,
    bodyLimit: BODY_LIMIT,
    requestIdHeader: 'x-request-id',
    logController: new LogController({ requestIdLogLabel: 'request_id' }),
    // Slow or stalled clients are cut off instead of holding sockets.
    requestTimeout: 30_000,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // Fastify's own refusals (an overlong URL parameter: 414, a bad header…) in the one error shape.
    frameworkErrors: (error, _request, reply) => {
      const status = (error as { statusCode?: number }).statusCode ?? 400;
      (reply as unknown as FastifyReply)
        .code(status < 500 ? status : 400)
        .send({ error: 'invalid_request', message: error.message });
    },
    ...options.fastify,
  });

  registerSecurityHeaders(app, config.issuer, Boolean(options.fastify?.https));
  const limiter = createRateLimiter(config.rateLimits, {
    redisUrl: config.redisUrl,
    log: gatehouse.log,
    issuer: config.issuer,
    onRefused: (limit) => gatehouse.metrics.rateLimited.inc({ limit }),
  });
  app.addHook('onClose', () => limiter.close());
  await limiter.ready();
  registerHttpMetrics(app, gatehouse.metrics);
  registerProtocolGuard(app, { clients: gatehouse.clientDirectory, limiter });
  mountProvider(app, gatehouse.providerHost, config.issuer);

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof CodedError) {
      return reply.code(error.statusCode).send({ error: error.code, message: error.message });
    }
    const err = error as { statusCode?: number; code?: string; validation?: unknown; message: string };
    if (err.validation) {
      return reply.code(400).send({ error: 'invalid_request', message: err.message });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      const code =
        err.statusCode === 413
          ? 'payload_too_large'
          : err.statusCode === 415
            ? 'unsupported_media_type'
            : 'invalid_request';
      return reply.code(err.statusCode).send({ error: code, message: err.message });
    }
    request.log.error({ err: error }, 'unhandled error');
    return reply.code(500).send({ error: 'server_error', message: 'internal server error' });
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(notFoundBody(request.method, pathOf(request.url)));
  });

  await app.register(healthRoutes, { db: gatehouse.db, pendingMigrations: options.pendingMigrations });
  await app.register(metricsRoute, { metrics: gatehouse.metrics });
  await app.register(interactionRoutes, {
    providerHost: gatehouse.providerHost,
    users: gatehouse.users,
    mfa: gatehouse.mfa,
    pending: new PendingSignIns(gatehouse.db),
    limiter,
    lockout: gatehouse.lockout,
    audit: gatehouse.audit,
    consents: gatehouse.consents,
    csrf: gatehouse.csrf,
    issuer: config.issuer,
    isFirstParty: async (clientId: string) =>
      (await gatehouse.clientDirectory.load(clientId))?.firstParty === true,
  });
  await app.register(accountRoutes, {
    providerHost: gatehouse.providerHost,
    users: gatehouse.users,
    mfa: gatehouse.mfa,
    csrf: gatehouse.csrf,
    issuer: config.issuer,
  });
  await app.register(adminRoutes, { gatehouse, limiter });
  return app;
}
