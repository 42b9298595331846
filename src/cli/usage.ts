// What every command and the dispatcher share, kept free of heavy imports so
// `gatehouse --help` and usage errors answer at once.
import type { Config } from '../config.ts';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export interface CommandContext {
  config: Readonly<Config>;
  json: boolean;
  output: Output;
}

/** Wrong command, flag or argument count: usage on stderr, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
