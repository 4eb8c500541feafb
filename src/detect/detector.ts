// Main-thread side of detection. The queue threads' closed steps feed two
// detectors:
//   - per source (source-tracker, source-judge): each source's own evidence
//     (failed attempts, unanswered datagrams, echo requests, improbable flag
//     sequences, stalled sessions, distinct failed destinations, bursts of
//     sessions to one service) against what single sources do in normal
//     traffic. Only this blocks.
//   - per traffic window (judge): the window's feature vector scored on a
//     piscina pool against the one-class model; alerts only. A queue whose
//     previous window is still being scored has the new one skipped and
//     counted (the 2columnS policy), so a flood never piles up work.
// When recording (or learning), windows and the per-source behaviour go to
// the recording.
import path from 'node:path';
import { Piscina } from 'piscina';
import { FeatureRecorder } from './record-file';
import { StepRecord } from '../features/step';
import { FeatureWindow, WindowRing } from '../features/window';
import { EventLog } from '../log/event-log';
import { EnvelopeStats, Thresholds } from './envelope';
import { WindowJudge } from './judge';
import { Model } from './model';
import { ScoreResult } from './score';
import { ScoreTask, ScoreWorkerData } from './score-worker';
import { EpisodeIds, RespondToSource, SourceJudge, SourceJudgeCounts } from './source-judge';
import { SourceTracker } from './source-tracker';
import { Suppressions } from './suppress';

export interface DetectorOptions {
  /** null: only record (e.g. to train the first model). */
  model: Model | null;
  threads: number;
  log: Pick<EventLog, 'event'>;
  /** Quiet windows that close a traffic episode. */
  quietWindows?: number;
  recordFile?: string;
  /** How errors name the recording (default --record-features). */
  recordLabel?: string;
  /** The windows' length and step, and the run's queue count, written into the recording. */
  windowSeconds: number;
  stepSeconds: number;
  queues: number;
  /** Prevent mode: acts on per-source findings. */
  respond?: RespondToSource;
  /** Anomalies that neither alert nor block (--suppress); kept across model changes. */
  suppress?: Suppressions;
  /** Collects the per-source behaviour into this, besides any recording. */
  collect?: EnvelopeStats;
  /** How often the behaviour goes to the recording (default 60 s of steps). */
  behaviourEverySeconds?: number;
  /** After behaviour covering `steps` steps went to the recording (learning progress). */
  onBehaviour?: (steps: number) => void;
  /** The pool's worker module, default score-worker.js (tests wrap it to inject faults). */
  scoreWorker?: ScoreWorkerModule;
}

/** A piscina worker module that scores like score-worker.ts; `data` is added to its workerData. */
export interface ScoreWorkerModule {
  filename: string;
  data?: Record<string, unknown>;
}

export interface DetectorQueueStats {
  windows: number;
  scored: number;
  /** Windows dropped because the queue's previous window was still being scored. */
  skipped: number;
  /** Windows not comparable to what the model learnt (too few packets, or shorter than a full window after start): not scored. */
  thin: number;
  anomalous: number;
  /** Anomalous windows the per-source findings already explained (no traffic alert). */
  explained: number;
  /** Anomalous windows whose alert was on the suppression list. */
  suppressed: number;
  alerts: number;
  errors: number;
  last_score: number | null;
  /** From the queue thread: packets stamped a little before their step, and clock steps back that restarted the window. */
  late_stamps: number;
  clock_resets: number;
}

export interface DetectorStats {
  queues: Record<number, DetectorQueueStats>;
  sources: SourceJudgeCounts & { tracked: number; evicted: number; crowd: number; clock_jumps: number };
  traffic_episode_open: boolean;
}

interface QueueState {
  busy: boolean;
  stats: DetectorQueueStats;
}

/** Behaviour is written to the recording once a minute of steps. */
const BEHAVIOUR_EVERY_SECONDS = 60;

export class Detector {
  readonly #opts: DetectorOptions;
  #pool: Piscina<ScoreTask, ScoreResult> | null = null;
  #model: Model | null = null;
  readonly #queues = new Map<number, QueueState>();
  readonly #rings = new Map<number, WindowRing>();
  #recorder: FeatureRecorder | null;
  #judge: WindowJudge | null = null;
  #sources: SourceJudge | null = null;
  readonly #tracker: SourceTracker;
  readonly #ids = new EpisodeIds();
  /** The recording's behaviour since its last line. */
  #pending: EnvelopeStats | null;
  #lastWritten = -1;
  #lastFinding = -Infinity;
  #closed = false;

