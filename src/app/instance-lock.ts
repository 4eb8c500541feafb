// One nfips per state directory and per chain: two instances sharing either
// would empty each other's block sets and remove each other's chain (issue
// 12: a second `nfips run` took the first one's chain away and SMB passed).
//
// Each is an flock(2) on a small file, held on an open descriptor for the
// life of the process. The kernel drops an flock when its last descriptor
// closes, so a crash or `kill -9` frees it at once: no stale lock to judge,
// no pid that may have been reused. The pid written inside is only for the
// message naming the holder. Lock files are never unlinked: unlinking one
// while another process waits on it would let two processes hold "the" lock.
//
// The state lock lives in the state directory. The chain lock lives in
// --lock-dir (default /run/nfips, the unit's RuntimeDirectory, which only
// nfips' user may write: a world-writable place would let any local user
// hold the lock first and keep the IPS from starting). Chains belong to a
// network namespace, so its lock name carries the namespace's inode: the
// same chain name in another namespace is another chain.
import { closeSync, constants, existsSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, readlinkSync, writeSync } from 'node:fs';
import { flockSync } from 'fs-ext';
import path from 'node:path';

export const DEFAULT_LOCK_DIR = '/run/nfips';
export const STATE_LOCK_NAME = 'nfips.lock';

export class InstanceLockedError extends Error {
  constructor(
    message: string,
    /** The holder's pid as it wrote it, or null if it had not written it yet. */
    readonly pid: number | null,
  ) {
    super(message);
    this.name = 'InstanceLockedError';
  }
}

/** The current network namespace's inode, as /proc/self/ns/net names it ("net:[4026531840]"). */
export function netnsId(): string {
  const link = readlinkSync('/proc/self/ns/net');
  const m = /\[(\d+)\]/.exec(link);
  return m ? m[1]! : link.replace(/[^A-Za-z0-9]/g, '_');
}

export function chainLockFile(lockDir: string, chain: string): string {
  return path.join(lockDir, `chain-${netnsId()}-${chain.replace(/[^A-Za-z0-9_.-]/g, '_')}.lock`);
}

export function stateLockFile(stateDir: string): string {
  return path.join(stateDir, STATE_LOCK_NAME);
}

function readPid(file: string): number | null {
  try {
    const m = /^(\d+)\n/.exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

interface Held {
  fd: number;
  file: string;
}

/**
 * Takes the flock on `file` without waiting. Returns null when another
 * process holds it; throws for anything else (a directory nfips cannot
 * write, a link planted in the file's place).
 */
function tryLock(file: string, label: string, writePid = true): Held | null {
  let fd: number;
  try {
    // No link followed: the lock must be this file, not one a link points to.
    fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // EACCES: typically left by an nfips run as root before the service (another user) starts;
    // a lock file no running nfips holds can go.
    const why = err.code === 'ELOOP'
      ? 'it is a symbolic link'
      : err.code === 'EACCES'
        ? `${err.message}; it belongs to another user (an nfips once run as root?): remove it if no nfips is running (nfips status)`
        : err.message;
    throw new Error(`cannot take the ${label} lock ${file}: ${why}`);
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new Error(`cannot take the ${label} lock ${file}: not a regular file`);
  }
  try {
    flockSync(fd, 'exnb');
  } catch (e) {
    closeSync(fd);
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK') return null;
    throw new Error(`cannot take the ${label} lock ${file}: ${err.message}`);
  }
  if (writePid) {
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  }
  return { fd, file };
}

function lockedMessage(pid: number | null, what: string, file: string, hint: string): InstanceLockedError {
  const who = pid === null ? 'another nfips (still starting, pid not yet written)' : `another nfips (pid ${pid})`;
  return new InstanceLockedError(`${who} is already running ${what} (lock ${file}); ${hint}`, pid);
}

export interface InstanceLock {
  readonly files: readonly string[];
  /** Frees the locks (the kernel does too when the process ends). */
  release(): void;
}

export interface LockTargets {
  stateDir: string;
  chain: string;
  lockDir: string;
}

/**
 * Takes the state directory lock, then the chain lock; throws
 * InstanceLockedError naming the holder's pid when either is held, having
 * taken nothing. Nothing else is touched, so a refused start changes nothing.
 */
export function acquireInstanceLock(t: LockTargets): InstanceLock {
  const held: Held[] = [];
  const release = () => {
    for (const h of held.splice(0)) {
      try {
        closeSync(h.fd); // closing the only descriptor drops the flock
      } catch {
        /* already closed */
      }
    }
  };
  try {
    const stateFile = stateLockFile(t.stateDir);
    const s = tryLock(stateFile, '--state-dir');
    if (!s) throw lockedMessage(readPid(stateFile), `with --state-dir ${t.stateDir}`, stateFile, 'stop it first, or give this one its own --state-dir (and its own chain, in another network namespace)');
    held.push(s);
    try {
      mkdirSync(t.lockDir, { recursive: true, mode: 0o750 });
    } catch (e) {
      throw new Error(`invalid --lock-dir ${t.lockDir}: cannot create it (${(e as Error).message})`);
    }
    const chainFile = chainLockFile(t.lockDir, t.chain);
    const c = tryLock(chainFile, '--lock-dir');
    if (!c) throw lockedMessage(readPid(chainFile), `with chain ${t.chain} in this network namespace`, chainFile, 'stop it first (systemctl stop nfips, or SIGTERM to that pid); two instances cannot share one chain');
    held.push(c);
  } catch (e) {
    release();
    throw e;
  }
  return { files: held.map((h) => h.file), release };
}

/** The pid of the nfips holding the chain lock, or null if none does (for commands that change the chain). */
export function chainLockHolder(lockDir: string, chain: string): { pid: number | null; file: string } | null {
  const file = chainLockFile(lockDir, chain);
  let h: Held | null;
  try {
    // Only a look: the file keeps the last holder's pid.
    h = tryLock(file, '--lock-dir', false);
  } catch {
    return null; // no lock dir we can use: nobody we could see holds it
  }
  if (h) {
    closeSync(h.fd);
    return null;
  }
  return { pid: readPid(file), file };
}

/** The pid of the nfips holding the state directory's lock, or null if none does (for commands that edit its files). */
export function stateLockHolder(stateDir: string): { pid: number | null; file: string } | null {
  const file = stateLockFile(stateDir);
  if (!existsSync(file)) return null;
  let h: Held | null;
  try {
    h = tryLock(file, '--state-dir', false);
  } catch {
    return null;
  }
  if (h) {
    closeSync(h.fd);
    return null;
  }
  return { pid: readPid(file), file };
}
