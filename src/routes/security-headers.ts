// Headers every response carries, the provider's included: set on the raw
// response in onRequest, because onSend and reply.header() never reach
// responses that oidc-provider writes itself. Pages add their own CSP.
import type { FastifyInstance } from 'fastify';

export function registerSecurityHeaders(app: FastifyInstance, issuer: string, servesTls = false): void {
  // With TLS here, or behind a TLS proxy (an https issuer), every response says "HTTPS only".
  const hsts = servesTls || new URL(issuer).protocol === 'https:';
  // Names in lower case, as Node keys them: it lower-cases (and so copies) any other name on every call.
  app.addHook('onRequest', (_request, reply, done) => {
    const res = reply.raw;
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('x-frame-options', 'DENY');
    res.setHeader('referrer-policy', 'no-referrer');
    res.setHeader('content-security-policy', "frame-ancestors 'none'");
    // One year, as HSTS preload lists require; only meaningful over https.
    if (hsts) res.setHeader('strict-transport-security', 'max-age=31536000; includeSubDomains');
    done();
  });
}