  constructor(opts: DetectorOptions) {
    this.#opts = opts;
    this.#recorder = opts.recordFile ? new FeatureRecorder(opts.recordFile, opts, (e) =>
          opts.log.event('record_features_failed', { file: opts.recordFile, error: e.message, hint: 'recording stopped; detection goes on' }, 'error'),
        opts.recordLabel) : null;
    this.#pending = this.#recorder || opts.collect ? new EnvelopeStats() : null;
    this.#tracker = new SourceTracker({
      windowSeconds: opts.windowSeconds,
      stepSeconds: opts.stepSeconds,
      thresholds: null,
      stats: this.#pending,
      onFinding: (f) => {
        this.#lastFinding = Math.max(this.#lastFinding, f.step);
        this.#sources?.onFinding(f);
      },
      onAggregate: (a) => {
        if (a.distributed) this.#lastFinding = Math.max(this.#lastFinding, a.step);
        this.#sources?.onAggregate(a);
      },
      onStepFinal: (k) => this.#stepFinal(k),
    });
    if (opts.model) this.#install(opts.model, opts.respond);
  }

  /**
   * Judges with another model from now on (a model learnt on this site):
   * new thresholds, a new scoring pool; windows and per-source history carry
   * over. respond: what prevent mode does with findings (undefined: alerts only).
   */
  async useModel(model: Model, respond: RespondToSource | undefined): Promise<void> {
    const old = this.#pool;
    this.#install(model, respond);
    await old?.destroy();
  }

  /** Ends the recording (learning is over). */
  async stopRecording(): Promise<void> {
    this.#writeBehaviour(Infinity);
    const r = this.#recorder;
    this.#recorder = null;
    if (!this.#opts.collect) {
      this.#pending = null;
      this.#tracker.setStats(null);
    }
    await r?.close();
  }

  #install(model: Model, respond: RespondToSource | undefined): void {
    const opts = this.#opts;
    const emit = (type: string, fields: Record<string, unknown>, level?: 'error' | 'warn' | 'info' | 'debug') => opts.log.event(type, fields, level);
    this.#model = model;
    this.#sources = new SourceJudge(emit, opts.stepSeconds, this.#ids, respond, undefined, opts.suppress);
    this.#tracker.setThresholds(new Thresholds(model.sources));
    const windowSteps = opts.windowSeconds / opts.stepSeconds;
    this.#judge = new WindowJudge(
      {
        threshold: model.threshold,
        quietWindows: opts.quietWindows,
        queues: opts.queues,
        ids: this.#ids,
        suppress: opts.suppress,
        // A finding within the last window explains the window (it still holds the attack).
        explained: (end) => end / opts.stepSeconds - 1 - this.#lastFinding <= windowSteps,
      },
      emit,
    );
    const workerData: ScoreWorkerData = { ...opts.scoreWorker?.data, model };
    const pool = new Piscina<ScoreTask, ScoreResult>({
      filename: opts.scoreWorker?.filename ?? path.join(__dirname, 'score-worker.js'),
      workerData,
      minThreads: opts.threads,
      maxThreads: opts.threads,
      idleTimeout: Infinity,
    });
    pool.on('error', (e: Error) => opts.log.event('classifier_error', { error: e.message }, 'error'));
    this.#pool = pool;
  }

  /** A closed step from a queue thread: judged per source, then summed into that queue's window, off the verdict path. */
  onStep(s: StepRecord): void {
    if (this.#closed) return;
    // Per source first: a finding made now explains a traffic anomaly of the same step.
    this.#tracker.add(s);
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
    if (!comparable(w, model)) {
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
  recording(): { written: number; dropped: number; behaviour_lines: number } | null {
    return this.#recorder ? { written: this.#recorder.written, dropped: this.#recorder.dropped, behaviour_lines: this.#recorder.behaviourLines } : null;
  }

  stats(): DetectorStats {
    const queues = Object.fromEntries(
      [...this.#queues].map(([k, q]) => {
        const c = this.#judge?.counts.get(k);
        return [k, { ...q.stats, anomalous: c?.anomalous ?? 0, explained: c?.explained ?? 0, suppressed: c?.suppressed ?? 0, alerts: c?.alerts ?? 0 }];
      }),
    );
    const s = this.#sources?.counts ?? { findings: 0, alerts: 0, episodes: 0, open: 0, distributed_alerts: 0, suppressed: 0 };
    const t = this.#tracker;
    return { queues, sources: { ...s, tracked: t.size, evicted: t.evicted, crowd: t.crowd, clock_jumps: t.clockJumps }, traffic_episode_open: this.#judge?.episodeOpen ?? false };
  }

  /** Per-queue stats only (the shape `stats` events carry per queue). */
  queueStats(): Record<number, DetectorQueueStats> {
    return this.stats().queues;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#tracker.flush();
    this.#writeBehaviour(Infinity);
    await this.#pool?.destroy();
    await this.#recorder?.close();
  }

  #stepFinal(k: number): void {
    this.#sources?.onStepFinal(k);
    if (this.#lastWritten < 0) this.#lastWritten = k;
    if ((k - this.#lastWritten) * this.#opts.stepSeconds >= (this.#opts.behaviourEverySeconds ?? BEHAVIOUR_EVERY_SECONDS)) this.#writeBehaviour(k);
  }

  /** Hands the behaviour collected since the last time to the recording and to `collect`. */
  #writeBehaviour(k: number): void {
    const p = this.#pending;
    if (!p) return;
    if (p.empty && p.sessions === 0) return;
    this.#opts.collect?.merge(p);
    if (this.#recorder) this.#recorder.writeBehaviour(p, Number.isFinite(k) ? (k + 1) * this.#opts.stepSeconds : Date.now() / 1000);
    this.#pending = new EnvelopeStats();
    this.#tracker.setStats(this.#pending);
    if (Number.isFinite(k)) this.#lastWritten = k;
    if (this.#recorder) this.#opts.onBehaviour?.(p.steps);
  }

  #queue(queue: number): QueueState {
    let q = this.#queues.get(queue);
    if (!q) {
      q = {
        busy: false,
        stats: { windows: 0, scored: 0, skipped: 0, thin: 0, anomalous: 0, explained: 0, suppressed: 0, alerts: 0, errors: 0, last_score: null, late_stamps: 0, clock_resets: 0 },
      };
      this.#queues.set(queue, q);
    }
    return q;
  }
}

/**
 * Which windows the traffic classifier judges: enough packets (as in
 * training), and a full window. Right after start a window covers a few
 * seconds only; its rates and shares are not what a 60 s window of the
 * same traffic looks like, so it is not compared.
 */
export function comparable(w: { start: number; end: number; packets: number }, m: { minPackets: number; windowSeconds: number; stepSeconds: number }): boolean {
  return w.packets >= m.minPackets && w.end - w.start >= m.windowSeconds;
}
