// postinstall: generate the Prisma client from prisma/schema.prisma.
// Prisma's CLI tries to download its native schema engine before generating,
// which fails offline; `generate` itself never runs that engine, so any
// existing file satisfies the check (set for this command only).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let prismaCli;
try {
  prismaCli = require.resolve('prisma/build/index.js');
} catch {
  // A production install without dev dependencies ships a pre-generated client.
  if (existsSync(new URL('../src/generated/prisma/client.ts', import.meta.url))) process.exit(0);
  console.error('prisma is not installed and no generated client exists; run a full `npm install`.');
  process.exit(1);
}
const result = spawnSync(process.execPath, [prismaCli, 'generate'], {
  stdio: 'inherit',
  env: {
    ...process.env,
    PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
  },
});
process.exit(result.status ?? 1);
