// The files `nfips run` will write, checked before anything is bound or
// installed, so a bad path fails the start with a message naming its flag
// (exit 2) instead of a half-started gateway: the event log, the feature
// recording and the state directory. (The model is read, bounded and
// validated once, by the detection set-up.)
import { RunOptions } from './run-options';
import { checkAppendable, checkDirectory } from '../config/safe-file';
import { mkdirSync } from 'node:fs';
import { stateFilePath } from '../blocks/state-file';

export function checkRunFiles(o: RunOptions): void {
  checkAppendable(o.logFile, '--log-file', { mode: 0o640, dirMode: 0o750 });
  if (o.recordFeatures) checkAppendable(o.recordFeatures, '--record-features', { mode: 0o640 });
  try {
    mkdirSync(o.stateDir, { recursive: true, mode: 0o750 });
  } catch (e) {
    throw new Error(`invalid --state-dir ${o.stateDir}: cannot create it (${(e as Error).message})`);
  }
  checkDirectory(o.stateDir, '--state-dir', stateFilePath(o.stateDir));
}
