// Prometheus metrics (prom-client), on a registry of the app's own rather than
// the library's global one, so each app instance (and test) counts for itself.
import { Counter, collectDefaultMetrics, Gauge, type LabelValues, Registry } from 'prom-client';
import { type Database, poolUsage } from '../db/prisma.ts';
import { LatencyHistogram, type LatencySeries } from '../lib/latency-histogram.ts';

/** One label set of a per-request counter, counted in a plain number between scrapes. */
interface PendingCount<T extends string> {
  labels: LabelValues<T>;
  pending: number;
}

/**
 * Adds what was counted since the last scrape to the prom-client counter; run
 * by its `collect()`, so a scrape reads exactly the counts it would have read.
 */
function flushInto<T extends string>(counter: Counter<T>, counts: Iterable<PendingCount<T>>): void {
  for (const count of counts) {
    if (count.pending === 0) continue;
    counter.inc(count.labels, count.pending);
    count.pending = 0;
  }
}

type ResponseLabel = 'route' | 'method' | 'status';
type TokenLabel = 'grant_type' | 'client_id';

export class Metrics {
  readonly registry = new Registry();

  /**
   * The counters every request or token feeds are counted per label set in
   * plain numbers and handed to prom-client when scraped: prom-client
   * validates and hashes the label set on every inc() (about 0.6 µs; the
   * plain count costs a map lookup), and that ran two to three times per token.
   * The label values are bounded (routes, methods, statuses, grant types,
   * client ids), and so are these maps.
   */
  readonly #responseSeries = new Map<
    string,
    { count: PendingCount<ResponseLabel>; latency: LatencySeries }
  >();
  readonly #tokenCounts = new Map<string, PendingCount<TokenLabel>>();

  readonly httpRequests: Counter<ResponseLabel> = new Counter({
    name: 'gatehouse_http_requests_total',
    help: 'HTTP requests answered, by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
    collect: (): void =>
      flushInto(
        this.httpRequests,
        Array.from(this.#responseSeries.values(), (series) => series.count),
      ),
  });

  // Counted in plain arrays, not prom-client's Histogram: see LatencyHistogram.
  readonly httpDuration = new LatencyHistogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'HTTP request latency, by route and method',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly tokensIssued: Counter<TokenLabel> = new Counter({
    name: 'gatehouse_tokens_issued_total',
    help: 'Token responses, by grant type (client credentials also by client)',
    labelNames: ['grant_type', 'client_id'] as const,
    registers: [this.registry],
    collect: (): void => flushInto(this.tokensIssued, this.#tokenCounts.values()),
  });

  readonly signIns = new Counter({
    name: 'gatehouse_sign_ins_total',
    help: 'Completed sign-ins and failed attempts (password or second factor)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly lockouts = new Counter({
    name: 'gatehouse_account_lockouts_total',
    help: 'Accounts locked after repeated failures',
    registers: [this.registry],
  });

  readonly refreshTokenReuse = new Counter({
    name: 'gatehouse_refresh_token_reuse_total',
    help: 'Reused refresh tokens detected (each revoked a grant)',
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'gatehouse_rate_limited_total',
    help: 'Requests refused by a rate limit, by limit',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });

  constructor(db: Database) {
    collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' });
    const pool = (
      name: string,
      help: string,
      read: (usage: NonNullable<ReturnType<typeof poolUsage>>) => number,
    ) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const usage = poolUsage(db);
          if (usage) this.set(read(usage));
        },
      });
    pool('gatehouse_db_pool_connections', 'Database pool connections open', (usage) => usage.total);
    pool('gatehouse_db_pool_idle', 'Database pool connections idle', (usage) => usage.idle);
    pool('gatehouse_db_pool_waiting', 'Queries waiting for a database connection', (usage) => usage.waiting);
    pool('gatehouse_db_pool_max', 'Database pool size', (usage) => usage.max);
  }

  /** One answered HTTP request: its count and its latency. */
  countResponse(route: string, method: string, status: number, seconds: number): void {
    const key = `${route} ${method} ${status}`;
    let series = this.#responseSeries.get(key);
    if (!series) {
      series = {
        count: { labels: { route, method, status: String(status) }, pending: 0 },
        latency: this.httpDuration.series(`${route} ${method}`, { route, method }),
      };
      this.#responseSeries.set(key, series);
    }
    series.count.pending++;
    series.latency.observe(seconds);
  }

  /** One token response; client credentials are also counted per client. */
  countToken(grantType: string, clientId: string): void {
    const key = `${grantType} ${clientId}`;
    let count = this.#tokenCounts.get(key);
    if (!count) {
      count = { labels: { grant_type: grantType, client_id: clientId }, pending: 0 };
      this.#tokenCounts.set(key, count);
    }
    count.pending++;
  }

  /** Counts an audited security event in its metric, where it has one. */
  countAuditEvent(type: string): void {
    if (type === 'login.success') this.signIns.inc({ result: 'success' });
    else if (type === 'login.failure' || type === 'mfa.failure') this.signIns.inc({ result: 'failure' });
    else if (type === 'account.locked') this.lockouts.inc();
    else if (type === 'refresh_token.reuse_detected') this.refreshTokenReuse.inc();
  }
}
