// Users: creation and changes (shared by the CLI and the admin API), role
// assignments, and password sign-in. Every change writes its audit event in
// the same transaction. Passwords and their hashes never enter audit details.
import type { Database, Transaction } from '../db/prisma.ts';
import { Prisma } from '../generated/prisma/client.ts';
import { cursorDate, decodeCursor, encodeCursor } from '../lib/cursor.ts';
import { CodedError, invalidInput } from '../lib/errors.ts';
import { hasControlCharacters } from '../lib/text.ts';
import type { AuditService } from './audit.ts';
import type { Actor } from './clients.ts';
import type { AccountLockout } from './lockout.ts';
import {
  argon2idHasher,
  checkPasswordPolicy,
  isOversizedPassword,
  type PasswordHasher,
} from './passwords.ts';
import { isUniqueViolation, ROLE_NAME } from './roles.ts';
import type { SessionRevocation } from './sessions.ts';

/** RFC 5321's limit on a forward path, less the angle brackets. */
const MAX_EMAIL = 254;
const MAX_NAME = 200;
const MAX_ROLES = 50;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Embedding and isolate controls: they make text display in another order than it is stored. */
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/u;
/** C1 controls and format characters (zero-width spaces and joiners, BOM, marks): invisible look-alikes. */
const INVISIBLE = /[\p{Cc}\p{Cf}]/u;

export interface UserInput {
  email: string;
  password?: string | null | undefined;
  name?: string | null | undefined;
  roles?: string[] | null | undefined;
  /** Operators vouch for the address unless they say otherwise (SPEC). */
  emailVerified?: boolean | undefined;
  mfaRequired?: boolean | undefined;
}

/** A user as the sign-in and claims code needs it. `passwordHash` must never be serialised. */
export interface UserRecord {
  id: string;
  email: string;
  name: string | null;
  emailVerified: boolean;
  disabled: boolean;
  mfaRequired: boolean;
  roles: string[];
  passwordHash: string | null;
  totpEnabled: boolean;
}

export type AuthenticationFailure = 'unknown_user' | 'bad_password' | 'disabled' | 'no_password' | 'locked';

/**
 * `reason` is for the audit log only: whatever it is, callers show one generic
 * message, or the answer would say whether the account exists.
 */
export type AuthenticationResult =
  | { ok: true; user: UserRecord }
  | { ok: false; reason: AuthenticationFailure; userId?: string };

const USER_SELECT = {
  id: true,
  email: true,
  name: true,
  emailVerified: true,
  disabled: true,
  mfaRequired: true,
  passwordHash: true,
  totpEnabledAt: true,
  roles: { select: { roleName: true }, orderBy: { roleName: 'asc' } },
} satisfies Prisma.UserSelect;

type UserRow = Prisma.UserGetPayload<{ select: typeof USER_SELECT }>;

/** A user as the admin API shows it: never the password hash, the TOTP secret or the lockout counters. */
export interface UserView {
  id: string;
  email: string;
  name: string | null;
  email_verified: boolean;
  disabled: boolean;
  mfa_required: boolean;
  mfa_enabled: boolean;
  roles: string[];
  locked_until: string | null;
  created_at: string;
  updated_at: string;
}

