import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { decodeJwt } from 'jose';
import { generateSync } from 'otplib';
import t, { type Test } from 'tap';
import { argon2idHasher, type PasswordHasher } from '../../src/services/passwords.ts';
import { UserService } from '../../src/services/users.ts';
import { freePort, startTestServer, type TestServer } from '../helpers/server.ts';
import { Agent, csrfOf, discover, exchange, formActionOf, type Step } from '../helpers/sign-in.ts';
import { makeSelfSignedCertificate } from '../helpers/tls.ts';

const APP1 = 'https://app1.test/cb';
const APP1_ORIGIN = 'https://app1.test';
const LOGGED_OUT = 'https://app1.test/logged-out';
const PASSWORD = 'correct horse battery staple';
const WRONG = 'definitely not the password';
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
const VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
const SIGN_IN_FAILED = 'Incorrect email or password.';
const PERIOD = 30;
const LEAK = /\bat .+\(|node_modules|prisma|SELECT |INSERT |\bP20\d\d\b|stack/i;
/** The cookies oidc-provider sets; Gatehouse sets none of its own. */
const PROVIDER_COOKIES = /^_(interaction|interaction_resume|session)(\.legacy)?(\.sig)?$/;

// ---------------------------------------------------------------- servers and fixtures

// The sign-in limits are set high so that the account lockout, not rate limiting, is what trips.
const server = await startTestServer(t, {
  GATEHOUSE_RATE_LIMITS: 'token=100000/60s,login=100000/60s,login_ip=100000/60s,admin=100000/60s',
});
const { issuer, gatehouse } = server;

const web1 = await gatehouse.clients.create(
  {
    name: 'web1',
    grants: ['authorization_code', 'refresh_token'],
    redirect_uris: [APP1],
    post_logout_redirect_uris: [LOGGED_OUT],
    scope: 'openid profile email offline_access',
    cors_origins: [APP1_ORIGIN],
  },
  { actor: 'test' },
);
const W1 = web1.client.client_id;
const S1 = web1.client_secret!;
const web1Config = await discover(issuer, W1, S1);
const ops = await gatehouse.clients.create(
  { name: 'ops', grants: ['client_credentials'], scope: 'admin', resources: [`${issuer}/admin`] },
  { actor: 'test' },
);
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const adminToken = await (async () => {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basic(ops.client.client_id, ops.client_secret!),
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: `${issuer}/admin` }),
  });
  return ((await response.json()) as { access_token: string }).access_token;
})();

/** A second server whose issuer is https (as behind a TLS-terminating proxy), shared by BR-4 and BR-5. */
let tlsProxied: Promise<TestServer> | undefined;
const root = t;
function behindTlsProxy(): Promise<TestServer> {
  tlsProxied ??= startTestServer(root, { GATEHOUSE_ISSUER: 'https://as.example.test' });
  return tlsProxied;
}

let userCount = 0;
async function createUser(
  options: { email?: string; password?: string; totp?: boolean; disabled?: boolean } = {},
): Promise<{ id: string; email: string; password: string; totp?: Authenticator }> {
  userCount++;
  const email = options.email ?? `user${String(userCount).padStart(3, '0')}@example.com`;
  const password = options.password ?? PASSWORD;
  const user = await gatehouse.users.create(
    { email, password, name: `User ${userCount}` },
    { actor: 'test' },
  );
  if (options.disabled) await gatehouse.db.user.update({ where: { id: user.id }, data: { disabled: true } });
  let totp: Authenticator | undefined;
  if (options.totp) totp = new Authenticator((await gatehouse.mfa.enrollForOperator(email)).secret);
  return { id: user.id, email, password, ...(totp ? { totp } : {}) };
}

/** An authenticator app: codes by step, never offering the server a step twice. */
class Authenticator {
  readonly secret: string;
  lastStep = Number.NEGATIVE_INFINITY;
  constructor(secret: string) {
    this.secret = secret;
  }
  static now(): number {
    return Math.floor(Date.now() / 1000 / PERIOD);
  }
  codeAt(step: number): string {
    return generateSync({ secret: this.secret, epoch: step * PERIOD });
  }
  /** The next step the server has not taken (±1 step is accepted, so two sign-ins per step never wait). */
  fresh(): string {
    const step = Math.max(Authenticator.now(), this.lastStep + 1);
    this.lastStep = step;
    return this.codeAt(step);
  }
  /** Six digits that are no code of the window around now. */
  wrong(seed = 0): string {
    const now = Authenticator.now();
    const window = new Set([-2, -1, 0, 1, 2].map((offset) => this.codeAt(now + offset)));
    for (let candidate = 100_000 + seed; ; candidate++) {
      const code = String(candidate % 1_000_000).padStart(6, '0');
      if (!window.has(code)) return code;
    }
  }
}

function authUrl(base = issuer, params: Record<string, string> = {}): string {
  const url = new URL(`${base}/auth`);
  for (const [key, value] of Object.entries({
    client_id: W1,
    response_type: 'code',
    redirect_uri: APP1,
    scope: 'openid profile',
    state: 'S',
    nonce: 'N',
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
    ...params,
  }))
    url.searchParams.set(key, value);
  return url.toString();
}

interface Attempt {
  agent: Agent;
  page: Step;
  uid: string;
  action: string;
  csrf: string;
}

/** Starts an authorization request and follows it to the first sign-in page. */
async function begin(params: Record<string, string> = {}, agent = new Agent()): Promise<Attempt> {
  const page = await agent.follow(await agent.request(authUrl(issuer, params)), issuer);
  return attemptOf(agent, page);
}

function attemptOf(agent: Agent, page: Step): Attempt {
  const action = new URL(formActionOf(page.body), issuer).toString();
  return { agent, page, action, uid: new URL(action).pathname.split('/')[2]!, csrf: csrfOf(page.body) };
}

function login(
  attempt: Attempt,
  username: string,
  password: string,
  headers: Record<string, string> = {},
): Promise<Step> {
  return attempt.agent.request(`${issuer}/interaction/${attempt.uid}/login`, {
    form: { csrf: attempt.csrf, username, password },
    headers,
  });
}

/** Password (and a TOTP code if asked), then consent: the client's callback URL. */
async function signInFully(
  user: { email: string; password: string; totp?: Authenticator },
  params: Record<string, string> = {},
  agent = new Agent(),
): Promise<{ agent: Agent; callback: URL; pages: Step[] }> {
  const pages: Step[] = [];
  let step = await agent.follow(await agent.request(authUrl(issuer, params)), issuer);
  for (let i = 0; i < 5 && step.status === 200; i++) {
    pages.push(step);
    const action = new URL(formActionOf(step.body), issuer).toString();
    const csrf = csrfOf(step.body);
    if (action.endsWith('/login')) {
      step = await agent.request(action, { form: { csrf, username: user.email, password: user.password } });
    } else if (action.endsWith('/mfa')) {
      step = await agent.request(action, { form: { csrf, code: user.totp!.fresh() } });
    } else {
      step = await agent.request(action, { form: { csrf } });
    }
    step = await agent.follow(step, issuer);
  }
  if (!step.location?.startsWith(APP1))
    throw new Error(`sign-in did not finish: ${step.status} ${step.body.slice(0, 200)}`);
  return { agent, callback: new URL(step.location), pages };
}

async function lastAudit(type: string, limit = 100) {
  return gatehouse.audit.list({ type, limit });
}

