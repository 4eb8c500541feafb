// Offline micro-benchmark of the rule matchers: decode a batch of realistic
// packets and decide each (first match from rule 0), with 10, 1,000 and
// 10,000 rules, for the compiled and the linear matcher. One core, no kernel.
//
//   node dist/bench/rules-bench.js [--rounds 5] [--seconds 1] [--batch 256] [--hits 0.1] [--seed 1] [--out FILE]
//
// FILE defaults to bench/out/rules-bench.json in the repository.
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildPacket } from '../src/packet/build';
import { decodeBatch } from '../src/packet/decode';
import { createDecodedBatch } from '../src/packet/decoded';
import { CompiledMatcher, compileMatcher } from '../src/rules/compile';
import { createMatcher } from '../src/rules/matcher';
import { couldMatch } from '../src/rules/could-match';
import { LinearMatcher, MatchInput, ResolvedRule } from '../src/rules/linear';
import { anyRule, RuleSet } from '../src/rules/types';
import { compileGuard, HiddenGuard } from '../src/verdict/hidden-guard';
import { generatePackets, generateRules } from '../lab/support/rule-gen';

const SIZES = [10, 1000, 10000];
/** Per-packet slot in the receive buffer, and where the packet starts in it (after netlink headers). */
const SLOT = 2048;
const HEADROOM = 88;
const HOOK_FORWARD = 2;
const GOAL_DECISIONS = 2_000_000;
const GOAL_RATIO = 1.5;

interface Options {
  rounds: number;
  seconds: number;
  batch: number;
  /** Share of packets aimed at some rule's address. */
  hits: number;
  seed: number;
  out: string;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { rounds: 5, seconds: 1, batch: 256, hits: 0.1, seed: 1, out: path.resolve(__dirname, '../../bench/out/rules-bench.json') };
  for (let k = 0; k < argv.length; k += 2) {
    const v = argv[k + 1];
    switch (argv[k]) {
      case '--rounds':
        o.rounds = Number(v);
        break;
      case '--seconds':
        o.seconds = Number(v);
        break;
      case '--batch':
        o.batch = Number(v);
        break;
      case '--hits':
        o.hits = Number(v);
        break;
      case '--seed':
        o.seed = Number(v);
        break;
      case '--out':
        o.out = v;
        break;
      default:
        throw new Error(`unknown option ${argv[k]}`);
    }
  }
  return o;
}

interface Batch {
  buf: Uint8Array;
  offset: Uint32Array;
  capLen: Uint32Array;
  n: number;
  input: MatchInput;
}

/** Packets placed in the buffer the way the queue hands them over: offsets and captured lengths. */
function makeBatch(rules: readonly ResolvedRule[], n: number, hits: number, seed: number): Batch {
  const packets = generatePackets(rules, n, seed, hits).map((s) => buildPacket(s));
  const buf = new Uint8Array(n * SLOT);
  const offset = new Uint32Array(n);
  const capLen = new Uint32Array(n);
  packets.forEach((p, i) => {
    offset[i] = i * SLOT + HEADROOM;
    capLen[i] = p.length;
    buf.set(p, offset[i]);
  });
  const d = createDecodedBatch(n);
  const input: MatchInput = { d, inIfindex: new Uint32Array(n).fill(2), outIfindex: new Uint32Array(n).fill(3), hook: new Uint32Array(n).fill(HOOK_FORWARD), flowState: new Uint8Array(n) };
  return { buf, offset, capLen, n, input };
}

// One loop per matcher class so each call site stays monomorphic, as in the engine.
function passCompiled(matcher: CompiledMatcher, b: Batch): number {
  decodeBatch(b.buf, b.offset, b.capLen, b.n, b.input.d);
  let matched = 0;
  for (let i = 0; i < b.n; i++) if (matcher.match(b.input, i, 0) >= 0) matched++;
  return matched;
}

