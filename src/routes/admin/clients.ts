// /admin/clients: OAuth client registrations. Bodies use the CLI's options in
// snake_case; ClientService validates them (the merged result, for changes),
// generates secrets and keeps only their digests. A secret is in a response
// only when it is created: never in GET.
import type { FastifyInstance } from 'fastify';
import type { Gatehouse } from '../../context.ts';
import { CodedError } from '../../lib/errors.ts';
import type { ClientChanges, ClientInput } from '../../services/clients.ts';
import { callerOf } from './auth.ts';
import {
  client,
  clientWithSecret,
  createClientBody,
  errorBody,
  errorResponses,
  idParams,
  noContent,
  pageLimit,
  pageOf,
  pageQuery,
  rotatedSecret,
  rotateSecretBody,
  updateClientBody,
} from './schemas.ts';

const clientParams = idParams('id', 'The client_id.');
type ClientParams = { Params: { id: string } };

export async function clientRoutes(
  app: FastifyInstance,
  { gatehouse }: { gatehouse: Gatehouse },
): Promise<void> {
  const { clients } = gatehouse;

  app.get<{ Querystring: { cursor?: string; limit?: string } }>(
    '/clients',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'List clients in registration order',
        querystring: pageQuery,
        response: { 200: pageOf(client), ...errorResponses },
      },
    },
    async (request) => clients.list({ limit: pageLimit(request.query.limit), cursor: request.query.cursor }),
  );

  app.post<{ Body: ClientInput }>(
    '/clients',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Register a client; its client_secret is in this response only',
        body: createClientBody,
        response: { 201: clientWithSecret, ...errorResponses },
      },
    },
    async (request, reply) => {
      const created = await clients.create(request.body, callerOf(request));
      return reply.code(201).send({
        ...created.client,
        ...(created.client_secret ? { client_secret: created.client_secret } : {}),
      });
    },
  );

  app.get<ClientParams>(
    '/clients/:id',
    {
      config: { limit: 'admin' },
      schema: { summary: 'Get a client', params: clientParams, response: { 200: client, ...errorResponses } },
    },
    async (request) => {
      const view = await clients.view(request.params.id);
      if (!view) throw new CodedError('not_found', 'no such client', 404);
      return view;
    },
  );

  app.patch<ClientParams & { Body: ClientChanges }>(
    '/clients/:id',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Change a client; the merged registration is validated as a whole',
        params: clientParams,
        body: updateClientBody,
        response: { 200: clientWithSecret, ...errorResponses },
      },
    },
    async (request) => {
      const updated = await clients.update(request.params.id, request.body, callerOf(request));
      return {
        ...updated.client,
        ...(updated.client_secret ? { client_secret: updated.client_secret } : {}),
      };
    },
  );

  app.delete<ClientParams>(
    '/clients/:id',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Delete a client and revoke its grants and tokens',
        params: clientParams,
        response: { 204: noContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      await clients.delete(request.params.id, callerOf(request));
      return reply.code(204).send();
    },
  );

  app.post<ClientParams & { Body: { grace_seconds?: number } | null }>(
    '/clients/:id/secret',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Issue a new client secret; the previous one works for grace_seconds',
        params: clientParams,
        body: rotateSecretBody,
        response: { 200: rotatedSecret, ...errorResponses, 409: errorBody },
      },
    },
    async (request) =>
      clients.rotateSecret(request.params.id, request.body?.grace_seconds ?? 0, callerOf(request)),
  );
}
