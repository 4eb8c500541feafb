// `nfips replay`: a pcap through the same decode, rules, feature windows and
// classifier as the inline path, on the capture's own clock, without root.
// Prints the events as the run log would have them, then a summary.
import { WINDOW_DEFAULTS } from './run-options';
import { comparable } from '../detect/detector';
import { Thresholds } from '../detect/envelope';
import { loadModel, Model } from '../detect/model';
import { shareFlagModel } from '../flow/flag-model';
import { WindowJudge } from '../detect/judge';
import { EpisodeIds, SourceJudge } from '../detect/source-judge';
import { SourceTracker } from '../detect/source-tracker';
import { createScorer } from '../detect/score';
import { EventLog } from '../log/event-log';
import { OfflinePipeline } from '../offline/pipeline';
import { PcapBatchReader } from '../pcap/reader';
import { FormatChoice, readRuleFile } from '../rules/load';
import { logRuleEvents } from './rule-event-log';
import { logFlowRecords } from './flow-log';
import { flowIdBase } from '../flow/flow-record';
import { readSuppressionFile, Suppressions } from '../detect/suppress';
import { offlineIfindexes } from '../offline/pipeline';
import { RuleSet } from '../rules/types';
import { ruleLabels } from '../rules/lint';

export interface ReplayCommand {
  pcap: string;
  rules: string;
  rulesFormat: FormatChoice;
  /** null: rules only. */
  model: string | null;
  /** --iface-in / --iface-out: the interfaces the captured packets are taken to have used (a capture carries none). */
  ifaceIn?: string | null;
  ifaceOut?: string | null;
  /** --suppress: anomaly suppression list file. */
  suppress?: string | null;
  /** --flow-log on: `flow` records per second of capture time at most; null: none. */
  flowsPerSecond?: number | null;
}

/**
 * Rules that name an interface the replay was not given: they never match a
 * captured packet, which with a default drop can turn a whole capture into drops.
 */
export function interfaceWarnings(rules: RuleSet, ifaceIn: string | null, ifaceOut: string | null): string[] {
  const out: string[] = [];
  for (const field of ['in', 'out'] as const) {
    const stated = field === 'in' ? ifaceIn : ifaceOut;
    if (stated) continue;
    const names = new Set(rules.rules.flatMap((r) => (r.enabled && r[field] !== null ? [r[field] as string] : [])));
    for (const name of names) {
      const who = ruleLabels(rules, (r) => r[field] === name);
      out.push(`rule${who.length === 1 ? '' : 's'} ${who.join(', ')} need${who.length === 1 ? 's' : ''} ${field} interface ${name}, which a capture does not carry: never matched here; give --iface-${field} ${name} to replay the packets as if they came ${field === 'in' ? 'in on' : 'out of'} it`);
    }
  }
  const hooks = ruleLabels(rules, (r) => r.hook !== null);
  if (hooks.length) out.push(`rule${hooks.length === 1 ? '' : 's'} ${hooks.join(', ')} name${hooks.length === 1 ? 's' : ''} a hook, which a capture does not carry: never matched here`);
  return out;
}

const IFNAME = /^[^/\s]{1,15}$/;

export interface ReplaySummary {
  pcap: string;
  packets: number;
  verdicts: { accepted: number; dropped: number; rejected: number };
  rule_alerts: number;
  malformed: number;
  /** Hidden transport headers dropped because a drop rule could have matched them (--malformed drop). */
  evasion_drops: number;
  windows: number;
  scored: number;
  thin: number;
  anomaly_alerts: number;
  episodes: number;
  /** Anomalies (windows and per-source findings) the suppression list silenced. */
  suppressed: number;
  source_alerts: number;
  distributed_alerts: number;
  pcap_stats: Record<string, unknown>;
  warnings: string[];
}

const BATCH = 256;

/**
 * log: where events go; captureClock, if given, is set to each batch's
 * first packet time so the events carry the capture's clock.
 */
