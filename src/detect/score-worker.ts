// Piscina worker: scores window vectors against the model it was started
// with. Runs on the pool's threads, never on a queue thread.
import { readFileSync, unlinkSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { Model } from './model';
import { createScorer, ScoreResult } from './score';

export interface ScoreTask {
  values: number[];
}

export interface ScoreWorkerData {
  model: Model;
}

const scorer = createScorer((workerData as ScoreWorkerData).model);

// Fault injection for the failure tests: when this names a file, the first
// task to remove it throws, or ends its thread if the file says "exit".
const FAULT_FILE = process.env.NFIPS_TEST_SCORE_FAULT;

function injectedFault(file: string): void {
  let what: string;
  try {
    what = readFileSync(file, 'utf8').trim();
    unlinkSync(file);
  } catch {
    return; // no fault asked for, or another thread took it
  }
  if (what === 'exit') process.exit(3);
  throw new Error(`injected fault from ${file}`);
}

export default function score(task: ScoreTask): ScoreResult {
  if (FAULT_FILE) injectedFault(FAULT_FILE);
  return scorer.score(task.values);
}
