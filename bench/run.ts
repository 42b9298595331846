// `npm run bench`: starts Gatehouse on a fresh PostgreSQL database (created
// here, dropped at the end) and bare oidc-provider (bench/ceiling.ts), both as
// child processes on loopback, loads them with autocannon for bounded
// durations and prints one table. Exits non-zero only when the benchmark
// itself cannot run; a missed target is printed as MISSED.
//
// The Gatehouse/ceiling ratio comes from many rounds of short runs, each server
// alone and the order alternating, after one long warm-up of each: the speed of
// this shared machine drifts from second to second (10 s runs of the same two
// servers gave ratios from 0.69 to 1.09), so each round compares runs a few
// seconds apart, and the median of the rounds' ratios is the figure, printed with
// the spread of the middle half of the rounds. A third server, the same library
// mounted in Fastify as Gatehouse mounts it, tells what hosting costs apart from
// what Gatehouse's own work per token does.
//
// Settings (environment): BENCH_SECONDS (10, per scenario), BENCH_WARMUP_SECONDS
// (5), BENCH_RATIO_WARMUP_SECONDS (20, once for each server before the rounds),
// BENCH_RATIO_ROUNDS (24), BENCH_RATIO_RUN_SECONDS (3, each run of a round), BENCH_ONLY
// (`ratio`: only the Gatehouse/ceiling comparison), BENCH_CONNECTIONS (10), BENCH_SIGN_IN_CONCURRENCY (4), BENCH_SIGN_IN_RATE
// (10 per second, beside the token load), BENCH_TOKENS (100000, for the memory
// check), BENCH_TOKENS_MAX_SECONDS (180, a cap on that run),
// BENCH_POSTGRES_URL (postgresql://postgres@127.0.0.1:5432/postgres; loopback
// only), BENCH_CPU_PROF (a directory: profile the Gatehouse process there).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { SERVE_NODE_FLAGS } from '../src/cli/node-flags.ts';
import { basicAuth, type FlowStats, type FlowTarget, runClosedLoop, signInOnce } from './flows.ts';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'gatehouse.js');

const SECONDS = setting('BENCH_SECONDS', 10);
// 5 s: after 2 s the first runs still measured V8 compiling the hot paths (on
// 2026-12-04 Gatehouse's first run gave 2846 req/s, a later one 3902).
const WARMUP_SECONDS = setting('BENCH_WARMUP_SECONDS', 5, 0);
const RATIO_ROUNDS = Math.round(setting('BENCH_RATIO_ROUNDS', 24, 1));
const RATIO_RUN_SECONDS = setting('BENCH_RATIO_RUN_SECONDS', 3, 1);
const RATIO_WARMUP_SECONDS = setting('BENCH_RATIO_WARMUP_SECONDS', 20, 0);
/** The first half second of each short run is not counted: connections open, caches refill after the other server ran. */
const RATIO_SETTLE_MS = 500;
const ONLY = process.env.BENCH_ONLY || undefined;
if (ONLY !== undefined && ONLY !== 'ratio') throw new Error('BENCH_ONLY must be `ratio` or unset');
const CONNECTIONS = Math.round(setting('BENCH_CONNECTIONS', 10));
const SIGN_IN_CONCURRENCY = Math.round(setting('BENCH_SIGN_IN_CONCURRENCY', 4));
const SIGN_IN_RATE = setting('BENCH_SIGN_IN_RATE', 10);
const TOKENS = Math.round(setting('BENCH_TOKENS', 100_000));
const TOKENS_MAX_SECONDS = setting('BENCH_TOKENS_MAX_SECONDS', 180);
const POSTGRES_URL = process.env.BENCH_POSTGRES_URL || 'postgresql://postgres@127.0.0.1:5432/postgres';
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF || undefined;

/** Sign-in accounts: the lockout allows 5 attempts in flight per account, the pool uses at most 4. */
const ACCOUNTS = Math.max(2, Math.ceil(Math.max(SIGN_IN_CONCURRENCY, SIGN_IN_RATE) / 3));
const PASSWORD = 'a long benchmark passphrase';
const RESOURCE = 'https://api.example.com';
const REDIRECT_URI = 'https://app.example.com/callback';
const CC_BODY = new URLSearchParams({
  grant_type: 'client_credentials',
  scope: 'api:read',
  resource: RESOURCE,
}).toString();
/** Linux reports process CPU time in clock ticks of 1/100 s (sysconf(_SC_CLK_TCK) is 100 on Linux). */
const CLOCK_TICKS = 100;
/** Far above any load here: the benchmark measures the server, not its brakes. */
const RATE_LIMITS = 'token=100000000/60s,login=100000000/60s,login_ip=100000000/60s,admin=100000000/60s';

