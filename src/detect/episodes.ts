// Turns a stream of window scores into episodes, so an attack gives one
// alert rather than one per second. An episode opens on the first window
// scoring above the threshold and closes after `quietWindows` consecutive
// windows at or below it (thin windows count as quiet). Since a window
// spans 60 s, an episode outlives its attack by about a window length plus
// the quiet period. While open, a responsible source not named before
// raises one follow-up alert, so a second attacker is not hidden; at most
// one follow-up per FOLLOW_UP_GAP windows, and at most MAX_NAMED sources
// remembered per episode.
export const FOLLOW_UP_GAP = 10;
export const MAX_NAMED = 64;
export interface EpisodeState {
  id: number;
  open: boolean;
  openedAt: number;
  lastAbove: number;
  peakScore: number;
  windowsAbove: number;
  quiet: number;
  named: Set<string>;
  windowsSinceAlert: number;
}

export type EpisodeStep =
  | { kind: 'none' }
  | { kind: 'open'; episode: EpisodeState; newSources: string[] }
  | { kind: 'new-sources'; episode: EpisodeState; newSources: string[] }
  | { kind: 'close'; episode: EpisodeState };

export class EpisodeTracker {
  private nextId = 1;
  private state: EpisodeState | null = null;

  /** ids: a run-wide source of episode ids (else this tracker counts its own). */
  constructor(
    private readonly quietWindows = 10,
    private readonly ids?: { next(): number },
  ) {}

  get current(): EpisodeState | null {
    return this.state;
  }

  /**
   * One window: anomalous or not, when it ended, its score, and the
   * responsible sources (for follow-ups). Returns what to report.
   */
  step(anomalous: boolean, end: number, score: number, sources: readonly string[]): EpisodeStep {
    const e = this.state;
    if (anomalous) {
      if (!e) {
        const episode: EpisodeState = { id: this.ids ? this.ids.next() : this.nextId++, open: true, openedAt: end, lastAbove: end, peakScore: score, windowsAbove: 1, quiet: 0, named: new Set(sources.slice(0, MAX_NAMED)), windowsSinceAlert: 0 };
        this.state = episode;
        return { kind: 'open', episode, newSources: [...sources] };
      }
      e.quiet = 0;
      e.lastAbove = end;
      e.windowsAbove++;
      e.peakScore = Math.max(e.peakScore, score);
      e.windowsSinceAlert++;
      const fresh = sources.filter((s) => !e.named.has(s));
      if (fresh.length === 0 || e.windowsSinceAlert < FOLLOW_UP_GAP || e.named.size >= MAX_NAMED) return { kind: 'none' };
      for (const s of fresh) e.named.add(s);
      e.windowsSinceAlert = 0;
      return { kind: 'new-sources', episode: e, newSources: fresh };
    }
    if (!e) return { kind: 'none' };
    e.windowsSinceAlert++;
    if (++e.quiet < this.quietWindows) return { kind: 'none' };
    e.open = false;
    this.state = null;
    return { kind: 'close', episode: e };
  }
}
