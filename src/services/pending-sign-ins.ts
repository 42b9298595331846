// A sign-in between its password and its second factor, kept server-side and
// keyed by the interaction (stored like every protocol artifact: under the
// hash of the interaction id, expiring with it). Nothing here is a secret: a
// pending enrolment's TOTP secret travels sealed (see MfaService).
import type { Adapter } from 'oidc-provider';
import type { Database } from '../db/prisma.ts';
import { createAdapterFactory } from '../oidc/adapter.ts';

export type PendingStage = 'verify' | 'enrol' | 'enrolled';

export interface PendingSignIn {
  userId: string;
  stage: PendingStage;
  /** Wrong codes in this sign-in attempt (SPEC: at most 5, then start over). */
  wrongCodes: number;
  /** Sealed TOTP secret while enrolling. */
  pendingSecret?: string;
  /** Password already checked in this attempt (false for a step-up of an existing session). */
  password: boolean;
}

/** Wrong second-factor codes one sign-in attempt allows before the user must start over. */
export const MAX_WRONG_CODES = 5;
/** As long as an interaction lives. */
const PENDING_TTL_SECONDS = 600;

export class PendingSignIns {
  readonly #store: Adapter;

  constructor(db: Database) {
    const Store = createAdapterFactory(db, async () => undefined);
    this.#store = new Store('PendingSignIn');
  }

  async get(interactionUid: string): Promise<PendingSignIn | undefined> {
    const found = await this.#store.find(interactionUid);
    if (!found) return undefined;
    const { jti: _jti, ...state } = found as unknown as PendingSignIn & { jti?: string };
    return state;
  }

  async save(interactionUid: string, state: PendingSignIn): Promise<void> {
    await this.#store.upsert(
      interactionUid,
      { ...state } as unknown as Parameters<Adapter['upsert']>[1],
      PENDING_TTL_SECONDS,
    );
  }

  async clear(interactionUid: string): Promise<void> {
    await this.#store.destroy(interactionUid);
  }
}
