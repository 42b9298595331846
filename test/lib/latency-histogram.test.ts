// LatencyHistogram must print exactly what prom-client's own Histogram prints
// for the same observations: Prometheus scrapes it as one of prom-client's.
import { Histogram, Registry } from 'prom-client';
import t from 'tap';
import { LatencyHistogram } from '../../src/lib/latency-histogram.ts';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const LABELS = ['route', 'method'] as const;
/** Bucket bounds themselves (le is inclusive), values past the last bound, zero, several series. */
const OBSERVATIONS: [string, string, number][] = [
  ['/token', 'POST', 0.0021],
  ['/token', 'POST', 0.005],
  ['/jwks', 'GET', 0],
  ['/token', 'POST', 3.7],
  ['/token', 'GET', 0.00049],
  ['/jwks', 'GET', 2.5],
  ['/token', 'POST', 0.1],
  ['/admin/users/:id', 'PATCH', 0.0333],
];

function pair() {
  const ours = new Registry();
  const theirs = new Registry();
  const options = { name: 'test_latency_seconds', help: 'Latency, by route and method', labelNames: LABELS };
  const latency = new LatencyHistogram({ ...options, buckets: BUCKETS, registers: [ours] });
  const reference = new Histogram({ ...options, buckets: BUCKETS, registers: [theirs] });
  return { ours, theirs, latency, reference };
}

t.test("prints exactly what prom-client's Histogram prints for the same observations", async (t) => {
  const { ours, theirs, latency, reference } = pair();
  for (const [route, method, seconds] of OBSERVATIONS) {
    latency.series(`${route} ${method}`, { route, method }).observe(seconds);
    reference.observe({ route, method }, seconds);
  }
  const text = await ours.metrics();
  t.equal(text, await theirs.metrics());
  t.match(text, /test_latency_seconds_bucket\{le="0.005",route="\/token",method="POST"\} 2/);
  t.match(text, /test_latency_seconds_count\{route="\/token",method="POST"\} 4/);
});

t.test('one series per key, however often it is asked for', async (t) => {
  const { ours, latency } = pair();
  latency.series('/jwks GET', { route: '/jwks', method: 'GET' }).observe(0.002);
  latency.series('/jwks GET', { route: '/jwks', method: 'GET' }).observe(0.003);
  t.match(await ours.metrics(), /test_latency_seconds_count\{route="\/jwks",method="GET"\} 2/);
});

t.test('refuses a label set other than the declared one', async (t) => {
  const { latency } = pair();
  t.throws(
    () => latency.series('x', { route: '/x' } as unknown as Record<(typeof LABELS)[number], string>),
    /labels must be exactly route, method/,
  );
  t.throws(
    () =>
      latency.series('y', { route: '/y', method: 'GET', status: '200' } as unknown as Record<
        (typeof LABELS)[number],
        string
      >),
    /labels must be exactly/,
  );
});

t.test('the registry resets it, and a series kept from before the reset goes on counting', async (t) => {
  const { ours, theirs, latency, reference } = pair();
  const kept = latency.series('/jwks GET', { route: '/jwks', method: 'GET' });
  kept.observe(0.002);
  reference.observe({ route: '/jwks', method: 'GET' }, 0.002);
  ours.resetMetrics();
  theirs.resetMetrics();
  t.notMatch(await ours.metrics(), /test_latency_seconds_count/);
  t.equal(await ours.metrics(), await theirs.metrics());
  kept.observe(0.004);
  reference.observe({ route: '/jwks', method: 'GET' }, 0.004);
  t.match(await ours.metrics(), /test_latency_seconds_count\{route="\/jwks",method="GET"\} 1/);
  t.equal(await ours.metrics(), await theirs.metrics());
});
