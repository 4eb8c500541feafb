// Where a one-packet batch spends its time, stage by stage. Run as root:
//   node dist/bench/batch-stages.js [--pings N] [--runs N]
// In a client -> gateway -> server namespace topology (bench/stage-probe.ts
// on the gateway's queue, pings 5 ms apart so every batch holds one packet)
// it reads the addon's per-stage clocks for two consumers of the same loop
// (a ping's reply, let through while its request's verdict is sent, usually
// joins the request's batch):
// "bare" (decide only writes repeat + mark) and "nfips" (the queue thread's
// pipeline at its defaults). Then, without a kernel, it times the
// JavaScript stages of the nfips pipeline alone on one-packet batches.
// All figures come from this run; compare the ratios.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildPacket } from '../src/packet/build';
import { metaBuffer, metaColumns, NO_OFFSET } from '../src/batch/layout';
import { PACKAGE_ROOT } from '../src/config/paths';
import { RUN_DEFAULTS } from '../src/app/run-options';
import { shareFlagModel } from '../src/flow/flag-model';
import { loadModel } from '../src/detect/model';
import { StepCounter } from '../src/features/step-counter';
import { compileRuleSet } from '../src/verdict/rule-snapshot';
import { install } from '../src/iptables/apply';
import { buildPlan } from '../src/iptables/plan';
import { createTopology, netnsUnavailableReason, Topology } from '../lab/netns/topology';
import { BatchPipeline, FeatureSettings } from '../src/pipeline/batch-pipeline';
import { warmUp } from '../src/pipeline/warmup';
import { STAGE_TIMES } from '../src/queue/native';
import { readRuleFile, parseRuleText } from '../src/rules/load';
import { RuleSet } from '../src/rules/types';
import { ENGINE_COUNTERS, EngineOptions, ruleCounterBytes } from '../src/verdict/engine';
import { parsePing } from './iperf';

const PROBE = path.join(__dirname, 'stage-probe.js');
const STAGE_LABELS: Record<string, string> = {
  recvNs: 'parse the batch (after recvmmsg returns), receive more while it is open',
  decideNs: 'decide call (N-API into JS, decide stage)',
  sendNs: 'send the verdicts (sendto, with the kernel reinjecting the packet)',
  afterNs: 'afterVerdicts call (events, sessions, windows)',
  turnNs: 'back to waiting (flag check, handle scope)',
};

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} needs a positive integer`);
  return v;
}

interface ProbeResult {
  stages: Record<string, number>;
  samples: Record<string, number[]>;
  pingAvgUs: number | null;
  pingMedianUs: number | null;
}

async function probe(topo: Topology, mode: 'nfips' | 'bare', pings: number): Promise<ProbeResult> {
  const seconds = Math.ceil((pings * 5) / 1000) + 3;
  const h = topo.spawn(topo.gateway, process.execPath, [PROBE, mode, '0', String(seconds)]);
  let out = '';
  h.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  h.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((r) => h.once('exit', () => r()));
  const readyBy = Date.now() + 30_000;
  while (!out.includes('ready')) {
    if (h.exitCode !== null) throw new Error(`probe exited: ${out}`);
    if (Date.now() > readyBy) {
      h.kill('SIGKILL');
      throw new Error(`probe not ready after 30 s: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const ping = await topo.exec(topo.client, 'ping', ['-c', String(pings), '-i', '0.005', '-W', '1', topo.addr.server4], { allowFail: true, timeoutMs: seconds * 1000 + 10_000 });
  const timer = setTimeout(() => h.kill('SIGKILL'), seconds * 1000 + 10_000);
  await exited;
  clearTimeout(timer);
  const got = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number | number[]>;
  const stages: Record<string, number> = {};
  const samples: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(got)) {
    if (Array.isArray(v)) samples[k.replace('samples.', '')] = v;
    else stages[k] = v;
  }
  const p = parsePing(ping.stdout);
  return { stages, samples, pingAvgUs: p.rttAvgUs, pingMedianUs: p.rttMedianUs };
}

const us = (ns: number) => (ns / 1000).toFixed(2);

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Median and mean µs per batch of each stage, two consumers side by side.
 * On a shared host the means carry every preemption; the medians say what
 * a batch costs.
 */
function nativeTable(bare: ProbeResult, nf: ProbeResult): string {
  const rows = ['| stage (µs per batch) | bare median | nfips median | nfips − bare, median | bare mean | nfips mean |', '| --- | ---: | ---: | ---: | ---: | ---: |'];
  const mean = (r: ProbeResult, k: string) => r.stages[k] / r.stages.batches;
  const med = (r: ProbeResult, k: string) => median(r.samples[k] ?? []);
  const sum = (r: ProbeResult) => median((r.samples.recvNs ?? []).map((_, b) => STAGE_TIMES.slice(3).reduce((t, k) => t + r.samples[k][b], 0)));
  let tb = 0;
  let tn = 0;
  for (const k of STAGE_TIMES.slice(3)) {
    tb += mean(bare, k);
    tn += mean(nf, k);
    rows.push(`| ${STAGE_LABELS[k]} | ${us(med(bare, k))} | ${us(med(nf, k))} | ${us(med(nf, k) - med(bare, k))} | ${us(mean(bare, k))} | ${us(mean(nf, k))} |`);
  }
  rows.push(`| **total in the loop** (median of per-batch sums) | ${us(sum(bare))} | ${us(sum(nf))} | ${us(sum(nf) - sum(bare))} | ${us(tb)} | ${us(tn)} |`);
  rows.push(`| batches timed (packets; receives that added to an open batch) | ${bare.stages.batches} (${bare.stages.packets}; ${bare.stages.extra}) | ${nf.stages.batches} (${nf.stages.packets}; ${nf.stages.extra}) | | | |`);
  rows.push(`| ping avg / median RTT µs | ${bare.pingAvgUs?.toFixed(0)} / ${bare.pingMedianUs?.toFixed(0)} | ${nf.pingAvgUs?.toFixed(0)} / ${nf.pingMedianUs?.toFixed(0)} | | | |`);
  return rows.join('\n');
}

