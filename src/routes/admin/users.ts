// /admin/users: accounts, their roles, second factor, lockout and sessions.
// UserService holds the rules and writes the audit events; nothing here
// touches the database.
import type { FastifyInstance } from 'fastify';
import type { Gatehouse } from '../../context.ts';
import { CodedError } from '../../lib/errors.ts';
import type { UserChanges } from '../../services/users.ts';
import { callerOf } from './auth.ts';
import {
  createUserBody,
  emptyBody,
  errorBody,
  errorResponses,
  idParams,
  noContent,
  pageLimit,
  pageOf,
  updateUserBody,
  user,
  userListQuery,
  userRolesBody,
} from './schemas.ts';

const userParams = idParams('id', "The user's id (a UUID, the OIDC sub).");
type UserParams = { Params: { id: string } };

interface CreateUserBody {
  email: string;
  password?: string;
  name?: string | null;
  roles?: string[];
  mfa_required?: boolean;
  email_verified?: boolean;
}

interface UpdateUserBody {
  name?: string | null;
  disabled?: boolean;
  mfa_required?: boolean;
  password?: string;
}

export async function userRoutes(
  app: FastifyInstance,
  { gatehouse }: { gatehouse: Gatehouse },
): Promise<void> {
  const { users, mfa } = gatehouse;
  const found = async (id: string) => {
    const view = await users.get(id);
    if (!view) throw notFound();
    return view;
  };

  app.get<{ Querystring: { cursor?: string; limit?: string; email?: string } }>(
    '/users',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'List users in creation order',
        querystring: userListQuery,
        response: { 200: pageOf(user), ...errorResponses },
      },
    },
    async (request) =>
      users.list({
        limit: pageLimit(request.query.limit),
        cursor: request.query.cursor,
        email: request.query.email,
      }),
  );

  app.post<{ Body: CreateUserBody }>(
    '/users',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Create a user',
        body: createUserBody,
        response: { 201: user, ...errorResponses, 409: errorBody },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const created = await users.create(
        {
          email: body.email,
          password: body.password,
          name: body.name,
          roles: body.roles,
          mfaRequired: body.mfa_required,
          emailVerified: body.email_verified,
        },
        callerOf(request),
      );
      return reply.code(201).send(await found(created.id));
    },
  );

  app.get<UserParams>(
    '/users/:id',
    {
      config: { limit: 'admin' },
      schema: { summary: 'Get a user', params: userParams, response: { 200: user, ...errorResponses } },
    },
    async (request) => found(request.params.id),
  );

  app.patch<UserParams & { Body: UpdateUserBody }>(
    '/users/:id',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Change a user (disabling one also revokes their sessions and grants)',
        params: userParams,
        body: updateUserBody,
        response: { 200: user, ...errorResponses },
      },
    },
    async (request) => {
      const body = request.body;
      const changes: UserChanges = {
        name: body.name,
        disabled: body.disabled,
        mfaRequired: body.mfa_required,
        password: body.password,
      };
      return users.update(request.params.id, changes, callerOf(request));
    },
  );

  app.delete<UserParams>(
    '/users/:id',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Delete a user, revoking their sessions and grants',
        params: userParams,
        response: { 204: noContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      await users.delete(request.params.id, callerOf(request));
      return reply.code(204).send();
    },
  );

  app.put<UserParams & { Body: { roles: string[] } }>(
    '/users/:id/roles',
    {
      config: { limit: 'admin' },
      schema: {
        summary: "Replace the user's roles",
        params: userParams,
        body: userRolesBody,
        response: { 200: user, ...errorResponses },
      },
    },
    async (request) => users.setRoles(request.params.id, request.body.roles, callerOf(request)),
  );

  app.delete<UserParams>(
    '/users/:id/mfa',
    {
      config: { limit: 'admin' },
      schema: {
        summary: "Remove the user's second factor and recovery codes",
        params: userParams,
        response: { 204: noContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      await mfa.resetFactors(request.params.id, callerOf(request));
      return reply.code(204).send();
    },
  );

  app.post<UserParams>(
    '/users/:id/unlock',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'Lift a lockout after failed sign-ins',
        params: userParams,
        body: emptyBody,
        response: { 200: user, ...errorResponses },
      },
    },
    async (request) => users.unlock(request.params.id, callerOf(request)),
  );

  app.post<UserParams>(
    '/users/:id/revoke-sessions',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'End all their sessions and revoke their grants (refresh and opaque access tokens)',
        params: userParams,
        body: emptyBody,
        response: { 204: noContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      await users.revokeSessions(request.params.id, callerOf(request));
      return reply.code(204).send();
    },
  );
}

function notFound() {
  return new CodedError('not_found', 'no such user', 404);
}
