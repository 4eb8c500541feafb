// The summary `nfips train` and `make model` print at the end.
import { TrainSummary } from './train';
import { MEASURES, Thresholds } from './envelope';

export function printTrainSummary(s: TrainSummary, out: string, say: (line: string) => void): void {
  const sil = s.silhouettes.map((c) => `k=${c.k}: ${c.silhouette.toFixed(3)}`).join(', ');
  say(`model written to ${out}`);
  say(`  windows: ${s.windows} (${s.thinWindows} too thin to use, ${s.trainWindows} for training, ${s.heldOutWindows} held out)`);
  say(`  k: ${s.k}  (silhouettes ${sil || 'n/a'})`);
  say(`  threshold: ${s.threshold.toFixed(3)}`);
  say(`  false-alarm rate on held-out normal windows: ${(s.heldOutFalseAlarmRate * 100).toFixed(2)}%`);
  const env = s.sources;
  const th = new Thresholds(env);
  say(`  per-source envelope: ${env.sourceSteps} (source, second) samples over ${env.steps} s; a source is blocked above max(floor, ${env.margin} x the ${env.quantile} quantile):`);
  const r = (x: number) => Math.round(x * 1000) / 1000;
  MEASURES.forEach((m, i) => {
    const l = env.measures[m.name];
    say(`    ${m.name.padEnd(18)} per second: learnt ${String(l.step).padStart(7)} -> block above ${String(r(th.step[i].value)).padStart(7)};  per window: learnt ${String(l.window).padStart(7)} -> block above ${r(th.window[i].value)}`);
  });
  const services = Object.keys(env.services);
  if (services.length) say(`    services learnt on their own: ${services.join(', ')}`);
  say(`  TCP flag sequences: ${s.flags.sessions} sessions, ${s.flags.symbols} packets, ${s.flags.nodes} contexts; a session is improbable above ${s.flags.threshold} nats`);
}
