// Configuration from the environment: documented defaults, every invalid value
// refused at start with the variable's exact name, and production refusing
// settings that are only safe on a developer's machine.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.ts';

const CWD = path.resolve('/srv/gatehouse');
const KEY_A = randomBytes(32);
const KEY_B = randomBytes(32);
const COOKIE_KEY = 'c'.repeat(32);
const PRODUCTION_SECRETS = {
  NODE_ENV: 'production',
  GATEHOUSE_ENCRYPTION_KEY: KEY_A.toString('base64'),
  GATEHOUSE_COOKIE_KEYS: COOKIE_KEY,
};

type Assertions = Pick<typeof t, 'type' | 'match'>;

/** Asserts that loading `env` throws a ConfigError whose message names `variable`. */
function refuses(t: Assertions, env: Record<string, string>, variable: string): void {
  let caught: unknown;
  try {
    loadConfig(env, CWD);
  } catch (error) {
    caught = error;
  }
  const label = `${env.NODE_ENV === 'production' ? 'production, ' : ''}${variable}=${env[variable] ?? '(unset)'}`;
  t.type(caught, ConfigError, `${label} throws a ConfigError`);
  t.match((caught as Error | undefined)?.message, variable, `the message names ${variable}`);
}

t.test('defaults', async (t) => {
  const config = loadConfig({}, CWD);
  t.equal(config.production, false);
  t.equal(config.issuer, 'http://localhost:3000');
  t.equal(config.port, 3000);
  t.equal(config.host, '127.0.0.1');
  t.equal(config.databaseUrl, undefined);
  t.equal(config.dataDir, path.join(CWD, 'data'), 'dataDir is resolved against cwd');
  t.equal(config.encryptionKeys, undefined);
  t.equal(config.cookieKeys, undefined);
  t.equal(config.redisUrl, undefined);
  t.equal(config.tls, undefined);
  t.equal(config.httpRedirectPort, undefined);
  t.same(config.trustProxy, []);
  t.equal(config.adminIpAllowlist, undefined);
  t.same(config.rateLimits, {
    token: { max: 300, windowMs: 60_000 },
    login: { max: 10, windowMs: 60_000 },
    login_ip: { max: 30, windowMs: 60_000 },
    admin: { max: 120, windowMs: 60_000 },
  });
  t.equal(config.accessTokenTtl, 600);
  t.equal(config.refreshTokenIdleTtl, 1_209_600);
  t.equal(config.refreshTokenAbsoluteTtl, 2_592_000);
  t.equal(config.keyRotationDays, undefined);
  t.equal(config.auditClientCredentials, false);
  t.equal(config.logLevel, 'info');
});

t.test('the returned config is frozen', async (t) => {
  const config = loadConfig({}, CWD);
  t.ok(Object.isFrozen(config));
  t.throws(() => {
    (config as { port: number }).port = 1;
  }, TypeError);
  t.equal(config.port, 3000);
});

t.test('explicit values are parsed', async (t) => {
  const config = loadConfig(
    {
      GATEHOUSE_ISSUER: 'https://id.example.com',
      PORT: '8443',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://gatehouse@db:5432/gatehouse',
      GATEHOUSE_DATA_DIR: '/var/lib/gatehouse',
      REDIS_URL: 'rediss://cache:6380',
      GATEHOUSE_TLS_CERT_FILE: 'tls/cert.pem',
      GATEHOUSE_TLS_KEY_FILE: 'tls/key.pem',
      GATEHOUSE_HTTP_REDIRECT_PORT: '8080',
      GATEHOUSE_TRUST_PROXY: '10.0.0.0/8, fd00::/8',
      GATEHOUSE_ADMIN_IP_ALLOWLIST: '192.168.1.7',
      GATEHOUSE_ACCESS_TOKEN_TTL: '300',
      GATEHOUSE_REFRESH_TOKEN_IDLE_TTL: '3600',
      GATEHOUSE_REFRESH_TOKEN_ABSOLUTE_TTL: '7200',
      GATEHOUSE_KEY_ROTATION_DAYS: '90',
      GATEHOUSE_AUDIT_CLIENT_CREDENTIALS: 'yes',
      LOG_LEVEL: 'debug',
    },
    CWD,
  );
  t.equal(config.issuer, 'https://id.example.com');
  t.equal(config.port, 8443);
  t.equal(config.host, '0.0.0.0');
  t.equal(config.databaseUrl, 'postgresql://gatehouse@db:5432/gatehouse');
  t.equal(config.dataDir, path.resolve('/var/lib/gatehouse'), 'an absolute dataDir is kept');
  t.equal(config.redisUrl, 'rediss://cache:6380');
  t.same(config.tls, { certFile: path.join(CWD, 'tls/cert.pem'), keyFile: path.join(CWD, 'tls/key.pem') });
  t.equal(config.httpRedirectPort, 8080);
  t.same(config.trustProxy, ['10.0.0.0/8', 'fd00::/8']);
  t.same(config.adminIpAllowlist, ['192.168.1.7']);
  t.equal(config.accessTokenTtl, 300);
  t.equal(config.refreshTokenIdleTtl, 3600);
  t.equal(config.refreshTokenAbsoluteTtl, 7200);
  t.equal(config.keyRotationDays, 90);
  t.equal(config.auditClientCredentials, true);
  t.equal(config.logLevel, 'debug');
});

