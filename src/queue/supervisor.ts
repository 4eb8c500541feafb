// Main-thread side of the queue threads: starts one worker per queue (or per
// share of a passive capture), reads
// their counters from shared memory, swaps rules, restarts a thread that
// dies, and stops them in order.
import path from 'node:path';
import { MessageChannel, MessagePort, Worker } from 'node:worker_threads';
import { EventLog } from '../log/event-log';
import { ifindexOf } from '../rules/interfaces';
import { SharedAreaPool } from '../rules/shared-area-pool';
import { RuleSet } from '../rules/types';
import { compileRuleSet, RuleSnapshot } from '../verdict/rule-snapshot';
import { ENGINE_COUNTERS, EngineCounterName, ruleCounterBytes } from '../verdict/engine';
import { RuleEvent } from '../verdict/rule-events';
import { StepRecord } from '../features/step';
import { EngineSettings, FeatureSettings, FromQueueWorker, QueueWorkerInit, ThreadSource, ToQueueWorker } from './messages';
import { CaptureOptions, NATIVE_COUNTERS, NativeCounterName, QueueOptions } from './native';
import { captureWorkerFilters } from '../capture/split-filter';
import type { SharedFlagModel } from '../flow/flag-model';
import { flowIdBase, FlowRecord, SessionRow, sessionRowsOf, SessionsAnswer } from '../flow/flow-record';
import { MAX_SESSIONS_LIMIT, SessionSnapshot, snapshotBytes } from '../flow/session-snapshot';

const WORKER_FILE = path.join(__dirname, 'worker.js');
const RESTART_DELAY_MS = 1000;
const RESTART_MAX_DELAY_MS = 30_000;

/** Inline: one thread per NFQUEUE queue. */
export interface QueueSourceOptions {
  queues: number[];
  queue: Omit<QueueOptions, 'queue' | 'counters'>;
}

/**
 * Passive: `workers` capture threads on the same devices, each keeping a
 * symmetric share of the flows (src/capture/split-filter.ts) through its own
 * BPF filter, `(filter) and (share)` (with tagged frames on Ethernet
 * devices only). Slots are numbered 0..workers-1.
 */
export interface CaptureSourceOptions {
  capture: Omit<CaptureOptions, 'counters' | 'filterNonEthernet'> & { workers: number };
}

export type SupervisorOptions = (QueueSourceOptions | CaptureSourceOptions) & {
  engine: EngineSettings;
  /** Feature windows per queue thread, or null for none. */
  features: FeatureSettings | null;
  rules: RuleSet;
  log: EventLog;
  /** A queue thread's closed feature step (once per step). */
  onStep?: (s: StepRecord) => void;
  /** Drop/reject/alert events from a queue thread, with the rule set they refer to. */
  onRuleEvents?: (queue: number, rules: RuleSet, events: RuleEvent[]) => void;
  /** Flow records of sessions that ended on a queue thread. */
  onFlows?: (queue: number, records: FlowRecord[]) => void;
  startTimeoutMs?: number;
};

/** A reload as the queue threads took it. */
export interface RulesApplied {
  version: number;
  /** Main-thread time to resolve and compile the rule set. */
  compileMs: number;
  /** Interface names of the new set that had no index when it was compiled. */
  unresolvedInterfaces: readonly string[];
  /** Per queue thread that swapped: how long its packets waited (a thread restarted meanwhile started on the new set and has none). */
  swaps: { queue: number; ms: number }[];
}

export type QueueCounters = { queue: number } & Record<NativeCounterName | EngineCounterName, number>;

export interface RuleCounterRow {
  id: string;
  action: string;
  packets: number;
  bytes: number;
}

export interface RuleStats {
  version: number;
  file: string;
  sha256: string;
  rules: RuleCounterRow[];
  default: { action: string; packets: number; bytes: number };
}

interface Slot {
  queue: number;
  worker: Worker | null;
  counters: Float64Array;
  sab: SharedArrayBuffer;
  restarts: number;
  /** Per-rule counters of the rule set the thread runs, and its version. */
  ruleCounters: Float64Array | null;
  ruleVersion: number;
  /** Main -> thread messages; the flag tells the thread's native loop to look. */
  control: MessagePort | null;
  controlFlag: Int32Array;
}

type Listener = (m: FromQueueWorker) => void;

