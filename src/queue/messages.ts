// Messages between the main thread and a queue thread.
import { RulesMode, VerdictMode } from '../verdict/engine';
import { MalformedPolicy } from '../verdict/hidden-guard';
import { MarkSpec } from '../verdict/mark';
import { RuleSnapshot } from '../verdict/rule-snapshot';
import { RuleEvent } from '../verdict/rule-events';
import { MessagePort } from 'node:worker_threads';
import { StepRecord } from '../features/step';
import { FeatureSettings } from '../pipeline/batch-pipeline';
import { CaptureOptions, QueueOptions } from './native';
import type { SharedFlagModel } from '../flow/flag-model';
import type { FlowRecord } from '../flow/flow-record';

export type { FeatureSettings };

export interface EngineSettings {
  mode: VerdictMode;
  mark: MarkSpec;
  rejectMark: MarkSpec;
  eventsPerSecond: number;
  flowCapacity: number;
  malformed: MalformedPolicy;
  rulesMode: RulesMode;
  /** Flow records per second per queue thread; null: no flow records. */
  flowsPerSecond: number | null;
}

/** Where a thread's packets come from: an NFQUEUE queue (inline) or a passive capture (watch). */
export type ThreadSource = { kind: 'nfqueue'; queue: Omit<QueueOptions, 'counters'> } | { kind: 'capture'; capture: Omit<CaptureOptions, 'counters'> };

export interface QueueWorkerInit {
  /** The slot's number in every message: the queue number, or the worker index of a capture. */
  slot: number;
  source: ThreadSource;
  /**
   * Compiled on the main thread; its arrays are shared memory, not copies.
   * The thread sets it to null once its engine took it, so workerData does
   * not pin the first set's memory for the thread's life.
   */
  rules: RuleSnapshot | null;
  rulesVersion: number;
  engine: EngineSettings;
  features: FeatureSettings | null;
  /** NATIVE_COUNTERS then ENGINE_COUNTERS, as float64. */
  counters: SharedArrayBuffer;
  /** Int32 flag the main thread raises after posting on `control`. */
  controlFlag: SharedArrayBuffer;
  /** Main -> queue thread messages, read synchronously between batches. */
  control: MessagePort;
  /** flowIdBase of the thread's queue (ids go on from its counters across restarts). */
  flowIdBase: number;
}

/** ruleCounters: the thread's counters for the new set, allocated by the main thread so the swap allocates nothing. */
export type ToQueueWorker = { type: 'rules'; rules: RuleSnapshot; version: number; ruleCounters: SharedArrayBuffer } | { type: 'flags'; flags: SharedFlagModel | null } | { type: 'sessions'; id: number; limit: number; buffer: ArrayBuffer } | { type: 'stop' };

export type FromQueueWorker =
  | { type: 'ready'; queue: number; warnings: string[]; ruleCounters: SharedArrayBuffer; rulesVersion: number }
  /** swapMs: how long the thread's packets waited for the swap (receiving the message included). */
  | { type: 'rules-applied'; queue: number; version: number; ruleCounters: SharedArrayBuffer; swapMs: number }
  | { type: 'rule-events'; queue: number; version: number; events: RuleEvent[] }
  | { type: 'error'; queue: number; fatal: boolean; message: string; suppressed: number }
  | { type: 'step'; queue: number; step: StepRecord }
  /** Sessions that ended, as EVE flow records, posted per batch after its verdicts. */
  | { type: 'flows'; queue: number; records: FlowRecord[] }
  /** The answer to a 'sessions' request: the lent buffer back, its first `copied` sessions filled (session-snapshot.ts), `total` live. */
  | { type: 'sessions'; queue: number; id: number; buffer: ArrayBuffer; limit: number; copied: number; total: number }
  | { type: 'stopped'; queue: number };
