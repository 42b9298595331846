// The per-request logger Fastify is given: request ids and redaction as with a
// pino child, made only when a line at an enabled level is written.
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { deferredChildLogger, loggerOptions } from '../../src/logger.ts';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  const parent = pino(loggerOptions(level) as pino.LoggerOptions, sink);
  return { parent, lines, flush: () => new Promise((resolve) => setImmediate(resolve)) };
}

t.test('lines at enabled levels carry the bindings and are redacted like a pino child', async (t) => {
  const { parent, lines, flush } = capture('warn');
  const log = deferredChildLogger(parent, { request_id: 'req-7' }, {});
  log.info('not written at warn');
  log.debug({ detail: 1 }, 'not written either');
  log.warn({ body: { password: 'hunter2 hunter2' } }, 'something odd');
  log.error('failed');
  await flush();
  t.same(
    lines.map((line) => [line.msg, line.request_id]),
    [
      ['something odd', 'req-7'],
      ['failed', 'req-7'],
    ],
  );
  t.same(lines[0]!.body, { password: '[redacted]' });
});

t.test('credentials are redacted at the top level of a logged object and one level down', async (t) => {
  const { parent, lines, flush } = capture('info');
  parent.info({ password: 'top secret value', client_secret: 'abc', body: { token: 'tkn' }, kid: 'k1' }, 'x');
  await flush();
  t.same(lines[0], {
    ...lines[0],
    password: '[redacted]',
    client_secret: '[redacted]',
    body: { token: '[redacted]' },
    kid: 'k1',
  });
});

t.test('a route-level log level applies, and the level reads as the effective one', async (t) => {
  const { parent, lines, flush } = capture('info');
  const quiet = deferredChildLogger(parent, { request_id: 'req-8' }, { level: 'warn' });
  t.equal(quiet.level, 'warn');
  quiet.info('below the route level');
  const normal = deferredChildLogger(parent, { request_id: 'req-9' }, {});
  t.equal(normal.level, 'info');
  normal.info('at the server level');
  await flush();
  t.same(
    lines.map((line) => [line.msg, line.request_id]),
    [['at the server level', 'req-9']],
  );
});

t.test('children of the request logger keep its bindings', async (t) => {
  const { parent, lines, flush } = capture('info');
  deferredChildLogger(parent, { request_id: 'req-10' }, {}).child({ part: 'interaction' }).info('nested');
  await flush();
  t.equal(lines[0]?.request_id, 'req-10');
  t.equal(lines[0]?.part, 'interaction');
});
