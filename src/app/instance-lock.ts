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
// The state lock is an flock on <state-dir>/nfips.lock. The chain lock is an
// abstract unix socket, "\0nfips-chain-<chain>", bound for the process's
// life: the kernel scopes abstract names per network namespace (where the
// chain lives too), frees the name when the holder dies, and no file, flag
// or `rm` can split it (a lock file under /run could be deleted by systemd
// or put elsewhere by a flag, and then two instances each held "the" lock).
// Whoever connects to it is told the holder's pid.
import { closeSync, constants, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { flockSync } from 'fs-ext';
import { createConnection, createServer, Server } from 'node:net';
import path from 'node:path';

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

/** The abstract socket name (leading NUL) that holds the chain in this network namespace. */
export function chainLockName(chain: string): string {
  return `\0nfips-chain-${chain}`;
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
  /** What is held: the state lock file and the chain's abstract socket. */
  readonly held: readonly string[];
  /** Frees the locks (the kernel does too when the process ends). */
  release(): void;
}

export interface LockTargets {
  stateDir: string;
  /** null: this instance installs no chain (nfips watch without --block). */
  chain: string | null;
}

/** Binds the chain's abstract socket; null when another process holds it. */
function bindChain(chain: string): Promise<Server | null> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => {
      sock.on('error', () => undefined);
      sock.end(`${process.pid}\n`);
    });
    server.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' ? resolve(null) : reject(new Error(`cannot take the chain lock for ${chain}: ${e.message}`))));
    server.listen({ path: chainLockName(chain) }, () => {
      // The lock must not keep a stopping process alive.
      server.unref();
      resolve(server);
    });
  });
}

/**
 * Takes the state directory lock, then the chain lock; throws
 * InstanceLockedError naming the holder's pid when either is held, having
 * taken nothing. Nothing else is touched, so a refused start changes nothing.
 */
export async function acquireInstanceLock(t: LockTargets): Promise<InstanceLock> {
  const stateFile = stateLockFile(t.stateDir);
  const s = tryLock(stateFile, '--state-dir');
  if (!s) throw lockedMessage(readPid(stateFile), `with --state-dir ${t.stateDir}`, stateFile, 'stop it first, or give this one its own --state-dir (and its own chain, in another network namespace)');
  const chain = t.chain;
  let server: Server | null = null;
  try {
    if (chain !== null) server = await bindChain(chain);
  } catch (e) {
    closeSync(s.fd);
    throw e;
  }
  if (chain !== null && !server) {
    closeSync(s.fd);
    const holder = await chainLockHolder(chain);
    throw lockedMessage(holder?.pid ?? null, `with chain ${chain} in this network namespace`, `abstract socket @nfips-chain-${chain}`, 'stop it first (systemctl stop nfips, or SIGTERM to that pid); two instances cannot share one chain');
  }
  let released = false;
  return {
    held: chain === null ? [stateFile] : [stateFile, `@nfips-chain-${chain}`],
    release: () => {
      if (released) return;
      released = true;
      server?.close();
      closeSync(s.fd); // closing the only descriptor drops the flock
    },
  };
}

/** The nfips holding the chain in this network namespace, or null if none does (for commands that change the chain). */
export function chainLockHolder(chain: string): Promise<{ pid: number | null; lock: string } | null> {
  return new Promise((resolve) => {
    const lock = `abstract socket @nfips-chain-${chain}`;
    let text = '';
    const sock = createConnection({ path: chainLockName(chain) });
    sock.setEncoding('utf8');
    sock.setTimeout(2000, () => sock.destroy());
    sock.on('data', (d: string) => (text += d));
    // Refused or absent: nobody holds it. Held but silent: held all the same.
    sock.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? null : { pid: null, lock }));
    sock.on('close', (hadError) => {
      if (hadError) return;
      const m = /^(\d+)\n/.exec(text);
      resolve({ pid: m ? Number(m[1]) : null, lock });
    });
  });
}

/**
 * Holds the state directory's lock for a command that edits its files while
 * nfips is stopped, so an nfips starting meanwhile waits its turn instead of
 * reading the file half-edited and overwriting the edit later. Throws
 * InstanceLockedError when an nfips holds it; a missing directory needs no lock.
 */
export function holdStateLock(stateDir: string): { release(): void } {
  if (!existsSync(stateDir)) return { release: () => undefined };
  const file = stateLockFile(stateDir);
  const h = tryLock(file, '--state-dir', false);
  if (!h) throw lockedMessage(readPid(file), `with --state-dir ${stateDir}`, file, 'it answers on its own --control-socket; give that');
  return { release: () => closeSync(h.fd) };
}
