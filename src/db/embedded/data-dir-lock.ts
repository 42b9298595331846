// An exclusive lock on the embedded database's data dir.
//
// Nothing in PGlite stops two processes from opening one data dir, and one of
// them then silently loses its writes. The lock is a file created
// exclusively, so of any number of racers exactly one wins; it holds the
// owner's pid so a lock left behind by a killed process (kill -9, power loss)
// can be recognised and taken over.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const LOCK_FILE_NAME = 'gatehouse.lock';

export class DataDirLockedError extends Error {
  readonly dataDir: string;
  /** The holder's pid; undefined if it changed hands while we looked. */
  readonly pid: number | undefined;

  constructor(dataDir: string, pid: number | undefined) {
    super(
      `the data dir ${dataDir} is in use by another Gatehouse server (pid ${pid ?? 'unknown'}); ` +
        'stop it first or set DATABASE_URL',
    );
    this.name = 'DataDirLockedError';
    this.dataDir = dataDir;
    this.pid = pid;
  }
}

export interface DataDirLock {
  /** Removes the lock file if it is still ours. Safe to call more than once. */
  release(): void;
}

interface LockContents {
  pid: number;
  startedAt: string;
}

/** Whether a process with this pid exists (EPERM: it does, owned by another user). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface LockHolder {
  pid: number | undefined;
  ino: number;
}

/** The lock file's holder, or undefined when there is no lock file. */
function readLock(lockPath: string): LockHolder | undefined {
  let fd: number;
  try {
    fd = fs.openSync(lockPath, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const { ino } = fs.fstatSync(fd);
    let pid: number | undefined;
    try {
      const contents = JSON.parse(fs.readFileSync(fd, 'utf8')) as Partial<LockContents>;
      if (typeof contents.pid === 'number') pid = contents.pid;
    } catch {
      // Unreadable contents cannot name a live holder: treat as stale.
    }
    return { pid, ino };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Creates the lock file exclusively, with its contents already in place: the
 * contents go to a private temporary file that is then hard-linked to the lock
 * name. link(2) fails with EEXIST exactly like open(O_CREAT|O_EXCL) ('wx'),
 * but no other process can ever see a lock file that is still empty and
 * mistake it for a stale one.
 */
function tryCreateLock(lockPath: string): boolean {
  const contents: LockContents = { pid: process.pid, startedAt: new Date().toISOString() };
  const draftPath = `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}`;
  fs.writeFileSync(draftPath, JSON.stringify(contents), { flag: 'wx', mode: 0o600 });
  try {
    fs.linkSync(draftPath, lockPath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    fs.rmSync(draftPath, { force: true });
  }
}

/** Removes the lock file only if it is still the very file (inode) we read. */
function removeStaleLock(lockPath: string, stale: LockHolder): void {
  try {
    if (fs.statSync(lockPath).ino === stale.ino) fs.rmSync(lockPath, { force: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/**
 * Takes the data dir's lock or throws DataDirLockedError naming the process
 * that holds it. A lock whose process is gone (kill -9, power loss) is removed
 * and the exclusive create retried once: if several processes take over the
 * same stale lock, only one create succeeds.
 */
export function acquireDataDirLock(dataDir: string): DataDirLock {
  const resolvedDir = path.resolve(dataDir);
  const lockPath = path.join(resolvedDir, LOCK_FILE_NAME);

  let acquired = tryCreateLock(lockPath);
  if (!acquired) {
    const holder = readLock(lockPath);
    // Our own pid counts as alive: one process opening its data dir twice
    // would lose writes just the same.
    if (holder?.pid !== undefined && isProcessAlive(holder.pid)) {
      throw new DataDirLockedError(resolvedDir, holder.pid);
    }
    if (holder) removeStaleLock(lockPath, holder);
    acquired = tryCreateLock(lockPath);
  }
  if (!acquired) {
    // Another process won the takeover.
    throw new DataDirLockedError(resolvedDir, readLock(lockPath)?.pid);
  }

  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.removeListener('exit', release);
    // Only remove a lock that is still ours: after a stale takeover the file
    // may belong to someone else.
    if (readLock(lockPath)?.pid === process.pid) fs.rmSync(lockPath, { force: true });
  };
  // 'exit' handlers must be synchronous, which release() is.
  process.on('exit', release);
  return { release };
}
