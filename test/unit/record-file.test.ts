import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FEATURE_COUNT, FEATURE_NAMES, FEATURE_SET_VERSION } from '../../src/features/feature-set';
import { FeatureRecorder, readFeatureRecords } from '../../src/detect/record-file';

const dir = mkdtempSync(path.join(tmpdir(), 'nfips-rec-'));
const values = Array.from({ length: FEATURE_COUNT }, (_, k) => k * 1.5);
const window = { queue: 1, start: 100, end: 160, packets: 500, values, totals: { packets: 0, bytes: 0, syn: 0, icmpEcho: 0, udp: 0, newSessions: 0 }, sources: [] };

describe('feature recordings', () => {
  it('round-trips windows with the run\'s window and step', async () => {
    const f = path.join(dir, 'a.jsonl');
    const rec = new FeatureRecorder(f, { windowSeconds: 60, stepSeconds: 1, queues: 2 });
    rec.write(window);
    rec.write({ ...window, queue: 0, end: 161 });
    await rec.close();
    const got = readFeatureRecords(f);
    assert.equal(got.length, 2);
    assert.deepEqual(got[0], { queue: 1, windowSeconds: 60, stepSeconds: 1, queues: 2, start: 100, end: 160, packets: 500, values });
  });

  it('appending after a crash mid-line starts on a fresh line, so the file stays readable', async () => {
    const f = path.join(dir, 'torn.jsonl');
    const first = new FeatureRecorder(f, { windowSeconds: 60, stepSeconds: 1, queues: 1 });
    first.write(window);
    await first.close();
    writeFileSync(f, readFileSync(f, 'utf8') + '{"feature_set":1,"wind', { flag: 'w' });
    const second = new FeatureRecorder(f, { windowSeconds: 60, stepSeconds: 1, queues: 1 });
    second.write(window);
    second.write(window);
    await second.close();
    assert.throws(() => readFeatureRecords(f), /torn\.jsonl:2: not JSON/, 'the torn line is reported where it is');
    const lines = readFileSync(f, 'utf8').split('\n');
    assert.equal(lines.length, 5, 'the torn line stayed alone on its line');
    assert.doesNotThrow(() => JSON.parse(lines[2]));
  });

  it('a path that cannot be opened fails at once; a later write error is reported, not thrown', async () => {
    assert.throws(() => new FeatureRecorder(path.join(dir, 'no', 'such', 'dir.jsonl'), { windowSeconds: 60, stepSeconds: 1, queues: 1 }), /ENOENT/);
    assert.throws(() => new FeatureRecorder('/dev/full', { windowSeconds: 60, stepSeconds: 1, queues: 1 }), /--record-features \/dev\/full is a device, not a regular file/);
    const errors: string[] = [];
    const r = new FeatureRecorder(path.join(dir, 'failing.jsonl'), { windowSeconds: 60, stepSeconds: 1, queues: 1 }, (e) => errors.push(e.message));
    // The descriptor goes away under the recorder, as a disk error would make every write fail.
    closeSync((r as unknown as { out: { fd: number } }).out.fd);
    for (let k = 0; k < 5; k++) r.write(window);
    await r.close();
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(errors.length, 1, 'reported once');
    assert.match(errors[0], /EBADF/);
    r.write(window);
    assert.ok(r.dropped >= 1, 'later windows are counted as dropped');
  });

  it('tolerates a torn last line (a crash mid-write) but not a bad line in the middle', () => {
    const good = JSON.stringify({ feature_set: FEATURE_SET_VERSION, window_seconds: 60, step_seconds: 1, queues: 1, queue: 0, start: 1, end: 2, packets: 3, features: Object.fromEntries(FEATURE_NAMES.map((n) => [n, 1])) });
    const f = path.join(dir, 'b.jsonl');
    writeFileSync(f, `${good}\n${good}\n{"feature_se`);
    assert.equal(readFeatureRecords(f).length, 2);
    const g = path.join(dir, 'c.jsonl');
    writeFileSync(g, `${good}\n{oops\n${good}\n${good}\n`);
    assert.throws(() => readFeatureRecords(g), /c\.jsonl:2: not JSON/);
  });

  it('names the file, line and JSON path of a wrong value, and refuses another feature set', () => {
    const base = { feature_set: FEATURE_SET_VERSION, window_seconds: 60, step_seconds: 1, queues: 1, queue: 0, start: 1, end: 2, packets: 3, features: Object.fromEntries(FEATURE_NAMES.map((n) => [n, 1])) };
    const f = path.join(dir, 'd.jsonl');
    writeFileSync(f, JSON.stringify({ ...base, features: { ...base.features, udp_share: 'x' } }) + '\n');
    assert.throws(() => readFeatureRecords(f), /d\.jsonl:1: at \/features\/udp_share: expected a number, got "x"/);
    writeFileSync(f, JSON.stringify({ ...base, feature_set: 0 }) + '\n');
    assert.throws(() => readFeatureRecords(f), new RegExp(`at /feature_set: expected ${FEATURE_SET_VERSION}`));
    writeFileSync(f, JSON.stringify({ ...base, packets: null }) + '\n');
    assert.throws(() => readFeatureRecords(f), /at \/packets: expected a number, got null/);
    assert.throws(() => readFeatureRecords(path.join(dir, 'missing.jsonl')), /missing\.jsonl: cannot read/);
  });
});
