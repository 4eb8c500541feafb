// The scoring worker with faults on demand, for the classifier failure test:
// when the file named in workerData.faultFile appears, the first task to
// remove it throws, or ends its thread if the file says "exit". Otherwise it
// scores exactly as the production worker, which it wraps.
import { readFileSync, unlinkSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import score, { ScoreTask } from '../../src/detect/score-worker';
import { ScoreResult } from '../../src/detect/score';

const FAULT_FILE = (workerData as { faultFile?: unknown }).faultFile;
if (typeof FAULT_FILE !== 'string') throw new Error('faulty-score-worker: workerData.faultFile must name a file');

function injectedFault(file: string): void {
  let what: string;
  try {
    what = readFileSync(file, 'utf8').trim();
    unlinkSync(file);
  } catch {
    return; // no fault asked for yet, or another thread took it
  }
  if (what === 'exit') process.exit(3);
  throw new Error(`injected fault from ${file}`);
}

export default function faultyScore(task: ScoreTask): ScoreResult {
  injectedFault(FAULT_FILE as string);
  return score(task);
}