t.test('a partial GATEHOUSE_RATE_LIMITS overrides only its key', async (t) => {
  const config = loadConfig({ GATEHOUSE_RATE_LIMITS: 'login=5/2m' }, CWD);
  t.same(config.rateLimits, {
    token: { max: 300, windowMs: 60_000 },
    login: { max: 5, windowMs: 120_000 },
    login_ip: { max: 30, windowMs: 60_000 },
    admin: { max: 120, windowMs: 60_000 },
  });
  const two = loadConfig({ GATEHOUSE_RATE_LIMITS: 'token=1000/1h, admin=10/30s' }, CWD);
  t.same(two.rateLimits.token, { max: 1000, windowMs: 3_600_000 });
  t.same(two.rateLimits.admin, { max: 10, windowMs: 30_000 });
  t.same(two.rateLimits.login, { max: 10, windowMs: 60_000 });
});

t.test('the encryption key ring parses to one buffer per key, in order', async (t) => {
  const config = loadConfig(
    { GATEHOUSE_ENCRYPTION_KEY: `${KEY_A.toString('base64')},${KEY_B.toString('base64')}` },
    CWD,
  );
  t.equal(config.encryptionKeys?.length, 2);
  t.ok(config.encryptionKeys?.[0]?.equals(KEY_A), 'first key is the new (encrypting) key');
  t.ok(config.encryptionKeys?.[1]?.equals(KEY_B));
});

t.test('cookie keys: a comma-separated list of long keys', async (t) => {
  const other = 'd'.repeat(40);
  const config = loadConfig({ GATEHOUSE_COOKIE_KEYS: `${COOKIE_KEY},${other}` }, CWD);
  t.same(config.cookieKeys, [COOKIE_KEY, other]);
});

t.test('GATEHOUSE_TRUST_PROXY=false trusts no proxy', async (t) => {
  t.same(loadConfig({ GATEHOUSE_TRUST_PROXY: 'false' }, CWD).trustProxy, []);
});

