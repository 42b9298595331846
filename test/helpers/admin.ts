// What the admin API tests share: real tokens from the token endpoint and the
// sign-in pages, a small JSON client for /admin, and an authenticator app.
import { setTimeout as sleep } from 'node:timers/promises';
import { generateSync } from 'otplib';
import type { TestServer } from './server.ts';
import { discover, exchange, signIn } from './sign-in.ts';

export const REDIRECT = 'https://admin-console.example.com/callback';
export const LOA2 = 'urn:gatehouse:loa:2';
const PERIOD = 30;

export function adminResource(issuer: string): string {
  return `${issuer}/admin`;
}

export interface Reply {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: test assertions read arbitrary JSON.
  body: any;
  text: string;
}

/** Calls the admin API: `body` is sent as JSON unless `raw` gives the exact bytes and content type. */
export async function call(
  base: string,
  token: string | undefined,
  method: string,
  path: string,
  options: { body?: unknown; raw?: { type: string; data: string }; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.raw) {
    headers['content-type'] = options.raw.type;
    body = options.raw.data;
  } else if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  const response = await fetch(`${base}${path}`, { method, headers, body });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** A bound admin client: `api('GET', '/admin/users')`. */
export function adminClient(base: string, token: string) {
  return (method: string, path: string, options?: Parameters<typeof call>[4]) =>
    call(base, token, method, path, options);
}

/** A client-credentials token from a plain POST /token (client_secret_basic). */
export async function clientCredentialsToken(
  issuer: string,
  clientId: string,
  secret: string,
  params: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, string> }> {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

/** Registers a client-credentials client for the admin API and returns a token getter. */
export async function createAdminService(server: TestServer, name = 'ops-automation') {
  const created = await server.gatehouse.clients.create(
    {
      name,
      grants: ['client_credentials'],
      scope: 'admin',
      resources: [adminResource(server.issuer)],
    },
    { actor: 'test' },
  );
  const clientId = created.client.client_id;
  const secret = created.client_secret!;
  return {
    clientId,
    secret,
    async token(): Promise<string> {
      const reply = await clientCredentialsToken(server.issuer, clientId, secret, {
        resource: adminResource(server.issuer),
      });
      if (reply.status !== 200) throw new Error(`token request failed: ${JSON.stringify(reply.body)}`);
      return reply.body.access_token!;
    },
  };
}

/**
 * An authenticator app that never offers a step the server already took: the
 * server refuses a code at or before the last accepted step (replay), so a
 * second sign-in within 30 s uses the next step's code (±1 step is accepted)
 * and a third waits for the clock.
 */
export class Authenticator {
  readonly secret: string;
  #lastStep = Number.NEGATIVE_INFINITY;
  constructor(secret: string) {
    this.secret = secret;
  }
  async next(): Promise<string> {
    for (;;) {
      const current = Math.floor(Date.now() / 1000 / PERIOD);
      const step = Math.max(current, this.#lastStep + 1);
      if (step <= current + 1) {
        this.#lastStep = step;
        return generateSync({ secret: this.secret, epoch: step * PERIOD });
      }
      await sleep((current + 1) * PERIOD * 1000 - Date.now() + 100);
    }
  }
}

/** A first-party client that may ask for the admin API on a user's behalf, and how to sign in through it. */
export async function createAdminConsole(server: TestServer) {
  const created = await server.gatehouse.clients.create(
    {
      name: 'Admin console',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      scope: 'openid profile email roles offline_access admin',
      resources: [adminResource(server.issuer)],
      first_party: true,
    },
    { actor: 'test' },
  );
  const config = await discover(server.issuer, created.client.client_id, created.client_secret);
  return {
    clientId: created.client.client_id,
    secret: created.client_secret!,
    config,
    /** Signs in through the pages and exchanges the code for an admin-audience token (and an ID token). */
    async signIn(email: string, password: string, secondFactor?: () => Promise<string>) {
      const resource = adminResource(server.issuer);
      const flow = await signIn({
        issuer: server.issuer,
        config,
        redirectUri: REDIRECT,
        email,
        password,
        scope: 'openid roles admin',
        params: { resource },
        ...(secondFactor ? { secondFactor } : {}),
      });
      return exchange(config, flow, { resource });
    },
  };
}

/** Polls `check` every 200 ms until it holds or `timeoutMs` passes; says whether it held. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(200);
  }
}
