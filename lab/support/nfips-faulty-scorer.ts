// `nfips` whose scoring pool runs faulty-score-worker.js:
//   node nfips-faulty-scorer.js FAULT_FILE run [flags...]
// The fault reaches the worker through run's start options, so the shipped
// worker has no test switch.
import path from 'node:path';
import { runCli } from '../../src/cli/main';

const [faultFile, ...args] = process.argv.slice(2);
if (faultFile === undefined || args[0] !== 'run') {
  process.stderr.write('usage: nfips-faulty-scorer.js FAULT_FILE run [flags...]\n');
  process.exit(2);
}
void runCli(args, { scoreWorker: { filename: path.join(__dirname, 'faulty-score-worker.js'), data: { faultFile } } });