/** What an operator may change on a user (`undefined`: leave as is; `name: null` clears it). */
export interface UserChanges {
  name?: string | null | undefined;
  disabled?: boolean | undefined;
  mfaRequired?: boolean | undefined;
  password?: string | undefined;
}

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` for the next page; null on the last one. */
  next: string | null;
}

const VIEW_SELECT = {
  id: true,
  email: true,
  name: true,
  emailVerified: true,
  disabled: true,
  mfaRequired: true,
  totpEnabledAt: true,
  lockedUntil: true,
  createdAt: true,
  updatedAt: true,
  roles: { select: { roleName: true }, orderBy: { roleName: 'asc' } },
} satisfies Prisma.UserSelect;

type ViewRow = Prisma.UserGetPayload<{ select: typeof VIEW_SELECT }>;

export class UserService {
  readonly #db: Database;
  readonly #audit: AuditService;
  readonly #hasher: PasswordHasher;
  readonly #lockout: AccountLockout | undefined;
  readonly #sessions: SessionRevocation | undefined;

  /**
   * `options.hasher` exists for tests, which observe the argon2 calls through a
   * spy. With `options.lockout`, sign-in attempts count towards account lockout.
   * With `options.sessions`, disabling or deleting a user also ends their
   * sessions and revokes their grants.
   */
  constructor(
    db: Database,
    audit: AuditService,
    options: { hasher?: PasswordHasher; lockout?: AccountLockout; sessions?: SessionRevocation } = {},
  ) {
    this.#db = db;
    this.#audit = audit;
    this.#hasher = options.hasher ?? argon2idHasher;
    this.#lockout = options.lockout;
    this.#sessions = options.sessions;
  }

  async create(input: UserInput, by: Actor): Promise<{ id: string; email: string; roles: string[] }> {
    const email = normaliseEmail(input.email);
    const name = checkName(input.name);
    const roles = checkRoleList(input.roles);
    const emailVerified = optionalBoolean(input.emailVerified, 'email_verified', true);
    const mfaRequired = optionalBoolean(input.mfaRequired, 'mfa_required', false);
    let passwordHash: string | null = null;
    if (input.password !== undefined && input.password !== null) {
      checkPasswordPolicy(input.password, email);
      // Hashed before the transaction opens: no connection is held for the ~50 ms it takes.
      passwordHash = await this.#hasher.hash(input.password);
    }
    try {
      return await this.#db.$transaction(async (tx) => {
        const known = await tx.role.findMany({ where: { name: { in: roles } }, select: { name: true } });
        const missing = roles.find((role) => !known.some((row) => row.name === role));
        if (missing !== undefined) throw invalidInput(`roles: no role named ${printable(missing)}`);
        const user = await tx.user.create({
          data: {
            email,
            name,
            passwordHash,
            emailVerified,
            mfaRequired,
            roles: { create: roles.map((roleName) => ({ roleName })) },
          },
          select: { id: true },
        });
        await this.#audit.record(
          {
            type: 'user.created',
            actor: by.actor,
            target: `user:${user.id}`,
            ip: by.ip,
            details: {
              email,
              roles,
              email_verified: emailVerified,
              mfa_required: mfaRequired,
              password_set: passwordHash !== null,
            },
          },
          tx,
        );
        for (const role of roles) await this.#recordRole(tx, 'role.assigned', user.id, role, by);
        return { id: user.id, email, roles };
      });
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new CodedError('conflict', 'a user with this email already exists', 409);
      }
      if (isForeignKeyViolation(error)) throw invalidInput('roles: a role was deleted meanwhile');
      throw error;
    }
  }

  async setPassword(email: string, password: string, by: Actor): Promise<{ id: string; email: string }> {
    const user = await this.#requireUser(email);
    checkPasswordPolicy(password, user.email);
    const passwordHash = await this.#hasher.hash(password);
    await this.#db.$transaction(async (tx) => {
      const { count } = await tx.user.updateMany({ where: { id: user.id }, data: { passwordHash } });
      if (count === 0) throw userNotFound();
      // A new password ends every session and grant (ASVS 7.4.3; catalogue RT-6).
      const revoked = this.#sessions ? await this.#sessions.revokeUser(user.id, tx) : undefined;
      await this.#audit.record(
        {
          type: 'user.updated',
          actor: by.actor,
          target: `user:${user.id}`,
          ip: by.ip,
          details: { fields: ['password'], ...(revoked ? { revoked } : {}) },
        },
        tx,
      );
    });
    return { id: user.id, email: user.email };
  }

  /** Idempotent: assigning a role the user holds changes nothing and records nothing. */
  async addRole(
    email: string,
    role: string,
    by: Actor,
  ): Promise<{ id: string; email: string; roles: string[] }> {
    return this.#changeRole(email, role, by, 'role.assigned', async (tx, userId) => {
      const { count } = await tx.userRole.createMany({
        data: [{ userId, roleName: role }],
        skipDuplicates: true,
      });
      return count > 0;
    });
  }

  /** Idempotent: removing a role the user does not hold changes nothing and records nothing. */
  async removeRole(
    email: string,
    role: string,
    by: Actor,
  ): Promise<{ id: string; email: string; roles: string[] }> {
    return this.#changeRole(email, role, by, 'role.removed', async (tx, userId) => {
      const { count } = await tx.userRole.deleteMany({ where: { userId, roleName: role } });
      return count > 0;
    });
  }

  /** The admin view of a user; anything that is not a UUID is simply not found. */
  async get(id: unknown): Promise<UserView | undefined> {
    if (typeof id !== 'string' || !UUID.test(id)) return undefined;
    const row = await this.#db.user.findUnique({ where: { id }, select: VIEW_SELECT });
    return row ? toView(row) : undefined;
  }

  /**
   * Users in creation order, `limit` at a time. `email` keeps those whose
   * address contains it (normalised like the stored addresses, so case and
   * full-width forms do not matter).
   */
  async list(query: {
    limit: number;
    cursor?: string | undefined;
    email?: string | undefined;
  }): Promise<Page<UserView>> {
    const where: Prisma.UserWhereInput[] = [];
    if (query.email !== undefined) {
      // Prisma's `contains` is LIKE '%…%' without escaping: take the caller's % and _ literally.
      const literal = normaliseEmailFilter(query.email).replace(/[\\%_]/g, (char) => `\\${char}`);
      where.push({ email: { contains: literal } });
    }
    if (query.cursor !== undefined) {
      const [at = '', id = ''] = decodeCursor(query.cursor, 2);
      if (!UUID.test(id))
        throw invalidInput('cursor is not valid: pass the `next` value of the previous page');
      const createdAt = cursorDate(at);
      where.push({ OR: [{ createdAt: { gt: createdAt } }, { createdAt, id: { gt: id } }] });
    }
    const rows = await this.#db.user.findMany({
      where: { AND: where },
      select: VIEW_SELECT,
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      take: query.limit + 1,
    });
    const items = rows.slice(0, query.limit).map(toView);
    const last = items.at(-1);
    return {
      items,
      next: rows.length > query.limit && last ? encodeCursor([last.created_at, last.id]) : null,
    };
  }

  /**
   * Changes a user. Disabling one also ends their sessions and revokes their
   * grants (refresh and opaque access tokens), in the same transaction; their
   * sign-in and refresh are refused from then on anyway, since a disabled
   * user has no account for the provider. One `user.updated` event names the
   * fields changed (never the password).
   */
  async update(id: unknown, changes: UserChanges, by: Actor): Promise<UserView> {
    const user = await this.#requireUserById(id);
    const data: Prisma.UserUpdateInput = {};
    if (changes.name !== undefined) data.name = checkName(changes.name);
    if (changes.disabled !== undefined) data.disabled = optionalBoolean(changes.disabled, 'disabled', false);
    if (changes.mfaRequired !== undefined) {
      data.mfaRequired = optionalBoolean(changes.mfaRequired, 'mfa_required', false);
    }
    if (changes.password !== undefined) {
      checkPasswordPolicy(changes.password, user.email);
      // Hashed before the transaction opens: no connection is held for the ~50 ms it takes.
      data.passwordHash = await this.#hasher.hash(changes.password);
    }
    const fields = Object.keys(data).map((field) => FIELD_NAMES[field] ?? field);
    if (fields.length === 0) return (await this.get(user.id)) ?? throwNoSuchUser();
    await this.#db.$transaction(async (tx) => {
      const [locked] = await tx.$queryRaw<{ disabled: boolean }[]>`
        SELECT disabled FROM users WHERE id = ${user.id}::uuid FOR UPDATE`;
      if (!locked) throw noSuchUser();
      await tx.user.update({ where: { id: user.id }, data });
      const disabling = data.disabled === true && !locked.disabled;
      // Disabling, or a new password (ASVS 7.4.3; catalogue RT-6), ends every session and grant.
      const revoked =
        (disabling || data.passwordHash !== undefined) && this.#sessions
          ? await this.#sessions.revokeUser(user.id, tx)
          : undefined;
      await this.#audit.record(
        {
          type: 'user.updated',
          actor: by.actor,
          target: `user:${user.id}`,
          ip: by.ip,
          details: {
            fields,
            ...(data.disabled !== undefined ? { disabled: data.disabled } : {}),
            ...(data.mfaRequired !== undefined ? { mfa_required: data.mfaRequired } : {}),
            ...(revoked ? { revoked } : {}),
          },
        },
        tx,
      );
    });
    return (await this.get(user.id)) ?? throwNoSuchUser();
  }

  /** Deletes a user with their roles, factors and consents, and revokes what they were issued. */
  async delete(id: unknown, by: Actor): Promise<void> {
    const user = await this.#requireUserById(id);
    await this.#db.$transaction(async (tx) => {
      const revoked = this.#sessions ? await this.#sessions.revokeUser(user.id, tx) : undefined;
      const { count } = await tx.user.deleteMany({ where: { id: user.id } });
      if (count === 0) throw noSuchUser();
      await this.#audit.record(
        {
          type: 'user.deleted',
          actor: by.actor,
          target: `user:${user.id}`,
          ip: by.ip,
          details: { email: user.email, ...(revoked ? { revoked } : {}) },
        },
        tx,
      );
    });
  }

  /**
   * Replaces the user's roles with `roles`: each role added is audited as
   * `role.assigned`, each one taken away as `role.removed`. An unknown role
   * refuses the whole change.
   */
  async setRoles(id: unknown, roles: unknown, by: Actor): Promise<UserView> {
    const user = await this.#requireUserById(id);
    const wanted = checkRoleList(roles);
    try {
      await this.#db.$transaction(async (tx) => {
        // The user's row lock serialises concurrent replacements of their roles.
        const [locked] = await tx.$queryRaw<{ id: string }[]>`
          SELECT id::text AS id FROM users WHERE id = ${user.id}::uuid FOR UPDATE`;
        if (!locked) throw noSuchUser();
        const known = await tx.role.findMany({ where: { name: { in: wanted } }, select: { name: true } });
        const missing = wanted.find((role) => !known.some((row) => row.name === role));
        if (missing !== undefined) throw invalidInput(`roles: no role named ${printable(missing)}`);
        const held = (
          await tx.userRole.findMany({ where: { userId: user.id }, select: { roleName: true } })
        ).map((row) => row.roleName);
        const added = wanted.filter((role) => !held.includes(role));
        const removed = held.filter((role) => !wanted.includes(role)).sort();
        if (removed.length) {
          await tx.userRole.deleteMany({ where: { userId: user.id, roleName: { in: removed } } });
        }
        if (added.length) {
          await tx.userRole.createMany({ data: added.map((roleName) => ({ userId: user.id, roleName })) });
        }
        for (const role of added) await this.#recordRole(tx, 'role.assigned', user.id, role, by);
        for (const role of removed) await this.#recordRole(tx, 'role.removed', user.id, role, by);
      });
    } catch (error) {
      // A role was deleted between the check and the insert.
      if (isForeignKeyViolation(error)) throw invalidInput('roles: a role was deleted meanwhile');
      throw error;
    }
    return (await this.get(user.id)) ?? throwNoSuchUser();
  }

  /** Lifts a lockout and clears the failure count (audited as `user.updated`). */
  async unlock(id: unknown, by: Actor): Promise<UserView> {
    const lockout = this.#lockout;
    if (!lockout) throw new Error('UserService was built without an AccountLockout');
    const user = await this.#requireUserById(id);
    await this.#db.$transaction(async (tx) => {
      const [row] = await tx.$queryRaw<{ locked_until: Date | null }[]>`
        SELECT locked_until FROM users WHERE id = ${user.id}::uuid FOR UPDATE`;
      if (!row) throw noSuchUser();
      await lockout.unlock(user.id, tx);
      await this.#audit.record(
        {
          type: 'user.updated',
          actor: by.actor,
          target: `user:${user.id}`,
          ip: by.ip,
          details: {
            fields: ['locked_until'],
            unlocked: true,
            was_locked: row.locked_until !== null && row.locked_until.getTime() > Date.now(),
          },
        },
        tx,
      );
    });
    return (await this.get(user.id)) ?? throwNoSuchUser();
  }

  /** Ends every session of the user and revokes their grants and stored tokens (audited as `token.revoked`). */
  async revokeSessions(id: unknown, by: Actor): Promise<void> {
    const sessions = this.#sessions;
    if (!sessions) throw new Error('UserService was built without a SessionRevocation');
    const user = await this.#requireUserById(id);
    await this.#db.$transaction(async (tx) => {
      const revoked = await sessions.revokeUser(user.id, tx);
      await this.#audit.record(
        {
          type: 'token.revoked',
          actor: by.actor,
          target: `user:${user.id}`,
          ip: by.ip,
          details: { reason: 'sessions_revoked', ...revoked },
        },
        tx,
      );
    });
  }

  /** A user by id; anything that is not a UUID is simply not found (it never reaches SQL). */
  async findById(id: unknown): Promise<UserRecord | undefined> {
    if (typeof id !== 'string' || !UUID.test(id)) return undefined;
    const row = await this.#db.user.findUnique({ where: { id }, select: USER_SELECT });
    return row ? toRecord(row) : undefined;
  }

  /** A user by email, normalised as at creation; an invalid address is simply not found. */
  async findByEmail(email: unknown): Promise<UserRecord | undefined> {
    let normalised: string;
    try {
      normalised = normaliseEmail(email);
    } catch {
      return undefined;
    }
    const row = await this.#db.user.findUnique({ where: { email: normalised }, select: USER_SELECT });
    return row ? toRecord(row) : undefined;
  }

  /**
   * Password sign-in. Every attempt with a plausible password runs the same
   * path: look the user up, then exactly one argon2 verify, against the user's
   * hash or, when the user is unknown, disabled or has no password, against
   * the dummy hash (same parameters, so the same cost). Only then is the
   * outcome decided, so the time taken does not tell whether the account
   * exists. A password over the length limit is refused before any hashing:
   * that depends on the input alone, not on the account.
   *
   * A successful sign-in whose hash was made with older parameters stores a
   * fresh hash. Lockout and rate limits are the caller's.
   */
  async authenticate(email: unknown, password: unknown, ip?: string): Promise<AuthenticationResult> {
    const user = await this.findByEmail(email);
    let refusal: AuthenticationFailure | undefined = !user
      ? 'unknown_user'
      : user.disabled
        ? 'disabled'
        : user.passwordHash === null
          ? 'no_password'
          : undefined;
    if (typeof password !== 'string' || isOversizedPassword(password)) {
      return failure(refusal ?? 'bad_password', user);
    }
    // Reserve the attempt before checking it (the same query runs for unknown users).
    if (this.#lockout && !(await this.#lockout.reserve(refusal === undefined ? user?.id : undefined))) {
      if (refusal === undefined && user) {
        await this.#lockout.fail(user.id, ip);
        refusal = 'locked';
      }
    }
    // Awaited on every path (it is memoised), so no branch skips or adds work.
    const dummy = await this.#hasher.dummyHash();
    const hash = refusal === undefined && user?.passwordHash ? user.passwordHash : dummy;
    const matches = await this.#hasher.verify(hash, password);
    if (refusal !== undefined || !user) return failure(refusal ?? 'unknown_user', user);
    if (!matches) {
      await this.#lockout?.fail(user.id, ip);
      return failure('bad_password', user);
    }
    if (this.#hasher.needsRehash(hash)) {
      const fresh = await this.#rehash(user.id, hash, password);
      if (fresh) return { ok: true, user: { ...user, passwordHash: fresh } };
    }
    return { ok: true, user };
  }

  /** Stores a hash with the current parameters unless the password changed meanwhile. */
  async #rehash(userId: string, oldHash: string, password: string): Promise<string | undefined> {
    try {
      const fresh = await this.#hasher.hash(password);
      const { count } = await this.#db.user.updateMany({
        where: { id: userId, passwordHash: oldHash },
        data: { passwordHash: fresh },
      });
      return count > 0 ? fresh : undefined;
    } catch {
      // The old hash still verifies and the next sign-in tries again: failing
      // this sign-in over an upgrade would punish the user for our housekeeping.
      return undefined;
    }
  }

  async #requireUserById(id: unknown): Promise<{ id: string; email: string }> {
    if (typeof id !== 'string' || !UUID.test(id)) throw noSuchUser();
    const user = await this.#db.user.findUnique({ where: { id }, select: { id: true, email: true } });
    if (!user) throw noSuchUser();
    return user;
  }

  async #requireUser(email: string): Promise<{ id: string; email: string }> {
    const normalised = normaliseEmail(email);
    const user = await this.#db.user.findUnique({
      where: { email: normalised },
      select: { id: true, email: true },
    });
    if (!user) throw userNotFound();
    return user;
  }

  /** `change` applies the assignment and says whether it changed anything; only then is `event` recorded. */
  async #changeRole(
    email: string,
    role: string,
    by: Actor,
    event: 'role.assigned' | 'role.removed',
    change: (tx: Transaction, userId: string) => Promise<boolean>,
  ): Promise<{ id: string; email: string; roles: string[] }> {
    const normalised = normaliseEmail(email);
    if (typeof role !== 'string' || !ROLE_NAME.test(role)) throw roleNotFound(role);
    try {
      return await this.#db.$transaction(async (tx) => {
        const user = await tx.user.findUnique({
          where: { email: normalised },
          select: { id: true, email: true },
        });
        if (!user) throw userNotFound();
        if (!(await tx.role.findUnique({ where: { name: role }, select: { name: true } }))) {
          throw roleNotFound(role);
        }
        if (await change(tx, user.id)) await this.#recordRole(tx, event, user.id, role, by);
        const roles = await tx.userRole.findMany({
          where: { userId: user.id },
          select: { roleName: true },
          orderBy: { roleName: 'asc' },
        });
        return { id: user.id, email: user.email, roles: roles.map((row) => row.roleName) };
      });
    } catch (error) {
      // The role was deleted between the check and the insert (its row lock made us wait).
      if (isForeignKeyViolation(error)) throw roleNotFound(role);
      throw error;
    }
  }

  async #recordRole(
    tx: Transaction,
    type: 'role.assigned' | 'role.removed',
    userId: string,
    role: string,
    by: Actor,
  ): Promise<void> {
    await this.#audit.record(
      { type, actor: by.actor, target: `user:${userId}`, ip: by.ip, details: { role } },
      tx,
    );
  }
}

/**
 * The one normalisation of email addresses, applied when an account is
 * created AND at every sign-in and lookup, so `ＡＬＩＣＥ@Example.com` (full
 * width, any case) finds `alice@example.com` and no two spellings can hold two
 * accounts: trim, NFKC (compatibility forms fold to their plain letters), lower
 * case (String#toLowerCase; ß stays ß), NFKC again (lower-casing can leave
 * text unnormalised). Refused with a 400: empty, over 254 characters, control
 * characters (NUL included, so it never reaches PostgreSQL), bidirectional
 * controls and other invisible format characters, whitespace, and anything
 * not shaped `local@domain`. Idempotent: normalising a stored email returns it.
 */
export function normaliseEmail(raw: unknown): string {
  if (typeof raw !== 'string') throw invalidInput('email is required');
  // Bounded before normalising so a huge value costs nothing (NFKC can only grow it ~18-fold).
  if (raw.length > MAX_EMAIL * 4) throw invalidInput(`email must be at most ${MAX_EMAIL} characters`);
  if (hasControlCharacters(raw)) throw invalidInput('email must not contain control characters');
  if (BIDI_CONTROLS.test(raw)) throw invalidInput('email must not contain bidirectional control characters');
  const email = raw.trim().normalize('NFKC').toLowerCase().normalize('NFKC');
  if (email === '') throw invalidInput('email is required');
  if (INVISIBLE.test(email)) throw invalidInput('email must not contain invisible or control characters');
  if (email.length > MAX_EMAIL) throw invalidInput(`email must be at most ${MAX_EMAIL} characters`);
  const parts = email.split('@');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '' || /\s/u.test(email)) {
    throw invalidInput('email must be an address like name@example.com');
  }
  return email;
}

/**
 * An email filter, normalised as stored addresses are (so it matches them),
 * but any fragment of an address will do. Control and invisible characters
 * are refused: they could match nothing anyway, and NUL never reaches SQL.
 */
function normaliseEmailFilter(raw: string): string {
  if (raw.length > MAX_EMAIL) throw invalidInput(`email must be at most ${MAX_EMAIL} characters`);
  if (hasControlCharacters(raw) || BIDI_CONTROLS.test(raw)) {
    throw invalidInput('email must not contain control characters');
  }
  const filter = raw.trim().normalize('NFKC').toLowerCase().normalize('NFKC');
  if (INVISIBLE.test(filter)) throw invalidInput('email must not contain invisible or control characters');
  return filter;
}

/** Column names as the admin API spells them, for audit details. */
const FIELD_NAMES: Record<string, string> = {
  name: 'name',
  disabled: 'disabled',
  mfaRequired: 'mfa_required',
  passwordHash: 'password',
};

function toView(row: ViewRow): UserView {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    email_verified: row.emailVerified,
    disabled: row.disabled,
    mfa_required: row.mfaRequired,
    mfa_enabled: row.totpEnabledAt !== null,
    roles: row.roles.map((role) => role.roleName),
    locked_until:
      row.lockedUntil && row.lockedUntil.getTime() > Date.now() ? row.lockedUntil.toISOString() : null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

function noSuchUser(): CodedError {
  return new CodedError('not_found', 'no such user', 404);
}

function throwNoSuchUser(): never {
  throw noSuchUser();
}

function toRecord(row: UserRow): UserRecord {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    emailVerified: row.emailVerified,
    disabled: row.disabled,
    mfaRequired: row.mfaRequired,
    roles: row.roles.map((role) => role.roleName),
    passwordHash: row.passwordHash,
    totpEnabled: row.totpEnabledAt !== null,
  };
}

function failure(reason: AuthenticationFailure, user: UserRecord | undefined): AuthenticationResult {
  return user ? { ok: false, reason, userId: user.id } : { ok: false, reason };
}

function checkName(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw invalidInput('name must be a string');
  if (value.length > MAX_NAME) throw invalidInput(`name must be at most ${MAX_NAME} characters`);
  if (hasControlCharacters(value)) throw invalidInput('name must not contain control characters');
  return value.trim() || null;
}

function checkRoleList(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidInput('roles must be a list of role names');
  if (value.length > MAX_ROLES) throw invalidInput(`roles: at most ${MAX_ROLES} entries`);
  for (const role of value) {
    if (typeof role !== 'string' || role === '') throw invalidInput('roles must be a list of role names');
  }
  return [...new Set(value as string[])].sort();
}

function optionalBoolean(value: unknown, field: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') throw invalidInput(`${field} must be true or false`);
  return value;
}

function printable(value: string): string {
  return JSON.stringify(value.slice(0, 64));
}

function userNotFound(): CodedError {
  return new CodedError('not_found', 'no user with this email', 404);
}

function roleNotFound(role: unknown): CodedError {
  return new CodedError('not_found', `no role named ${printable(typeof role === 'string' ? role : '')}`, 404);
}

function isForeignKeyViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2003';
}