/** Plain node:http, for headers fetch will not send (Host, TRACE, …). */
function raw(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; ca?: Buffer } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        ...(options.ca ? { ca: options.ca } : {}),
      },
      (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** oidc-provider's self-submitting form (what a browser posts on its own), if the page is one. */
function autoSubmitForm(page: string): { action: string; fields: Record<string, string> } | undefined {
  if (!page.includes('document.forms[0].submit()')) return undefined;
  const action = /<form method="post" action="([^"]+)"/.exec(page)?.[1];
  if (!action) return undefined;
  const fields = Object.fromEntries(
    [...page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)].map((match) => [
      match[1]!,
      match[2]!,
    ]),
  );
  return { action: action.replaceAll('&amp;', '&'), fields };
}

function sessionCookies(agent: Agent): Record<string, string> {
  return Object.fromEntries([...agent.cookies].filter(([name]) => name.startsWith('_session')));
}

/** prompt=none for scopes the user already consented to: a code while the session lives. */
async function silentAuth(agent: Agent, scope = 'openid profile'): Promise<URL> {
  const step = await agent.follow(await agent.request(authUrl(issuer, { prompt: 'none', scope })), issuer);
  return new URL(step.location!);
}

// ---------------------------------------------------------------- J. browser-facing

t.test('BR-1 login CSRF and cross-interaction POSTs are refused and change nothing', async (t) => {
  const victimUser = await createUser();
  const attackerUser = await createUser();
  // The attacker prepares an interaction of their own and its CSRF token.
  const attackers = await begin();
  // The victim's browser is in its own interaction and has no cookie for the attacker's.
  const victim = await begin();
  const crossSite = { origin: 'https://evil.test', 'sec-fetch-site': 'cross-site' };

  const inVictimBrowser = { ...attackers, agent: victim.agent };
  const autoSubmit = await login(inVictimBrowser, attackerUser.email, attackerUser.password, crossSite);
  t.equal(autoSubmit.status, 403, 'auto-submitted form from evil.test: 403');
  const noOrigin = await login(inVictimBrowser, attackerUser.email, attackerUser.password);
  t.ok(
    noOrigin.status === 400 || noOrigin.status === 403,
    `without the interaction cookie (no Origin header): ${noOrigin.status}`,
  );
  t.same(sessionCookies(victim.agent), {}, 'no session cookie in the victim browser');

  const missing = await victim.agent.request(victim.action, {
    form: { username: victimUser.email, password: victimUser.password },
  });
  t.equal(missing.status, 403, 'same-origin POST without a CSRF token: 403');
  const wrong = await victim.agent.request(victim.action, {
    form: { csrf: attackers.csrf, username: victimUser.email, password: victimUser.password },
  });
  t.equal(wrong.status, 403, "same-origin POST with another interaction's CSRF token: 403");
  const forgedToken = await victim.agent.request(victim.action, {
    form: {
      csrf: randomBytes(24).toString('base64url'),
      username: victimUser.email,
      password: victimUser.password,
    },
  });
  t.equal(forgedToken.status, 403, 'a made-up CSRF token: 403');
  const evilOrigin = await login(victim, victimUser.email, victimUser.password, {
    origin: 'https://evil.test',
  });
  t.equal(evilOrigin.status, 403, 'Origin: https://evil.test: 403');
  for (const refused of [autoSubmit, noOrigin, missing, wrong, forgedToken, evilOrigin]) {
    t.equal(refused.location, null, 'no redirect');
    t.notOk(
      refused.headers.getSetCookie().some((line) => line.startsWith('_session')),
      'no session cookie set',
    );
  }
  t.same(sessionCookies(victim.agent), {}, 'still no session cookie');
  for (const attempt of [attackers, victim]) {
    const still = await attempt.agent.request(`${issuer}/interaction/${attempt.uid}`);
    t.equal(still.status, 200, 'the interaction did not advance…');
    t.match(formActionOf(still.body), /\/login$/, '…it still asks for the password');
  }
  const control = await login(victim, victimUser.email, victimUser.password);
  t.equal(control.status, 303, 'control: the genuine same-origin form works');
});

t.test('BR-2 cross-site consent and logout without the xsrf token are refused', async (t) => {
  const user = await createUser();
  const attempt = await begin({ scope: 'openid email', prompt: 'consent' });
  const afterLogin = await attempt.agent.follow(await login(attempt, user.email, user.password), issuer);
  t.match(formActionOf(afterLogin.body), /\/confirm$/, 'the consent page');
  const consent = attemptOf(attempt.agent, afterLogin);
  const grantsBefore = await gatehouse.db.oidcArtifact.count({ where: { kind: 'Grant' } });
  const crossSite = await consent.agent.request(consent.action, {
    form: { csrf: consent.csrf },
    headers: { origin: 'https://evil.test', 'sec-fetch-site': 'cross-site' },
  });
  t.equal(crossSite.status, 403, 'cross-site POST /confirm: 403');
  const noCsrf = await consent.agent.request(consent.action, { form: {} });
  t.equal(noCsrf.status, 403, 'POST /confirm without the CSRF token: 403');
  t.equal(await gatehouse.db.oidcArtifact.count({ where: { kind: 'Grant' } }), grantsBefore, 'no grant');
  t.equal(await gatehouse.db.consent.count({ where: { userId: user.id } }), 0, 'no consent remembered');
  const still = await consent.agent.request(`${issuer}/interaction/${consent.uid}`);
  t.match(formActionOf(still.body), /\/confirm$/, 'still on the consent page');
  const approved = await consent.agent.follow(
    await consent.agent.request(consent.action, { form: { csrf: consent.csrf } }),
    issuer,
  );
  t.ok(new URL(approved.location!).searchParams.get('code'), 'control: the genuine consent gives a code');

  // Logout: a confirmation page, and nothing ends without the xsrf token.
  const agent = attempt.agent;
  const page = await agent.request(`${issuer}/session/end`);
  t.equal(page.status, 200, 'GET /session/end without a hint: a confirmation page');
  t.match(page.headers.get('content-type') ?? '', /text\/html/);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.body)?.[1];
  t.ok(xsrf, 'the confirmation form carries an xsrf token');
  t.ok((await silentAuth(agent, 'openid email')).searchParams.get('code'), 'GET alone logs nobody out');
  const withoutXsrf = await agent.request(`${issuer}/session/end/confirm`, { form: { logout: 'yes' } });
  t.equal(withoutXsrf.status, 400, 'POST /session/end/confirm without xsrf: 400');
  const wrongXsrf = await agent.request(`${issuer}/session/end/confirm`, {
    form: { xsrf: randomBytes(16).toString('hex'), logout: 'yes' },
  });
  t.equal(wrongXsrf.status, 400, 'with a wrong xsrf: 400');
  t.ok((await silentAuth(agent, 'openid email')).searchParams.get('code'), 'the session survived both');
  const done = await agent.request(`${issuer}/session/end/confirm`, { form: { xsrf: xsrf!, logout: 'yes' } });
  t.ok(done.status === 303 || done.status === 200, `control: the genuine logout (${done.status})`);
  t.equal(
    (await silentAuth(agent, 'openid email')).searchParams.get('error'),
    'login_required',
    'and then the session is gone',
  );
});

