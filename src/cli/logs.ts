// `nfips logs`: the event log, one readable line per record.
import { existsSync } from 'node:fs';
import { openLineReader } from '../log/follow';
import { escapeJsonLine } from '../log/escape';
import { formatRecord, typeMatches } from '../log/pretty';

export interface LogsCommand {
  file: string;
  follow: boolean;
  types: string[];
  json: boolean;
}

/** Prints the file (and, with follow, what is appended) until the returned stop is called or SIGINT. */
export function runLogs(c: LogsCommand, write: (s: string) => void): { stop(): void; done: Promise<void> } {
  if (!c.follow && !existsSync(c.file)) throw new Error(`${c.file}: no such log file (is --log-file elsewhere? pass it with --file)`);
  const types = c.types.flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
  const reader = openLineReader(c.file, (line) => {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not a record (a torn line, or not our file)
    }
    if (!typeMatches(rec, types)) return;
    write(`${c.json ? escapeJsonLine(line) : formatRecord(rec)}\n`);
  });
  reader.poll();
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
