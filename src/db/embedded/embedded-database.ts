// The embedded database: PGlite (PostgreSQL compiled to WASM) kept under the
// data dir and served on a private unix socket, so that pg, Prisma and the
// SQL migrations run on it exactly as on a real PostgreSQL.
//
// PGlite runs in a worker thread (see pglite-host.mjs) so that its
// synchronous work never stalls the main event loop. A server started with
// `advertise` writes its socket to <dataDir>/server.json so that other
// `gatehouse` commands reach the database through it instead of opening the
// data dir themselves, which the data dir lock would refuse.
//
// Every socket connection shares PGlite's single backend session: the socket
// server runs one query at a time and serves only the connection that holds an
// open transaction until it ends. Code that, inside a transaction, waits for
// another connection's query hangs; advisory locks and LISTEN/NOTIFY do not
// work across connections.
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { acquireDataDirLock, type DataDirLock, isProcessAlive } from './data-dir-lock.ts';

export { DataDirLockedError } from './data-dir-lock.ts';

export const SERVER_FILE_NAME = 'server.json';
/** Where PGlite keeps its files inside the data dir. */
export const PGDATA_DIR_NAME = 'pgdata';
/** libpq's socket file name for port 5432, so `host=<socketDir>` finds it. */
const SOCKET_FILE_NAME = '.s.PGSQL.5432';
const SOCKET_DIR_PREFIX = 'gatehouse-';
/** mkdtemp appends six characters to the prefix. */
const SOCKET_DIR_PATTERN = /^gatehouse-[A-Za-z0-9]{6}$/;
/** First start runs initdb: 4–5 s on an idle two-core machine, 10–15 s on a busy one. */
const READY_TIMEOUT_MS = 60_000;
/** Stopping includes a checkpoint; beyond this the worker is terminated. */
const CLOSE_TIMEOUT_MS = 15_000;
/** An advertised server that cannot answer SELECT 1 this fast is treated as gone. */
const PROBE_TIMEOUT_MS = 2_000;

export interface EmbeddedDatabase {
  /** Connection string for pg and @prisma/adapter-pg (unix socket, no password). */
  readonly url: string;
  /** Stops the database cleanly. End every pool using `url` first. Idempotent. */
  close(): Promise<void>;
}

export interface OpenEmbeddedDatabaseOptions {
  /** Directory holding the database (in `pgdata/`), its lock and server.json. Required unless inMemory. */
  dataDir?: string;
  /**
   * Socket connections accepted at once; must exceed the pool size of every
   * client together (20: a pool of 10 plus room for CLI commands and probes).
   */
  maxConnections?: number;
  /** Write server.json so other processes use this server. */
  advertise?: boolean;
  /** Keep the database in memory (tests): no data dir, no lock. */
  inMemory?: boolean;
}

export interface RunningServer {
  pid: number;
  url: string;
}

interface ServerFile {
  pid: number;
  socketDir: string;
}

type HostMessage = { type: 'ready' } | { type: 'closed' } | { type: 'error'; message: string };

/** The connection string node-postgres and Prisma's pg adapter understand for a socket directory. */
export function socketUrl(socketDir: string): string {
  return `postgresql://gatehouse@localhost/postgres?host=${encodeURIComponent(socketDir)}`;
}

export async function openEmbeddedDatabase(options: OpenEmbeddedDatabaseOptions): Promise<EmbeddedDatabase> {
  const { maxConnections = 20, advertise = false, inMemory = false } = options;
  if (!inMemory && !options.dataDir) {
    throw new Error('openEmbeddedDatabase needs a dataDir (or inMemory: true)');
  }
  if (inMemory && advertise) throw new Error('an in-memory embedded database cannot be advertised');
  const dataDir = inMemory ? undefined : path.resolve(options.dataDir!);

  let lock: DataDirLock | undefined;
  let socketDir: string | undefined;
  let worker: Worker | undefined;
  // A process that exits without close() (process.exit, an uncaught error)
  // still leaves no socket directory or server.json behind; kill -9 does,
  // and the next open clears them.
  const removeOnExit = (): void => {
    if (socketDir) fsSync.rmSync(socketDir, { recursive: true, force: true });
    if (advertise && dataDir) removeServerFileSync(dataDir);
  };
  try {
    if (dataDir) {
      await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
      lock = acquireDataDirLock(dataDir);
      // We hold the lock, so no server is running here: a server.json is left
      // over from one that was killed.
      await removeStaleServerFile(dataDir);
    }
    // PGlite has no authentication: whoever reaches the socket owns the
    // database, so it lives in a directory only we may enter. The temporary
    // directory keeps the path short: unix socket paths are limited to ~107
    // bytes and the data dir may be deep.
    socketDir = await fs.mkdtemp(path.join(os.tmpdir(), SOCKET_DIR_PREFIX));
    await fs.chmod(socketDir, 0o700);
    process.on('exit', removeOnExit);

    worker = new Worker(new URL('./pglite-host.mjs', import.meta.url), {
      workerData: {
        dataDir: dataDir ? path.join(dataDir, PGDATA_DIR_NAME) : undefined,
        socketPath: path.join(socketDir, SOCKET_FILE_NAME),
        maxConnections,
      },
    });
    await waitForReady(worker, dataDir ?? 'in memory');

    if (advertise && dataDir) await writeServerFile(dataDir, { pid: process.pid, socketDir });
  } catch (error) {
    if (worker) await worker.terminate();
    process.off('exit', removeOnExit);
    if (socketDir) await fs.rm(socketDir, { recursive: true, force: true });
    lock?.release();
    throw error;
  }

  // From here on the worker's 'error' event has no listener: if PGlite dies
  // under a running server, the process fails loudly with PGlite's error
  // rather than answering every later query with a connection error.
  const startedWorker = worker;
  const startedSocketDir = socketDir;
  let closing: Promise<void> | undefined;
  return {
    url: socketUrl(socketDir),
    close() {
      closing ??= (async () => {
        try {
          if (advertise && dataDir) await removeServerFile(dataDir);
          await stopWorker(startedWorker);
        } finally {
          process.off('exit', removeOnExit);
          await fs.rm(startedSocketDir, { recursive: true, force: true });
          lock?.release();
        }
      })();
      return closing;
    },
  };
}

