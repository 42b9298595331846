// `gatehouse user …`: accounts, passwords, role assignments and TOTP
// enrolment. Passwords are only ever read from stdin (never a flag: flags show
// up in `ps` and shell history) and are never printed.
import { invalidInput } from '../../lib/errors.ts';
import { type CommandContext, parse, print, UsageError, withServices } from '../support.ts';

/** More than enough for a 1024-character password in any script; the rest of stdin is drained, not kept. */
const MAX_STDIN_BYTES = 64 * 1024;

export async function userCommand(args: string[], context: CommandContext): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case 'create':
      return createUser(rest, context);
    case 'set-password':
      return setPassword(rest, context);
    case 'role':
      return changeRole(rest, context);
    case 'mfa':
      return mfa(rest, context);
    default:
      throw new UsageError(
        action ? `unknown user command "${action}"` : 'user needs create, set-password, role or mfa',
      );
  }
}

async function createUser(args: string[], context: CommandContext): Promise<void> {
  const { values } = parse(args, {
    email: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string', multiple: true },
    'email-unverified': { type: 'boolean' },
    'password-stdin': { type: 'boolean' },
  });
  if (!values.email) throw new UsageError('user create needs --email');
  if (!values['password-stdin']) {
    throw new UsageError('user create needs --password-stdin (the password is read from stdin)');
  }
  const password = await readPasswordFromStdin();
  const user = await withServices(context, (services) =>
    services.users.create(
      {
        email: values.email!,
        password,
        name: values.name,
        roles: values.role,
        emailVerified: values['email-unverified'] !== true,
      },
      { actor: 'cli' },
    ),
  );
  print(
    context,
    { id: user.id, email: user.email, roles: user.roles },
    [`user ${user.id}`, `email: ${user.email}`, `roles: ${user.roles.join(', ') || '(none)'}`].join('\n'),
  );
}

async function setPassword(args: string[], context: CommandContext): Promise<void> {
  const { values } = parse(args, {
    email: { type: 'string' },
    'password-stdin': { type: 'boolean' },
  });
  if (!values.email) throw new UsageError('user set-password needs --email');
  if (!values['password-stdin']) {
    throw new UsageError('user set-password needs --password-stdin (the password is read from stdin)');
  }
  const password = await readPasswordFromStdin();
  const user = await withServices(context, (services) =>
    services.users.setPassword(values.email!, password, { actor: 'cli' }),
  );
  print(context, { id: user.id, email: user.email }, `password of ${user.email} (${user.id}) changed`);
}

async function changeRole(args: string[], context: CommandContext): Promise<void> {
  const [action, ...rest] = args;
  if (action !== 'add' && action !== 'remove') {
    throw new UsageError(action ? `unknown user role command "${action}"` : 'user role needs add or remove');
  }
  const { values } = parse(rest, { email: { type: 'string' }, role: { type: 'string' } });
  if (!values.email) throw new UsageError(`user role ${action} needs --email`);
  if (!values.role) throw new UsageError(`user role ${action} needs --role`);
  const user = await withServices(context, (services) =>
    action === 'add'
      ? services.users.addRole(values.email!, values.role!, { actor: 'cli' })
      : services.users.removeRole(values.email!, values.role!, { actor: 'cli' }),
  );
  print(
    context,
    { id: user.id, email: user.email, roles: user.roles },
    `${user.email} now has roles: ${user.roles.join(', ') || '(none)'}`,
  );
}

/**
 * Enrols a TOTP factor without a code (SPEC `user mfa enroll`): the operator
 * hands the secret or the otpauth URL and the recovery codes to the user.
 * They are printed this once and stored only encrypted (the secret) or hashed
 * (the codes). Replaces any factor the user had.
 */
async function mfa(args: string[], context: CommandContext): Promise<void> {
  const [action, ...rest] = args;
  if (action !== 'enroll') {
    throw new UsageError(action ? `unknown user mfa command "${action}"` : 'user mfa needs enroll');
  }
  const { values } = parse(rest, { email: { type: 'string' } });
  if (!values.email) throw new UsageError('user mfa enroll needs --email');
  const enrolment = await withServices(context, (services) =>
    services.mfa.enrollForOperator(values.email!, { actor: 'cli' }),
  );
  print(
    context,
    {
      secret: enrolment.secret,
      otpauth_url: enrolment.otpauthUrl,
      recovery_codes: enrolment.recoveryCodes,
    },
    [
      `TOTP enrolled for ${enrolment.email} (${enrolment.userId})`,
      `secret: ${enrolment.secret}`,
      `otpauth URL: ${enrolment.otpauthUrl}`,
      'recovery codes (each works once; shown only now):',
      ...enrolment.recoveryCodes.map((code) => `  ${code}`),
    ].join('\n'),
  );
}

/**
 * The password is stdin up to the first newline (a trailing \r dropped), so
 * `echo "$PW" | gatehouse user create …` and a file with a final newline both
 * work. All of stdin is read, so the writer never sees EPIPE; only the first
 * 64 KiB are kept.
 */
async function readPasswordFromStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new UsageError('--password-stdin reads the password from a pipe or file, not a terminal');
  }
  const chunks: Buffer[] = [];
  let kept = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    if (kept < MAX_STDIN_BYTES) {
      chunks.push(chunk.subarray(0, MAX_STDIN_BYTES - kept));
      kept += Math.min(chunk.length, MAX_STDIN_BYTES - kept);
    }
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const newline = text.indexOf('\n');
  const line = newline === -1 ? text : text.slice(0, newline);
  const password = line.endsWith('\r') ? line.slice(0, -1) : line;
  if (password === '') throw invalidInput('no password on stdin: pipe it in, followed by a newline or EOF');
  return password;
}
