// Messages between the main thread and a queue thread.
import { MarkSpec } from '../verdict/mark';
import { VerdictMode } from '../verdict/engine';
import { RuleSet } from '../rules/types';
import { QueueOptions } from './native';

export interface QueueWorkerInit {
  queue: Omit<QueueOptions, 'counters'>;
  rules: RuleSet;
  mode: VerdictMode;
  mark: MarkSpec;
  /** NATIVE_COUNTERS then ENGINE_COUNTERS, as float64. */
  counters: SharedArrayBuffer;
}

export type ToQueueWorker = { type: 'rules'; rules: RuleSet; version: number } | { type: 'stop' };

export type FromQueueWorker =
  | { type: 'ready'; queue: number; warnings: string[] }
  | { type: 'rules-applied'; queue: number; version: number }
  | { type: 'error'; queue: number; fatal: boolean; message: string; suppressed: number }
  | { type: 'stopped'; queue: number; rulePackets: number[] };
