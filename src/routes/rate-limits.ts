// Rate limits (SPEC GATEHOUSE_RATE_LIMITS) on @fastify/rate-limit's own
// counters (its LocalStore and RedisStore): in process by default, in Redis
// with REDIS_URL so every instance shares them. The stores are used directly,
// not through the plugin's request hooks: its wrapper costs every token request
// several promise hops, and the in-process store answers at once, so hit()
// returns a plain outcome then and a promise only when Redis is asked.
//
// If Redis fails, the token and admin limits fail OPEN (services keep getting
// tokens; an outage of the limiter must not become an outage of every API) and
// the sign-in limits fail CLOSED (guessing passwords while the brake is off is
// worse than a short sign-in outage). Both are logged.
import { createHash } from 'node:crypto';
import LocalStore, { type Count, type CounterStore } from '@fastify/rate-limit/store/LocalStore.js';
import RedisStore from '@fastify/rate-limit/store/RedisStore.js';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { Redis } from 'ioredis';
import type { RateLimits } from '../config.ts';

export type LimitName = keyof RateLimits;

export interface LimitOutcome {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  resetSeconds: number;
}

export class LimiterUnavailableError extends Error {
  override name = 'LimiterUnavailableError';
}

export interface RateLimiter {
  /**
   * Counts one hit of `key` against `limit`: the outcome itself when the
   * counter is in process, a promise of it when the counter is in Redis.
   * Refuses (throws or rejects with LimiterUnavailableError) only for a limit
   * that fails closed.
   */
  hit(limit: LimitName, key: string): LimitOutcome | Promise<LimitOutcome>;
  /** Settles once Redis has connected or failed to (at once without Redis): serve after it. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

const FAIL_OPEN: Record<LimitName, boolean> = { token: true, admin: true, login: false, login_ip: false };

/** Entries each in-process counter keeps (the plugin's default), least recently used dropped first. */
const LOCAL_ENTRIES = 5000;

export function createRateLimiter(
  limits: RateLimits,
  options: {
    redisUrl?: string | undefined;
    log: FastifyBaseLogger;
    issuer: string;
    onRefused?: (limit: LimitName) => void;
  },
): RateLimiter {
  const redis = options.redisUrl
    ? new Redis(options.redisUrl, {
        // Fail fast instead of queueing requests behind a dead Redis.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        connectTimeout: 2_000,
        commandTimeout: 500,
        lazyConnect: false,
      })
    : undefined;
  redis?.on('error', (error: Error) =>
    options.log.warn({ err: error }, 'rate-limit store (Redis) unavailable'),
  );
  // Until Redis is connected every hit fails (open or closed, below), so the
  // server waits for the outcome of the first attempt, at most connectTimeout.
  const connected = new Promise<void>((resolve) => {
    if (!redis) return resolve();
    redis.once('ready', resolve);
    redis.once('error', () => resolve());
  });
  // Per issuer: instances of one deployment share counters, other deployments on the same Redis do not.
  const shared: CounterStore | undefined = redis
    ? new RedisStore(
        false,
        false,
        redis,
        `gatehouse-rl:${createHash('sha256').update(options.issuer).digest('hex').slice(0, 16)}:`,
      )
    : undefined;
  const stores = new Map<LimitName, CounterStore>(
    (Object.keys(limits) as LimitName[]).map((name) => [
      name,
      shared ?? new LocalStore(false, false, LOCAL_ENTRIES),
    ]),
  );

  const outcomeOf = (limit: LimitName, error: Error | null, count: Count | null): LimitOutcome => {
    const { max } = limits[limit];
    if (error || !count) {
      options.log.error(
        { err: error, limit },
        `rate limiter failed: failing ${FAIL_OPEN[limit] ? 'open' : 'closed'}`,
      );
      if (FAIL_OPEN[limit]) return { allowed: true, limit: max, remaining: 0, resetSeconds: 0 };
      throw new LimiterUnavailableError('the rate limiter is unavailable');
    }
    const allowed = count.current <= max;
    if (!allowed) options.onRefused?.(limit);
    return {
      allowed,
      limit: max,
      remaining: Math.max(0, max - count.current),
      resetSeconds: Math.ceil(count.ttl / 1000),
    };
  };

  // LocalStore calls back before incr() returns, so the in-process path needs
  // no closure per hit: one callback records the answer here.
  const answer: { error: Error | null; count: Count | null } = { error: null, count: null };
  const recordAnswer = (error: Error | null, count: Count | null) => {
    answer.error = error;
    answer.count = count;
  };

  return {
    hit(limit, key) {
      const store = stores.get(limit)!;
      const { windowMs, max } = limits[limit];
      if (!shared) {
        // Cleared first: were the store ever not to answer at once, that reads as a failed limiter, not a stale count.
        answer.error = null;
        answer.count = null;
        try {
          store.incr(`${limit}:${key}`, recordAnswer, windowMs, max);
        } catch (error) {
          return outcomeOf(limit, error as Error, null);
        }
        return outcomeOf(limit, answer.error, answer.count);
      }
      return new Promise<LimitOutcome>((resolve, reject) => {
        const deliver = (error: Error | null, count: Count | null) => {
          try {
            resolve(outcomeOf(limit, error, count));
          } catch (refusal) {
            reject(refusal);
          }
        };
        try {
          store.incr(`${limit}:${key}`, deliver, windowMs, max);
        } catch (error) {
          deliver(error as Error, null);
        }
      });
    },
    ready: () => connected,
    async close() {
      redis?.disconnect();
    },
  };
}

/** The standard headers (RateLimit-* and, when refused, Retry-After) on a raw or Fastify reply. */
export function setLimitHeaders(reply: FastifyReply, outcome: LimitOutcome): void {
  const res = reply.raw;
  // Lower-case names: see security-headers.ts.
  res.setHeader('ratelimit-limit', String(outcome.limit));
  res.setHeader('ratelimit-remaining', String(outcome.remaining));
  res.setHeader('ratelimit-reset', String(outcome.resetSeconds));
  if (!outcome.allowed) res.setHeader('retry-after', String(Math.max(1, outcome.resetSeconds)));
}
