// Rate limits (SPEC GATEHOUSE_RATE_LIMITS) on @fastify/rate-limit's counters:
// in process by default, in Redis with REDIS_URL so every instance shares them.
//
// If Redis fails, the token and admin limits fail OPEN (services keep getting
// tokens; an outage of the limiter must not become an outage of every API) and
// the sign-in limits fail CLOSED (guessing passwords while the brake is off is
// worse than a short sign-in outage). Both are logged.
import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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
  /** Counts one hit of `key` against `limit`. */
  hit(limit: LimitName, key: string): Promise<LimitOutcome>;
  close(): Promise<void>;
}

const FAIL_OPEN: Record<LimitName, boolean> = { token: true, admin: true, login: false, login_ip: false };

type Checker = ReturnType<FastifyInstance['createRateLimit']>;

export async function registerRateLimits(
  app: FastifyInstance,
  limits: RateLimits,
  options: {
    redisUrl?: string | undefined;
    log: FastifyBaseLogger;
    issuer: string;
    onRefused?: (limit: LimitName) => void;
  },
): Promise<RateLimiter> {
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
  await app.register(rateLimit, {
    global: false,
    // Per issuer: instances of one deployment share counters, other deployments on the same Redis do not.
    ...(redis
      ? {
          redis,
          nameSpace: `gatehouse-rl:${createHash('sha256').update(options.issuer).digest('hex').slice(0, 16)}:`,
        }
      : {}),
  });
  const checkers = new Map<LimitName, Checker>();
  for (const name of Object.keys(limits) as LimitName[]) {
    checkers.set(
      name,
      app.createRateLimit({
        max: limits[name].max,
        timeWindow: limits[name].windowMs,
        keyGenerator: (request) => (request as unknown as { limitKey: string }).limitKey,
        // Errors surface to hit(), which decides per limit.
        skipOnError: false,
      }),
    );
  }

  return {
    async hit(limit, key) {
      const check = checkers.get(limit)!;
      // The checker reads only the key and the route's config from the request.
      const probe = {
        limitKey: `${limit}:${key}`,
        routeOptions: { config: {} },
      } as unknown as FastifyRequest;
      try {
        const result = await check(probe);
        if (result.isAllowed)
          return { allowed: true, limit: limits[limit].max, remaining: limits[limit].max, resetSeconds: 0 };
        if (result.isExceeded) options.onRefused?.(limit);
        return {
          allowed: !result.isExceeded,
          limit: result.max,
          remaining: result.remaining,
          resetSeconds: result.ttlInSeconds,
        };
      } catch (error) {
        options.log.error(
          { err: error, limit },
          `rate limiter failed: failing ${FAIL_OPEN[limit] ? 'open' : 'closed'}`,
        );
        if (FAIL_OPEN[limit])
          return { allowed: true, limit: limits[limit].max, remaining: 0, resetSeconds: 0 };
        throw new LimiterUnavailableError('the rate limiter is unavailable');
      }
    },
    async close() {
      redis?.disconnect();
    },
  };
}

/** The standard headers (RateLimit-* and, when refused, Retry-After) on a raw or Fastify reply. */
export function setLimitHeaders(reply: FastifyReply, outcome: LimitOutcome): void {
  const res = reply.raw;
  res.setHeader('RateLimit-Limit', String(outcome.limit));
  res.setHeader('RateLimit-Remaining', String(outcome.remaining));
  res.setHeader('RateLimit-Reset', String(outcome.resetSeconds));
  if (!outcome.allowed) res.setHeader('Retry-After', String(Math.max(1, outcome.resetSeconds)));
}
