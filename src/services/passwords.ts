// Password hashing and the password policy. argon2's async API computes on the
// libuv threadpool, so a sign-in never blocks the event loop for the ~tens of
// milliseconds a hash takes. The PHC string ($argon2id$v=19$m=…,t=…,p=…$…)
// records the parameters it was made with: verifying reads them from the hash,
// and `needsRehash` compares them with the current ones, so raising the
// constants below upgrades every account on its next successful sign-in.
import { randomBytes } from 'node:crypto';
import * as argon2 from 'argon2';
import { invalidInput } from '../lib/errors.ts';

/** 19456 KiB (19 MiB): OWASP's minimum memory for argon2id at t=2, p=1 (Password Storage Cheat Sheet). */
export const ARGON2_MEMORY_COST = 19_456;
/** 2 passes: OWASP's pairing for 19 MiB; more memory would buy more than more passes. */
export const ARGON2_TIME_COST = 2;
/** 1 lane: a sign-in takes one threadpool thread, so concurrent sign-ins do not starve each other. */
export const ARGON2_PARALLELISM = 1;
/** 0x13: argon2 version 1.3, the only one the library writes. */
const ARGON2_VERSION = 0x13;

/** NIST SP 800-63B-4 asks for at least 15 without MFA and 8 with; SPEC fixes 12 for every account. */
export const MIN_PASSWORD_LENGTH = 12;
/**
 * Long enough for any passphrase or manager-generated password, short enough
 * that hashing one cannot be used to burn CPU (argon2 hashes the whole input).
 */
export const MAX_PASSWORD_LENGTH = 1024;

const HASH_OPTIONS = {
  type: argon2.argon2id,
  memoryCost: ARGON2_MEMORY_COST,
  timeCost: ARGON2_TIME_COST,
  parallelism: ARGON2_PARALLELISM,
  version: ARGON2_VERSION,
} as const;

/** What UserService hashes and verifies with; tests substitute a spy to observe the calls. */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(hash: string, password: string): Promise<boolean>;
  needsRehash(hash: string): boolean;
  /** A hash of a random secret, with the current parameters, to verify against when there is no user hash. */
  dummyHash(): Promise<string>;
}

export async function hashPassword(password: string): Promise<string> {
  return canonicalPhcString(await argon2.hash(password, HASH_OPTIONS));
}

/**
 * node-argon2 0.45 writes the parameters as `m=…,p=…,t=…`, while the PHC
 * string format and the reference libargon2 decoder (also used by PHP,
 * libsodium and argon2-cffi) require `m=…,t=…,p=…`
 * (https://github.com/ranisalt/node-argon2/issues/559). Reordering keeps our
 * hashes portable to any verifier; node-argon2 itself reads either order.
 */
function canonicalPhcString(hash: string): string {
  const fields = hash.split('$');
  const params = new Map(fields[3]?.split(',').map((pair) => pair.split('=', 2) as [string, string]));
  if (fields.length !== 6 || params.size !== 3 || !params.has('m') || !params.has('t') || !params.has('p')) {
    return hash;
  }
  fields[3] = `m=${params.get('m')},t=${params.get('t')},p=${params.get('p')}`;
  return fields.join('$');
}

/** False for a wrong password and for a hash that is malformed or not argon2: never throws. */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

/** True when the hash was made with other parameters (or another algorithm) than the current ones. */
export function needsRehash(hash: string): boolean {
  if (!hash.startsWith('$argon2id$')) return true;
  try {
    return argon2.needsRehash(hash, {
      memoryCost: ARGON2_MEMORY_COST,
      timeCost: ARGON2_TIME_COST,
      parallelism: ARGON2_PARALLELISM,
      version: ARGON2_VERSION,
    });
  } catch {
    return true;
  }
}

let dummy: Promise<string> | undefined;

/**
 * The hash an unknown, disabled or password-less account is verified against,
 * so that every sign-in pays one argon2 verify at the current cost and the
 * response time does not tell whether the account exists. Made once, on first
 * use (a module-level memo of a constant, not of a resource); no password
 * matches it, since its secret is random and thrown away.
 */
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(32).toString('base64url')).catch((error: unknown) => {
    dummy = undefined;
    throw error;
  });
  return dummy;
}

export const argon2idHasher: PasswordHasher = Object.freeze({
  hash: hashPassword,
  verify: verifyPassword,
  needsRehash,
  dummyHash,
});

/**
 * Refuses, with a 400 naming the rule: a non-string, fewer than 12 or more than
 * 1024 characters (counted in code points, so an emoji is one character), NUL,
 * text that is not valid Unicode (a lone surrogate would be hashed as U+FFFD),
 * and the account's own email address (compared after NFKC and lower case).
 */
export function checkPasswordPolicy(password: unknown, email: string): asserts password is string {
  if (typeof password !== 'string' || password === '') throw invalidInput('password is required');
  if (isOversizedPassword(password)) {
    throw invalidInput(`password must be at most ${MAX_PASSWORD_LENGTH} characters`);
  }
  if (password.includes('\u0000')) throw invalidInput('password must not contain NUL characters');
  if (!password.isWellFormed()) throw invalidInput('password must be valid Unicode text');
  if (countCodePoints(password) < MIN_PASSWORD_LENGTH) {
    throw invalidInput(`password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (foldForComparison(password) === foldForComparison(email)) {
    throw invalidInput('password must not be the email address');
  }
}

/** True when the password cannot pass the policy's length limit: refused before any hashing. */
export function isOversizedPassword(password: string): boolean {
  // Cheap guard before walking the string: 1024 code points are at most 2048 UTF-16 units.
  return password.length > MAX_PASSWORD_LENGTH * 2 || countCodePoints(password) > MAX_PASSWORD_LENGTH;
}

function countCodePoints(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

function foldForComparison(value: string): string {
  return value.trim().normalize('NFKC').toLowerCase().normalize('NFKC');
}