function setting(name: string, fallback: number, minimum = Number.MIN_VALUE): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < minimum) throw new Error(`${name} must be a number ≥ ${minimum}`);
  return value;
}

// ---------------------------------------------------------------- processes

interface Server {
  name: string;
  child: ChildProcess;
  pid: number;
  url: string;
}

const children = new Set<ChildProcess>();
/** The database this run created, for the Ctrl-C handler. */
let activeDatabase: string | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** SIGTERM (graceful close, which also writes a --cpu-prof profile), SIGKILL after 15 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (!children.has(child)) return;
  children.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await exited(child, 15_000))) {
    child.kill('SIGKILL');
    await exited(child, 5_000);
  }
}

interface GatehouseEnv {
  databaseUrl: string;
  encryptionKey: string;
  cookieKey: string;
  dataDir: string;
}

function gatehouseEnv(env: GatehouseEnv, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    DATABASE_URL: env.databaseUrl,
    GATEHOUSE_ENCRYPTION_KEY: env.encryptionKey,
    GATEHOUSE_COOKIE_KEYS: env.cookieKey,
    GATEHOUSE_DATA_DIR: env.dataDir,
    GATEHOUSE_RATE_LIMITS: RATE_LIMITS,
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

async function startGatehouse(env: GatehouseEnv, logLevel: string, logFile: string): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const out = openSync(logFile, 'a');
  const profile = CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : [];
  // As `npm start` and the image run it.
  const child = spawn(process.execPath, [...SERVE_NODE_FLAGS, ...profile, BIN, 'serve'], {
    cwd: ROOT,
    env: gatehouseEnv(env, {
      PORT: String(port),
      HOST: '127.0.0.1',
      GATEHOUSE_ISSUER: url,
      LOG_LEVEL: logLevel,
    }),
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  children.add(child);
  // Ready when it says so (at info) or when discovery answers (at warn the line is not logged).
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (readFileSync(logFile, 'utf8').includes('Gatehouse is serving')) break;
    try {
      const response = await fetch(`${url}/.well-known/openid-configuration`, {
        signal: AbortSignal.timeout(2_000),
      });
      await response.arrayBuffer();
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  if (child.exitCode !== null || Date.now() >= deadline) {
    await stopChild(child);
    throw new Error(`Gatehouse did not start; its output:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
  }
  return { name: 'gatehouse', child, pid: child.pid!, url };
}

/** bench/ceiling.ts: the library from node:http (`node`), or mounted in Fastify as Gatehouse mounts it. */
async function startCeiling(
  clientId: string,
  secret: string,
  logFile: string,
  host: 'node' | 'fastify',
): Promise<Server> {
  const err = openSync(logFile, 'a');
  // With Gatehouse's V8 flags: the comparison is of the code on one runtime, not of runtime settings.
  const child = spawn(
    process.execPath,
    [...SERVE_NODE_FLAGS, join(ROOT, 'bench', 'ceiling.ts'), clientId, secret, host],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
      stdio: ['ignore', 'pipe', err],
    },
  );
  closeSync(err);
  children.add(child);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the ceiling did not start within 30 s')), 30_000);
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const line = buffered.split('\n')[0];
      if (buffered.includes('\n') && line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the ceiling exited (${code}): ${readFileSync(logFile, 'utf8').slice(-2000)}`));
    });
  });
  return { name: `ceiling (${host})`, child, pid: child.pid!, url: `http://127.0.0.1:${port}` };
}

