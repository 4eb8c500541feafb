// Piscina worker: scores window vectors against the model it was started
// with. Runs on the pool's threads, never on a queue thread.
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

export default function score(task: ScoreTask): ScoreResult {
  return scorer.score(task.values);
}
