// The admin API's gate, one onRequest hook for every /admin route (and the
// /admin 404s): the IP allowlist first, then the bearer token (AdminAccess),
// then the per-caller rate limit. It runs before the body is read, so a
// caller without the right learns nothing from validation and cannot make the
// server parse large bodies. Every refusal is audited as `admin.denied`.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createIpMatcher } from '../../lib/cidr.ts';
import { CodedError } from '../../lib/errors.ts';
import type { AdminAccess, AdminCaller } from '../../services/admin-access.ts';
import type { AuditService } from '../../services/audit.ts';

/** How a route is protected: `admin` (the default for every route here) or `public`. */
export type AdminAuthorization = 'admin' | 'public';

/**
 * The per-caller admin rate limit (SPEC GATEHOUSE_RATE_LIMITS `admin`). Given,
 * it is asked once per authorised request with the caller's actor as key.
 */
interface AdminLimitOutcome {
  allowed: boolean;
  limit: number;
  remaining: number;
  resetSeconds: number;
}

export interface AdminRateLimiter {
  hit(limit: 'admin', key: string): AdminLimitOutcome | Promise<AdminLimitOutcome>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the admin gate on every request it lets through to a protected route. */
    adminCaller: AdminCaller | null;
  }
  interface FastifyContextConfig {
    /** Who may call the route; the admin gate treats a missing value as `admin`. */
    authorization?: AdminAuthorization;
    /** The rate limit that applies to the route (a key of GATEHOUSE_RATE_LIMITS). */
    limit?: 'admin';
  }
}

export interface AdminGateOptions {
  access: AdminAccess;
  audit: AuditService;
  /** CIDRs allowed to call /admin (GATEHOUSE_ADMIN_IP_ALLOWLIST); undefined: any address. */
  ipAllowlist: readonly string[] | undefined;
  limiter?: AdminRateLimiter | undefined;
}

export function registerAdminGate(app: FastifyInstance, options: AdminGateOptions): void {
  const allowed = options.ipAllowlist ? createIpMatcher(options.ipAllowlist) : undefined;
  app.decorateRequest('adminCaller', null);

  async function deny(
    request: FastifyRequest,
    status: number,
    reason: string,
    actor: string | undefined,
  ): Promise<void> {
    await options.audit.record({
      type: 'admin.denied',
      actor: actor ?? 'anonymous',
      target: `${request.method} ${routeOf(request)}`,
      ip: request.ip,
      details: { status, reason },
    });
  }

  app.addHook('onRequest', async (request, reply) => {
    // Fastify's request.ip honours GATEHOUSE_TRUST_PROXY and nothing else.
    if (allowed && !allowed(request.ip)) {
      await deny(request, 403, 'ip_not_allowed', undefined);
      throw new CodedError('forbidden', 'the admin API is not available from this address', 403);
    }
    if (request.routeOptions.config.authorization === 'public') return;
    const decision = await options.access.authorize(request.headers.authorization);
    if (!decision.ok) {
      await deny(request, decision.status, decision.reason, decision.actor);
      // RFC 6750 §3; the error handler keeps headers set before the throw.
      reply.header('www-authenticate', `Bearer error="${decision.error}"`);
      throw new CodedError(decision.error, decision.message, decision.status);
    }
    request.adminCaller = decision.caller;
    if (options.limiter && request.routeOptions.config.limit) {
      const outcome = await options.limiter.hit(request.routeOptions.config.limit, decision.caller.actor);
      reply.header('ratelimit-limit', String(outcome.limit));
      reply.header('ratelimit-remaining', String(outcome.remaining));
      reply.header('ratelimit-reset', String(outcome.resetSeconds));
      if (!outcome.allowed) {
        reply.header('retry-after', String(Math.max(1, outcome.resetSeconds)));
        throw new CodedError('rate_limited', 'too many admin requests: try again later', 429);
      }
    }
  });
}

/** The caller of a request the gate let through (routes behind it only). */
export function callerOf(request: FastifyRequest): { actor: string; ip: string } {
  const caller = request.adminCaller;
  if (!caller) throw new Error('admin route reached without an authorised caller');
  return { actor: caller.actor, ip: request.ip };
}

/** The route pattern, or the path for a 404: what audit events name as target. */
function routeOf(request: FastifyRequest): string {
  const pattern = request.routeOptions.url;
  if (pattern) return pattern;
  const path = request.url.split('?')[0] ?? '';
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}