/** Runs the `gatehouse` CLI on the bench database and parses its --json output. */
function cli<T>(env: GatehouseEnv, args: string[], input?: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args, '--json'],
      { cwd: ROOT, env: gatehouseEnv(env), timeout: 120_000 },
      (error, stdout, stderr) => {
        if (error)
          reject(new Error(`gatehouse ${args.slice(0, 2).join(' ')} failed: ${stderr || error.message}`));
        else resolve(JSON.parse(stdout) as T);
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function inBatches<T>(
  count: number,
  parallel: number,
  work: (index: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      results[index] = await work(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  return results;
}

// ---------------------------------------------------------------- measuring

interface Memory {
  rssKb: number;
  peakKb: number;
}

function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKb: field('VmRSS'), peakKb: field('VmHWM') };
}

/**
 * User + system CPU seconds the process has used (all its threads), or with
 * `mainThread` its JavaScript thread alone (on Linux the main thread's id is the pid).
 */
function cpuSecondsOf(pid: number, mainThread = false): number {
  const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface Row {
  scenario: string;
  rate: number;
  unit: string;
  p50: number;
  p99: number;
  non2xx: number;
  socketErrors: number;
  /** Server CPU over the run, in % of one core. */
  cpu: number | undefined;
  /** Server main-thread CPU per response, in µs (the thread every request queues for). */
  mainUs?: number;
  /** False for rows shown for information (the mixed requests of a sign-in have no single latency). */
  targets?: boolean;
  load1: number;
  note?: string;
}

interface LoadOptions {
  server: Server;
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  requests?: autocannon.Request[];
  verifyBody?: (body: string) => boolean;
  seconds?: number;
  amount?: number;
  /** Called with the running count of responses (memory samples during the 100k run). */
  onCount?: (count: number) => void;
  /** Stop after this many seconds even if `amount` is not reached. */
  capSeconds?: number;
  /** Count responses, latencies and CPU only from this many ms into the run. */
  settleMs?: number;
}

interface LoadResult {
  responses: number;
  elapsedMs: number;
  latencies: number[];
  result: autocannon.Result;
  cpu: number;
  /** CPU seconds of the server's main (JavaScript) thread over the run. */
  mainThreadSeconds: number;
}

/** One bounded autocannon run; latencies are recorded per response (autocannon's own are whole ms). */
async function load(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  let counting = !options.settleMs;
  let cpuBefore = cpuSecondsOf(options.server.pid);
  let mainBefore = cpuSecondsOf(options.server.pid, true);
  let started = performance.now();
  const settle = options.settleMs
    ? setTimeout(() => {
        counting = true;
        cpuBefore = cpuSecondsOf(options.server.pid);
        mainBefore = cpuSecondsOf(options.server.pid, true);
        started = performance.now();
      }, options.settleMs)
    : undefined;
  const instance = autocannon({
    url: `${options.server.url}${options.path}`,
    connections: CONNECTIONS,
    timeout: 10,
    method: options.method ?? 'GET',
    ...(options.amount ? { amount: options.amount } : { duration: options.seconds ?? SECONDS }),
    ...(options.headers ? { headers: options.headers } : {}),
    ...(options.body !== undefined ? { body: options.body } : {}),
    ...(options.requests ? { requests: options.requests } : {}),
    ...(options.verifyBody ? { verifyBody: options.verifyBody } : {}),
  });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    if (!counting) return;
    latencies.push(ms);
    options.onCount?.(latencies.length);
  });
  const cap = options.capSeconds ? setTimeout(() => instance.stop(), options.capSeconds * 1000) : undefined;
  const result = await instance;
  if (cap) clearTimeout(cap);
  if (settle) clearTimeout(settle);
  const elapsedMs = performance.now() - started;
  const cpu = ((cpuSecondsOf(options.server.pid) - cpuBefore) / (elapsedMs / 1000)) * 100;
  const mainThreadSeconds = cpuSecondsOf(options.server.pid, true) - mainBefore;
  return { responses: latencies.length, elapsedMs, latencies, result, cpu, mainThreadSeconds };
}

async function measure(scenario: string, options: LoadOptions): Promise<Row> {
  return rowOf(scenario, await warmThenLoad(options));
}

async function warmThenLoad(options: LoadOptions): Promise<LoadResult> {
  if (WARMUP_SECONDS > 0) await load({ ...options, seconds: WARMUP_SECONDS });
  return load(options);
}

/** Several runs of one scenario as one: their responses, time and latencies added up. */
function combine(runs: LoadResult[]): LoadResult {
  const elapsedMs = runs.reduce((sum, run) => sum + run.elapsedMs, 0);
  return {
    responses: runs.reduce((sum, run) => sum + run.responses, 0),
    elapsedMs,
    latencies: runs.flatMap((run) => run.latencies),
    result: {
      ...runs[0]!.result,
      non2xx: runs.reduce((sum, run) => sum + run.result.non2xx, 0),
      mismatches: runs.reduce((sum, run) => sum + run.result.mismatches, 0),
      errors: runs.reduce((sum, run) => sum + run.result.errors, 0),
    },
    cpu: runs.reduce((sum, run) => sum + run.cpu * run.elapsedMs, 0) / elapsedMs,
    mainThreadSeconds: runs.reduce((sum, run) => sum + run.mainThreadSeconds, 0),
  };
}

const rateOf = (run: LoadResult) => run.responses / (run.elapsedMs / 1000);
const mainUsOf = (run: LoadResult) => (run.mainThreadSeconds * 1e6) / run.responses;

interface Spread {
  median: number;
  /** 25th and 75th percentiles: the middle half of the values. */
  low: number;
  high: number;
}

const spreadOf = (values: number[]): Spread => ({
  median: percentile(values, 50),
  low: percentile(values, 25),
  high: percentile(values, 75),
});

