// Opaque page cursors for keyset pagination: the sort key of the last item of
// a page, base64url-encoded JSON. Opaque so callers follow `next` instead of
// building cursors; checked on the way in, so a forged one is a 400, never a
// query error.
import { invalidInput } from './errors.ts';

/** Longer than any cursor Gatehouse hands out; anything bigger is not one of ours. */
const MAX_CURSOR = 512;

export function encodeCursor(key: readonly string[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** The `size` strings a cursor holds; throws a 400 for anything Gatehouse did not make. */
export function decodeCursor(cursor: string, size: number): string[] {
  let key: unknown;
  try {
    if (cursor.length > MAX_CURSOR || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error();
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (
    !Array.isArray(key) ||
    key.length !== size ||
    !key.every((part) => typeof part === 'string' && !part.includes('\0'))
  ) {
    throw invalidCursor();
  }
  return key as string[];
}

/** A cursor's timestamp part, which must be one Date#toISOString produced. */
export function cursorDate(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime()) || date.toISOString() !== value) throw invalidCursor();
  return date;
}

function invalidCursor() {
  return invalidInput('cursor is not valid: pass the `next` value of the previous page');
}