/** The nfips pipeline's JavaScript stages alone on one-packet batches: ns per batch. */
function jsStages(rounds: number): string {
  const model = loadModel(RUN_DEFAULTS.model);
  const features: FeatureSettings = { windowSeconds: model.windowSeconds, stepSeconds: model.stepSeconds, maxSourcesPerStep: 256, flags: shareFlagModel(model.flags) };
  const engine: EngineOptions = { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 1e9, flowCapacity: 1 << 16 };
  const defaults = readRuleFile(path.join(PACKAGE_ROOT, 'rules', 'default.json'));
  // Every packet a logged drop: one event to format per batch.
  const logAll: RuleSet = parseRuleText(JSON.stringify({ default: 'accept', rules: [{ id: 'all', action: 'drop', log: true }] }), 'bench.json');
  const echo = buildPacket({ src: '198.51.100.1', dst: '203.0.113.1', proto: 1, icmpType: 8, payloadLen: 56 });
  const make = (rules: RuleSet, withWindows: boolean) => {
    const cap = RUN_DEFAULTS.batchSize;
    const meta = metaColumns(metaBuffer(cap), cap);
    const buf = new Uint8Array(cap * 256);
    buf.set(echo, 0);
    meta.capLen[0] = echo.length;
    meta.origLen[0] = echo.length;
    meta.hwAddrOffset.fill(NO_OFFSET);
    const pipe = new BatchPipeline({
      capacity: cap, meta, rules: compileRuleSet(rules, { ifindex: () => undefined }), rulesVersion: 0, ruleCounters: new ArrayBuffer(ruleCounterBytes(rules.rules.length)), engine,
      counters: new Float64Array(ENGINE_COUNTERS.length), windows: withWindows ? new StepCounter({ queue: 0, ...features }, () => undefined) : null,
      flags: features.flags, onRuleEvents: () => undefined,
    });
    return { pipe, meta, buf };
  };
  warmUp(RUN_DEFAULTS.batchSize, compileRuleSet(defaults, { ifindex: () => undefined }), engine, features);
  // The clock moves 10 µs a batch, as for pings 10 µs apart: steps close now and then, as live.
  const time = (p: ReturnType<typeof make>, after: boolean) => {
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      const t = 1e6 + r * 1e-5;
      p.meta.tsSec[0] = Math.floor(t);
      p.meta.tsNsec[0] = (t % 1) * 1e9;
      p.pipe.decide(1, p.buf);
      if (after) p.pipe.afterVerdicts(1, p.buf);
      // Decide alone: empty the event buffer unformatted, as afterVerdicts
      // would drain it, or once full every record takes the cheaper suppressed path.
      else p.pipe.engine.events.truncate(0);
    }
    return ((performance.now() - t0) * 1e6) / rounds;
  };
  // Five passes, each timing every shape; the first warms them up; the median of the other four is reported.
  const runs: number[][] = [[], [], [], []];
  for (let pass = 0; pass < 5; pass++) {
    const t = [time(make(defaults, true), false), time(make(defaults, true), true), time(make(defaults, false), true), time(make(logAll, false), true)];
    if (pass > 0) t.forEach((v, k) => runs[k].push(v));
  }
  const [decide, both, noWindows, events] = runs.map(median);
  const results: [string, number][] = [
    ['decide (decode, rules, default, verdict column)', decide],
    ['afterVerdicts, features on (sessions, windows, step clock)', both - decide],
    ['decide + afterVerdicts, features off (nothing to format)', noWindows],
    ['decide + afterVerdicts with one logged drop (event recorded and formatted)', events],
    ['decide + afterVerdicts, features on', both],
  ];
  const base = results[0][1];
  return ['| JS stage, one-packet batch | ns per batch | vs decide |', '| --- | ---: | ---: |', ...results.map(([k, v]) => `| ${k} | ${v.toFixed(0)} | ${(v / base).toFixed(2)} |`)].join('\n');
}

async function main(): Promise<void> {
  const pings = arg('--pings', 2000);
  const runs = arg('--runs', 1);
  const rounds = arg('--rounds', 200_000);
  const why = await netnsUnavailableReason();
  if (why) throw new Error(`batch-stages needs root and ip netns (apt: iproute2, iptables): ${why}`);
  const topo = await createTopology('nfst');
  try {
    const plan = buildPlan({ queues: { first: 0, last: 0 }, hook: 'forward', mark: { value: 1, mask: 1 }, failClosed: false, exclude: [], families: ['ipv4'] });
    await install(plan, { iptables: 'iptables', ip6tables: 'ip6tables', netns: topo.gateway });
    for (let r = 0; r < runs; r++) {
      const bare = await probe(topo, 'bare', pings);
      const nf = await probe(topo, 'nfips', pings);
      process.stdout.write(`\nrun ${r + 1}: addon stage clocks, ${pings} pings 5 ms apart\n\n${nativeTable(bare, nf)}\n`);
    }
  } finally {
    await topo.destroy();
  }
  process.stdout.write(`\nJavaScript stages without a kernel (${rounds} one-packet batches each)\n\n${jsStages(rounds)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
