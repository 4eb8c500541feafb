// A classifier worker that throws or dies: the failure is logged, the pool
// replaces the worker, scoring goes on, and the verdict path never notices.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { InlineNfips, LogRecord, startInlineNfips } from '../../lab/netns/inline-nfips';
import { startNormalTraffic } from '../../lab/netns/normal-traffic';
import { createTopology } from '../../lab/netns/topology';
import { requireIntegration } from '../helpers/env';
import { PACKAGE_ROOT } from '../../src/config/paths';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function totals(nf: InlineNfips): { received: number; scored: number; errors: number } {
  const last = new Map<unknown, LogRecord>();
  for (const r of nf.events('stats')) last.set(r.queue, r);
  let received = 0;
  let scored = 0;
  let errors = 0;
  for (const r of last.values()) {
    received += Number(r.received);
    const c = r.classifier as { scored: number; errors: number } | null;
    scored += c?.scored ?? 0;
    errors += c?.errors ?? 0;
  }
  return { received, scored, errors };
}

async function until(what: string, ms: number, fn: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return;
    await sleep(200);
  }
  assert.fail(`${what} within ${ms} ms`);
}

test('a classifier worker that throws, then one that exits: logged, replaced, verdicts unaffected', { timeout: 300_000 }, async (t: TestContext) => {
  await requireIntegration('ping');
  const topo = await createTopology('nfcf');
  const fault = path.join(mkdtempSync(path.join(tmpdir(), 'nfips-fault-')), 'fault');
  const entry = [path.join(PACKAGE_ROOT, 'dist', 'lab', 'support', 'nfips-faulty-scorer.js'), fault];
  // The shipped model with 10 s windows: only full windows are scored, and what
  // is tested here is the pool's handling of a failing worker, not the model's judgement.
  const model = path.join(path.dirname(fault), 'model-10s.json');
  writeFileSync(model, JSON.stringify({ ...JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'models', 'default.json'), 'utf8')), windowSeconds: 10, queues: 1 }));
  const nf = startInlineNfips(topo.gateway, ['--mode', 'detect', '--queues', '0', '--stats-interval', '1', '--model', model], { entry });
  try {
    await nf.waitFor('ready', 20_000);
    // Traffic must outlast one window, plus the faults.
    const traffic = await startNormalTraffic(topo, { seconds: 50, seed: 5 });
    await until('windows are scored', 40_000, () => totals(nf).scored >= 3);
    for (const kind of ['throw', 'exit'] as const) {
      const before = totals(nf);
      const errorsBefore = nf.events('classifier_error').length;
      writeFileSync(fault, kind);
      await until(`the ${kind} fault is taken`, 15_000, () => !existsSync(fault));
      const err = await nf.waitFor('classifier_error', 10_000, () => nf.events('classifier_error').length > errorsBefore);
      t.diagnostic(`${kind}: ${JSON.stringify(nf.events('classifier_error').slice(errorsBefore))}`);
      assert.ok(err, `${kind} logged`);
      await until(`scoring goes on after the ${kind}`, 15_000, () => totals(nf).scored >= before.scored + 3);
      assert.ok(totals(nf).received > before.received, 'packets kept being verdicted');
    }
    const summary = await traffic.done;
    assert.ok(summary.http.ok > 20 && summary.http.failed === 0, `normal traffic unaffected: ${JSON.stringify(summary.http)}`);
    assert.equal(nf.proc.exitCode, null, 'nfips still running');
    assert.equal(await nf.stop(), 0);
    const finals = nf.events('stats_final');
    assert.ok(finals.every((r) => Number(r.fail_verdicts) === 0 && Number(r.js_errors) === 0), 'no verdict fell back to the failure verdict');
  } finally {
    await nf.stop();
    nf.cleanup();
    await topo.destroy();
  }
});
