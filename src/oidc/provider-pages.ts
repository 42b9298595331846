// The pages oidc-provider renders itself (errors, RP-initiated logout), in
// Gatehouse's look and with the sign-in pages' headers.
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import { PAGE_CSP } from '../views/html.ts';
import { errorPage, loggedOutPage, logoutPage } from '../views/pages.ts';

function setPageHeaders(ctx: KoaContextWithOIDC): void {
  ctx.set('content-security-policy', PAGE_CSP);
  ctx.set('cache-control', 'no-store');
  ctx.type = 'html';
}

export const renderError: NonNullable<Configuration['renderError']> = async (ctx, out) => {
  setPageHeaders(ctx);
  ctx.body = errorPage({
    title: 'Sign-in cannot continue',
    message:
      'The application sent a request that Gatehouse cannot accept. Contact the application’s support if this persists.',
    detail: [out.error, out.error_description].filter(Boolean).join(': '),
  });
};

export const logoutSource = async (ctx: KoaContextWithOIDC, form: string) => {
  setPageHeaders(ctx);
  ctx.body = logoutPage({ providerForm: form, clientName: ctx.oidc.client?.clientName ?? undefined });
};

export const postLogoutSuccessSource = async (ctx: KoaContextWithOIDC) => {
  setPageHeaders(ctx);
  ctx.body = loggedOutPage({ clientName: ctx.oidc.client?.clientName ?? undefined });
};