export class QueueSupervisor {
  readonly #opts: SupervisorOptions;
  readonly #slots: Slot[];
  /** Each slot's source, by slot number. */
  readonly #sources = new Map<number, ThreadSource>();
  readonly #listeners = new Set<Listener>();
  #rules: RuleSet;
  /** #rules compiled: what every queue thread runs, and what a restarted one starts on. */
  #compiled: RuleSnapshot;
  #rulesVersion = 0;
  #features: FeatureSettings | null;
  /** The shared memory snapshots are compiled into, reused once no thread reads it. */
  readonly #areas = new SharedAreaPool();
  /** Rule sets that queue threads may still report events for, by version. */
  #ruleSets = new Map<number, RuleSet>();
  #stopping = false;
  #sessionsAsked = 0;
  #sessionsBusy = false;

  private constructor(opts: SupervisorOptions) {
    this.#opts = opts;
    this.#rules = opts.rules;
    if ('capture' in opts) {
      const { workers, ...capture } = opts.capture;
      // Throws for a bad worker count, NFLOG devices or an offset-shifting filter split between workers.
      captureWorkerFilters(capture.devices, capture.filter, workers).forEach((filters, k) => this.#sources.set(k, { kind: 'capture', capture: { ...capture, ...filters } }));
    } else {
      for (const queue of opts.queues) this.#sources.set(queue, { kind: 'nfqueue', queue: { ...opts.queue, queue } });
    }
    this.#slots = [...this.#sources.keys()].map((queue) => {
      const sab = new SharedArrayBuffer((NATIVE_COUNTERS.length + ENGINE_COUNTERS.length) * 8);
      return { queue, worker: null, sab, counters: new Float64Array(sab), restarts: 0, ruleCounters: null, ruleVersion: -1, control: null, controlFlag: new Int32Array(new SharedArrayBuffer(4)) };
    });
    this.#compiled = this.#compile(opts.rules, 0);
    this.#features = opts.features;
    this.#ruleSets.set(0, opts.rules);
  }

  /** Binds every queue; if any fails, the others are stopped and the error thrown. */
  static async start(opts: SupervisorOptions): Promise<QueueSupervisor> {
    const sup = new QueueSupervisor(opts);
    const results = await Promise.allSettled(sup.#slots.map((s) => sup.#spawn(s)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await sup.stop();
      throw failed.reason;
    }
    return sup;
  }

  get rulesVersion(): number {
    return this.#rulesVersion;
  }

  get rules(): RuleSet {
    return this.#rules;
  }

  /** Interface names of the rules in force that had no index when they were compiled. */
  get unresolvedInterfaces(): readonly string[] {
    return this.#compiled.unresolvedInterfaces;
  }

  /** Per-rule packets and bytes summed over the queues running the current rule set. */
  ruleStats(): RuleStats {
    const rs = this.#rules;
    const n = rs.rules.length;
    const rows: RuleCounterRow[] = rs.rules.map((r) => ({ id: r.id, action: r.action, packets: 0, bytes: 0 }));
    const def = { action: rs.default, packets: 0, bytes: 0 };
    for (const s of this.#slots) {
      const c = s.ruleCounters;
      if (!c || s.ruleVersion !== this.#rulesVersion) continue;
      for (let k = 0; k < n; k++) {
        rows[k].packets += c[k];
        rows[k].bytes += c[n + k];
      }
      def.packets += c[2 * n];
      def.bytes += c[2 * n + 1];
    }
    return { version: this.#rulesVersion, file: rs.origin.file, sha256: rs.origin.sha256, rules: rows, default: def };
  }

  snapshot(): QueueCounters[] {
    return this.#slots.map((s) => {
      const out = { queue: s.queue } as QueueCounters;
      NATIVE_COUNTERS.forEach((name, k) => (out[name] = s.counters[k]));
      ENGINE_COUNTERS.forEach((name, k) => (out[name] = s.counters[NATIVE_COUNTERS.length + k]));
      return out;
    });
  }

  /** A new TCP flag-sequence model for every queue thread (and for threads started later). */
  setFlags(flags: SharedFlagModel | null): void {
    if (this.#features) this.#features = { ...this.#features, flags };
    for (const s of this.#slots) if (s.worker) this.#send(s, { type: 'flags', flags });
  }

  /**
   * Compiles into an area no thread can be reading. A live thread's
   * ruleVersion is the last version it acknowledged ('ready' or
   * 'rules-applied', posted after its engine swapped): it never reads an
   * older snapshot again, so every area below the lowest of them, and below
   * the set in force, is free to rewrite. A thread still starting counts
   * with the version its slot last reported (-1 at first), which holds more
   * areas, never fewer.
   */
  #compile(rules: RuleSet, version: number): RuleSnapshot {
    let oldestRead = version === 0 ? -1 : this.#rulesVersion;
    for (const s of this.#slots) if (s.worker) oldestRead = Math.min(oldestRead, s.ruleVersion);
    return compileRuleSet(rules, { ifindex: ifindexOf, malformed: this.#opts.engine.malformed, area: (bytes) => this.#areas.take(bytes, version, oldestRead) });
  }

  /**
   * Compiles a validated rule set once, hands the result to every queue
   * thread and waits until all use it. A compile error leaves the old set in force.
   */
  async setRules(rules: RuleSet, timeoutMs = 5000): Promise<RulesApplied> {
    const compiled = this.#compile(rules, this.#rulesVersion + 1);
    this.#rules = rules;
    this.#compiled = compiled;
    const version = ++this.#rulesVersion;
    this.#ruleSets.set(version, rules);
    for (const v of this.#ruleSets.keys()) if (v < version - 1) this.#ruleSets.delete(v);
    // A thread restarted meanwhile starts on the new set: its ready counts too.
    const applied = (m: FromQueueWorker) => (m.type === 'rules-applied' && m.version === version) || (m.type === 'ready' && m.rulesVersion === version);
    const pending = this.#slots.filter((s) => s.worker).map((s) => this.#await(s.queue, applied, timeoutMs));
    for (const s of this.#slots) if (s.worker) this.#send(s, { type: 'rules', rules: compiled, version, ruleCounters: new SharedArrayBuffer(ruleCounterBytes(compiled.ruleCount)) });
    const answers = await Promise.all(pending);
    const swaps = answers.flatMap((m) => (m.type === 'rules-applied' ? [{ queue: m.queue, ms: m.swapMs }] : []));
    return { version, compileMs: compiled.compileMs, unresolvedInterfaces: compiled.unresolvedInterfaces, swaps };
  }

  /**
   * Live sessions of every queue thread, at most `limit` rows in all. Each
   * thread copies at most `limit` sessions' numbers between two batches;
   * the rows are made here. One request at a time: the packets of a queue
   * wait while it copies, and a client must not make them wait back to back.
   */
  async sessions(limit: number, timeoutMs = 5000): Promise<SessionsAnswer> {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SESSIONS_LIMIT) throw new Error(`sessions: limit must be an integer from 1 to ${MAX_SESSIONS_LIMIT} (--limit), not ${JSON.stringify(limit)}`);
    if (this.#sessionsBusy) throw new Error('sessions: another "nfips sessions" is still being answered; try again when it is done');
    this.#sessionsBusy = true;
    try {
      const id = ++this.#sessionsAsked;
      const live = this.#slots.filter((s) => s.worker);
      const answers = live.map((s) => this.#await(s.queue, (m) => m.type === 'sessions' && m.id === id, timeoutMs));
      for (const s of live) {
        const buffer = new ArrayBuffer(snapshotBytes(limit));
        this.#send(s, { type: 'sessions', id, limit, buffer }, [buffer]);
      }
      const got = await Promise.all(answers);
      let total = 0;
      const rows: SessionRow[] = [];
      for (const m of got) {
        if (m.type !== 'sessions') continue;
        total += m.total;
        const take = Math.min(m.copied, limit - rows.length);
        if (take > 0) rows.push(...sessionRowsOf(new SessionSnapshot(m.buffer, m.limit), take, m.queue));
      }
      return { total, limit, rows };
    } finally {
      this.#sessionsBusy = false;
    }
  }

  async stop(timeoutMs = 5000): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      this.#slots.map(async (s) => {
        const w = s.worker;
        if (!w) return;
        const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
        this.#send(s, { type: 'stop' });
        const timer = setTimeout(() => {
          this.#opts.log.event('queue_stop_timeout', { queue: s.queue }, 'warn');
          void w.terminate();
        }, timeoutMs);
        await exited;
        clearTimeout(timer);
        s.worker = null;
      }),
    );
  }

  #send(slot: Slot, m: ToQueueWorker, transfer?: ArrayBuffer[]): void {
    slot.control?.postMessage(m, transfer);
    Atomics.store(slot.controlFlag, 0, 1);
  }

  #await(queue: number, pred: (m: FromQueueWorker) => boolean, timeoutMs: number): Promise<FromQueueWorker> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(fn);
        reject(new Error(`queue ${queue}: no answer from its thread within ${timeoutMs} ms`));
      }, timeoutMs);
      const fn: Listener = (m) => {
        if (m.queue !== queue || !pred(m)) return;
        clearTimeout(timer);
        this.#listeners.delete(fn);
        resolve(m);
      };
      this.#listeners.add(fn);
    });
  }

  /** Retries with backoff until the queue is bound again or nfips stops. */
  #restart(slot: Slot, attempt: number): void {
    const delay = Math.min(RESTART_DELAY_MS * 2 ** attempt, RESTART_MAX_DELAY_MS);
    setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn(slot).catch((e: Error) => {
        this.#opts.log.event('queue_error', { queue: slot.queue, error: e.message, restart_attempt: attempt + 1 }, 'error');
        this.#restart(slot, attempt + 1);
      });
    }, delay);
  }

  #spawn(slot: Slot): Promise<void> {
    const o = this.#opts;
    const channel = new MessageChannel();
    slot.control?.close();
    slot.control = channel.port1;
    Atomics.store(slot.controlFlag, 0, 0);
    const source = this.#sources.get(slot.queue)!;
    const init: QueueWorkerInit = {
      slot: slot.queue,
      source,
      rules: this.#compiled,
      rulesVersion: this.#rulesVersion,
      engine: o.engine,
      features: this.#features,
      counters: slot.sab,
      controlFlag: slot.controlFlag.buffer as SharedArrayBuffer,
      control: channel.port2,
      flowIdBase: flowIdBase(slot.queue),
    };
    const worker = new Worker(WORKER_FILE, { workerData: init, transferList: [channel.port2], name: `nfips-${source.kind === 'nfqueue' ? 'queue' : 'capture'}-${slot.queue}` });
    slot.worker = worker;
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (m: FromQueueWorker) => {
        if (m.type === 'ready' || m.type === 'rules-applied') {
          slot.ruleCounters = new Float64Array(m.ruleCounters);
          slot.ruleVersion = m.type === 'ready' ? m.rulesVersion : m.version;
        }
        if (m.type === 'step') {
          o.onStep?.(m.step);
          return;
        }
        if (m.type === 'flows') {
          o.onFlows?.(m.queue, m.records);
          return;
        }
        if (m.type === 'rule-events') {
          const rs = this.#ruleSets.get(m.version);
          if (rs) o.onRuleEvents?.(m.queue, rs, m.events);
        } else if (m.type === 'ready') {
          ready = true;
          for (const w of m.warnings) o.log.event('queue_warning', { queue: m.queue, warning: w }, 'warn');
          resolve();
        } else if (m.type === 'error') {
          if (m.fatal && !ready) reject(new Error(m.message));
          else o.log.event('queue_error', { queue: m.queue, error: m.message, suppressed: m.suppressed }, 'error');
        }
        for (const l of this.#listeners) l(m);
      });
      worker.on('error', (err) => {
        if (!ready) reject(err);
        else o.log.event('queue_error', { queue: slot.queue, error: err.stack ?? err.message }, 'error');
      });
      worker.on('exit', (code) => {
        if (slot.worker === worker) slot.worker = null;
        if (!ready) {
          reject(new Error(source.kind === 'nfqueue' ? `queue ${slot.queue}: thread exited (code ${code}) before binding the queue` : `capture ${slot.queue}: thread exited (code ${code}) before opening its devices`));
          return;
        }
        if (this.#stopping) return;
        // The kernel unbound the queue with the thread; --queue-bypass (or
        // fail-closed dropping) covers the gap until the restart binds again.
        slot.restarts++;
        o.log.event('queue_restart', { queue: slot.queue, exit_code: code, restarts: slot.restarts }, 'error');
        this.#restart(slot, 0);
      });
    });
  }
}
