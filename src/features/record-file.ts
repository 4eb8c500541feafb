// Feature windows recorded by `nfips run --record-features FILE`, one JSON
// object per line, for `nfips train --features FILE`.
import { closeSync, createWriteStream, fstatSync, openSync, readFileSync, readSync, writeSync, WriteStream } from 'node:fs';
import { FEATURE_NAMES, FEATURE_SET_VERSION } from './feature-set';
import { FeatureWindow } from './window';

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
  ) {
    const fd = openSync(file, 'a+', 0o640);
    try {
      // A run that died mid-line left a torn last line: start on a fresh one.
      const size = fstatSync(fd).size;
      if (size > 0) {
        const last = Buffer.alloc(1);
        readSync(fd, last, 0, 1, size - 1);
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

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.out.destroyed) return resolve();
      this.out.end(() => resolve());
      this.out.once('error', () => resolve());
    });
  }
}

/** Reads a recording; errors name the file, the line and what was expected. */
export function readFeatureRecords(file: string): RecordedWindow[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  const out: RecordedWindow[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, k) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `${file}:${k + 1}`;
    let r: Partial<RecordLine>;
    try {
      r = JSON.parse(line) as Partial<RecordLine>;
    } catch (e) {
      // The last line of a recording cut short by a crash may be partial.
      if (k >= lines.length - 2) return;
      throw new Error(`${where}: not JSON (${(e as Error).message})`);
    }
    if (r.feature_set !== FEATURE_SET_VERSION) throw new Error(`${where}: at /feature_set: expected ${FEATURE_SET_VERSION} (this nfips' feature set), got ${JSON.stringify(r.feature_set)}; record again with this version`);
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
    out.push({ queue: r.queue!, windowSeconds: r.window_seconds!, stepSeconds: r.step_seconds!, queues: r.queues!, start: r.start!, end: r.end!, packets: r.packets!, values });
  });
  return out;
}
