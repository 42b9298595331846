// TOTP and recovery-code helpers: RFC 6238's test vectors, the ±1 step
// window, replay refusal through the last accepted step, the one
// normalisation of what users type, secrets, otpauth URLs and the QR code.
import { generateSync } from 'otplib';
import t from 'tap';
import {
  generateRecoveryCode,
  generateTotpSecret,
  isTotpSecret,
  normaliseCode,
  otpauthUrl,
  qrCodeSvg,
  RECOVERY_ALPHABET,
  verifyTotp,
} from '../../src/services/totp.ts';

/** RFC 6238 Appendix B's SHA-1 seed, the ASCII "12345678901234567890", in base32. */
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

/** Appendix B's SHA-1 column, truncated to 6 digits (the last six of each 8-digit value). */
const RFC_VECTORS: [epoch: number, code: string][] = [
  [59, '287082'],
  [1111111109, '081804'],
  [1111111111, '050471'],
  [1234567890, '005924'],
  [2000000000, '279037'],
  [20000000000, '353130'],
];

function codeAt(secret: string, epoch: number): string {
  return generateSync({ secret, epoch });
}

t.test('RFC 6238 test vectors verify at their time, with the step they belong to', async (t) => {
  for (const [epoch, code] of RFC_VECTORS) {
    t.equal(codeAt(RFC_SECRET, epoch), code, `otplib computes the vector at ${epoch}`);
    t.same(verifyTotp(RFC_SECRET, code, { epoch }), { ok: true, step: Math.floor(epoch / 30) });
  }
});

t.test('the window is the current step and one either side, no more', async (t) => {
  const epoch = 1_700_000_015; // mid-step, so ±30 s stays in the neighbouring steps
  const step = Math.floor(epoch / 30);
  for (const offset of [-1, 0, 1]) {
    const code = codeAt(RFC_SECRET, epoch + offset * 30);
    t.same(verifyTotp(RFC_SECRET, code, { epoch }), { ok: true, step: step + offset }, `step ${offset}`);
  }
  for (const offset of [-2, 2, -10, 10]) {
    const code = codeAt(RFC_SECRET, epoch + offset * 30);
    const inWindow = [-1, 0, 1].some((near) => codeAt(RFC_SECRET, epoch + near * 30) === code);
    if (inWindow) continue; // a 1-in-10^6 collision with a code of the window
    t.same(verifyTotp(RFC_SECRET, code, { epoch }), { ok: false }, `step ${offset} is refused`);
  }
  const other = generateTotpSecret();
  t.same(verifyTotp(other, codeAt(RFC_SECRET, epoch), { epoch }).ok, false, 'another secret');
});

t.test('afterStep refuses every step up to and including the last accepted one', async (t) => {
  const epoch = 1_700_000_015;
  const step = Math.floor(epoch / 30);
  const now = codeAt(RFC_SECRET, epoch);
  const next = codeAt(RFC_SECRET, epoch + 30);
  const previous = codeAt(RFC_SECRET, epoch - 30);

  t.same(verifyTotp(RFC_SECRET, now, { epoch, afterStep: step - 1 }), { ok: true, step });
  t.same(verifyTotp(RFC_SECRET, now, { epoch, afterStep: step }), { ok: false }, 'the same code again');
  t.same(verifyTotp(RFC_SECRET, now, { epoch, afterStep: BigInt(step) }), { ok: false }, 'as a bigint');
  t.same(verifyTotp(RFC_SECRET, previous, { epoch, afterStep: step }), { ok: false }, 'an older code');
  t.same(
    verifyTotp(RFC_SECRET, next, { epoch, afterStep: step }),
    { ok: true, step: step + 1 },
    'a newer one',
  );
  t.same(
    verifyTotp(RFC_SECRET, next, { epoch, afterStep: step + 1 }),
    { ok: false },
    'the window is used up',
  );
  t.same(
    verifyTotp(RFC_SECRET, now, { epoch, afterStep: step + 50 }),
    { ok: false },
    'a last step beyond the window (a clock set back) refuses, never throws',
  );
  t.same(verifyTotp(RFC_SECRET, now, { epoch, afterStep: null }), { ok: true, step }, 'null: none yet');
});

t.test('verifyTotp never throws on malformed codes', async (t) => {
  const epoch = 1_700_000_015;
  for (const code of ['', '12345', '1234567', 'abcdef', ' 123456', '１２３４５６', '12345\u0000']) {
    t.same(verifyTotp(RFC_SECRET, code, { epoch }), { ok: false }, JSON.stringify(code));
  }
});