function passLinear(matcher: LinearMatcher, b: Batch): number {
  decodeBatch(b.buf, b.offset, b.capLen, b.n, b.input.d);
  let matched = 0;
  for (let i = 0; i < b.n; i++) if (matcher.match(b.input, i, 0) >= 0) matched++;
  return matched;
}

/**
 * The batch with each packet cut 8 bytes into its transport header, the way
 * a long IPv6 chain or a tiny fragment hides it: every packet is "hidden"
 * and goes to the --malformed drop guard.
 */
function hiddenBatch(b: Batch): Batch {
  const d = b.input.d;
  decodeBatch(b.buf, b.offset, b.capLen, b.n, d);
  const capLen = Uint32Array.from(b.capLen, (c, i) => Math.min(c, (d.family[i] === 6 ? 40 : 20) + 8));
  const input: MatchInput = { ...b.input, d: createDecodedBatch(b.n) };
  return { ...b, capLen, input };
}

function passGuard(guard: HiddenGuard, b: Batch): number {
  decodeBatch(b.buf, b.offset, b.capLen, b.n, b.input.d);
  let named = 0;
  for (let i = 0; i < b.n; i++) if (guard.overrules(b.input, i, -1) >= 0) named++;
  return named;
}

/** The guard's specification: a walk over every drop rule (what it did before it was indexed). */
function passWalk(rules: readonly ResolvedRule[], b: Batch): number {
  decodeBatch(b.buf, b.offset, b.capLen, b.n, b.input.d);
  let named = 0;
  for (let i = 0; i < b.n; i++) {
    for (let k = 0; k < rules.length; k++) {
      if ((rules[k].action === 'drop' || rules[k].action === 'reject') && couldMatch(rules[k], b.input, i)) {
        named++;
        break;
      }
    }
  }
  return named;
}

/** Decisions per second over one round of at least `seconds`. */
function round(pass: () => number, n: number, seconds: number): number {
  const budget = BigInt(Math.round(seconds * 1e9));
  const t0 = process.hrtime.bigint();
  let passes = 0;
  let elapsed = 0n;
  let sink = 0;
  do {
    sink += pass();
    passes++;
    elapsed = process.hrtime.bigint() - t0;
  } while (elapsed < budget);
  if (sink < 0) console.log(sink);
  return (passes * n) / (Number(elapsed) / 1e9);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

interface Result {
  matcher: 'compiled' | 'linear' | 'hidden-guard' | 'hidden-walk';
  rules: number;
  decisionsPerSec: number;
  nsPerDecision: number;
  rounds: number[];
  matchedShare: number;
}

function measure(matcher: Result['matcher'], rules: number, pass: () => number, n: number, o: Options): Result {
  const matchedShare = pass() / n;
  round(pass, n, Math.max(0.5, o.seconds)); // warm-up: let the JIT settle
  const rounds: number[] = [];
  for (let r = 0; r < o.rounds; r++) rounds.push(round(pass, n, o.seconds));
  const decisionsPerSec = median(rounds);
  return { matcher, rules, decisionsPerSec, nsPerDecision: 1e9 / decisionsPerSec, rounds, matchedShare };
}

function compileTimes(rules: readonly ResolvedRule[], times: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < times; k++) {
    const t0 = performance.now();
    compileMatcher(rules);
    out.push(performance.now() - t0);
  }
  return out;
}

