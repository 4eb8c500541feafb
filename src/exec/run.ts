// Runs the host's tools (iptables, ipset, ip) through execFile, never a
// shell, with a timeout; failures become errors that quote the command line
// and what the tool printed.
import { execFile } from 'node:child_process';

export interface Command {
  file: string;
  args: string[];
  /** Fed on stdin. */
  input?: string;
}

export class CommandError extends Error {
  constructor(message: string, readonly command?: string, readonly output?: string) {
    super(message);
    this.name = 'CommandError';
  }
}

const TIMEOUT_MS = 60_000;

export function shellQuote(arg: string): string {
  if (arg === '!' || /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function commandLine(cmd: Command): string {
  return [cmd.file, ...cmd.args].map(shellQuote).join(' ');
}

export interface RunResult {
  /** null when the process could not be started or was killed. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Why it did not start or did not finish. */
  error?: string;
}

export function run(cmd: Command): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd.file, cmd.args, { timeout: TIMEOUT_MS, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const code = typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr, error: code === null ? err.message : undefined });
    });
    // A binary that fails to start closes stdin under us; the callback reports that.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(cmd.input ?? '');
  });
}

function output(r: RunResult): string {
  return (r.stderr.trim() || r.stdout.trim() || r.error || '').replace(/\s*\n\s*/g, ' / ');
}

/** For restore failures, quote the payload line iptables-restore complains about. */
function failingLine(r: RunResult, input: string | undefined): string {
  const m = /(?:Error occurred at line: |line )(\d+)/.exec(r.stderr);
  const line = m && input ? input.split('\n')[Number(m[1]) - 1] : undefined;
  return line === undefined ? '' : ` [line ${m?.[1]}: ${line}]`;
}

/** The error for a command that did not exit 0: the command line, how it ended, its output. */
export function commandFailure(cmd: Command, r: RunResult): CommandError {
  const how = r.code === null ? `could not be run (${r.error ?? 'unknown error'})` : `failed with exit code ${r.code}`;
  // A process that never started has nothing to add beyond the reason above.
  const text = r.code === null ? '' : output(r);
  return new CommandError(`\`${commandLine(cmd)}\` ${how}${text ? `: ${text}` : ''}${failingLine(r, cmd.input)}`, commandLine(cmd), text);
}

/** Runs cmd; throws a CommandError naming the command and its output unless it exits 0. */
export async function must(cmd: Command): Promise<RunResult> {
  const r = await run(cmd);
  if (r.code !== 0) throw commandFailure(cmd, r);
  return r;
}
