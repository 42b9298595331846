// Accounts and claims for oidc-provider: `sub` is the user's id; claims follow
// the granted scopes (the provider filters them by its `claims` mapping).
// A disabled or deleted user has no account, so their refresh tokens and
// opaque access tokens stop working at once.
import type { Account, KoaContextWithOIDC } from 'oidc-provider';
import type { UserService } from '../services/users.ts';

export const ACR_PASSWORD = 'urn:gatehouse:loa:1';
export const ACR_SECOND_FACTOR = 'urn:gatehouse:loa:2';

export function createFindAccount(users: UserService) {
  return async function findAccount(_ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> {
    const user = await users.findById(sub);
    if (!user || user.disabled) return undefined;
    return {
      accountId: user.id,
      async claims() {
        return {
          sub: user.id,
          name: user.name ?? undefined,
          email: user.email,
          email_verified: user.emailVerified,
          roles: user.roles,
        };
      },
    };
  };
}

interface TokenLike {
  accountId?: string;
  resourceServer?: unknown;
}

/**
 * JWT access tokens for a resource carry what resource servers decide on:
 * `acr` and `amr` of the sign-in, and the user's `roles` when the `roles` scope
 * was granted (read live, so a newly assigned role shows in the next token).
 */
export function createExtraTokenClaims(users: UserService) {
  return async function extraTokenClaims(ctx: KoaContextWithOIDC, token: TokenLike) {
    if (!token.accountId || !token.resourceServer) return undefined;
    const entities = ctx.oidc.entities as Record<
      string,
      { acr?: string; amr?: string[]; scopes?: Set<string> } | undefined
    >;
    const source = entities.AuthorizationCode ?? entities.RotatedRefreshToken ?? entities.RefreshToken;
    const grant = entities.Grant as { getOIDCScope?: () => string } | undefined;
    const oidcScopes = new Set((grant?.getOIDCScope?.() ?? '').split(' '));
    const claims: Record<string, unknown> = {};
    if (source?.acr) claims.acr = source.acr;
    if (source?.amr) claims.amr = source.amr;
    if (oidcScopes.has('roles')) {
      const user = await users.findById(token.accountId);
      claims.roles = user?.roles ?? [];
    }
    return claims;
  };
}
