// Structured JSON-lines events (winston): one object per line in the log
// file, a short readable line on the console. Every record carries
// timestamp and event_type.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import winston from 'winston';

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
}

const consoleFormat = winston.format.printf((info) => {
  const { timestamp, level, event_type: type, message, ...rest } = info as Record<string, unknown>;
  delete rest.level;
  const summary = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
  const text = message && message !== type ? ` ${String(message)}` : '';
  return `${String(timestamp)} ${String(level).padEnd(5)} [${String(type)}]${text} ${summary}`.trimEnd();
});

export function createEventLog(opts: EventLogOptions): EventLog {
  const transports: winston.transport[] = [];
  const clock = opts.clock;
  const stamp = () => (clock ? winston.format.timestamp({ format: () => clock().toISOString() }) : winston.format.timestamp());
  const fileTransport = (file: string) => new winston.transports.File({ filename: file, format: winston.format.combine(stamp(), winston.format.json()) });
  let file: winston.transport | null = null;
  if (opts.file) {
    mkdirSync(path.dirname(opts.file), { recursive: true });
    file = fileTransport(opts.file);
    transports.push(file);
  }
  if (opts.stdoutJson) {
    transports.push(
      new winston.transports.Console({
        stderrLevels: [],
        format: winston.format.combine(stamp(), winston.format.json()),
      }),
    );
  } else if (opts.console) {
    transports.push(
      new winston.transports.Console({
        stderrLevels: ['error', 'warn'],
        format: winston.format.combine(stamp(), consoleFormat),
      }),
    );
  }
  const logger = winston.createLogger({ level: opts.level, transports, exitOnError: false });
  return {
    reopen() {
      if (!file || !opts.file) return;
      // Swapped within one tick: no record can fall between the two.
      const old = file;
      file = fileTransport(opts.file);
      logger.remove(old);
      logger.add(file);
      old.close?.();
    },
    event(eventType, fields = {}, level = 'info') {
      // `message` is winston's required key; keep it equal to the type.
      logger.log({ level, message: eventType, event_type: eventType, ...fields });
    },
    close() {
      return new Promise((resolve) => {
        if (transports.length === 0) return resolve();
        logger.on('finish', () => setImmediate(resolve));
        logger.end();
      });
    },
  };
}
