import * as oidc from 'openid-client';
import { generateSync } from 'otplib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import t from 'tap';
import { launchBrowser, startCallbackServer } from '../helpers/browser.ts';
import type { TestContext } from '../helpers/database.ts';
import { startTestServer } from '../helpers/server.ts';
import { discover } from '../helpers/sign-in.ts';

const PASSWORD = 'admin passphrase for the browser test';
const LOA2 = 'urn:gatehouse:loa:2';
const PERIOD = 30;

/** A browser context whose pages report every CSP violation and page error into `problems`. */
async function watchedContext(t: TestContext, browser: Browser, problems: string[]): Promise<BrowserContext> {
  const context = await browser.newContext();
  t.teardown(() => context.close());
  // Init scripts run through DevTools, outside the page's policy: this relaxes nothing.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(
        `Content Security Policy violation: ${event.violatedDirective} blocked ${event.blockedURI || 'inline'}`,
      );
    });
  });
  context.on('page', (page) => {
    page.on('console', (message) => {
      if (/Content[- ]Security[- ]Policy/i.test(message.text())) problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(String(error)));
  });
  return context;
}

t.test('an admin enrols a second factor in the browser, then signs in with it', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const { redirectUri } = await startCallbackServer(t);
  const admin = await gatehouse.users.create(
    { email: 'browser.admin@example.com', name: 'Browser Admin', password: PASSWORD, roles: ['admin'] },
    { actor: 'test' },
  );
  const client = await gatehouse.clients.create(
    {
      name: 'Admin Console',
      grants: ['authorization_code'],
      redirect_uris: [redirectUri],
      scope: 'openid profile email',
      first_party: true,
    },
    { actor: 'test' },
  );
  const config = await discover(issuer, client.client.client_id, client.client_secret);
  const browser = await launchBrowser(t);
  const problems: string[] = [];

  /** Opens the authorization request and signs in with the password; returns the PKCE/state/nonce to check. */
  async function start(page: Page) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile email',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const login = await page.goto(url.toString());
    t.equal(login?.status(), 200, 'the login page');
    t.match((await login?.allHeaders())?.['content-security-policy'] ?? '', /default-src 'none'/);
    await page.getByLabel('Email', { exact: true }).fill('browser.admin@example.com');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    return { verifier, state, nonce };
  }

  /** Clicks `submit`, waits for the browser to reach the callback, and exchanges the code. */
  async function finish(
    page: Page,
    submit: () => Promise<void>,
    checks: { verifier: string; state: string; nonce: string },
  ) {
    const callback = page.waitForRequest((request) => request.url().startsWith(`${redirectUri}?`));
    await submit();
    const redirected = new URL((await callback).url());
    await page.waitForURL((url) => url.href.startsWith(`${redirectUri}?`));
    t.equal(await page.locator('body').textContent(), 'ok', 'the callback was reached');
    t.ok(redirected.searchParams.get('code'), 'a code is delivered');
    const tokens = await oidc.authorizationCodeGrant(config, redirected, {
      pkceCodeVerifier: checks.verifier,
      expectedState: checks.state,
      expectedNonce: checks.nonce,
    });
    return tokens.claims()!;
  }

  // 1. Password, then the enrolment page.
  const first = await watchedContext(t, browser, problems);
  const page = await first.newPage();
  const checks = await start(page);
  await page.getByRole('heading', { name: 'Set up two-step verification' }).waitFor();
  t.match(page.url(), new RegExp(`^${issuer}/interaction/[A-Za-z0-9_-]+$`), 'under /interaction/:uid');
  const qr = page.locator('.qr svg');
  await qr.waitFor();
  t.ok(await qr.isVisible(), 'the QR code SVG is visible');
  const box = await qr.boundingBox();
  t.ok(box && box.width > 50 && box.height > 50, `the QR code has a size (${box?.width}×${box?.height})`);
  const secret = (await page.locator('#totp-secret').textContent())?.trim() ?? '';
  t.match(secret, /^[A-Z2-7]{32}$/, 'the secret is shown in #totp-secret');

  const enrolStep = Math.floor(Date.now() / 1000 / PERIOD);
  const enrolCode = generateSync({ secret, epoch: enrolStep * PERIOD });
  await page.getByLabel('Enter the 6-digit code the app shows').fill(enrolCode);
  await page.getByRole('button', { name: 'Turn on two-step verification' }).click();

  // 2. The recovery codes, then on to the client (first-party: no consent).
  const codes = page.locator('#recovery-codes li');
  await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
  t.equal(await codes.count(), 10, '10 recovery codes');
  for (const text of await codes.allTextContents()) t.match(text.trim(), /^[0-9A-Z]{5}-[0-9A-Z]{5}$/);
  const enrolled = await finish(
    page,
    () => page.getByRole('button', { name: 'I have saved them, continue' }).click(),
    checks,
  );
  t.equal(enrolled.sub, admin.id);
  t.same(enrolled.amr, ['pwd', 'otp']);
  t.equal(enrolled.acr, LOA2);
  t.equal(await gatehouse.mfa.hasFactor(admin.id), true, 'the admin now has a factor');

  // 3. A new browser context (no session): password, then the second-factor page.
  const second = await watchedContext(t, browser, problems);
  const again = await second.newPage();
  const checksAgain = await start(again);
  await again.getByRole('heading', { name: 'Two-step verification' }).waitFor();
  t.equal(await again.getByLabel('Password', { exact: true }).count(), 0, 'no password field on this page');
  // The enrolment took its step, so this code is the next step's (accepted within ±1 step),
  // or the current one's if the clock has moved on since.
  const step = Math.max(enrolStep + 1, Math.floor(Date.now() / 1000 / PERIOD));
  await again
    .getByLabel('Code from your authenticator app, or a recovery code')
    .fill(generateSync({ secret, epoch: step * PERIOD }));
  const signedIn = await finish(
    again,
    () => again.getByRole('button', { name: 'Verify' }).click(),
    checksAgain,
  );
  t.equal(signedIn.sub, admin.id);
  t.same(signedIn.amr, ['pwd', 'otp']);
  t.equal(signedIn.acr, LOA2);

  t.same(problems, [], 'no CSP violation and no page error on any page');
});
