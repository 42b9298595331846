// The `gatehouse` command. Every command accepts --json and then prints exactly
// one JSON document on stdout; errors go to stderr with a non-zero exit code
// (2 for usage errors, 1 for everything else). Never a stack trace.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, loadConfig } from '../config.ts';
import { CodedError } from '../lib/errors.ts';
import { type CommandContext, type Output, UsageError } from './usage.ts';

export const USAGE = `usage: gatehouse <command> [options] [--json]

commands:
  serve                               run the server (npm start)
  migrate                             apply database migrations
  client create --name N --grant G [--grant G]… [--redirect-uri U]… [--post-logout-redirect-uri U]…
                [--scope "a b"] [--public] [--first-party] [--introspection] [--auth-method M]
                [--jwks-uri U | --jwks FILE] [--cors-origin O]… [--ip-allow CIDR]… [--resource URI]…
  client rotate-secret CLIENT_ID [--grace SECONDS]
  user create --email E [--name N] [--role R]… [--email-unverified] --password-stdin
                                      the password is read from stdin, up to the first newline
  user set-password --email E --password-stdin
  user role add|remove --email E --role R
  user mfa enroll --email E           enrol TOTP: prints the secret, otpauth URL and 10 recovery codes once
  role create NAME [--description D]
  key list
  key rotate [--alg ES256|PS256|RS256|EdDSA]
  key retire KID [--force]
  rekey                               re-encrypt secrets at rest under the first GATEHOUSE_ENCRYPTION_KEY

configuration comes from the environment and .env (see .env.example)`;

type Command = (args: string[], context: CommandContext) => Promise<void>;

/** Each command's module loads only when it runs: a CLI call pays for what it uses. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./commands/serve.ts')).serveCommand,
  migrate: async () => (await import('./commands/migrate.ts')).migrateCommand,
  client: async () => (await import('./commands/client.ts')).clientCommand,
  user: async () => (await import('./commands/user.ts')).userCommand,
  role: async () => (await import('./commands/role.ts')).roleCommand,
  key: async () => (await import('./commands/key.ts')).keyCommand,
  rekey: async () => (await import('./commands/rekey.ts')).rekeyCommand,
};

export async function main(argv: string[], output: Output = defaultOutput()): Promise<number> {
  const json = argv.includes('--json');
  const args = argv.filter((arg) => arg !== '--json');
  const [name, ...rest] = args;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    output.err(USAGE);
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    output.err(`gatehouse: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  try {
    loadDotEnv();
    const config = loadConfig();
    const command = await load();
    await command(rest, { config, json, output });
    return 0;
  } catch (error) {
    return report(error, output);
  }
}

function report(error: unknown, output: Output): number {
  if (error instanceof UsageError) {
    output.err(`gatehouse: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (error instanceof ConfigError || error instanceof CodedError) {
    output.err(`gatehouse: ${error.message}`);
    return 1;
  }
  const known = error as { name?: string; message?: string; code?: string };
  if (known?.name && /LockedError|MigrationError|EmbeddedDatabaseError/.test(known.name)) {
    output.err(`gatehouse: ${known.message}`);
    return 1;
  }
  if (
    known?.code === 'ECONNREFUSED' ||
    known?.code === 'ENOTFOUND' ||
    known?.code === '28P01' ||
    known?.code === '3D000'
  ) {
    output.err(`gatehouse: cannot reach the database (${known.code}): ${known.message ?? ''}`.trim());
    return 1;
  }
  output.err(`gatehouse: ${known?.message ?? String(error)}`);
  if (process.env.GATEHOUSE_DEBUG) output.err(String((error as Error)?.stack));
  return 1;
}

/** .env in the working directory, when present; the environment wins over it. */
function loadDotEnv(): void {
  const file = resolve(process.cwd(), '.env');
  if (existsSync(file)) {
    try {
      process.loadEnvFile(file);
    } catch (error) {
      throw new ConfigError(`.env could not be read: ${(error as Error).message}`);
    }
  }
}

function defaultOutput(): Output {
  return {
    out: (text: string) => process.stdout.write(`${text}\n`),
    err: (text: string) => process.stderr.write(`${text}\n`),
  };
}
