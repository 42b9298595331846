// The admin API under /admin (SPEC "Admin API"): JSON in and out, every route
// behind the admin gate (auth.ts), described by its JSON schemas, which
// Fastify enforces and /admin/openapi.json publishes. Errors go through the
// app's one error handler as {"error","message"}.
import type { FastifyInstance } from 'fastify';
import type { Gatehouse } from '../../context.ts';
import { notFoundBody } from '../../oidc/provider.ts';
import { AdminAccess } from '../../services/admin-access.ts';
import { auditRoutes } from './audit.ts';
import { type AdminRateLimiter, registerAdminGate } from './auth.ts';
import { clientRoutes } from './clients.ts';
import { keyRoutes } from './keys.ts';
import { buildOpenApiDocument, recordRoutes } from './openapi.ts';
import { roleRoutes } from './roles.ts';
import { errorResponses } from './schemas.ts';
import { userRoutes } from './users.ts';

export interface AdminRoutesOptions {
  gatehouse: Gatehouse;
  /** The per-caller `admin` rate limit; without it the admin API is not rate limited. */
  limiter?: AdminRateLimiter | undefined;
}

export async function adminRoutes(app: FastifyInstance, options: AdminRoutesOptions): Promise<void> {
  await app.register(adminApi, { ...options, prefix: '/admin' });
}

async function adminApi(app: FastifyInstance, options: AdminRoutesOptions): Promise<void> {
  const { gatehouse } = options;

  // JSON only: anything else (text/plain, forms, …) is refused with 415
  // before it is read. The default parser also refuses __proto__ and
  // constructor.prototype keys (prototype poisoning) with a 400.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );

  registerAdminGate(app, {
    access: new AdminAccess({
      config: gatehouse.config,
      db: gatehouse.db,
      keys: gatehouse.keys,
      clients: gatehouse.clients,
      users: gatehouse.users,
    }),
    audit: gatehouse.audit,
    ipAllowlist: gatehouse.config.adminIpAllowlist,
    limiter: options.limiter,
  });
  // Unknown /admin paths answer 404 only to callers the gate lets through.
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(notFoundBody(request.method, request.url.split('?')[0] ?? ''));
  });

  const routes = recordRoutes(app);
  await app.register(keyRoutes, { gatehouse });
  await app.register(userRoutes, { gatehouse });
  await app.register(roleRoutes, { gatehouse });
  await app.register(clientRoutes, { gatehouse });
  await app.register(auditRoutes, { gatehouse });

  let document: unknown;
  app.get(
    '/openapi.json',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'This document: every admin route with its parameters, bodies and responses',
        response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
      },
    },
    async () => {
      document ??= buildOpenApiDocument(routes, gatehouse.config.issuer);
      return document;
    },
  );
}
