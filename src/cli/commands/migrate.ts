import { applyMigrations } from '../../db/migrator.ts';
import { openCliDatabase } from '../../db/open-database.ts';
import { type CommandContext, parse, print } from '../support.ts';

export async function migrateCommand(args: string[], context: CommandContext): Promise<void> {
  parse(args, {});
  const database = await openCliDatabase(context.config);
  try {
    const { applied } = await applyMigrations(database.url, {});
    print(
      context,
      { applied },
      applied.length
        ? `applied ${applied.length} migration(s):\n${applied.join('\n')}`
        : 'the database is up to date',
    );
  } finally {
    await database.close();
  }
}
