// Opening the files nfips writes (event log, feature recording, block state)
// and reads (rules, state, models) so that a hostile or careless file system
// cannot turn them against it: no following a symbolic link planted in the
// file's place (O_NOFOLLOW), no FIFO or device (a FIFO at blocks.json used to
// hang the start), no directory others may write to (they could swap the
// file), new files created 0640 (the state 0600), reads capped in size.
// Every error names the flag or file it is about.
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, Stats, statSync } from 'node:fs';
import path from 'node:path';

export class UnsafeFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeFileError';
  }
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** `label` says where the name came from, e.g. "--log-file" or "rules file". */
function describe(label: string, file: string): string {
  return `${label} ${file}`;
}

/**
 * The directory holding a file nfips writes must not be writable by other
 * users, even with the sticky bit: they could create the file first (and
 * read what nfips writes there) or replace it between runs.
 */
export function checkDirectory(dir: string, label: string, file: string): void {
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (e) {
    throw new UnsafeFileError(`${describe(label, file)}: cannot use its directory ${dir}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new UnsafeFileError(`${describe(label, file)}: ${dir} is not a directory`);
  if ((st.mode & 0o002) !== 0) {
    throw new UnsafeFileError(`${describe(label, file)}: its directory ${dir} is writable by every user (mode ${(st.mode & 0o7777).toString(8)}); use a directory only nfips' user can write to, e.g. /var/log/nfips or /var/lib/nfips`);
  }
}

function openError(e: NodeJS.ErrnoException, label: string, file: string): Error {
  if (e.code === 'ELOOP') return new UnsafeFileError(`${describe(label, file)} is a symbolic link; nfips does not follow links for the files it opens there (give the real path, or replace the link with a regular file)`);
  if (e.code === 'ENXIO') return new UnsafeFileError(`${describe(label, file)} is a FIFO or socket nobody reads, not a regular file`);
  // The usual mistakes, said in their own words rather than as an errno.
  if (e.code === 'EISDIR') return new UnsafeFileError(`${describe(label, file)} is a directory; give a file in it, e.g. ${path.join(file, 'nfips.json')}`);
  if (e.code === 'EROFS') return new UnsafeFileError(`${describe(label, file)}: cannot write there, the file system is read-only; give a path on a writable file system, e.g. under /var/log/nfips`);
  if (e.code === 'EACCES') return new UnsafeFileError(`${describe(label, file)}: permission denied; give nfips' user write access to ${path.dirname(file)}, or another path`);
  return new UnsafeFileError(`${describe(label, file)}: cannot open: ${e.message}`);
}

function mkdirError(e: NodeJS.ErrnoException, label: string, file: string, dir: string): Error {
  if (e.code === 'EEXIST' || e.code === 'ENOTDIR') return new UnsafeFileError(`${describe(label, file)}: ${dir} cannot be its directory, a file is in the way (${e.code === 'EEXIST' ? dir : 'a parent of it'} is not a directory)`);
  if (e.code === 'EROFS') return new UnsafeFileError(`${describe(label, file)}: cannot create its directory ${dir}, the file system is read-only`);
  return new UnsafeFileError(`${describe(label, file)}: cannot create its directory ${dir}: ${e.message}`);
}

/** The open file must be a regular file (never block on a FIFO, never write to a device); closes it otherwise. */
function requireRegular(fd: number, label: string, file: string): Stats {
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (!st.isFile()) {
    closeSync(fd);
    throw new UnsafeFileError(`${describe(label, file)} is ${kindOf(st)}, not a regular file`);
  }
  return st;
}

// O_NONBLOCK: opening a FIFO for writing with no reader fails (ENXIO) instead
// of hanging, and opening one for reading returns at once so fstat can refuse
// it; it changes nothing for regular files.
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

export interface AppendOptions {
  /** Mode of a file created now (existing files keep theirs). */
  mode?: number;
  /** Create missing parent directories with this mode. */
  dirMode?: number;
}

/** Opens `file` for appending as a file descriptor, checked as described above. */
export function openForAppend(file: string, label: string, o: AppendOptions = {}): number {
  const dir = path.dirname(file);
  if (o.dirMode !== undefined) {
    try {
      mkdirSync(dir, { recursive: true, mode: o.dirMode });
    } catch (e) {
      throw mkdirError(e as NodeJS.ErrnoException, label, file, dir);
    }
  }
  checkDirectory(dir, label, file);
  let fd: number;
  try {
    fd = openSync(file, APPEND_FLAGS, o.mode ?? 0o640);
  } catch (e) {
    throw openError(e as NodeJS.ErrnoException, label, file);
  }
  requireRegular(fd, label, file);
  return fd;
}

/** Checks `file` as openForAppend would (creating it), then closes it: for validating flags before anything starts. */
export function checkAppendable(file: string, label: string, o: AppendOptions = {}): void {
  closeSync(openForAppend(file, label, o));
}

export interface ReadOptions {
  /** Larger files are refused. */
  maxBytes: number;
  /** Refuse a symbolic link (files nfips itself writes, like the state); rules and models may be links. */
  noFollow?: boolean;
}

/**
 * Reads a regular file of at most maxBytes as UTF-8. A missing file is an
 * error with code ENOENT, so callers may treat it as empty.
 */
export function readFileBounded(file: string, label: string, o: ReadOptions): string {
  let fd: number;
  try {
    fd = openSync(file, READ_FLAGS | (o.noFollow ? constants.O_NOFOLLOW : 0));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw err;
    throw openError(err, label, file);
  }
  const st = requireRegular(fd, label, file);
  try {
    const tooBig = () => new UnsafeFileError(`${describe(label, file)} is more than ${o.maxBytes} bytes, the limit for it`);
    if (st.size > o.maxBytes) throw tooBig();
    // Read to the end rather than trusting the size: the file may grow meanwhile.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.max(st.size - total, 0) + 65536);
      const got = readSync(fd, chunk, 0, chunk.length, null);
      if (got === 0) break;
      total += got;
      if (total > o.maxBytes) throw tooBig();
      chunks.push(chunk.subarray(0, got));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
