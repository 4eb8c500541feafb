// Entry point of one queue thread: receive -> decode -> verdict, nothing else.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { ENGINE_COUNTERS, EngineOptions, ruleCounterBytes, VerdictEngine } from '../verdict/engine';
import { warmUp } from '../verdict/warmup';
import { RuleSnapshot } from '../verdict/rule-snapshot';
import { StepCounter, windowInputsOf } from '../features/step-counter';
import { stepTransferList } from '../features/step';
import { openFlagModel } from '../flow/flag-model';
import { FromQueueWorker, QueueWorkerInit, ToQueueWorker } from './messages';
import { loadAddon, metaColumns, NATIVE_COUNTERS, NativeQueue } from './native';

const init = workerData as QueueWorkerInit;
const port = parentPort!;
const queueNum = init.queue.queue;
const post = (m: FromQueueWorker) => port.postMessage(m);

const all = new Float64Array(init.counters);
const nativeCounters = all.subarray(0, NATIVE_COUNTERS.length);
const engineCounters = all.subarray(NATIVE_COUNTERS.length, NATIVE_COUNTERS.length + ENGINE_COUNTERS.length);

// Errors from the batch callback are reported at most once a second, with a
// count of the ones held back, so a bug cannot flood the log.
let lastErrorAt = 0;
let suppressed = 0;
function reportBatchError(err: unknown): void {
  const now = Date.now();
  if (now - lastErrorAt < 1000) {
    suppressed++;
    return;
  }
  lastErrorAt = now;
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  post({ type: 'error', queue: queueNum, fatal: false, message, suppressed });
  suppressed = 0;
}

/** Longest a raised control flag waits while no packet arrives. */
const CONTROL_POLL_MS = 100;

const ruleCountersFor = (rules: RuleSnapshot) => new SharedArrayBuffer(ruleCounterBytes(rules.ruleCount));

function main(): void {
  const engineOptions: EngineOptions = init.engine;
  warmUp(init.queue.batchSize, init.rules, engineOptions, init.features);
  let q: NativeQueue;
  try {
    q = new (loadAddon().Queue)({ ...init.queue, counters: nativeCounters });
  } catch (e) {
    post({ type: 'error', queue: queueNum, fatal: true, message: (e as Error).message, suppressed: 0 });
    return;
  }
  const meta = metaColumns(q.meta, q.batchSize);
  let ruleCounters = ruleCountersFor(init.rules);
  const engine = new VerdictEngine(q.batchSize, meta, init.rules, init.rulesVersion, ruleCounters, engineOptions, engineCounters);
  const packets = new Uint8Array(q.packets);
  const onBatch = (n: number) => {
    engine.process(n, packets);
    if (engine.events.count > 0) post({ type: 'rule-events', queue: queueNum, version: engine.rulesVersion, events: engine.events.drain() });
  };
  // Side path: after the verdicts are sent, the batch feeds the windows.
  const fs = init.features;
  let afterVerdicts: ((n: number) => void) | undefined;
  if (fs) {
    // A closed step goes to the main thread with its buffers transferred; the
    // window summary over the last 60 steps is computed there.
    const windows = new StepCounter({ queue: queueNum, ...fs }, (step) => port.postMessage({ type: 'step', queue: queueNum, step } satisfies FromQueueWorker, stepTransferList(step)));
    engine.setFlagModel(fs.flags ? openFlagModel(fs.flags) : null);
    windows.attachEvidence(engine.evidence);
    const inputs = windowInputsOf(meta, engine);
    afterVerdicts = (n: number) => {
      if (n > 0) {
        engine.recordSessions(n);
        windows.observe(n, engine.decoded, inputs, packets);
      }
      else windows.advanceTo(Date.now() / 1000);
    };
  }
  post({ type: 'ready', queue: queueNum, warnings: q.warnings(), ruleCounters, rulesVersion: init.rulesVersion });

  // The thread lives in the native loop, like a C NFQUEUE loop: no event-loop
  // round trip per packet. It comes back here only for control messages.
  const flag = new Int32Array(init.controlFlag);
  for (;;) {
    try {
      q.run(onBatch, flag, CONTROL_POLL_MS, afterVerdicts);
    } catch (e) {
      reportBatchError(e);
    }
    // Clear before draining: a message posted meanwhile raises it again.
    Atomics.store(flag, 0, 0);
    let stop = false;
    for (;;) {
      // Receiving is part of a swap's pause: the message is deserialised here.
      const received = performance.now();
      const got = receiveMessageOnPort(init.control);
      if (got === undefined) break;
      const m = got.message as ToQueueWorker;
      if (m.type === 'rules') {
        ruleCounters = m.ruleCounters;
        engine.setRules(m.rules, m.version, ruleCounters);
        const swapMs = performance.now() - received;
        post({ type: 'rules-applied', queue: queueNum, version: m.version, ruleCounters, swapMs });
      } else if (m.type === 'flags') {
        // A model learnt on this site replaces the one the thread started with.
        engine.setFlagModel(m.flags ? openFlagModel(m.flags) : null);
      } else if (m.type === 'stop') {
        stop = true;
      }
    }
    if (stop) break;
  }
  q.close();
  post({ type: 'stopped', queue: queueNum });
  init.control.close();
  port.close();
}

main();
