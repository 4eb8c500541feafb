// Site learning (`nfips run --learn 24h`): for the given time nfips enforces
// the rules and only alerts, while it records this site's own feature
// windows and per-source behaviour under <state-dir>/learning/. When enough
// has been recorded, a site model is trained (on a worker thread, so the
// main thread keeps serving), written atomically to <state-dir>/model.json,
// and from then on nfips runs in the configured mode with it. A restart
// during learning resumes from the recording: what it holds counts.
import { existsSync, mkdirSync } from 'node:fs';
import { checkAppendable, readFileBounded } from '../config/safe-file';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describeSchemaErrors, JsonFileError, parseJsonBounded, strictAjv, writeFileAtomic } from '../config/json-file';
import { formatDuration } from '../config/duration';
import { EventLog } from '../log/event-log';
import { loadModel, Model, saveModel } from './model';
import { TrainSummary } from './train';
import { forEachLine } from './record-file';
import type { TrainJob, TrainReply } from './train-worker';

export const LEARNING_FORMAT = 'nfips-learning';
export const LEARNING_VERSION = 1;
/** The learning state is a few hundred bytes; anything near this is not ours. */
const MAX_LEARNING_STATE_BYTES = 1 << 20;

export interface LearningFiles {
  dir: string;
  /** Windows and behaviour, appended as they come (see record-file.ts). */
  recording: string;
  /** learning.json: what is being learnt, and whether it is done. */
  state: string;
  /** The learnt model. */
  model: string;
}

export function learningFiles(stateDir: string): LearningFiles {
  const dir = path.join(stateDir, 'learning');
  return { dir, recording: path.join(dir, 'recording.jsonl'), state: path.join(dir, 'learning.json'), model: path.join(stateDir, 'model.json') };
}

interface LearningDoc {
  format: typeof LEARNING_FORMAT;
  version: typeof LEARNING_VERSION;
  started_at: string;
  duration_s: number;
  window_seconds: number;
  step_seconds: number;
  queues: number;
  status: 'learning' | 'done';
  finished_at?: string;
}

const isoDate = { type: 'string', format: 'nfips-iso-date' } as const;
const validate = strictAjv().compile({
  type: 'object',
  additionalProperties: false,
  required: ['format', 'version', 'started_at', 'duration_s', 'window_seconds', 'step_seconds', 'queues', 'status'],
  properties: {
    format: { enum: [LEARNING_FORMAT] },
    version: { enum: [LEARNING_VERSION] },
    started_at: isoDate,
    duration_s: { type: 'number', exclusiveMinimum: 0 },
    window_seconds: { type: 'integer', minimum: 1 },
    step_seconds: { type: 'integer', minimum: 1 },
    queues: { type: 'integer', minimum: 1 },
    status: { enum: ['learning', 'done'] },
    finished_at: isoDate,
  },
});

export interface LearningPlan {
  files: LearningFiles;
  durationSeconds: number;
  windowSeconds: number;
  stepSeconds: number;
  queues: number;
  startedAt: string;
  /** Seconds of traffic the recording already holds (a restart resumes from there). */
  learntSeconds: number;
  resumed: boolean;
  /** Learning finished before this start: the model it produced. */
  done: { model: Model; finishedAt: string } | null;
}

/** Seconds of steps covered by the behaviour lines of a recording (without parsing its windows). */
export function recordedSeconds(recording: string): number {
  if (!existsSync(recording)) return 0;
  let seconds = 0;
  forEachLine(recording, (line) => {
    if (!line.startsWith('{"type":"behaviour"')) return;
    try {
      const r = JSON.parse(line) as { step_seconds: number; stats: { steps: number } };
      seconds += r.stats.steps * r.step_seconds;
    } catch {
      // a line torn by a crash
    }
  });
  return seconds;
}

/**
 * Checked before anything is installed: the state directory must take the
 * learning files, and a learning already under way must be the same one.
 * Throws with the file and what to do.
 */
