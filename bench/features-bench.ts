// Offline micro-benchmark of the feature path: the cost per packet of what
// the queue thread does after the verdicts (session recording and counting
// into the current step), next to the verdict path itself (decode + rules),
// and the once-per-step costs, on synthetic gateway traffic read from a
// pcap. One core, no kernel.
//
//   node dist/bench/features-bench.js [--rounds 5] [--seconds 300] [--out FILE]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StepCounter, windowInputsOf } from '../src/features/step-counter';
import { StepRecord } from '../src/features/step';
import { WindowRing } from '../src/features/window';
import { PcapBatchReader } from '../src/pcap/reader';
import { writeSyntheticPcap } from '../lab/support/synthetic-pcap';
import { readRuleFile } from '../src/rules/load';
import { PACKAGE_ROOT } from '../src/config/paths';
import { ENGINE_COUNTERS, ruleCounterBytes, VerdictEngine } from '../src/verdict/engine';
import { compileRuleSet } from '../src/verdict/rule-snapshot';

function arg(name: string, def: number | string): string {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 ? process.argv[k + 1] : String(def);
}

const rounds = Number(arg('rounds', 5));
const seconds = Number(arg('seconds', 300));
const out = path.resolve(arg('out', path.join(PACKAGE_ROOT, 'bench', 'out', 'features-bench.json')));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = mkdtempSync(path.join(os.tmpdir(), 'nfips-fbench-'));
const pcap = path.join(dir, 'traffic.pcap');
// Normal traffic plus a 20 s SYN flood, so both the quiet and the flooded shapes count.
const total = writeSyntheticPcap(pcap, { seconds, seed: 7, flood: { from: '10.0.9.66', kind: 'syn', at: seconds / 2, seconds: 20, pps: 5000 } });
const rules = compileRuleSet(readRuleFile(path.join(PACKAGE_ROOT, 'rules', 'default.json'), 'auto'), { ifindex: () => undefined });
const engineOpts = { mode: 'repeat' as const, mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 10, flowCapacity: 1 << 16, trackSessions: true };

function round(): { verdictNs: number; featureNs: number; packetNs: number; closeUs: number; windowUs: number; packets: number; windows: number } {
  const reader = new PcapBatchReader(pcap, 256);
  const engine = new VerdictEngine(256, reader.meta, rules, 0, new ArrayBuffer(ruleCounterBytes(rules.ruleCount)), engineOpts, new Float64Array(ENGINE_COUNTERS.length));
  let windows = 0;
  const steps: StepRecord[] = [];
  const agg = new StepCounter({ queue: 0, windowSeconds: 60, stepSeconds: 1 }, (r) => steps.push(r));
  const m = reader.meta;
  const inputs = windowInputsOf(m, engine);
  let tv = 0n;
  let tf = 0n;
  let tQuiet = 0n;
  let quietPackets = 0;
  let packets = 0;
  for (let n = reader.next(); n > 0; n = reader.next()) {
    const t0 = process.hrtime.bigint();
    engine.process(n, reader.packets);
    const t1 = process.hrtime.bigint();
    const before = steps.length;
    engine.recordSessions(n);
    agg.observe(n, engine.decoded, inputs, reader.packets);
    const dt = process.hrtime.bigint() - t1;
    tf += dt;
    // Batches in which no step ended: the per-packet part alone.
    if (steps.length === before) {
      tQuiet += dt;
      quietPackets += n;
    }
    tv += t1 - t0;
    packets += n;
  }
  reader.close();
  // The window summaries, as the main thread computes them from the steps.
  const ring = new WindowRing({ windowSeconds: 60, stepSeconds: 1 }, () => windows++);
  const t2 = process.hrtime.bigint();
  for (const r of steps) ring.add(r);
  const ringNs = Number(process.hrtime.bigint() - t2);
  const packetNs = Number(tQuiet) / quietPackets;
  return { verdictNs: Number(tv) / packets, featureNs: Number(tf) / packets, packetNs, closeUs: (Number(tf) - packetNs * packets) / steps.length / 1000, windowUs: ringNs / windows / 1000, packets, windows };
}

round(); // warm-up
const runs = Array.from({ length: rounds }, round);
const result = {
  command: `node dist/bench/features-bench.js --rounds ${rounds} --seconds ${seconds}`,
  date: new Date().toISOString(),
  cpu: os.cpus()[0]?.model,
  packets: total,
  windows_per_round: runs[0].windows,
  verdict_ns_per_packet: Number(median(runs.map((r) => r.verdictNs)).toFixed(1)),
  /** recordSessions() + StepCounter.observe() per packet, in batches where no step ended. */
  feature_ns_per_packet: Number(median(runs.map((r) => r.packetNs)).toFixed(1)),
  /** Closing a step on the queue thread (copying it out for the main thread), once per step. */
  step_close_us: Number(median(runs.map((r) => r.closeUs)).toFixed(1)),
  /** Queue-thread feature cost averaged over all packets of this ~400 pps capture, step closes included. */
  feature_ns_per_packet_all_in: Number(median(runs.map((r) => r.featureNs)).toFixed(1)),
  /** The window summary over 60 steps, on the main thread, once per step. */
  window_summary_us: Number(median(runs.map((r) => r.windowUs)).toFixed(1)),
};
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
rmSync(dir, { recursive: true, force: true });
