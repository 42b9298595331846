// The sign-in pages under /interaction/:uid, rendered by Fastify for
// oidc-provider's interactions: login, consent (approve or deny), and an error
// page for everything that cannot go on. Every page is no-store, scriptless,
// never framed; every form carries a CSRF token bound to its interaction.
import { readFileSync } from 'node:fs';
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Grant, InteractionResults } from 'oidc-provider';
import type { CsrfTokens } from '../lib/csrf.ts';
import { ACR_PASSWORD } from '../oidc/accounts.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import type { AuditService } from '../services/audit.ts';
import type { ConsentService } from '../services/consents.ts';
import type { AccountLockout } from '../services/lockout.ts';
import type { UserService } from '../services/users.ts';
import { PAGE_CSP, STYLESHEET_PATH } from '../views/html.ts';
import { consentPage, errorPage, loginPage, type ScopeDescription } from '../views/pages.ts';

export interface InteractionDependencies {
  providerHost: ProviderHost;
  users: UserService;
  lockout: AccountLockout;
  audit: AuditService;
  consents: ConsentService;
  csrf: CsrfTokens;
  issuer: string;
  isFirstParty: (clientId: string) => Promise<boolean>;
}

/** Shown for every failed sign-in, whatever the cause (SPEC: no account enumeration). */
export const SIGN_IN_FAILED = 'Incorrect email or password.';

const STYLESHEET = readFileSync(new URL('../views/styles.css', import.meta.url), 'utf8');

class PageError extends Error {
  readonly statusCode: number;
  readonly title: string;
  constructor(statusCode: number, title: string, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.title = title;
  }
}

const EXPIRED = () =>
  new PageError(
    400,
    'Sign-in expired',
    'This sign-in link has expired or was already used. Go back to the application and start again.',
  );

type Details = Awaited<ReturnType<ProviderHost['provider']['interactionDetails']>>;

