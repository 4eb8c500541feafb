// The summary `nfips train` and `make model` print at the end.
import { TrainSummary } from './train';

export function printTrainSummary(s: TrainSummary, out: string, say: (line: string) => void): void {
  const sil = s.silhouettes.map((c) => `k=${c.k}: ${c.silhouette.toFixed(3)}`).join(', ');
  say(`model written to ${out}`);
  say(`  windows: ${s.windows} (${s.thinWindows} too thin to use, ${s.trainWindows} for training, ${s.heldOutWindows} held out)`);
  say(`  k: ${s.k}  (silhouettes ${sil || 'n/a'})`);
  say(`  threshold: ${s.threshold.toFixed(3)}`);
  say(`  false-alarm rate on held-out normal windows: ${(s.heldOutFalseAlarmRate * 100).toFixed(2)}%`);
}