export function prepareLearning(o: { stateDir: string; learnSeconds: number; windowSeconds: number; stepSeconds: number; queues: number; now?: Date }): LearningPlan {
  const files = learningFiles(o.stateDir);
  try {
    mkdirSync(files.dir, { recursive: true, mode: 0o750 });
    checkAppendable(files.recording, 'the --learn recording', { mode: 0o640 });
  } catch (e) {
    throw new Error(`invalid --state-dir ${o.stateDir}: cannot keep the --learn recording there (${(e as Error).message})`);
  }
  const plan: LearningPlan = {
    files,
    durationSeconds: o.learnSeconds,
    windowSeconds: o.windowSeconds,
    stepSeconds: o.stepSeconds,
    queues: o.queues,
    startedAt: (o.now ?? new Date()).toISOString(),
    learntSeconds: 0,
    resumed: false,
    done: null,
  };
  if (existsSync(files.state)) {
    const fresh = `remove ${files.dir} to learn from scratch`;
    let text: string;
    try {
      // nfips writes it: a link there is not ours.
      text = readFileBounded(files.state, 'learning state', { maxBytes: MAX_LEARNING_STATE_BYTES, noFollow: true });
    } catch (e) {
      throw new JsonFileError('learning state', files.state, [{ path: '', message: `cannot read file: ${(e as Error).message}` }], fresh);
    }
    const parsed = parseJsonBounded(text);
    if ('problem' in parsed) throw new JsonFileError('learning state', files.state, [parsed.problem], fresh);
    const doc = parsed.doc;
    if (!validate(doc)) throw new JsonFileError('learning state', files.state, describeSchemaErrors(validate.errors ?? [], doc), fresh);
    const s = doc as LearningDoc;
    if (s.window_seconds !== o.windowSeconds || s.step_seconds !== o.stepSeconds || s.queues !== o.queues) {
      throw new Error(
        `${files.state}: the learning under way records ${s.window_seconds} s windows, ${s.step_seconds} s steps on ${s.queues} queue(s); ` +
          `this run has ${o.windowSeconds} s, ${o.stepSeconds} s on ${o.queues}: run with the same settings, or remove ${files.dir} to learn from scratch`,
      );
    }
    plan.startedAt = s.started_at;
    if (s.status === 'done') {
      if (!existsSync(files.model)) throw new Error(`${files.state}: learning finished at ${s.finished_at ?? '?'} but its model ${files.model} is gone; remove ${files.dir} to learn again`);
      plan.done = { model: loadModel(files.model), finishedAt: s.finished_at ?? s.started_at };
      return plan;
    }
    plan.resumed = true;
    plan.learntSeconds = recordedSeconds(files.recording);
  }
  writeState(plan, 'learning');
  return plan;
}

function writeState(plan: LearningPlan, status: 'learning' | 'done', finishedAt?: string): void {
  const doc: LearningDoc = {
    format: LEARNING_FORMAT,
    version: LEARNING_VERSION,
    started_at: plan.startedAt,
    duration_s: plan.durationSeconds,
    window_seconds: plan.windowSeconds,
    step_seconds: plan.stepSeconds,
    queues: plan.queues,
    status,
    ...(finishedAt ? { finished_at: finishedAt } : {}),
  };
  writeFileAtomic(plan.files.state, `${JSON.stringify(doc, null, 2)}\n`, 0o640);
}

export type LearningStatus = {
  state: 'learning' | 'training' | 'done' | 'failed';
  started_at: string;
  learnt_s: number;
  duration_s: number;
  percent: number;
  recording: string;
  model: string;
  training?: { phase: string; done: number; total: number };
  error?: string;
  finished_at?: string;
};

/** After a failed training, learning goes on and training is tried again after this share of the duration more. */
const RETRY_SHARE = 0.25;

export class LearningController {
  #learnt: number;
  #state: LearningStatus['state'] = 'learning';
  #training: LearningStatus['training'];
  #error: string | undefined;
  #finishedAt: string | undefined;
  #nextTry: number;
  #worker: Worker | null = null;
  #closed = false;

