// Server-rendered pages: a tagged template that escapes every interpolated
// value unless it is already-rendered markup, and one page layout.

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Markup that is safe to insert as is. */
export class Html {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char]!);
}

function render(value: Value): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, index) => {
    out += render(value) + (strings[index + 1] ?? '');
  });
  return new Html(out);
}

/**
 * Sign-in pages: no scripts at all, styles from our own stylesheet only, never
 * framed. No form-action: Chromium applies it to the redirect chain after a
 * POST, which would block the final hop to the client's redirect_uri.
 */
export const PAGE_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

export const STYLESHEET_PATH = '/assets/gatehouse.css';

export function page(options: { title: string; body: Html; wide?: boolean }): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${options.title} · Gatehouse</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
</head>
<body>
<main class="card${options.wide ? ' wide' : ''}">
${options.body}
</main>
</body>
</html>
`.value;
}

/** A line saying which application is asking, shown on every sign-in page. */
export function clientLine(clientName: string | undefined): Html {
  return clientName ? html`<p class="client">to continue to <strong>${clientName}</strong></p>` : html``;
}

export function errorNotice(message: string | undefined): Html {
  return message ? html`<p class="error" role="alert">${message}</p>` : html``;
}
