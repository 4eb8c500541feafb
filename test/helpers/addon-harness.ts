// Drives the native addon inside a namespace through the queue thread's own
// loop (src/queue/loop.ts), for tests of the failure paths that nfips itself
// never takes on purpose.
// usage: node addon-harness.js <throw|unset|repeat> QUEUE SECONDS [RECV_BYTES]
// RECV_BYTES offers only that many bytes of each receive slot to the kernel,
// so packet messages arrive cut short.
import { metaColumns, NF_REPEAT } from '../../src/batch/layout';
import { loadAddon, NATIVE_COUNTERS } from '../../src/queue/native';
import { serveQueue } from '../../src/queue/loop';
import { applyMark } from '../../src/verdict/mark';

const [mode, queueText, secondsText, recvText] = process.argv.slice(2);
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
  recvBytes: recvText === undefined ? 0 : Number(recvText),
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
process.stdout.write('ready\n');
serveQueue(q, flag, POLL_MS, {
  decide: (n, from) => {
    // The time check stands in for the main thread raising the flag.
    if (Date.now() >= until) Atomics.store(flag, 0, 1);
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
  afterVerdicts: () => undefined,
  onError: () => errors++,
  between: () => Date.now() >= until,
});
q.close();
const out: Record<string, number> = { onErrorCalls: errors, jsPackets, minCapLen: jsPackets ? minCapLen : 0, maxCapLen };
NATIVE_COUNTERS.forEach((k, i) => (out[k] = counters[i]));
process.stdout.write(`${JSON.stringify(out)}\n`);
