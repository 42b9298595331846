// The sign-in flow without a browser, for the benchmark: authorization request
// (PKCE S256), login form, consent (skipped by first-party clients), code
// exchange. A fetch-based cookie-jar agent (after test/helpers/sign-in.ts)
// follows the redirects the way a browser would and never leaves the issuer.
//
// Imported by bench/run.ts (closed-loop load at a fixed concurrency, setup of
// refresh and opaque tokens), and run as its own process for the open-loop
// load (N sign-ins per second beside the token load):
//   node bench/flows.ts '<json FlowTarget & {rate, seconds, maxInFlight}>'
// prints one JSON line of FlowStats.
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

/** Everything a flow needs to know about the server, the client and the accounts. */
export interface FlowTarget {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  scope: string;
  /** Accounts to sign in as, all with `password`. */
  emails: string[];
  password: string;
}

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
}

export interface FlowStats {
  flows: number;
  errors: number;
  /** Flows not started because too many were in flight (open loop only). */
  skipped: number;
  httpRequests: number;
  elapsedMs: number;
  /** Milliseconds, one per completed flow. */
  flowLatencies: number[];
  /** Milliseconds, one per HTTP request of completed and failed flows. */
  requestLatencies: number[];
  /** Milliseconds, one per login form post (where the password is verified). */
  loginLatencies: number[];
  firstError?: string;
}

interface Step {
  status: number;
  location: string | null;
  body: string;
  /** How long the request took, in milliseconds. */
  ms: number;
}

class Agent {
  readonly cookies = new Map<string, string>();
  readonly latencies: number[];

  constructor(latencies: number[]) {
    this.latencies = latencies;
  }

  async request(url: string, form?: Record<string, string>): Promise<Step> {
    const headers: Record<string, string> = {};
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (cookie) headers.cookie = cookie;
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const started = performance.now();
    const response = await fetch(url, {
      method: form ? 'POST' : 'GET',
      headers,
      body: form ? new URLSearchParams(form).toString() : undefined,
      redirect: 'manual',
      signal: AbortSignal.timeout(30_000),
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const location = response.headers.get('location');
    const body = await response.text();
    const ms = performance.now() - started;
    this.latencies.push(ms);
    return {
      status: response.status,
      location: location ? new URL(location, url).toString() : null,
      body,
      ms,
    };
  }

  /** Follows redirects while they stay on the issuer; stops at the client's redirect_uri or a page. */
  async follow(step: Step, issuer: string): Promise<Step> {
    let current = step;
    for (let hops = 0; hops < 10; hops++) {
      if (!current.location || current.status < 300 || current.status >= 400) return current;
      if (!current.location.startsWith(`${issuer}/`)) return current;
      current = await this.request(current.location);
    }
    throw new Error('too many redirects');
  }
}

function csrfOf(page: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(page);
  if (!match?.[1]) throw new Error(`no CSRF field in page: ${page.slice(0, 200)}`);
  return match[1];
}

function formActionOf(page: string): string {
  const match = /<form method="post" action="([^"]+)"/.exec(page);
  if (!match?.[1]) throw new Error(`no form in page (${page.slice(0, 200)})`);
  return match[1];
}