const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  const sets = SIZES.map((size) => {
    const rules = generateRules(size, o.seed + size);
    const batch = makeBatch(rules, o.batch, o.hits, o.seed * 7919 + size);
    return { size, rules, batch, compiled: createMatcher(rules), linear: new LinearMatcher(rules) };
  });
  // Both matchers must decide the batch alike before their speed means anything.
  for (const s of sets) {
    decodeBatch(s.batch.buf, s.batch.offset, s.batch.capLen, s.batch.n, s.batch.input.d);
    for (let i = 0; i < s.batch.n; i++) {
      if (s.compiled.match(s.batch.input, i, 0) !== s.linear.match(s.batch.input, i, 0)) throw new Error(`matchers disagree: ${s.size} rules, packet ${i}`);
    }
  }

  const results: Result[] = [];
  for (const s of sets) results.push(measure('compiled', s.size, () => passCompiled(s.compiled, s.batch), s.batch.n, o));
  for (const s of sets) results.push(measure('linear', s.size, () => passLinear(s.linear, s.batch), s.batch.n, o));
  const big = sets[sets.length - 1];
  const compileMs = compileTimes(big.rules, 5);
  // Hidden packets are the attacker's to send: the guard must not cost a walk over the rules.
  for (const s of sets) {
    const hb = hiddenBatch(s.batch);
    const rs: RuleSet = { lock: false, default: 'accept', rules: s.rules.map((r) => Object.assign(anyRule(r.id, r.action), r)), origin: { file: 'bench', format: 'native', sha256: '' } };
    const guard = new HiddenGuard();
    guard.setRules(compileGuard(rs, s.rules));
    if (passGuard(guard, hb) !== passWalk(s.rules, hb)) throw new Error(`hidden guard and walk disagree: ${s.size} rules`);
    results.push(measure('hidden-guard', s.size, () => passGuard(guard, hb), hb.n, o));
    results.push(measure('hidden-walk', s.size, () => passWalk(s.rules, hb), hb.n, o));
  }

  const compiledAt = (size: number): Result => results.find((r) => r.matcher === 'compiled' && r.rules === size) as Result;
  const smallest = compiledAt(SIZES[0]);
  const largest = compiledAt(SIZES[SIZES.length - 1]);
  const ratio = smallest.decisionsPerSec / largest.decisionsPerSec;
  const goals = {
    decisionsAt10k: { goal: GOAL_DECISIONS, value: largest.decisionsPerSec, pass: largest.decisionsPerSec >= GOAL_DECISIONS },
    ratio10kTo10: { goal: GOAL_RATIO, value: ratio, pass: ratio <= GOAL_RATIO },
  };

  console.log(`\nnode ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}; batch ${o.batch} packets (${o.hits * 100}% aimed at rules), ${o.rounds} rounds of ${o.seconds}s, seed ${o.seed}\n`);
  console.log('| matcher | rules | decisions/s (median) | ns/decision | rounds min..max | matched |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of results) {
    console.log(`| ${r.matcher} | ${fmt(r.rules)} | ${fmt(r.decisionsPerSec)} | ${r.nsPerDecision.toFixed(0)} | ${fmt(Math.min(...r.rounds))}..${fmt(Math.max(...r.rounds))} | ${(r.matchedShare * 100).toFixed(0)}% |`);
  }
  const st = big.compiled.stats;
  console.log(`\ncompile ${fmt(big.size)} rules: first ${compileMs[0].toFixed(1)} ms, median ${median(compileMs).toFixed(1)} ms; ${st.lists} lists, ${st.listEntries} entries, homes ${JSON.stringify(st.homes)}, prefix lengths ${st.prefixLengths.join('/')}, max lists ${st.maxLists}`);
  console.log(`${goals.decisionsAt10k.pass ? 'PASS' : 'MISS'}: compiled at ${fmt(largest.rules)} rules ${fmt(largest.decisionsPerSec)} decisions/s (goal >= ${fmt(GOAL_DECISIONS)})`);
  console.log(`${goals.ratio10kTo10.pass ? 'PASS' : 'MISS'}: compiled time(${fmt(largest.rules)})/time(${fmt(smallest.rules)}) = ${ratio.toFixed(2)} (goal <= ${GOAL_RATIO})`);

  const out = path.resolve(o.out);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(
    out,
    JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, options: o, results, compileMs, compileStats: st, goals }, null, 2) + '\n',
  );
  console.log(`\nwrote ${path.relative(process.cwd(), out)}`);
}

main();
