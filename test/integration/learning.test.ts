// Site learning on the real kernel path: `nfips run --learn` records this
// site's traffic while only alerting, survives a kill -9 by resuming from
// its recording, trains a site model, writes it and switches to prevent
// mode with it; a later start uses the learnt model without learning again.
// Short windows (10 s) keep the learning short enough for a test.
import assert from 'node:assert/strict';
import { ChildProcess, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test, TestContext } from 'node:test';
import { loadModel } from '../../src/detect/model';
import { startInlineNfips } from '../../lab/netns/inline-nfips';
import { NormalTraffic, startNormalTraffic } from '../../lab/netns/normal-traffic';
import { createTopology } from '../../lab/netns/topology';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LEARN_S = 100;

test('nfips run --learn: records while alerting only, resumes after kill -9, learns a site model and blocks with it', { timeout: 600_000 }, async (t: TestContext) => {
  await requireIntegration('ping');
  const topo = await createTopology('nflr');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-learn-'));
  const stateDir = path.join(dir, 'state');
  const args = ['--learn', `${LEARN_S}s`, '--window-seconds', '10', '--queues', '0-1', '--stats-interval', '5', '--state-dir', stateDir, '--block-ttl', '60'];
  const attacker = topo.addr.clientExtra4[3]!;
  let nf = startInlineNfips(topo.gateway, args);
  let traffic: NormalTraffic | null = null;
  let flood: ChildProcess | null = null;
  const status = async () => JSON.parse((await execFileP(process.execPath, [NFIPS, 'status', '--json', '--control-socket', nf.controlSocket])).stdout) as { learning: { state: string; learnt_s: number; percent: number } | null };
  try {
    await nf.waitFor('ready', 20_000);
    const started = await nf.waitFor('learning', 1000);
    assert.equal(started.state, 'started');
    assert.ok(nf.events('config_warning').some((w) => /no alerts while learning/.test(String(w.warning))), 'the shipped model has 60 s windows: it cannot alert on 10 s ones, and nfips says so');
    traffic = await startNormalTraffic(topo, { seconds: 400, seed: 31 });
    await sleep(45_000);
    const during = await status();
    assert.equal(during.learning?.state, 'learning');
    assert.ok(during.learning.learnt_s >= 20, `progress is reported: ${JSON.stringify(during.learning)}`);

    // A crash in the middle: the restart carries on from the recording.
    nf.proc.kill('SIGKILL');
    await nf.stop();
    nf.cleanup();
    nf = startInlineNfips(topo.gateway, args);
    await nf.waitFor('ready', 20_000);
    const resumed = await nf.waitFor('learning', 1000);
    assert.equal(resumed.state, 'resumed');
    assert.ok(Number(resumed.learnt_s) >= 20, `resumed from the recording, not from zero: ${JSON.stringify(resumed)}`);

    const learnt = await nf.waitFor('model_learnt', (LEARN_S + 60) * 1000);
    t.diagnostic(`learnt: ${JSON.stringify({ windows: learnt.windows, k: learnt.k, threshold: learnt.threshold, learnt_s: learnt.learnt_s })}`);
    await nf.waitFor('mode_changed', 10_000);
    const modelFile = path.join(stateDir, 'model.json');
    assert.ok(existsSync(modelFile));
    const m = loadModel(modelFile);
    assert.deepEqual([m.windowSeconds, m.queues], [10, 2]);
    assert.match(m.training.source, /learnt by nfips run --learn/);
    assert.equal((await status()).learning?.state, 'done');
    assert.deepEqual(nf.events('block'), [], 'nothing blocked while learning (nor on the normal traffic since)');

    // Now in prevent mode with the site's model.
    const onset = Date.now();
    flood = topo.spawn(topo.client, 'ping', ['-f', '-q', '-I', attacker, topo.addr.server4]);
    const block = await nf.waitFor('block', 15_000, (r) => r.src_ip === attacker);
    t.diagnostic(`after learning, a ping flood was blocked ${Date.parse(block.timestamp) - onset} ms after onset`);
    flood.kill('SIGINT');
    await nf.stop();
    nf.cleanup();

    // A later start runs with the learnt model at once.
    nf = startInlineNfips(topo.gateway, args);
    await nf.waitFor('ready', 20_000);
    const again = await nf.waitFor('learning', 1000);
    assert.equal(again.state, 'done');
    assert.equal(nf.events('config_warning').length, 0);
    await nf.stop();
    nf.cleanup();

    // Bad input: a start error (exit 2), nothing installed.
    const notDir = path.join(dir, 'a-file');
    writeFileSync(notDir, 'x');
    for (const [extra, message] of [[['--learn', '0'], /invalid --learn "0"/], [['--learn', 'soon'], /invalid --learn "soon"/], [['--learn', '1h', '--state-dir', path.join(notDir, 'sub')], /--state-dir .*a-file\/sub/], [['--learn', '1h', '--mode', 'off'], /--learn with --mode off/]] as const) {
      const bad = startInlineNfips(topo.gateway, [...extra]);
      const code = bad.proc.exitCode ?? (await once(bad.proc, 'exit'))[0];
      assert.equal(code, 2, `${extra.join(' ')}: ${bad.output()}`);
      assert.match(bad.output(), message);
      assert.ok(!(await topo.exec(topo.gateway, 'iptables', ['-w', '-S'])).stdout.includes('NFIPS'), 'nothing installed');
      bad.cleanup();
    }
  } finally {
    flood?.kill('SIGKILL');
    await traffic?.stop().catch(() => undefined);
    await nf.stop();
    nf.cleanup();
    await topo.destroy();
  }
});
