// What every CLI command shares: argument parsing, output, and opening the
// services on the right database for the length of one command.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import pino from 'pino';
import { createServices, type Services } from '../context.ts';
import { applyMigrations, pendingMigrations } from '../db/migrator.ts';
import { openCliDatabase } from '../db/open-database.ts';
import { resolveSecrets } from '../lib/development-secrets.ts';
import { CodedError } from '../lib/errors.ts';
import { type CommandContext, UsageError } from './usage.ts';

export { type CommandContext, type Output, UsageError } from './usage.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Strict parsing: an unknown flag or a missing value is a usage error (exit 2). */
export function parse<T extends Options>(args: string[], options: T, positionals = 0) {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
  >;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'invalid arguments');
  }
  if (parsed.positionals.length !== positionals) {
    throw new UsageError(
      positionals === 0
        ? `unexpected argument "${parsed.positionals[0]}"`
        : `expected ${positionals} argument(s), got ${parsed.positionals.length}`,
    );
  }
  return parsed;
}

/** Prints the JSON document with --json, else the human text. */
export function print(context: CommandContext, value: unknown, text: string): void {
  context.output.out(context.json ? JSON.stringify(value, null, 2) : text);
}

export function cliLogger() {
  // stdout belongs to the command's result: logs go to stderr, warnings only.
  return pino({ level: process.env.LOG_LEVEL === 'debug' ? 'debug' : 'warn' }, pino.destination(2));
}

/** Opens the database (a running server's, or its own), runs `work`, closes. */
export async function withServices<T>(
  context: CommandContext,
  work: (services: Services) => Promise<T>,
): Promise<T> {
  const { config } = context;
  const database = await openCliDatabase(config);
  try {
    if (database.kind === 'embedded') {
      // Nobody else has this data dir open: bring it up to date, as `serve` would.
      await applyMigrations(database.url, {});
    } else {
      const pending = await pendingMigrations(database.url);
      if (pending.length) {
        throw new CodedError(
          'not_migrated',
          `the database has ${pending.length} unapplied migration(s): run \`gatehouse migrate\``,
        );
      }
    }
    const secrets = resolveSecrets(config);
    const services = createServices({
      config,
      log: cliLogger(),
      databaseUrl: database.url,
      encryptionKeys: secrets.encryptionKeys,
      poolSize: 2,
    });
    try {
      await services.roles.ensureDefaultRoles();
      return await work(services);
    } finally {
      await services.close();
    }
  } finally {
    await database.close();
  }
}
