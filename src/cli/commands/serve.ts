import pino from 'pino';
import { loggerOptions } from '../../logger.ts';
import { startServer } from '../../server.ts';
import { type CommandContext, parse } from '../support.ts';

/** Shutdown waits this long for in-flight requests before giving up. */
const SHUTDOWN_GRACE_MS = 10_000;

export async function serveCommand(args: string[], context: CommandContext): Promise<void> {
  parse(args, {});
  const log = pino(loggerOptions(context.config.logLevel) as pino.LoggerOptions);
  // Signal handlers go in before start-up, so a SIGTERM during start-up is
  // honoured once the server is up instead of killing it mid-migration.
  const stopRequested = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const server = await startServer(context.config, log);
  const signal = await stopRequested;
  log.info(`${signal}: finishing in-flight requests and shutting down`);
  const timer = setTimeout(() => {
    log.error('shutdown took too long; exiting');
    process.exit(1);
  }, SHUTDOWN_GRACE_MS);
  timer.unref();
  try {
    await server.close();
  } catch (error) {
    log.error({ err: error }, 'error during shutdown');
    process.exitCode = 1;
  }
  log.info('stopped');
  if (context.json) context.output.out(JSON.stringify({ stopped: true }));
}