t.test('each invalid value throws a ConfigError naming the variable', async (t) => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ PORT: '0' }, 'PORT'],
    [{ GATEHOUSE_ISSUER: 'not-a-url' }, 'GATEHOUSE_ISSUER'],
    [{ GATEHOUSE_ISSUER: 'ftp://x' }, 'GATEHOUSE_ISSUER'],
    [{ GATEHOUSE_ISSUER: 'https://id.example.com/?tenant=1' }, 'GATEHOUSE_ISSUER'],
    [{ GATEHOUSE_ENCRYPTION_KEY: randomBytes(16).toString('base64') }, 'GATEHOUSE_ENCRYPTION_KEY'],
    [{ GATEHOUSE_ENCRYPTION_KEY: `${KEY_A.toString('base64')},short` }, 'GATEHOUSE_ENCRYPTION_KEY'],
    [{ GATEHOUSE_COOKIE_KEYS: 'too-short' }, 'GATEHOUSE_COOKIE_KEYS'],
    [{ GATEHOUSE_COOKIE_KEYS: `${COOKIE_KEY},short` }, 'GATEHOUSE_COOKIE_KEYS'],
    [{ GATEHOUSE_TRUST_PROXY: '300.1.1.1/8' }, 'GATEHOUSE_TRUST_PROXY'],
    [{ GATEHOUSE_ADMIN_IP_ALLOWLIST: '10.0.0.0/33' }, 'GATEHOUSE_ADMIN_IP_ALLOWLIST'],
    [{ GATEHOUSE_RATE_LIMITS: 'token=abc' }, 'GATEHOUSE_RATE_LIMITS'],
    [{ GATEHOUSE_RATE_LIMITS: 'token=0/60s' }, 'GATEHOUSE_RATE_LIMITS'],
    [{ GATEHOUSE_RATE_LIMITS: 'toString=5/60s' }, 'GATEHOUSE_RATE_LIMITS'],
    [{ GATEHOUSE_RATE_LIMITS: '__proto__=5/60s' }, 'GATEHOUSE_RATE_LIMITS'],
    [{ GATEHOUSE_RATE_LIMITS: 'search=10/60s' }, 'GATEHOUSE_RATE_LIMITS'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ GATEHOUSE_ACCESS_TOKEN_TTL: '0' }, 'GATEHOUSE_ACCESS_TOKEN_TTL'],
    [{ GATEHOUSE_ACCESS_TOKEN_TTL: '1.5' }, 'GATEHOUSE_ACCESS_TOKEN_TTL'],
    [{ GATEHOUSE_KEY_ROTATION_DAYS: '-1' }, 'GATEHOUSE_KEY_ROTATION_DAYS'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL'],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
    [{ GATEHOUSE_AUDIT_CLIENT_CREDENTIALS: 'maybe' }, 'GATEHOUSE_AUDIT_CLIENT_CREDENTIALS'],
    [{ GATEHOUSE_TLS_CERT_FILE: 'cert.pem' }, 'GATEHOUSE_TLS_KEY_FILE'],
    [{ GATEHOUSE_TLS_KEY_FILE: 'key.pem' }, 'GATEHOUSE_TLS_CERT_FILE'],
    [{ GATEHOUSE_HTTP_REDIRECT_PORT: '8080' }, 'GATEHOUSE_HTTP_REDIRECT_PORT'],
    [
      { GATEHOUSE_REFRESH_TOKEN_IDLE_TTL: '7201', GATEHOUSE_REFRESH_TOKEN_ABSOLUTE_TTL: '7200' },
      'GATEHOUSE_REFRESH_TOKEN_IDLE_TTL',
    ],
  ];
  for (const [env, variable] of cases) refuses(t, env, variable);
});

t.test('production refuses unsafe settings', async (t) => {
  refuses(t, { ...PRODUCTION_SECRETS, GATEHOUSE_ISSUER: 'http://id.example.com' }, 'GATEHOUSE_ISSUER');
  refuses(t, { ...PRODUCTION_SECRETS, GATEHOUSE_ISSUER: 'http://10.0.0.5:3000' }, 'GATEHOUSE_ISSUER');
  const { GATEHOUSE_ENCRYPTION_KEY: _key, ...withoutKey } = PRODUCTION_SECRETS;
  refuses(t, { ...withoutKey, GATEHOUSE_ISSUER: 'https://id.example.com' }, 'GATEHOUSE_ENCRYPTION_KEY');
  const { GATEHOUSE_COOKIE_KEYS: _cookies, ...withoutCookies } = PRODUCTION_SECRETS;
  refuses(t, { ...withoutCookies, GATEHOUSE_ISSUER: 'https://id.example.com' }, 'GATEHOUSE_COOKIE_KEYS');
});

t.test('production accepts https, or http on loopback, with keys set', async (t) => {
  const https = loadConfig({ ...PRODUCTION_SECRETS, GATEHOUSE_ISSUER: 'https://id.example.com' }, CWD);
  t.equal(https.production, true);
  t.equal(https.issuer, 'https://id.example.com');
  t.ok(https.encryptionKeys?.[0]?.equals(KEY_A));
  t.same(https.cookieKeys, [COOKIE_KEY]);
  for (const issuer of ['http://localhost:3000', 'http://127.0.0.1:3000', 'http://[::1]:3000']) {
    const local = loadConfig({ ...PRODUCTION_SECRETS, GATEHOUSE_ISSUER: issuer }, CWD);
    t.equal(local.issuer, issuer, `${issuer} is accepted`);
    t.equal(local.production, true);
  }
  t.equal(loadConfig({ ...PRODUCTION_SECRETS }, CWD).issuer, 'http://localhost:3000', 'the default issuer');
});
