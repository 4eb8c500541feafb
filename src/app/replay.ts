// `nfips replay`: a pcap through the same decode, rules, feature windows and
// classifier as the inline path, on the capture's own clock, without root.
// Prints the events as the run log would have them, then a summary.
import { WINDOW_DEFAULTS } from '../config/run-options';
import { isScoreable } from '../detect/scoreable';
import { loadModel, Model } from '../detect/model';
import { WindowJudge } from '../detect/judge';
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
  const model: Model | null = c.model ? loadModel(c.model) : null;
  const scorer = model ? createScorer(model) : null;
  const judge = model ? new WindowJudge(model.threshold, (t, f, l) => log.event(t, f, l)) : null;
  let windows = 0;
  let scored = 0;
  let thin = 0;
  const reader = new PcapBatchReader(c.pcap, BATCH);
  try {
    const pipe = new OfflinePipeline(reader.meta, {
      rules,
      batchSize: BATCH,
      features: { windowSeconds: model?.windowSeconds ?? WINDOW_DEFAULTS.windowSeconds, stepSeconds: model?.stepSeconds ?? WINDOW_DEFAULTS.stepSeconds, maxSourcesPerStep: 256 },
      onRuleEvents: (events) => logRuleEvents(log, 0, rules, events),
      onWindow: (w) => {
        windows++;
        if (!model || !scorer || !judge) return;
        if (!isScoreable(w, model)) {
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
    const k = pipe.counts();
    const j = judge?.counts.get(0);
    return {
      pcap: c.pcap,
      packets: pipe.packets,
      verdicts: { accepted: k.accepted, dropped: k.dropped, rejected: k.rejected },
      rule_alerts: k.alerts,
      malformed: k.malformed,
      windows,
      scored,
      thin,
      anomaly_alerts: j?.alerts ?? 0,
      episodes: j?.episodes ?? 0,
      pcap_stats: { ...reader.stats },
      warnings: model && model.queues !== 1
        ? [`the model was trained on windows of ${model.queues} queues; replay puts the whole capture in one window per step, so per-queue volumes are about ${model.queues}x the model's and scores run high`]
        : [],
    };
  } finally {
    reader.close();
  }
}
