// What a rule reload costs a queue thread: how long its packets wait between
// two batches while it takes the new rule set. Measured in a worker thread
// built like a queue thread (an engine, a control port read synchronously),
// two ways in the same run:
//   before: the thread receives the rule set as plain objects and builds
//           the matcher itself (what every queue thread did until the snapshot);
//   after:  the main thread compiles once (compileRuleSet, timed too) and the
//           thread receives the shared snapshot and swaps (what worker.ts does).
// Every swap of the second kind is a freshly compiled set, as a reload is,
// and the process's resident memory is read before and after them all:
//   --areas pool:  compiled into the supervisor's pool of shared areas, an
//                  area rewritten once the thread acknowledged a newer set;
//   --areas fresh: one new SharedArrayBuffer per reload (before the pool),
//                  freed only when both threads' collectors drop it.
//
//   node dist/bench/reload-bench.js [--rules 10000] [--swaps 30] [--areas pool|fresh] [--seed 1] [--out FILE]
//
// FILE defaults to bench/out/reload-bench.json in the repository.
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isMainThread, MessageChannel, MessagePort, receiveMessageOnPort, Worker, workerData, parentPort } from 'node:worker_threads';
import { buildPacket } from '../src/packet/build';
import { Field, metaColumns } from '../src/batch/layout';
import { resolveRules } from '../src/rules/linear';
import { createMatcher } from '../src/rules/matcher';
import { anyRule, RuleSet } from '../src/rules/types';
import { ENGINE_COUNTERS, ruleCounterBytes, VerdictEngine } from '../src/verdict/engine';
import { compileRuleSet, RuleSnapshot } from '../src/verdict/rule-snapshot';
import { SharedAreaPool } from '../src/rules/shared-area-pool';
import { generatePackets, generateRules } from '../lab/support/rule-gen';

/** The per-thread pause goal at 10,000 rules (issue 13). */
const GOAL_PAUSE_MS = 1;
const BATCH = 64;
const SLOT = 256;

interface Options {
  rules: number;
  swaps: number;
  areas: 'pool' | 'fresh';
  seed: number;
  out: string;
}

type ToBench = { kind: 'snapshot'; rules: RuleSnapshot; version: number; ruleCounters: SharedArrayBuffer } | { kind: 'plain'; rules: RuleSet; version: number } | { kind: 'stop' };
interface FromBench {
  kind: 'swapped' | 'ready';
  ms: number;
  /** Packets of the test batch the new rules dropped: proves the swap took effect. */
  dropped: number;
}

