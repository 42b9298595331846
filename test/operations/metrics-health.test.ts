// /metrics in Prometheus text format, and /readyz following the database.
import pg from 'pg';
import t from 'tap';
import { createTestDatabase, testServerUrl } from '../helpers/database.ts';
import { startTestServer } from '../helpers/server.ts';

const API = 'https://api.example.com';

t.test('/metrics counts requests, tokens, sign-in failures and rate-limit refusals', async (t) => {
  const server = await startTestServer(t, { GATEHOUSE_RATE_LIMITS: 'token=3/60s' });
  const { issuer, gatehouse } = server;
  const svc = await gatehouse.clients.create(
    { name: 'svc', grants: ['client_credentials'], resources: [API] },
    { actor: 'test' },
  );
  const auth = `Basic ${Buffer.from(`${svc.client.client_id}:${svc.client_secret}`).toString('base64')}`;
  const token = () =>
    fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
  const scrape = async () => (await fetch(`${issuer}/metrics`)).text();
  t.equal((await token()).status, 200);
  t.equal((await token()).status, 200);
  // Counts are handed to prom-client when scraped: each scrape must add only what is new.
  t.match(await scrape(), /gatehouse_http_requests_total\{route="\/token",method="POST",status="200"\} 2/);
  t.equal((await token()).status, 200);
  t.equal((await token()).status, 429);
  await gatehouse.users.authenticate('nobody@example.com', 'wrong password here');
  await gatehouse.audit.record({
    type: 'login.failure',
    actor: 'anonymous',
    details: { reason: 'unknown_user' },
  });

  const response = await fetch(`${issuer}/metrics`);
  t.equal(response.status, 200);
  t.match(response.headers.get('content-type') ?? '', /text\/plain/);
  const text = await response.text();
  t.match(
    text,
    new RegExp(
      `gatehouse_tokens_issued_total\\{grant_type="client_credentials",client_id="${svc.client.client_id}"\\} 3`,
    ),
  );
  t.match(text, /gatehouse_http_requests_total\{route="\/token",method="POST",status="200"\} 3/);
  t.match(text, /gatehouse_http_requests_total\{route="\/metrics",method="GET",status="200"\} 1/);
  t.match(text, /gatehouse_http_requests_total\{route="\/token",method="POST",status="429"\} 1/);
  t.match(text, /gatehouse_http_request_duration_seconds_bucket\{le="0.1",route="\/token",method="POST"\}/);
  t.match(text, /gatehouse_rate_limited_total\{limit="token"\} 1/);
  t.match(text, /gatehouse_sign_ins_total\{result="failure"\} 1/);
  t.match(text, /gatehouse_db_pool_max \d+/);
  t.match(text, /gatehouse_process_resident_memory_bytes \d+/);
  t.notMatch(text, new RegExp(svc.client_secret!), 'no secret in the metrics');
});

t.test('/readyz answers 503 when the database is gone; /healthz stays up', async (t) => {
  const serverUrl = testServerUrl();
  if (!serverUrl) {
    // The embedded database cannot be taken away from under a running server.
    t.pass('runs against PostgreSQL (CI)');
    return;
  }
  const databaseUrl = await createTestDatabase(t);
  const server = await startTestServer(t, {}, { databaseUrl });
  t.equal((await fetch(`${server.issuer}/readyz`)).status, 200);
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE "${new URL(databaseUrl).pathname.slice(1)}" WITH (FORCE)`);
  await admin.end();
  const ready = await fetch(`${server.issuer}/readyz`);
  t.equal(ready.status, 503);
  t.same(await ready.json(), { status: 'unavailable', reason: 'database unreachable' });
  t.equal((await fetch(`${server.issuer}/healthz`)).status, 200, 'the process is alive');
});

t.test('/readyz answers 503 while a migration is not applied', async (t) => {
  if (!testServerUrl()) {
    // The embedded database's migration table is not reachable from outside the server.
    t.pass('runs against PostgreSQL (CI)');
    return;
  }
  const databaseUrl = await createTestDatabase(t);
  const server = await startTestServer(t, {}, { databaseUrl });
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  t.teardown(() => db.end());
  // The newest migration's record renamed away before readiness is first asked
  // (a server stops asking once all are applied): as if it had shipped but not run.
  await db.query(
    `UPDATE _prisma_migrations SET migration_name = migration_name || '~'
      WHERE migration_name = (SELECT max(migration_name) FROM _prisma_migrations)`,
  );
  const ready = await fetch(`${server.issuer}/readyz`);
  t.equal(ready.status, 503);
  t.same(await ready.json(), { status: 'unavailable', reason: '1 migration(s) not applied' });
  await db.query(`UPDATE _prisma_migrations SET migration_name = rtrim(migration_name, '~')`);
  t.equal((await fetch(`${server.issuer}/readyz`)).status, 200, 'ready once it is applied');
});
