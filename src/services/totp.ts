// TOTP (RFC 6238) and recovery codes as pure functions: secrets, otpauth://
// URLs and their QR code, verification with replay protection, and the one
// normalisation of what a user types into the code field. No storage here:
// the MFA service keeps secrets encrypted and steps in the database.
import { randomInt } from 'node:crypto';
import { generateSecret, generateURI, verifySync } from 'otplib';
import { toString as qrToString } from 'qrcode';

/** RFC 6238's defaults, which every authenticator app assumes: SHA-1, 6 digits, 30 s. */
const PERIOD_SECONDS = 30;
/** 20 bytes = 160 bits: RFC 4226 §4 recommends it (and the otplib default). */
const SECRET_BYTES = 20;
/** A 160-bit secret is exactly 32 base32 characters, with no padding. */
const SECRET_SHAPE = /^[A-Z2-7]{32}$/;
/** Longer input is refused before any other work: no code is anywhere near it. */
const MAX_CODE_INPUT = 64;

/**
 * Crockford's base32 alphabet: the digits and the letters less I, L, O and U,
 * so no two symbols look alike (I/1, L/1, O/0) and no accidental obscenity.
 * 32 symbols, so a uniform pick is 5 bits: a 10-character code carries 50.
 */
export const RECOVERY_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const RECOVERY_CODE_LENGTH = 10;
const RECOVERY_SHAPE = /^[0-9A-HJKMNP-TV-Z]{10}$/;

export type NormalisedCode = { kind: 'totp'; code: string } | { kind: 'recovery'; code: string };

export type TotpResult = { ok: true; step: number } | { ok: false };

/** A fresh base32 secret of 160 bits. */
export function generateTotpSecret(): string {
  return generateSecret({ length: SECRET_BYTES });
}

/** True for a secret as `generateTotpSecret` makes them (and as the MFA service accepts them back). */
export function isTotpSecret(value: unknown): value is string {
  return typeof value === 'string' && SECRET_SHAPE.test(value);
}

/** The `otpauth://totp/…` URL an authenticator app scans (SHA-1, 6 digits and 30 s are its defaults). */
export function otpauthUrl(options: { secret: string; email: string; issuer?: string }): string {
  return generateURI({ issuer: options.issuer ?? 'Gatehouse', label: options.email, secret: options.secret });
}

/**
 * Checks a 6-digit code against the current time step and one step either
 * side (RFC 6238 §5.2: one step of network delay and clock drift), and says
 * which step matched. Steps at or before `afterStep` (the last step accepted
 * for this user) are refused, so a code works once. `epoch` (seconds) is for
 * tests; it defaults to now. A code that is not exactly 6 ASCII digits is
 * simply not valid: this never throws on user input.
 */
export function verifyTotp(
  secret: string,
  code: string,
  options: { afterStep?: bigint | number | null | undefined; epoch?: number } = {},
): TotpResult {
  if (typeof code !== 'string' || !/^[0-9]{6}$/.test(code)) return { ok: false };
  const epoch = options.epoch ?? Math.floor(Date.now() / 1000);
  const after = options.afterStep === undefined || options.afterStep === null ? undefined : options.afterStep;
  const currentStep = Math.floor(epoch / PERIOD_SECONDS);
  const latestStep = currentStep + 1;
  // otplib throws when afterTimeStep lies beyond the window (a clock set back,
  // say); every step of the window is then refused anyway.
  if (after !== undefined && after >= latestStep) return { ok: false };
  const result = verifySync({
    secret,
    token: code,
    epoch,
    period: PERIOD_SECONDS,
    epochTolerance: PERIOD_SECONDS,
    ...(after !== undefined && after >= 0 ? { afterTimeStep: Number(after) } : {}),
  });
  // `delta` is the matching step's offset from the current one (otplib's types
  // cover HOTP too, whose results have no `timeStep`).
  return result.valid ? { ok: true, step: currentStep + result.delta } : { ok: false };
}

/**
 * What the user typed into the code field, or `undefined` when it is neither
 * shape. Spaces and dashes anywhere are dropped (apps show `123 456`, recovery
 * codes are shown `XXXXX-XXXXX`). Exactly 6 ASCII digits is a TOTP code;
 * 10 symbols of the recovery alphabet, in any case, is a recovery code, read
 * as Crockford reads base32 (I and L as 1, O as 0: the look-alikes the
 * alphabet leaves out). Refused: control and format characters, any other
 * character (full-width digits included: no NFKC here, a code is ASCII), and
 * anything over 64 characters.
 */
export function normaliseCode(raw: unknown): NormalisedCode | undefined {
  if (typeof raw !== 'string' || raw.length > MAX_CODE_INPUT) return undefined;
  if (/[\p{Cc}\p{Cf}]/u.test(raw)) return undefined;
  const compact = raw.replace(/[ -]/g, '');
  if (/^[0-9]{6}$/.test(compact)) return { kind: 'totp', code: compact };
  if (!/^[0-9A-Za-z]+$/.test(compact)) return undefined;
  const recovery = compact.toUpperCase().replace(/[IL]/g, '1').replace(/O/g, '0');
  return RECOVERY_SHAPE.test(recovery) ? { kind: 'recovery', code: recovery } : undefined;
}

/** A recovery code as shown to the user once: `XXXXX-XXXXX`, 50 random bits. */
export function generateRecoveryCode(): string {
  let code = '';
  for (let index = 0; index < RECOVERY_CODE_LENGTH; index++) code += RECOVERY_ALPHABET[randomInt(32)];
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

/**
 * The QR code of an otpauth:// URL as an inline `<svg>` element (not a data:
 * URL): no script, no style attribute, so it passes the pages' CSP
 * (`default-src 'none'`) embedded as is. Medium error correction: the usual
 * for a screen-to-phone scan.
 */
export async function qrCodeSvg(url: string): Promise<string> {
  const svg = await qrToString(url, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return svg.replace('<svg ', '<svg role="img" aria-label="QR code for your authenticator app" ');
}
