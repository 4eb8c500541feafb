// Normal traffic recorded by `nfips run --record-features FILE` (and by
// --learn), one JSON object per line, for `nfips train --features FILE`:
// every feature window, and once a minute the per-source behaviour seen
// since the previous such line (histograms and flag-sequence counts; they
// add up, so a recording resumed after a restart loses nothing).
import { closeSync, constants, createWriteStream, fstatSync, openSync, readSync, writeSync, WriteStream } from 'node:fs';
import { openForAppend } from '../config/safe-file';
import { describeSchemaErrors, strictAjv } from '../config/json-file';
import { ENVELOPE_STATS_SCHEMA, EnvelopeStats, EnvelopeStatsDoc } from './envelope';
import { FEATURE_NAMES, FEATURE_SET_VERSION } from '../features/feature-set';
import { FeatureWindow } from '../features/window';

export interface RecordedWindow {
  queue: number;
  /** Window length, step and queue count of the run that recorded it. */
  windowSeconds: number;
  stepSeconds: number;
  queues: number;
  start: number;
  end: number;
  packets: number;
  values: number[];
}

interface RecordLine {
  /** Absent in recordings of older versions, which held windows only. */
  type?: 'window';
  feature_set: number;
  window_seconds: number;
  step_seconds: number;
  queues: number;
  queue: number;
  start: number;
  end: number;
  packets: number;
  features: Record<string, number>;
}

interface BehaviourLine {
  type: 'behaviour';
  feature_set: number;
  window_seconds: number;
  step_seconds: number;
  queues: number;
  /** Epoch seconds: the end of the last step it covers. */
  end: number;
  stats: EnvelopeStatsDoc;
}

const validateStats = strictAjv().compile(ENVELOPE_STATS_SCHEMA);

/** Lines held in memory while the disk is slow, before windows are dropped (and counted). */
const MAX_BUFFERED_BYTES = 8 << 20;

export class FeatureRecorder {
  private readonly out: WriteStream;
  private failed = false;
  written = 0;
  dropped = 0;

  /**
   * Opens (appends to) the file at once, so a bad path is a start-up error.
   * A write error later is reported once through onError and stops the
   * recording; it never takes the process down.
   */
  constructor(
    readonly file: string,
    private readonly shape: { windowSeconds: number; stepSeconds: number; queues: number },
    onError: (e: Error) => void = () => undefined,
    label = '--record-features',
  ) {
    // No symbolic link, FIFO or shared directory (config/safe-file).
    const fd = openForAppend(file, label, { mode: 0o640 });
    try {
      // A run that died mid-line left a torn last line: start on a fresh one.
      const size = fstatSync(fd).size;
      if (size > 0) {
        const rd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
        const last = Buffer.alloc(1);
        try {
          readSync(rd, last, 0, 1, size - 1);
        } finally {
          closeSync(rd);
        }
        if (last[0] !== 0x0a) writeSync(fd, '\n');
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.out = createWriteStream('', { fd, autoClose: true });
    this.out.on('error', (e) => {
      if (this.failed) return;
      this.failed = true;
      onError(e);
    });
  }

  write(w: FeatureWindow): void {
    if (this.failed || this.out.writableLength > MAX_BUFFERED_BYTES) {
      this.dropped++;
      return;
    }
    const features = Object.fromEntries(FEATURE_NAMES.map((n, k) => [n, w.values[k]]));
    const line: RecordLine = {
      type: 'window',
      feature_set: FEATURE_SET_VERSION,
      window_seconds: this.shape.windowSeconds,
      step_seconds: this.shape.stepSeconds,
      queues: this.shape.queues,
      queue: w.queue,
      start: w.start,
      end: w.end,
      packets: w.packets,
      features,
    };
    this.out.write(JSON.stringify(line) + '\n');
    this.written++;
  }

  /** The per-source behaviour since the last call (nothing when it is empty). */
  writeBehaviour(stats: EnvelopeStats, end: number): void {
    if (stats.empty) return;
    if (this.failed) {
      this.dropped++;
      return;
    }
    const line: BehaviourLine = {
      type: 'behaviour',
      feature_set: FEATURE_SET_VERSION,
      window_seconds: this.shape.windowSeconds,
      step_seconds: this.shape.stepSeconds,
      queues: this.shape.queues,
      end,
      stats: stats.toJSON(),
    };
    // Not dropped under back-pressure like windows: it is the only copy of a minute's behaviour.
    this.out.write(JSON.stringify(line) + '\n');
    this.behaviourLines++;
  }

  behaviourLines = 0;

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.out.destroyed) return resolve();
      this.out.end(() => resolve());
      this.out.once('error', () => resolve());
    });
  }
}

export interface Recording {
  windows: RecordedWindow[];
  behaviour: EnvelopeStats;
  /** Shapes of the behaviour lines, to check against the windows'. */
  behaviourShapes: { windowSeconds: number; stepSeconds: number; queues: number }[];
  /** Epoch seconds of the last step covered by behaviour lines, or null. */
  behaviourEnd: number | null;
}