/** Every HTML page a browser can be shown, with the one that led there. */
async function everyPage(): Promise<Array<[string, Step]>> {
  const user = await createUser({ totp: true });
  const pages: Array<[string, Step]> = [];
  const attempt = await begin({ scope: 'openid email', prompt: 'consent' });
  pages.push(['login page (via /auth)', attempt.page]);
  const mfa = await attempt.agent.follow(await login(attempt, user.email, user.password), issuer);
  pages.push(['second-factor page', mfa]);
  const consent = await attempt.agent.follow(
    await attempt.agent.request(new URL(formActionOf(mfa.body), issuer).toString(), {
      form: { csrf: csrfOf(mfa.body), code: user.totp!.fresh() },
    }),
    issuer,
  );
  pages.push(['consent page', consent]);
  pages.push(['logout confirmation', await attempt.agent.request(`${issuer}/session/end`)]);
  pages.push(['failed login page', await login(await begin(), user.email, WRONG)]);
  pages.push(['interaction error page', await new Agent().request(`${issuer}/interaction/nope`)]);
  pages.push([
    'provider error page (/auth)',
    await new Agent().request(authUrl(issuer, { client_id: 'nope' })),
  ]);
  pages.push([
    'provider error page (bad redirect_uri)',
    await new Agent().request(authUrl(issuer, { redirect_uri: 'https://evil.test/cb' })),
  ]);
  pages.push(['account page without a session', await new Agent().request(`${issuer}/account/mfa`)]);
  return pages;
}

t.test('BR-3 every HTML page forbids framing (CSP frame-ancestors and X-Frame-Options)', async (t) => {
  for (const [label, page] of await everyPage()) {
    t.match(page.headers.get('content-type') ?? '', /text\/html/, `${label}: HTML`);
    t.match(
      page.headers.get('content-security-policy') ?? '',
      /frame-ancestors 'none'/,
      `${label}: frame-ancestors 'none'`,
    );
    t.equal(page.headers.get('x-frame-options'), 'DENY', `${label}: X-Frame-Options DENY`);
  }
});

t.test('BR-4 transport and caching headers (HSTS over TLS is also in https.test.ts)', async (t) => {
  const user = await createUser();
  const flow = await signInFully(user, { scope: 'openid profile offline_access', prompt: 'consent' });
  const code = flow.callback.searchParams.get('code')!;
  const token = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(W1, S1) },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: APP1,
      code_verifier: VERIFIER,
    }),
  });
  const tokens = (await token.clone().json()) as { access_token: string };
  const failedToken = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(W1, S1) },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: 'nope',
      redirect_uri: APP1,
      code_verifier: VERIFIER,
    }),
  });
  const userinfo = await fetch(`${issuer}/me`, {
    headers: { authorization: `Bearer ${tokens.access_token}` },
  });
  const introspection = await fetch(`${issuer}/token/introspection`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(W1, S1) },
    body: new URLSearchParams({ token: tokens.access_token }),
  });
  t.equal(token.status, 200);
  t.equal(userinfo.status, 200);
  t.equal(introspection.status, 200);
  for (const [label, response] of [
    ['token', token],
    ['token error', failedToken],
    ['userinfo', userinfo],
    ['introspection', introspection],
  ] as const) {
    t.match(response.headers.get('cache-control') ?? '', /no-store/, `${label}: Cache-Control no-store`);
    t.equal(response.headers.get('x-content-type-options'), 'nosniff', `${label}: nosniff`);
    t.match(
      response.headers.get('content-type') ?? '',
      /^application\/json; charset=utf-8/i,
      `${label}: JSON with a charset`,
    );
  }
  // Pages that see codes: the sign-in pages, and the redirect that carries the code to the client.
  const carrying = await begin();
  const toClient = await carrying.agent.follow(await login(carrying, user.email, user.password), issuer);
  t.match(toClient.location ?? '', /[?&]code=/, 'the redirect carrying a code');
  for (const [label, step] of [
    ['redirect carrying the code', toClient],
    ...flow.pages.map((page, index) => [`sign-in page ${index + 1}`, page] as const),
  ] as const) {
    t.equal(step.headers.get('referrer-policy'), 'no-referrer', `${label}: Referrer-Policy no-referrer`);
    t.equal(step.headers.get('x-content-type-options'), 'nosniff', `${label}: nosniff`);
    if (step.status === 200) {
      t.match(step.headers.get('cache-control') ?? '', /no-store/, `${label}: no-store`);
      t.match(step.headers.get('content-type') ?? '', /charset=utf-8/i, `${label}: charset`);
    }
  }
  // Behind a TLS proxy (an https issuer), every response says HTTPS-only, the provider's included.
  const proxied = await behindTlsProxy();
  for (const path of ['/healthz', '/jwks', '/.well-known/openid-configuration', '/nope', '/interaction/x']) {
    const response = await fetch(`${proxied.url}${path}`);
    t.match(
      response.headers.get('strict-transport-security') ?? '',
      /max-age=(3153[6-9]\d{3}|31[6-9]\d{5}|3[2-9]\d{6}|[4-9]\d{7}|\d{9,}); includeSubDomains/,
      `${path}: HSTS ≥ 1 year with includeSubDomains`,
    );
    t.equal(response.headers.get('x-content-type-options'), 'nosniff', `${path}: nosniff`);
  }
});

t.test(
  'BR-5 cookies are HttpOnly, SameSite=Lax, signed, Secure behind TLS; no cookies of our own',
  async (t) => {
    const user = await createUser({ totp: true });
    const lines: string[] = [];
    const agent = new Agent();
    const original = agent.request.bind(agent);
    agent.request = async (url, init) => {
      const step = await original(url, init);
      lines.push(...step.headers.getSetCookie());
      return step;
    };
    await signInFully(user, { prompt: 'consent', scope: 'openid email' }, agent);
    const names = new Set(lines.map((line) => line.split('=')[0]!));
    for (const expected of ['_interaction', '_interaction_resume', '_session']) {
      t.ok(names.has(expected), `${expected} is set`);
      t.ok(names.has(`${expected}.sig`), `${expected} is signed (${expected}.sig)`);
    }
    for (const line of lines) {
      const name = line.split('=')[0]!;
      t.match(
        name,
        PROVIDER_COOKIES,
        `${name}: a provider cookie (Gatehouse sets none of its own, so no __Host- cookie is needed)`,
      );
      t.match(line, /;\s*httponly/i, `${name}: HttpOnly`);
      t.match(line, /;\s*samesite=(lax|strict)/i, `${name}: SameSite=Lax`);
      t.notMatch(line, /;\s*domain=/i, `${name}: host-only (no Domain)`);
    }
    // Behind a TLS-terminating proxy (https issuer), cookies are Secure even though the hop is plain HTTP.
    const proxied = await behindTlsProxy();
    const client = await proxied.gatehouse.clients.create(
      { name: 'web', grants: ['authorization_code'], redirect_uris: [APP1] },
      { actor: 'test' },
    );
    const response = await fetch(authUrl(proxied.url, { client_id: client.client.client_id }), {
      redirect: 'manual',
    });
    const secureLines = response.headers.getSetCookie();
    t.ok(secureLines.length >= 2, 'the authorization request sets the interaction cookies');
    for (const line of secureLines)
      t.match(line, /;\s*secure/i, `${line.split('=')[0]}: Secure behind the TLS proxy`);
  },
);

