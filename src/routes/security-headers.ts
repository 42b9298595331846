// Headers every response carries, the provider's included: set on the raw
// response in onRequest, because onSend and reply.header() never reach
// responses that oidc-provider writes itself. Pages add their own CSP.
import type { FastifyInstance } from 'fastify';

export function registerSecurityHeaders(app: FastifyInstance, issuer: string, servesTls = false): void {
  // With TLS here, or behind a TLS proxy (an https issuer), every response says "HTTPS only".
  const hsts = servesTls || new URL(issuer).protocol === 'https:';
  app.addHook('onRequest', (_request, reply, done) => {
    const res = reply.raw;
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Content-Security-Policy', "frame-ancestors 'none'");
    // One year, as HSTS preload lists require; only meaningful over https.
    if (hsts) res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    done();
  });
}
