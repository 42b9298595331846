// Roles: named sets of rights that users hold (the `roles` claim). `admin`
// always exists: it is created at start by every process, idempotently.
import type { Database } from '../db/prisma.ts';
import { Prisma } from '../generated/prisma/client.ts';
import { decodeCursor, encodeCursor } from '../lib/cursor.ts';
import { CodedError, invalidInput } from '../lib/errors.ts';
import { hasControlCharacters } from '../lib/text.ts';
import type { AuditService } from './audit.ts';
import type { Actor } from './clients.ts';

export const ADMIN_ROLE = 'admin';
/** Lower-case, starts with a letter, ≤ 64 characters: safe in claims, URLs and logs as is. */
export const ROLE_NAME = /^[a-z][a-z0-9_.:-]{0,63}$/;
const MAX_DESCRIPTION = 500;

const DEFAULT_ROLES = [{ name: ADMIN_ROLE, description: 'Full access to the admin API' }];

export interface RoleView {
  name: string;
  description: string | null;
}

export class RoleService {
  readonly #db: Database;
  readonly #audit: AuditService;

  constructor(db: Database, audit: AuditService) {
    this.#db = db;
    this.#audit = audit;
  }

  /**
   * Creates the built-in roles when missing. INSERT … ON CONFLICT DO NOTHING,
   * so two processes starting at once both succeed and an operator's edited
   * description is kept.
   */
  async ensureDefaultRoles(): Promise<void> {
    await this.#db.role.createMany({ data: DEFAULT_ROLES, skipDuplicates: true });
  }

  // No audit event: AUDIT_EVENT_TYPES has none for role definitions (only
  // assignments), and SPEC's list does not ask for one. `by` is taken so the
  // signature does not change when such a type is added.
  async create(name: unknown, description: unknown, _by: Actor): Promise<RoleView> {
    const role = { name: checkRoleName(name), description: checkDescription(description) };
    try {
      await this.#db.role.create({ data: role });
    } catch (error) {
      if (isUniqueViolation(error)) throw new CodedError('conflict', `role ${role.name} already exists`, 409);
      throw error;
    }
    return role;
  }

  async list(): Promise<RoleView[]> {
    return this.#db.role.findMany({ select: { name: true, description: true }, orderBy: { name: 'asc' } });
  }

  /** Roles by name, `limit` at a time; `cursor` is the `next` of the previous page. */
  async page(query: { limit: number; cursor?: string | undefined }): Promise<{
    items: RoleView[];
    next: string | null;
  }> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, 1)[0];
    const rows = await this.#db.role.findMany({
      where: after === undefined ? {} : { name: { gt: after } },
      select: { name: true, description: true },
      orderBy: { name: 'asc' },
      take: query.limit + 1,
    });
    const items = rows.slice(0, query.limit);
    const last = items.at(-1);
    return { items, next: rows.length > query.limit && last ? encodeCursor([last.name]) : null };
  }

  /**
   * Deletes a role. `admin` can never be deleted; a role that users hold is
   * refused unless `force`, which first removes it from them (each removal
   * audited as `role.removed`). The role row is locked, so an assignment made
   * concurrently either lands first (and is counted) or waits and then fails.
   */
  async delete(name: unknown, options: { force?: boolean }, by: Actor): Promise<void> {
    if (typeof name !== 'string' || !ROLE_NAME.test(name)) throw notFound(name);
    if (name === ADMIN_ROLE) throw new CodedError('conflict', 'the admin role cannot be deleted', 409);
    try {
      await this.#db.$transaction(async (tx) => {
        const [row] = await tx.$queryRaw<{ name: string }[]>`
          SELECT name FROM roles WHERE name = ${name} FOR UPDATE`;
        if (!row) throw notFound(name);
        const holders = await tx.userRole.findMany({ where: { roleName: name }, select: { userId: true } });
        if (holders.length > 0 && options.force !== true) {
          throw new CodedError(
            'conflict',
            `role ${name} is held by ${holders.length} user(s): remove it from them first, or force`,
            409,
          );
        }
        await tx.userRole.deleteMany({ where: { roleName: name } });
        for (const holder of holders) {
          await this.#audit.record(
            {
              type: 'role.removed',
              actor: by.actor,
              target: `user:${holder.userId}`,
              ip: by.ip,
              details: { role: name, role_deleted: true },
            },
            tx,
          );
        }
        await tx.role.delete({ where: { name } });
      });
    } catch (error) {
      // ON DELETE RESTRICT: an assignment slipped in despite the lock (it cannot, but say so clearly).
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2003') {
        throw new CodedError('conflict', `role ${name} is held by users`, 409);
      }
      throw error;
    }
  }
}

export function checkRoleName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw invalidInput('role name is required');
  if (!ROLE_NAME.test(name)) {
    throw invalidInput(
      'role name must be 1 to 64 characters: a lower-case letter, then lower-case letters, digits, _ . : or -',
    );
  }
  return name;
}

function checkDescription(description: unknown): string | null {
  if (description === undefined || description === null) return null;
  if (typeof description !== 'string') throw invalidInput('description must be a string');
  if (description.length > MAX_DESCRIPTION) {
    throw invalidInput(`description must be at most ${MAX_DESCRIPTION} characters`);
  }
  if (hasControlCharacters(description))
    throw invalidInput('description must not contain control characters');
  return description.trim() || null;
}

function notFound(name: unknown): CodedError {
  const shown = typeof name === 'string' ? ` ${JSON.stringify(name.slice(0, 64))}` : '';
  return new CodedError('not_found', `no role${shown}`, 404);
}

export function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}
