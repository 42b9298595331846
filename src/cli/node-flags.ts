// The V8 flags `gatehouse serve` runs with. bin/gatehouse.js's shebang (so
// `npx gatehouse serve` and running the file), package.json's start script,
// the Dockerfile's ENTRYPOINT and the benchmark pass exactly these
// (test/operations/deployment-files.test.ts holds the first three to it).
//
// A young generation of 2 MB semispaces instead of V8's default, which grows
// to 16 MB and more under load. A token request allocates briefly and a lot;
// with the big default every scavenge paused the event loop for 5 to 7 ms
// (--trace-gc, about every 70 ms at 10 000 tokens/s), and those pauses set the
// p99 of sub-millisecond requests: 7 to 9 times the p50, Gatehouse and bare
// oidc-provider alike. With 2 MB the pauses are short and frequent, the p99 is
// 2.3 to 2.6 times the p50 and throughput is the same or better (the young
// generation stays in the CPU's cache); RSS under load is lower too.
export const SERVE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
