// `nfips replay`: a pcap through the same decode, rules, feature windows and
// classifier as the inline path, on the capture's own clock, without root.
// Prints the events as the run log would have them, then a summary.
import { WINDOW_DEFAULTS } from '../config/run-options';
import { comparable } from '../detect/detector';
import { Thresholds } from '../detect/envelope';
import { Model } from '../detect/model';
import { loadModelBounded } from './model-input';
import { WindowJudge } from '../detect/judge';
import { EpisodeIds, SourceJudge } from '../detect/source-judge';
import { SourceTracker } from '../detect/source-tracker';
import { createScorer } from '../detect/score';
import { EventLog } from '../log/event-log';
import { OfflinePipeline } from '../offline/pipeline';
import { PcapBatchReader } from '../pcap/reader';
import { FormatChoice, readRuleFile } from '../rules/load';
import { logRuleEvents } from './rule-event-log';

export interface ReplayCommand {
  pcap: string;
  rules: string;
  rulesFormat: FormatChoice;
  /** null: rules only. */
  model: string | null;
}

export interface ReplaySummary {
  pcap: string;
  packets: number;
  verdicts: { accepted: number; dropped: number; rejected: number };
  rule_alerts: number;
  malformed: number;
  windows: number;
  scored: number;
  thin: number;
  anomaly_alerts: number;
  episodes: number;
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
  const rules = readRuleFile(c.rules, c.rulesFormat);
  const model: Model | null = c.model ? loadModelBounded(c.model) : null;
  const scorer = model ? createScorer(model) : null;
  const emit = (t: string, f: Record<string, unknown>, l?: 'error' | 'warn' | 'info' | 'debug') => log.event(t, f, l);
  const ids = new EpisodeIds();
  const sources = model ? new SourceJudge(emit, model.stepSeconds, ids, undefined, () => captureClock?.now.getTime() ?? Date.now()) : null;
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
  const judge = model ? new WindowJudge({ threshold: model.threshold, ids, explained: (end) => end / stepSeconds - 1 - lastFinding <= windowSeconds / stepSeconds }, emit) : null;
  let windows = 0;
  let scored = 0;
  let thin = 0;
  const reader = new PcapBatchReader(c.pcap, BATCH);
  try {
    const pipe = new OfflinePipeline(reader.meta, {
      rules,
      batchSize: BATCH,
      features: { windowSeconds, stepSeconds, maxSourcesPerStep: 256, flags: model?.flags ?? null },
      onStep: (st) => tracker?.add(st),
      onRuleEvents: (events) => logRuleEvents(log, 0, rules, events),
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
      windows,
      scored,
      thin,
      anomaly_alerts: judge?.total.alerts ?? 0,
      episodes: judge?.total.episodes ?? 0,
      source_alerts: sources?.counts.alerts ?? 0,
      distributed_alerts: sources?.counts.distributed_alerts ?? 0,
      pcap_stats: { ...reader.stats },
      warnings: model && model.queues !== 1
        ? [`the model was trained on windows of ${model.queues} queues; replay puts the whole capture in one window per step, so per-queue volumes are about ${model.queues}x the model's and scores run high`]
        : [],
    };
  } finally {
    reader.close();
  }
}