t.test('BR-6 session ids change at login; planted and logged-out sessions are dead', async (t) => {
  const victim = await createUser({ totp: true });
  const attacker = await createUser();
  // The attacker's own, valid session, and a made-up one, planted in the victim's browser.
  const attackerFlow = await signInFully(attacker, { prompt: 'consent' });
  const attackerSession = sessionCookies(attackerFlow.agent);
  t.ok(attackerSession._session, 'the attacker has a session');
  for (const planted of [
    attackerSession,
    { _session: 'planted-by-attacker-0123456789', '_session.sig': 'x' },
  ]) {
    const browser = new Agent();
    for (const [name, value] of Object.entries(planted)) browser.cookies.set(name, value);
    const seen = new Set<string>(Object.values(planted));
    const attempt = await begin({ prompt: 'login' }, browser);
    const mfa = await browser.follow(await login(attempt, victim.email, victim.password), issuer);
    t.match(formActionOf(mfa.body), /\/mfa$/, 'the second-factor page');
    const between = browser.cookies.get('_session');
    t.ok(between === undefined || between === planted._session, 'no new session before the second factor');
    let done = await browser.follow(
      await browser.request(new URL(formActionOf(mfa.body), issuer).toString(), {
        form: { csrf: csrfOf(mfa.body), code: victim.totp!.fresh() },
      }),
      issuer,
    );
    // Another account's session is ended first through a self-submitting form, then consent.
    for (let pages = 0; pages < 3 && done.status === 200; pages++) {
      const auto = autoSubmitForm(done.body);
      if (auto) {
        t.equal(
          done.headers.get('x-frame-options'),
          'DENY',
          'the self-submitting logout form is not frameable',
        );
        done = await browser.follow(await browser.request(auto.action, { form: auto.fields }), issuer);
      } else {
        done = await browser.follow(
          await browser.request(new URL(formActionOf(done.body), issuer).toString(), {
            form: { csrf: csrfOf(done.body) },
          }),
          issuer,
        );
      }
    }
    t.ok(done.location?.startsWith(APP1), 'signed in');
    const after = browser.cookies.get('_session');
    t.ok(after && !seen.has(after), 'a fresh session id after the second factor');
    const tokens = await exchange(web1Config, {
      agent: browser,
      callback: new URL(done.location!),
      verifier: VERIFIER,
      state: 'S',
      nonce: 'N',
      sawConsent: false,
    });
    t.equal(decodeJwt(tokens.id_token!).sub, victim.id, 'the browser is signed in as the victim');
  }
  // The planted (attacker's) session ended when the victim signed in over it: it is dead, never the victim's.
  const replay = new Agent();
  for (const [name, value] of Object.entries(attackerSession)) replay.cookies.set(name, value);
  t.equal(
    (await silentAuth(replay)).searchParams.get('error'),
    'login_required',
    'the planted session is dead',
  );
  // A made-up session cookie is no session.
  const madeUp = new Agent();
  madeUp.cookies.set('_session', 'planted-by-attacker-0123456789');
  t.equal(
    (await silentAuth(madeUp)).searchParams.get('error'),
    'login_required',
    'a made-up session is dead',
  );
  // After logout the old cookie is dead (and worked until then).
  const fresh = await signInFully(attacker);
  const saved = sessionCookies(fresh.agent);
  const copy = () => {
    const agent = new Agent();
    for (const [name, value] of Object.entries(saved)) agent.cookies.set(name, value);
    return agent;
  };
  t.ok(
    (await silentAuth(copy())).searchParams.get('code'),
    'control: a copy of the cookie works before logout',
  );
  const page = await fresh.agent.request(`${issuer}/session/end`);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.body)![1]!;
  await fresh.agent.request(`${issuer}/session/end/confirm`, { form: { xsrf, logout: 'yes' } });
  t.equal(
    (await silentAuth(copy())).searchParams.get('error'),
    'login_required',
    'the logged-out cookie is dead',
  );
});

t.test('BR-7 no CORS for untrusted origins; never a reflected origin with credentials', async (t) => {
  const preflight = (path: string, origin: string) =>
    fetch(`${issuer}${path}`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': path === '/auth' ? 'GET' : 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
  const user = await createUser();
  const flow = await signInFully(user, { prompt: 'consent' });
  const userAccessToken = (
    await exchange(web1Config, { ...flow, verifier: VERIFIER, state: 'S', nonce: 'N', sawConsent: true })
  ).access_token;
  const control = await preflight('/token', APP1_ORIGIN);
  t.equal(control.headers.get('access-control-allow-origin'), APP1_ORIGIN, 'control: the registered origin');
  const paths = ['/token', '/me', '/token/introspection', '/token/revocation', '/admin/keys', '/auth'];
  for (const origin of ['https://evil.test', 'null', 'https://app1.test.evil.test', 'http://app1.test']) {
    for (const path of paths) {
      const answer = await preflight(path, origin);
      t.equal(
        answer.headers.get('access-control-allow-origin'),
        null,
        `OPTIONS ${path} from ${origin}: no ACAO`,
      );
      t.not(
        answer.headers.get('access-control-allow-credentials'),
        'true',
        `OPTIONS ${path}: no credentials`,
      );
    }
    const real: Array<[string, RequestInit]> = [
      [
        'POST /token',
        { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials', client_id: W1 }) },
      ],
      ['GET /me', { headers: { authorization: 'Bearer x' } }],
      ['GET /me', { headers: { authorization: `Bearer ${userAccessToken}` } }],
      [
        'POST /token',
        {
          method: 'POST',
          body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'nope' }),
        },
      ],
      ['POST /token', { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) }],
      [
        'POST /token/introspection',
        { method: 'POST', body: new URLSearchParams({ token: 'x', client_id: W1 }) },
      ],
      [
        'POST /token/revocation',
        { method: 'POST', body: new URLSearchParams({ token: 'x', client_id: W1 }) },
      ],
      [
        'POST /token/introspection',
        { method: 'POST', body: new URLSearchParams({ token: 'x', client_id: 'nope' }) },
      ],
      [
        'POST /token/revocation',
        { method: 'POST', body: new URLSearchParams({ token: 'x', client_id: 'nope' }) },
      ],
      ['GET /admin/keys', { headers: { authorization: `Bearer ${adminToken}` } }],
      ['GET /auth', {}],
    ];
    for (const [label, init] of real) {
      const path = label.split(' ')[1]!;
      const what = `${label}${init.body ? ` ${String(init.body)}` : ''}${(init.headers as Record<string, string> | undefined)?.authorization === 'Bearer x' ? ' (bad token)' : ''}`;
      const url = path === '/auth' ? authUrl() : `${issuer}${path}`;
      const answer = await fetch(url, {
        ...init,
        redirect: 'manual',
        headers: { ...(init.headers as Record<string, string>), origin },
      });
      t.equal(answer.headers.get('access-control-allow-origin'), null, `${what} from ${origin}: no ACAO`);
      t.not(answer.headers.get('access-control-allow-credentials'), 'true', `${what}: no credentials`);
    }
  }
  // /auth never does CORS, not even for a registered origin.
  const auth = await fetch(authUrl(), { redirect: 'manual', headers: { origin: APP1_ORIGIN } });
  t.equal(auth.headers.get('access-control-allow-origin'), null, '/auth from the registered origin: no ACAO');
  for (const path of ['/jwks', '/.well-known/openid-configuration']) {
    const answer = await fetch(`${issuer}${path}`, { headers: { origin: 'https://evil.test' } });
    t.ok(
      ['*', 'https://evil.test', null].includes(answer.headers.get('access-control-allow-origin')),
      `${path}: public metadata may allow any origin (${answer.headers.get('access-control-allow-origin')})`,
    );
    t.not(answer.headers.get('access-control-allow-credentials'), 'true', `${path}: never with credentials`);
  }
});

