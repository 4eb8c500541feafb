// One batch through nfips, in two stages, for the queue thread, the warm-up
// and the offline path alike:
//   decide:          decode, lockdown, rules, default -> the verdict column;
//   (the caller sends the verdicts: the native loop, or nobody offline)
//   afterVerdicts:   what must not delay them: rule events become objects,
//                    accepted packets enter the session table, the batch is
//                    counted into the feature windows, sessions that ended
//                    become flow records.
import { MetaColumns } from '../batch/layout';
import { openFlagModel, SharedFlagModel } from '../flow/flag-model';
import { DecodedBatch } from '../packet/decoded';
import { C_FLOW_EVICTIONS, C_FLOWS_LOGGED, C_FLOWS_SUPPRESSED, EngineOptions, VerdictEngine } from '../verdict/engine';
import { EndedSessions } from '../flow/ended-sessions';
import { drainFlowRecords, FlowRecord } from '../flow/flow-record';
import { RuleSnapshot } from '../verdict/rule-snapshot';
import { RuleEvent } from '../verdict/rule-events';
import { SessionEvidence } from '../flow/session-evidence';
import { WindowInputs, windowInputsOf } from '../features/step-counter';

/** Feature windows of a pipeline; null turns the feature path off. */
export interface FeatureSettings {
  windowSeconds: number;
  stepSeconds: number;
  maxSourcesPerStep: number;
  /** The model's TCP flag-sequence part, compiled once on the main thread; null: sequences are only counted. */
  flags: SharedFlagModel | null;
}

/** Flow records of a pipeline (--flow-log on). */
export interface FlowSettings {
  /** Most records a second; the rest are counted (flowsSuppressed). */
  perSecond: number;
  /** Reported as the records' queue. */
  queue: number;
  /** flowIdBase(queue): a record's flow_id is this plus the flows-logged counter before it (kept across restarts). */
  idBase: number;
}

/** Slots the idle sweep looks at per call: a full pass of 65,536 slots takes 128. */
export const SWEEP_SLOTS = 512;
/** Seconds of packet time between sweeps, so their cost does not follow the batch rate: 10,240 slots a second. */
export const SWEEP_INTERVAL = 0.05;

/** What counts batches into windows: a StepCounter on a queue thread, a WindowAggregator offline. */
export interface BatchWindows {
  attachEvidence(ev: SessionEvidence): void;
  observe(n: number, d: DecodedBatch, m: WindowInputs, bytes: Uint8Array): void;
  advanceTo(nowSeconds: number): void;
}

export interface PipelineOptions {
  /** Most packets in one batch. */
  capacity: number;
  meta: MetaColumns;
  /** Compiled once (rule-snapshot.ts), on the main thread for queue threads. */
  rules: RuleSnapshot;
  rulesVersion: number;
  ruleCounters: SharedArrayBuffer | ArrayBuffer;
  engine: EngineOptions;
  /** Engine counters, in ENGINE_COUNTERS order. */
  counters: Float64Array;
  /** null: no feature path (sessions are then kept only for state rules). */
  windows: BatchWindows | null;
  /** With windows: the flag-sequence model sessions are scored with. */
  flags?: SharedFlagModel | null;
  /** A batch's rule events, after its verdicts, with the version of the rules that decided them; null: nobody reads them, so none are formatted. */
  onRuleEvents: ((events: RuleEvent[], rulesVersion: number) => void) | null;
  /** Seconds now, for an empty batch (a receive timeout) to close idle steps; live queues only. */
  idleClock?: () => number;
  /** Flow records of sessions that ended; absent or null: none are made. */
  flows?: FlowSettings | null;
  /** A batch's flow records, after its verdicts. */
  onFlows?: ((records: FlowRecord[]) => void) | null;
}

export class BatchPipeline {
  readonly engine: VerdictEngine;
  private inputs: WindowInputs;
  private readonly windows: BatchWindows | null;
  private readonly onRuleEvents: PipelineOptions['onRuleEvents'];
  private readonly idleClock: (() => number) | null;
  private readonly ended: EndedSessions | null;
  private readonly flowQueue: number;
  private readonly onFlows: ((records: FlowRecord[]) => void) | null;
  private readonly counters: Float64Array;
  private readonly idBase: number;
  private nextFlowId = 0;
  private lastSweep = -Infinity;
  private evictionsSeen = 0;
  private suppressedSeen = 0;
  private readonly takeId = () => this.nextFlowId++;

