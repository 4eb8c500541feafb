// `nfips logs`: the event log, one readable line per record.
import { existsSync } from 'node:fs';
import { openLineReader } from '../log/follow';
import { escapeJsonLine } from '../log/escape';
import { formatRecord, typeMatches } from '../log/pretty';
import { parseDuration } from '../config/duration';

export interface LogsCommand {
  file: string;
  follow: boolean;
  types: string[];
  json: boolean;
  /** -n: only the last N matching records of what is there now (then, with follow, everything new). */
  lines?: number | null;
  /** --since: only records stamped at or after this (epoch ms). */
  since?: number | null;
}

/** --since: a duration back from now (10m, 1h30m, 2d, seconds) or an ISO 8601 time. Throws naming the flag. */
export function parseSince(text: string, now = Date.now()): number {
  const t = String(text).trim();
  if (/^\d{4}-\d{2}-\d{2}/.test(t)) {
    const at = Date.parse(t);
    if (Number.isFinite(at)) return at;
  } else {
    try {
      return now - parseDuration('since', t) * 1000;
    } catch {
      // reported below, with both forms
    }
  }
  throw new Error(`invalid --since "${t}": expected a duration back from now such as 10m, 2h or 1d, or an ISO time such as 2026-11-30T12:00:00Z`);
}

/** -n: a count of records. Throws naming the flag. */
export function checkLines(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new Error(`invalid -n/--lines ${String(n)}: expected a whole number of records, 0 or more`);
  return n;
}

/** Prints the file (and, with follow, what is appended) until the returned stop is called or SIGINT. */
export function runLogs(c: LogsCommand, write: (s: string) => void): { stop(): void; done: Promise<void> } {
  if (!c.follow && !existsSync(c.file)) throw new Error(`${c.file}: no such log file (is --log-file elsewhere? pass it with --file)`);
  const types = c.types.flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
  const since = c.since ?? null;
  // While reading what is there now with -n, the last N matches wait here (bounded, whatever the file's size).
  let tail: string[] | null = c.lines !== undefined && c.lines !== null ? [] : null;
  const keep = c.lines ?? 0;
  const reader = openLineReader(c.file, (line) => {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not a record (a torn line, or not our file)
    }
    if (!typeMatches(rec, types)) return;
    if (since !== null) {
      const at = typeof rec.timestamp === 'string' ? Date.parse(rec.timestamp) : NaN;
      if (!(at >= since)) return;
    }
    const text = `${c.json ? escapeJsonLine(line) : formatRecord(rec)}\n`;
    if (tail === null) write(text);
    else if (keep > 0) {
      tail.push(text);
      if (tail.length > keep) tail.shift();
    }
  });
  reader.poll();
  if (tail !== null) {
    for (const t of tail) write(t);
    tail = null;
  }
  if (!c.follow) {
    reader.close();
    return { stop: () => undefined, done: Promise.resolve() };
  }
  let resolve: () => void = () => undefined;
  const done = new Promise<void>((r) => (resolve = r));
  const timer = setInterval(() => reader.poll(), 200);
  const stop = () => {
    clearInterval(timer);
    reader.close();
    resolve();
  };
  return { stop, done };
}