t.test('BR-8 plain HTTP: pages redirect to HTTPS, APIs fail loudly (see also https.test.ts)', async (t) => {
  const { cert, key, ca } = makeSelfSignedCertificate(t);
  const port = await freePort();
  const redirectPort = await freePort();
  const tlsIssuer = `https://127.0.0.1:${port}`;
  const tls = await startTestServer(t, {
    GATEHOUSE_ISSUER: tlsIssuer,
    PORT: String(port),
    GATEHOUSE_TLS_CERT_FILE: cert,
    GATEHOUSE_TLS_KEY_FILE: key,
    GATEHOUSE_HTTP_REDIRECT_PORT: String(redirectPort),
  });
  const client = await tls.gatehouse.clients.create(
    { name: 'web', grants: ['authorization_code'], redirect_uris: [APP1] },
    { actor: 'test' },
  );
  const plain = `http://127.0.0.1:${redirectPort}`;
  const auth = authUrl(plain, { client_id: client.client.client_id });
  for (const method of ['GET', 'HEAD']) {
    const answer = await raw(auth, { method });
    t.ok(answer.status === 301 || answer.status === 308, `${method} /auth over HTTP: ${answer.status}`);
    t.equal(
      answer.headers.location,
      auth.replace(plain, tlsIssuer),
      `${method} /auth: to the same URL over HTTPS`,
    );
  }
  for (const path of ['/token', '/me', '/token/introspection', '/token/revocation', '/admin/keys']) {
    const answer = await raw(`${plain}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('x', 'y') },
      body: 'grant_type=client_credentials',
    });
    t.equal(answer.status, 400, `POST ${path} over HTTP: 400`);
    t.equal(answer.headers.location, undefined, `POST ${path}: no redirect that would resend the body`);
    t.equal(JSON.parse(answer.body).error, 'https_required', `POST ${path}: https_required`);
  }
  // The HTTPS port does not answer plain HTTP with anything usable.
  const confused = await raw(`http://127.0.0.1:${port}/token`, {
    method: 'POST',
    body: 'grant_type=x',
  }).catch((error: Error) => ({ status: 0, body: error.message, headers: {} }));
  t.ok(
    confused.status === 0 || confused.status === 400,
    `plain HTTP on the HTTPS port: ${confused.status || 'connection closed'}`,
  );
  const secure = await raw(`${tlsIssuer}/token`, { method: 'POST', ca, body: '' });
  t.match(
    String(secure.headers['strict-transport-security']),
    /max-age=\d+; includeSubDomains/,
    'HSTS over HTTPS',
  );
});

t.test(
  'BR-9 spoofed proxy headers change neither the issuer, redirects, cookies nor rate-limit keys',
  async (t) => {
    const limited = await startTestServer(t, { GATEHOUSE_RATE_LIMITS: 'login=1000/60s,login_ip=3/60s' });
    const web = await limited.gatehouse.clients.create(
      { name: 'web', grants: ['authorization_code'], redirect_uris: [APP1] },
      { actor: 'test' },
    );
    const spoofs: Record<string, string>[] = [
      { host: 'evil.test' },
      { 'x-forwarded-host': 'evil.test' },
      { 'x-forwarded-proto': 'https' },
      { forwarded: 'for=10.9.9.9;host=evil.test;proto=https' },
      { 'x-forwarded-host': 'evil.test', 'x-forwarded-proto': 'https', 'x-forwarded-for': '10.1.1.1' },
    ];
    for (const headers of spoofs) {
      const label = JSON.stringify(headers);
      const discovery = await raw(`${limited.url}/.well-known/openid-configuration`, { headers });
      const document = JSON.parse(discovery.body) as Record<string, string>;
      t.equal(document.issuer, limited.issuer, `${label}: issuer unchanged`);
      t.ok(document.token_endpoint?.startsWith(limited.issuer), `${label}: endpoints unchanged`);
      const auth = await raw(authUrl(limited.url, { client_id: web.client.client_id }), { headers });
      t.ok(auth.status === 302 || auth.status === 303, `${label}: /auth redirects to the sign-in page`);
      const location = new URL(String(auth.headers.location), limited.issuer);
      t.equal(location.origin, new URL(limited.issuer).origin, `${label}: the redirect stays on the issuer`);
      for (const line of (auth.headers['set-cookie'] as string[] | undefined) ?? []) {
        t.notMatch(line, /;\s*secure/i, `${label}: no Secure decision from a spoofed X-Forwarded-Proto`);
        t.notMatch(line, /domain=evil/i, `${label}: no cookie for evil.test`);
      }
    }
    // A fresh X-Forwarded-For on every attempt does not escape the per-IP limit (3 here).
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const agent = new Agent();
      const page = await agent.follow(
        await agent.request(authUrl(limited.url, { client_id: web.client.client_id })),
        limited.issuer,
      );
      const step = await agent.request(new URL(formActionOf(page.body), limited.issuer).toString(), {
        form: { csrf: csrfOf(page.body), username: `nobody${i}@example.com`, password: WRONG },
        headers: { 'x-forwarded-for': `198.51.100.${i + 1}`, 'x-real-ip': `198.51.100.${i + 1}` },
      });
      statuses.push(step.status);
    }
    t.same(statuses, [401, 401, 401, 429, 429], 'the per-IP limit trips whatever X-Forwarded-For says');
    const failures = await limited.gatehouse.audit.list({ type: 'login.failure', limit: 10 });
    t.ok(
      failures.length >= 3 && failures.every((event) => event.ip === '127.0.0.1'),
      'audited with the real peer address',
    );
  },
);

// ---------------------------------------------------------------- K. login, MFA, brute force, identifiers

t.test('LG-1 five failures lock the account; even the right password then fails the same way', async (t) => {
  const alice = await createUser();
  const attempt = await begin();
  const failures: Step[] = [];
  for (let i = 0; i < 5; i++) {
    failures.push(
      await login(attempt, alice.email, `${WRONG} ${i}`, { 'x-forwarded-for': `203.0.113.${i + 1}` }),
    );
  }
  t.same(
    failures.map((step) => step.status),
    [401, 401, 401, 401, 401],
    'five wrong passwords',
  );
  const locked = await login(attempt, alice.email, alice.password, { 'x-forwarded-for': '203.0.113.99' });
  t.equal(locked.status, 401, 'the right password after five failures: 401');
  t.match(locked.body, SIGN_IN_FAILED, 'with the same generic message');
  const normalise = (body: string) => body.replace(/name="csrf" value="[^"]*"/, '');
  t.equal(
    normalise(locked.body),
    normalise(failures[0]!.body),
    'an identical page: the lock is not disclosed',
  );
  t.equal(
    (await login(attempt, alice.email, `${WRONG} more`, { 'x-forwarded-for': '203.0.113.100' })).status,
    401,
    'further attempts: the same',
  );
  const row = await gatehouse.db.user.findUniqueOrThrow({ where: { id: alice.id } });
  t.ok(row.lockedUntil && row.lockedUntil.getTime() > Date.now(), 'the account is locked');
  t.ok(
    row.lockedUntil!.getTime() <= Date.now() + 15 * 60_000,
    'temporarily (at most 15 minutes: no lockout as denial of service)',
  );
  const lockEvents = (await lastAudit('account.locked')).filter(
    (event) => event.target === `user:${alice.id}`,
  );
  t.equal(lockEvents.length, 1, 'the lock is audited');
  const reasons = (await lastAudit('login.failure'))
    .filter((event) => event.target === `user:${alice.id}`)
    .map((event) => event.details.reason);
  t.equal(reasons.filter((reason) => reason === 'bad_password').length, 5, 'five bad_password failures');
  t.ok(reasons.includes('locked'), 'then failures for the lock');
  t.ok(
    (await lastAudit('login.failure'))
      .filter((event) => event.target === `user:${alice.id}`)
      .every((event) => event.ip === '127.0.0.1'),
    'the spoofed X-Forwarded-For is not trusted (no trusted proxy configured)',
  );
  // The lock expires (simulated: its end moved into the past) and the right password works again.
  await gatehouse.db.user.update({
    where: { id: alice.id },
    data: { lockedUntil: new Date(Date.now() - 1000) },
  });
  t.equal(
    (await login(attempt, alice.email, alice.password)).status,
    303,
    'after the lock: the right password works',
  );
  const reset = await gatehouse.db.user.findUniqueOrThrow({ where: { id: alice.id } });
  t.equal(reset.failedLogins, 0, 'and the counter is reset');
  t.equal(reset.lockouts, 0, 'and so is the back-off');
});

