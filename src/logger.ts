// Fastify's pino logger. Credentials never reach the logs: headers that carry
// them are redacted, request bodies are never logged, and the URL is logged
// without its query string (which may hold codes, tokens or state).
import type { FastifyServerOptions } from 'fastify';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.client_secret',
  '*.clientSecret',
  '*.secret',
  '*.token',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.code',
  '*.code_verifier',
  '*.client_assertion',
  '*.privateJwk',
  '*.d',
];

interface LoggedRequest {
  method: string;
  url: string;
  ip: string;
  id: string;
}

export function loggerOptions(
  level: string,
  destination?: NodeJS.WritableStream,
): FastifyServerOptions['logger'] {
  return {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    ...(destination ? { stream: destination } : {}),
    serializers: {
      req(request: LoggedRequest) {
        return { method: request.method, url: stripQuery(request.url), remoteAddress: request.ip };
      },
    },
  } as FastifyServerOptions['logger'];
}

export function stripQuery(url: string): string {
  const index = url.indexOf('?');
  return index === -1 ? url : `${url.slice(0, index)}?[redacted]`;
}
