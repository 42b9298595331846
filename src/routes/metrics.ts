// GET /metrics in Prometheus text format, and the HTTP metrics every response
// feeds (the provider's too: its requests reach Fastify's onResponse hook).
// /metrics holds no secrets; restrict it at the proxy if its numbers are private.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { pathOf } from '../oidc/mount.ts';
import { isProviderPath } from '../oidc/provider.ts';
import type { Metrics } from '../services/metrics.ts';

export function registerHttpMetrics(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', (request, reply, done) => {
    metrics.countResponse(routeLabel(request), request.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
}

/** A bounded label: the route pattern, or the provider's path, never a raw URL. */
function routeLabel(request: FastifyRequest): string {
  // The provider's paths are no Fastify routes (is404): checked first, since
  // routeOptions builds a new object on every read, and they are the hot path.
  if (!request.is404) return request.routeOptions.url ?? 'unmatched';
  const path = pathOf(request.url);
  if (isProviderPath(path)) return path.startsWith('/auth/') ? '/auth/:uid' : path;
  return 'unmatched';
}

export async function metricsRoute(app: FastifyInstance, options: { metrics: Metrics }): Promise<void> {
  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) =>
    reply
      .header('content-type', options.metrics.registry.contentType)
      .send(await options.metrics.registry.metrics()),
  );
}