t.test(
  'LG-2 fifty parallel wrong passwords: at most five are checked and the account ends locked',
  async (t) => {
    const bob = await createUser();
    const attempt = await begin();
    let release!: () => void;
    const barrier = new Promise<void>((resolve) => (release = resolve));
    const racing = Array.from({ length: 50 }, async (_, i) => {
      await barrier;
      return login(attempt, bob.email, `${WRONG} #${i}`);
    });
    release();
    const results = await Promise.all(racing);
    t.same(new Set(results.map((step) => step.status)), new Set([401]), 'every attempt: 401, none 5xx');
    t.ok(await gatehouse.lockout.isLocked(bob.id), 'the account is locked');
    const events = (await lastAudit('login.failure', 200)).filter(
      (event) => event.target === `user:${bob.id}`,
    );
    t.equal(events.length, 50, 'every attempt is audited');
    const checked = events.filter((event) => event.details.reason === 'bad_password').length;
    t.ok(checked <= 5, `at most five passwords were actually checked (${checked})`);
    t.equal(
      events.filter((event) => event.details.reason === 'locked').length,
      50 - checked,
      'the rest: locked',
    );
    t.equal((await login(attempt, bob.email, bob.password)).status, 401, 'the right password is refused now');
  },
);

t.test('LG-3 unknown, wrong, locked, disabled and MFA users get identical answers', async (t) => {
  // Addresses of one length, so even Content-Length is equal.
  const wrongPassword = await createUser({ email: 'lg3-wrongpw@example.com' });
  const lockedUser = await createUser({ email: 'lg3-lockedx@example.com' });
  const disabledUser = await createUser({ email: 'lg3-disable@example.com', disabled: true });
  const mfaUser = await createUser({ email: 'lg3-mfauser@example.com', totp: true });
  await gatehouse.db.user.update({
    where: { id: lockedUser.id },
    data: { lockedUntil: new Date(Date.now() + 60_000) },
  });
  const cases: Array<[string, string, string]> = [
    ['unknown user', 'lg3-unknown@example.com', PASSWORD],
    ['wrong password', wrongPassword.email, WRONG],
    ['locked user, right password', lockedUser.email, lockedUser.password],
    ['disabled user, right password', disabledUser.email, disabledUser.password],
    ['MFA user, wrong password', mfaUser.email, WRONG],
  ];
  const answers: Array<{ label: string; status: number; body: string; headers: string }> = [];
  for (const [label, email, password] of cases) {
    const attempt = await begin();
    const step = await login(attempt, email, password);
    const body = step.body
      .replaceAll(attempt.uid, '{uid}')
      .replace(/name="csrf" value="[^"]*"/, 'name="csrf" value=""')
      .replace(/value="[^"]*@example\.com"/, 'value="{email}"');
    const lines: string[] = [];
    step.headers.forEach((value, name) => {
      if (!['date', 'set-cookie', 'x-request-id'].includes(name)) lines.push(`${name}: ${value}`);
    });
    const headers = lines.sort().join('\n');
    answers.push({ label, status: step.status, body, headers });
    t.equal(step.status, 401, `${label}: 401`);
    t.match(step.body, SIGN_IN_FAILED, `${label}: the generic message`);
    t.match(formActionOf(step.body), /\/login$/, `${label}: the next step is the login form again`);
  }
  const [first, ...rest] = answers;
  for (const other of rest) {
    t.equal(other.body, first!.body, `${other.label}: the same body as ${first!.label}`);
    t.equal(other.headers, first!.headers, `${other.label}: the same headers as ${first!.label}`);
  }
});

t.test('LG-4 unknown users pay the same argon2 verify as known ones (structural)', async (t) => {
  // The server's own UserService hides its hasher; the same class over the same
  // database, with a spy in its place, shows which path each attempt takes
  // (test/services/users.test.ts covers every branch).
  const calls: string[] = [];
  const spy: PasswordHasher = {
    hash: (value) => argon2idHasher.hash(value),
    verify: async (hash, value) => {
      calls.push(hash);
      return argon2idHasher.verify(hash, value);
    },
    needsRehash: (hash) => argon2idHasher.needsRehash(hash),
    dummyHash: () => argon2idHasher.dummyHash(),
  };
  const users = new UserService(gatehouse.db, gatehouse.audit, { hasher: spy, lockout: gatehouse.lockout });
  const known = await createUser();
  const stored = (await gatehouse.db.user.findUniqueOrThrow({ where: { id: known.id } })).passwordHash!;
  const dummy = await argon2idHasher.dummyHash();
  t.match(dummy, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'the dummy hash has the real cost parameters');
  t.equal(dummy.split('$')[3], stored.split('$')[3], 'the same parameters as a user hash');
  for (let i = 0; i < 5; i++) {
    calls.length = 0;
    t.notOk((await users.authenticate(`nobody-${i}@example.com`, WRONG)).ok);
    t.same(calls, [dummy], `unknown user ${i}: one verify, against the dummy hash`);
    calls.length = 0;
    t.notOk((await users.authenticate(known.email, `${WRONG} ${i}`)).ok);
    t.same(calls, [stored], `wrong password ${i}: one verify, against the user's hash`);
    await gatehouse.lockout.unlock(known.id);
  }
  // Over HTTP the two paths answer identically (LG-3); the medians belong in the benchmark.
  const unknown = await login(await begin(), 'nobody-http@example.com', WRONG);
  const wrong = await login(await begin(), known.email, WRONG);
  t.equal(unknown.status, wrong.status);
});

t.test('LG-5 a TOTP code is accepted once, within ±1 step; malformed codes get a generic 400', async (t) => {
  const user = await createUser({ totp: true });
  const app = user.totp!;
  const toMfa = async () => {
    const attempt = await begin();
    const mfa = await attempt.agent.follow(await login(attempt, user.email, user.password), issuer);
    t.match(formActionOf(mfa.body), /\/mfa$/, 'the second-factor page');
    return attemptOf(attempt.agent, mfa);
  };
  const submit = (attempt: Attempt, code: string) =>
    attempt.agent.request(attempt.action, { form: { csrf: attempt.csrf, code } });

  const step = Authenticator.now();
  const x = app.codeAt(step);
  app.lastStep = step;
  const first = await toMfa();
  const accepted = await first.agent.follow(await submit(first, x), issuer);
  t.ok(accepted.location?.startsWith(APP1) || accepted.status === 200, 'code X at step T is accepted');

  const second = await toMfa();
  const replay = await submit(second, x);
  t.equal(replay.status, 401, 'X again in a new interaction: refused (replay)');
  t.equal((await submit(second, ` ${x} `)).status, 401, 'X with surrounding spaces: still a replay');
  const farSteps = (Date.now() / 1000) % PERIOD > PERIOD - 2 ? 3 : 2;
  for (const offset of [farSteps, -2]) {
    const code = app.codeAt(Authenticator.now() + offset);
    if ([-1, 0, 1].some((near) => app.codeAt(Authenticator.now() + near) === code)) continue;
    t.equal(
      (await submit(second, code)).status,
      401,
      `the code of step T${offset > 0 ? '+' : ''}${offset}: refused`,
    );
  }
  for (const [label, code] of [
    ['non-numeric', 'abcdef'],
    ['5 digits', '12345'],
    ['7 digits', '1234567'],
    ['empty', ''],
    ['NUL', '123\u0000456'],
    ['script', '<script>'],
  ] as const) {
    const answer = await submit(second, code);
    t.equal(answer.status, 400, `${label}: 400`);
    t.notMatch(answer.body, LEAK, `${label}: nothing leaks`);
  }
  const done = await second.agent.follow(await submit(second, app.fresh()), issuer);
  t.ok(done.location?.startsWith(APP1) || done.status === 200, 'control: a fresh code still works');
});