/**
 * Round by round, the throughput of `a` over that of `b`, and b's main-thread
 * CPU per response over a's (both above 1 when `a` is the faster).
 */
function ratiosByRound(a: LoadResult[], b: LoadResult[]): { rate: Spread; cpu: Spread } {
  return {
    rate: spreadOf(a.map((run, index) => rateOf(run) / rateOf(b[index]!))),
    cpu: spreadOf(a.map((run, index) => mainUsOf(b[index]!) / mainUsOf(run))),
  };
}

function rowOf(scenario: string, run: LoadResult, note?: string): Row {
  return {
    scenario,
    rate: run.responses / (run.elapsedMs / 1000),
    unit: 'req/s',
    p50: percentile(run.latencies, 50),
    p99: percentile(run.latencies, 99),
    non2xx: run.result.non2xx + run.result.mismatches,
    socketErrors: run.result.errors,
    cpu: run.cpu,
    mainUs: (run.mainThreadSeconds * 1e6) / run.responses,
    load1: loadavg()[0]!,
    ...(note ? { note } : {}),
  };
}

function flowRows(label: string, stats: FlowStats, cpu: number | undefined): Row[] {
  const seconds = stats.elapsedMs / 1000;
  const common = { non2xx: stats.errors, socketErrors: 0, cpu, load1: loadavg()[0]! };
  return [
    {
      scenario: `${label}: complete flows`,
      rate: stats.flows / seconds,
      unit: 'flows/s',
      p50: percentile(stats.flowLatencies, 50),
      p99: percentile(stats.flowLatencies, 99),
      ...common,
      ...(stats.firstError ? { note: `first error: ${stats.firstError.slice(0, 160)}` } : {}),
    },
    {
      scenario: `${label}: their login posts (argon2id)`,
      rate: stats.loginLatencies.length / seconds,
      unit: 'req/s',
      p50: percentile(stats.loginLatencies, 50),
      p99: percentile(stats.loginLatencies, 99),
      ...common,
      non2xx: 0,
    },
    {
      scenario: `${label}: all their HTTP requests`,
      rate: stats.httpRequests / seconds,
      unit: 'req/s',
      p50: percentile(stats.requestLatencies, 50),
      p99: percentile(stats.requestLatencies, 99),
      ...common,
      non2xx: 0,
      targets: false,
    },
  ];
}

// ---------------------------------------------------------------- report

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

function verdict(row: Row): string {
  if (row.targets === false)
    return row.non2xx + row.socketErrors > 0 ? '(information; errors)' : '(information)';
  const missed: string[] = [];
  if (row.non2xx + row.socketErrors > 0) missed.push('errors');
  if (!(row.p99 < 5 * row.p50)) missed.push('p99 ≥ 5×p50');
  return missed.length ? `MISSED (${missed.join(', ')})` : 'ok';
}

function printTable(rows: Row[]): void {
  const header = [
    'scenario',
    'rate',
    'p50 ms',
    'p99 ms',
    'p99/p50',
    'errors non2xx/socket',
    'srv CPU',
    'main µs/req',
    'load1',
    'targets',
  ];
  const lines = rows.map((row) => [
    row.scenario,
    `${fixed(row.rate)} ${row.unit}`,
    fixed(row.p50, 2),
    fixed(row.p99, 2),
    fixed(row.p99 / row.p50, 1),
    `${row.non2xx}/${row.socketErrors}`,
    row.cpu === undefined ? '-' : `${fixed(row.cpu, 0)}%`,
    row.mainUs === undefined ? '-' : fixed(row.mainUs, 0),
    fixed(row.load1, 2),
    verdict(row),
  ]);
  const widths = header.map((title, index) =>
    Math.max(title.length, ...lines.map((line) => line[index]!.length)),
  );
  const format = (cells: string[]) =>
    cells
      .map((cell, index) =>
        index === 0 || index === 9 ? cell.padEnd(widths[index]!) : cell.padStart(widths[index]!),
      )
      .join('  ');
  console.log(format(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const line of lines) console.log(format(line));
  for (const row of rows) if (row.note) console.log(`  note (${row.scenario}): ${row.note}`);
}

const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
const progress = (text: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}`);

// ---------------------------------------------------------------- the run

async function main(): Promise<void> {
  const adminUrl = new URL(POSTGRES_URL);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(adminUrl.hostname)) {
    throw new Error('BENCH_POSTGRES_URL must point at a loopback PostgreSQL');
  }
  const runStarted = Date.now();
  const loadAtStart = loadavg();
  progress(
    `load average ${loadAtStart.map((value) => value.toFixed(2)).join(' ')}; ${SECONDS}s per scenario ` +
      `(+${WARMUP_SECONDS}s warm-up), ${CONNECTIONS} connections; Gatehouse at LOG_LEVEL=warn`,
  );

  const work = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  const database = `gatehouse_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  let created = false;
  try {
    await admin.query(`CREATE DATABASE "${database}"`);
    created = true;
    activeDatabase = database;
    const databaseUrl = new URL(POSTGRES_URL);
    databaseUrl.pathname = `/${database}`;
    const env: GatehouseEnv = {
      databaseUrl: databaseUrl.toString(),
      encryptionKey: randomBytes(32).toString('base64'),
      cookieKey: randomBytes(32).toString('base64url'),
      dataDir: work,
    };
    await runScenarios(env, work, database);
  } finally {
    for (const child of [...children]) await stopChild(child);
    if (created) {
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      activeDatabase = undefined;
      progress(`dropped database ${database}`);
    }
    await admin.end();
    rmSync(work, { recursive: true, force: true });
    const loadAtEnd = loadavg();
    console.log(
      `\nload average at start ${loadAtStart.map((v) => v.toFixed(2)).join(' ')}, at end ${loadAtEnd
        .map((v) => v.toFixed(2))
        .join(
          ' ',
        )} (2 cores; other work on the machine shares them); whole run ${((Date.now() - runStarted) / 1000).toFixed(0)} s`,
    );
  }
}