const uidParams = {
  type: 'object',
  properties: { uid: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
  required: ['uid'],
  additionalProperties: false,
} as const;

const csrfBody = {
  type: 'object',
  properties: { csrf: { type: 'string', maxLength: 128 } },
  additionalProperties: false,
} as const;

const loginBody = {
  type: 'object',
  properties: {
    csrf: { type: 'string', maxLength: 128 },
    username: { type: 'string', maxLength: 320 },
    password: { type: 'string', maxLength: 1024 },
  },
  required: ['username', 'password'],
  additionalProperties: false,
} as const;

const SCOPE_WORDS: Record<string, string> = {
  openid: 'Confirm who you are',
  profile: 'See your name',
  email: 'See your email address',
  roles: 'See your roles',
};

export async function interactionRoutes(app: FastifyInstance, deps: InteractionDependencies): Promise<void> {
  const provider = () => deps.providerHost.provider;
  const issuerOrigin = new URL(deps.issuer).origin;

  await app.register(formbody);

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof PageError)
      return sendPage(reply, error.statusCode, errorPage({ title: error.title, message: error.message }));
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return sendPage(
        reply,
        status,
        errorPage({
          title: 'Request not accepted',
          message: 'The form could not be accepted. Go back and try again.',
        }),
      );
    }
    request.log.error({ err: error }, 'sign-in page failed');
    return sendPage(
      reply,
      500,
      errorPage({ title: 'Something went wrong', message: 'Please try again in a moment.' }),
    );
  });

  app.get(STYLESHEET_PATH, { logLevel: 'warn' }, async (_request, reply) =>
    reply
      .header('content-type', 'text/css; charset=utf-8')
      .header('cache-control', 'public, max-age=3600')
      .send(STYLESHEET),
  );

  /** The interaction this browser is in, which must be the one in the URL. */
  async function load(
    request: FastifyRequest<{ Params: { uid: string } }>,
    reply: FastifyReply,
  ): Promise<Details> {
    let details: Details;
    try {
      details = await provider().interactionDetails(request.raw, reply.raw);
    } catch {
      throw EXPIRED();
    }
    if (details.uid !== request.params.uid) throw EXPIRED();
    return details;
  }

  /**
   * Refuses forms from other sites or for another interaction. Under the pages'
   * `Referrer-Policy: no-referrer`, browsers send `Origin: null` even on
   * same-origin posts; so can an attacker's page, so `null` is trusted only
   * with the browser-set `Sec-Fetch-Site: same-origin`, which pages cannot forge.
   */
  function checkForm(request: FastifyRequest<{ Params: { uid: string }; Body: { csrf?: string } }>): void {
    const origin = request.headers.origin;
    const site = request.headers['sec-fetch-site'];
    const sameOriginNull = origin === 'null' && site === 'same-origin';
    const crossSite = site !== undefined && site !== 'same-origin' && site !== 'none';
    if (crossSite || (origin !== undefined && origin !== issuerOrigin && !sameOriginNull)) {
      throw new PageError(403, 'Request refused', 'This form was sent from another site and was refused.');
    }
    if (!deps.csrf.verify(request.params.uid, request.body?.csrf)) {
      throw new PageError(
        403,
        'Request refused',
        'This form has expired. Go back to the application and start again.',
      );
    }
  }

  async function finish(
    request: FastifyRequest,
    reply: FastifyReply,
    result: InteractionResults,
    merge: boolean,
  ) {
    const location = await provider().interactionResult(request.raw, reply.raw, result, {
      mergeWithLastSubmission: merge,
    });
    // 303: the browser follows with a GET and never re-posts the form (RFC 9700 §4.12).
    return reply.code(303).header('location', location).header('cache-control', 'no-store').send();
  }

  app.get<{ Params: { uid: string } }>(
    '/interaction/:uid',
    { schema: { params: uidParams } },
    async (request, reply) => {
      const details = await load(request, reply);
      const clientName = await clientNameOf(details);
      const action = (step: string) => `/interaction/${details.uid}/${step}`;
      const csrf = deps.csrf.issue(details.uid);
      switch (details.prompt.name) {
        case 'login':
          return sendPage(
            reply,
            200,
            loginPage({ action: action('login'), csrf, clientName, email: loginHint(details) }),
          );
        case 'consent': {
          if (await deps.isFirstParty(String(details.params.client_id))) {
            return finish(request, reply, { consent: { grantId: await grantConsent(details) } }, true);
          }
          return sendPage(
            reply,
            200,
            consentPage({
              action: action('confirm'),
              denyAction: action('abort'),
              csrf,
              clientName,
              ...describeConsent(details),
            }),
          );
        }
        default:
          throw new PageError(
            400,
            'Cannot continue',
            'This sign-in step is not available. Go back to the application and start again.',
          );
      }
    },
  );

  app.post<{ Params: { uid: string }; Body: { csrf?: string; username: string; password: string } }>(
    '/interaction/:uid/login',
    { schema: { params: uidParams, body: loginBody } },
    async (request, reply) => {
      checkForm(request);
      const details = await load(request, reply);
      if (details.prompt.name !== 'login') throw EXPIRED();
      const { username, password } = request.body;
      const outcome = await deps.users.authenticate(username, password, request.ip);
      if (!outcome.ok) {
        await deps.audit.record({
          type: 'login.failure',
          actor: 'anonymous',
          target: outcome.userId ? `user:${outcome.userId}` : undefined,
          ip: request.ip,
          details: { reason: outcome.reason, client_id: details.params.client_id },
        });
        const csrf = deps.csrf.issue(details.uid);
        const clientName = await clientNameOf(details);
        return sendPage(
          reply,
          401,
          loginPage({
            action: `/interaction/${details.uid}/login`,
            csrf,
            clientName,
            email: username.slice(0, 254),
            error: SIGN_IN_FAILED,
          }),
        );
      }
      await deps.lockout.succeed(outcome.user.id);
      await deps.audit.record({
        type: 'login.success',
        actor: `user:${outcome.user.id}`,
        target: `client:${details.params.client_id}`,
        ip: request.ip,
        details: { amr: ['pwd'] },
      });
      return finish(
        request,
        reply,
        { login: { accountId: outcome.user.id, acr: ACR_PASSWORD, amr: ['pwd'], remember: true } },
        false,
      );
    },
  );

  app.post<{ Params: { uid: string }; Body: { csrf?: string } }>(
    '/interaction/:uid/confirm',
    { schema: { params: uidParams, body: csrfBody } },
    async (request, reply) => {
      checkForm(request);
      const details = await load(request, reply);
      if (details.prompt.name !== 'consent') throw EXPIRED();
      return finish(request, reply, { consent: { grantId: await grantConsent(details) } }, true);
    },
  );

  app.post<{ Params: { uid: string }; Body: { csrf?: string } }>(
    '/interaction/:uid/abort',
    { schema: { params: uidParams, body: csrfBody } },
    async (request, reply) => {
      checkForm(request);
      await load(request, reply);
      return finish(
        request,
        reply,
        { error: 'access_denied', error_description: 'End-User aborted interaction' },
        false,
      );
    },
  );

  async function clientNameOf(details: Details): Promise<string | undefined> {
    const client = await provider().Client.find(String(details.params.client_id));
    return client?.clientName ?? undefined;
  }

  /** Grants what the consent prompt found missing, and remembers it for next time. */
  async function grantConsent(details: Details): Promise<string> {
    const { Grant: GrantModel } = provider();
    const accountId = details.session?.accountId;
    const clientId = String(details.params.client_id);
    if (!accountId) throw EXPIRED();
    let grant: Grant | undefined = details.grantId ? await GrantModel.find(details.grantId) : undefined;
    grant ??= new GrantModel({ accountId, clientId });
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCScope?.length) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims?.length) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    const grantId = await grant.save();
    if (!(await deps.isFirstParty(clientId))) {
      await deps.consents.remember(accountId, clientId, {
        scopes: missing.missingOIDCScope ?? [],
        claims: missing.missingOIDCClaims ?? [],
        resourceScopes: missing.missingResourceScopes ?? {},
      });
    }
    return grantId;
  }
}

function describeConsent(details: Details): {
  scopes: ScopeDescription[];
  resources: string[];
  offline: boolean;
} {
  const missing = details.prompt.details as {
    missingOIDCScope?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  const oidcScopes = missing.missingOIDCScope ?? [];
  const scopes: ScopeDescription[] = oidcScopes
    .filter((scope) => scope !== 'offline_access')
    .map((scope) => ({ scope, description: SCOPE_WORDS[scope] ?? scope }));
  const resources = Object.keys(missing.missingResourceScopes ?? {});
  for (const [resource, resourceScopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    for (const scope of resourceScopes)
      scopes.push({ scope, description: `Use ${scope} at ${new URL(resource).host || resource}` });
  }
  return { scopes, resources, offline: oidcScopes.includes('offline_access') };
}

function loginHint(details: Details): string | undefined {
  const hint = details.params.login_hint;
  return typeof hint === 'string' && hint.length <= 254 ? hint : undefined;
}

export function sendPage(reply: FastifyReply, status: number, body: string) {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', PAGE_CSP)
    .header('cache-control', 'no-store')
    .header('pragma', 'no-cache')
    .send(body);
}