t.test('LG-6 wrong TOTP codes lock the account in every session, even for the right code', async (t) => {
  const toMfa = async (user: { email: string; password: string }) => {
    const attempt = await begin();
    const mfa = await attempt.agent.follow(await login(attempt, user.email, user.password), issuer);
    return attemptOf(attempt.agent, mfa);
  };
  const submit = (attempt: Attempt, code: string) =>
    attempt.agent.request(attempt.action, { form: { csrf: attempt.csrf, code } });

  // Five parallel interactions for one user, one wrong code each.
  const spread = await createUser({ totp: true });
  const sessions = await Promise.all(Array.from({ length: 5 }, () => toMfa(spread)));
  const wrong = await Promise.all(
    sessions.map((attempt, index) => submit(attempt, spread.totp!.wrong(index))),
  );
  t.same(
    wrong.map((step) => step.status),
    [401, 401, 401, 401, 401],
    'five wrong codes',
  );
  t.ok(await gatehouse.lockout.isLocked(spread.id), 'the account is locked after five wrong codes in all');
  const right = await submit(sessions[0]!, spread.totp!.fresh());
  t.equal(right.status, 401, 'the right code in another session is refused too');
  t.equal((await login(await begin(), spread.email, spread.password)).status, 401, 'and the right password');
  t.ok(
    (await lastAudit('account.locked')).some((event) => event.target === `user:${spread.id}`),
    'the lock is audited',
  );
  t.ok(
    (await lastAudit('mfa.failure')).filter((event) => event.target === `user:${spread.id}`).length >= 5,
    'every wrong code is audited',
  );

  // Six wrong codes in one attempt: the fifth ends the attempt, the sixth finds nothing to answer.
  const single = await createUser({ totp: true });
  const attempt = await toMfa(single);
  const statuses: number[] = [];
  let fifth: Step | undefined;
  for (let i = 0; i < 6; i++) {
    const step = await submit(attempt, single.totp!.wrong(i));
    statuses.push(step.status);
    if (i === 4) fifth = step;
  }
  t.same(statuses.slice(0, 5), [401, 401, 401, 401, 401], 'five wrong codes');
  t.match(fifth!.body, /Sign in again/, 'the fifth ends the attempt');
  t.ok(statuses[5] === 400 || statuses[5] === 401, `the sixth is refused (${statuses[5]})`);
  t.ok(await gatehouse.lockout.isLocked(single.id), 'and the account is locked');
  t.equal((await submit(attempt, single.totp!.fresh())).status >= 400, true, 'the right code is no use now');
});

t.test('LG-7 the second factor cannot be skipped; amr and acr come from server state', async (t) => {
  const user = await createUser({ totp: true });
  const attempt = await begin({ scope: 'openid email', prompt: 'consent' });
  const mfa = await attempt.agent.follow(await login(attempt, user.email, user.password), issuer);
  t.match(formActionOf(mfa.body), /\/mfa$/, 'after the password: the second-factor page');
  const csrf = csrfOf(mfa.body);
  const base = `${issuer}/interaction/${attempt.uid}`;
  const confirm = await attempt.agent.request(`${base}/confirm`, { form: { csrf } });
  t.equal(confirm.status, 400, 'POST /confirm before the second factor: refused');
  t.equal(confirm.location, null);
  const cont = await attempt.agent.request(`${base}/continue`, { form: { csrf } });
  t.equal(cont.status, 400, 'POST /continue (after enrolment) without one: refused');
  const extras: Record<string, string>[] = [
    { amr: 'pwd otp' },
    { acr: 'urn:gatehouse:loa:2' },
    { userId: user.id },
    { accountId: user.id },
  ];
  for (const extra of extras) {
    const tampered = await attempt.agent.request(`${base}/mfa`, {
      form: { csrf, code: user.totp!.wrong(), ...extra },
    });
    t.equal(tampered.status, 400, `second-factor form with ${Object.keys(extra)[0]}: refused`);
    const loginTampered = await attempt.agent.request(`${base}/login`, {
      form: { csrf, username: user.email, password: user.password, ...extra },
    });
    t.equal(loginTampered.status, 400, `login form with ${Object.keys(extra)[0]}: refused`);
  }
  const still = await attempt.agent.request(base);
  t.match(formActionOf(still.body), /\/mfa$/, 'still waiting for the second factor');
  const consent = await attempt.agent.follow(
    await attempt.agent.request(`${base}/mfa`, { form: { csrf, code: user.totp!.fresh() } }),
    issuer,
  );
  const done = await attempt.agent.follow(
    await attempt.agent.request(new URL(formActionOf(consent.body), issuer).toString(), {
      form: { csrf: csrfOf(consent.body) },
    }),
    issuer,
  );
  const tokens = await exchange(web1Config, {
    agent: attempt.agent,
    callback: new URL(done.location!),
    verifier: VERIFIER,
    state: 'S',
    nonce: 'N',
    sawConsent: true,
  });
  const claims = decodeJwt(tokens.id_token!);
  t.same(claims.amr, ['pwd', 'otp'], 'amr from the verified factors');
  t.equal(claims.acr, 'urn:gatehouse:loa:2', 'acr from the verified factors');

  // Resuming the authorization straight after the password step reaches no client.
  const other = await begin();
  const otherMfa = await other.agent.follow(await login(other, user.email, user.password), issuer);
  t.match(formActionOf(otherMfa.body), /\/mfa$/, 'a second attempt waits for its second factor');
  const resumed = await other.agent.follow(await other.agent.request(`${issuer}/auth/${other.uid}`), issuer);
  t.notOk(resumed.location?.startsWith(APP1), 'resuming /auth/:uid does not reach the client');
  t.notMatch(resumed.location ?? '', /[?&]code=/, 'no code');
});

