// /admin/audit: the security event log, newest first. Events never hold
// secrets (the services that record them make sure of it).
import type { FastifyInstance } from 'fastify';
import type { Gatehouse } from '../../context.ts';
import type { AuditEventType } from '../../services/audit.ts';
import { auditEvent, auditQuery, errorResponses, pageLimit, pageOf } from './schemas.ts';

interface AuditQuery {
  type?: AuditEventType;
  limit?: string;
  before?: string;
  cursor?: string;
}

export async function auditRoutes(
  app: FastifyInstance,
  { gatehouse }: { gatehouse: Gatehouse },
): Promise<void> {
  const { audit } = gatehouse;

  app.get<{ Querystring: AuditQuery }>(
    '/audit',
    {
      config: { limit: 'admin' },
      schema: {
        summary: 'List audit events, newest first; next is the `before` of the following page',
        querystring: auditQuery,
        response: { 200: pageOf(auditEvent), ...errorResponses },
      },
    },
    async (request) => {
      const limit = pageLimit(request.query.limit);
      const before = request.query.before ?? request.query.cursor;
      const items = await audit.list({
        limit,
        ...(request.query.type ? { type: request.query.type } : {}),
        ...(before ? { before } : {}),
      });
      return { items, next: items.length === limit ? (items.at(-1)?.id ?? null) : null };
    },
  );
}
