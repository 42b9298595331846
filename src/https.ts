// HTTPS served directly: the TLS options for Fastify, and the plain-HTTP
// listener that sends browsers to HTTPS. Only GET and HEAD are redirected
// (308); any other method gets 400, because following a redirect would resend
// a body (a password, a client secret) that has already crossed in clear.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { ConfigError } from './config.ts';

export function readTlsOptions(tls: { certFile: string; keyFile: string }) {
  const read = (file: string, name: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ConfigError(
        `${name} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}): ${file}`,
      );
    }
  };
  return {
    cert: read(tls.certFile, 'GATEHOUSE_TLS_CERT_FILE'),
    key: read(tls.keyFile, 'GATEHOUSE_TLS_KEY_FILE'),
    minVersion: 'TLSv1.2' as const,
  };
}

/** Listens on `port` and answers every request with the way to the HTTPS issuer. */
export async function startHttpRedirect(issuer: string, host: string, port: number): Promise<Server> {
  const target = new URL(issuer);
  const server = createServer((req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    if (req.method === 'GET' || req.method === 'HEAD') {
      // Path and query only: the host is always the issuer's, never the request's.
      const path = (req.url ?? '/').startsWith('/') ? (req.url ?? '/') : '/';
      res.writeHead(308, { Location: `${target.origin}${path}` });
      res.end();
      return;
    }
    res.writeHead(400, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ error: 'https_required', message: `use ${target.origin}` }));
  });
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
