// Follows nfips' JSON-lines event log incrementally (a run logs a few stats
// records a second for an hour: re-reading the whole file at every poll
// would not do). Keeps the events the benchmark looks at.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import type { LogRecord } from './report';

export const KEPT_TYPES = new Set(['alert', 'block', 'unblock', 'anomaly_end', 'block_refused', 'block_failed', 'ready', 'stopping', 'stop', 'error', 'fatal']);

export interface StatsPoint {
  t: number;
  queue: number;
  pps: number;
  received: number;
  kernelDropped: number;
  episodeOpen: boolean | null;
}

export class LogTail {
  private offset = 0;
  private partial = '';
  readonly events: LogRecord[] = [];
  readonly stats: StatsPoint[] = [];
  readonly lastStats = new Map<number, StatsPoint>();
  parseErrors = 0;

  constructor(private readonly file: string) {}

  /** Reads what was appended since the last call; returns the new kept events. */
  poll(): LogRecord[] {
    if (!existsSync(this.file)) return [];
    const size = statSync(this.file).size;
    if (size < this.offset) {
      // Rotated or truncated: start over.
      this.offset = 0;
      this.partial = '';
    }
    if (size === this.offset) return [];
    const fd = openSync(this.file, 'r');
    const buf = Buffer.alloc(size - this.offset);
    try {
      readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const text = this.partial + buf.toString('utf8');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    const fresh: LogRecord[] = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      let r: LogRecord;
      try {
        r = JSON.parse(line) as LogRecord;
      } catch {
        this.parseErrors++;
        continue;
      }
      if (r.event_type === 'stats') {
        const k = r.kernel as { queue_dropped?: number } | undefined;
        // Per-source episodes and the traffic classifier's episode (nfips >= model format 2).
        const d = r.detection as { sources?: { open?: unknown }; traffic_episode_open?: unknown } | null | undefined;
        const p: StatsPoint = {
          t: Date.parse(r.timestamp),
          queue: Number(r.queue),
          pps: Number(r.pps ?? 0),
          received: Number(r.received ?? 0),
          kernelDropped: Number(k?.queue_dropped ?? 0),
          episodeOpen: typeof d?.traffic_episode_open === 'boolean' && typeof d.sources?.open === 'number' ? d.traffic_episode_open || d.sources.open > 0 : null,
        };
        this.stats.push(p);
        this.lastStats.set(p.queue, p);
      } else if (KEPT_TYPES.has(r.event_type)) {
        this.events.push(r);
        fresh.push(r);
      }
    }
    return fresh;
  }

  /** true when every queue's last stats says no episode is open; null when stats carry no such field. */
  episodesClosed(): boolean | null {
    const v = [...this.lastStats.values()].map((s) => s.episodeOpen);
    if (v.length === 0 || v.some((x) => x === null)) return null;
    return v.every((x) => x === false);
  }
}
