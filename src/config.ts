// Environment → typed, frozen configuration. Every variable of SPEC's table is
// parsed here, with its default and meaning beside it; an invalid value throws a
// ConfigError naming the variable, and production refuses unsafe settings.
import { resolve } from 'node:path';
import { parseCidr } from './lib/cidr.ts';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface RateLimit {
  max: number;
  windowMs: number;
}

export interface RateLimits {
  /** Token endpoint, per client and per IP. */
  token: RateLimit;
  /** Sign-in attempts per account. */
  login: RateLimit;
  /** Sign-in attempts per source IP. */
  login_ip: RateLimit;
  /** Admin API per caller. */
  admin: RateLimit;
}

export interface Config {
  production: boolean;
  /** Issuer URL, exact (no trailing slash is added or removed). */
  issuer: string;
  port: number;
  host: string;
  /** PostgreSQL connection string; undefined runs the embedded database. */
  databaseUrl: string | undefined;
  /** Absolute path: embedded database and generated development secrets. */
  dataDir: string;
  /** Base64 keys from GATEHOUSE_ENCRYPTION_KEY; undefined: generated in development. */
  encryptionKeys: Buffer[] | undefined;
  /** From GATEHOUSE_COOKIE_KEYS; undefined: generated in development. */
  cookieKeys: string[] | undefined;
  redisUrl: string | undefined;
  tls: { certFile: string; keyFile: string } | undefined;
  httpRedirectPort: number | undefined;
  /** CIDRs whose X-Forwarded-* headers are honoured; empty: none. */
  trustProxy: string[];
  /** CIDRs allowed to call /admin; undefined: any. */
  adminIpAllowlist: string[] | undefined;
  rateLimits: RateLimits;
  accessTokenTtl: number;
  refreshTokenIdleTtl: number;
  refreshTokenAbsoluteTtl: number;
  keyRotationDays: number | undefined;
  auditClientCredentials: boolean;
  logLevel: string;
}

type Env = Record<string, string | undefined>;

const DEFAULT_RATE_LIMITS = 'token=300/60s,login=10/60s,login_ip=30/60s,admin=120/60s';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loadConfig(env: Env = process.env, cwd = process.cwd()): Readonly<Config> {
  const production = env.NODE_ENV === 'production';
  const issuer = parseIssuer(read(env, 'GATEHOUSE_ISSUER') ?? 'http://localhost:3000');
  const tlsCertFile = read(env, 'GATEHOUSE_TLS_CERT_FILE');
  const tlsKeyFile = read(env, 'GATEHOUSE_TLS_KEY_FILE');
  if (Boolean(tlsCertFile) !== Boolean(tlsKeyFile)) {
    const missing = tlsCertFile ? 'GATEHOUSE_TLS_KEY_FILE' : 'GATEHOUSE_TLS_CERT_FILE';
    throw new ConfigError(`${missing} must be set together with the other TLS file variable`);
  }
  const httpRedirectPort = optional(env, 'GATEHOUSE_HTTP_REDIRECT_PORT', (v, n) => parsePort(v, n));
  if (httpRedirectPort !== undefined && !tlsCertFile) {
    throw new ConfigError(
      'GATEHOUSE_HTTP_REDIRECT_PORT needs GATEHOUSE_TLS_CERT_FILE and GATEHOUSE_TLS_KEY_FILE',
    );
  }
  const refreshTokenIdleTtl = optional(env, 'GATEHOUSE_REFRESH_TOKEN_IDLE_TTL', parseSeconds) ?? 1_209_600;
  const refreshTokenAbsoluteTtl =
    optional(env, 'GATEHOUSE_REFRESH_TOKEN_ABSOLUTE_TTL', parseSeconds) ?? 2_592_000;
  if (refreshTokenIdleTtl > refreshTokenAbsoluteTtl) {
    throw new ConfigError(
      'GATEHOUSE_REFRESH_TOKEN_IDLE_TTL must not exceed GATEHOUSE_REFRESH_TOKEN_ABSOLUTE_TTL',
    );
  }

  const config: Config = {
    production,
    issuer,
    port: optional(env, 'PORT', parsePort) ?? 3000,
    host: read(env, 'HOST') ?? '127.0.0.1',
    databaseUrl: optional(env, 'DATABASE_URL', parseDatabaseUrl),
    dataDir: resolve(cwd, read(env, 'GATEHOUSE_DATA_DIR') ?? './data'),
    encryptionKeys: optional(env, 'GATEHOUSE_ENCRYPTION_KEY', parseEncryptionKeys),
    cookieKeys: optional(env, 'GATEHOUSE_COOKIE_KEYS', parseCookieKeys),
    redisUrl: optional(env, 'REDIS_URL', parseRedisUrl),
    tls:
      tlsCertFile && tlsKeyFile
        ? { certFile: resolve(cwd, tlsCertFile), keyFile: resolve(cwd, tlsKeyFile) }
        : undefined,
    httpRedirectPort,
    trustProxy: optional(env, 'GATEHOUSE_TRUST_PROXY', parseTrustProxy) ?? [],
    adminIpAllowlist: optional(env, 'GATEHOUSE_ADMIN_IP_ALLOWLIST', parseCidrs),
    rateLimits: parseRateLimits(read(env, 'GATEHOUSE_RATE_LIMITS') ?? DEFAULT_RATE_LIMITS),
    accessTokenTtl: optional(env, 'GATEHOUSE_ACCESS_TOKEN_TTL', parseSeconds) ?? 600,
    refreshTokenIdleTtl,
    refreshTokenAbsoluteTtl,
    keyRotationDays: optional(env, 'GATEHOUSE_KEY_ROTATION_DAYS', parsePositiveInteger),
    auditClientCredentials: optional(env, 'GATEHOUSE_AUDIT_CLIENT_CREDENTIALS', parseBoolean) ?? false,
    logLevel: optional(env, 'LOG_LEVEL', parseLogLevel) ?? 'info',
  };
  if (production) refuseUnsafeProduction(config);
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function refuseUnsafeProduction(config: Config): void {
  const url = new URL(config.issuer);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new ConfigError(
      `GATEHOUSE_ISSUER must use https in production (got ${config.issuer}); plain http is only allowed on loopback`,
    );
  }
  if (!config.encryptionKeys) {
    throw new ConfigError('GATEHOUSE_ENCRYPTION_KEY must be set in production (base64 of 32 bytes)');
  }
  if (!config.cookieKeys) {
    throw new ConfigError('GATEHOUSE_COOKIE_KEYS must be set in production (comma-separated signing keys)');
  }
}

