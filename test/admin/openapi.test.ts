// /admin/openapi.json describes every admin route: its path and methods,
// parameters, request body and responses, from the schemas Fastify enforces.
// It is served to admin callers only, like the rest of /admin.
import t from 'tap';
import { adminClient, call, createAdminService } from '../helpers/admin.ts';
import { startTestServer } from '../helpers/server.ts';

const ROUTES: Record<string, string[]> = {
  '/admin/keys': ['get'],
  '/admin/keys/rotate': ['post'],
  '/admin/keys/{kid}/retire': ['post'],
  '/admin/users': ['get', 'post'],
  '/admin/users/{id}': ['delete', 'get', 'patch'],
  '/admin/users/{id}/roles': ['put'],
  '/admin/users/{id}/mfa': ['delete'],
  '/admin/users/{id}/unlock': ['post'],
  '/admin/users/{id}/revoke-sessions': ['post'],
  '/admin/roles': ['get', 'post'],
  '/admin/roles/{name}': ['delete'],
  '/admin/clients': ['get', 'post'],
  '/admin/clients/{id}': ['delete', 'get', 'patch'],
  '/admin/clients/{id}/secret': ['post'],
  '/admin/audit': ['get'],
  '/admin/openapi.json': ['get'],
};

t.test('/admin/openapi.json', async (t) => {
  const server = await startTestServer(t);
  const admin = await createAdminService(server);
  const api = adminClient(server.url, await admin.token());

  const anonymous = await call(server.url, undefined, 'GET', '/admin/openapi.json');
  t.equal(anonymous.status, 401, 'admin callers only');

  const reply = await api('GET', '/admin/openapi.json');
  t.equal(reply.status, 200);
  t.match(reply.headers.get('content-type'), /^application\/json/);
  const document = reply.body;
  t.equal(document.openapi, '3.1.0');
  t.same(document.servers, [{ url: server.issuer }]);
  t.same(document.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });

  const listed = Object.fromEntries(
    Object.entries(document.paths as Record<string, object>).map(([path, methods]) => [
      path,
      Object.keys(methods).sort(),
    ]),
  );
  t.same(listed, ROUTES, 'every admin route, with its methods, and nothing else');

  // biome-ignore lint/suspicious/noExplicitAny: walking an arbitrary JSON document.
  type Operation = any;
  for (const [path, methods] of Object.entries(document.paths as Record<string, Record<string, Operation>>)) {
    for (const [method, operation] of Object.entries(methods)) {
      const label = `${method.toUpperCase()} ${path}`;
      t.type(operation.summary, 'string', `${label} has a summary`);
      t.same(operation.security, [{ bearer: [] }], `${label} needs the bearer token`);
      t.ok(operation.responses['401'], `${label} documents 401`);
      t.ok(
        Object.keys(operation.responses).some((status) => status.startsWith('2')),
        `${label} documents success`,
      );
      for (const name of path.match(/\{(\w+)\}/g) ?? []) {
        t.ok(
          operation.parameters?.some(
            (parameter: { name: string; in: string }) =>
              `{${parameter.name}}` === name && parameter.in === 'path',
          ),
          `${label} documents ${name}`,
        );
      }
    }
  }

  const createUser = document.paths['/admin/users'].post;
  const body = createUser.requestBody.content['application/json'].schema;
  t.equal(createUser.requestBody.required, true);
  t.same(Object.keys(body.properties).sort(), [
    'email',
    'email_verified',
    'mfa_required',
    'name',
    'password',
    'roles',
  ]);
  t.equal(body.additionalProperties, false, 'unknown fields are refused, and the document says so');
  t.same(
    createUser.responses['201'].content['application/json'].schema.required.includes('mfa_enabled'),
    true,
  );
  const rotate = document.paths['/admin/keys/rotate'].post;
  t.equal(rotate.requestBody.required, false, 'an optional body is documented as optional');
  t.same(rotate.requestBody.content['application/json'].schema.properties.alg.enum, [
    'ES256',
    'PS256',
    'RS256',
    'EdDSA',
  ]);
  const listUsers = document.paths['/admin/users'].get;
  t.same(
    listUsers.parameters
      .map((parameter: { name: string; in: string }) => `${parameter.in}:${parameter.name}`)
      .sort(),
    ['query:cursor', 'query:email', 'query:limit'],
  );
  const audit = document.paths['/admin/audit'].get;
  t.ok(
    audit.parameters
      .find((parameter: { name: string }) => parameter.name === 'type')
      .schema.enum.includes('admin.denied'),
  );
});
