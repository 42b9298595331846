// Starts a real, listening Gatehouse on a fresh database for one test file.
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfig } from '../../src/config.ts';
import { loggerOptions } from '../../src/logger.ts';
import { type RunningServer, startServer } from '../../src/server.ts';
import { createTestDatabase, type TestContext } from './database.ts';

export interface TestServer extends RunningServer {
  issuer: string;
  /** Every log line the server wrote, for assertions about what is (not) logged. */
  logs: string[];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function startTestServer(
  t: TestContext,
  env: Record<string, string> = {},
  options: { databaseUrl?: string } = {},
): Promise<TestServer> {
  const databaseUrl = options.databaseUrl ?? (await createTestDatabase(t));
  const port = await freePort();
  const config = loadConfig({
    GATEHOUSE_ISSUER: `http://127.0.0.1:${port}`,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    // Fixed test keys: never use these anywhere else.
    GATEHOUSE_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    GATEHOUSE_COOKIE_KEYS: 'test-cookie-key-0123456789abcdefghijklmnop',
    LOG_LEVEL: 'info',
    // Every test signs in from 127.0.0.1 many times; rate-limit tests set their own.
    GATEHOUSE_RATE_LIMITS: 'token=100000/60s,login=100000/60s,login_ip=100000/60s,admin=100000/60s',
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(chunk.toString());
      callback();
    },
  });
  const log = pino(loggerOptions(config.logLevel) as pino.LoggerOptions, sink);
  const server = await startServer(config, log);
  t.teardown(() => server.close());
  return { ...server, issuer: config.issuer, logs };
}