t.test('normaliseCode: TOTP codes', async (t) => {
  t.same(normaliseCode('123456'), { kind: 'totp', code: '123456' });
  t.same(normaliseCode('123 456'), { kind: 'totp', code: '123456' });
  t.same(normaliseCode('123-456'), { kind: 'totp', code: '123456' });
  t.same(normaliseCode('  123456  '), { kind: 'totp', code: '123456' }, 'surrounding spaces');
  t.same(normaliseCode('000000'), { kind: 'totp', code: '000000' }, 'leading zeros are kept');
});

t.test('normaliseCode: recovery codes', async (t) => {
  t.same(normaliseCode('ABCDE-FGHJK'), { kind: 'recovery', code: 'ABCDEFGHJK' });
  t.same(normaliseCode('abcde-fghjk'), { kind: 'recovery', code: 'ABCDEFGHJK' }, 'lower case, a dash');
  t.same(normaliseCode('abcdefghjk'), { kind: 'recovery', code: 'ABCDEFGHJK' }, 'no dash');
  t.same(normaliseCode('ABCDE FGHJK'), { kind: 'recovery', code: 'ABCDEFGHJK' }, 'a space');
  t.same(normaliseCode('oiL00-11111'), { kind: 'recovery', code: '0110011111' }, 'Crockford look-alikes');
  t.same(normaliseCode('1234567890'), { kind: 'recovery', code: '1234567890' }, '10 digits');
});

t.test('normaliseCode refuses everything else', async (t) => {
  const refused = [
    '',
    '   ',
    '-',
    '12345',
    '1234567',
    'abcdef',
    '１２３４５６', // full-width digits: a code is ASCII, no NFKC here
    '12345６',
    '123456\u0000',
    '123\t456',
    '123\n456',
    '123456\u200b', // zero-width space
    '\u202e123456',
    'ABCDE-FGHJ', // 9 symbols
    'ABCDE-FGHJKM', // 11
    'ABCDE-FGHJU', // U is not in the alphabet
    'ABCDE_FGHJK',
    'ÀBCDE-FGHJK',
    `${'1'.repeat(6)}${' '.repeat(60)}`, // 66 characters, however harmless
    '1'.repeat(100_000),
    undefined,
    null,
    123456,
    ['123456'],
    { code: '123456' },
  ];
  for (const value of refused) {
    t.equal(normaliseCode(value), undefined, JSON.stringify(value)?.slice(0, 40) ?? String(value));
  }
});

t.test('recovery codes: XXXXX-XXXXX from the alphabet, and they normalise to themselves', async (t) => {
  t.equal(RECOVERY_ALPHABET.length, 32);
  t.notOk(/[ILOU]/.test(RECOVERY_ALPHABET));
  const seen = new Set<string>();
  for (let index = 0; index < 200; index++) {
    const code = generateRecoveryCode();
    t.match(code, /^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
    t.same(normaliseCode(code), { kind: 'recovery', code: code.replace('-', '') });
    seen.add(code);
  }
  t.equal(seen.size, 200, 'no repeats in 200 (50 random bits each)');
});

t.test('secrets: 160-bit base32, different every time, usable by otplib', async (t) => {
  const secret = generateTotpSecret();
  t.match(secret, /^[A-Z2-7]{32}$/);
  t.ok(isTotpSecret(secret));
  t.not(generateTotpSecret(), secret);
  t.notOk(isTotpSecret('JBSWY3DPEHPK3PXP'), 'an 80-bit secret is not one of ours');
  t.notOk(isTotpSecret(`${secret}=`));
  const epoch = 1_700_000_015;
  t.ok(verifyTotp(secret, codeAt(secret, epoch), { epoch }).ok);
});

t.test('otpauth URL and its QR code', async (t) => {
  const secret = generateTotpSecret();
  const url = otpauthUrl({ secret, email: 'alice+mfa@example.com', issuer: 'Gatehouse' });
  const parsed = new URL(url);
  t.equal(parsed.protocol, 'otpauth:');
  t.equal(parsed.host, 'totp');
  t.equal(decodeURIComponent(parsed.pathname), '/Gatehouse:alice+mfa@example.com');
  t.equal(parsed.searchParams.get('secret'), secret);
  t.equal(parsed.searchParams.get('issuer'), 'Gatehouse');
  t.equal(
    otpauthUrl({ secret, email: 'a@example.com' }),
    otpauthUrl({ secret, email: 'a@example.com', issuer: 'Gatehouse' }),
  );

  const svg = await qrCodeSvg(url);
  t.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.match(svg, /role="img"/);
  t.match(svg, /<\/svg>\s*$/);
  t.notOk(/<script|style=|on[a-z]+=|href=/i.test(svg), 'nothing the CSP would block or that runs');
  t.notOk(svg.includes(secret), 'the secret is only in the pixels');
});
