// Main-thread side of anomaly detection: takes the queue threads' windows,
// scores them on a piscina pool, and turns scores into episodes and alerts.
// A queue whose previous window is still being scored has the new one
// skipped and counted (the 2columnS policy), so a flood never piles up work.
import path from 'node:path';
import { Piscina } from 'piscina';
import { FeatureRecorder } from '../features/record-file';
import { FeatureWindow, StepRecord, WindowRing } from '../features/window';
import { EventLog } from '../log/event-log';
import { Respond, WindowJudge } from './judge';
import { isScoreable } from './scoreable';
import { Model } from './model';
import { ScoreResult } from './score';
import { ScoreTask, ScoreWorkerData } from './score-worker';

export interface DetectorOptions {
  /** null: only record windows (e.g. to train the first model). */
  model: Model | null;
  threads: number;
  log: EventLog;
  /** Quiet windows that close an episode. */
  quietWindows?: number;
  recordFile?: string;
  /** The windows' length and step, and the run's queue count, written into the recording. */
  windowSeconds: number;
  stepSeconds: number;
  queues: number;
  /** Prevent mode: turns anomalous windows into blocks. */
  respond?: Respond;
}

export interface DetectorQueueStats {
  windows: number;
  scored: number;
  /** Windows dropped because the queue's previous window was still being scored. */
  skipped: number;
  /** Windows under the model's minimum packet count: not scored. */
  thin: number;
  anomalous: number;
  alerts: number;
  errors: number;
  episode_open: boolean;
  last_score: number | null;
  /** From the queue thread: packets stamped a little before their step, and clock steps back that restarted the window. */
  late_stamps: number;
  clock_resets: number;
}

interface QueueState {
  busy: boolean;
  stats: DetectorQueueStats;
}

export class Detector {
  readonly #opts: DetectorOptions;
  readonly #pool: Piscina<ScoreTask, ScoreResult> | null;
  readonly #model: Model | null;
  readonly #queues = new Map<number, QueueState>();
  readonly #rings = new Map<number, WindowRing>();
  readonly #recorder: FeatureRecorder | null;
  readonly #judge: WindowJudge | null;
  #closed = false;

  constructor(opts: DetectorOptions) {
    this.#opts = opts;
    this.#model = opts.model;
    this.#recorder = opts.recordFile ? new FeatureRecorder(opts.recordFile, opts, (e) =>
          opts.log.event('record_features_failed', { file: opts.recordFile, error: e.message, hint: 'recording stopped; detection goes on' }, 'error'),
        ) : null;
    if (!opts.model) {
      this.#pool = null;
      this.#judge = null;
      return;
    }
    this.#judge = new WindowJudge(opts.model.threshold, (type, fields, level) => opts.log.event(type, fields, level), opts.quietWindows, opts.respond);
    const workerData: ScoreWorkerData = { model: opts.model };
    this.#pool = new Piscina<ScoreTask, ScoreResult>({
      filename: path.join(__dirname, 'score-worker.js'),
      workerData,
      minThreads: opts.threads,
      maxThreads: opts.threads,
      idleTimeout: Infinity,
    });
    this.#pool.on('error', (e: Error) => this.#opts.log.event('classifier_error', { error: e.message }, 'error'));
  }

  /** A closed step from a queue thread: summed here, off the verdict path, into that queue's window. */
  onStep(s: StepRecord): void {
    let ring = this.#rings.get(s.queue);
    if (!ring) {
      ring = new WindowRing(this.#opts, (w) => this.onWindow(w));
      this.#rings.set(s.queue, ring);
    }
    const q = this.#queue(s.queue);
    q.stats.late_stamps = s.lateStamps;
    q.stats.clock_resets = s.clockResets;
    ring.add(s);
  }

  onWindow(w: FeatureWindow): void {
    if (this.#closed) return;
    this.#recorder?.write(w);
    const q = this.#queue(w.queue);
    q.stats.windows++;
    const pool = this.#pool;
    const model = this.#model;
    const judge = this.#judge;
    if (!pool || !model || !judge) return;
    if (!isScoreable(w, model)) {
      // Judged as quiet, but not past a window still being scored.
      if (q.busy) {
        q.stats.skipped++;
        return;
      }
      q.stats.thin++;
      judge.judge(w, null);
      return;
    }
    if (q.busy) {
      q.stats.skipped++;
      return;
    }
    q.busy = true;
    pool
      .run({ values: w.values })
      .then(
        (r) => {
          q.stats.scored++;
          q.stats.last_score = Math.round(r.score * 1000) / 1000;
          if (!this.#closed) judge.judge(w, r);
        },
        (e: Error) => {
          q.stats.errors++;
          if (!this.#closed) this.#opts.log.event('classifier_error', { queue: w.queue, error: e.message }, 'error');
        },
      )
      .finally(() => (q.busy = false));
  }

  /** Windows written to and dropped from --record-features. */
  recording(): { written: number; dropped: number } | null {
    return this.#recorder ? { written: this.#recorder.written, dropped: this.#recorder.dropped } : null;
  }

  stats(): Record<number, DetectorQueueStats> {
    return Object.fromEntries(
      [...this.#queues].map(([k, q]) => {
        const c = this.#judge?.counts.get(k);
        return [k, { ...q.stats, anomalous: c?.anomalous ?? 0, alerts: c?.alerts ?? 0, episode_open: this.#judge?.episodeOpen(k) ?? false }];
      }),
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool?.destroy();
    await this.#recorder?.close();
  }

  #queue(queue: number): QueueState {
    let q = this.#queues.get(queue);
    if (!q) {
      q = {
        busy: false,
        stats: { windows: 0, scored: 0, skipped: 0, thin: 0, anomalous: 0, alerts: 0, errors: 0, episode_open: false, last_score: null, late_stamps: 0, clock_resets: 0 },
      };
      this.#queues.set(queue, q);
    }
    return q;
  }
}
