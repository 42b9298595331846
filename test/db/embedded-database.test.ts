// The embedded database: PGlite in a worker thread behind a private unix
// socket, reached with pg and Prisma, guarded by a data dir lock.
//
// Subtests share one data dir and run in order (each PGlite initdb costs
// ~5 s): the first creates the database, the later ones reopen it.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import t from 'tap';
import { acquireDataDirLock } from '../../src/db/embedded/data-dir-lock.ts';
import {
  DataDirLockedError,
  type EmbeddedDatabase,
  findRunningServer,
  openEmbeddedDatabase,
} from '../../src/db/embedded/embedded-database.ts';
import { PrismaClient } from '../../src/generated/prisma/client.ts';

const insertAndWait = fileURLToPath(new URL('./fixtures/insert-and-wait.ts', import.meta.url));

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-test-'));
t.teardown(() => fs.rm(root, { recursive: true, force: true }));
const dataDir = path.join(root, 'data');

interface Teardowns {
  teardown(fn: () => unknown): void;
}

/** Opens the database, closing it at the end of `test`; returns it with the time it took. */
async function openTimed(
  test: Teardowns,
  options: Parameters<typeof openEmbeddedDatabase>[0],
): Promise<{ db: EmbeddedDatabase; ms: number }> {
  const started = performance.now();
  const db = await openEmbeddedDatabase(options);
  const ms = Math.round(performance.now() - started);
  test.teardown(() => db.close());
  return { db, ms };
}

/** A pg pool on the database, ended before the database closes (teardowns run in reverse). */
function poolFor(test: Teardowns, db: EmbeddedDatabase, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: db.url, max });
  test.teardown(() => (pool.ending ? undefined : pool.end()));
  return pool;
}

t.test('serves pg and Prisma, refuses a second opener, keeps data across restarts', async (t) => {
  const { db, ms } = await openTimed(t, { dataDir, advertise: true });
  t.comment(`first start (initdb): ${ms} ms`);
  t.match(db.url, /^postgresql:\/\/gatehouse@localhost\/postgres\?host=%2F/);

  const pool = poolFor(t, db, 5);
  await pool.query('CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)');
  await pool.query('INSERT INTO notes (id, body) VALUES ($1, $2)', [1, 'kept across restarts']);

  // Ten queries through five connections, each with its own statement and
  // parameters: the socket server must keep each query's messages together.
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      pool.query(`SELECT $1::int AS n, $2::text AS tag /* query ${i} */`, [i, `tag-${i}`]),
    ),
  );
  t.same(
    results.map((r) => r.rows[0]),
    Array.from({ length: 10 }, (_, i) => ({ n: i, tag: `tag-${i}` })),
  );

  // A parameter this large reaches the server over several socket reads, so
  // other connections' messages arrive between its Parse and its Bind.
  const large = 'x'.repeat(256 * 1024);
  const mixed = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      i % 2
        ? pool.query(`SELECT $1::int AS n, length($2::text) AS size /* ${i} */`, [i, large])
        : pool.query(`SELECT $1::int AS n /* ${i} */`, [i]),
    ),
  );
  t.same(
    mixed.map((r) => r.rows[0]),
    Array.from({ length: 20 }, (_, i) => (i % 2 ? { n: i, size: large.length } : { n: i })),
    'queries with large parameters do not interleave',
  );

  // A transaction on one connection does not stop another connection's
  // query from completing (it waits for the commit: one shared session).
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('INSERT INTO notes (id, body) VALUES (2, $1)', ['in a transaction']);
    const other = pool.query('SELECT count(*)::int AS n FROM notes');
    const inside = await holder.query('SELECT count(*)::int AS n FROM notes');
    await holder.query('COMMIT');
    t.equal(inside.rows[0].n, 2);
    t.equal((await other).rows[0].n, 2);
  } finally {
    holder.release();
  }

  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url }) });
  t.teardown(() => prisma.$disconnect());
  t.same(await prisma.$queryRaw`SELECT body FROM notes WHERE id = ${1}`, [{ body: 'kept across restarts' }]);
  // An interactive transaction runs while a query outside it is in flight.
  const [inTransaction, outside] = await Promise.all([
    prisma.$transaction(async (tx) => {
      await tx.$executeRaw`INSERT INTO notes (id, body) VALUES (${3}, ${'from prisma'})`;
      return tx.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM notes`;
    }),
    prisma.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM notes`,
  ]);
  t.equal(inTransaction[0]?.n, 3);
  t.ok(outside[0]?.n === 2 || outside[0]?.n === 3, 'the outside query completes');

  const running = await findRunningServer(dataDir);
  t.same(running, { pid: process.pid, url: db.url }, 'advertised in server.json');

  await t.rejects(
    openEmbeddedDatabase({ dataDir }),
    new DataDirLockedError(path.resolve(dataDir), process.pid),
    'a second opener is refused',
  );
  await t.rejects(openEmbeddedDatabase({ dataDir }), {
    message: `the data dir ${path.resolve(dataDir)} is in use by another Gatehouse server (pid ${process.pid}); stop it first or set DATABASE_URL`,
  });

  await prisma.$disconnect();
  await pool.end();
  await db.close();
  t.equal(await findRunningServer(dataDir), undefined, 'no longer advertised after close');
  await t.rejects(fs.access(path.join(dataDir, 'gatehouse.lock')), 'lock released');

  const reopened = await openTimed(t, { dataDir });
  t.comment(`reopen: ${reopened.ms} ms`);
  const again = poolFor(t, reopened.db, 2);
  const { rows } = await again.query('SELECT id, body FROM notes ORDER BY id');
  t.same(rows, [
    { id: 1, body: 'kept across restarts' },
    { id: 2, body: 'in a transaction' },
    { id: 3, body: 'from prisma' },
  ]);
  t.equal(await findRunningServer(dataDir), undefined, 'not advertised unless asked');
});

