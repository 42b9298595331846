// /admin/openapi.json: an OpenAPI 3.1 document built from the very route
// definitions Fastify validates with: every route registered in the admin
// context is recorded as it is added (onRoute), so the document cannot
// forget one or drift from the schemas in force. Served to admin callers.
import type { FastifyInstance, RouteOptions } from 'fastify';
import { errorResponses } from './schemas.ts';

type Schema = Record<string, unknown>;

declare module 'fastify' {
  interface FastifySchema {
    /** One line on what the route does, for the OpenAPI document (Fastify itself ignores it). */
    summary?: string;
  }
}

interface RecordedRoute {
  method: string;
  url: string;
  schema: Schema;
  authorization: 'admin' | 'public';
}

/** Starts recording the routes added to `app` from now on (call before registering them). */
export function recordRoutes(app: FastifyInstance): RecordedRoute[] {
  const routes: RecordedRoute[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter(
      // Fastify adds a HEAD twin for every GET; it is implied.
      (method) => method !== 'HEAD',
    );
    for (const method of methods) {
      routes.push({
        method: method.toLowerCase(),
        url: route.url,
        schema: (route.schema ?? {}) as Schema,
        authorization: route.config?.authorization === 'public' ? 'public' : 'admin',
      });
    }
  });
  return routes;
}

export function buildOpenApiDocument(routes: readonly RecordedRoute[], issuer: string): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    paths[path] ??= {};
    paths[path][route.method] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse Admin API',
      version: '1',
      description:
        `Bearer access token for the resource ${issuer}/admin with scope admin: a client-credentials ` +
        'client registered with that scope and resource, or a user with role admin signed in with a ' +
        'second factor through a first-party client. Lists return {"items":[…],"next":CURSOR|null}.',
    },
    servers: [{ url: issuer }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: { Error: errorResponses[400] },
    },
    paths,
  };
}

function operation(route: RecordedRoute): Schema {
  const { schema } = route;
  const parameters = [
    ...parametersOf(schema.params as Schema | undefined, 'path'),
    ...parametersOf(schema.querystring as Schema | undefined, 'query'),
  ];
  const op: Schema = {
    operationId: `${route.method}${route.url.replace(/[/:-]+(.)?/g, (_m, next: string | undefined) => (next ?? '').toUpperCase())}`,
    ...(schema.summary ? { summary: schema.summary } : {}),
    ...(parameters.length ? { parameters } : {}),
    security: route.authorization === 'public' ? [] : [{ bearer: [] }],
    responses: responsesOf(schema.response as Record<string, Schema> | undefined),
  };
  const body = schema.body as Schema | undefined;
  if (body) {
    const types = Array.isArray(body.type) ? (body.type as string[]) : [body.type];
    const optional = types.includes('null');
    const onlyNull = types.length === 1 && optional;
    if (!onlyNull) {
      op.requestBody = {
        required: !optional,
        content: {
          'application/json': { schema: { ...body, type: types.filter((type) => type !== 'null')[0] } },
        },
      };
    }
  }
  return op;
}

function parametersOf(schema: Schema | undefined, location: 'path' | 'query'): Schema[] {
  if (!schema?.properties) return [];
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries(schema.properties as Record<string, Schema>).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: location,
      required: location === 'path' || required.has(name),
      ...(description ? { description } : {}),
      schema: rest,
    };
  });
}

function responsesOf(responses: Record<string, Schema> | undefined): Record<string, Schema> {
  const out: Record<string, Schema> = {};
  for (const [status, schema] of Object.entries(responses ?? {})) {
    if (status === '204') {
      out[status] = { description: 'No content' };
      continue;
    }
    const isError = Number(status) >= 400;
    out[status] = {
      description: (schema.description as string | undefined) ?? (isError ? 'Refused' : 'OK'),
      content: { 'application/json': { schema: isError ? { $ref: '#/components/schemas/Error' } : schema } },
    };
  }
  return out;
}
