// The second factor in the sign-in flow, through the pages without a browser:
// TOTP and recovery codes (SPEC acr/amr), replay and malformed codes (LG-5),
// wrong codes counted per attempt and towards the account lockout (LG-6), no
// way around the second step (LG-7), step-up via acr_values, forced enrolment
// for admins and mfaRequired users, and no secret or code at rest (LO-2).
import { setTimeout as sleep } from 'node:timers/promises';
import * as oidc from 'openid-client';
import { generateSync } from 'otplib';
import t from 'tap';
import { startTestServer } from '../helpers/server.ts';
import {
  Agent,
  csrfOf,
  discover,
  exchange,
  type FlowResult,
  formActionOf,
  type Step,
} from '../helpers/sign-in.ts';

const REDIRECT = 'https://app.example.com/callback';
const LOA1 = 'urn:gatehouse:loa:1';
const LOA2 = 'urn:gatehouse:loa:2';
const PERIOD = 30;

/**
 * An authenticator app that never offers the server a step it already
 * accepted: the server refuses a code of a step at or before the last one it
 * took, so a second sign-in in the same 30 s uses the next step's code (±1
 * step is accepted), and a third waits for the clock.
 */
class Authenticator {
  readonly secret: string;
  lastStep = Number.NEGATIVE_INFINITY;
  constructor(secret: string) {
    this.secret = secret;
  }
  codeAt(step: number): string {
    return generateSync({ secret: this.secret, epoch: step * PERIOD });
  }
  /** A code the server has not accepted yet, marked as used. */
  async next(): Promise<string> {
    for (;;) {
      const current = Math.floor(Date.now() / 1000 / PERIOD);
      const step = Math.max(current, this.lastStep + 1);
      if (step <= current + 1) {
        this.lastStep = step;
        return this.codeAt(step);
      }
      await sleep((current + 1) * PERIOD * 1000 - Date.now() + 100);
    }
  }
  /** The code of the step `offset` steps from now, away from a step boundary; undefined if it happens to match the window. */
  async outside(offset: number): Promise<string | undefined> {
    if ((Date.now() / 1000) % PERIOD > PERIOD - 3) await sleep(3500);
    const current = Math.floor(Date.now() / 1000 / PERIOD);
    const code = this.codeAt(current + offset);
    return [-1, 0, 1].some((near) => this.codeAt(current + near) === code) ? undefined : code;
  }
  /** Six digits that match no step of the current window (so surely wrong). */
  wrong(seed = 0): string {
    const current = Math.floor(Date.now() / 1000 / PERIOD);
    const window = new Set([-2, -1, 0, 1, 2].map((offset) => this.codeAt(current + offset)));
    for (let candidate = seed; ; candidate++) {
      const code = String(candidate % 1_000_000).padStart(6, '0');
      if (!window.has(code)) return code;
    }
  }
}

/** One authorization request in progress: the page the agent is on, and what the exchange needs. */
interface Attempt {
  agent: Agent;
  page: Step;
  verifier: string;
  state: string;
  nonce: string;
}

function uidOf(page: Step): string {
  return new URL(formActionOf(page.body), 'http://x').pathname.split('/')[2]!;
}

function secretOf(page: Step): string {
  const match = /id="totp-secret"[^>]*>([A-Z2-7]+)</.exec(page.body);
  if (!match?.[1]) throw new Error(`no #totp-secret in page: ${page.body.slice(0, 300)}`);
  return match[1];
}

function recoveryCodesOf(page: Step): string[] {
  const list = /<ul id="recovery-codes"[^>]*>([\s\S]*?)<\/ul>/.exec(page.body)?.[1] ?? '';
  return [...list.matchAll(/<li>([^<]*)<\/li>/g)].map((match) => match[1]!.trim());
}