  constructor(
    private readonly plan: LearningPlan,
    private readonly log: Pick<EventLog, 'event'>,
    private readonly o: { command: string; onModel: (m: Model, summary: TrainSummary) => void },
  ) {
    this.#learnt = plan.learntSeconds;
    this.#nextTry = plan.durationSeconds;
    if (plan.done) {
      this.#state = 'done';
      this.#finishedAt = plan.done.finishedAt;
    }
  }

  get learning(): boolean {
    return this.#state === 'learning' || this.#state === 'training' || this.#state === 'failed';
  }

  /** The recording took behaviour covering this many steps more. */
  progress(steps: number): void {
    if (this.#state === 'done' || this.#closed) return;
    this.#learnt += steps * this.plan.stepSeconds;
    if (this.#state !== 'training' && this.#learnt >= this.#nextTry) this.#train();
  }

  status(): LearningStatus {
    const p = this.plan;
    return {
      state: this.#state,
      started_at: p.startedAt,
      learnt_s: Math.round(this.#learnt),
      duration_s: p.durationSeconds,
      percent: Math.min(100, Math.round((this.#learnt / p.durationSeconds) * 1000) / 10),
      recording: p.files.recording,
      model: p.files.model,
      ...(this.#training ? { training: this.#training } : {}),
      ...(this.#error ? { error: this.#error } : {}),
      ...(this.#finishedAt ? { finished_at: this.#finishedAt } : {}),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#worker?.terminate();
    this.#worker = null;
  }

  #train(): void {
    const p = this.plan;
    this.#state = 'training';
    this.#training = { phase: 'reading the recording', done: 0, total: 1 };
    this.log.event('model_training', { learnt_s: Math.round(this.#learnt), recording: p.files.recording });
    const job: TrainJob = {
      recording: p.files.recording,
      windowSeconds: p.windowSeconds,
      stepSeconds: p.stepSeconds,
      queues: p.queues,
      source: `this site's traffic learnt by nfips run --learn ${formatDuration(p.durationSeconds)} from ${p.startedAt} (${p.files.recording})`,
      command: this.o.command,
    };
    const w = new Worker(path.join(__dirname, 'train-worker.js'), { workerData: job, name: 'nfips-learn' });
    this.#worker = w;
    let settled = false;
    const fail = (message: string) => {
      if (settled || this.#closed) return;
      settled = true;
      this.#worker = null;
      this.#state = 'failed';
      this.#error = message;
      this.#training = undefined;
      this.#nextTry = this.#learnt + RETRY_SHARE * p.durationSeconds;
      this.log.event('model_learn_failed', { error: message, learnt_s: Math.round(this.#learnt), hint: `learning goes on; training is tried again after ${formatDuration(this.#nextTry)} of recorded traffic` }, 'error');
    };
    w.on('message', (m: TrainReply) => {
      if (m.type === 'progress') this.#training = { phase: m.phase, done: m.done, total: m.total };
      else if (m.type === 'error') fail(m.message);
      else {
        settled = true;
        this.#worker = null;
        void w.terminate();
        try {
          saveModel(p.files.model, m.model);
          this.#finishedAt = new Date().toISOString();
          writeState(p, 'done', this.#finishedAt);
        } catch (e) {
          settled = false;
          fail(`cannot write the learnt model: ${(e as Error).message}`);
          return;
        }
        this.#state = 'done';
        this.#training = undefined;
        this.#error = undefined;
        this.log.event('model_learnt', {
          model: p.files.model,
          learnt_s: Math.round(this.#learnt),
          windows: m.summary.windows,
          k: m.summary.k,
          threshold: m.summary.threshold,
          held_out_false_alarm_rate: m.summary.heldOutFalseAlarmRate,
          sources: { source_steps: m.summary.sources.sourceSteps, services: Object.keys(m.summary.sources.services), measures: m.summary.sources.measures },
          flags: m.summary.flags,
        });
        this.o.onModel(m.model, m.summary);
      }
    });
    w.on('error', (e) => fail(e.message));
    w.on('exit', (code) => {
      if (!settled && !this.#closed) fail(`the training thread exited (code ${code})`);
    });
  }
}
