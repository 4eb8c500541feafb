// From window scores to alert and anomaly_end events, per queue. Shared by
// the live detector and `nfips replay`, so both report alike.
import { FeatureWindow } from '../features/window';
import { EventFields, Level } from '../log/event-log';
import { ANOMALY_SIGNATURES, anomalyAlert, anomalyEnd, AnomalyScore } from './alert';
import { Attribution, attribute } from './attribution';
import { EpisodeTracker } from './episodes';
import { ScoreResult } from './score';

export type Emit = (eventType: string, fields: EventFields, level?: Level) => void;

/** What prevent mode did about an anomalous window's sources. */
export interface Response {
  action: 'allowed' | 'blocked';
  blocks: unknown[];
}

/** Called for every anomalous window, alert or not, so a source named earlier is still blocked. */
export type Respond = (a: Attribution, meta: { signatureId: number; signature: string; episode: number; queue: number }) => Response;

export interface JudgeCounts {
  anomalous: number;
  alerts: number;
  episodes: number;
}

export class WindowJudge {
  readonly #trackers = new Map<number, EpisodeTracker>();
  readonly counts = new Map<number, JudgeCounts>();

  constructor(
    private readonly threshold: number,
    private readonly emit: Emit,
    private readonly quietWindows = 10,
    private readonly respond?: Respond,
  ) {}

  episodeOpen(queue: number): boolean {
    return this.#trackers.get(queue)?.current != null;
  }

  /** r is null for a window too thin to score; it counts as quiet. */
  judge(w: FeatureWindow, r: ScoreResult | null): void {
    let t = this.#trackers.get(w.queue);
    let c = this.counts.get(w.queue);
    if (!t || !c) {
      t = new EpisodeTracker(this.quietWindows);
      c = { anomalous: 0, alerts: 0, episodes: 0 };
      this.#trackers.set(w.queue, t);
      this.counts.set(w.queue, c);
    }
    if (r === null || !(r.score > this.threshold)) {
      const step = t.step(false, w.end, 0, []);
      if (step.kind === 'close') this.emit('anomaly_end', anomalyEnd(w.queue, step.episode, w.end));
      return;
    }
    c.anomalous++;
    const score: AnomalyScore = { score: r.score, threshold: this.threshold, cluster: r.cluster, deviations: r.deviations };
    const a = attribute(w, r.deviations);
    const step = t.step(true, w.end, r.score, a.responsible.map((s) => s.ip));
    const sig = ANOMALY_SIGNATURES[a.blame];
    const episode = t.current?.id ?? 0;
    const response = this.respond?.(a, { signatureId: sig.id, signature: `nfips anomaly: ${sig.name}`, episode, queue: w.queue });
    if (step.kind === 'open' || step.kind === 'new-sources') {
      c.alerts++;
      if (step.kind === 'open') c.episodes++;
      this.emit('alert', anomalyAlert(w, score, a, step.episode, step.newSources, step.kind === 'new-sources', response), 'warn');
    }
  }
}