export function basicAuth(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** One complete sign-in as `email`: returns the token response of the code exchange. */
export async function signInOnce(
  target: FlowTarget,
  email: string,
  latencies: number[],
  loginLatencies: number[] = [],
): Promise<TokenSet> {
  const agent = new Agent(latencies);
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('base64url');
  const url = new URL(`${target.issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: target.clientId,
    response_type: 'code',
    redirect_uri: target.redirectUri,
    scope: target.scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    nonce: randomBytes(16).toString('base64url'),
    // offline_access yields a refresh token only with prompt=consent (OIDC Core §11).
    prompt: 'consent',
  }).toString();

  let step = await agent.follow(await agent.request(url.toString()), target.issuer);
  for (let pages = 0; pages < 4 && step.status < 300; pages++) {
    if (step.status !== 200) throw new Error(`page answered ${step.status}: ${step.body.slice(0, 200)}`);
    const action = new URL(formActionOf(step.body), target.issuer).toString();
    const csrf = csrfOf(step.body);
    if (action.endsWith('/login')) {
      step = await agent.request(action, { csrf, username: email, password: target.password });
      loginLatencies.push(step.ms);
    } else if (action.endsWith('/confirm')) {
      step = await agent.request(action, { csrf });
    } else {
      throw new Error(`unexpected page with form ${action}`);
    }
    if (step.status >= 400) throw new Error(`form answered ${step.status}: ${step.body.slice(0, 200)}`);
    step = await agent.follow(step, target.issuer);
  }
  if (!step.location?.startsWith(target.redirectUri)) {
    throw new Error(`sign-in did not reach the redirect_uri (${step.status}): ${step.body.slice(0, 200)}`);
  }
  const callback = new URL(step.location);
  if (callback.searchParams.get('state') !== state) throw new Error('state mismatch');
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`no code in the callback: ${callback.search}`);

  const started = performance.now();
  const response = await fetch(`${target.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: basicAuth(target.clientId, target.clientSecret),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: target.redirectUri,
      code_verifier: verifier,
    }).toString(),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  latencies.push(performance.now() - started);
  if (response.status !== 200) throw new Error(`code exchange answered ${response.status}: ${text}`);
  return JSON.parse(text) as TokenSet;
}

/**
 * Hands out accounts so that no account has more than `perAccount` sign-ins in
 * flight: the account lockout counts every attempt before it is checked
 * (5 within 15 minutes), so more parallel sign-ins of one account than that
 * would be refused however right the password.
 */
class AccountPool {
  readonly #busy: Map<string, number>;
  readonly #perAccount: number;

  constructor(emails: string[], perAccount = 4) {
    this.#busy = new Map(emails.map((email) => [email, 0]));
    this.#perAccount = perAccount;
  }

  get capacity(): number {
    return this.#busy.size * this.#perAccount;
  }

  lease(): string | undefined {
    let best: string | undefined;
    let least = this.#perAccount;
    for (const [email, count] of this.#busy) {
      if (count < least) {
        best = email;
        least = count;
      }
    }
    if (best !== undefined) this.#busy.set(best, least + 1);
    return best;
  }

  release(email: string): void {
    this.#busy.set(email, Math.max(0, (this.#busy.get(email) ?? 1) - 1));
  }
}

function emptyStats(): FlowStats {
  return {
    flows: 0,
    errors: 0,
    skipped: 0,
    httpRequests: 0,
    elapsedMs: 0,
    flowLatencies: [],
    requestLatencies: [],
    loginLatencies: [],
  };
}

async function runOne(target: FlowTarget, pool: AccountPool, stats: FlowStats): Promise<void> {
  const email = pool.lease();
  if (email === undefined) {
    stats.skipped++;
    return;
  }
  const started = performance.now();
  try {
    await signInOnce(target, email, stats.requestLatencies, stats.loginLatencies);
    stats.flowLatencies.push(performance.now() - started);
    stats.flows++;
  } catch (error) {
    stats.errors++;
    stats.firstError ??= (error as Error).message;
  } finally {
    pool.release(email);
  }
}

/** `concurrency` workers signing in back to back for `seconds` (at most `maxFlows` in all). */
export async function runClosedLoop(
  target: FlowTarget,
  options: { concurrency: number; seconds: number; maxFlows?: number },
): Promise<FlowStats> {
  const stats = emptyStats();
  const pool = new AccountPool(target.emails);
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  const maxFlows = options.maxFlows ?? 100_000;
  let begun = 0;
  const worker = async () => {
    while (performance.now() < deadline && begun < maxFlows) {
      begun++;
      await runOne(target, pool, stats);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  stats.elapsedMs = performance.now() - started;
  stats.httpRequests = stats.requestLatencies.length;
  return stats;
}

/**
 * Starts `rate` sign-ins per second for `seconds`, whatever the previous ones
 * are doing (open loop), never more than `maxInFlight` at once; waits for the
 * last ones to finish (each request times out after 30 s).
 */
export async function runOpenLoop(
  target: FlowTarget,
  options: { rate: number; seconds: number; maxInFlight: number },
): Promise<FlowStats> {
  const stats = emptyStats();
  const pool = new AccountPool(target.emails);
  const started = performance.now();
  const total = Math.round(options.rate * options.seconds);
  const running = new Set<Promise<void>>();
  for (let index = 0; index < total; index++) {
    const due = started + (index * 1000) / options.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (running.size >= options.maxInFlight) {
      stats.skipped++;
      continue;
    }
    const flow = runOne(target, pool, stats).finally(() => running.delete(flow));
    running.add(flow);
  }
  await Promise.all(running);
  stats.elapsedMs = performance.now() - started;
  stats.httpRequests = stats.requestLatencies.length;
  return stats;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const options = JSON.parse(process.argv[2] ?? '{}') as FlowTarget & {
    rate: number;
    seconds: number;
    maxInFlight: number;
  };
  // run.ts starts the token load when it reads this line.
  process.stdout.write(`${JSON.stringify({ started: true })}\n`);
  const stats = await runOpenLoop(options, options);
  process.stdout.write(`${JSON.stringify(stats)}\n`);
}
