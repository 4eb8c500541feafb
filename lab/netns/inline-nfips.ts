// Runs `nfips run` inside a namespace as a child process and follows its
// event log: shared by the demo, the integration tests and the benchmark.
import { ChildProcess, spawn } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/app/run-options';

export type LogRecord = { event_type: string; timestamp: string } & Record<string, unknown>;

export interface InlineNfips {
  readonly proc: ChildProcess;
  readonly logFile: string;
  readonly controlSocket: string;
  readonly output: () => string;
  events(type?: string): LogRecord[];
  waitFor(type: string, timeoutMs: number, pred?: (r: LogRecord) => boolean): Promise<LogRecord>;
  /** SIGTERM (or the given signal) and wait for exit; resolves with the exit code or signal name. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
  cleanup(): void;
}

export function readLog(file: string): LogRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LogRecord];
      } catch {
        return []; // a line still being written
      }
    });
}

/**
 * Follows a JSON-lines log: each call parses only the lines appended since
 * the last one and returns every record so far (the same array, grown).
 * waitFor polls every 50 ms, and with flow records on a whole-file re-read
 * grows with every connection. A line is taken once its newline is
 * written; a file replaced or truncated (reopened log) is read anew.
 */
export function followLog(file: string): () => LogRecord[] {
  const records: LogRecord[] = [];
  let offset = 0;
  let ino = -1;
  let rest = Buffer.alloc(0);
  return () => {
    if (!existsSync(file)) return records;
    const st = statSync(file);
    if (st.ino !== ino || st.size < offset) {
      records.length = 0;
      offset = 0;
      rest = Buffer.alloc(0);
      ino = st.ino;
    }
    if (st.size === offset) return records;
    const chunk = Buffer.alloc(st.size - offset);
    const fd = openSync(file, 'r');
    let got: number;
    try {
      got = readSync(fd, chunk, 0, chunk.length, offset);
    } finally {
      closeSync(fd);
    }
    offset += got;
    const data = Buffer.concat([rest, chunk.subarray(0, got)]);
    const end = data.lastIndexOf(0x0a);
    rest = data.subarray(end + 1);
    if (end < 0) return records;
    for (const l of data.toString('utf8', 0, end).split('\n')) {
      if (l.trim() === '') continue;
      try {
        records.push(JSON.parse(l) as LogRecord);
      } catch {
        // Not JSON (nfips writes only JSON lines): skipped as readLog does.
      }
    }
    return records;
  };
}

export interface InlineOptions {
  /** Run nfips as `PREFIX... node bin/nfips run ...` inside the namespace (e.g. setpriv to another user). */
  prefix?: string[];
  /** Owner of the directory holding the log, control socket and state, for nfips run as another user. */
  owner?: { uid: number; gid: number };
  /** Instead of a log file in the temporary directory. */
  logFile?: string;
  /** Instead of bin/nfips: a script taking the same command line after these words (lab/support/nfips-faulty-scorer.js FAULT_FILE). */
  entry?: string[];
  /** Default 'run'; 'watch' for the passive capture. */
  command?: 'run' | 'watch';
}

export function startInlineNfips(netns: string, args: string[], opts: InlineOptions = {}): InlineNfips {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-'));
  if (opts.owner) chownSync(dir, opts.owner.uid, opts.owner.gid);
  const logFile = opts.logFile ?? path.join(dir, 'nfips.json');
  const bin = path.join(PACKAGE_ROOT, 'bin', 'nfips');
  const given = args.indexOf('--control-socket');
  const controlSocket = given >= 0 ? (args[given + 1] ?? '') : path.join(dir, 'control.sock');
  // Blocks saved by one test run must not greet the next one.
  const state = args.includes('--state-dir') ? [] : ['--state-dir', path.join(dir, 'state')];
  // Another user cannot write the default /run/nfips; its instance locks go with its other files.
  const proc = spawn('ip', ['netns', 'exec', netns, ...(opts.prefix ?? []), process.execPath, ...(opts.entry ?? [bin]), opts.command ?? 'run', '--log-file', logFile, ...(given >= 0 ? [] : ['--control-socket', controlSocket]), ...state, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const follow = followLog(logFile);
  const events = (type?: string) => follow().filter((r) => type === undefined || r.event_type === type);
  return {
    proc,
    logFile,
    controlSocket,
    output: () => out,
    events,
    async waitFor(type, timeoutMs, pred = () => true) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        const hit = events(type).find(pred);
        if (hit) return hit;
        if (proc.exitCode !== null || proc.signalCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`nfips did not log "${type}" within ${timeoutMs} ms; exit=${proc.exitCode ?? proc.signalCode}; output:\n${out}`);
    },
    async stop(signal = 'SIGTERM', timeoutMs = 15000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        // ip netns exec passes signals on; kill the whole child either way.
        proc.kill(signal);
        const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
        const r = await exited;
        clearTimeout(t);
        return r;
      }
      return exited;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
