import { type CommandContext, parse, print, withServices } from '../support.ts';

/** Re-encrypts every secret at rest under the first GATEHOUSE_ENCRYPTION_KEY. */
export async function rekeyCommand(args: string[], context: CommandContext): Promise<void> {
  parse(args, {});
  const counts = await withServices(context, (services) =>
    services.db.$transaction(async (tx) => ({ signing_keys: await services.keys.rekey(tx) }), {
      timeout: 60_000,
    }),
  );
  const total = Object.values(counts).reduce((sum, count) => sum + count, 0);
  print(context, { reencrypted: counts }, `re-encrypted ${total} secret(s) under the first encryption key`);
}