async function runScenarios(env: GatehouseEnv, work: string, database: string): Promise<void> {
  progress(`created database ${database}; starting Gatehouse`);
  const gatehouse = await startGatehouse(env, 'warn', join(work, 'gatehouse-warn.log'));

  progress(`creating clients and ${ACCOUNTS} accounts with the CLI`);
  const [service, web, ...accounts] = await inBatches(2 + ACCOUNTS, 3, (index) => {
    if (index === 0) {
      return cli<{ client_id: string; client_secret: string }>(env, [
        'client',
        'create',
        '--name',
        'bench-service',
        '--grant',
        'client_credentials',
        '--scope',
        'api:read',
        '--resource',
        RESOURCE,
      ]);
    }
    if (index === 1) {
      return cli<{ client_id: string; client_secret: string }>(env, [
        'client',
        'create',
        '--name',
        'bench-web',
        '--grant',
        'authorization_code',
        '--grant',
        'refresh_token',
        '--redirect-uri',
        REDIRECT_URI,
        '--scope',
        'openid offline_access',
        '--first-party',
        '--introspection',
      ]);
    }
    return cli<{ email: string }>(
      env,
      ['user', 'create', '--email', `bench${index - 1}@example.com`, '--password-stdin'],
      `${PASSWORD}\n`,
    ).then(() => ({ client_id: '', client_secret: '' }));
  });
  if (!service || !web || accounts.length !== ACCOUNTS) throw new Error('setup failed');
  const target: FlowTarget = {
    issuer: gatehouse.url,
    clientId: web.client_id,
    clientSecret: web.client_secret,
    redirectUri: REDIRECT_URI,
    scope: 'openid offline_access',
    emails: Array.from({ length: ACCOUNTS }, (_, index) => `bench${index + 1}@example.com`),
    password: PASSWORD,
  };

  progress('starting the ceiling (bare oidc-provider), and the same library mounted in Fastify');
  const ceiling = await startCeiling(
    service.client_id,
    service.client_secret,
    join(work, 'ceiling.log'),
    'node',
  );
  const mounted = await startCeiling(
    service.client_id,
    service.client_secret,
    join(work, 'ceiling-fastify.log'),
    'fastify',
  );

  const ccOptions = (server: Server): LoadOptions => ({
    server,
    path: '/token',
    method: 'POST',
    headers: {
      authorization: basicAuth(service.client_id, service.client_secret),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: CC_BODY,
  });
  const rows: Row[] = [];

  progress(
    `client credentials: ${RATIO_ROUNDS} rounds of ${RATIO_RUN_SECONDS} s runs of Gatehouse, the ceiling and the library in Fastify`,
  );
  // Both keep getting faster for tens of seconds under load (V8's optimising
  // tiers): each gets the same long warm-up first, so the rounds compare steady states.
  const compared = [gatehouse, ceiling, mounted];
  for (const server of compared) await load({ ...ccOptions(server), seconds: RATIO_WARMUP_SECONDS });
  const runs = new Map<Server, LoadResult[]>(compared.map((server) => [server, []]));
  for (let round = 0; round < RATIO_ROUNDS; round++) {
    // Alternating order, so that no server always runs right after the same other one.
    for (const server of round % 2 === 0 ? compared : [...compared].reverse()) {
      const run = await load({ ...ccOptions(server), seconds: RATIO_RUN_SECONDS, settleMs: RATIO_SETTLE_MS });
      runs.get(server)!.push(run);
    }
  }
  await stopChild(mounted.child);
  const runsOf = (server: Server) => runs.get(server)!;
  const ccGatehouse = rowOf('client credentials (JWT) — Gatehouse', combine(runsOf(gatehouse)));
  // The targets are Gatehouse's; the other rows are yardsticks.
  const ccCeiling = {
    ...rowOf('same load — ceiling (bare oidc-provider)', combine(runsOf(ceiling))),
    targets: false,
  };
  const ccMounted = {
    ...rowOf('same load — the library mounted in Fastify', combine(runsOf(mounted))),
    targets: false,
  };
  rows.push(ccGatehouse, ccCeiling, ccMounted);
  const gatehouseShare = ratiosByRound(runsOf(gatehouse), runsOf(ceiling));
  const mountedShare = ratiosByRound(runsOf(mounted), runsOf(ceiling));
  const ceilingMetadataRows: Row[] = [];
  if (ONLY !== 'ratio') {
    // The library serving its metadata alone: the yardstick for what Gatehouse's
    // HTTP layer (Fastify, hooks, headers, metrics) adds to every request.
    for (const [label, path] of [
      ['JWKS — ceiling', '/jwks'],
      ['discovery — ceiling', '/.well-known/openid-configuration'],
    ] as const) {
      ceilingMetadataRows.push({ ...(await measure(label, { server: ceiling, path })), targets: false });
    }
  }
  const ceilingMemory = memoryOf(ceiling.pid);
  await stopChild(ceiling.child);
  const mark = (ok: boolean) => (ok ? 'ok' : 'MISSED');
  const printRatio = () => {
    const share = (ratios: Spread) =>
      `${fixed(ratios.median, 3)} (middle half of the rounds ${fixed(ratios.low, 2)}–${fixed(ratios.high, 2)})`;
    console.log(
      `Gatehouse / ceiling, client-credentials throughput, median of ${RATIO_ROUNDS} rounds of ${RATIO_RUN_SECONDS} s runs: ` +
        `${share(gatehouseShare.rate)} (target ≥ 0.90) ${mark(gatehouseShare.rate.median >= 0.9)}`,
    );
    // The same comparison free of the load generator's share of the 2 cores.
    console.log(`  by main-thread CPU per token (ceiling's / Gatehouse's): ${share(gatehouseShare.cpu)}`);
    console.log(
      `The library mounted in Fastify / ceiling: ${share(mountedShare.rate)}; by CPU ${share(mountedShare.cpu)}. ` +
        'What hosting in Fastify costs; the rest of the gap is Gatehouse’s own work per token.',
    );
  };
  if (ONLY === 'ratio') {
    await stopChild(gatehouse.child);
    console.log(
      `\nGatehouse benchmark (BENCH_ONLY=ratio) — ${new Date().toISOString()}, Node ${process.version}\n`,
    );
    printTable(rows);
    console.log('');
    printRatio();
    return;
  }

  progress(`signing in ${3 * CONNECTIONS} times for refresh tokens (also warms the sign-in path)`);
  const setupLatencies: number[] = [];
  const tokenSets = await inBatches(3 * CONNECTIONS, Math.min(SIGN_IN_CONCURRENCY, ACCOUNTS), (index) =>
    signInOnce(target, target.emails[index % ACCOUNTS]!, setupLatencies),
  );
  const refreshTokens = tokenSets.map((set) => set.refresh_token).filter((token) => token !== undefined);
  if (refreshTokens.length !== tokenSets.length) throw new Error('a sign-in returned no refresh token');

  progress('refresh-token grant (each connection rotates its own chains)');
  const webAuth = basicAuth(web.client_id, web.client_secret);
  const formHeaders = { authorization: webAuth, 'content-type': 'application/x-www-form-urlencoded' };
  rows.push(
    await measure('refresh-token grant (rotation)', {
      server: gatehouse,
      path: '/token',
      method: 'POST',
      headers: formHeaders,
      requests: [
        {
          setupRequest: (request) => ({
            ...request,
            // An empty pool (chains lost to errors) sends a dead token, which counts as an error.
            body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(refreshTokens.shift() ?? 'exhausted')}`,
          }),
          onResponse: (status, body) => {
            const rotated = status === 200 ? /"refresh_token":"([^"]+)"/.exec(body)?.[1] : undefined;
            if (rotated) refreshTokens.push(rotated);
          },
        },
      ],
    }),
  );

  progress('introspection of an opaque access token');
  const opaque = (await signInOnce(target, target.emails[0]!, [])).access_token;
  if (opaque.split('.').length === 3)
    throw new Error('expected an opaque access token from the code exchange');
  rows.push(
    await measure('introspection (opaque token)', {
      server: gatehouse,
      path: '/token/introspection',
      method: 'POST',
      headers: formHeaders,
      body: `token=${encodeURIComponent(opaque)}`,
      verifyBody: (body) => body.includes('"active":true'),
    }),
  );

  progress('JWKS and discovery');
  rows.push(await measure('JWKS', { server: gatehouse, path: '/jwks' }));
  rows.push(await measure('discovery', { server: gatehouse, path: '/.well-known/openid-configuration' }));
  rows.push(...ceilingMetadataRows);

  progress(`sign-in flow at concurrency ${SIGN_IN_CONCURRENCY}`);
  const signInCpuBefore = cpuSecondsOf(gatehouse.pid);
  const signIns = await runClosedLoop(target, { concurrency: SIGN_IN_CONCURRENCY, seconds: SECONDS });
  const signInCpu = ((cpuSecondsOf(gatehouse.pid) - signInCpuBefore) / (signIns.elapsedMs / 1000)) * 100;
  rows.push(...flowRows(`sign-in flow (concurrency ${SIGN_IN_CONCURRENCY})`, signIns, signInCpu));

  progress(`client credentials alone, then with ${SIGN_IN_RATE} sign-ins/s beside it`);
  const alone = await measure('client credentials — alone', ccOptions(gatehouse));
  const { row: together, stats: besideStats } = await ccWithSignIns(target, ccOptions(gatehouse));
  rows.push(
    alone,
    together,
    ...flowRows(`  beside it: ${SIGN_IN_RATE} sign-ins/s (open loop)`, besideStats, undefined),
  );

  // The same load on a second Gatehouse at LOG_LEVEL=info (same database), between two runs at warn.
  progress('client credentials with a second Gatehouse at LOG_LEVEL=info (logging cost)');
  const infoLog = join(work, 'gatehouse-info.log');
  const verbose = await startGatehouse(env, 'info', infoLog);
  if (WARMUP_SECONDS > 0) await load({ ...ccOptions(verbose), seconds: WARMUP_SECONDS });
  const infoBytesBefore = statSync(infoLog).size;
  const infoLinesBefore = readFileSync(infoLog, 'utf8').split('\n').length;
  const infoRun = await load(ccOptions(verbose));
  const infoBytes = statSync(infoLog).size - infoBytesBefore;
  const infoLines = readFileSync(infoLog, 'utf8').split('\n').length - infoLinesBefore;
  await stopChild(verbose.child);
  const infoRow = rowOf('client credentials — LOG_LEVEL=info', infoRun);
  const warnAfter = rowOf(
    'client credentials — LOG_LEVEL=warn, right after',
    await load(ccOptions(gatehouse)),
  );
  rows.push(infoRow, warnAfter);

  progress(`${TOKENS} client-credentials tokens for memory (at most ${TOKENS_MAX_SECONDS} s)`);
  const before = memoryOf(gatehouse.pid);
  // RSS every 5 000 tokens (and at the middle), read when the count is reached.
  const samples = new Map<number, Memory>();
  const half = Math.floor(TOKENS / 2);
  const memoryRun = await load({
    ...ccOptions(gatehouse),
    amount: TOKENS,
    capSeconds: TOKENS_MAX_SECONDS,
    onCount: (count) => {
      if (count % 5_000 === 0 || count === half) samples.set(count, memoryOf(gatehouse.pid));
    },
  });
  const after = memoryOf(gatehouse.pid);
  const reached = memoryRun.responses;
  rows.push(rowOf(`client credentials — ${reached} tokens in one run`, memoryRun));
  const warnLog = readFileSync(join(work, 'gatehouse-warn.log'), 'utf8');
  await stopChild(gatehouse.child);

  // ------------------------------------------------------------ report
  console.log(`\nGatehouse benchmark — ${new Date().toISOString()}, Node ${process.version}, 2-core machine`);
  console.log(
    `Measured runs: Gatehouse at LOG_LEVEL=warn (one run at info), rate limits raised far above the load, ` +
      `${CONNECTIONS} autocannon connections, ${SECONDS}s each after ${WARMUP_SECONDS}s warm-up; ` +
      'latencies (ms) from every response; srv CPU = server process CPU in % of one core; ' +
      'main µs/req = CPU time of the server main thread per response; ' +
      'load1 = 1-minute load average after the run.\n',
  );
  printTable(rows);

  console.log('');
  printRatio();
  // Growth between the middle and the end of the run: over the last 50 000 of 100 000 tokens.
  const middle = Math.floor(reached / 2 / 5_000) * 5_000 || Math.floor(reached / 2);
  const atMiddle = samples.get(reached >= TOKENS ? half : middle);
  const growth = atMiddle ? (after.rssKb - atMiddle.rssKb) / atMiddle.rssKb : NaN;
  const highest = Math.max(after.rssKb, ...[...samples.values()].map((sample) => sample.rssKb));
  console.log(
    `Gatehouse RSS: before the token run ${mb(before.rssKb)}; after ${reached >= TOKENS ? half : middle} tokens ` +
      `${atMiddle ? mb(atMiddle.rssKb) : 'n/a'}; after ${reached} tokens ${mb(after.rssKb)}; highest sampled ${mb(highest)}`,
  );
  console.log(
    `Gatehouse RSS growth over the second half of the token run: ${fixed(growth * 100)}% (target ≤ 10%) ` +
      (reached >= TOKENS
        ? mark(growth <= 0.1)
        : `MISSED (incomplete: ${reached} of ${TOKENS} tokens within ${TOKENS_MAX_SECONDS} s)`),
  );
  console.log(
    `Peak RSS (VmHWM): Gatehouse ${mb(after.peakKb)} over the whole run; ceiling ${mb(ceilingMemory.peakKb)}`,
  );
  const p99Ratio = together.p99 / alone.p99;
  console.log(
    `Token p99 alone ${fixed(alone.p99, 2)} ms, with ${SIGN_IN_RATE} sign-ins/s ${fixed(together.p99, 2)} ms = ×${fixed(p99Ratio, 2)} ` +
      `(target ≤ ×2) ${mark(p99Ratio <= 2)}; sign-ins achieved ${fixed(besideStats.flows / (besideStats.elapsedMs / 1000))}/s, ` +
      `${besideStats.errors} failed, ${besideStats.skipped} not started (20 already in flight)`,
  );
  const warnRate = (alone.rate + warnAfter.rate) / 2;
  console.log(
    `Logging cost: LOG_LEVEL=info ${fixed(infoRow.rate)} req/s vs warn ${fixed(warnRate)} req/s (mean of the runs just before and after) ` +
      `= ${fixed((1 - infoRow.rate / warnRate) * 100)}% fewer; ${fixed(infoLines / infoRun.responses, 2)} lines and ` +
      `${fixed(infoBytes / infoRun.responses, 0)} bytes logged per token request`,
  );
  const warnings = warnLog
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      try {
        return String((JSON.parse(line) as { msg?: unknown }).msg);
      } catch {
        return line;
      }
    });
  console.log(
    `The LOG_LEVEL=warn instance logged ${warnings.length} line(s)` +
      (warnings.length ? `, e.g.: ${[...new Set(warnings)].slice(0, 3).join(' | ').slice(0, 300)}` : ''),
  );
}

async function ccWithSignIns(
  target: FlowTarget,
  options: LoadOptions,
): Promise<{ row: Row; stats: FlowStats }> {
  if (WARMUP_SECONDS > 0) await load({ ...options, seconds: WARMUP_SECONDS });
  // The sign-ins run in their own process, so their client-side work does not stall autocannon's event loop.
  const driver = spawn(
    process.execPath,
    [
      join(ROOT, 'bench', 'flows.ts'),
      JSON.stringify({ ...target, rate: SIGN_IN_RATE, seconds: SECONDS + 1, maxInFlight: 20 }),
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.add(driver);
  let output = '';
  const started = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the sign-in driver did not start within 30 s')), 30_000);
    driver.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"started":true')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await started;
  const run = await load(options);
  if (!(await exited(driver, 60_000))) throw new Error('the sign-in driver did not finish');
  children.delete(driver);
  const stats = JSON.parse(output.trim().split('\n').pop() ?? '{}') as FlowStats;
  return { row: rowOf(`client credentials — with ${SIGN_IN_RATE} sign-ins/s`, run), stats };
}

// Ctrl-C: kill the children this run started and drop its database before leaving.
process.once('SIGINT', () => {
  for (const child of [...children]) child.kill('SIGKILL');
  const name = activeDatabase;
  if (!name) process.exit(130);
  const dropper = new pg.Client({ connectionString: POSTGRES_URL });
  dropper
    .connect()
    .then(() => dropper.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
    .then(() => console.error(`interrupted: dropped database ${name}`))
    .catch((error: unknown) => console.error(`interrupted: could not drop ${name}: ${error}`))
    .finally(() => process.exit(130));
});

try {
  await main();
} catch (error) {
  console.error(`bench failed: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
}
