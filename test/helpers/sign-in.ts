// A browser without a browser: fetch with a cookie jar and manual redirects,
// filling in the sign-in pages the way a person would. For the many protocol
// tests; the real-browser test drives Chromium through the same pages.
import * as oidc from 'openid-client';

export interface Step {
  status: number;
  url: string;
  location: string | null;
  body: string;
  headers: Headers;
}

export class Agent {
  readonly cookies = new Map<string, string>();

  async request(
    url: string,
    init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
  ): Promise<Step> {
    const headers: Record<string, string> = { ...init.headers };
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(url, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      headers,
      body,
      redirect: 'manual',
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
    return {
      status: response.status,
      url,
      location: location ? new URL(location, url).toString() : null,
      body: await response.text(),
      headers: response.headers,
    };
  }

  /** Follows redirects until one leaves the issuer (the client's redirect_uri) or a page is shown. */
  async follow(step: Step, issuer: string): Promise<Step> {
    let current = step;
    for (let hops = 0; hops < 10; hops++) {
      if (!current.location || current.status < 300 || current.status >= 400) return current;
      if (!current.location.startsWith(issuer)) return current;
      current = await this.request(current.location);
    }
    throw new Error('too many redirects');
  }
}

export function csrfOf(page: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(page);
  if (!match?.[1]) throw new Error(`no CSRF field in page: ${page.slice(0, 300)}`);
  return match[1];
}

export function formActionOf(page: string, index = 0): string {
  const actions = [...page.matchAll(/<form method="post" action="([^"]+)"/g)].map((match) => match[1]!);
  const action = actions[index];
  if (!action) throw new Error('no form in page');
  return action;
}

export interface FlowOptions {
  issuer: string;
  config: oidc.Configuration;
  redirectUri: string;
  email: string;
  password: string;
  scope?: string;
  params?: Record<string, string>;
  agent?: Agent;
  /** Approve (default) or deny the consent page if it is shown. */
  consent?: 'approve' | 'deny';
  /** Answers the second-factor page (a TOTP or recovery code) if it is shown. */
  secondFactor?: () => Promise<string>;
}

export interface FlowResult {
  agent: Agent;
  callback: URL;
  verifier: string;
  state: string;
  nonce: string;
  sawConsent: boolean;
}

/** Runs an authorization request through the sign-in pages to the client's redirect_uri. */
export async function signIn(options: FlowOptions): Promise<FlowResult> {
  const agent = options.agent ?? new Agent();
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(options.config, {
    redirect_uri: options.redirectUri,
    scope: options.scope ?? 'openid profile email',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...options.params,
  });
  let step = await agent.follow(await agent.request(url.toString()), options.issuer);
  let sawConsent = false;
  for (let pages = 0; pages < 5 && step.status < 300; pages++) {
    const action = new URL(formActionOf(step.body), options.issuer).toString();
    if (action.endsWith('/login')) {
      step = await agent.request(action, {
        form: { csrf: csrfOf(step.body), username: options.email, password: options.password },
      });
    } else if (action.endsWith('/mfa') && options.secondFactor) {
      step = await agent.request(action, {
        form: { csrf: csrfOf(step.body), code: await options.secondFactor() },
      });
    } else if (action.endsWith('/confirm')) {
      sawConsent = true;
      const target =
        options.consent === 'deny' ? new URL(formActionOf(step.body, 1), options.issuer).toString() : action;
      step = await agent.request(target, { form: { csrf: csrfOf(step.body) } });
    } else {
      throw new Error(`unexpected page with form ${action}`);
    }
    if (step.status >= 400)
      throw new Error(`sign-in page answered ${step.status}: ${step.body.slice(0, 300)}`);
    step = await agent.follow(step, options.issuer);
  }
  if (!step.location) throw new Error(`sign-in ended on a page (${step.status}): ${step.body.slice(0, 300)}`);
  return { agent, callback: new URL(step.location), verifier, state, nonce, sawConsent };
}

/** Exchanges the code from a finished flow with openid-client. */
export function exchange(config: oidc.Configuration, flow: FlowResult, extra?: Record<string, string>) {
  return oidc.authorizationCodeGrant(
    config,
    flow.callback,
    { pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce },
    extra,
  );
}

export function discover(issuer: string, clientId: string, secret?: string) {
  return oidc.discovery(
    new URL(issuer),
    clientId,
    undefined,
    secret ? oidc.ClientSecretBasic(secret) : oidc.None(),
    { execute: [oidc.allowInsecureRequests] },
  );
}
