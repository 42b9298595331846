// /admin/keys: list, rotate and retire token signing keys (SPEC "Admin API").
// KeyService owns the rules (the active key is never retired; a recent verify
// key only with force, audited as forced); this file makes a change visible at
// once on this instance by rebuilding the provider, and the background poller
// brings every other instance along within seconds.
import type { FastifyInstance } from 'fastify';
import type { Gatehouse } from '../../context.ts';
import { retirementSafetySeconds } from '../../services/key-policy.ts';
import { DEFAULT_SIGNING_ALG, type SigningAlg } from '../../services/keys.ts';
import { callerOf } from './auth.ts';
import {
  errorBody,
  errorResponses,
  idParams,
  pageOf,
  retireKeyBody,
  rotateKeyBody,
  signingKey,
} from './schemas.ts';

const kidParams = idParams('kid', 'The key id.');

export async function keyRoutes(
  app: FastifyInstance,
  { gatehouse }: { gatehouse: Gatehouse },
): Promise<void> {
  const { keys, providerHost, config } = gatehouse;
  /** This instance signs with (and publishes) the new key set now, not at the next poll. */
  const publishNow = async () => providerHost.refreshIfChanged(await keys.keysetVersion());

  app.get(
    '/keys',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'List signing keys, newest first',
        response: { 200: pageOf(signingKey), ...errorResponses },
      },
    },
    async () => ({ items: await keys.list(), next: null }),
  );

  app.post<{ Body: { alg?: SigningAlg } | null }>(
    '/keys/rotate',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Make a new key the signer; the previous active key becomes verify',
        body: rotateKeyBody,
        response: { 201: signingKey, ...errorResponses },
      },
    },
    async (request, reply) => {
      const by = callerOf(request);
      const created = await keys.rotate(request.body?.alg ?? DEFAULT_SIGNING_ALG, by.actor, by.ip);
      await publishNow();
      return reply.code(201).send(created);
    },
  );

  app.post<{ Params: { kid: string }; Body: { force?: boolean } | null }>(
    '/keys/:kid/retire',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Remove a verify key from the JWKS: JWTs it signed stop verifying',
        params: kidParams,
        body: retireKeyBody,
        response: { 200: signingKey, ...errorResponses, 409: errorBody },
      },
    },
    async (request) => {
      const by = callerOf(request);
      const retired = await keys.retire(request.params.kid, {
        force: request.body?.force === true,
        safeAfterSeconds: retirementSafetySeconds(config),
        actor: by.actor,
        ip: by.ip,
      });
      await publishNow();
      return retired;
    },
  );
}
