// /admin/roles: the named roles users can hold (the `roles` claim). RoleService
// holds the rules: `admin` always exists and is never deleted; a role in use is
// deleted only with force, which first removes it from its holders (audited).
import type { FastifyInstance } from 'fastify';
import type { Gatehouse } from '../../context.ts';
import { callerOf } from './auth.ts';
import {
  createRoleBody,
  deleteRoleQuery,
  errorBody,
  errorResponses,
  idParams,
  noContent,
  pageLimit,
  pageOf,
  pageQuery,
  role,
} from './schemas.ts';

const roleParams = idParams('name', 'The role name.');

export async function roleRoutes(
  app: FastifyInstance,
  { gatehouse }: { gatehouse: Gatehouse },
): Promise<void> {
  const { roles } = gatehouse;

  app.get<{ Querystring: { cursor?: string; limit?: string } }>(
    '/roles',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'List roles by name',
        querystring: pageQuery,
        response: { 200: pageOf(role), ...errorResponses },
      },
    },
    async (request) => roles.page({ limit: pageLimit(request.query.limit), cursor: request.query.cursor }),
  );

  app.post<{ Body: { name: string; description?: string | null } }>(
    '/roles',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Create a role',
        body: createRoleBody,
        response: { 201: role, ...errorResponses, 409: errorBody },
      },
    },
    async (request, reply) => {
      const created = await roles.create(request.body.name, request.body.description, callerOf(request));
      return reply.code(201).send(created);
    },
  );

  app.delete<{ Params: { name: string }; Querystring: { force?: 'true' | 'false' } }>(
    '/roles/:name',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Delete a role (409 while users hold it, unless force=true; admin never)',
        params: roleParams,
        querystring: deleteRoleQuery,
        response: { 204: noContent, ...errorResponses, 409: errorBody },
      },
    },
    async (request, reply) => {
      await roles.delete(request.params.name, { force: request.query.force === 'true' }, callerOf(request));
      return reply.code(204).send();
    },
  );
}
