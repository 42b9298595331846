// `gatehouse role …`: role definitions. Assigning them is `gatehouse user role`.
import { type CommandContext, parse, print, UsageError, withServices } from '../support.ts';

export async function roleCommand(args: string[], context: CommandContext): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case 'create': {
      const { values, positionals } = parse(rest, { description: { type: 'string' } }, 1);
      const role = await withServices(context, (services) =>
        services.roles.create(positionals[0], values.description, { actor: 'cli' }),
      );
      print(context, { name: role.name, description: role.description }, `role ${role.name} created`);
      return;
    }
    default:
      throw new UsageError(action ? `unknown role command "${action}"` : 'role needs create');
  }
}
