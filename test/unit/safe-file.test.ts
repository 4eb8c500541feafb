// Files nfips writes and reads: no symlink followed, no FIFO, no directory
// others may write to, new files 0640, reads capped; errors name the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkAppendable, openForAppend, readFileBounded } from '../../src/config/safe-file';
import { closeSync, writeSync } from 'node:fs';
import { createEventLog } from '../../src/log/event-log';
import { readBlockState, stateFilePath, writeBlockState } from '../../src/blocks/state-file';

const root = mkdtempSync(path.join(tmpdir(), 'wt11b-safe-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = path.join(root, `d${n++}`);
  mkdirSync(d, { mode: 0o700 });
  return d;
};
const mode = (f: string) => statSync(f).mode & 0o777;

test('a new file is created 0640 whatever the umask, and appended to', () => {
  const f = path.join(fresh(), 'nfips.json');
  const old = process.umask(0);
  try {
    const fd = openForAppend(f, '--log-file');
    writeSync(fd, 'a\n');
    closeSync(fd);
  } finally {
    process.umask(old);
  }
  assert.equal(mode(f), 0o640);
  const fd = openForAppend(f, '--log-file');
  writeSync(fd, 'b\n');
  closeSync(fd);
  assert.equal(readFileSync(f, 'utf8'), 'a\nb\n');
});

test('a symbolic link in the file\'s place is refused, not followed; the error names the flag', () => {
  const d = fresh();
  const target = path.join(d, 'elsewhere');
  writeFileSync(target, 'precious\n');
  const link = path.join(d, 'nfips.json');
  symlinkSync(target, link);
  assert.throws(() => checkAppendable(link, '--log-file'), /^UnsafeFileError: --log-file .*nfips\.json is a symbolic link; nfips does not follow links/);
  assert.equal(readFileSync(target, 'utf8'), 'precious\n', 'the link target is untouched');
});

test('a FIFO is refused at once instead of hanging (writing and reading)', () => {
  const d = fresh();
  const fifo = path.join(d, 'blocks.json');
  execFileSync('mkfifo', [fifo]);
  const started = Date.now();
  assert.throws(() => checkAppendable(fifo, '--record-features'), /--record-features .*blocks\.json is a FIFO/);
  assert.throws(() => readFileBounded(fifo, 'state file', { maxBytes: 100 }), /state file .*blocks\.json is a FIFO, not a regular file/);
  assert.ok(Date.now() - started < 2000);
});

test('a directory, and a file in a directory every user may write to, are refused', () => {
  const d = fresh();
  assert.throws(() => checkAppendable(d, '--log-file'), /--log-file .* is a directory(, not a regular file|; give a file in it)/);
  const open = path.join(d, 'shared');
  mkdirSync(open);
  chmodSync(open, 0o1777);
  assert.throws(() => checkAppendable(path.join(open, 'nfips.json'), '--log-file'), /--log-file .*nfips\.json: its directory .*shared is writable by every user \(mode 1777\)/);
});

test('reads are capped in size; a missing file is ENOENT for the caller to decide', () => {
  const d = fresh();
  const f = path.join(d, 'rules.json');
  writeFileSync(f, 'x'.repeat(1000));
  assert.equal(readFileBounded(f, 'rules file', { maxBytes: 1000 }).length, 1000);
  assert.throws(() => readFileBounded(f, 'rules file', { maxBytes: 999 }), /rules file .*rules\.json is more than 999 bytes, the limit for it/);
  assert.throws(() => readFileBounded(path.join(d, 'none'), 'rules file', { maxBytes: 10 }), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  const link = path.join(d, 'link.json');
  symlinkSync(f, link);
  assert.equal(readFileBounded(link, 'rules file', { maxBytes: 1000 }).length, 1000, 'rules may be a link');
  assert.throws(() => readFileBounded(link, 'state file', { maxBytes: 1000, noFollow: true }), /state file .*link\.json is a symbolic link/);
});

test('the event log is opened the same way: 0640, never through a link', async () => {
  const d = fresh();
  const f = path.join(d, 'log', 'nfips.json');
  const log = createEventLog({ file: f, fileLabel: '--log-file', console: false, level: 'info' });
  log.event('hello', { n: 1 });
  await log.close();
  assert.equal(mode(f), 0o640);
  assert.equal(mode(path.dirname(f)), 0o750);
  assert.match(readFileSync(f, 'utf8'), /"event_type":"hello"/);
  const link = path.join(d, 'link.json');
  symlinkSync(f, link);
  assert.throws(() => createEventLog({ file: link, fileLabel: '--log-file', console: false, level: 'info' }), /--log-file .*link\.json is a symbolic link/);
});

test('the block state: written 0600, read without following a link, a FIFO refused with the file named', () => {
  const d = fresh();
  const file = stateFilePath(d);
  writeBlockState(file, { blocks: [], offences: [] }, Date.now());
  assert.equal(mode(file), 0o600);
  assert.deepEqual(readBlockState(file), { blocks: [], offences: [] });
  const other = fresh();
  const linked = stateFilePath(other);
  symlinkSync(file, linked);
  assert.throws(() => readBlockState(linked), /blocks\.json: at \(root\): state file .*blocks\.json is a symbolic link/);
  const fifoDir = fresh();
  execFileSync('mkfifo', [stateFilePath(fifoDir)]);
  assert.throws(() => readBlockState(stateFilePath(fifoDir)), /blocks\.json: at \(root\): state file .* is a FIFO, not a regular file/);
});
