// The sign-in pages under /interaction/:uid, rendered by Fastify for
// oidc-provider's interactions: login, consent (approve or deny), and an error
// page for everything that cannot go on. Every page is no-store, scriptless,
// never framed; every form carries a CSRF token bound to its interaction.
import { readFileSync } from 'node:fs';
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors, type Grant, type InteractionResults } from 'oidc-provider';
import { limitKeyOfIp } from '../lib/cidr.ts';
import type { CsrfTokens } from '../lib/csrf.ts';
import { CodedError } from '../lib/errors.ts';
import { ACR_PASSWORD, ACR_SECOND_FACTOR } from '../oidc/accounts.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import type { AuditService } from '../services/audit.ts';
import type { ConsentService } from '../services/consents.ts';
import type { AccountLockout } from '../services/lockout.ts';
import type { MfaService } from '../services/mfa.ts';
import { MAX_WRONG_CODES, type PendingSignIn, type PendingSignIns } from '../services/pending-sign-ins.ts';
import { normaliseCode, otpauthUrl, qrCodeSvg } from '../services/totp.ts';
import { normaliseEmail, type UserService } from '../services/users.ts';
import { PAGE_CSP, STYLESHEET_PATH } from '../views/html.ts';
import {
  consentPage,
  enrolmentPage,
  errorPage,
  loginPage,
  recoveryCodesPage,
  type ScopeDescription,
  secondFactorPage,
} from '../views/pages.ts';
import { isCrossSiteForm } from './form-origin.ts';
import { LimiterUnavailableError, type RateLimiter, setLimitHeaders } from './rate-limits.ts';

export interface InteractionDependencies {
  providerHost: ProviderHost;
  users: UserService;
  mfa: MfaService;
  pending: PendingSignIns;
  limiter: RateLimiter;
  lockout: AccountLockout;
  audit: AuditService;
  consents: ConsentService;
  csrf: CsrfTokens;
  issuer: string;
  isFirstParty: (clientId: string) => Promise<boolean>;
}

/** Shown for every failed sign-in, whatever the cause (SPEC: no account enumeration). */
export const SIGN_IN_FAILED = 'Incorrect email or password.';
export const CODE_FAILED = 'That code did not work. Try again.';
const CODE_MALFORMED = 'Enter the 6-digit code from your authenticator app, or one of your recovery codes.';

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