/** Reads the windows of a recording (see readRecording). */
export function readFeatureRecords(file: string): RecordedWindow[] {
  return readRecording(file).windows;
}

/** Reads a recording; errors name the file, the line and what was expected. */
/**
 * Calls fn(line, lineNumber, isLast) for each line of the file, reading it a
 * megabyte at a time: a recording of weeks is larger than a string can be.
 */
export function forEachLine(file: string, fn: (line: string, n: number, last: boolean) => void): void {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(1 << 20);
    let carry = '';
    let n = 0;
    let pending: string | null = null;
    for (;;) {
      const got = readSync(fd, buf, 0, buf.length, null);
      if (got === 0) break;
      const parts = (carry + buf.toString('utf8', 0, got)).split('\n');
      carry = parts.pop() ?? '';
      for (const part of parts) {
        if (pending !== null) fn(pending, n, false);
        pending = part;
        n++;
      }
    }
    if (carry !== '') {
      if (pending !== null) fn(pending, n, false);
      pending = carry;
      n++;
    }
    if (pending !== null) fn(pending, n, true);
  } finally {
    closeSync(fd);
  }
}

/** Windows kept for training at most: a longer recording is thinned evenly in time. */
export const MAX_TRAINING_WINDOWS = 200_000;

/** Reads a recording; errors name the file, the line and what was expected. */
export function readRecording(file: string, maxWindows = MAX_TRAINING_WINDOWS): Recording {
  let windowLines = 0;
  forEachLine(file, (line) => {
    if (line.startsWith('{"type":"window"') || line.startsWith('{"feature_set"')) windowLines++;
  });
  const stride = Math.max(1, Math.ceil(windowLines / maxWindows));
  let seenWindows = 0;
  const out: RecordedWindow[] = [];
  const behaviour = new EnvelopeStats();
  const behaviourShapes: Recording['behaviourShapes'] = [];
  let behaviourEnd: number | null = null;
  forEachLine(file, (raw, k, last) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `${file}:${k}`;
    let r: Partial<RecordLine>;
    try {
      r = JSON.parse(line) as Partial<RecordLine>;
    } catch (e) {
      // The last line of a recording cut short by a crash may be partial.
      if (last) return;
      throw new Error(`${where}: not JSON (${(e as Error).message})`);
    }
    if (r.feature_set !== FEATURE_SET_VERSION) throw new Error(`${where}: at /feature_set: expected ${FEATURE_SET_VERSION} (this nfips' feature set), got ${JSON.stringify(r.feature_set)}; record again with this version`);
    const kind = (r as { type?: unknown }).type;
    if (kind === 'behaviour') {
      const b = r as unknown as Partial<BehaviourLine>;
      for (const key of ['window_seconds', 'step_seconds', 'queues', 'end'] as const) {
        if (typeof b[key] !== 'number' || !Number.isFinite(b[key])) throw new Error(`${where}: at /${key}: expected a number, got ${JSON.stringify(b[key])}`);
      }
      if (!validateStats(b.stats)) {
        const p = describeSchemaErrors(validateStats.errors ?? [], b.stats)[0];
        throw new Error(`${where}: at /stats${p?.path ?? ''}: ${p?.message ?? 'not a behaviour record'}`);
      }
      behaviour.merge(EnvelopeStats.from(b.stats as EnvelopeStatsDoc));
      behaviourShapes.push({ windowSeconds: b.window_seconds!, stepSeconds: b.step_seconds!, queues: b.queues! });
      behaviourEnd = Math.max(behaviourEnd ?? -Infinity, b.end!);
      return;
    }
    if (kind !== undefined && kind !== 'window') throw new Error(`${where}: at /type: expected "window" or "behaviour", got ${JSON.stringify(kind)}`);
    for (const key of ['window_seconds', 'step_seconds', 'queues', 'queue', 'start', 'end', 'packets'] as const) {
      if (typeof r[key] !== 'number' || !Number.isFinite(r[key])) throw new Error(`${where}: at /${key}: expected a number, got ${JSON.stringify(r[key])}`);
    }
    const f = r.features;
    if (typeof f !== 'object' || f === null) throw new Error(`${where}: at /features: expected an object of feature values`);
    const values = FEATURE_NAMES.map((n) => {
      const v = f[n];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}: at /features/${n}: expected a number, got ${JSON.stringify(v)}`);
      return v;
    });
    if (seenWindows++ % stride !== 0) return;
    out.push({ queue: r.queue!, windowSeconds: r.window_seconds!, stepSeconds: r.step_seconds!, queues: r.queues!, start: r.start!, end: r.end!, packets: r.packets!, values });
  });
  return { windows: out, behaviour, behaviourShapes, behaviourEnd };
}
