import type { Config } from '../config.ts';

/** ID token lifetime (seconds): an hour, like most providers; RPs use it once, at sign-in. */
export const ID_TOKEN_TTL = 3600;

/** How long /jwks responses may be cached by verifiers (seconds). */
export const JWKS_CACHE_MAX_AGE = 300;

/**
 * A demoted key may still have signed valid tokens for the longest token
 * lifetime, and verifiers may hold a cached JWKS without the new key for the
 * cache max-age: until both have passed, retiring it needs force (SPEC).
 */
export function retirementSafetySeconds(config: Pick<Config, 'accessTokenTtl'>): number {
  return Math.max(config.accessTokenTtl, ID_TOKEN_TTL) + JWKS_CACHE_MAX_AGE;
}
