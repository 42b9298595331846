// Refresh-token lifetimes: each token lives the idle TTL, but never past the
// absolute lifetime of its rotation chain (counted from the first token, iiat).
import t from 'tap';
import { loadConfig } from '../../src/config.ts';
import { refreshTokenTtl } from '../../src/oidc/provider.ts';

const config = loadConfig({
  GATEHOUSE_REFRESH_TOKEN_IDLE_TTL: '600',
  GATEHOUSE_REFRESH_TOKEN_ABSOLUTE_TTL: '3600',
});
const now = () => Math.floor(Date.now() / 1000);

t.test('a fresh chain gets the idle lifetime', async (t) => {
  t.equal(refreshTokenTtl(config, { iiat: now() }), 600);
  t.equal(refreshTokenTtl(config, {}), 600, 'the first token of a chain (no iiat yet)');
});

t.test('rotation never extends a chain past its absolute lifetime', async (t) => {
  const ttl = refreshTokenTtl(config, { iiat: now() - 3400 });
  t.ok(ttl <= 200 && ttl >= 199, `capped by what is left of the chain (${ttl})`);
});

t.test(
  'an exhausted chain gets the minimum of 1 second, never 0 (which oidc-provider rejects)',
  async (t) => {
    t.equal(refreshTokenTtl(config, { iiat: now() - 7200 }), 1);
  },
);
