// Drives the native addon directly inside a namespace, for tests of the
// failure paths that nfips itself never takes on purpose.
// usage: node addon-harness.js <throw|unset|repeat> QUEUE SECONDS
import { loadAddon, metaColumns, NATIVE_COUNTERS, NF_REPEAT } from '../../src/queue/native';
import { applyMark } from '../../src/verdict/mark';

const [mode, queueText, secondsText] = process.argv.slice(2);
const counters = new Float64Array(NATIVE_COUNTERS.length);
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
});
const meta = metaColumns(q.meta, q.batchSize);
let errors = 0;
q.start(
  (n) => {
    if (mode === 'throw') throw new Error('handler failure on purpose');
    if (mode === 'unset') return;
    for (let i = 0; i < n; i++) {
      meta.verdict[i] = NF_REPEAT;
      meta.verdictMark[i] = applyMark(meta.mark[i], { value: 1, mask: 1 });
    }
  },
  () => errors++,
);
process.stdout.write('ready\n');
setTimeout(() => {
  q.close();
  const out: Record<string, number> = { onErrorCalls: errors };
  NATIVE_COUNTERS.forEach((k, i) => (out[k] = counters[i]));
  process.stdout.write(`${JSON.stringify(out)}\n`);
}, Number(secondsText) * 1000);
