// CSRF tokens for the sign-in forms, bound to one interaction: an HMAC of its
// uid under a key derived from the first cookie key. A form posted for another
// interaction, or with no token, is refused. (The interaction cookie, signed
// and SameSite=Lax, is required as well.)
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export class CsrfTokens {
  readonly #key: Buffer;

  constructor(cookieKey: string) {
    this.#key = Buffer.from(hkdfSync('sha256', cookieKey, 'gatehouse', 'interaction-csrf', 32));
  }

  issue(interactionUid: string): string {
    return createHmac('sha256', this.#key).update(interactionUid).digest('base64url');
  }

  verify(interactionUid: string, presented: unknown): boolean {
    if (typeof presented !== 'string' || presented.length > 128) return false;
    const expected = Buffer.from(this.issue(interactionUid));
    const actual = Buffer.from(presented);
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
}
