import { retirementSafetySeconds } from '../../services/key-policy.ts';
import { SIGNING_ALGS, type SigningAlg } from '../../services/keys.ts';
import { type CommandContext, parse, print, UsageError, withServices } from '../support.ts';

export async function keyCommand(args: string[], context: CommandContext): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case 'list': {
      parse(rest, {});
      const keys = await withServices(context, async (services) => {
        await services.keys.ensureActiveKey();
        return services.keys.list();
      });
      print(
        context,
        keys,
        keys.map((key) => `${key.kid}  ${key.alg}  ${key.status}  ${key.created_at}`).join('\n'),
      );
      return;
    }
    case 'rotate': {
      const { values } = parse(rest, { alg: { type: 'string' } });
      const alg = (values.alg ?? 'ES256') as SigningAlg;
      if (!SIGNING_ALGS.includes(alg))
        throw new UsageError(`--alg must be one of ${SIGNING_ALGS.join(', ')}`);
      const key = await withServices(context, (services) => services.keys.rotate(alg, 'cli'));
      print(
        context,
        { kid: key.kid, alg: key.alg, status: key.status },
        `new active key ${key.kid} (${key.alg})`,
      );
      return;
    }
    case 'retire': {
      const { values, positionals } = parse(rest, { force: { type: 'boolean' } }, 1);
      const key = await withServices(context, (services) =>
        services.keys.retire(positionals[0]!, {
          force: values.force === true,
          safeAfterSeconds: retirementSafetySeconds(context.config),
          actor: 'cli',
        }),
      );
      print(context, { kid: key.kid, alg: key.alg, status: key.status }, `key ${key.kid} is retired`);
      return;
    }
    default:
      throw new UsageError(action ? `unknown key command "${action}"` : 'key needs list, rotate or retire');
  }
}
