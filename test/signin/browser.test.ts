// The whole sign-in in a real Chromium against a listening Gatehouse, with the
// production CSP on: the pages load their stylesheet, their labels are
// accessible, nothing is blocked by the policy, and the code the browser brings
// to the relying party's callback is exchanged with openid-client.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import t from 'tap';
import { launchBrowser, startCallbackServer } from '../helpers/browser.ts';
import { startTestServer } from '../helpers/server.ts';
import { discover } from '../helpers/sign-in.ts';

const PASSWORD = 'correct horse battery staple';
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

t.test('sign-in in a real browser, code exchanged by openid-client', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const callback = await startCallbackServer(t);
  const { redirectUri } = callback;

  const user = await gatehouse.users.create(
    { email: 'Browser.User@Example.com', name: 'Browser User', password: PASSWORD },
    { actor: 'test' },
  );
  const client = await gatehouse.clients.create(
    {
      name: 'Browser App',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: [redirectUri],
      scope: 'openid profile email offline_access',
    },
    { actor: 'test' },
  );
  const config = await discover(issuer, client.client.client_id, client.client_secret);

  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const authorizationUrl = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email offline_access',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    prompt: 'consent',
  });

  const browser = await launchBrowser(t);
  // Light scheme so the stylesheet's colours are predictable.
  const context = await browser.newContext({ colorScheme: 'light' });
  t.teardown(() => context.close());
  // Report every CSP violation to the console as well; init scripts run through
  // DevTools, outside the page's policy, so this relaxes nothing.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(
        `Content Security Policy violation: ${event.violatedDirective} blocked ${event.blockedURI || 'inline'}`,
      );
    });
  });
  const page = await context.newPage();
  const consoleMessages: string[] = [];
  const pageErrors: string[] = [];
  page.on('console', (message) => consoleMessages.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  const stylesheets: { url: string; status: number; contentType: string }[] = [];
  page.on('response', (response) => {
    if (response.request().resourceType() === 'stylesheet') {
      stylesheets.push({
        url: response.url(),
        status: response.status(),
        contentType: response.headers()['content-type'] ?? '',
      });
    }
  });

  // The login page, with its stylesheet.
  const stylesheetLoaded = page.waitForResponse(
    (response) => response.request().resourceType() === 'stylesheet',
  );
  const login = await page.goto(authorizationUrl.toString());
  t.equal(login?.status(), 200, 'the login page is shown');
  t.match(page.url(), new RegExp(`^${issuer}/interaction/[A-Za-z0-9_-]+$`), 'under /interaction/:uid');
  const css = await stylesheetLoaded;
  t.equal(css.status(), 200, 'the stylesheet answers 200');
  t.match(css.headers()['content-type'] ?? '', /^text\/css/);
  t.match(css.url(), new RegExp(`^${issuer}/`), 'the stylesheet is served by Gatehouse itself');
  t.match(
    (await login?.allHeaders())?.['content-security-policy'] ?? '',
    /default-src 'none'/,
    'the production CSP is on',
  );

  const submit = page.getByRole('button', { name: 'Sign in' });
  const buttonStyle = await submit.evaluate((element) => {
    const style = getComputedStyle(element);
    return {
      background: style.backgroundColor,
      color: style.color,
      radius: style.borderTopLeftRadius,
      display: style.display,
    };
  });
  t.same(
    buttonStyle,
    { background: 'rgb(36, 87, 197)', color: 'rgb(255, 255, 255)', radius: '8px', display: 'block' },
    'the button is styled by the stylesheet, not the browser default',
  );

  const shotDir = await mkdtemp(join(tmpdir(), 'gatehouse-browser-'));
  t.teardown(() => rm(shotDir, { recursive: true, force: true }));
  const shotPath = join(shotDir, 'login.png');
  await page.screenshot({ path: shotPath, fullPage: true });
  const png = await readFile(shotPath);
  t.ok(png.length > PNG_SIGNATURE.length, `the screenshot is non-empty (${png.length} bytes)`);
  t.same(png.subarray(0, 8), PNG_SIGNATURE, 'the screenshot is a PNG');

  // A wrong password: the generic message, announced as an alert.
  const email = page.getByLabel('Email', { exact: true });
  const password = page.getByLabel('Password', { exact: true });
  await email.fill('browser.user@example.com');
  await password.fill('not the right password');
  const failed = page.waitForResponse(
    (response) => response.request().method() === 'POST' && response.url().endsWith('/login'),
  );
  await submit.click();
  t.equal((await failed).status(), 401, 'a wrong password answers 401');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  t.equal((await alert.textContent())?.trim(), 'Incorrect email or password.');
  t.equal(await email.inputValue(), 'browser.user@example.com', 'the email is kept');
  t.equal(await password.inputValue(), '', 'the password is not echoed back');

  // The right password leads to the consent page.
  await password.fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Allow access?' }).waitFor();
  t.match(
    page.url(),
    new RegExp(`^${issuer}/interaction/[A-Za-z0-9_-]+$`),
    'consent under /interaction/:uid',
  );
  t.match(await page.locator('main').textContent(), /offline_access/, 'consent names offline access');

  // SPEC: approve is the first submit button.
  const callbackRequest = page.waitForRequest((request) => request.url().startsWith(`${redirectUri}?`));
  await page.locator('button[type="submit"]').first().click();
  const redirected = new URL((await callbackRequest).url());
  await page.waitForURL((url) => url.href.startsWith(`${redirectUri}?`));
  t.equal(await page.locator('body').textContent(), 'ok', 'the relying party answered its callback');
  const hit = callback.hits.find((url) => url.pathname === '/cb');
  t.ok(hit, 'the callback server saw the request');
  t.equal(hit?.search, redirected.search, 'the callback server saw the same query the browser sent');
  t.equal(redirected.searchParams.get('state'), state, 'state round-trips');
  t.equal(redirected.searchParams.get('iss'), issuer, 'RFC 9207 iss in the response');
  t.ok(redirected.searchParams.get('code'), 'a code is delivered');

  const tokens = await oidc.authorizationCodeGrant(config, redirected, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
  });
  const { payload } = await jwtVerify(tokens.id_token!, createRemoteJWKSet(new URL(`${issuer}/jwks`)), {
    issuer,
    audience: client.client.client_id,
  });
  t.equal(payload.sub, user.id, 'sub is the user id');
  t.equal(payload.email, 'browser.user@example.com');
  t.equal(payload.email_verified, true);
  t.equal(payload.name, 'Browser User');
  t.same(payload.amr, ['pwd']);
  t.equal(payload.acr, 'urn:gatehouse:loa:1');
  t.equal(payload.nonce, nonce);
  t.same(tokens.claims()?.sub, user.id, 'openid-client validated the same ID token');

  // Refresh tokens rotate; the used one is refused afterwards.
  const first = tokens.refresh_token;
  t.ok(first, 'offline_access gives a refresh token');
  const refreshed = await oidc.refreshTokenGrant(config, first!);
  t.ok(refreshed.access_token, 'refreshing gives a new access token');
  t.ok(refreshed.refresh_token, 'refreshing gives a new refresh token');
  t.not(refreshed.refresh_token, first, 'the refresh token rotated');
  const reused = await oidc.refreshTokenGrant(config, first!).then(
    () => undefined,
    (error: unknown) => error,
  );
  t.ok(reused instanceof oidc.ResponseBodyError, 'the old refresh token is refused');
  t.equal((reused as oidc.ResponseBodyError | undefined)?.error, 'invalid_grant', 'with invalid_grant');

  t.same(pageErrors, [], 'no page errors');
  t.same(
    consoleMessages.filter((message) => /Content Security Policy|Content-Security-Policy/i.test(message)),
    [],
    'no CSP violation was reported',
  );
  t.ok(
    stylesheets.length >= 3 && stylesheets.every((sheet) => sheet.status === 200 || sheet.status === 304),
    `every page loaded its stylesheet (${stylesheets.map((sheet) => sheet.status).join(', ')})`,
  );
});