t.test('second factor in the sign-in flow', async (t) => {
  const server = await startTestServer(t, {
    // The per-account and per-IP sign-in limits are not what this file tests.
    GATEHOUSE_RATE_LIMITS: 'login=100000/60s,login_ip=100000/60s',
  });
  const { issuer, gatehouse } = server;
  const portal = await gatehouse.clients.create(
    {
      name: 'Portal',
      grants: ['authorization_code'],
      redirect_uris: [REDIRECT],
      scope: 'openid profile email',
      first_party: true,
    },
    { actor: 'test' },
  );
  const config = await discover(issuer, portal.client.client_id, portal.client_secret);

  // Everything secret this file hands out or types, for the scan at rest at the end.
  const passwordsUsed = new Set<string>();
  const secretsUsed = new Set<string>();
  const recoveryCodesIssued = new Set<string>();
  const codesSubmitted = new Set<string>();

  let users = 0;
  async function createUser(options: { roles?: string[]; mfaRequired?: boolean; enrol?: boolean } = {}) {
    users++;
    const email = `mfa.user${users}@example.com`;
    const password = `passphrase number ${users} for ${email}`;
    passwordsUsed.add(password);
    const user = await gatehouse.users.create(
      {
        email,
        password,
        name: `MFA User ${users}`,
        ...(options.roles ? { roles: options.roles } : {}),
        ...(options.mfaRequired ? { mfaRequired: true } : {}),
      },
      { actor: 'test' },
    );
    let app: Authenticator | undefined;
    let recoveryCodes: string[] = [];
    if (options.enrol) {
      const enrolment = await gatehouse.mfa.enrollForOperator(email);
      app = new Authenticator(enrolment.secret);
      secretsUsed.add(enrolment.secret);
      recoveryCodes = enrolment.recoveryCodes;
      for (const code of recoveryCodes) recoveryCodesIssued.add(code);
    }
    return { id: user.id, email, password, app, recoveryCodes };
  }

  /** Sends the authorization request and follows it to the first sign-in page. */
  async function begin(params: Record<string, string> = {}, agent = new Agent()): Promise<Attempt> {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid profile email',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...params,
    });
    const page = await agent.follow(await agent.request(url.toString()), issuer);
    return { agent, page, verifier, state, nonce };
  }

  /** Posts the current page's form (or the given action) with the CSRF token, and follows redirects. */
  async function post(attempt: Attempt, form: Record<string, string>, action?: string): Promise<Step> {
    const target = new URL(action ?? formActionOf(attempt.page.body), issuer).toString();
    const step = await attempt.agent.follow(
      await attempt.agent.request(target, { form: { csrf: csrfOf(attempt.page.body), ...form } }),
      issuer,
    );
    // The agent is now on whatever page with a form came back (error pages have none).
    if (step.status < 300 || /<form method="post"/.test(step.body)) attempt.page = step;
    return step;
  }

  async function password(attempt: Attempt, user: { email: string; password: string }): Promise<Step> {
    if (!formActionOf(attempt.page.body).endsWith('/login')) throw new Error('not on the login page');
    return post(attempt, { username: user.email, password: user.password });
  }

  async function submitCode(attempt: Attempt, code: string, action?: string): Promise<Step> {
    if (/^[0-9]{6}$/.test(code.replace(/[ -]/g, ''))) codesSubmitted.add(code.replace(/[ -]/g, ''));
    return post(attempt, { code }, action);
  }

  function flowOf(attempt: Attempt, step: Step): FlowResult {
    if (!step.location?.startsWith(`${REDIRECT}?`)) {
      throw new Error(`expected a redirect to the client, got ${step.status} ${step.location}`);
    }
    return {
      agent: attempt.agent,
      callback: new URL(step.location),
      verifier: attempt.verifier,
      state: attempt.state,
      nonce: attempt.nonce,
      sawConsent: false,
    };
  }

  async function claimsOf(attempt: Attempt, step: Step) {
    const tokens = await exchange(config, flowOf(attempt, step));
    return { tokens, claims: tokens.claims()! };
  }

  /** Password, then the second-factor page, then `code`: the step after posting the code. */
  async function withCode(user: { email: string; password: string }, code: string): Promise<[Attempt, Step]> {
    const attempt = await begin();
    await password(attempt, user);
    if (!formActionOf(attempt.page.body).endsWith('/mfa')) throw new Error('not on the second-factor page');
    return [attempt, await submitCode(attempt, code)];
  }

  async function auditFor(userId: string, type: string) {
    const events = await gatehouse.audit.list({ type, limit: 200 });
    return events.filter((event) => event.target === `user:${userId}` || event.actor === `user:${userId}`);
  }

  await t.test('password + TOTP code: amr [pwd, otp], acr loa:2, userinfo works', async (t) => {
    const user = await createUser({ enrol: true });
    const attempt = await begin();
    const afterPassword = await password(attempt, user);
    t.equal(afterPassword.status, 200, 'after the password, a page (no redirect to the client)');
    t.match(afterPassword.body, /name="code"/, 'the second-factor page asks for `code`');
    t.notMatch(afterPassword.body, /name="password"/);
    t.match(formActionOf(afterPassword.body), new RegExp(`^/interaction/${uidOf(afterPassword)}/mfa$`));
    t.equal(afterPassword.headers.get('cache-control'), 'no-store');
    t.match(afterPassword.headers.get('content-security-policy') ?? '', /default-src 'none'/);

    const done = await submitCode(attempt, await user.app!.next());
    const { tokens, claims } = await claimsOf(attempt, done);
    t.equal(claims.sub, user.id);
    t.same(claims.amr, ['pwd', 'otp']);
    t.equal(claims.acr, LOA2);
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, user.id);
    t.match(userinfo, { sub: user.id, email: user.email, name: 'MFA User 1', email_verified: true });
    t.equal((await auditFor(user.id, 'mfa.success')).length, 1, 'mfa.success audited');
  });

  await t.test('codes typed with spaces or dashes are accepted', async (t) => {
    const user = await createUser({ enrol: true });
    for (const format of [
      (code: string) => ` ${code.slice(0, 3)} ${code.slice(3)} `,
      (code: string) => `${code.slice(0, 3)}-${code.slice(3)}`,
    ]) {
      const typed = format(await user.app!.next());
      const [attempt, done] = await withCode(user, typed);
      const { claims } = await claimsOf(attempt, done);
      t.same(claims.amr, ['pwd', 'otp'], `"${typed.replace(/[0-9]/g, '9')}" is accepted`);
      t.equal(claims.acr, LOA2);
    }
  });

  await t.test('replay: a code accepted once is refused in a new sign-in attempt', async (t) => {
    const user = await createUser({ enrol: true });
    const code = await user.app!.next();
    const [first, done] = await withCode(user, code);
    t.same((await claimsOf(first, done)).claims.amr, ['pwd', 'otp'], 'the first use signs in');

    const [second, replayed] = await withCode(user, code);
    t.equal(replayed.status, 401, 'the same code again is refused');
    t.match(replayed.body, /That code did not work/);
    t.match(formActionOf(replayed.body), /\/mfa$/, 'still on the second-factor page');
    t.match(await auditFor(user.id, 'mfa.failure'), [{ details: { reason: 'replayed' } }]);
    // Two steps ahead is outside the ±1 window (skipped on a 1-in-10^6 collision with a code in it).
    const ahead = await user.app!.outside(2);
    if (ahead !== undefined) {
      const refused = await submitCode(second, ahead);
      t.equal(refused.status, 401, 'the code of the step after next is refused');
      t.match(refused.body, /That code did not work/);
    }
    const next = await submitCode(second, await user.app!.next());
    t.same((await claimsOf(second, next)).claims.amr, ['pwd', 'otp'], 'a fresh code still works');
  });

  await t.test('a recovery code works once: amr [pwd, mfa], acr loa:2', async (t) => {
    const user = await createUser({ enrol: true });
    const [code, other] = user.recoveryCodes as [string, string];
    t.match(code, /^[0-9A-Z]{5}-[0-9A-Z]{5}$/, 'recovery codes are shown as XXXXX-XXXXX');
    const [attempt, done] = await withCode(user, code);
    const { claims } = await claimsOf(attempt, done);
    t.same(claims.amr, ['pwd', 'mfa']);
    t.equal(claims.acr, LOA2);

    const [, again] = await withCode(user, code);
    t.equal(again.status, 401, 'the same recovery code again is refused');
    t.match(again.body, /That code did not work/);

    const typed = other.replace('-', '').toLowerCase();
    const [third, lower] = await withCode(user, typed);
    t.same((await claimsOf(third, lower)).claims.amr, ['pwd', 'mfa'], 'another one, in lower case, no dash');
  });

  await t.test('malformed codes get a 4xx page and do not count', async (t) => {
    const user = await createUser({ enrol: true });
    const attempt = await begin();
    await password(attempt, user);
    const malformed = [
      'abcdef',
      '12345',
      '1234567',
      '',
      '１２３４５６',
      '123\u0000456',
      '1'.repeat(64),
      '9'.repeat(65),
      'x'.repeat(1000),
    ];
    for (const code of malformed) {
      const step = await submitCode(attempt, code);
      t.ok(
        step.status >= 400 && step.status < 500,
        `${JSON.stringify(code.slice(0, 12))}: 4xx (${step.status})`,
      );
      t.match(step.headers.get('content-type') ?? '', /text\/html/);
      if (step.status === 400 && /<form method="post"/.test(step.body)) {
        t.match(formActionOf(step.body), /\/mfa$/, 'the second-factor page again');
      }
    }
    t.same(await auditFor(user.id, 'mfa.failure'), [], 'no malformed code was counted as a failure');
    t.equal(await gatehouse.lockout.isLocked(user.id), false);
    const done = await submitCode(attempt, await user.app!.next(), `/interaction/${uidOf(attempt.page)}/mfa`);
    const { claims } = await claimsOf(attempt, done);
    t.same(
      claims.amr,
      ['pwd', 'otp'],
      `after ${malformed.length} malformed codes, the right code still works`,
    );
  });

  await t.test('5 wrong codes end the attempt and lock the account (LG-6)', async (t) => {
    const user = await createUser({ enrol: true });
    // A second attempt that got past the password before the wrong codes.
    const parallel = await begin();
    await password(parallel, user);
    t.match(formActionOf(parallel.page.body), /\/mfa$/);

    const attempt = await begin();
    await password(attempt, user);
    const uid = uidOf(attempt.page);
    let step: Step | undefined;
    for (let tries = 1; tries <= 5; tries++) {
      step = await submitCode(attempt, user.app!.wrong(tries * 111_111));
      if (tries < 5) {
        t.equal(step.status, 401, `wrong code ${tries}: 401`);
        t.match(step.body, /That code did not work/);
      }
      if (tries === 4)
        t.equal(await gatehouse.lockout.isLocked(user.id), false, 'not locked after four wrong codes');
    }
    t.equal(step!.status, 401, 'the 5th wrong code: 401');
    t.match(step!.body, /Too many wrong codes/);
    t.match(step!.body, /name="password"/, 'the login page again');
    t.match(formActionOf(step!.body), /\/login$/);

    const more = await submitCode(attempt, await user.app!.next(), `/interaction/${uid}/mfa`);
    t.equal(more.status, 400, 'another code for that attempt is refused');
    t.match(more.headers.get('content-type') ?? '', /text\/html/);

    t.equal(await gatehouse.lockout.isLocked(user.id), true, 'the wrong codes locked the account');
    t.ok((await auditFor(user.id, 'account.locked')).length >= 1, 'account.locked audited');
    t.ok((await auditFor(user.id, 'mfa.failure')).length >= 4, 'mfa.failure audited');

    const right = await submitCode(parallel, await user.app!.next());
    t.equal(right.status, 401, 'even the right code in another attempt is refused while locked');
    t.notOk(right.location?.startsWith(REDIRECT), 'no code for the client');

    const relogin = await password(attempt, user);
    t.equal(relogin.status, 401, 'the right password is refused while locked');
    t.match(relogin.body, /Incorrect email or password\./, 'with the generic message');
    const fresh = await begin();
    const refused = await password(fresh, user);
    t.equal(refused.status, 401, 'in a new attempt too');
    t.match(refused.body, /Incorrect email or password\./);
    t.same(await auditFor(user.id, 'login.success'), [], 'no sign-in was recorded');
  });

  await t.test('the second step cannot be skipped (LG-7)', async (t) => {
    const user = await createUser({ enrol: true });
    const attempt = await begin();
    await password(attempt, user);
    const uid = uidOf(attempt.page);
    const csrf = csrfOf(attempt.page.body);

    const confirm = await attempt.agent.request(`${issuer}/interaction/${uid}/confirm`, { form: { csrf } });
    t.equal(confirm.status, 400, 'POST /confirm before the code: 400');
    t.equal(confirm.location, null);
    const proceed = await attempt.agent.request(`${issuer}/interaction/${uid}/continue`, { form: { csrf } });
    t.equal(proceed.status, 400, 'POST /continue before the code: 400');
    t.equal(proceed.location, null);

    const resumed = await attempt.agent.follow(await attempt.agent.request(`${issuer}/auth/${uid}`), issuer);
    const landed = resumed.location ? new URL(resumed.location) : undefined;
    t.notOk(
      landed?.searchParams.has('code'),
      `resuming /auth/:uid gives no code (${resumed.status} ${landed?.search ?? ''})`,
    );
    t.same(await auditFor(user.id, 'login.success'), [], 'no login was recorded');

    const tamper = await begin();
    const tampered: Record<string, string>[] = [
      { amr: 'pwd otp' },
      { acr: LOA2 },
      { userId: user.id },
      { accountId: user.id },
    ];
    for (const extra of tampered) {
      const step = await tamper.agent.request(new URL(formActionOf(tamper.page.body), issuer).toString(), {
        form: { csrf: csrfOf(tamper.page.body), username: user.email, password: user.password, ...extra },
      });
      t.equal(step.status, 400, `a login form with ${Object.keys(extra)[0]} is refused`);
      t.equal(step.location, null);
    }
    await password(tamper, user);
    const code = await user.app!.next();
    codesSubmitted.add(code);
    const forgedMfa = await tamper.agent.request(new URL(formActionOf(tamper.page.body), issuer).toString(), {
      form: { csrf: csrfOf(tamper.page.body), code, amr: 'pwd otp', acr: LOA2 },
    });
    t.equal(forgedMfa.status, 400, 'a second-factor form with amr/acr is refused');
    t.same(await auditFor(user.id, 'login.success'), [], 'still no login recorded');
    // The code was not checked (the schema refused the form first), so it still works.
    const done = await submitCode(tamper, code);
    t.same((await claimsOf(tamper, done)).claims.amr, ['pwd', 'otp'], 'the honest form then signs in');
  });

  await t.test('step-up: acr_values=loa:2 asks a password-only session for the second factor', async (t) => {
    const user = await createUser();
    const agent = new Agent();
    const first = await begin({}, agent);
    const signedIn = await password(first, user);
    const { claims: before } = await claimsOf(first, signedIn);
    t.equal(before.acr, LOA1, 'without a factor: loa:1');
    t.same(before.amr, ['pwd']);

    const enrolment = await gatehouse.mfa.enrollForOperator(user.email, { actor: 'test' });
    secretsUsed.add(enrolment.secret);
    for (const code of enrolment.recoveryCodes) recoveryCodesIssued.add(code);
    const app = new Authenticator(enrolment.secret);

    const stepUp = await begin({ acr_values: LOA2 }, agent);
    t.equal(stepUp.page.status, 200, 'a page, not a redirect to the client');
    t.match(formActionOf(stepUp.page.body), /\/mfa$/, 'the second-factor page directly');
    t.match(stepUp.page.body, /name="code"/);
    t.notMatch(stepUp.page.body, /name="password"/, 'no password asked again');
    const done = await submitCode(stepUp, await app.next());
    const { claims } = await claimsOf(stepUp, done);
    t.equal(claims.sub, user.id);
    t.equal(claims.acr, LOA2);
    t.same(claims.amr, ['pwd', 'otp']);
  });

  await t.test('an admin without a factor must enrol during sign-in', async (t) => {
    const user = await createUser({ roles: ['admin'] });
    const attempt = await begin();
    const page = await password(attempt, user);
    t.equal(page.status, 200);
    t.match(page.body, /id="totp-secret"/, 'the enrolment page shows the secret');
    t.match(page.body, /name="code"/);
    t.match(page.body, /<svg[\s>]/, 'with an inline SVG QR code');
    t.match(formActionOf(page.body), /\/enrol$/);
    const secret = secretOf(page);
    secretsUsed.add(secret);
    t.match(secret, /^[A-Z2-7]{32}$/);
    t.equal(await gatehouse.mfa.hasFactor(user.id), false, 'nothing stored yet');

    const early = await attempt.agent.request(`${issuer}/interaction/${uidOf(page)}/continue`, {
      form: { csrf: csrfOf(page.body) },
    });
    t.equal(early.status, 400, 'continue before enrolling: 400');
    t.equal(early.location, null);

    const app = new Authenticator(secret);
    const wrong = await submitCode(attempt, app.wrong(424_242));
    t.equal(wrong.status, 401, 'a wrong enrolment code: 401');
    t.equal(secretOf(wrong), secret, 'the same secret is shown again');
    t.equal(await gatehouse.mfa.hasFactor(user.id), false);

    const enrolled = await submitCode(attempt, await app.next());
    t.equal(enrolled.status, 200, 'the right code: the recovery codes page');
    const codes = recoveryCodesOf(enrolled);
    t.equal(codes.length, 10, '10 recovery codes, one per <li>');
    t.equal(new Set(codes).size, 10, 'all different');
    for (const code of codes) recoveryCodesIssued.add(code);
    t.match(formActionOf(enrolled.body), new RegExp(`^/interaction/${uidOf(page)}/continue$`));
    t.equal(await gatehouse.mfa.hasFactor(user.id), true, 'the user now has a factor');

    const done = await post(attempt, {});
    const { claims } = await claimsOf(attempt, done);
    t.equal(claims.sub, user.id);
    t.equal(claims.acr, LOA2);
    t.same(claims.amr, ['pwd', 'otp']);

    // The factor is real: the next sign-in asks for a code, and one of the recovery codes works.
    const [next, withRecovery] = await withCode(user, codes[3]!);
    t.same((await claimsOf(next, withRecovery)).claims.amr, ['pwd', 'mfa']);
  });

  await t.test(
    'mfaRequired, or an RP asking for loa:2, sends a user without a factor to enrolment',
    async (t) => {
      const required = await createUser({ mfaRequired: true });
      const attempt = await begin();
      const page = await password(attempt, required);
      t.equal(page.status, 200);
      t.match(page.body, /id="totp-secret"/, 'mfaRequired: the enrolment page');
      t.match(formActionOf(page.body), /\/enrol$/);
      const secret = secretOf(page);
      secretsUsed.add(secret);
      const enrolled = await submitCode(attempt, await new Authenticator(secret).next());
      for (const code of recoveryCodesOf(enrolled)) recoveryCodesIssued.add(code);
      const { claims } = await claimsOf(attempt, await post(attempt, {}));
      t.equal(claims.acr, LOA2);
      t.same(claims.amr, ['pwd', 'otp']);

      const plain = await createUser();
      const asked = await begin({ acr_values: LOA2 });
      const enrolPage = await password(asked, plain);
      t.match(enrolPage.body, /id="totp-secret"/, 'acr_values=loa:2: the enrolment page');
      secretsUsed.add(secretOf(enrolPage));
    },
  );

  await t.test('at rest: no TOTP secret, recovery code, password or submitted code (LO-2)', async (t) => {
    t.ok(secretsUsed.size >= 8, `${secretsUsed.size} TOTP secrets used`);
    t.ok(recoveryCodesIssued.size >= 80, `${recoveryCodesIssued.size} recovery codes issued`);
    t.ok(codesSubmitted.size >= 15, `${codesSubmitted.size} TOTP codes submitted`);
    const { db } = gatehouse;
    const columns = await db.$queryRaw<{ table_name: string; column_name: string }[]>`
      SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = 'public'
        AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY', 'USER-DEFINED')`;
    t.ok(columns.some((column) => column.table_name === 'users' && column.column_name === 'totp_secret'));
    const needles = [
      ...secretsUsed,
      ...[...secretsUsed].map((secret) => secret.toLowerCase()),
      ...[...recoveryCodesIssued].flatMap((code) => [code, code.replace('-', ''), code.toLowerCase()]),
      ...passwordsUsed,
    ];
    // Six digits also occur inside timestamps and ciphertexts: a code counts only standing alone.
    const codePatterns = [...codesSubmitted].map((code) => new RegExp(`(^|[^0-9])${code}([^0-9]|$)`));
    let scanned = 0;
    for (const { table_name: table, column_name: column } of columns) {
      const rows = await db.$queryRawUnsafe<{ value: string | null }[]>(
        `SELECT "${column}"::text AS value FROM "${table}"`,
      );
      for (const { value } of rows) {
        if (value === null) continue;
        scanned++;
        if (needles.some((needle) => value.includes(needle))) {
          t.fail(`${table}.${column} holds a TOTP secret, recovery code or password`);
        }
        const pattern = codePatterns.find((code) => code.test(value));
        if (pattern)
          t.fail(
            `${table}.${column} holds a submitted TOTP code (${pattern.source}): ${value.slice(0, 200)}`,
          );
      }
    }
    t.ok(scanned > 100, `scanned ${scanned} values in ${columns.length} columns`);

    const logs = server.logs.join('');
    t.notOk(
      needles.some((needle) => logs.includes(needle)),
      'the logs hold no TOTP secret, recovery code or password',
    );
  });
});
