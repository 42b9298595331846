// JSON schemas of the admin API: request bodies, parameters and responses.
// Fastify validates requests against them (unknown fields refused) and
// serialises responses through them (so no field outside a schema, such as a
// password hash, can ever leave); /admin/openapi.json is built from the same
// objects. Query values arrive as strings (the app does not coerce types), so
// numeric query parameters are digit patterns, parsed by the routes.
import { invalidInput } from '../../lib/errors.ts';
import { AUDIT_EVENT_TYPES } from '../../services/audit.ts';
import { SIGNING_ALGS } from '../../services/keys.ts';

export const MAX_PAGE = 200;
export const DEFAULT_PAGE = 50;

export const errorBody = {
  type: 'object',
  description: 'Every refusal: a stable code and a message for people.',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
  required: ['error', 'message'],
  additionalProperties: false,
} as const;

/** The refusals any admin route may answer with. */
export const errorResponses = {
  400: errorBody,
  401: errorBody,
  403: errorBody,
  404: errorBody,
  413: errorBody,
  415: errorBody,
  429: errorBody,
} as const;

const limit = {
  type: 'string',
  pattern: '^[0-9]{1,4}$',
  description: `Items per page, 1 to ${MAX_PAGE} (default ${DEFAULT_PAGE}).`,
} as const;

/** The `limit` query parameter as a number (the schema has made sure it is digits). */
export function pageLimit(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PAGE;
  const parsed = Number(value);
  if (parsed < 1 || parsed > MAX_PAGE) throw invalidInput(`limit must be from 1 to ${MAX_PAGE}`);
  return parsed;
}

export const pageQuery = {
  type: 'object',
  properties: {
    cursor: { type: 'string', maxLength: 512, description: 'The `next` value of the previous page.' },
    limit,
  },
  additionalProperties: false,
} as const;

/** A page of items: pass `next` as `cursor` to get the following one; null on the last page. */
export function pageOf(item: object) {
  return {
    type: 'object',
    properties: { items: { type: 'array', items: item }, next: { type: ['string', 'null'] } },
    required: ['items', 'next'],
    additionalProperties: false,
  } as const;
}

export function idParams(name: string, description: string) {
  return {
    type: 'object',
    properties: { [name]: { type: 'string', minLength: 1, maxLength: 255, description } },
    required: [name],
    additionalProperties: false,
  } as const;
}

export const noContent = { type: 'null', description: 'No content.' } as const;

/** For actions that take no input: no body, or an empty JSON object. */
export const emptyBody = {
  type: ['object', 'null'],
  properties: {},
  additionalProperties: false,
} as const;

const timestamp = { type: 'string', format: 'date-time' } as const;
const nullableTimestamp = { type: ['string', 'null'], format: 'date-time' } as const;
const stringList = (maxLength = 2048) =>
  ({ type: 'array', maxItems: 50, items: { type: 'string', minLength: 1, maxLength } }) as const;

// Keys ----------------------------------------------------------------------

export const signingKey = {
  type: 'object',
  description: 'A signing key: public facts only, never key material.',
  properties: {
    kid: { type: 'string' },
    alg: { type: 'string', enum: [...SIGNING_ALGS] },
    status: {
      type: 'string',
      enum: ['active', 'verify', 'retired'],
      description: 'active signs; verify is published in the JWKS but no longer signs; retired is gone.',
    },
    created_at: timestamp,
    activated_at: nullableTimestamp,
    demoted_at: nullableTimestamp,
    retired_at: nullableTimestamp,
  },
  required: ['kid', 'alg', 'status', 'created_at', 'activated_at', 'demoted_at', 'retired_at'],
  additionalProperties: false,
} as const;

export const rotateKeyBody = {
  type: ['object', 'null'],
  properties: { alg: { type: 'string', enum: [...SIGNING_ALGS], description: 'Default ES256.' } },
  additionalProperties: false,
} as const;

export const retireKeyBody = {
  type: ['object', 'null'],
  properties: {
    force: {
      type: 'boolean',
      description: 'Retire a verify key even though tokens it signed may still be valid (audited as forced).',
    },
  },
  additionalProperties: false,
} as const;

// Users ---------------------------------------------------------------------

export const user = {
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    email: { type: 'string' },
    name: { type: ['string', 'null'] },
    email_verified: { type: 'boolean' },
    disabled: { type: 'boolean' },
    mfa_required: { type: 'boolean' },
    mfa_enabled: { type: 'boolean' },
    roles: { type: 'array', items: { type: 'string' } },
    locked_until: { ...nullableTimestamp, description: 'Set while the account is locked out.' },
    created_at: timestamp,
    updated_at: timestamp,
  },
  required: [
    'id',
    'email',
    'name',
    'email_verified',
    'disabled',
    'mfa_required',
    'mfa_enabled',
    'roles',
    'locked_until',
    'created_at',
    'updated_at',
  ],
  additionalProperties: false,
} as const;

export const userListQuery = {
  type: 'object',
  properties: {
    ...pageQuery.properties,
    email: { type: 'string', minLength: 1, maxLength: 254, description: 'Users whose email contains this.' },
  },
  additionalProperties: false,
} as const;

const password = {
  type: 'string',
  maxLength: 1024,
  description: '12 to 1024 characters, not the email.',
} as const;

export const createUserBody = {
  type: 'object',
  properties: {
    email: { type: 'string', maxLength: 1024 },
    password,
    name: { type: ['string', 'null'], maxLength: 200 },
    roles: stringList(64),
    mfa_required: { type: 'boolean' },
    email_verified: { type: 'boolean', description: 'Default true: the operator vouches for the address.' },
  },
  required: ['email'],
  additionalProperties: false,
} as const;

