// The library's ceiling: bare oidc-provider 9 with its default in-memory
// adapter, one static client and an ES256 key, issuing the same JWT access
// tokens for client credentials as Gatehouse does. Run as a child process by
// bench/run.ts: `node bench/ceiling.ts <client_id> <client_secret>`; it listens
// on a free loopback port and prints one line, `{"port":N}`, when ready.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import Provider, { type Configuration } from 'oidc-provider';

const RESOURCE = 'https://api.example.com';
const [clientId, clientSecret] = process.argv.slice(2);
if (!clientId || !clientSecret) {
  process.stderr.write('usage: node bench/ceiling.ts <client_id> <client_secret>\n');
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

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  // The issuer must be known before the provider is built; the port is only known now.
  const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
