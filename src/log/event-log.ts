// Structured JSON-lines events (winston): one object per line in the log
// file, a short readable line on the console. Every record carries
// timestamp and event_type.
import { createWriteStream, WriteStream } from 'node:fs';
import winston from 'winston';
import { openForAppend } from '../config/safe-file';
import { escapeControl } from './escape';

export type Level = 'error' | 'warn' | 'info' | 'debug';
export type EventFields = Record<string, unknown>;

export interface EventLog {
  event(eventType: string, fields?: EventFields, level?: Level): void;
  /**
   * Reopens the log file by name (after logrotate moved it): records logged
   * from now on go to the new file; the old transport finishes writing what
   * it holds to the moved file, so no line is lost.
   */
  reopen(): void;
  /** Flushes and closes the transports. */
  close(): Promise<void>;
}

export interface EventLogOptions {
  file?: string;
  console: boolean;
  /** Write the file's JSON lines to stdout instead of the readable console form (for `nfips replay`). */
  stdoutJson?: boolean;
  level: Level;
  /** Time for the records' timestamp (replay: the capture's clock); default now. */
  clock?: () => Date;
  /** How the file is named in errors (the flag that set it). */
  fileLabel?: string;
}

const consoleFormat = winston.format.printf((info) => {
  const { timestamp, level, event_type: type, message, console_text: text0, console_only: _only, ...rest } = info as Record<string, unknown>;
  // A line written for people (the periodic summary): as it is.
  if (typeof text0 === 'string') return escapeControl(`${String(timestamp)} ${String(level).padEnd(5)} [${String(type)}] ${text0}`);
  delete rest.level;
  const summary = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
  const text = message && message !== type ? ` ${String(message)}` : '';
  return escapeControl(`${String(timestamp)} ${String(level).padEnd(5)} [${String(type)}]${text} ${summary}`.trimEnd());
});

/** Event types the console's summary line (stats/summary.ts) stands for at info level. */
const PERIODIC_EVENTS: ReadonlySet<string> = new Set(['stats', 'rule_stats', 'block_stats', 'record_features']);

/** Records meant for the console only (the summary line) stay out of the JSON log. */
const notConsoleOnly = winston.format((info) => ((info as Record<string, unknown>).console_only ? false : info));
/** Below debug, the periodic dumps give way to the summary line on the console (the JSON log keeps them). */
/** One line per ended session: the log file's, too many for a console below debug. */
const CONSOLE_QUIET: ReadonlySet<string> = new Set([...PERIODIC_EVENTS, 'flow']);
const consoleQuiet = winston.format((info) => (CONSOLE_QUIET.has(String((info as Record<string, unknown>).event_type)) ? false : info));

/** The log file's stream and the transport writing to it. */
interface FileSink {
  stream: WriteStream;
  transport: winston.transport;
}

/** Resolves once everything written to the stream is on disk and its descriptor closed. */
function endStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.closed || stream.destroyed) return resolve();
    stream.once('close', () => resolve());
    stream.once('error', () => resolve());
    stream.end();
  });
}

export function createEventLog(opts: EventLogOptions): EventLog {
  const transports: winston.transport[] = [];
  const clock = opts.clock;
  const stamp = () => (clock ? winston.format.timestamp({ format: () => clock().toISOString() }) : winston.format.timestamp());
  // nfips opens the file itself (winston's File transport follows symlinks and creates files 0644).
  const fileSink = (file: string): FileSink => {
    const fd = openForAppend(file, opts.fileLabel ?? 'log file', { mode: 0o640, dirMode: 0o750 });
    const stream = createWriteStream('', { fd, autoClose: true });
    stream.on('error', () => undefined);
    return { stream, transport: new winston.transports.Stream({ stream, format: winston.format.combine(notConsoleOnly(), stamp(), winston.format.json()) }) };
  };
  let file: FileSink | null = null;
  if (opts.file) {
    file = fileSink(opts.file);
    transports.push(file.transport);
  }
  if (opts.stdoutJson) {
    transports.push(
      new winston.transports.Console({
        stderrLevels: [],
        format: winston.format.combine(notConsoleOnly(), stamp(), winston.format.json()),
      }),
    );
  } else if (opts.console) {
    transports.push(
      new winston.transports.Console({
        stderrLevels: ['error', 'warn'],
        format: opts.level === 'debug' ? winston.format.combine(notConsoleOnly(), stamp(), consoleFormat) : winston.format.combine(consoleQuiet(), stamp(), consoleFormat),
      }),
    );
  }
  const logger = winston.createLogger({ level: opts.level, transports, exitOnError: false });
  return {
    reopen() {
      if (!file || !opts.file) return;
      // Swapped within one tick: no record can fall between the two. The old
      // stream writes out what it holds to the moved file, then closes.
      const old = file;
      try {
        file = fileSink(opts.file);
      } catch (e) {
        // Keep writing to the old file rather than lose records.
        logger.log({ level: 'error', message: 'log_reopen_failed', event_type: 'log_reopen_failed', file: opts.file, error: (e as Error).message });
        return;
      }
      logger.remove(old.transport);
      logger.add(file.transport);
      void endStream(old.stream);
    },
    event(eventType, fields = {}, level = 'info') {
      // `message` is winston's required key; keep it equal to the type.
      logger.log({ level, message: eventType, event_type: eventType, ...fields });
    },
    close() {
      return new Promise<void>((resolve) => {
        if (transports.length === 0) return resolve();
        logger.on('finish', () => setImmediate(resolve));
        logger.end();
      }).then(() => (file ? endStream(file.stream) : undefined));
    },
  };
}
