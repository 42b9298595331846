// Types for the two counter stores @fastify/rate-limit ships (store/*.js),
// which rate-limits.ts uses directly; the package types only its plugin.
declare module '@fastify/rate-limit/store/LocalStore.js' {
  export default class LocalStore {
    constructor(continueExceeding: boolean, exponentialBackoff: boolean, cache?: number);
    incr(
      key: string,
      done: (error: Error | null, count: { current: number; ttl: number } | null) => void,
      windowMs: number,
      max: number,
    ): void;
  }
}

declare module '@fastify/rate-limit/store/RedisStore.js' {
  import type { Redis } from 'ioredis';
  export default class RedisStore {
    constructor(continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, keyPrefix?: string);
    incr(
      key: string,
      done: (error: Error | null, count: { current: number; ttl: number } | null) => void,
      windowMs: number,
      max: number,
    ): void;
  }
}
