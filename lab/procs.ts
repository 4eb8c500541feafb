// Process helpers for the lab: every program the lab starts is killed on
// stop, on error and when this process exits (guardChildren), together with
// its descendants (sshd forks a process per session; they would outlive the
// listener otherwise).
import { ChildProcess, execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export function ended(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

/** Parent pid from a /proc/PID/stat line ("pid (comm) state ppid ..."); comm may hold spaces and parentheses. */
export function ppidFromStat(stat: string): number | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const fields = stat.slice(close + 2).split(' ');
  const ppid = Number(fields[1]);
  return Number.isInteger(ppid) ? ppid : null;
}

/** Every descendant of pid (children first level first), read from /proc at this moment. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const pp = ppidFromStat(stat);
    if (pp === null) continue;
    const list = children.get(pp) ?? [];
    list.push(Number(e));
    children.set(pp, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Sends sig to a child and to every descendant it has (by pid). */
export function killTree(p: ChildProcess, sig: NodeJS.Signals = 'SIGKILL'): void {
  if (p.pid === undefined) return;
  const kids = descendants(p.pid);
  if (!ended(p)) p.kill(sig);
  for (const k of kids) signalPid(k, sig);
}

/** SIGTERM (or sig) to each process tree, SIGKILL after graceMs; resolves when every child has exited. */
export async function stopAll(procs: ChildProcess[], sig: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.pid === undefined) return resolve();
          const kids = descendants(p.pid);
          const finish = () => {
            // Descendants that survived their parent (an sshd session) go too.
            for (const k of kids.concat(p.pid !== undefined ? descendants(p.pid) : [])) signalPid(k, 'SIGKILL');
            resolve();
          };
          if (ended(p)) return finish();
          const t = setTimeout(() => killTree(p, 'SIGKILL'), graceMs);
          p.once('exit', () => {
            clearTimeout(t);
            finish();
          });
          p.kill(sig);
          for (const k of kids) signalPid(k, sig);
        }),
    ),
  );
}

/**
 * Kills the process trees in `procs` (the array is read at that moment, so
 * callers may push to it later) if this process exits or is terminated, and
 * runs `extra` (synchronous cleanup such as removing a temp dir). A signal is
 * re-raised when nobody else handles it, so its default effect is kept.
 * Returns the function that removes the guard.
 */
export function guardChildren(procs: ChildProcess[], extra: () => void = () => undefined): () => void {
  const killAll = () => {
    for (const p of procs) killTree(p, 'SIGKILL');
    try {
      extra();
    } catch {
      /* best effort at exit */
    }
  };
  const onSignal = (sig: NodeJS.Signals) => {
    killAll();
    unguard();
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const unguard = () => {
    process.removeListener('exit', killAll);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGHUP', onSignal);
    process.removeListener('SIGINT', onSignal);
  };
  process.once('exit', killAll);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  process.once('SIGINT', onSignal);
  return unguard;
}

/** Keeps the last `max` characters of a stream (for error messages). */
export function tailOf(p: ChildProcess, max = 4000): () => string {
  let buf = '';
  const add = (d: Buffer | string) => {
    buf = (buf + d.toString()).slice(-max);
  };
  p.stdout?.on('data', add);
  p.stderr?.on('data', add);
  return () => buf;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/**
 * A traffic client that prints one JSON summary as its last line. `exited`
 * settles when it has closed (not 'exit': the summary may still be in the
 * pipe then); `done` runs `after` (stop the peers, clean up) and resolves
 * with the summary, or rejects naming `label`, the exit and the stderr tail.
 */
export function summaryOf<T>(client: ChildProcess, label: string, after: () => Promise<void>): { exited: Promise<ChildExit>; done: Promise<T> } {
  let out = '';
  let err = '';
  client.stdout?.setEncoding('utf8');
  client.stderr?.setEncoding('utf8');
  client.stdout?.on('data', (d: string) => (out += d));
  client.stderr?.on('data', (d: string) => (err = (err + d).slice(-4000)));
  const exited = new Promise<ChildExit>((resolve) => {
    client.once('error', (error) => resolve({ code: null, signal: null, error }));
    client.once('close', (code, signal) => resolve({ code, signal }));
  });
  const done = exited.then(async ({ code, signal, error }) => {
    await after();
    const line = out.trim().split('\n').pop() ?? '';
    let summary: T | null = null;
    try {
      summary = line ? (JSON.parse(line) as T) : null;
    } catch {
      summary = null;
    }
    if (error || code !== 0 || !summary) {
      const why = error ? error.message : `exited with ${code ?? signal}`;
      throw new Error(`${label} ${why}${summary ? `; summary ${JSON.stringify(summary)}` : ''}${err.trim() ? `; stderr: ${err.trim()}` : ''}`);
    }
    return summary;
  });
  // A caller that only waits on `exited` (stop()) must not get an unhandled rejection.
  done.catch(() => undefined);
  return { exited, done };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** execFile that never throws: code is the exit code (or 1 with the error in stderr). */
export function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as { code?: number | string; message: string };
      resolve({ code: typeof e.code === 'number' ? e.code : 1, stdout: stdout ?? '', stderr: stderr || e.message });
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
