// Hosts PGlite and its socket server inside a worker_threads Worker.
//
// PGlite runs PostgreSQL compiled to WASM synchronously on the thread that
// hosts it: a one-second query would freeze the whole event loop for a second.
// Hosted here, only this worker's thread stalls; the main thread keeps serving
// requests and talks to the database over a unix socket like to any
// PostgreSQL. Plain JavaScript because a Worker is started from a file path.
//
// workerData: { dataDir?: string (absent: in memory), socketPath: string,
//               maxConnections: number }
// Messages to the parent: {type:'ready'} | {type:'error', message} |
//                         {type:'closed'}
// Messages from the parent: {type:'close'}
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/** @type {{dataDir?: string, socketPath: string, maxConnections: number}} */
const options = workerData;

/** @type {PGlite | undefined} */
let db;
/** @type {PGLiteSocketServer | undefined} */
let server;
let closing = false;

function describe(error) {
  return error instanceof Error ? error.message : String(error);
}

// PostgreSQL wire-protocol message types (the first byte of a message).
const EXTENDED_QUERY_MESSAGES = new Set(['P', 'B', 'D', 'E', 'C', 'H'].map((c) => c.charCodeAt(0)));
const SYNC = 'S'.charCodeAt(0);
const QUERY = 'Q'.charCodeAt(0);
const SYNC_MESSAGE = new Uint8Array([SYNC, 0, 0, 0, 4]);

/**
 * The database as the socket server sees it: PGlite, except that an
 * extended-query sequence (Parse, Bind, Describe, Execute... up to Sync) counts
 * as a transaction.
 *
 * Every socket connection shares PGlite's one backend session, and the socket
 * server queues single messages, not whole queries. Only an open transaction
 * makes it serve one connection exclusively. Without this, a query whose Bind
 * arrives in a later socket read than its Parse (a large parameter is enough)
 * lets another connection's Parse replace the session's unnamed statement:
 * "unnamed prepared statement does not exist", or a Bind against the wrong
 * statement. Reporting the open sequence as a transaction keeps each query's
 * messages together.
 *
 * The server uses only these members of PGlite (pglite-socket 0.2.17).
 */
function withWholeQueries(pglite) {
  let sequenceOpen = false;
  return {
    get waitReady() {
      return pglite.waitReady;
    },
    isInTransaction: () => sequenceOpen || pglite.isInTransaction(),
    runExclusive: (fn) => pglite.runExclusive(fn),
    execProtocolRawStream: async (message, options) => {
      const type = message[0];
      if (EXTENDED_QUERY_MESSAGES.has(type)) sequenceOpen = true;
      else if (type === SYNC || type === QUERY) sequenceOpen = false;
      return pglite.execProtocolRawStream(message, options);
    },
    // The server calls exec('ROLLBACK') when a connection that holds the
    // session closes. If it left a sequence open, a Sync ends it first (after
    // an error PostgreSQL ignores everything until Sync); then roll back only
    // a real transaction, so no "no transaction in progress" warning is sent.
    exec: async (sql) => {
      if (sql !== 'ROLLBACK') return pglite.exec(sql);
      await pglite.runExclusive(async () => {
        if (!sequenceOpen) return;
        sequenceOpen = false;
        await pglite.execProtocolRaw(SYNC_MESSAGE);
      });
      if (pglite.isInTransaction()) return pglite.exec('ROLLBACK');
      return [];
    },
  };
}

async function start() {
  try {
    // A plain path selects PGlite's Node filesystem; none keeps it in memory.
    db = options.dataDir ? await PGlite.create(options.dataDir) : await PGlite.create();
    server = new PGLiteSocketServer({
      db: withWholeQueries(db),
      path: options.socketPath,
      maxConnections: options.maxConnections,
    });
    await server.start();
    parentPort?.postMessage({ type: 'ready' });
  } catch (error) {
    parentPort?.postMessage({ type: 'error', message: describe(error) });
    await shutDown().catch(() => {});
  }
}

async function shutDown() {
  if (server) {
    await server.stop();
    server = undefined;
  }
  if (db && !db.closed) {
    // An explicit checkpoint writes every dirty page to the data files, so
    // the next start need not replay the WAL; close() then shuts PostgreSQL
    // down and flushes the filesystem.
    await db.exec('CHECKPOINT').catch(() => {});
    await db.close();
  }
  db = undefined;
}

parentPort?.on('message', async (message) => {
  if (message?.type !== 'close' || closing) return;
  closing = true;
  try {
    await shutDown();
    parentPort?.postMessage({ type: 'closed' });
  } catch (error) {
    parentPort?.postMessage({ type: 'error', message: describe(error) });
  }
  // Nothing else may keep this worker alive once the database is closed.
  parentPort?.close();
});

await start();