interface BenchInit {
  control: MessagePort;
  flag: SharedArrayBuffer;
  /** Set to null once the engine took it, as worker.ts does. */
  rules: RuleSnapshot | null;
  packets: Uint8Array;
  lengths: number[];
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { rules: 10000, swaps: 30, areas: 'pool', seed: 1, out: path.resolve(__dirname, '../../bench/out/reload-bench.json') };
  for (let k = 0; k < argv.length; k += 2) {
    const v = argv[k + 1];
    if (argv[k] === '--rules') o.rules = Number(v);
    else if (argv[k] === '--swaps') o.swaps = Number(v);
    else if (argv[k] === '--seed') o.seed = Number(v);
    else if (argv[k] === '--areas' && (v === 'pool' || v === 'fresh')) o.areas = v;
    else if (argv[k] === '--out') o.out = v;
    else throw new Error(`unknown option ${argv[k]}`);
  }
  return o;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The queue-thread side: one engine, swaps on request, one batch after each. */
function benchThread(init: BenchInit): void {
  const port = parentPort;
  if (!port) throw new Error('not a worker');
  const meta = metaColumns(new ArrayBuffer(Field.Count * BATCH * 4), BATCH);
  const n = init.lengths.length;
  init.lengths.forEach((len, i) => {
    meta.offset[i] = i * SLOT;
    meta.capLen[i] = len;
    meta.origLen[i] = len;
    meta.hook[i] = 2;
  });
  const settings = { mode: 'repeat' as const, mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 10, flowCapacity: 1024 };
  const engineCounters = new Float64Array(ENGINE_COUNTERS.length);
  const first = init.rules;
  if (first === null) throw new Error('no rules');
  init.rules = null;
  const engine = new VerdictEngine(BATCH, meta, first, 0, new SharedArrayBuffer(ruleCounterBytes(first.ruleCount)), settings, engineCounters);
  const batch = (): number => {
    const before = engineCounters[ENGINE_COUNTERS.indexOf('dropped')];
    engine.process(n, init.packets);
    engine.events.drain();
    return engineCounters[ENGINE_COUNTERS.indexOf('dropped')] - before;
  };
  for (let k = 0; k < 200; k++) batch();
  port.postMessage({ kind: 'ready', ms: 0, dropped: 0 } satisfies FromBench);
  const flag = new Int32Array(init.flag);
  for (;;) {
    Atomics.wait(flag, 0, 0);
    Atomics.store(flag, 0, 0);
    // As worker.ts: receiving is part of the pause.
    const received = performance.now();
    const got = receiveMessageOnPort(init.control);
    if (got === undefined) continue;
    const m = got.message as ToBench;
    if (m.kind === 'stop') break;
    if (m.kind === 'plain') {
      // The old per-thread work, a lower bound of the old pause (it also
      // filled per-rule arrays, and built the guard's matchers on the first
      // hidden packet): resolve and compile the matcher. Not applied.
      createMatcher(resolveRules(m.rules.rules, () => undefined));
      port.postMessage({ kind: 'swapped', ms: performance.now() - received, dropped: -1 } satisfies FromBench);
      continue;
    }
    engine.setRules(m.rules, m.version, m.ruleCounters);
    const ms = performance.now() - received;
    port.postMessage({ kind: 'swapped', ms, dropped: batch() } satisfies FromBench);
  }
  init.control.close();
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const generated = generateRules(o.rules, o.seed);
  const ruleSet = (defaultPolicy: 'accept' | 'drop'): RuleSet => ({
    lock: false,
    default: defaultPolicy,
    rules: generated.map((r) => Object.assign(anyRule(r.id, r.action), r)),
    origin: { file: 'bench', format: 'native', sha256: '' },
  });
  // Two sets that decide the test batch differently, so every swap shows in the verdicts.
  const sets = [ruleSet('accept'), ruleSet('drop')];
  const specs = generatePackets(generated, BATCH, o.seed + 1, 0.1);
  const packets = new Uint8Array(BATCH * SLOT);
  const lengths = specs.map((s, i) => {
    const p = buildPacket(s);
    packets.set(p.subarray(0, SLOT), i * SLOT);
    return Math.min(p.length, SLOT);
  });

  // Main thread: each reload's compile, into the pool's areas or a new one each time.
  const pool = new SharedAreaPool();
  let acked = -1;
  const compile = (version: number): RuleSnapshot =>
    compileRuleSet(sets[version % 2], { ifindex: () => undefined, area: o.areas === 'pool' ? (bytes) => pool.take(bytes, version, Math.min(version - 1, acked)) : undefined });
  const compileMs: number[] = [];
  // The old per-thread matcher build, for comparison.
  const matcherOnlyMs: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    createMatcher(resolveRules(sets[0].rules, () => undefined));
    matcherOnlyMs.push(performance.now() - t0);
  }