t.test('a row committed before kill -9 survives, and the stale lock is taken over', async (t) => {
  const child = spawn(process.execPath, [insertAndWait, dataDir], {
    // Tap's loaders are not needed: Node strips the fixture's types itself.
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('inserted')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before inserting`)));
  });
  const advertised = await findRunningServer(dataDir);
  t.equal(advertised?.pid, child.pid, 'the child advertises its server');

  child.kill('SIGKILL');
  t.equal(await exited, null);
  t.equal(await findRunningServer(dataDir), undefined, 'a killed server is not found');

  const { db, ms } = await openTimed(t, { dataDir });
  t.comment(`reopen after kill -9 (recovery): ${ms} ms`);
  const pool = poolFor(t, db, 1);
  const { rows } = await pool.query('SELECT id, note FROM survivors');
  t.same(rows, [{ id: 1, note: 'committed before kill -9' }]);
});

t.test('a heavy query does not block the main event loop', async (t) => {
  const { db } = await openTimed(t, { dataDir });
  const pool = poolFor(t, db, 1);
  await pool.query('SELECT 1');

  let last = performance.now();
  let maxGap = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 10);
  const started = performance.now();
  try {
    await pool.query('SELECT count(*) FROM generate_series(1, 3000000)');
  } finally {
    clearInterval(ticker);
  }
  const queryMs = performance.now() - started;
  t.comment(`query ${Math.round(queryMs)} ms, largest gap between 10 ms ticks ${Math.round(maxGap)} ms`);
  t.ok(queryMs > 200, 'the query is long enough to show a stall');
  t.ok(maxGap < queryMs / 2, 'the event loop kept ticking while the query ran');
});

t.test('the data dir lock', async (t) => {
  const lockDir = path.join(root, 'lock');
  await fs.mkdir(lockDir);
  const lockFile = path.join(lockDir, 'gatehouse.lock');

  t.test('is exclusive and released', async (t) => {
    const lock = acquireDataDirLock(lockDir);
    t.match(JSON.parse(await fs.readFile(lockFile, 'utf8')), { pid: process.pid, startedAt: String });
    t.throws(() => acquireDataDirLock(lockDir), new DataDirLockedError(lockDir, process.pid));
    lock.release();
    lock.release();
    await t.rejects(fs.access(lockFile), 'the lock file is gone');
    acquireDataDirLock(lockDir).release();
  });

  t.test('takes over a lock whose process is gone', async (t) => {
    const dead = spawnSync(process.execPath, ['-e', '']);
    t.equal(dead.status, 0);
    await fs.writeFile(lockFile, JSON.stringify({ pid: dead.pid, startedAt: new Date().toISOString() }));
    const lock = acquireDataDirLock(lockDir);
    t.equal(JSON.parse(await fs.readFile(lockFile, 'utf8')).pid, process.pid);
    lock.release();

    await fs.writeFile(lockFile, '');
    acquireDataDirLock(lockDir).release();
    await t.rejects(fs.access(lockFile), 'an unreadable lock is stale too');
  });

  t.test('release leaves a lock that is no longer ours', async (t) => {
    const lock = acquireDataDirLock(lockDir);
    const other = JSON.stringify({ pid: 1, startedAt: new Date().toISOString() });
    await fs.writeFile(lockFile, other);
    lock.release();
    t.equal(await fs.readFile(lockFile, 'utf8'), other);
    t.throws(() => acquireDataDirLock(lockDir), { name: 'DataDirLockedError', pid: 1 });
    await fs.rm(lockFile);
  });
});
