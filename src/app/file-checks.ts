// The files `nfips run` will write, checked before anything is bound or
// installed, so a bad path fails the start with a message naming its flag
// (exit 2) instead of a half-started gateway: the event log, the feature
// recording, the state directory, and the model it will read.
import { RunOptions } from '../config/run-options';
import { checkAppendable, checkDirectory } from '../config/safe-file';
import { mkdirSync } from 'node:fs';
import { stateFilePath } from '../blocks/state-file';
import { loadModelBounded } from './model-input';

export function checkRunFiles(o: RunOptions): void {
  checkAppendable(o.logFile, '--log-file', { mode: 0o640, dirMode: 0o750 });
  if (o.recordFeatures) checkAppendable(o.recordFeatures, '--record-features', { mode: 0o640 });
  try {
    mkdirSync(o.stateDir, { recursive: true, mode: 0o750 });
  } catch (e) {
    throw new Error(`invalid --state-dir ${o.stateDir}: cannot create it (${(e as Error).message})`);
  }
  checkDirectory(o.stateDir, '--state-dir', stateFilePath(o.stateDir));
  // The model is validated again where it is used; here its size and nesting are bounded first.
  if (o.mode !== 'off' || o.learnSeconds !== null) loadModelBounded(o.model);
}