  const { port1, port2 } = new MessageChannel();
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const init: BenchInit = { control: port2, flag: flag.buffer as SharedArrayBuffer, rules: compile(0), packets, lengths };
  const worker = new Worker(__filename, { workerData: init, transferList: [port2] });
  const replies: FromBench[] = [];
  let wake: (() => void) | null = null;
  worker.on('message', (m: FromBench) => {
    replies.push(m);
    wake?.();
  });
  const next = async (): Promise<FromBench> => {
    while (replies.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return replies.shift() as FromBench;
  };
  await next(); // ready
  acked = 0;
  const send = async (m: ToBench): Promise<FromBench> => {
    port1.postMessage(m);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    return next();
  };

  const before: number[] = [];
  const after: number[] = [];
  const dropped: number[][] = [[], []];
  for (let k = 0; k < 4; k++) {
    const r = await send({ kind: 'plain', rules: sets[k % 2], version: -1 });
    before.push(r.ms);
  }
  const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
  const rssBefore = rssMiB();
  let rssMax = rssBefore;
  for (let version = 1; version <= o.swaps; version++) {
    const snap = compile(version);
    compileMs.push(snap.compileMs);
    const r = await send({ kind: 'snapshot', rules: snap, version, ruleCounters: new SharedArrayBuffer(ruleCounterBytes(snap.ruleCount)) });
    acked = version;
    after.push(r.ms);
    dropped[version % 2].push(r.dropped);
    rssMax = Math.max(rssMax, rssMiB());
  }
  const rssAfter = rssMiB();
  port1.postMessage({ kind: 'stop' } satisfies ToBench);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
  await new Promise((resolve) => worker.once('exit', resolve));
  port1.close();
  // Every swap must have changed what the thread decides, or the pause means nothing.
  if (new Set(dropped[0]).size !== 1 || new Set(dropped[1]).size !== 1 || dropped[0][0] === dropped[1][0]) throw new Error(`swaps did not take effect: dropped ${JSON.stringify(dropped)}`);

  const result = {
    rules: o.rules,
    compileMainMs: median(compileMs),
    matcherOnlyMs: median(matcherOnlyMs),
    pauseBeforeMs: median(before),
    pauseAfterMs: median(after),
    pauseAfterMaxMs: Math.max(...after),
    ratio: median(after) / median(before),
    goal: { pauseMs: GOAL_PAUSE_MS, pass: Math.max(...after) < GOAL_PAUSE_MS },
    areas: o.areas,
    /** SharedArrayBuffers allocated for the swaps' snapshots (the first set's included). */
    areasAllocated: o.areas === 'pool' ? pool.allocations : o.swaps + 1,
    rssBeforeMiB: rssBefore,
    rssAfterMiB: rssAfter,
    rssMaxMiB: rssMax,
  };
  console.log(`\nnode ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}; ${o.rules} rules, ${o.swaps} swaps`);
  console.log(`main thread, compile per reload (compileRuleSet): median ${result.compileMainMs.toFixed(1)} ms (matcher alone ${result.matcherOnlyMs.toFixed(1)} ms)`);
  console.log(`queue thread pause, before (receive rule objects + compile): median ${result.pauseBeforeMs.toFixed(1)} ms of ${before.length}`);
  console.log(`queue thread pause, after (receive snapshot + swap): median ${(result.pauseAfterMs * 1000).toFixed(0)} us, max ${(result.pauseAfterMaxMs * 1000).toFixed(0)} us of ${after.length}`);
  console.log(`after/before = ${result.ratio.toExponential(2)}`);
  console.log(`resident memory (--areas ${o.areas}, ${result.areasAllocated} areas for ${o.swaps + 1} sets): ${rssBefore.toFixed(0)} MiB before the swaps, ${rssAfter.toFixed(0)} MiB after, ${rssMax.toFixed(0)} MiB at most`);
  console.log(`${result.goal.pass ? 'PASS' : 'MISS'}: longest swap pause ${(result.pauseAfterMaxMs * 1000).toFixed(0)} us (goal < ${GOAL_PAUSE_MS * 1000} us)`);
  const out = path.resolve(o.out);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, options: o, result, before, after, compileMs }, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}

if (isMainThread) {
  main().catch((e: Error) => {
    console.error(e.stack ?? e.message);
    process.exit(1);
  });
} else {
  benchThread(workerData as BenchInit);
}
