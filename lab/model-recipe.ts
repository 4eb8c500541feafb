// `make model`: regenerates models/default.json. Builds the namespace
// topology, runs nfips inline with --record-features while two kinds of
// normal traffic play together: the scripted recipe the tests and the demo
// use (lab/netns/normal-traffic.ts) and real programs (lab/real-traffic.ts:
// curl, dig, ssh/scp, ping against python http.server, dnsmasq and sshd, as
// `make eval` plays with other seeds), then trains on the recording: the
// traffic classifier on its windows, the per-source envelope and the TCP
// flag-sequence model on its behaviour lines.
//   node dist/lab/model-recipe.js [--minutes 15] [--seed 1] [--out models/default.json]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PACKAGE_ROOT } from '../src/config/paths';
import { parseQueueRange, WINDOW_DEFAULTS } from '../src/app/run-options';
import { readRecording } from '../src/detect/record-file';
import { startInlineNfips } from './netns/inline-nfips';
import { startNormalTraffic } from './netns/normal-traffic';
import { createTopology, netnsUnavailableReason } from './netns/topology';
import { saveModel } from '../src/detect/model';
import { trainModel } from '../src/detect/train';
import { printTrainSummary } from '../src/detect/train-report';
import { startRealTraffic } from './real-traffic';

export interface RecipeOptions {
  /** Keep the recorded windows here (default: a temporary file, deleted). */
  record?: string;
  minutes: number;
  seed: number;
  out: string;
  queues: string;
}

export async function makeDefaultModel(o: RecipeOptions, say: (line: string) => void): Promise<void> {
  const range = parseQueueRange(o.queues); // a bad --queues fails before anything is built
  const reason = await netnsUnavailableReason();
  if (reason) throw new Error(`make model: ${reason}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-model-'));
  const record = o.record ? path.resolve(o.record) : path.join(dir, 'windows.jsonl');
  const t = await createTopology('nfmdl');
  const nfips = startInlineNfips(t.gateway, ['--mode', 'off', '--record-features', record, '--queues', o.queues, '--stats-interval', '0']);
  try {
    await nfips.waitFor('ready', 20_000);
    say(`recording ${o.minutes} min of normal traffic (seed ${o.seed}: the scripted recipe and real programs together) through nfips on queues ${o.queues}`);
    const seconds = o.minutes * 60;
    const scripted = await startNormalTraffic(t, { seconds, seed: o.seed });
    const real = await startRealTraffic(t, { seconds, seed: o.seed, clients: [t.addr.client4, ...t.addr.clientExtra4] }).catch(async (e: Error) => {
      await scripted.stop();
      throw e;
    });
    const started = Date.now();
    const ticker = setInterval(() => say(`  ${Math.round((Date.now() - started) / 1000)} / ${seconds} s`), 30_000);
    const [a, b] = await Promise.all([scripted.done, real.done]).finally(() => clearInterval(ticker));
    say(`scripted traffic: ${JSON.stringify(a)}`);
    say(`real programs: ${JSON.stringify(b)}`);
    await nfips.stop();
    const recording = readRecording(record);
    const { model, summary: s } = trainModel(recording.windows, recording.behaviour, {
      ...WINDOW_DEFAULTS,
      queues: range.last - range.first + 1,
      source: `normal traffic recipe (lab/netns/normal-traffic.ts) and real programs (lab/real-traffic.ts) together, ${o.minutes} min, seed ${o.seed}, recorded inline by nfips run --record-features`,
      command: `make model (node dist/lab/model-recipe.js --minutes ${o.minutes} --seed ${o.seed} --queues ${o.queues})`,
    });
    saveModel(o.out, model);
    printTrainSummary(s, o.out, say);
  } finally {
    await nfips.stop();
    nfips.cleanup();
    await t.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const argv = yargs(hideBin(process.argv))
    .option('minutes', { type: 'number', default: 15 })
    .option('seed', { type: 'number', default: 1 })
    .option('queues', { type: 'string', default: '0-1' })
    .option('out', { type: 'string', default: path.join(PACKAGE_ROOT, 'models', 'default.json') })
    .option('record', { type: 'string', describe: 'keep the recorded feature windows in this file' })
    .strict()
    .parseSync();
  makeDefaultModel(argv, (l) => process.stdout.write(`${l}\n`)).catch((e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
}
