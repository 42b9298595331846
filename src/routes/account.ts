// /account/mfa: a signed-in user (Gatehouse session cookie) who chooses to add
// a second factor. The same enrolment page as during sign-in; the pending
// secret travels sealed (AES-GCM, bound to the user, 15 minutes) in a hidden
// field, and the CSRF token is bound to the session.
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CsrfTokens } from '../lib/csrf.ts';
import { CodedError } from '../lib/errors.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import type { MfaService } from '../services/mfa.ts';
import { normaliseCode, otpauthUrl, qrCodeSvg } from '../services/totp.ts';
import type { UserService } from '../services/users.ts';
import { enrolmentPage, errorPage, recoveryCodesPage } from '../views/pages.ts';
import { isCrossSiteForm } from './form-origin.ts';
import { sendPage } from './interaction.ts';

export interface AccountDependencies {
  providerHost: ProviderHost;
  users: UserService;
  mfa: MfaService;
  csrf: CsrfTokens;
  issuer: string;
}

const enrolBody = {
  type: 'object',
  properties: {
    csrf: { type: 'string', maxLength: 128 },
    code: { type: 'string', maxLength: 64 },
    pending: { type: 'string', maxLength: 2048 },
  },
  required: ['code', 'pending'],
  additionalProperties: false,
} as const;

export async function accountRoutes(app: FastifyInstance, deps: AccountDependencies): Promise<void> {
  await app.register(formbody);
  const issuerOrigin = new URL(deps.issuer).origin;

  app.setErrorHandler((error, request, reply) => {
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) request.log.error({ err: error }, 'account page failed');
    return sendPage(
      reply,
      Math.min(status, 500),
      errorPage({
        title: 'Request not accepted',
        message: 'The form could not be accepted. Reload the page and try again.',
      }),
    );
  });

  /** The signed-in user, from the provider's session cookie. */
  async function signedIn(request: FastifyRequest, reply: FastifyReply) {
    const provider = deps.providerHost.provider;
    const session = await provider.Session.get(provider.createContext(request.raw, reply.raw));
    const user = session.accountId ? await deps.users.findById(session.accountId) : undefined;
    if (!user || user.disabled) return undefined;
    return { user, csrfKey: `account:${session.uid}` };
  }

  const notSignedIn = (reply: FastifyReply) =>
    sendPage(
      reply,
      401,
      errorPage({
        title: 'Not signed in',
        message: 'Sign in to an application with Gatehouse first, then come back to this page.',
      }),
    );

  /** The enrolment page: a new secret, or the one being set up (`again`) after a wrong code. */
  async function showEnrolment(
    reply: FastifyReply,
    user: { id: string; email: string },
    csrf: string,
    status = 200,
    error?: string,
    again?: { secret: string; pending: string },
  ) {
    const enrolment = again
      ? {
          secret: again.secret,
          pendingSecret: again.pending,
          qrSvg: await qrCodeSvg(
            otpauthUrl({ secret: again.secret, email: user.email, issuer: 'Gatehouse' }),
          ),
        }
      : await deps.mfa.beginEnrolment(user.id);
    return sendPage(
      reply,
      status,
      enrolmentPage({
        action: '/account/mfa',
        csrf,
        secret: enrolment.secret,
        qrSvg: enrolment.qrSvg,
        pending: enrolment.pendingSecret,
        error,
        required: false,
      }),
    );
  }

  app.get('/account/mfa', async (request, reply) => {
    const account = await signedIn(request, reply);
    if (!account) return notSignedIn(reply);
    return showEnrolment(reply, account.user, deps.csrf.issue(account.csrfKey));
  });

  app.post<{ Body: { csrf?: string; code: string; pending: string } }>(
    '/account/mfa',
    { schema: { body: enrolBody } },
    async (request, reply) => {
      const account = await signedIn(request, reply);
      if (!account) return notSignedIn(reply);
      if (
        isCrossSiteForm(request.headers, issuerOrigin) ||
        !deps.csrf.verify(account.csrfKey, request.body.csrf)
      ) {
        return sendPage(
          reply,
          403,
          errorPage({ title: 'Request refused', message: 'This form has expired. Reload the page.' }),
        );
      }
      const csrf = deps.csrf.issue(account.csrfKey);
      const secret = deps.mfa.openPendingSecret(account.user.id, request.body.pending);
      if (!secret)
        return showEnrolment(reply, account.user, csrf, 400, 'The setup expired. Scan this new code.');
      const again = { secret, pending: request.body.pending };
      if (!normaliseCode(request.body.code)) {
        return showEnrolment(reply, account.user, csrf, 400, 'Enter the 6-digit code your app shows.', again);
      }
      try {
        const { recoveryCodes } = await deps.mfa.completeEnrolment(
          account.user.id,
          secret,
          request.body.code,
          {
            actor: `user:${account.user.id}`,
            ip: request.ip,
          },
        );
        return sendPage(reply, 200, recoveryCodesPage({ codes: recoveryCodes }));
      } catch (error) {
        if (!(error instanceof CodedError) || error.statusCode >= 500) throw error;
        return showEnrolment(
          reply,
          account.user,
          csrf,
          401,
          'That code did not work. Check the time on your device and try again.',
          again,
        );
      }
    },
  );
}
