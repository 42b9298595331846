import pino from 'pino';
import { loggerOptions } from '../../logger.ts';
import { startServer } from '../../server.ts';
import { type CommandContext, parse } from '../support.ts';

/** Shutdown waits this long for in-flight requests before giving up. */
const SHUTDOWN_GRACE_MS = 10_000;

export async function serveCommand(args: string[], context: CommandContext): Promise<void> {
  parse(args, {});
  const log = pino(loggerOptions(context.config.logLevel) as pino.LoggerOptions);
  const server = await startServer(context.config, log);
  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info(`${signal}: finishing in-flight requests and shutting down`);
      const timer = setTimeout(() => {
        log.error('shutdown took too long; exiting');
        process.exit(1);
      }, SHUTDOWN_GRACE_MS);
      timer.unref();
      server.close().then(
        () => resolveStop(),
        (error: unknown) => {
          log.error({ err: error }, 'error during shutdown');
          process.exitCode = 1;
          resolveStop();
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.info('stopped');
  if (context.json) context.output.out(JSON.stringify({ stopped: true }));
}
