// The rate limiter on @fastify/rate-limit's stores: the in-process counters
// answer at once (the token endpoint decides without waiting), Redis answers
// through a promise, and both count, refuse and reset alike.
import pino from 'pino';
import t from 'tap';
import type { RateLimits } from '../../src/config.ts';
import { createRateLimiter, LimiterUnavailableError } from '../../src/routes/rate-limits.ts';

const LIMITS: RateLimits = {
  token: { max: 2, windowMs: 60_000 },
  login: { max: 1, windowMs: 60_000 },
  login_ip: { max: 5, windowMs: 60_000 },
  admin: { max: 5, windowMs: 60_000 },
};
const quiet = pino({ level: 'silent' });

t.test('in process: each hit is answered at once, and the limit holds per limit and key', async (t) => {
  const refused: string[] = [];
  const limiter = createRateLimiter(LIMITS, {
    log: quiet,
    issuer: 'https://id.example.com',
    onRefused: (limit) => refused.push(limit),
  });
  t.teardown(() => limiter.close());
  await limiter.ready();
  const first = limiter.hit('token', 'ip:127.0.0.1');
  t.notOk(first instanceof Promise, 'not a promise');
  t.same(first, { allowed: true, limit: 2, remaining: 1, resetSeconds: 60 });
  t.match(limiter.hit('token', 'ip:127.0.0.1'), { allowed: true, remaining: 0 });
  const third = limiter.hit('token', 'ip:127.0.0.1') as { allowed: boolean; resetSeconds: number };
  t.equal(third.allowed, false, 'the third hit in the window is refused');
  t.ok(third.resetSeconds > 0 && third.resetSeconds <= 60, 'with the seconds until the window resets');
  t.same(refused, ['token'], 'and reported once');
  t.match(limiter.hit('token', 'ip:127.0.0.2'), { allowed: true }, 'another key has its own count');
  t.match(limiter.hit('login_ip', 'ip:127.0.0.1'), { allowed: true }, 'another limit too');
});

t.test('in Redis: a promise, counts shared by limiters of one issuer only', async (t) => {
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const issuer = `https://id-${crypto.randomUUID()}.example.com`;
  const a = createRateLimiter(LIMITS, { redisUrl, log: quiet, issuer });
  const b = createRateLimiter(LIMITS, { redisUrl, log: quiet, issuer });
  const elsewhere = createRateLimiter(LIMITS, { redisUrl, log: quiet, issuer: `${issuer}/other` });
  t.teardown(() => Promise.all([a.close(), b.close(), elsewhere.close()]));
  await Promise.all([a.ready(), b.ready(), elsewhere.ready()]);
  const pending = a.hit('token', 'client:svc');
  t.ok(pending instanceof Promise, 'a promise');
  t.match(await pending, { allowed: true, remaining: 1 });
  t.match(
    await b.hit('token', 'client:svc'),
    { allowed: true, remaining: 0 },
    'the other instance counts on',
  );
  t.match(await a.hit('token', 'client:svc'), { allowed: false }, 'and the limit holds across both');
  t.match(
    await elsewhere.hit('token', 'client:svc'),
    { allowed: true, remaining: 1 },
    'another issuer counts apart',
  );
});

t.test('Redis unreachable: token limits fail open, sign-in limits fail closed', async (t) => {
  const limiter = createRateLimiter(LIMITS, {
    redisUrl: 'redis://127.0.0.1:1',
    log: quiet,
    issuer: 'https://id.example.com',
  });
  t.teardown(() => limiter.close());
  await limiter.ready();
  t.match(await limiter.hit('token', 'ip:127.0.0.1'), { allowed: true });
  await t.rejects(
    Promise.resolve().then(() => limiter.hit('login', 'alice')),
    LimiterUnavailableError,
  );
});
