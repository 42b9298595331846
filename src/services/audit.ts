// Security events: persisted (append-only table) and logged. Callers pass the
// transaction of the change they record, so the event and the change commit
// together. Details must never carry secrets; they are logged as given.
import type { FastifyBaseLogger } from 'fastify';
import type { Database, DatabaseOrTransaction } from '../db/prisma.ts';
import type { Prisma } from '../generated/prisma/client.ts';

export const AUDIT_EVENT_TYPES = [
  'login.success',
  'login.failure',
  'account.locked',
  'mfa.success',
  'mfa.failure',
  'token.issued',
  'token.revoked',
  'refresh_token.reuse_detected',
  'key.rotated',
  'key.retired',
  'role.assigned',
  'role.removed',
  'user.created',
  'user.updated',
  'user.deleted',
  'client.created',
  'client.updated',
  'client.deleted',
  'client.secret_rotated',
  'admin.denied',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export interface AuditEventInput {
  type: AuditEventType;
  /** Who acted: `user:<id>`, `client:<client_id>`, `cli`, or `anonymous`. */
  actor?: string | undefined;
  /** What was acted on: `user:<id>`, `client:<id>`, `key:<kid>`, … */
  target?: string | undefined;
  ip?: string | undefined;
  details?: Record<string, unknown>;
}

export interface AuditEvent {
  id: string;
  type: string;
  at: string;
  actor: string | null;
  target: string | null;
  ip: string | null;
  details: Record<string, unknown>;
}

export class AuditService {
  readonly #db: Database;
  readonly #log: FastifyBaseLogger;
  #observer: ((type: AuditEventType) => void) | undefined;

  constructor(db: Database, log: FastifyBaseLogger) {
    this.#db = db;
    this.#log = log;
  }

  /** Called with each recorded event's type (metrics count them). */
  observe(observer: (type: AuditEventType) => void): void {
    this.#observer = observer;
  }

  /** Records an event; pass `tx` to write it in the transaction of the change. */
  async record(event: AuditEventInput, tx: DatabaseOrTransaction = this.#db): Promise<void> {
    await tx.auditEvent.create({
      data: {
        type: event.type,
        actor: event.actor ?? null,
        target: event.target ?? null,
        ip: event.ip ?? null,
        details: (event.details ?? {}) as Prisma.InputJsonObject,
      },
    });
    this.#log.info({ audit: { ...event } }, `audit ${event.type}`);
    this.#observer?.(event.type);
  }

  /** Newest first; `before` is the id of the oldest event of the previous page. */
  async list(query: { type?: string; limit: number; before?: string }): Promise<AuditEvent[]> {
    const rows = await this.#db.auditEvent.findMany({
      where: {
        ...(query.type ? { type: query.type } : {}),
        ...(query.before ? { id: { lt: BigInt(query.before) } } : {}),
      },
      orderBy: { id: 'desc' },
      take: query.limit,
    });
    return rows.map((row) => ({
      id: row.id.toString(),
      type: row.type,
      at: row.at.toISOString(),
      actor: row.actor,
      target: row.target,
      ip: row.ip,
      details: row.details as Record<string, unknown>,
    }));
  }
}