const codeBody = {
  type: 'object',
  properties: { csrf: { type: 'string', maxLength: 128 }, code: { type: 'string', maxLength: 64 } },
  required: ['code'],
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
    if (error instanceof LimiterUnavailableError) {
      return sendPage(
        reply,
        503,
        errorPage({
          title: 'Try again shortly',
          message: 'Sign-in is briefly unavailable. Please try again in a minute.',
        }),
      );
    }
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

  /**
   * Sign-in attempts per source IP and per account (SPEC login_ip / login);
   * true when refused, after writing the 429 page.
   */
  async function overLimit(
    request: FastifyRequest,
    reply: FastifyReply,
    account: string | undefined,
  ): Promise<boolean> {
    const checks = [deps.limiter.hit('login_ip', limitKeyOfIp(request.ip))];
    if (account) checks.push(deps.limiter.hit('login', account));
    const refused = (await Promise.all(checks)).find((outcome) => !outcome.allowed);
    if (!refused) return false;
    setLimitHeaders(reply, refused);
    await sendPage(
      reply,
      429,
      errorPage({
        title: 'Too many attempts',
        message: `Too many sign-in attempts. Wait ${refused.resetSeconds} seconds and try again.`,
      }),
    );
    return true;
  }

  /** The interaction this browser is in, which must be the one in the URL. */
  async function load(
    request: FastifyRequest<{ Params: { uid: string } }>,
    reply: FastifyReply,
  ): Promise<Details> {
    let details: Details;
    try {
      details = await provider().interactionDetails(request.raw, reply.raw);
    } catch (error) {
      // No interaction (cookie missing, expired, consumed) is the browser's problem;
      // anything else, such as the database being down, is ours: a 500 page.
      if (error instanceof errors.OIDCProviderError) throw EXPIRED();
      throw error;
    }
    if (details.uid !== request.params.uid) throw EXPIRED();
    return details;
  }

  /** Refuses forms from other sites or for another interaction. */
  function checkForm(request: FastifyRequest<{ Params: { uid: string }; Body: { csrf?: string } }>): void {
    if (isCrossSiteForm(request.headers, issuerOrigin)) {
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
        case 'login': {
          const pending = (await deps.pending.get(details.uid)) ?? (await startStepUp(details));
          if (pending?.stage === 'enrolled') return completeSignIn(request, reply, details, pending, 'otp');
          if (pending) return renderSecondStep(reply, details, pending, 200);
          return sendPage(
            reply,
            200,
            loginPage({ action: action('login'), csrf, clientName, email: loginHint(details) }),
          );
        }
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
      if (await overLimit(request, reply, accountKey(username))) return reply;
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
      const { user } = outcome;
      const mustUseSecondFactor =
        user.totpEnabled || user.mfaRequired || user.roles.includes('admin') || asksForSecondFactor(details);
      if (!mustUseSecondFactor) {
        await deps.lockout.succeed(user.id);
        await recordSignIn(request, details, user.id, ['pwd']);
        return finish(
          request,
          reply,
          { login: { accountId: user.id, acr: ACR_PASSWORD, amr: ['pwd'], remember: true } },
          false,
        );
      }
      const pending: PendingSignIn = user.totpEnabled
        ? { userId: user.id, stage: 'verify', wrongCodes: 0, password: true }
        : {
            userId: user.id,
            stage: 'enrol',
            wrongCodes: 0,
            password: true,
            pendingSecret: (await deps.mfa.beginEnrolment(user.id)).pendingSecret,
          };
      await deps.lockout.release(user.id);
      await deps.pending.save(details.uid, pending);
      return reply
        .code(303)
        .header('location', `/interaction/${details.uid}`)
        .header('cache-control', 'no-store')
        .send();
    },
  );

  app.post<{ Params: { uid: string }; Body: { csrf?: string; code: string } }>(
    '/interaction/:uid/mfa',
    { schema: { params: uidParams, body: codeBody } },
    async (request, reply) => {
      checkForm(request);
      const details = await load(request, reply);
      const pending = await deps.pending.get(details.uid);
      if (details.prompt.name !== 'login' || pending?.stage !== 'verify') throw EXPIRED();
      if (await overLimit(request, reply, `user:${pending.userId}`)) return reply;
      if (!normaliseCode(request.body.code))
        return renderSecondStep(reply, details, pending, 400, CODE_MALFORMED);
      const by = { actor: `user:${pending.userId}`, ip: request.ip };
      // Wrong codes count towards the account lockout; a locked account's codes are not even checked.
      const allowed = await deps.lockout.reserve(pending.userId);
      const result = allowed
        ? await deps.mfa.verifySecondFactor(pending.userId, request.body.code, by)
        : undefined;
      if (result?.ok)
        return completeSignIn(request, reply, details, pending, result.method === 'otp' ? 'otp' : 'mfa');
      if (!result) {
        await deps.audit.record({
          type: 'mfa.failure',
          actor: by.actor,
          target: by.actor,
          ip: request.ip,
          details: { reason: 'locked' },
        });
      }
      await deps.lockout.fail(pending.userId, request.ip);
      const wrongCodes = pending.wrongCodes + 1;
      if (wrongCodes >= MAX_WRONG_CODES) {
        await deps.pending.clear(details.uid);
        return sendPage(
          reply,
          401,
          loginPage({
            action: `/interaction/${details.uid}/login`,
            csrf: deps.csrf.issue(details.uid),
            clientName: await clientNameOf(details),
            error: 'Too many wrong codes. Sign in again.',
          }),
        );
      }
      await deps.pending.save(details.uid, { ...pending, wrongCodes });
      return renderSecondStep(reply, details, { ...pending, wrongCodes }, 401, CODE_FAILED);
    },
  );

  app.post<{ Params: { uid: string }; Body: { csrf?: string; code: string } }>(
    '/interaction/:uid/enrol',
    { schema: { params: uidParams, body: codeBody } },
    async (request, reply) => {
      checkForm(request);
      const details = await load(request, reply);
      const pending = await deps.pending.get(details.uid);
      if (details.prompt.name !== 'login' || pending?.stage !== 'enrol') throw EXPIRED();
      const secret = deps.mfa.openPendingSecret(pending.userId, pending.pendingSecret);
      if (!secret) {
        const fresh = {
          ...pending,
          pendingSecret: (await deps.mfa.beginEnrolment(pending.userId)).pendingSecret,
        };
        await deps.pending.save(details.uid, fresh);
        return renderSecondStep(
          reply,
          details,
          fresh,
          400,
          'The setup expired. Scan this new code and try again.',
        );
      }
      if (!normaliseCode(request.body.code))
        return renderSecondStep(reply, details, pending, 400, CODE_MALFORMED);
      let recoveryCodes: string[];
      try {
        ({ recoveryCodes } = await deps.mfa.completeEnrolment(pending.userId, secret, request.body.code, {
          actor: `user:${pending.userId}`,
          ip: request.ip,
        }));
      } catch (error) {
        if (!(error instanceof CodedError) || error.statusCode >= 500) throw error;
        return renderSecondStep(
          reply,
          details,
          pending,
          401,
          'That code did not work. Check the time on your device and try again.',
        );
      }
      await deps.pending.save(details.uid, { ...pending, stage: 'enrolled', pendingSecret: undefined });
      return sendPage(
        reply,
        200,
        recoveryCodesPage({
          action: `/interaction/${details.uid}/continue`,
          csrf: deps.csrf.issue(details.uid),
          codes: recoveryCodes,
        }),
      );
    },
  );

  app.post<{ Params: { uid: string }; Body: { csrf?: string } }>(
    '/interaction/:uid/continue',
    { schema: { params: uidParams, body: csrfBody } },
    async (request, reply) => {
      checkForm(request);
      const details = await load(request, reply);
      const pending = await deps.pending.get(details.uid);
      if (details.prompt.name !== 'login' || pending?.stage !== 'enrolled') throw EXPIRED();
      return completeSignIn(request, reply, details, pending, 'otp');
    },
  );

  /** A step-up (acr_values asks for a second factor) of a session that signed in with a password only. */
  async function startStepUp(details: Details): Promise<PendingSignIn | undefined> {
    const accountId = details.session?.accountId;
    const reasons = details.prompt.reasons;
    if (!accountId || !reasons.includes('acr_step_up') || reasons.some((reason) => reason !== 'acr_step_up'))
      return undefined;
    const user = await deps.users.findById(accountId);
    if (!user || user.disabled) return undefined;
    const pending: PendingSignIn = user.totpEnabled
      ? { userId: user.id, stage: 'verify', wrongCodes: 0, password: false }
      : {
          userId: user.id,
          stage: 'enrol',
          wrongCodes: 0,
          password: false,
          pendingSecret: (await deps.mfa.beginEnrolment(user.id)).pendingSecret,
        };
    await deps.pending.save(details.uid, pending);
    return pending;
  }

  async function renderSecondStep(
    reply: FastifyReply,
    details: Details,
    pending: PendingSignIn,
    status: number,
    error?: string,
  ) {
    const csrf = deps.csrf.issue(details.uid);
    const clientName = await clientNameOf(details);
    if (pending.stage === 'verify') {
      return sendPage(
        reply,
        status,
        secondFactorPage({ action: `/interaction/${details.uid}/mfa`, csrf, clientName, error }),
      );
    }
    const user = await deps.users.findById(pending.userId);
    const secret = deps.mfa.openPendingSecret(pending.userId, pending.pendingSecret);
    if (!user || !secret) throw EXPIRED();
    const qrSvg = await qrCodeSvg(otpauthUrl({ secret, email: user.email, issuer: 'Gatehouse' }));
    return sendPage(
      reply,
      status,
      enrolmentPage({
        action: `/interaction/${details.uid}/enrol`,
        csrf,
        clientName,
        secret,
        qrSvg,
        error,
        required: true,
      }),
    );
  }

  async function completeSignIn(
    request: FastifyRequest,
    reply: FastifyReply,
    details: Details,
    pending: PendingSignIn,
    second: 'otp' | 'mfa',
  ) {
    await deps.pending.clear(details.uid);
    await deps.lockout.succeed(pending.userId);
    const amr = ['pwd', second];
    await recordSignIn(request, details, pending.userId, amr);
    return finish(
      request,
      reply,
      { login: { accountId: pending.userId, acr: ACR_SECOND_FACTOR, amr, remember: true } },
      false,
    );
  }

  async function recordSignIn(request: FastifyRequest, details: Details, userId: string, amr: string[]) {
    await deps.audit.record({
      type: 'login.success',
      actor: `user:${userId}`,
      target: `client:${details.params.client_id}`,
      ip: request.ip,
      details: { amr },
    });
  }

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

/** The per-account limit's key: the normalised email (or the raw text when it is not one). */
function accountKey(username: string): string {
  try {
    return `email:${normaliseEmail(username)}`;
  } catch {
    return `raw:${username.slice(0, 320)}`;
  }
}

/** The relying party asked for a second factor (acr_values=urn:gatehouse:loa:2). */
function asksForSecondFactor(details: Details): boolean {
  const values = details.params.acr_values;
  return typeof values === 'string' && values.split(' ').includes(ACR_SECOND_FACTOR);
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
