// --learn: the duration flag, the learning state under --state-dir, resuming
// from the recording, and refusing a learning that does not match the run.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from '../../src/config/duration';
import { resolveRunOptions } from '../../src/app/run-options';
import { EnvelopeStats } from '../../src/detect/envelope';
import { learningFiles, prepareLearning, recordedSeconds } from '../../src/detect/learning';
import { FeatureRecorder } from '../../src/detect/record-file';

const fresh = () => mkdtempSync(path.join(tmpdir(), 'nfips-learn-'));

describe('durations', () => {
  it('parses the forms operators write', () => {
    assert.equal(parseDuration('learn', '24h'), 86400);
    assert.equal(parseDuration('learn', '1h30m'), 5400);
    assert.equal(parseDuration('learn', '90'), 90);
    assert.equal(parseDuration('learn', '2d'), 172800);
    assert.equal(parseDuration('learn', '0.5h'), 1800);
    for (const bad of ['0', '-5', 'soon', '1x', '', 'h', '0s']) assert.throws(() => parseDuration('learn', bad), /invalid --learn ".*": expected a positive duration/, bad);
    assert.equal(formatDuration(90061), '1d 1h 1m 1s');
    assert.equal(formatDuration(0), '0s');
  });

  it('run options: --learn is checked with the other flags', () => {
    assert.equal(resolveRunOptions({ learn: '2h' }).learnSeconds, 7200);
    assert.equal(resolveRunOptions({}).learnSeconds, null);
    assert.throws(() => resolveRunOptions({ learn: '0' }), /invalid --learn "0"/);
    assert.throws(() => resolveRunOptions({ learn: '40d' }), /at most 30 days/);
    assert.throws(() => resolveRunOptions({ learn: '1h', mode: 'off' }), /--learn with --mode off/);
    assert.throws(() => resolveRunOptions({ learn: '1h', recordFeatures: '/tmp/x' }), /--learn with --record-features/);
  });
});

describe('learning state', () => {
  const base = { learnSeconds: 3600, windowSeconds: 60, stepSeconds: 1, queues: 2 };

  it('starts, then resumes from what the recording holds', async () => {
    const stateDir = fresh();
    const first = prepareLearning({ ...base, stateDir });
    assert.deepEqual([first.resumed, first.learntSeconds, first.done], [false, 0, null]);
    const state = JSON.parse(readFileSync(first.files.state, 'utf8')) as { status: string; duration_s: number };
    assert.deepEqual([state.status, state.duration_s], ['learning', 3600]);
    // Two behaviour lines of 60 and 45 steps, as the detector writes them.
    const rec = new FeatureRecorder(first.files.recording, { windowSeconds: 60, stepSeconds: 1, queues: 2 });
    for (const steps of [60, 45]) {
      const s = new EnvelopeStats();
      s.steps = steps;
      rec.writeBehaviour(s, 1000 + steps);
    }
    await rec.close();
    assert.equal(recordedSeconds(first.files.recording), 105);
    const again = prepareLearning({ ...base, stateDir, learnSeconds: 7200 });
    assert.deepEqual([again.resumed, again.learntSeconds, again.startedAt], [true, 105, first.startedAt], 'a longer duration carries on');
  });

  it('refuses a learning with other window settings, a damaged state file, and a done state without its model', () => {
    const stateDir = fresh();
    prepareLearning({ ...base, stateDir });
    assert.throws(() => prepareLearning({ ...base, stateDir, windowSeconds: 10 }), /records 60 s windows, 1 s steps on 2 queue\(s\); this run has 10 s.*remove .*learning to learn from scratch/);
    const files = learningFiles(stateDir);
    writeFileSync(files.state, '{"format": "nfips-learning", "version": 1}');
    assert.throws(() => prepareLearning({ ...base, stateDir }), /learning\.json: at \(root\): missing required field "started_at"/);
    writeFileSync(files.state, JSON.stringify({ format: 'nfips-learning', version: 1, started_at: '2026-01-01T00:00:00Z', duration_s: 60, window_seconds: 60, step_seconds: 1, queues: 2, status: 'done', finished_at: '2026-01-01T01:00:00Z' }));
    assert.throws(() => prepareLearning({ ...base, stateDir }), /its model .*model\.json is gone/);
    // Bounded like every other JSON input: a located error, not a stack overflow.
    writeFileSync(files.state, '['.repeat(200_000));
    assert.throws(() => prepareLearning({ ...base, stateDir }), /learning\.json: at .*nested deeper than/);
    // nfips writes the state itself: a link put there is refused, not followed.
    rmSync(files.state);
    symlinkSync('/etc/passwd', files.state);
    assert.throws(() => prepareLearning({ ...base, stateDir }), /learning state .*learning\.json.*(link|ELOOP)/);
  });

  it('a state directory that cannot take the recording is a start error naming it', () => {
    const dir = fresh();
    const file = path.join(dir, 'file');
    writeFileSync(file, 'x');
    assert.throws(() => prepareLearning({ ...base, stateDir: path.join(file, 'sub') }), /invalid --state-dir .*file\/sub: cannot keep the --learn recording there/);
  });
});
