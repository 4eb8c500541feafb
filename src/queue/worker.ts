// Entry point of one queue thread: the batch pipeline on one NFQUEUE queue,
// or on a passive capture (the same pipeline; nothing is answered).
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { metaColumns } from '../batch/layout';
import { ENGINE_COUNTERS, EngineOptions, ruleCounterBytes } from '../verdict/engine';
import { RuleSnapshot } from '../verdict/rule-snapshot';
import { BatchPipeline } from '../pipeline/batch-pipeline';
import { warmUp } from '../pipeline/warmup';
import { StepCounter } from '../features/step-counter';
import { stepTransferList } from '../features/step';
import { FromQueueWorker, QueueWorkerInit, ToQueueWorker } from './messages';
import { loadAddon, NATIVE_COUNTERS, NativeQueue } from './native';
import { isSourceLost, QueueLoop, serveQueue } from './loop';
import { copyLiveSessions, SessionSnapshot } from '../flow/session-snapshot';

const init = workerData as QueueWorkerInit;
const port = parentPort!;
const queueNum = init.slot;
const source = init.source;
const batchSize = source.kind === 'nfqueue' ? source.queue.batchSize : source.capture.batchSize;
const post = (m: FromQueueWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

const all = new Float64Array(init.counters);
const nativeCounters = all.subarray(0, NATIVE_COUNTERS.length);
const engineCounters = all.subarray(NATIVE_COUNTERS.length, NATIVE_COUNTERS.length + ENGINE_COUNTERS.length);

// Errors from the batch callbacks are reported at most once a second, with a
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
  // Held only until the engine has it: neither workerData nor this frame (alive as long as the thread) keeps the first set's area.
  let first: RuleSnapshot | null = init.rules;
  if (first === null) throw new Error(`${source.kind === 'nfqueue' ? 'queue' : 'capture'} thread started without rules`);
  init.rules = null;
  warmUp(batchSize, first, engineOptions, init.features);
  let q: NativeQueue;
  try {
    const addon = loadAddon();
    q = source.kind === 'nfqueue' ? new addon.Queue({ ...source.queue, counters: nativeCounters }) : new addon.Capture({ ...source.capture, counters: nativeCounters });
  } catch (e) {
    post({ type: 'error', queue: queueNum, fatal: true, message: (e as Error).message, suppressed: 0 });
    return;
  }
  let ruleCounters = ruleCountersFor(first);
  const fs = init.features;
  // A closed step goes to the main thread with its buffers transferred; the
  // window summary over the last 60 steps is computed there.
  const windows = fs ? new StepCounter({ queue: queueNum, ...fs }, (step) => port.postMessage({ type: 'step', queue: queueNum, step } satisfies FromQueueWorker, stepTransferList(step))) : null;
  const pipe = new BatchPipeline({
    capacity: q.batchSize,
    meta: metaColumns(q.meta, q.batchSize),
    rules: first,
    rulesVersion: init.rulesVersion,
    ruleCounters,
    engine: engineOptions,
    counters: engineCounters,
    windows,
    flags: fs?.flags ?? null,
    onRuleEvents: (events, version) => post({ type: 'rule-events', queue: queueNum, version, events }),
    idleClock: () => Date.now() / 1000,
    flows: init.engine.flowsPerSecond === null ? null : { perSecond: init.engine.flowsPerSecond, queue: queueNum, idBase: init.flowIdBase },
    onFlows: (records) => post({ type: 'flows', queue: queueNum, records }),
  });
  first = null;
  const engine = pipe.engine;
  const packets = new Uint8Array(q.packets);
  post({ type: 'ready', queue: queueNum, warnings: q.warnings(), ruleCounters, rulesVersion: init.rulesVersion });

  const loop: QueueLoop = {
    decide: (n, from) => pipe.decide(n, packets, from),
    afterVerdicts: (n) => pipe.afterVerdicts(n, packets),
    onError: reportBatchError,
    between: () => {
      let stop = false;
      for (;;) {
        // Receiving is part of a swap's pause: the message is deserialised here.
        const received = performance.now();
        const got = receiveMessageOnPort(init.control);
        if (got === undefined) break;
        const m = got.message as ToQueueWorker;
        if (m.type === 'rules') {
          ruleCounters = m.ruleCounters;
          // After this the engine reads only m.rules; the ack below is what lets the main thread rewrite the area of the set before (supervisor.ts #compile).
          engine.setRules(m.rules, m.version, ruleCounters);
          const swapMs = performance.now() - received;
          post({ type: 'rules-applied', queue: queueNum, version: m.version, ruleCounters, swapMs });
        } else if (m.type === 'flags') {
          // A model learnt on this site replaces the one the thread started with.
          pipe.setFlagModel(m.flags);
        } else if (m.type === 'sessions') {
          // Packets wait for this like for a rule swap: only a copy of numbers
          // into the main thread's buffer, at most m.limit sessions; it makes the rows.
          const { copied, total } = copyLiveSessions(engine.sessions, Date.now() / 1000, new SessionSnapshot(m.buffer, m.limit));
          post({ type: 'sessions', queue: queueNum, id: m.id, buffer: m.buffer, limit: m.limit, copied, total }, [m.buffer]);
        } else if (m.type === 'stop') {
          stop = true;
        }
      }
      return stop;
    },
  };
  try {
    serveQueue(q, new Int32Array(init.controlFlag), CONTROL_POLL_MS, loop);
  } catch (e) {
    if (!isSourceLost(e)) throw e;
    // The supervisor logs this and starts the thread again (with backoff),
    // which opens the devices by name once they are back.
    post({ type: 'error', queue: queueNum, fatal: true, message: e.message, suppressed: 0 });
    // Its sessions end with the thread: the restarted one starts a table of its own.
    pipe.endAll(Date.now() / 1000);
    q.close();
    init.control.close();
    port.close();
    process.exitCode = 1;
    return;
  }
  // The queue is still bound but nothing is queued any more (stopQueueing came first): what is open now ends here.
  pipe.endAll(Date.now() / 1000);
  q.close();
  post({ type: 'stopped', queue: queueNum });
  init.control.close();
  port.close();
}

main();
