// Fastify's pino logger. Credentials never reach the logs: headers that carry
// them are redacted, request bodies are never logged, and the URL is logged
// without its query string (which may hold codes, tokens or state).
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify';
import pino, { type Bindings, type ChildLoggerOptions } from 'pino';

/** Keys whose values are credentials, wherever they appear in a logged object. */
const SECRET_KEYS = [
  'password',
  'client_secret',
  'clientSecret',
  'secret',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'code',
  'code_verifier',
  'client_assertion',
  'privateJwk',
  'd',
];

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  // `*.key` covers a key one level down only (`{ body: { password } }`); the
  // top-level `{ password }` needs its own path.
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((key) => `*.${key}`),
];

interface LoggedRequest {
  method: string;
  url: string;
  ip: string;
  id: string;
}

export function loggerOptions(
  level: string,
  destination?: NodeJS.WritableStream,
): FastifyServerOptions['logger'] {
  return {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    ...(destination ? { stream: destination } : {}),
    serializers: {
      req(request: LoggedRequest) {
        return { method: request.method, url: stripQuery(request.url), remoteAddress: request.ip };
      },
    },
  } as FastifyServerOptions['logger'];
}

export function stripQuery(url: string): string {
  const index = url.indexOf('?');
  return index === -1 ? url : `${url.slice(0, index)}?[redacted]`;
}

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * Fastify makes a child logger for every request, to bind its request id.
 * With the redaction above, pino passes every binding through its redactor,
 * which cost a JWKS request more than its metrics did (CPU profile,
 * 2026-12-04). This stands in for that child and makes it only when the request
 * logs a line at an enabled level: at `info`, for each request; at `warn`,
 * for the rare request that warns.
 */
class DeferredChildLogger implements FastifyBaseLogger {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  get level(): string {
    return this.#child?.level ?? this.#options.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#made().level = level;
  }

  // Methods, not arrow-function fields: fields would be seven closures per request.
  fatal(...args: unknown[]): void {
    this.#log('fatal', args);
  }
  error(...args: unknown[]): void {
    this.#log('error', args);
  }
  warn(...args: unknown[]): void {
    this.#log('warn', args);
  }
  info(...args: unknown[]): void {
    this.#log('info', args);
  }
  debug(...args: unknown[]): void {
    this.#log('debug', args);
  }
  trace(...args: unknown[]): void {
    this.#log('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#made().child(bindings, options);
  }

  #made(): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }

  #log(level: LevelName, args: unknown[]): void {
    if (!this.#child && !(pino.levels.values[level]! >= (pino.levels.values[this.level] ?? Infinity))) return;
    (this.#made()[level] as (...values: unknown[]) => void)(...args);
  }
}

/** Fastify's childLoggerFactory: a deferred child per request (see DeferredChildLogger). */
export function deferredChildLogger(
  parent: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  return new DeferredChildLogger(parent, bindings, options);
}
