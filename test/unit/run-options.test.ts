import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { detectionSetup } from '../../src/app/detection-setup';
import { parseQueueRange, resolveRunOptions } from '../../src/app/run-options';

describe('nfips run options', () => {
  it('fills the documented defaults', () => {
    const o = resolveRunOptions({});
    assert.deepEqual(o.queues, { first: 0, last: 1 });
    assert.equal(o.hook, 'forward');
    assert.deepEqual(o.mark, { value: 1, mask: 1 });
    assert.equal(o.verdictMode, 'repeat');
    assert.equal(o.failClosed, false);
    assert.equal(o.copyRange, 256);
    assert.equal(o.queueMaxlen, 4096);
    assert.match(o.rules, /rules\/default\.json$/);
    assert.equal(o.logFile, '/var/log/nfips/nfips.json');
  });

  it('parses queue ranges', () => {
    assert.deepEqual(parseQueueRange('3'), { first: 3, last: 3 });
    assert.deepEqual(parseQueueRange('2-5'), { first: 2, last: 5 });
    assert.deepEqual(parseQueueRange('2:5'), { first: 2, last: 5 });
    assert.throws(() => parseQueueRange('5-2'), /5 is greater than 2/);
    assert.throws(() => parseQueueRange('a'), /expected N or A-B/);
    assert.throws(() => parseQueueRange('0-65536'), /0 to 65535/);
    assert.throws(() => parseQueueRange('0-100'), /at most 32 queues/);
  });

  it('collects every bad flag into one error', () => {
    assert.throws(
      () => resolveRunOptions({ hook: 'prerouting', mark: '0/0', copyRange: 10, exclude: ['10.0.0.0/40'], verdictMode: 'maybe' }),
      (e: Error) =>
        /--hook "prerouting": expected one of forward, input, both/.test(e.message) &&
        /invalid --mark "0\/0"/.test(e.message) &&
        /--copy-range 10: expected an integer from 64 to 65535/.test(e.message) &&
        /--exclude "10\.0\.0\.0\/40"/.test(e.message) &&
        /--verdict-mode "maybe"/.test(e.message),
    );
  });

  it('an empty path flag is refused, not read as the working directory', () => {
    assert.throws(() => resolveRunOptions({ rules: '', logFile: '', model: '' }), (e: Error) =>
      /invalid --rules "": give a file name/.test(e.message) && /invalid --log-file "": give a file name/.test(e.message) && /invalid --model "": give a file name/.test(e.message));
  });

  it('a mark clash blames the flag the user gave and names the default it clashes with', () => {
    assert.throws(() => resolveRunOptions({ mark: '0x1' }), (e: Error) =>
      e.message === 'invalid --mark "0x1" (no mask: it means 0x1/0xffffffff, every bit): its mask shares bits with the default --reject-mark 0x2/0x2; give --mark a mask that leaves those bits free, e.g. --mark 0x1/0x1, or set --reject-mark to bits your --mark does not use');
    assert.throws(() => resolveRunOptions({ rejectMark: '0x1/0x1' }), /invalid --reject-mark "0x1\/0x1": its mask shares bits with the default --mark 0x1\/0x1/);
    assert.throws(() => resolveRunOptions({ mark: '0x4/0x4', rejectMark: '0xc/0xc' }), /invalid --reject-mark "0xc\/0xc": its mask shares bits with --mark 0x4\/0x4; the two marks need separate bits/);
    assert.equal(resolveRunOptions({ mark: '0x4/0x4' }).mark.mask, 4);
  });

  it('--malformed: drop by default in every mode, policy on request, anything else refused', () => {
    for (const mode of ['prevent', 'detect', 'off']) assert.equal(resolveRunOptions({ mode }).malformed, 'drop');
    assert.equal(resolveRunOptions({ malformed: 'policy' }).malformed, 'policy');
    assert.throws(() => resolveRunOptions({ malformed: 'accept' }), /invalid --malformed "accept": expected one of drop, policy/);
  });

  it('block flags: defaults and checks', () => {
    const o = resolveRunOptions({});
    assert.deepEqual([o.allow, o.blockTtl, o.blockMaxTtl, o.maxBlocks, o.stateDir, o.ipset], [[], 600, 86400, 4096, '/var/lib/nfips', 'ipset']);
    assert.throws(
      () => resolveRunOptions({ allow: ['10.0.0.0/33', 'fd00::/8'], blockTtl: 7200, blockMaxTtl: 3600, maxBlocks: 0, stateDir: '' }),
      (e: Error) =>
        /--allow "10\.0\.0\.0\/33"/.test(e.message) && !/fd00/.test(e.message) &&
        /--block-ttl 7200: longer than --block-max-ttl 3600/.test(e.message) &&
        /--max-blocks 0/.test(e.message) && /--state-dir ""/.test(e.message),
    );
    assert.throws(() => resolveRunOptions({ blockMaxTtl: 3_000_000 }), /--block-max-ttl 3000000: expected an integer from 1 to 2147483/);
  });

  it('detection flags: defaults, checks, and the window settled against the model', () => {
    const o = resolveRunOptions({});
    assert.equal(o.mode, 'prevent');
    assert.match(o.model, /models\/default\.json$/);
    assert.deepEqual([o.windowSeconds, o.stepSeconds, o.scoringThreads, o.recordFeatures], [undefined, undefined, 1, '']);
    assert.throws(() => resolveRunOptions({ mode: 'block', scoringThreads: 0, windowSeconds: 5, stepSeconds: 10 }), (e: Error) =>
      /--mode "block": expected one of prevent, detect, off/.test(e.message) && /--scoring-threads 0/.test(e.message) && /--step-seconds 10: longer than --window-seconds 5/.test(e.message));

    const off = detectionSetup(resolveRunOptions({ mode: 'off' }));
    assert.deepEqual([off.features, off.model], [null, null], 'rules only: no feature path at all');
    const rec = detectionSetup(resolveRunOptions({ mode: 'off', recordFeatures: path.join(mkdtempSync(path.join(tmpdir(), 'nfips-opt-')), 'x.jsonl'), windowSeconds: 30 }));
    assert.deepEqual(rec.features, { windowSeconds: 30, stepSeconds: 1, maxSourcesPerStep: 256, flags: null }, 'recording without a model');

    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-opt-'));
    const m = path.join(dir, 'm.json');
    copyFileSync(o.model, m);
    const det = detectionSetup(resolveRunOptions({ model: m }));
    assert.ok(det.model);
    assert.deepEqual(det.features?.windowSeconds, det.model.windowSeconds);
    assert.throws(() => detectionSetup(resolveRunOptions({ model: m, windowSeconds: det.model!.windowSeconds + 1 })), /--window-seconds \d+ differs from the model's/);
    const wrongQueues = JSON.parse(readFileSync(m, 'utf8')) as { queues: number };
    wrongQueues.queues = 5;
    writeFileSync(m, JSON.stringify(wrongQueues));
    assert.match(detectionSetup(resolveRunOptions({ model: m })).warnings.join(), /trained on windows of 5 queue\(s\) and this run has 2/);
    assert.throws(() => detectionSetup(resolveRunOptions({ mode: 'off', recordFeatures: path.join(dir, 'no', 'dir.jsonl') })), /invalid --record-features .*no\/dir\.jsonl: cannot use its directory .*ENOENT/);
    writeFileSync(m, '{"format":"nfips-model"}');
    assert.throws(() => detectionSetup(resolveRunOptions({ model: m })), /m\.json: at/);
  });
});
