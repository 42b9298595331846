import type { Config } from '../config.ts';

/** How long /jwks responses may be cached by verifiers (seconds). */
export const JWKS_CACHE_MAX_AGE = 300;

/**
 * A demoted key may still have signed valid tokens for the longest token
 * lifetime, and verifiers may hold a cached JWKS without the new key for the
 * cache max-age: until both have passed, retiring it needs force (SPEC).
 */
export function retirementSafetySeconds(config: Pick<Config, 'accessTokenTtl'>): number {
  const idTokenTtl = 3600;
  return Math.max(config.accessTokenTtl, idTokenTtl) + JWKS_CACHE_MAX_AGE;
}