/**
 * The embedded server another process runs on this data dir, if one is
 * advertised there and answers; undefined otherwise (none, killed, hung).
 */
export async function findRunningServer(dataDir: string): Promise<RunningServer | undefined> {
  const server = await readServerFile(path.resolve(dataDir));
  if (!server || !isProcessAlive(server.pid)) return undefined;
  const url = socketUrl(server.socketDir);
  return (await answersQueries(url)) ? { pid: server.pid, url } : undefined;
}

function waitForReady(worker: Worker, where: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (reason: string): void => {
      cleanUp();
      reject(new Error(`the embedded database (${where}) failed to start: ${reason}`));
    };
    const onMessage = (message: HostMessage): void => {
      if (message.type === 'ready') {
        cleanUp();
        resolve();
      } else if (message.type === 'error') {
        fail(message.message);
      }
    };
    const onError = (error: Error): void => fail(error.message);
    const onExit = (code: number): void => fail(`its worker exited with code ${code}`);
    const timer = setTimeout(() => fail(`not ready after ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS);
    const cleanUp = (): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

/** Asks the worker to stop the socket server and close PGlite; terminates it if that takes too long. */
async function stopWorker(worker: Worker): Promise<void> {
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const stopped = new Promise<void>((resolve, reject) => {
    worker.on('message', (message: HostMessage) => {
      if (message.type === 'closed') resolve();
      else if (message.type === 'error')
        reject(new Error(`closing the embedded database: ${message.message}`));
    });
    // An already-dead worker has nothing left to close.
    void exited.then(() => resolve());
  });
  // A crash while closing must not go unhandled; it is reported as a failed close.
  worker.on('error', () => {});
  worker.postMessage({ type: 'close' });

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), CLOSE_TIMEOUT_MS);
  });
  try {
    const outcome = await Promise.race([stopped, timedOut]);
    if (outcome === 'timeout') {
      await worker.terminate();
      throw new Error(`the embedded database did not close within ${CLOSE_TIMEOUT_MS / 1000} s; stopped it`);
    }
  } catch (error) {
    await worker.terminate();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  // The worker exits on its own once PGlite is closed; terminate only a straggler.
  if ((await Promise.race([exited.then(() => 'exited'), delay(2_000)])) !== 'exited')
    await worker.terminate();
}

async function answersQueries(url: string): Promise<boolean> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: PROBE_TIMEOUT_MS,
    query_timeout: PROBE_TIMEOUT_MS,
  });
  // A server that dies mid-probe emits 'error' on the client; the probe's own
  // promise already reports the failure.
  client.on('error', () => {});
  const probe = (async () => {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  })().catch(() => false);
  const answered = await Promise.race([probe, delay(PROBE_TIMEOUT_MS).then(() => false)]);
  void client.end().catch(() => {});
  return answered;
}

async function readServerFile(dataDir: string): Promise<ServerFile | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(path.join(dataDir, SERVER_FILE_NAME), 'utf8'));
  } catch {
    return undefined;
  }
  return parseServerFile(parsed);
}

function parseServerFile(parsed: unknown): ServerFile | undefined {
  const { pid, socketDir } = (parsed ?? {}) as Partial<ServerFile>;
  if (typeof pid !== 'number' || typeof socketDir !== 'string') return undefined;
  return { pid, socketDir };
}

async function writeServerFile(dataDir: string, server: ServerFile): Promise<void> {
  // Written whole then renamed, so a reader never sees half a file.
  const target = path.join(dataDir, SERVER_FILE_NAME);
  const draft = `${target}.${process.pid}`;
  await fs.writeFile(draft, `${JSON.stringify(server)}\n`, { mode: 0o600 });
  await fs.rename(draft, target);
}

/** Removes a killed server's server.json and the socket directory it names. */
async function removeStaleServerFile(dataDir: string): Promise<void> {
  const stale = await readServerFile(dataDir);
  // Only a directory that has the shape of one we made: server.json is ours,
  // but a recursive delete deserves care.
  if (
    stale &&
    path.dirname(stale.socketDir) === os.tmpdir() &&
    SOCKET_DIR_PATTERN.test(path.basename(stale.socketDir))
  ) {
    await fs.rm(stale.socketDir, { recursive: true, force: true });
  }
  await fs.rm(path.join(dataDir, SERVER_FILE_NAME), { force: true });
}

/** Removes server.json if this process wrote it. */
async function removeServerFile(dataDir: string): Promise<void> {
  const server = await readServerFile(dataDir);
  if (server?.pid === process.pid) await fs.rm(path.join(dataDir, SERVER_FILE_NAME), { force: true });
}

/** removeServerFile for 'exit' handlers, which must be synchronous. */
function removeServerFileSync(dataDir: string): void {
  const target = path.join(dataDir, SERVER_FILE_NAME);
  try {
    if (parseServerFile(JSON.parse(fsSync.readFileSync(target, 'utf8')))?.pid === process.pid) {
      fsSync.rmSync(target, { force: true });
    }
  } catch {
    // No server.json, or not one we wrote.
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
