// Drives the native addon inside a namespace through the queue thread's own
// loop (src/queue/loop.ts), for tests of the failure paths that nfips itself
// never takes on purpose.
// usage: node addon-harness.js <throw|unset|repeat|slow|throw2> QUEUE SECONDS [RECV_BYTES]
// RECV_BYTES offers only that many bytes of each receive slot to the kernel,
// so packet messages arrive cut short.
// slow and throw2 run the real batch pipeline with a rule that logs every
// packet, and hold each batch's first part a few milliseconds so that
// packets queue meanwhile and the batch stays open for later parts; throw2
// then fails every later part after its rules ran.
import { metaColumns, NF_REPEAT } from '../../src/batch/layout';
import { loadAddon, NATIVE_COUNTERS, STAGE_TIMES } from '../../src/queue/native';
import { serveQueue } from '../../src/queue/loop';
import { applyMark } from '../../src/verdict/mark';
import { BatchPipeline } from '../../src/pipeline/batch-pipeline';
import { parseRuleText } from '../../src/rules/load';
import { compileRuleSet } from '../../src/verdict/rule-snapshot';
import { ENGINE_COUNTERS, ruleCounterBytes } from '../../src/verdict/engine';

const [mode, queueText, secondsText, recvText] = process.argv.slice(2);
const counters = new Float64Array(NATIVE_COUNTERS.length);
const stageTimes = new Float64Array(STAGE_TIMES.length);
const open = mode === 'slow' || mode === 'throw2';
const q = new (loadAddon().Queue)({
  queue: Number(queueText),
  copyRange: 256,
  maxLen: 4096,
  rcvBuf: 4 << 20,
  batchSize: 64,
  gso: true,
  failOpen: true,
  failVerdict: NF_REPEAT,
  markValue: 1,
  markMask: 1,
  counters,
  recvBytes: recvText === undefined ? 0 : Number(recvText),
  stageTimes,
});
const meta = metaColumns(q.meta, q.batchSize);
let errors = 0;
// What JavaScript was given: packets, and the fewest and most bytes copied.
let jsPackets = 0;
let minCapLen = Infinity;
let maxCapLen = 0;
const until = Date.now() + Number(secondsText) * 1000;
const flag = new Int32Array(new SharedArrayBuffer(4));
/** Both calls see every batch; the loop's receive timeout brings them back at least this often. */
const POLL_MS = 50;
/** How long the first part of a batch is held in slow and throw2. */
const HOLD_MS = 5;
const hold = new Int32Array(new SharedArrayBuffer(4));
const packets = new Uint8Array(q.packets);
// Every packet a logged accept: one event per packet that got a real verdict.
const rules = compileRuleSet(parseRuleText(JSON.stringify({ default: 'accept', rules: [{ id: 'log-all', action: 'accept', log: true }] }), 'harness.json'), { ifindex: () => undefined });
let events = 0;
const pipe = new BatchPipeline({
  capacity: q.batchSize,
  meta,
  rules,
  rulesVersion: 1,
  ruleCounters: new ArrayBuffer(ruleCounterBytes(rules.ruleCount)),
  // No suppression: the event count must be the packet count.
  engine: { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 1e9, flowCapacity: 1024 },
  counters: new Float64Array(ENGINE_COUNTERS.length),
  windows: null,
  onRuleEvents: (ev) => (events += ev.length),
});
// throw2: a later part fails after its rules ran (its events recorded), as a bug further on would.
let failedParts = 0;
let failedPackets = 0;
/** from of the part that just failed; -1 once afterVerdicts or onError has seen it. */
let failedFrom = -1;
/** afterVerdicts calls that came right after a failed part, for exactly the parts before it. */
let afterForEarlierParts = 0;
let afterCalls = 0;
let afterPackets = 0;
if (mode === 'throw2') {
  const engine = pipe.engine;
  const decideRules = engine.process.bind(engine);
  engine.process = (n, bytes, from = 0) => {
    decideRules(n, bytes, from);
    if (from > 0) {
      failedParts++;
      failedPackets += n - from;
      failedFrom = from;
      throw new Error('later part failure on purpose');
    }
  };
}
process.stdout.write('ready\n');
serveQueue(q, flag, POLL_MS, {
  decide: (n, from) => {
    // The time check stands in for the main thread raising the flag.
    if (Date.now() >= until) Atomics.store(flag, 0, 1);
    if (open) {
      if (from === 0 && n > 0) Atomics.wait(hold, 0, 0, HOLD_MS);
      pipe.decide(n, packets, from);
      return;
    }
    if (n === from || mode === 'unset') return;
    if (mode === 'throw') throw new Error('handler failure on purpose');
    for (let i = from; i < n; i++) {
      jsPackets++;
      minCapLen = Math.min(minCapLen, meta.capLen[i]);
      maxCapLen = Math.max(maxCapLen, meta.capLen[i]);
      meta.verdict[i] = NF_REPEAT;
      meta.verdictMark[i] = applyMark(meta.mark[i], { value: 1, mask: 1 });
    }
  },
  afterVerdicts: (n) => {
    if (failedFrom >= 0 && n === failedFrom) afterForEarlierParts++;
    failedFrom = -1;
    afterCalls++;
    afterPackets += n;
    if (open) pipe.afterVerdicts(n, packets);
  },
  onError: () => {
    failedFrom = -1;
    errors++;
  },
  between: () => Date.now() >= until,
});
q.close();
const out: Record<string, number> = { onErrorCalls: errors, jsPackets, minCapLen: jsPackets ? minCapLen : 0, maxCapLen, events, failedParts, failedPackets, afterForEarlierParts, afterCalls, afterPackets };
NATIVE_COUNTERS.forEach((k, i) => (out[k] = counters[i]));
STAGE_TIMES.forEach((k, i) => (out[`stage_${k}`] = stageTimes[i]));
process.stdout.write(`${JSON.stringify(out)}\n`);
