// Holds the current Provider. oidc-provider reads its keys at construction, so
// a key-set change means building a new Provider and swapping the reference:
// requests already inside the old one finish there, new ones use the new one.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';

export interface ProviderBuild {
  provider: Provider;
  /** Fingerprint of what the provider was built from (the published key set). */
  version: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export class ProviderHost {
  #provider: Provider;
  #handler: Handler;
  #version: string;
  readonly #build: () => Promise<ProviderBuild>;

  private constructor(build: () => Promise<ProviderBuild>, first: ProviderBuild) {
    this.#build = build;
    this.#provider = first.provider;
    this.#handler = first.provider.callback() as unknown as Handler;
    this.#version = first.version;
  }

  static async create(build: () => Promise<ProviderBuild>): Promise<ProviderHost> {
    return new ProviderHost(build, await build());
  }

  get provider(): Provider {
    return this.#provider;
  }

  get version(): string {
    return this.#version;
  }

  handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return this.#handler(req, res);
  }

  /** Rebuilds when `currentVersion` differs from what the provider was built from. */
  async refreshIfChanged(currentVersion: string): Promise<boolean> {
    if (currentVersion === this.#version) return false;
    const next = await this.#build();
    this.#provider = next.provider;
    this.#handler = next.provider.callback() as unknown as Handler;
    this.#version = next.version;
    return true;
  }
}
