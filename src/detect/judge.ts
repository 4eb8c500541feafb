// From window scores to alert and anomaly_end events: the traffic-level
// classifier. Its alerts say the traffic as a whole looks unlike the
// normal traffic it learnt (volume, mix); they never block anyone, since a
// window-level excess says nothing about which source misbehaved (see
// source-judge for what blocks). One episode spans all queues, so a flood
// spread over the queues raises one alert. Shared by the live detector and
// `nfips replay`, so both report alike.
import { FeatureWindow } from '../features/window';
import { EventFields, Level } from '../log/event-log';
import { ANOMALY_SIGNATURES, anomalyAlert, anomalyEnd, AnomalyScore } from './alert';
import { attribute } from './attribution';
import { EpisodeTracker } from './episodes';
import { ScoreResult } from './score';
import type { EpisodeIds } from './source-judge';
import { Suppressions } from './suppress';

export type Emit = (eventType: string, fields: EventFields, level?: Level) => void;

export interface JudgeCounts {
  anomalous: number;
  /** Anomalous windows not alerted because per-source findings already explain the traffic. */
  explained: number;
  alerts: number;
  episodes: number;
  /** Anomalous windows whose alert was on the suppression list. */
  suppressed: number;
}

export interface WindowJudgeOptions {
  threshold: number;
  /** Quiet windows (of all queues together) that close an episode. */
  quietWindows?: number;
  queues?: number;
  /** True while per-source detection has findings for this time (or had within a window): they say more. */
  explained?: (end: number) => boolean;
  ids?: EpisodeIds;
  /**
   * Consecutive anomalous windows of one queue before an episode opens: a
   * traffic anomaly must last (5 s at 1-s steps), which also gives the
   * per-source detector time to explain it first.
   */
  confirmWindows?: number;
  suppress?: Suppressions;
}

/** Default for WindowJudgeOptions.confirmWindows. */
export const CONFIRM_WINDOWS = 5;

export class WindowJudge {
  readonly #tracker: EpisodeTracker;
  /** Per queue: anomalous windows in a row. */
  readonly #streak = new Map<number, number>();
  /** Per queue: anomalous windows. */
  readonly counts = new Map<number, JudgeCounts>();
  readonly total: JudgeCounts = { anomalous: 0, explained: 0, alerts: 0, episodes: 0, suppressed: 0 };

  constructor(
    private readonly o: WindowJudgeOptions,
    private readonly emit: Emit,
  ) {
    this.#tracker = new EpisodeTracker((o.quietWindows ?? 10) * (o.queues ?? 1), o.ids);
  }

  get episodeOpen(): boolean {
    return this.#tracker.current != null;
  }

  /** r is null for a window too thin to score; it counts as quiet. */
  judge(w: FeatureWindow, r: ScoreResult | null): void {
    let c = this.counts.get(w.queue);
    if (!c) this.counts.set(w.queue, (c = { anomalous: 0, explained: 0, alerts: 0, episodes: 0, suppressed: 0 }));
    const t = this.#tracker;
    if (r === null || !(r.score > this.o.threshold)) {
      this.#streak.set(w.queue, 0);
      const step = t.step(false, w.end, 0, []);
      if (step.kind === 'close') this.emit('anomaly_end', anomalyEnd(w.queue, step.episode, w.end));
      return;
    }
    c.anomalous++;
    this.total.anomalous++;
    const streak = (this.#streak.get(w.queue) ?? 0) + 1;
    this.#streak.set(w.queue, streak);
    if (!t.current && streak < (this.o.confirmWindows ?? CONFIRM_WINDOWS)) return;
    if (!t.current && this.o.explained?.(w.end)) {
      c.explained++;
      this.total.explained++;
      return;
    }
    const score: AnomalyScore = { score: r.score, threshold: this.o.threshold, cluster: r.cluster, deviations: r.deviations };
    const a = attribute(w, r.deviations);
    // Suppressed before the episode opens, so no anomaly_end follows either.
    if (!t.current && this.o.suppress?.check(ANOMALY_SIGNATURES[a.blame].id, a.responsible[0]?.ip ?? null)) {
      c.suppressed++;
      this.total.suppressed++;
      return;
    }
    const step = t.step(true, w.end, r.score, a.responsible.map((s) => s.ip));
    if (step.kind === 'open' || step.kind === 'new-sources') {
      c.alerts++;
      this.total.alerts++;
      if (step.kind === 'open') {
        c.episodes++;
        this.total.episodes++;
      }
      this.emit('alert', anomalyAlert(w, score, a, step.episode, step.newSources, step.kind === 'new-sources'), 'warn');
    }
  }
}

export { ANOMALY_SIGNATURES };
