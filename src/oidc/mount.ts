// Hands oidc-provider the requests for its own paths. It runs as an onRequest
// hook registered after Gatehouse's other onRequest hooks (security headers,
// rate limits), so those run on the provider's responses too; Fastify's request
// logging sees them as well. Everything else continues through Fastify.
import type { FastifyInstance } from 'fastify';
import { isProviderPath } from './provider.ts';
import type { ProviderHost } from './provider-host.ts';

export function mountProvider(app: FastifyInstance, host: ProviderHost, issuer: string): void {
  const issuerUrl = new URL(issuer);
  // Read once: URL's getters build a new string on every read.
  const issuerHost = issuerUrl.host;
  const scheme = issuerUrl.protocol.slice(0, -1);

  app.addHook('onRequest', (request, reply, done) => {
    // The issuer is configuration, never the request's Host (BR-9): pin what
    // the provider derives URLs, cookie security and the client IP from, on
    // every request (the sign-in pages use the provider's cookies too).
    // request.ip is read first, under Fastify's trust-proxy rules.
    const headers = request.raw.headers;
    headers['x-forwarded-for'] = request.ip;
    headers.host = issuerHost;
    headers['x-forwarded-host'] = issuerHost;
    headers['x-forwarded-proto'] = scheme;
    // Deleting a property turns the headers object into a slow dictionary for
    // every later header read (Koa and the provider read dozens): only when present.
    if (headers.forwarded !== undefined) delete headers.forwarded;
    if (!isProviderPath(pathOf(request.url))) {
      done();
      return;
    }
    reply.hijack();
    host.handle(request.raw, reply.raw).catch((error: unknown) => {
      request.log.error({ err: error }, 'oidc-provider failed to handle a request');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
        reply.raw.end(JSON.stringify({ error: 'server_error', error_description: 'internal server error' }));
      }
    });
  });
}

export function pathOf(url: string): string {
  const index = url.indexOf('?');
  return index === -1 ? url : url.slice(0, index);
}
