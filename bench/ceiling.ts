// The library's ceiling: bare oidc-provider 9 with its default in-memory
// adapter, one static client and an ES256 key, issuing the same JWT access
// tokens for client credentials as Gatehouse does. Run as a child process by
// bench/run.ts: `node bench/ceiling.ts <client_id> <client_secret> [node|fastify]`;
// it listens on a free loopback port and prints one line, `{"port":N}`, when ready.
//
// `node` (the ceiling) serves the provider from node:http. `fastify` mounts the
// same provider in Fastify the way Gatehouse does (src/oidc/mount.ts: an
// onRequest hook that hands the raw request over with reply.hijack()), so the
// benchmark can tell what hosting costs apart from what Gatehouse's own work does.
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import Fastify from 'fastify';
import Provider, { type Configuration } from 'oidc-provider';

const RESOURCE = 'https://api.example.com';
const [clientId, clientSecret, host = 'node'] = process.argv.slice(2);
if (!clientId || !clientSecret || (host !== 'node' && host !== 'fastify')) {
  process.stderr.write('usage: node bench/ceiling.ts <client_id> <client_secret> [node|fastify]\n');
  process.exit(2);
}

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'ceiling-es256', alg: 'ES256', use: 'sig' };

const configuration: Configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      // The only key is ES256; the library's default (RS256) would refuse the client.
      id_token_signed_response_alg: 'ES256',
    },
  ],
  // Gatehouse's default access-token lifetime (GATEHOUSE_ACCESS_TOKEN_TTL), so both sign the same claims.
  ttl: { ClientCredentials: 600 },
  jwks: { keys: [jwk as NonNullable<Configuration['jwks']>['keys'][number]] },
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      getResourceServerInfo: () => ({
        scope: 'api:read',
        audience: RESOURCE,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
};

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
// The issuer must be known before the provider is built; the port is only known once listening.
let handle: Handler | undefined;
const start = (port: number) => {
  handle = new Provider(`http://127.0.0.1:${port}`, configuration).callback() as unknown as Handler;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
};
let close: () => Promise<unknown>;

if (host === 'node') {
  const server = createServer((req, res) => handle!(req, res));
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    start(typeof address === 'object' && address ? address.port : 0);
  });
  close = () => new Promise((resolve) => server.close(resolve));
} else {
  const app = Fastify({ logger: false });
  app.addHook('onRequest', (request, reply) => {
    reply.hijack();
    handle!(request.raw, reply.raw);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  start(typeof address === 'object' && address ? address.port : 0);
  close = () => app.close();
}

const stop = () => void close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
