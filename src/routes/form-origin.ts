// Where a form post came from, for the pages' CSRF defence (beside the token).
import type { IncomingHttpHeaders } from 'node:http';

/**
 * True when a form was posted from another site. Under the pages'
 * `Referrer-Policy: no-referrer`, browsers send `Origin: null` even on
 * same-origin posts; so can an attacker's page, so `null` is trusted only with
 * the browser-set `Sec-Fetch-Site: same-origin`, which pages cannot forge.
 */
export function isCrossSiteForm(headers: IncomingHttpHeaders, issuerOrigin: string): boolean {
  const origin = headers.origin;
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return true;
  if (origin === undefined || origin === issuerOrigin) return false;
  return !(origin === 'null' && site === 'same-origin');
}
