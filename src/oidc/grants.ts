// Which grant an authorization request starts from, so the consent prompt only
// asks for what is missing: the session's grant for the client; else, for a
// first-party client, everything it asked for (no consent screen); else what
// the user consented to this client before (remembered across sessions).
import type { Grant, KoaContextWithOIDC } from 'oidc-provider';
import type { ConsentService } from '../services/consents.ts';
import type { ClientDirectory } from './client-directory.ts';

export function createLoadExistingGrant(clients: ClientDirectory, consents: ConsentService) {
  return async function loadExistingGrant(ctx: KoaContextWithOIDC): Promise<Grant | undefined> {
    const { oidc } = ctx;
    const client = oidc.client!;
    const session = oidc.session!;
    const grantId =
      (oidc.result?.consent as { grantId?: string } | undefined)?.grantId ??
      session.grantIdFor(client.clientId);
    if (grantId) {
      const existing = await oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const accountId = session.accountId;
    if (!accountId) return undefined;

    if (clients.isFirstParty(client.clientId)) {
      const grant = new oidc.provider.Grant({ clientId: client.clientId, accountId });
      grantRequested(ctx, grant);
      await grant.save();
      return grant;
    }
    const remembered = await consents.recall(accountId, client.clientId);
    if (!remembered) return undefined;
    const grant = new oidc.provider.Grant({ clientId: client.clientId, accountId });
    if (remembered.scopes.length) grant.addOIDCScope(remembered.scopes.join(' '));
    if (remembered.claims.length) grant.addOIDCClaims(remembered.claims);
    for (const [resource, scopes] of Object.entries(remembered.resourceScopes)) {
      if (scopes.length) grant.addResourceScope(resource, scopes.join(' '));
    }
    await grant.save();
    return grant;
  };
}

/** Adds everything the request asks for (already limited to what the client may have). */
export function grantRequested(ctx: KoaContextWithOIDC, grant: Grant): void {
  const { oidc } = ctx;
  const oidcScopes = [...oidc.requestParamOIDCScopes];
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  for (const [resource, server] of Object.entries(oidc.resourceServers ?? {})) {
    const available = new Set((server as { scope?: string }).scope?.split(' ') ?? []);
    const scopes = [...oidc.requestParamScopes].filter((scope) => available.has(scope));
    if (scopes.length) grant.addResourceScope(resource, scopes.join(' '));
  }
}
