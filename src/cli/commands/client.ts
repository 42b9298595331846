import { readFile } from 'node:fs/promises';
import { type CommandContext, parse, print, UsageError, withServices } from '../support.ts';

export async function clientCommand(args: string[], context: CommandContext): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case 'create':
      return createClient(rest, context);
    case 'rotate-secret':
      return rotateSecret(rest, context);
    default:
      throw new UsageError(
        action ? `unknown client command "${action}"` : 'client needs create or rotate-secret',
      );
  }
}

async function createClient(args: string[], context: CommandContext): Promise<void> {
  const { values } = parse(args, {
    name: { type: 'string' },
    grant: { type: 'string', multiple: true },
    'redirect-uri': { type: 'string', multiple: true },
    'post-logout-redirect-uri': { type: 'string', multiple: true },
    scope: { type: 'string' },
    public: { type: 'boolean' },
    'first-party': { type: 'boolean' },
    introspection: { type: 'boolean' },
    'auth-method': { type: 'string' },
    'jwks-uri': { type: 'string' },
    jwks: { type: 'string' },
    'cors-origin': { type: 'string', multiple: true },
    'ip-allow': { type: 'string', multiple: true },
    resource: { type: 'string', multiple: true },
  });
  if (!values.name) throw new UsageError('client create needs --name');
  if (!values.grant?.length) throw new UsageError('client create needs at least one --grant');
  const jwks = values.jwks === undefined ? undefined : await readJwksFile(values.jwks);
  const result = await withServices(context, (services) =>
    services.clients.create(
      {
        name: values.name!,
        grants: values.grant!,
        redirect_uris: values['redirect-uri'],
        post_logout_redirect_uris: values['post-logout-redirect-uri'],
        scope: values.scope,
        resources: values.resource,
        public: values.public,
        first_party: values['first-party'],
        introspection: values.introspection,
        auth_method: values['auth-method'],
        jwks_uri: values['jwks-uri'],
        jwks,
        cors_origins: values['cors-origin'],
        ip_allow: values['ip-allow'],
      },
      { actor: 'cli' },
    ),
  );
  const document = {
    client_id: result.client.client_id,
    ...(result.client_secret ? { client_secret: result.client_secret } : {}),
  };
  print(
    context,
    document,
    [
      `client_id:     ${document.client_id}`,
      ...(result.client_secret
        ? [`client_secret: ${result.client_secret}`, '(shown once: store it now)']
        : []),
    ].join('\n'),
  );
}

async function rotateSecret(args: string[], context: CommandContext): Promise<void> {
  const { values, positionals } = parse(args, { grace: { type: 'string' } }, 1);
  const grace = values.grace === undefined ? 0 : Number(values.grace);
  if (values.grace !== undefined && !/^\d+$/.test(values.grace)) {
    throw new UsageError('--grace must be a whole number of seconds');
  }
  const result = await withServices(context, (services) =>
    services.clients.rotateSecret(positionals[0]!, grace, { actor: 'cli' }),
  );
  print(
    context,
    result,
    [
      `client_id:     ${result.client_id}`,
      `client_secret: ${result.client_secret}`,
      result.previous_secret_expires_at
        ? `the previous secret works until ${result.previous_secret_expires_at}`
        : 'the previous secret no longer works',
    ].join('\n'),
  );
}

async function readJwksFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`--jwks: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`--jwks: ${path} is not JSON`);
  }
}