t.test(
  'LG-8 Unicode, NUL and long identifiers map to one account or are refused; long passwords work',
  async (t) => {
    const alice = await createUser({ email: 'alice@example.com' });
    const variants: Array<[string, string, 'alice' | 'refused']> = [
      ['NUL suffix', 'alice@example.com\u0000', 'refused'],
      ['NUL inside', 'alice\u0000@example.com', 'refused'],
      ['%00 literal', 'alice%00x@example.com', 'refused'],
      ['full-width', 'ａｌｉｃｅ@example.com', 'alice'],
      ['modifier capital A', 'ᴬlice@example.com', 'alice'],
      ['combining acute', 'alice\u0301@example.com', 'refused'],
      ['capitalised', 'Alice@Example.COM', 'alice'],
      ['trailing space', 'alice@example.com ', 'alice'],
      ['right-to-left override', '\u202Ealice@example.com', 'refused'],
      ['zero-width space', 'al\u200Bice@example.com', 'refused'],
      ['320 characters', `${'a'.repeat(308)}@example.com`, 'refused'],
      ['10 000 characters', 'a'.repeat(10_000), 'refused'],
    ];
    const newestSuccess = async () => (await lastAudit('login.success', 1))[0]?.id;
    for (const [label, username, expected] of variants) {
      const before = await newestSuccess();
      const step = await login(await begin(), username, alice.password);
      t.ok(step.status < 500, `${label}: never 5xx (${step.status})`);
      if (expected === 'alice') {
        t.equal(step.status, 303, `${label}: signs in`);
        const [event] = await lastAudit('login.success', 1);
        t.equal(event?.actor, `user:${alice.id}`, `${label}: as the one canonical account`);
      } else {
        t.ok([400, 401, 413].includes(step.status), `${label}: refused (${step.status})`);
        t.equal(await newestSuccess(), before, `${label}: nobody signed in`);
      }
    }
    await gatehouse.lockout.unlock(alice.id);
    // The same normalisation applies at registration: look-alikes of alice are alice.
    for (const email of ['ＡＬＩＣＥ@example.com', 'Alice@example.com', ' alice@example.com']) {
      await t.rejects(
        gatehouse.users.create({ email, password: PASSWORD }, { actor: 'test' }),
        `registering ${JSON.stringify(email)} is refused: it is alice`,
      );
    }
    for (const email of ['alice\u0000x@example.com', '\u202Ealice@example.com']) {
      await t.rejects(
        gatehouse.users.create({ email, password: PASSWORD }, { actor: 'test' }),
        `registering ${JSON.stringify(email)} is refused`,
      );
    }
    // Passwords of 64, 128 and 1024 characters work unmodified; a truncation of them does not.
    for (const [label, password] of [
      ['64 characters', 'p'.repeat(63) + '1'],
      ['128 characters', `${'q'.repeat(100)}${randomBytes(14).toString('hex')}`],
      ['1024 characters', `${'r'.repeat(1000)}${randomBytes(12).toString('hex')}`],
      ['1024 non-BMP characters', '🔑'.repeat(1023) + '🗝'],
    ] as const) {
      const user = await createUser({ password });
      t.equal((await login(await begin(), user.email, password)).status, 303, `${label}: signs in`);
      for (const cut of [72, password.length - 2]) {
        const truncated = password.slice(0, cut);
        if (truncated === password) continue;
        t.equal(
          (await login(await begin(), user.email, truncated)).status,
          401,
          `${label} cut to ${cut}: refused`,
        );
      }
    }
    for (const [label, password, statuses] of [
      ['1025 characters', 's'.repeat(1025), [400, 401]],
      ['100 KB', 't'.repeat(100 * 1024), [400, 413]],
    ] as const) {
      const started = performance.now();
      const step = await login(await begin(), alice.email, password);
      t.ok((statuses as readonly number[]).includes(step.status), `${label}: refused early (${step.status})`);
      t.notMatch(step.body, LEAK, `${label}: nothing leaks`);
      t.ok(performance.now() - started < 5000, `${label}: answered without hashing it`);
    }
    t.notOk(await gatehouse.lockout.isLocked(alice.id), 'oversized passwords never reach the account');
  },
);

t.test('LG-9 SQL-shaped and type-confused identifiers are refused generically, never 5xx', async (t) => {
  const user = await createUser();
  const usersBefore = await gatehouse.db.user.count();
  const sqlish = ["admin'--", "' OR '1'='1", "' OR 1=1--", 'admin"; DROP TABLE users;--', '%', '_'];
  const check = (t: Test, label: string, status: number, body: string, allowed: number[]) => {
    t.ok(allowed.includes(status), `${label}: ${status}`);
    t.notMatch(body, LEAK, `${label}: no SQL, Prisma or stack text`);
  };
  // The login form, with SQL in either field.
  for (const value of sqlish) {
    const asUser = await login(await begin(), value, PASSWORD);
    check(t, `login username=${value}`, asUser.status, asUser.body, [401]);
    t.match(asUser.body, SIGN_IN_FAILED, `login username=${value}: the generic message`);
    const asPassword = await login(await begin(), user.email, value);
    check(t, `login password=${value}`, asPassword.status, asPassword.body, [400, 401]);
  }
  await gatehouse.lockout.unlock(user.id);
  // The token endpoint and introspection, with SQL in client_id (Basic and form) and token.
  for (const id of [`${W1}' OR 1=1--`, "' OR '1'='1", `${W1}'--`]) {
    for (const [label, init] of [
      ['Basic', { headers: { authorization: basic(id, 'x') }, body: { grant_type: 'client_credentials' } }],
      [
        'form',
        { headers: {}, body: { grant_type: 'client_credentials', client_id: id, client_secret: 'x' } },
      ],
    ] as const) {
      for (const path of ['/token', '/token/introspection']) {
        const response = await fetch(`${issuer}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...init.headers },
          body: new URLSearchParams({ ...init.body, token: 'x' }),
        });
        const body = await response.text();
        check(t, `${path} ${label} client_id=${id}`, response.status, body, [400, 401]);
        t.match(JSON.parse(body).error, /^invalid_(client|request)$/, `${path} ${label}: an OAuth error`);
      }
    }
    const auth = await new Agent().request(authUrl(issuer, { client_id: id }));
    check(t, `/auth client_id=${id}`, auth.status, auth.body, [400]);
    t.equal(auth.location, null, `/auth client_id=${id}: no redirect`);
  }
  const introspected = await fetch(`${issuer}/token/introspection`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(W1, S1) },
    body: new URLSearchParams({ token: "' OR '1'='1" }),
  });
  t.same(await introspected.json(), { active: false }, "introspecting ' OR '1'='1: inactive");

  // Type confusion on JSON: the login form, the token endpoint, introspection and the admin API.
  const attempt = await begin();
  for (const body of [
    { username: { not: '' }, password: PASSWORD },
    { username: { contains: '' }, password: PASSWORD },
    { username: user.email, password: { not: '' } },
    { username: null, password: PASSWORD },
    { username: [user.email], password: PASSWORD },
    { password: PASSWORD },
    { username: user.email },
  ]) {
    const response = await fetch(attempt.action, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        cookie: [...attempt.agent.cookies].map(([name, value]) => `${name}=${value}`).join('; '),
      },
      body: JSON.stringify({ csrf: attempt.csrf, ...body }),
    });
    const text = await response.text();
    check(t, `login JSON ${JSON.stringify(body)}`, response.status, text, [400, 415]);
  }
  for (const path of ['/token', '/token/introspection']) {
    for (const body of [
      { client_id: { not: '' }, grant_type: 'client_credentials' },
      { token: { not: '' } },
      { id: null },
    ]) {
      const response = await fetch(`${issuer}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: basic(W1, S1) },
        body: JSON.stringify(body),
      });
      const text = await response.text();
      check(t, `${path} JSON ${JSON.stringify(body)}`, response.status, text, [400, 401]);
      t.notOk(JSON.parse(text).active, `${path}: never an active answer`);
    }
  }
  const admin = (method: string, path: string, body?: unknown) =>
    fetch(`${issuer}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${adminToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  for (const body of [
    { email: { contains: '' }, password: PASSWORD },
    { email: { not: '' }, password: PASSWORD },
    { email: null, password: PASSWORD },
    { password: PASSWORD },
    { email: "x' OR '1'='1@example.com", password: PASSWORD, roles: { has: 'admin' } },
    { email: 'typed@example.com', password: PASSWORD, id: null },
  ]) {
    const response = await admin('POST', '/admin/users', body);
    check(t, `POST /admin/users ${JSON.stringify(body)}`, response.status, await response.text(), [400]);
  }
  for (const id of [
    "' OR 1=1--",
    '1 OR 1=1',
    'null',
    '%27%20OR%201%3D1--',
    '00000000-0000-0000-0000-000000000000',
  ]) {
    const response = await admin('GET', `/admin/users/${id}`);
    check(t, `GET /admin/users/${id}`, response.status, await response.text(), [400, 404]);
  }
  t.equal(await gatehouse.db.user.count(), usersBefore, 'no user was created or removed');
});
