// The data path without a kernel: batches from a pcap file or a live
// capture go through the same batch pipeline as a queue thread's, on the
// packets' own timestamps. Used by `nfips replay` and `nfips train`.
import { MetaColumns } from '../batch/layout';
import { BatchPipeline, FeatureSettings, FlowSettings } from '../pipeline/batch-pipeline';
import { FlowRecord } from '../flow/flow-record';
import { RuleSet } from '../rules/types';
import { ENGINE_COUNTERS, EngineCounterName, EngineOptions, ruleCounterBytes, VerdictEngine } from '../verdict/engine';
import { FeatureWindow, WindowAggregator } from '../features/window';
import { StepRecord } from '../features/step';
import { RuleEvent } from '../verdict/rule-events';
import { compileRuleSet } from '../verdict/rule-snapshot';

export interface OfflineOptions {
  rules: RuleSet;
  batchSize: number;
  features: FeatureSettings;
  /** The queue number the windows are reported under. */
  queue?: number;
  onWindow: (w: FeatureWindow) => void;
  /** Each closed step, before its window (per-source detection and learning). */
  onStep?: (s: StepRecord) => void;
  onRuleEvents?: (events: RuleEvent[]) => void;
  /**
   * Interfaces every packet is taken to have come in and go out on (a
   * capture carries none): lets in/out rules match. null: none, so such
   * rules never match.
   */
  interfaces?: { in: string | null; out: string | null };
  /** Flow records of sessions that end (on the capture's clock); absent: none. */
  flows?: FlowSettings | null;
  onFlows?: (records: FlowRecord[]) => void;
}

/** Index 1 for the in interface, 2 for the out (1 if it is the same one); 0 is "none", as in the kernel's metadata. */
export function offlineIfindexes(i: { in: string | null; out: string | null } | undefined): { in: number; out: number; names: Map<string, number> } {
  const names = new Map<string, number>();
  if (i?.in) names.set(i.in, 1);
  if (i?.out && !names.has(i.out)) names.set(i.out, 2);
  return { in: i?.in ? 1 : 0, out: i?.out ? (names.get(i.out) ?? 0) : 0, names };
}

/** Engine settings offline: no marks matter, interfaces are unknown. */
const OFFLINE_ENGINE: EngineOptions = {
  mode: 'repeat',
  mark: { value: 1, mask: 1 },
  rejectMark: { value: 2, mask: 2 },
  eventsPerSecond: 10,
  flowCapacity: 1 << 16,
};

export class OfflinePipeline {
  readonly engine: VerdictEngine;
  readonly windows: WindowAggregator;
  private readonly pipe: BatchPipeline;
  private readonly counters = new Float64Array(ENGINE_COUNTERS.length);
  private meta: MetaColumns;
  private readonly ifIn: number;
  private readonly ifOut: number;
  packets = 0;

  constructor(meta: MetaColumns, opts: OfflineOptions) {
    const ifs = offlineIfindexes(opts.interfaces);
    this.ifIn = ifs.in;
    this.ifOut = ifs.out;
    this.meta = meta;
    const rules = compileRuleSet(opts.rules, { ifindex: (n) => ifs.names.get(n), malformed: OFFLINE_ENGINE.malformed });
    this.windows = new WindowAggregator({ queue: opts.queue ?? 0, ...opts.features }, opts.onWindow, opts.onStep);
    const onRuleEvents = opts.onRuleEvents;
    this.pipe = new BatchPipeline({
      capacity: opts.batchSize,
      meta,
      rules,
      rulesVersion: 0,
      ruleCounters: new ArrayBuffer(ruleCounterBytes(rules.ruleCount)),
      engine: OFFLINE_ENGINE,
      counters: this.counters,
      windows: this.windows,
      flags: opts.features.flags,
      onRuleEvents: onRuleEvents ? (events) => onRuleEvents(events) : null,
      flows: opts.flows ?? null,
      onFlows: opts.onFlows ?? null,
    });
    this.engine = this.pipe.engine;
  }

  /** Later batches come in other columns (the next file of a multi-file capture); all state carries over. */
  setMeta(meta: MetaColumns): void {
    this.meta = meta;
    this.pipe.setMeta(meta);
  }

  /** One batch whose columns are in the current meta. */
  process(n: number, packets: Uint8Array): void {
    if (n === 0) return;
    this.packets += n;
    // The reader leaves these columns at 0 (no interface); stated ones go in whole.
    if (this.ifIn !== 0) this.meta.inIfindex.fill(this.ifIn, 0, n);
    if (this.ifOut !== 0) this.meta.outIfindex.fill(this.ifOut, 0, n);
    this.pipe.decide(n, packets);
    this.pipe.afterVerdicts(n, packets);
  }

  /** Emits the last, partly filled step's window; sessions still open end (flow records, reason shutdown). */
  finish(): void {
    this.windows.flush();
    this.pipe.endAll(this.engine.now);
  }

  counts(): Record<EngineCounterName, number> {
    return Object.fromEntries(ENGINE_COUNTERS.map((k, i) => [k, this.counters[i]])) as Record<EngineCounterName, number>;
  }
}