export const updateUserBody = {
  type: 'object',
  properties: {
    name: { type: ['string', 'null'], maxLength: 200 },
    disabled: {
      type: 'boolean',
      description: 'true also ends their sessions and revokes their grants.',
    },
    mfa_required: { type: 'boolean' },
    password,
  },
  additionalProperties: false,
} as const;

export const userRolesBody = {
  type: 'object',
  properties: { roles: { ...stringList(64), description: 'The complete set of roles the user holds.' } },
  required: ['roles'],
  additionalProperties: false,
} as const;

// Roles ---------------------------------------------------------------------

export const role = {
  type: 'object',
  properties: { name: { type: 'string' }, description: { type: ['string', 'null'] } },
  required: ['name', 'description'],
  additionalProperties: false,
} as const;

export const createRoleBody = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 64, description: 'Lower-case letter first, then a-z 0-9 _ . : -' },
    description: { type: ['string', 'null'], maxLength: 500 },
  },
  required: ['name'],
  additionalProperties: false,
} as const;

export const deleteRoleQuery = {
  type: 'object',
  properties: {
    force: {
      type: 'string',
      enum: ['true', 'false'],
      description: 'true removes the role from the users holding it first.',
    },
  },
  additionalProperties: false,
} as const;

// Clients -------------------------------------------------------------------

const clientOptions = {
  name: { type: 'string', maxLength: 200 },
  grants: {
    type: 'array',
    maxItems: 3,
    items: { type: 'string', enum: ['client_credentials', 'authorization_code', 'refresh_token'] },
  },
  redirect_uris: stringList(),
  post_logout_redirect_uris: stringList(),
  scope: { type: 'string', maxLength: 4096, description: 'Space-separated scopes the client may receive.' },
  resources: stringList(),
  public: { type: 'boolean' },
  first_party: { type: 'boolean' },
  introspection: { type: 'boolean' },
  auth_method: {
    type: 'string',
    enum: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
  },
  jwks_uri: { type: 'string', maxLength: 2048 },
  jwks: { type: 'object', description: "The client's public JSON Web Key Set, for private_key_jwt." },
  cors_origins: stringList(),
  ip_allow: stringList(64),
} as const;

export const createClientBody = {
  type: 'object',
  properties: clientOptions,
  required: ['name', 'grants'],
  additionalProperties: false,
} as const;

export const updateClientBody = {
  type: 'object',
  description:
    'Changes merged over the registration, then validated as a whole; null removes jwks_uri or jwks.',
  properties: {
    ...clientOptions,
    jwks_uri: { type: ['string', 'null'], maxLength: 2048 },
    jwks: { type: ['object', 'null'] },
  },
  additionalProperties: false,
} as const;

const clientProperties = {
  client_id: { type: 'string' },
  name: { type: 'string' },
  grants: { type: 'array', items: { type: 'string' } },
  redirect_uris: { type: 'array', items: { type: 'string' } },
  post_logout_redirect_uris: { type: 'array', items: { type: 'string' } },
  scope: { type: 'string' },
  resources: { type: 'array', items: { type: 'string' } },
  public: { type: 'boolean' },
  first_party: { type: 'boolean' },
  introspection: { type: 'boolean' },
  auth_method: { type: 'string' },
  jwks_uri: { type: ['string', 'null'] },
  jwks: { type: ['object', 'null'], additionalProperties: true },
  cors_origins: { type: 'array', items: { type: 'string' } },
  ip_allow: { type: 'array', items: { type: 'string' } },
  created_at: timestamp,
  updated_at: timestamp,
} as const;

export const client = {
  type: 'object',
  description: 'A registered client. Never carries its secret.',
  properties: clientProperties,
  required: Object.keys(clientProperties),
  additionalProperties: false,
} as const;

export const clientWithSecret = {
  type: 'object',
  description:
    'A client as created (or changed to use a secret): client_secret is shown this once and never again.',
  properties: { ...clientProperties, client_secret: { type: 'string' } },
  required: Object.keys(clientProperties),
  additionalProperties: false,
} as const;

export const rotateSecretBody = {
  type: ['object', 'null'],
  properties: {
    grace_seconds: {
      type: 'integer',
      minimum: 0,
      maximum: 2_592_000,
      description: 'How long the previous secret keeps working (default 0: it stops at once).',
    },
  },
  additionalProperties: false,
} as const;

export const rotatedSecret = {
  type: 'object',
  properties: {
    client_id: { type: 'string' },
    client_secret: { type: 'string' },
    previous_secret_expires_at: nullableTimestamp,
  },
  required: ['client_id', 'client_secret', 'previous_secret_expires_at'],
  additionalProperties: false,
} as const;

// Audit ---------------------------------------------------------------------

export const auditEvent = {
  type: 'object',
  properties: {
    id: { type: 'string', pattern: '^[0-9]+$' },
    type: { type: 'string' },
    at: timestamp,
    actor: { type: ['string', 'null'] },
    target: { type: ['string', 'null'] },
    ip: { type: ['string', 'null'] },
    details: { type: 'object', additionalProperties: true },
  },
  required: ['id', 'type', 'at', 'actor', 'target', 'ip', 'details'],
  additionalProperties: false,
} as const;

const eventId = {
  type: 'string',
  // 18 digits stay below PostgreSQL's bigint maximum whatever they are.
  pattern: '^[0-9]{1,18}$',
  description: 'The id of the oldest event of the previous page (its `next`).',
} as const;

export const auditQuery = {
  type: 'object',
  properties: {
    type: { type: 'string', enum: [...AUDIT_EVENT_TYPES] },
    limit,
    before: eventId,
    cursor: { ...eventId, description: 'Same as before.' },
  },
  additionalProperties: false,
} as const;
