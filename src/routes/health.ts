// Liveness and readiness for load balancers and orchestrators.
import type { FastifyInstance } from 'fastify';
import type { Database } from '../db/prisma.ts';

export interface HealthDependencies {
  db: Database;
  /** Names of migrations not yet applied; readiness waits for none. */
  pendingMigrations: () => Promise<string[]>;
}

const statusSchema = {
  type: 'object',
  properties: { status: { type: 'string' }, reason: { type: 'string' } },
  required: ['status'],
} as const;

export async function healthRoutes(app: FastifyInstance, deps: HealthDependencies): Promise<void> {
  app.get('/healthz', { schema: { response: { 200: statusSchema } }, logLevel: 'warn' }, async () => ({
    status: 'ok',
  }));

  app.get(
    '/readyz',
    { schema: { response: { 200: statusSchema, 503: statusSchema } }, logLevel: 'warn' },
    async (request, reply) => {
      try {
        await deps.db.$queryRaw`SELECT 1`;
        const pending = await deps.pendingMigrations();
        if (pending.length > 0) {
          return reply
            .code(503)
            .send({ status: 'unavailable', reason: `${pending.length} migration(s) not applied` });
        }
        return { status: 'ready' };
      } catch (error) {
        request.log.warn({ err: error }, 'readiness check failed');
        return reply.code(503).send({ status: 'unavailable', reason: 'database unreachable' });
      }
    },
  );
}
