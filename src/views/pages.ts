// The sign-in pages. Field names are part of the contract (SPEC): `username`,
// `password`, `code`; the consent page approves with its first submit button.
import { clientLine, errorNotice, Html, html, page } from './html.ts';

export interface FormContext {
  /** The form's POST target. */
  action: string;
  csrf: string;
  clientName?: string | undefined;
}

export function loginPage(
  form: FormContext & { email?: string | undefined; error?: string | undefined },
): string {
  return page({
    title: 'Sign in',
    body: html`<h1>Sign in</h1>
${clientLine(form.clientName)}
${errorNotice(form.error)}
<form method="post" action="${form.action}" novalidate>
  <input type="hidden" name="csrf" value="${form.csrf}">
  <label for="username">Email</label>
  <input id="username" name="username" type="email" autocomplete="username" value="${form.email ?? ''}" required autofocus maxlength="254">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024">
  <button type="submit">Sign in</button>
</form>`,
  });
}

export interface ScopeDescription {
  scope: string;
  description: string;
}

export function consentPage(
  form: FormContext & {
    denyAction: string;
    scopes: ScopeDescription[];
    resources: string[];
    offline: boolean;
  },
): string {
  return page({
    title: 'Allow access',
    body: html`<h1>Allow access?</h1>
${clientLine(form.clientName)}
<p><strong>${form.clientName ?? 'This application'}</strong> asks to:</p>
<ul class="scopes">
${form.scopes.map((item) => html`  <li><span class="scope-name">${item.description}</span> <code>${item.scope}</code></li>\n`)}
${form.offline ? html`  <li>Stay signed in and access these while you are away <code>offline_access</code></li>\n` : ''}
</ul>
${form.resources.length ? html`<p class="resources">For: ${form.resources.map((resource, index) => html`${index ? ', ' : ''}<code>${resource}</code>`)}</p>` : ''}
<form method="post" action="${form.action}">
  <input type="hidden" name="csrf" value="${form.csrf}">
  <button type="submit">Allow</button>
</form>
<form method="post" action="${form.denyAction}">
  <input type="hidden" name="csrf" value="${form.csrf}">
  <button type="submit" class="secondary">Deny</button>
</form>`,
  });
}

export function errorPage(options: { title: string; message: string; detail?: string | undefined }): string {
  return page({
    title: options.title,
    body: html`<h1>${options.title}</h1>
<p>${options.message}</p>
${options.detail ? html`<p class="detail"><code>${options.detail}</code></p>` : ''}`,
  });
}

/** RP-initiated logout: the provider supplies the form carrying its xsrf token. */
export function logoutPage(options: { providerForm: string; clientName?: string | undefined }): string {
  return page({
    title: 'Sign out',
    body: html`<h1>Sign out?</h1>
${options.clientName ? html`<p><strong>${options.clientName}</strong> asks to sign you out of Gatehouse.</p>` : html`<p>Do you want to sign out of Gatehouse?</p>`}
${new Html(options.providerForm)}
<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Sign out</button>
<button type="submit" form="op.logoutForm" class="secondary">Stay signed in</button>`,
  });
}

export function loggedOutPage(options: { clientName?: string | undefined }): string {
  return page({
    title: 'Signed out',
    body: html`<h1>You are signed out</h1>
<p>${options.clientName ? html`You have been signed out of ${options.clientName} and Gatehouse.` : 'You have been signed out of Gatehouse.'} You can close this window.</p>`,
  });
}

export function secondFactorPage(form: FormContext & { error?: string | undefined }): string {
  return page({
    title: 'Two-step verification',
    body: html`<h1>Two-step verification</h1>
${clientLine(form.clientName)}
${errorNotice(form.error)}
<form method="post" action="${form.action}" novalidate>
  <input type="hidden" name="csrf" value="${form.csrf}">
  <label for="code">Code from your authenticator app, or a recovery code</label>
  <input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required autofocus maxlength="64" spellcheck="false">
  <button type="submit">Verify</button>
</form>`,
  });
}

export function enrolmentPage(
  form: FormContext & {
    secret: string;
    qrSvg: string;
    pending?: string | undefined;
    error?: string | undefined;
    required: boolean;
  },
): string {
  return page({
    title: 'Set up two-step verification',
    wide: true,
    body: html`<h1>Set up two-step verification</h1>
${clientLine(form.clientName)}
<p>${form.required ? 'Your account needs a second factor before you can continue. ' : ''}Scan this code with an authenticator app (such as Aegis, Google Authenticator or 1Password), or type the key below into it.</p>
<div class="qr">${new Html(form.qrSvg)}</div>
<p>Key: <span id="totp-secret" class="secret">${form.secret}</span></p>
${errorNotice(form.error)}
<form method="post" action="${form.action}" novalidate>
  <input type="hidden" name="csrf" value="${form.csrf}">
  ${form.pending ? html`<input type="hidden" name="pending" value="${form.pending}">` : ''}
  <label for="code">Enter the 6-digit code the app shows</label>
  <input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required autofocus maxlength="64" spellcheck="false">
  <button type="submit">Turn on two-step verification</button>
</form>`,
  });
}

export function recoveryCodesPage(form: {
  action?: string | undefined;
  csrf?: string | undefined;
  codes: string[];
}): string {
  return page({
    title: 'Recovery codes',
    wide: true,
    body: html`<h1>Save your recovery codes</h1>
<p>Each code signs you in once if you lose your authenticator. They are shown only now: store them somewhere safe.</p>
<ul id="recovery-codes" class="codes">
${form.codes.map((code) => html`  <li>${code}</li>\n`)}</ul>
${
  form.action
    ? html`<form method="post" action="${form.action}">
  <input type="hidden" name="csrf" value="${form.csrf ?? ''}">
  <button type="submit">I have saved them, continue</button>
</form>`
    : html`<p>Two-step verification is on. You can close this page.</p>`
}`,
  });
}
