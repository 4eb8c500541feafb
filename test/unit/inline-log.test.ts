import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { followLog, readLog } from '../../lab/netns/inline-nfips';

test('followLog parses only appended lines, waits for a line\'s newline, and starts over on a new file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-follow-'));
  try {
    const file = path.join(dir, 'nfips.json');
    const follow = followLog(file);
    assert.deepEqual(follow(), [], 'no file yet');
    const line = (n: number, extra = '') => JSON.stringify({ event_type: 'flow', timestamp: `t${n}`, note: `é${extra}` });
    writeFileSync(file, `${line(1)}\n${line(2)}\n${line(3).slice(0, 20)}`);
    assert.deepEqual(follow().map((r) => r.timestamp), ['t1', 't2']);
    appendFileSync(file, `${line(3).slice(20)}\n${line(4, '€')}\n`);
    const got = follow();
    assert.deepEqual(got.map((r) => r.timestamp), ['t1', 't2', 't3', 't4']);
    assert.equal(got[3].note, 'é€');
    assert.deepEqual(got, readLog(file), 'the same records as a whole-file read');
    renameSync(file, `${file}.1`);
    writeFileSync(file, `${line(9)}\n`);
    assert.deepEqual(follow().map((r) => r.timestamp), ['t9'], 'a reopened log is read from its start');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
