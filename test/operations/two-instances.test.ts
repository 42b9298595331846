// Two real `gatehouse serve` processes on one database and one Redis behave as
// one server: they migrate once when started together, a sign-in in Chromium
// whose pages are served alternately by both completes, a token issued by one
// is introspected, refreshed and revoked at the other, and their rate limits
// count together. A round-robin proxy in front plays the load balancer, so the
// issuer is one address for both.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import * as oidc from 'openid-client';
import pg from 'pg';
import t from 'tap';
import { launchBrowser, startCallbackServer } from '../helpers/browser.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { freePort } from '../helpers/server.ts';
import { discover } from '../helpers/sign-in.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'gatehouse.js');
const PASSWORD = 'correct horse battery staple';

function serve(
  env: Record<string, string>,
): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Gatehouse is serving')) resolve({ child, exited });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    exited.then((code) => reject(new Error(`serve exited with ${code}: ${output}`)));
  });
}

t.test('two instances behind one load balancer', async (t) => {
  if (!process.env.TEST_DATABASE_URL) {
    // The embedded database is one process by design (it refuses a second server).
    t.pass('several instances need PostgreSQL (CI sets TEST_DATABASE_URL)');
    return;
  }
  const databaseUrl = await createTestDatabase(t);
  const [lbPort, portA, portB] = [await freePort(), await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${lbPort}`;
  const shared = {
    DATABASE_URL: databaseUrl,
    GATEHOUSE_ISSUER: issuer,
    GATEHOUSE_ENCRYPTION_KEY: Buffer.alloc(32, 5).toString('base64'),
    GATEHOUSE_COOKIE_KEYS: 'two-instances-cookie-key-0123456789abcdef',
    GATEHOUSE_RATE_LIMITS: 'token=100000/60s,login=100000/60s,login_ip=100000/60s,admin=100000/60s',
    // The counters are kept per issuer, and this issuer's port is this run's alone.
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
  // Started together on an empty database: the advisory lock lets one migrate.
  const [a, b] = await Promise.all([
    serve({ ...shared, PORT: String(portA) }),
    serve({ ...shared, PORT: String(portB) }),
  ]);
  t.teardown(() => {
    for (const instance of [a, b]) if (instance.child.exitCode === null) instance.child.kill('SIGKILL');
  });

  const served: number[] = [];
  let next = 0;
  const balancer = createServer((req, res) => {
    const port = [portA, portB][next++ % 2]!;
    served.push(port);
    const upstream = request(
      { host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => balancer.listen(lbPort, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => balancer.close(() => resolve())));

  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query(
    'SELECT migration_name, count(*)::int AS n FROM _prisma_migrations GROUP BY 1',
  );
  await client.end();
  t.ok(rows.length > 0 && rows.every((row) => row.n === 1), 'each migration applied exactly once');

  const callback = await startCallbackServer(t);
  const env = { DATABASE_URL: databaseUrl, GATEHOUSE_ENCRYPTION_KEY: shared.GATEHOUSE_ENCRYPTION_KEY };
  const user = await runCli(
    ['user', 'create', '--email', 'mo@example.com', '--password-stdin', '--json'],
    env,
    `${PASSWORD}\n`,
  );
  t.equal(user.code, 0, user.stderr);
  const created = await runCli(
    [
      'client',
      'create',
      '--name',
      'web',
      '--grant',
      'authorization_code',
      '--grant',
      'refresh_token',
      '--redirect-uri',
      callback.redirectUri,
      '--scope',
      'openid offline_access',
      '--introspection',
      '--json',
    ],
    env,
  );
  const { client_id, client_secret } = JSON.parse(created.stdout);

  const config = await discover(issuer, client_id, client_secret);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const authorizationUrl = oidc.buildAuthorizationUrl(config, {
    redirect_uri: callback.redirectUri,
    scope: 'openid offline_access',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    prompt: 'consent',
  });
  const browser = await launchBrowser(t);
  const context = await browser.newContext();
  t.teardown(() => context.close());
  const page = await context.newPage();
  served.length = 0;
  await page.goto(authorizationUrl.href);
  await page.getByLabel('Email', { exact: true }).fill('mo@example.com');
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Allow access?' }).waitFor();
  const callbackRequest = page.waitForRequest((request) =>
    request.url().startsWith(`${callback.redirectUri}?`),
  );
  await page.locator('button[type="submit"]').first().click();
  const redirected = new URL((await callbackRequest).url());
  t.ok(served.includes(portA) && served.includes(portB), 'the sign-in pages were served by both instances');
  const tokens = await oidc.authorizationCodeGrant(config, redirected, {
    pkceCodeVerifier: verifier,
    expectedState: state,
  });
  t.ok(tokens.refresh_token, 'and it completed');

  const direct = (port: number, path: string, form: Record<string, string>) =>
    fetch(`http://127.0.0.1:${port}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client_id}:${client_secret}`).toString('base64')}`,
      },
      body: new URLSearchParams(form),
    });
  // One Redis: each request counts against the same token-endpoint limits,
  // whichever instance answers it.
  const remaining: number[] = [];
  for (const port of [portA, portB, portA]) {
    const response = await direct(port, '/token/introspection', { token: tokens.refresh_token! });
    remaining.push(Number(response.headers.get('ratelimit-remaining')));
    t.equal((await response.json()).active, true, `introspected at ${port === portA ? 'A' : 'B'}`);
  }
  t.same(
    remaining.slice(1),
    [remaining[0]! - 1, remaining[0]! - 2],
    'the rate-limit counts are shared between the instances',
  );
  const refreshed = await direct(portB, '/token', {
    grant_type: 'refresh_token',
    refresh_token: tokens.refresh_token!,
  });
  t.equal(refreshed.status, 200, 'refreshed at B');
  const { refresh_token: rotated } = await refreshed.json();
  t.equal((await direct(portA, '/token/revocation', { token: rotated })).status, 200, 'revoked at A');
  const after = await (await direct(portB, '/token/introspection', { token: rotated })).json();
  t.equal(after.active, false, 'and inactive at B');

  a.child.kill('SIGTERM');
  b.child.kill('SIGTERM');
  t.same(await Promise.all([a.exited, b.exited]), [0, 0], 'both shut down cleanly');
});
