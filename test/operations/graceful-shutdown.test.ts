// SIGTERM: stop accepting, finish in-flight requests, close the pool, exit 0.
// A real `gatehouse serve` process on its own database.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { applyMigrations } from '../../src/db/migrator.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { freePort } from '../helpers/server.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'gatehouse.js');

t.test('SIGTERM finishes the request in flight, then exits 0', async (t) => {
  const databaseUrl = await createTestDatabase(t);
  await applyMigrations(databaseUrl, {});
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      GATEHOUSE_ISSUER: `http://127.0.0.1:${port}`,
      GATEHOUSE_ENCRYPTION_KEY: Buffer.alloc(32, 3).toString('base64'),
      GATEHOUSE_COOKIE_KEYS: 'shutdown-test-cookie-key-0123456789abcdef',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Gatehouse is serving')) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exited.then((code) => reject(new Error(`exited early (${code}): ${output}`)));
  });

  // A request whose body is still arriving when the signal comes.
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  let answer = '';
  socket.on('data', (chunk) => (answer += chunk.toString()));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const body = 'grant_type=client_credentials&client_id=nobody&client_secret=x';
  const received = new Promise<void>((resolve) => {
    const onData = (chunk: Buffer) => {
      if (/incoming request.*|"url":"\/token"/.test(chunk.toString()) && chunk.toString().includes('/token'))
        resolve();
    };
    child.stdout.on('data', onData);
  });
  socket.write(
    `POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`,
  );
  await received; // the server has the request (its log says so) before the signal

  const stopping = new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('finishing in-flight requests')) resolve();
    });
  });
  child.kill('SIGTERM');
  await stopping;
  // The listener closes right after that line: try (boundedly) until a new connection is refused,
  // while the request above is still waiting for the rest of its body.
  let refused = 'accepted';
  for (let attempt = 0; attempt < 100 && refused === 'accepted'; attempt++) {
    refused = await new Promise<string>((resolve) => {
      const late = connect(port, '127.0.0.1');
      late.once('connect', () => {
        late.destroy();
        resolve('accepted');
      });
      late.once('error', () => resolve('refused'));
    });
  }
  t.equal(refused, 'refused', 'no new connections once shutting down');

  socket.write(body.slice(10)); // write, not end: a half-closed socket cannot take the answer
  await closed;
  t.match(answer, /^HTTP\/1\.1 401 /, 'the in-flight request still got its answer');
  t.match(answer, /invalid_client/);
  t.equal(await exited, 0, 'exit code 0');
  t.match(output, /"msg":"stopped"/, 'after closing everything');
});
