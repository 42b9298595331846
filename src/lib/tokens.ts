// Random values and their digests.
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 bits from the CSPRNG, base64url: client secrets and similar credentials. */
export function generateSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/**
 * SHA-256, base64url. Enough for high-entropy values, which cannot be guessed.
 * The one-shot crypto.hash: on every token request (the client secret, artifact ids).
 */
export function sha256(value: string): string {
  return hash('sha256', value, 'base64url');
}

/** Compares two digests in constant time. */
export function digestsEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