export function runReplay(c: ReplayCommand, log: Pick<EventLog, 'event'>, captureClock?: { now: Date }): ReplaySummary {
  for (const [flag, v] of [['--iface-in', c.ifaceIn], ['--iface-out', c.ifaceOut]] as const) {
    if (v != null && !IFNAME.test(v)) throw new Error(`invalid ${flag} "${v}": expected an interface name of 1 to 15 characters without "/" or spaces`);
  }
  const rules = readRuleFile(c.rules, c.rulesFormat);
  const suppress = c.suppress ? readSuppressionFile(c.suppress) : new Suppressions();
  const model: Model | null = c.model ? loadModel(c.model) : null;
  const scorer = model ? createScorer(model) : null;
  const emit = (t: string, f: Record<string, unknown>, l?: 'error' | 'warn' | 'info' | 'debug') => log.event(t, f, l);
  const ids = new EpisodeIds();
  const sources = model ? new SourceJudge(emit, model.stepSeconds, ids, undefined, () => captureClock?.now.getTime() ?? Date.now(), suppress) : null;
  let lastFinding = -Infinity;
  const windowSeconds = model?.windowSeconds ?? WINDOW_DEFAULTS.windowSeconds;
  const stepSeconds = model?.stepSeconds ?? WINDOW_DEFAULTS.stepSeconds;
  const tracker = model
    ? new SourceTracker({
        windowSeconds,
        stepSeconds,
        thresholds: new Thresholds(model.sources),
        onFinding: (f) => {
          lastFinding = Math.max(lastFinding, f.step);
          sources?.onFinding(f);
        },
        onAggregate: (a) => {
          if (a.distributed) lastFinding = Math.max(lastFinding, a.step);
          sources?.onAggregate(a);
        },
        onStepFinal: (k) => sources?.onStepFinal(k),
      })
    : null;
  const judge = model ? new WindowJudge({ threshold: model.threshold, ids, suppress, explained: (end) => end / stepSeconds - 1 - lastFinding <= windowSeconds / stepSeconds }, emit) : null;
  let windows = 0;
  let scored = 0;
  let thin = 0;
  const interfaces = { in: c.ifaceIn ?? null, out: c.ifaceOut ?? null };
  const indexes = offlineIfindexes(interfaces);
  const names = new Map([...indexes.names].map(([n, k]) => [k, n]));
  const ifaceName = (k: number) => names.get(k) ?? null;
  const reader = new PcapBatchReader(c.pcap, BATCH);
  try {
    const pipe = new OfflinePipeline(reader.meta, {
      rules,
      batchSize: BATCH,
      features: { windowSeconds, stepSeconds, maxSourcesPerStep: 256, flags: model ? shareFlagModel(model.flags) : null },
      onStep: (st) => tracker?.add(st),
      interfaces,
      onRuleEvents: (events) => logRuleEvents(log, 0, rules, events, ifaceName),
      flows: c.flowsPerSecond ? { perSecond: c.flowsPerSecond, queue: 0, idBase: flowIdBase(0) } : null,
      onFlows: (records) => logFlowRecords(log, records),
      onWindow: (w) => {
        windows++;
        if (!model || !scorer || !judge) return;
        if (!comparable(w, model)) {
          thin++;
          judge.judge(w, null);
          return;
        }
        scored++;
        judge.judge(w, scorer.score(w.values));
      },
    });
    const m = reader.meta;
    for (let n = reader.next(); n > 0; n = reader.next()) {
      if (captureClock) captureClock.now = new Date((m.tsSec[0] + m.tsNsec[0] * 1e-9) * 1000);
      pipe.process(n, reader.packets);
    }
    pipe.finish();
    tracker?.flush();
    const k = pipe.counts();
    return {
      pcap: c.pcap,
      packets: pipe.packets,
      verdicts: { accepted: k.accepted, dropped: k.dropped, rejected: k.rejected },
      rule_alerts: k.alerts,
      malformed: k.malformed,
      evasion_drops: k.evasionDrops,
      windows,
      scored,
      thin,
      anomaly_alerts: judge?.total.alerts ?? 0,
      episodes: judge?.total.episodes ?? 0,
      suppressed: (judge?.total.suppressed ?? 0) + (sources?.counts.suppressed ?? 0),
      source_alerts: sources?.counts.alerts ?? 0,
      distributed_alerts: sources?.counts.distributed_alerts ?? 0,
      pcap_stats: { ...reader.stats },
      warnings: [
        ...interfaceWarnings(rules, interfaces.in, interfaces.out),
        ...(model && model.queues !== 1
          ? [`the model was trained on windows of ${model.queues} queues; replay puts the whole capture in one window per step, so per-queue volumes are about ${model.queues}x the model's and scores run high`]
          : []),
      ],
    };
  } finally {
    reader.close();
  }
}
