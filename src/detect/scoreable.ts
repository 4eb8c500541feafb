// Which windows the classifier judges, the same rule in training, live
// scoring and replay. A window needs enough packets to judge (and below
// that there is nothing to prevent), and enough time in it: right after
// start the window covers a few seconds only, and rates over 2 s of quiet
// traffic swing too far (one ping is a burst).
export const MIN_SPAN_SECONDS = 10;

export function isScoreable(w: { start: number; end: number; packets: number }, m: { minPackets: number; windowSeconds: number }): boolean {
  return w.packets >= m.minPackets && w.end - w.start >= Math.min(MIN_SPAN_SECONDS, m.windowSeconds);
}
