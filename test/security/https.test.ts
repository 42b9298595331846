import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:tls';
import t from 'tap';
import { freePort, startTestServer } from '../helpers/server.ts';
import { makeSelfSignedCertificate } from '../helpers/tls.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(url: string, options: { method?: string; ca?: Buffer; body?: string } = {}): Promise<Answer> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      { method: options.method ?? 'GET', ...(options.ca ? { ca: options.ca } : {}) },
      (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

t.test('HTTPS with a redirect listener', async (t) => {
  const { cert, key, ca } = makeSelfSignedCertificate(t);
  const port = await freePort();
  const redirectPort = await freePort();
  const issuer = `https://127.0.0.1:${port}`;
  const server = await startTestServer(t, {
    GATEHOUSE_ISSUER: issuer,
    PORT: String(port),
    GATEHOUSE_TLS_CERT_FILE: cert,
    GATEHOUSE_TLS_KEY_FILE: key,
    GATEHOUSE_HTTP_REDIRECT_PORT: String(redirectPort),
  });

  await t.test("serves HTTPS with HSTS on every response, the provider's included", async (t) => {
    for (const path of ['/healthz', '/jwks', '/.well-known/openid-configuration', '/nope']) {
      const answer = await call(`${issuer}${path}`, { ca });
      t.match(
        answer.headers['strict-transport-security'],
        /max-age=31536000; includeSubDomains/,
        `${path}: HSTS`,
      );
    }
    const discovery = JSON.parse((await call(`${issuer}/.well-known/openid-configuration`, { ca })).body);
    t.equal(discovery.token_endpoint, `${issuer}/token`);
  });

  await t.test('refuses TLS older than 1.2', async (t) => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect(
        { host: '127.0.0.1', port, ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' },
        () => {
          socket.end();
          resolve('connected');
        },
      );
      socket.on('error', () => resolve('refused'));
    });
    t.equal(outcome, 'refused');
  });

  await t.test('cookies are Secure, HttpOnly and SameSite', async (t) => {
    const web = await server.gatehouse.clients.create(
      { name: 'web', grants: ['authorization_code'], redirect_uris: ['https://app.example.com/cb'] },
      { actor: 'test' },
    );
    const query = new URLSearchParams({
      client_id: web.client.client_id,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: 'https://app.example.com/cb',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    });
    const auth = await call(`${issuer}/auth?${query}`, { ca });
    t.equal(auth.status, 303, 'to the sign-in page');
    const cookies = (auth.headers['set-cookie'] as string[] | undefined) ?? [];
    t.ok(cookies.length >= 2, 'interaction cookies are set');
    for (const cookie of cookies) {
      t.match(cookie, /; secure/i, `${cookie.split('=')[0]}: Secure`);
      t.match(cookie, /; httponly/i, `${cookie.split('=')[0]}: HttpOnly`);
      t.match(cookie, /; samesite=(lax|strict)/i, `${cookie.split('=')[0]}: SameSite`);
    }
  });

  await t.test('plain HTTP: GET and HEAD get 308 to the same path on HTTPS; other methods 400', async (t) => {
    const get = await call(`http://127.0.0.1:${redirectPort}/.well-known/openid-configuration?x=1`);
    t.equal(get.status, 308);
    t.equal(get.headers.location, `${issuer}/.well-known/openid-configuration?x=1`);
    const head = await call(`http://127.0.0.1:${redirectPort}/jwks`, { method: 'HEAD' });
    t.equal(head.status, 308);
    t.equal(head.headers.location, `${issuer}/jwks`);
    const post = await call(`http://127.0.0.1:${redirectPort}/token`, {
      method: 'POST',
      body: 'grant_type=client_credentials',
    });
    t.equal(post.status, 400, 'no redirect that would resend a body');
    t.same(JSON.parse(post.body).error, 'https_required');
    t.equal(post.headers.location, undefined);
  });
});
