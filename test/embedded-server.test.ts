// The zero-install path, as a newcomer meets it: `gatehouse serve` with no
// DATABASE_URL on an empty data dir, the CLI working beside the running server
// (through its advertised socket), a second server refused, data kept across a
// restart, and SIGTERM ending the process cleanly.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import t from 'tap';
import { runCli } from './helpers/cli.ts';
import { freePort } from './helpers/server.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'gatehouse.js');

interface Served {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts `gatehouse serve`; resolves once it logs that it is serving, or rejects when it exits first. */
function serve(env: Record<string, string>): Promise<Served> {
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Gatehouse is serving')) resolve({ child, output: () => output, exited });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    exited.then((code) => reject(new Error(`serve exited with ${code}: ${output}`)));
  });
}

t.test('embedded database: serve, CLI beside it, one server per data dir', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'gatehouse-e2e-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const env = {
    GATEHOUSE_DATA_DIR: dataDir,
    GATEHOUSE_ISSUER: issuer,
    PORT: String(port),
    LOG_LEVEL: 'info',
  };

  const first = await serve(env);
  t.teardown(() => {
    if (first.child.exitCode === null) first.child.kill('SIGKILL');
  });
  t.match(
    first.output(),
    /GATEHOUSE_ENCRYPTION_KEY is not set: using a development value/,
    'development keys warned about',
  );
  t.match(first.output(), /The database is empty/, 'the start-up log explains the first steps');

  const discovery = await fetch(`${issuer}/.well-known/openid-configuration`);
  t.equal(discovery.status, 200);

  const created = await runCli(
    [
      'client',
      'create',
      '--name',
      'svc',
      '--grant',
      'client_credentials',
      '--scope',
      'api:read',
      '--resource',
      'https://api.example.com',
      '--json',
    ],
    { GATEHOUSE_DATA_DIR: dataDir },
  );
  t.equal(created.code, 0, `the CLI works beside the running server: ${created.stderr}`);
  const { client_id, client_secret } = JSON.parse(created.stdout);

  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client_id}:${client_secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
  t.equal(response.status, 200, 'the running server sees the client the CLI created');
  const { access_token } = await response.json();
  const { payload } = await jwtVerify(access_token, createRemoteJWKSet(new URL(`${issuer}/jwks`)), {
    issuer,
    audience: 'https://api.example.com',
  });
  t.equal(payload.client_id, client_id);

  const secondPort = await freePort();
  const second = spawn(process.execPath, [BIN, 'serve'], {
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(secondPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let secondOutput = '';
  second.stderr?.on('data', (chunk) => (secondOutput += chunk));
  const secondCode = await new Promise((resolve) => second.once('exit', resolve));
  t.equal(secondCode, 1, 'a second server on the same data dir refuses to start');
  t.match(secondOutput, /in use by another Gatehouse/);

  first.child.kill('SIGTERM');
  t.equal(await first.exited, 0, 'SIGTERM shuts down cleanly with exit code 0');

  const keys = await runCli(['key', 'list', '--json'], { GATEHOUSE_DATA_DIR: dataDir });
  t.equal(keys.code, 0, keys.stderr);
  t.equal(JSON.parse(keys.stdout).length, 1, 'with no server running the CLI opens the data dir itself');

  const again = await serve({ ...env, PORT: String(await freePort()) });
  t.teardown(() => {
    if (again.child.exitCode === null) again.child.kill('SIGKILL');
  });
  t.notMatch(again.output(), /The database is empty/, 'data survives a restart');
  again.child.kill('SIGTERM');
  t.equal(await again.exited, 0);
});
