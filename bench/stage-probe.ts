// One queue thread's loop with per-stage timing on, run inside the bench
// gateway namespace by bench/batch-stages.ts (not shipped).
// usage: node stage-probe.js <nfips|bare> QUEUE SECONDS
//   nfips: the queue thread's pipeline as `nfips run` sets it up by default
//          (rules/default.json, features and the default model's flag part);
//   bare:  the same loop whose decide only writes repeat + mark: the floor
//          a JavaScript consumer of this addon can reach.
// Prints one JSON line: STAGE_TIMES totals, each batch's stage times and the native counters.
import path from 'node:path';
import { metaColumns, NF_REPEAT } from '../src/batch/layout';
import { PACKAGE_ROOT } from '../src/config/paths';
import { RUN_DEFAULTS } from '../src/app/run-options';
import { shareFlagModel } from '../src/flow/flag-model';
import { loadModel } from '../src/detect/model';
import { StepCounter } from '../src/features/step-counter';
import { compileRuleSet } from '../src/verdict/rule-snapshot';
import { BatchPipeline, FeatureSettings } from '../src/pipeline/batch-pipeline';
import { warmUp } from '../src/pipeline/warmup';
import { serveQueue } from '../src/queue/loop';
import { loadAddon, NATIVE_COUNTERS, STAGE_SAMPLE_FIELDS, STAGE_TIMES } from '../src/queue/native';
import { ifindexOf } from '../src/rules/interfaces';
import { readRuleFile } from '../src/rules/load';
import { ENGINE_COUNTERS, EngineOptions, ruleCounterBytes } from '../src/verdict/engine';
import { applyMark } from '../src/verdict/mark';

const [mode, queueText, secondsText] = process.argv.slice(2);
if (mode !== 'nfips' && mode !== 'bare') throw new Error('usage: stage-probe.js <nfips|bare> QUEUE SECONDS');
const MARK = { value: 1, mask: 1 };
const counters = new Float64Array(NATIVE_COUNTERS.length);
/** Totals, then room for this many batches' own times. */
const SAMPLES = 20_000;
const stages = new Float64Array(STAGE_TIMES.length + SAMPLES * STAGE_SAMPLE_FIELDS.length);
const rules = compileRuleSet(readRuleFile(path.join(PACKAGE_ROOT, 'rules', 'default.json')), { ifindex: ifindexOf });
const engine: EngineOptions = { mode: 'repeat', mark: MARK, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: RUN_DEFAULTS.logRate, flowCapacity: 1 << 16 };
const model = loadModel(RUN_DEFAULTS.model);
const features: FeatureSettings = { windowSeconds: model.windowSeconds, stepSeconds: model.stepSeconds, maxSourcesPerStep: 256, flags: shareFlagModel(model.flags) };
if (mode === 'nfips') warmUp(RUN_DEFAULTS.batchSize, rules, engine, features);

const q = new (loadAddon().Queue)({
  queue: Number(queueText),
  copyRange: RUN_DEFAULTS.copyRange,
  maxLen: RUN_DEFAULTS.queueMaxlen,
  rcvBuf: RUN_DEFAULTS.rcvbufMb << 20,
  batchSize: RUN_DEFAULTS.batchSize,
  gso: true,
  failOpen: true,
  failVerdict: NF_REPEAT,
  markValue: MARK.value,
  markMask: MARK.mask,
  counters,
  stageTimes: stages,
});
const meta = metaColumns(q.meta, q.batchSize);
const packets = new Uint8Array(q.packets);
const until = Date.now() + Number(secondsText) * 1000;
const flag = new Int32Array(new SharedArrayBuffer(4));
let decide: (n: number, from: number) => void;
let after: (n: number) => void;
if (mode === 'nfips') {
  // Closed steps are dropped here; the queue thread posts them (structured clone, transfer).
  const pipe = new BatchPipeline({
    capacity: q.batchSize,
    meta,
    rules,
    rulesVersion: 0,
    ruleCounters: new SharedArrayBuffer(ruleCounterBytes(rules.ruleCount)),
    engine,
    counters: new Float64Array(new SharedArrayBuffer(ENGINE_COUNTERS.length * 8)),
    windows: new StepCounter({ queue: 0, ...features }, () => undefined),
    flags: features.flags,
    onRuleEvents: () => undefined,
    idleClock: () => Date.now() / 1000,
  });
  decide = (n, from) => pipe.decide(n, packets, from);
  after = (n) => pipe.afterVerdicts(n, packets);
} else {
  decide = (n, from) => {
    for (let i = from; i < n; i++) {
      meta.verdict[i] = NF_REPEAT;
      meta.verdictMark[i] = applyMark(meta.mark[i], MARK);
    }
  };
  after = () => undefined;
}
process.stdout.write('ready\n');
serveQueue(q, flag, 50, {
  decide: (n, from) => {
    if (n === 0 && Date.now() >= until) Atomics.store(flag, 0, 1);
    decide(n, from);
  },
  afterVerdicts: after,
  onError: (e) => {
    throw e;
  },
  between: () => Date.now() >= until,
});
q.close();
const out: Record<string, number | number[]> = {};
STAGE_TIMES.forEach((k, i) => (out[k] = stages[i]));
NATIVE_COUNTERS.forEach((k, i) => (out[`native.${k}`] = counters[i]));
// Each stage's per-batch times, as recorded.
const kept = Math.min(stages[0], SAMPLES);
STAGE_SAMPLE_FIELDS.forEach((k, f) => (out[`samples.${k}`] = Array.from({ length: kept }, (_, b) => stages[STAGE_TIMES.length + b * STAGE_SAMPLE_FIELDS.length + f])));
process.stdout.write(`${JSON.stringify(out)}\n`);
