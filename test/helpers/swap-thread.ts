// A worker built like a queue thread for the rule-reload tests: one engine,
// rule sets received in order on a port, swapped between two batches, and
// an acknowledgement posted after each swap. Each swap runs the test batch
// once on the old set (still read at that moment) and once on the new one,
// so a main thread that rewrote the old set's memory too early shows in the
// first verdicts.
import { MessagePort, parentPort, workerData } from 'node:worker_threads';
import { Field, metaColumns } from '../../src/batch/layout';
import { ENGINE_COUNTERS, ruleCounterBytes, VerdictEngine } from '../../src/verdict/engine';
import { RuleSnapshot } from '../../src/verdict/rule-snapshot';

export interface SwapThreadInit {
  control: MessagePort;
  /** Set to null by the thread once its engine took it. */
  rules: RuleSnapshot | null;
  /** Packets in 256-byte slots. */
  packets: Uint8Array;
  lengths: number[];
}

export type ToSwapThread = { type: 'rules'; rules: RuleSnapshot; version: number } | { type: 'stop' };
/** before/after: the verdicts of the test batch on the old and on the new set. */
export type FromSwapThread = { type: 'ready' } | { type: 'applied'; version: number; before: number[]; after: number[] };

const SLOT = 256;

function main(init: SwapThreadInit): void {
  const port = parentPort;
  if (!port) throw new Error('not a worker');
  const n = init.lengths.length;
  const meta = metaColumns(new ArrayBuffer(Field.Count * n * 4), n);
  init.lengths.forEach((len, i) => {
    meta.offset[i] = i * SLOT;
    meta.capLen[i] = len;
    meta.origLen[i] = len;
    meta.hook[i] = 2;
  });
  const first = init.rules;
  if (first === null) throw new Error('no rules');
  init.rules = null;
  const settings = { mode: 'repeat' as const, mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 10, flowCapacity: 64 };
  const engine = new VerdictEngine(n, meta, first, 0, new ArrayBuffer(ruleCounterBytes(first.ruleCount)), settings, new Float64Array(ENGINE_COUNTERS.length));
  const batch = (): number[] => {
    engine.process(n, init.packets);
    engine.events.drain();
    return Array.from(meta.verdict.subarray(0, n));
  };
  init.control.on('message', (m: ToSwapThread) => {
    if (m.type === 'stop') {
      init.control.close();
      return;
    }
    const before = batch();
    engine.setRules(m.rules, m.version, new ArrayBuffer(ruleCounterBytes(m.rules.ruleCount)));
    port.postMessage({ type: 'applied', version: m.version, before, after: batch() } satisfies FromSwapThread);
  });
  port.postMessage({ type: 'ready' } satisfies FromSwapThread);
}

main(workerData as SwapThreadInit);