  constructor(o: PipelineOptions) {
    this.engine = new VerdictEngine(o.capacity, o.meta, o.rules, o.rulesVersion, o.ruleCounters, o.engine, o.counters);
    this.counters = o.counters;
    const fl = o.flows ?? null;
    // Room for the worst case between two drains: every packet of a batch
    // ending two sessions (one pushed out of the table, then its own closed
    // by a RST), plus a sweep's worth. What still does not fit is counted.
    this.ended = fl ? new EndedSessions(2 * o.capacity + SWEEP_SLOTS, fl.perSecond) : null;
    this.engine.sessions.ended = this.ended;
    this.flowQueue = fl?.queue ?? 0;
    this.idBase = fl?.idBase ?? 0;
    this.onFlows = o.onFlows ?? null;
    this.windows = o.windows;
    this.onRuleEvents = o.onRuleEvents;
    this.idleClock = o.idleClock ?? null;
    if (o.windows) {
      this.setFlagModel(o.flags ?? null);
      o.windows.attachEvidence(this.engine.evidence);
    }
    this.inputs = windowInputsOf(o.meta, this.engine);
  }

  /** Later batches come in other columns (offline: the next file's reader); all state carries over. */
  setMeta(meta: MetaColumns): void {
    this.engine.setMeta(meta);
    this.inputs = windowInputsOf(meta, this.engine);
  }

  /** A model learnt on this site replaces the one the pipeline started with. */
  setFlagModel(flags: SharedFlagModel | null): void {
    this.engine.setFlagModel(flags ? openFlagModel(flags) : null);
  }

  /**
   * Fills the verdict columns of packets from..n-1. A batch can be decided
   * in parts (packets that queued while its first part was decided); the
   * parts before `from` are left as they are. When deciding throws, the
   * events this part recorded are dropped (its packets get the failure
   * verdict); those of earlier parts stay for afterVerdicts.
   */
  decide(n: number, packets: Uint8Array, from = 0): void {
    if (n <= from) return;
    const events = this.engine.events;
    const before = events.count;
    try {
      this.engine.process(n, packets, from);
    } catch (e) {
      events.truncate(before);
      throw e;
    }
  }

  /** The side work of packets 0..n-1, all decided; their bytes and columns must still be in place. */
  afterVerdicts(n: number, packets: Uint8Array): void {
    const e = this.engine;
    if (e.events.count > 0) {
      if (this.onRuleEvents !== null) this.onRuleEvents(e.events.drain(), e.rulesVersion);
      else e.events.truncate(0);
    }
    const w = this.windows;
    const ended = this.ended;
    if (n > 0) {
      if (w !== null || ended !== null) e.recordSessions(n);
      if (w !== null) w.observe(n, e.decoded, this.inputs, packets);
    } else if (this.idleClock !== null) {
      w?.advanceTo(this.idleClock());
    }
    if (ended === null) return;
    const now = n > 0 ? e.now : this.idleClock !== null ? this.idleClock() : -1;
    if (now >= 0 && now - this.lastSweep >= SWEEP_INTERVAL) {
      this.lastSweep = now;
      e.sessions.sweepIdle(now, SWEEP_SLOTS);
    }
    this.flushFlows();
  }

  /**
   * Reports every session still open (nfips stops): they become records
   * with reason "shutdown" (or "timeout" when idle), within the budget.
   */
  endAll(now: number): void {
    if (this.ended === null) return;
    let from = 0;
    do {
      from = this.engine.sessions.endAll(now, from);
      this.flushFlows();
    } while (from >= 0);
  }

  /** Counts, then hands over the ended sessions as records. */
  private flushFlows(): void {
    const ended = this.ended!;
    const c = this.counters;
    const t = this.engine.sessions;
    if (t.evictions !== this.evictionsSeen) {
      c[C_FLOW_EVICTIONS] += t.evictions - this.evictionsSeen;
      this.evictionsSeen = t.evictions;
    }
    if (ended.suppressed !== this.suppressedSeen) {
      c[C_FLOWS_SUPPRESSED] += ended.suppressed - this.suppressedSeen;
      this.suppressedSeen = ended.suppressed;
    }
    if (ended.count === 0) return;
    this.nextFlowId = this.idBase + c[C_FLOWS_LOGGED];
    c[C_FLOWS_LOGGED] += ended.count;
    if (this.onFlows === null) {
      ended.count = 0;
      return;
    }
    this.onFlows(drainFlowRecords(ended, this.flowQueue, this.takeId));
  }
}