export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function optional<T>(env: Env, name: string, parse: (value: string, name: string) => T): T | undefined {
  const value = read(env, name);
  if (value === undefined) return undefined;
  try {
    return parse(value, name);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`${name} is invalid: ${(error as Error).message}`);
  }
}

function parseIssuer(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`GATEHOUSE_ISSUER is not a URL: ${value}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError('GATEHOUSE_ISSUER must be an http or https URL');
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError('GATEHOUSE_ISSUER must not carry a query, fragment or credentials');
  }
  return value;
}

function parsePort(value: string, name: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) {
    throw new ConfigError(`${name} must be a port number from 1 to 65535 (got "${value}")`);
  }
  return port;
}

function parsePositiveInteger(value: string, name: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new ConfigError(`${name} must be a positive whole number (got "${value}")`);
  }
  return Number(value);
}

const parseSeconds = parsePositiveInteger;

function parseBoolean(value: string, name: string): boolean {
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new ConfigError(`${name} must be true or false (got "${value}")`);
}

function parseLogLevel(value: string, name: string): string {
  if (!LOG_LEVELS.includes(value)) throw new ConfigError(`${name} must be one of ${LOG_LEVELS.join(', ')}`);
  return value;
}

function parseDatabaseUrl(value: string, name: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a connection URL`);
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
    throw new ConfigError(`${name} must be a postgresql:// URL`);
  }
  return value;
}

function parseRedisUrl(value: string, name: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a URL`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw new ConfigError(`${name} must be a redis:// URL`);
  return value;
}

function parseEncryptionKeys(value: string, name: string): Buffer[] {
  return value.split(',').map((part, index) => {
    const text = part.trim();
    const key = Buffer.from(text, 'base64');
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text) || key.length !== 32) {
      throw new ConfigError(
        `${name} entry ${index + 1} must be base64 of exactly 32 bytes (openssl rand -base64 32)`,
      );
    }
    return key;
  });
}

function parseCookieKeys(value: string, name: string): string[] {
  const keys = value.split(',').map((key) => key.trim());
  for (const key of keys) {
    // 32 characters: a cookie signing key must not be guessable offline.
    if (key.length < 32) throw new ConfigError(`${name}: every key must be at least 32 characters`);
  }
  return keys;
}

function parseCidrs(value: string, name: string): string[] {
  return value.split(',').map((entry) => {
    try {
      parseCidr(entry);
    } catch (error) {
      throw new ConfigError(`${name}: ${(error as Error).message}`);
    }
    return entry.trim();
  });
}

function parseTrustProxy(value: string, name: string): string[] {
  if (/^false$/i.test(value)) return [];
  return parseCidrs(value, name);
}

export function parseRateLimits(value: string, name = 'GATEHOUSE_RATE_LIMITS'): RateLimits {
  const limits = Object.fromEntries(
    DEFAULT_RATE_LIMITS.split(',').map((entry) => {
      const [key, spec] = entry.split('=') as [string, string];
      return [key, parseRate(spec, name)];
    }),
  ) as unknown as RateLimits;
  for (const entry of value.split(',')) {
    const [key, spec, ...rest] = entry.trim().split('=');
    if (!key || !spec || rest.length || !Object.hasOwn(limits, key)) {
      throw new ConfigError(
        `${name}: "${entry}" must be one of token|login|login_ip|admin=COUNT/WINDOW (e.g. 300/60s)`,
      );
    }
    limits[key as keyof RateLimits] = parseRate(spec, name);
  }
  return limits;
}

function parseRate(spec: string, name: string): RateLimit {
  const match = /^(\d+)\/(\d+)(s|m|h)$/.exec(spec.trim());
  if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) {
    throw new ConfigError(`${name}: "${spec}" must be COUNT/WINDOW with a unit s, m or h (e.g. 300/60s)`);
  }
  const unit = { s: 1000, m: 60_000, h: 3_600_000 }[match[3] as 's' | 'm' | 'h'];
  return { max: Number(match[1]), windowMs: Number(match[2]) * unit };
}
