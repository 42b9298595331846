// Periodic work of a running server: pick up key-set changes made by another
// instance or the CLI, and delete expired protocol artifacts.
import type { Gatehouse } from '../context.ts';
import { deleteExpiredArtifacts } from '../oidc/adapter.ts';

/** How often the published key set is compared with the database (SPEC: changes in force within 5 s). */
const KEYSET_POLL_MS = 2_000;
const CLEANUP_MS = 10 * 60_000;
/** Scheduled rotation is checked hourly (and at start): days-long periods need no finer grain. */
const ROTATION_CHECK_MS = 60 * 60_000;

export interface BackgroundJobs {
  stop(): Promise<void>;
}

export function startBackgroundJobs(gatehouse: Gatehouse): BackgroundJobs {
  const { log } = gatehouse;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;

  const run = (name: string, job: () => Promise<void>) => () => {
    if (stopped) return;
    running = running.then(job).catch((error: unknown) => log.error({ err: error }, `${name} failed`));
  };

  const refreshKeys = run('key-set refresh', async () => {
    const version = await gatehouse.keys.keysetVersion();
    if (await gatehouse.providerHost.refreshIfChanged(version)) {
      log.info({ keyset: version }, 'signing keys changed: provider rebuilt');
    }
  });
  const sweep = run('expired-artifact cleanup', async () => {
    const count = await deleteExpiredArtifacts(gatehouse.db);
    if (count) log.info({ deleted: count }, 'deleted expired protocol artifacts');
  });

  const rotationDays = gatehouse.config.keyRotationDays;
  const rotate = run('scheduled key rotation', async () => {
    if (!rotationDays) return;
    const rotated = await gatehouse.keys.rotateIfDue(rotationDays);
    if (!rotated) return;
    log.info({ kid: rotated.kid }, `signing key rotated on schedule (every ${rotationDays} days)`);
    await gatehouse.providerHost.refreshIfChanged(await gatehouse.keys.keysetVersion());
  });

  const timers = [setInterval(refreshKeys, KEYSET_POLL_MS), setInterval(sweep, CLEANUP_MS)];
  if (rotationDays) {
    timers.push(setInterval(rotate, ROTATION_CHECK_MS));
    rotate();
  }
  for (const timer of timers) timer.unref();

  return {
    async stop() {
      stopped = true;
      for (const timer of timers) clearInterval(timer);
      await running;
    },
  };
}
