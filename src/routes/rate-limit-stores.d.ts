// Types for the two counter stores @fastify/rate-limit ships (store/*.js),
// which rate-limits.ts uses directly; the package types only its plugin.
declare module '@fastify/rate-limit/store/LocalStore.js' {
  /** Hits so far in the window, and milliseconds left in it. */
  export interface Count {
    current: number;
    ttl: number;
  }

  /** The stores' shared contract; `done` runs at once (LocalStore) or later (RedisStore). */
  export interface CounterStore {
    incr(
      key: string,
      done: (error: Error | null, count: Count | null) => void,
      windowMs: number,
      max: number,
    ): void;
  }

  interface LocalStore extends CounterStore {}
  class LocalStore {
    constructor(continueExceeding: boolean, exponentialBackoff: boolean, cache?: number);
  }
  export default LocalStore;
}

declare module '@fastify/rate-limit/store/RedisStore.js' {
  import type { CounterStore } from '@fastify/rate-limit/store/LocalStore.js';
  import type { Redis } from 'ioredis';

  interface RedisStore extends CounterStore {}
  class RedisStore {
    constructor(continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, keyPrefix?: string);
  }
  export default RedisStore;
}
