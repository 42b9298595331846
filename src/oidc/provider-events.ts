// Audit events raised from inside oidc-provider: tokens issued for user grants,
// refresh-token reuse, revocations. Client-credentials issuance is audited
// only when configured (a row per service token would halve throughput).
import type { FastifyBaseLogger } from 'fastify';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { AuditService } from '../services/audit.ts';
import type { Metrics } from '../services/metrics.ts';

/** What a provider.use() middleware is handed. */
export type ProviderContext = Parameters<Parameters<Provider['use']>[0]>[0];

/**
 * What the provider's middleware (provider.ts) calls once the library has
 * answered: no middleware of its own here, since every Koa layer costs every
 * request a promise.
 */
export interface ProviderAudit {
  /** Audits a revocation of a single token (RFC 7009) the response reports. */
  recordRevocation(ctx: ProviderContext): void;
  /** The request's audit writes, to wait for before the response goes out; undefined when none. */
  writesOf(ctx: ProviderContext): Promise<unknown> | undefined;
}

export function auditProviderEvents(
  provider: Provider,
  audit: AuditService,
  metrics: Metrics,
  log: FastifyBaseLogger,
  options: { auditClientCredentials: boolean },
): ProviderAudit {
  // The library emits its events without waiting for listeners: each write is
  // queued on its request and awaited before the response goes out (writesOf),
  // so an event is in the audit log by the time the client sees the outcome.
  const pending = new WeakMap<object, Promise<unknown>[]>();
  const record = (event: Parameters<AuditService['record']>[0], ctx: object) => {
    const write = audit
      .record(event)
      .catch((error: unknown) => log.error({ err: error, audit: event.type }, 'audit write failed'));
    pending.set(ctx, [...(pending.get(ctx) ?? []), write]);
    return write;
  };

  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const grantType = String(ctx.oidc.params?.grant_type);
    const clientId = ctx.oidc.client?.clientId;
    metrics.countToken(grantType, grantType === 'client_credentials' ? (clientId ?? '') : '');
    if (grantType === 'client_credentials' && !options.auditClientCredentials) return;
    const accountId = (ctx.oidc.entities.Account as { accountId?: string } | undefined)?.accountId;
    void record(
      {
        type: 'token.issued',
        actor: accountId ? `user:${accountId}` : `client:${clientId}`,
        target: `client:${clientId}`,
        ip: ctx.ip,
        details: { grant_type: grantType },
      },
      ctx,
    );
  });

  provider.on('grant.error', (ctx: KoaContextWithOIDC, error: { error_detail?: string }) => {
    if (error.error_detail !== 'refresh token already used') return;
    const token = ctx.oidc.entities.RefreshToken as { accountId?: string; grantId?: string } | undefined;
    void record(
      {
        type: 'refresh_token.reuse_detected',
        actor: `client:${ctx.oidc.client?.clientId}`,
        target: token?.accountId ? `user:${token.accountId}` : undefined,
        ip: ctx.ip,
        details: { grant_revoked: true },
      },
      ctx,
    );
  });

  provider.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
    void record(
      {
        type: 'token.revoked',
        actor: ctx.oidc.client ? `client:${ctx.oidc.client.clientId}` : 'system',
        ip: ctx.ip,
        target: `grant:${grantId}`,
        details: { route: ctx.oidc.route },
      },
      ctx,
    );
  });

  return {
    recordRevocation,
    writesOf(ctx) {
      const writes = pending.get(ctx);
      if (!writes) return undefined;
      pending.delete(ctx);
      return Promise.all(writes);
    },
  };

  // Revocation of a single token (RFC 7009): only when a token was actually found.
  function recordRevocation(ctx: ProviderContext): void {
    const oidc = (ctx as Partial<KoaContextWithOIDC>).oidc;
    if (oidc?.route !== 'revocation' || ctx.status !== 200) return;
    const entities = oidc.entities as Record<string, unknown>;
    const kind = ['AccessToken', 'RefreshToken', 'ClientCredentials'].find((name) => entities[name]);
    if (!kind) return;
    void record(
      {
        type: 'token.revoked',
        actor: `client:${oidc.client?.clientId}`,
        ip: ctx.ip,
        details: { token_type: kind },
      },
      ctx,
    );
  }
}
