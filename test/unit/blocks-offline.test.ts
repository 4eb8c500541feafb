// `nfips blocks` while nfips is not running: the commands edit the state
// file the next start restores, and say so; re-adding a block reports the
// reason and time to live it replaced.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { OfflineBlocks } from '../../src/blocks/offline';
import { readBlockState } from '../../src/blocks/state-file';
import { acquireInstanceLock } from '../../src/app/instance-lock';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

test('blocks list/add/del/flush on the state file when nothing answers on the control socket', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-offline-'));
  const stateDir = path.join(dir, 'state');
  const nfips = (...args: string[]) => {
    const r = spawnSync(process.execPath, [NFIPS, 'blocks', ...args, '--control-socket', path.join(dir, 'none.sock'), '--state-dir', stateDir], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  try {
    const empty = nfips('list');
    assert.equal(empty.code, 0, empty.err);
    assert.equal(empty.out, 'no blocks\n');
    assert.match(empty.err, /nfips is not running \(nothing answers on .*none\.sock\); read the state file .*state\/blocks\.json/);

    const add = nfips('add', '192.0.2.7', '--proto', 'tcp', '--port', '22', '--ttl', '300', '--reason', 'ssh guessing');
    assert.equal(add.code, 0, add.err);
    assert.match(add.out, /^blocked 192\.0\.2\.7 tcp:22 \(service\) until /);
    assert.match(add.err, /nfips is not running .*; edited the state file .*blocks\.json, applied at next start/);
    assert.equal(statSync(path.join(stateDir, 'blocks.json')).mode & 0o777, 0o600);

    const again = nfips('add', '192.0.2.7', '--proto', 'tcp', '--port', '22', '--ttl', '900', '--reason', 'still guessing');
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /^replaced 192\.0\.2\.7 tcp:22 \(service\): reason "ssh guessing" -> "still guessing", ttl 300 s \(\d+ s left, until \S+\) -> 900 s, until \S+\n$/);

    assert.equal(nfips('add', '2001:db8::/64', '--ttl', '60').code, 0);
    const list = nfips('list', '--json');
    assert.equal(list.code, 0, list.err);
    const blocks = JSON.parse(list.out) as { key: string; reason: string; ttl_seconds: number; remaining_s: number }[];
    assert.deepEqual(blocks.map((b) => [b.key, b.reason, b.ttl_seconds]), [['192.0.2.7 tcp:22', 'still guessing', 900], ['2001:db8::/64', 'manual', 60]]);
    const saved = readBlockState(path.join(stateDir, 'blocks.json'));
    assert.equal(saved.blocks.length, 2, 'what the next start restores');

    const del = nfips('del', '192.0.2.7/32 tcp:22');
    assert.equal(del.code, 0, del.err);
    assert.equal(del.out, 'unblocked 192.0.2.7 tcp:22\n');
    assert.notEqual(nfips('del', '192.0.2.7').code, 0, 'deleting what is not there is an error');
    assert.match(nfips('add', '192.0.2.300').err, /"192\.0\.2\.300" is not an IPv4 or IPv6 address or CIDR/);

    assert.equal(nfips('add', '198.51.100.0/24').code, 0);
    const flush = nfips('flush');
    assert.equal(flush.code, 0, flush.err);
    assert.equal(flush.out, 'unblocked 2 blocks: 2001:db8::/64, 198.51.100.0/24\n');
    assert.deepEqual(JSON.parse(readFileSync(path.join(stateDir, 'blocks.json'), 'utf8')).blocks, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('blocks that expired while stopped are left out; a damaged state file names the file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-offline-'));
  try {
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    const o = new OfflineBlocks(dir, 600, t0);
    o.add({ net: '192.0.2.1', ttl_seconds: 10 });
    o.add({ net: '192.0.2.2', ttl_seconds: 1000 });
    const later = new OfflineBlocks(dir, 600, t0 + 60_000);
    assert.deepEqual(later.list().map((b) => [b.key, b.remaining_s]), [['192.0.2.2', 940]]);
    assert.throws(() => later.add({ net: '192.0.2.3', ttl_seconds: 0 }), /invalid --ttl 0/);
    writeFileSync(path.join(dir, 'blocks.json'), '{"format": "nfips-blocks",');
    assert.throws(() => new OfflineBlocks(dir, 600), /blocks\.json: .*not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an nfips that holds the state directory but answers on another socket: nothing is edited behind its back', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-offline-'));
  const stateDir = path.join(dir, 'state');
  // This process stands in for the running nfips: it holds the state directory's lock.
  mkdirSync(stateDir, { mode: 0o750 });
  const lock = await acquireInstanceLock({ stateDir, chain: `T${process.pid}` });
  try {
    const r = spawnSync(process.execPath, [NFIPS, 'blocks', 'add', '192.0.2.7', '--control-socket', path.join(dir, 'none.sock'), '--state-dir', stateDir], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`nfips \\(pid ${process.pid}\\) is already running with --state-dir .*state .*it answers on its own --control-socket; give that \\(nothing answers on .*none\\.sock\\)`));
    assert.throws(() => readFileSync(path.join(stateDir, 'blocks.json')), /ENOENT/, 'no state file written');
  } finally {
    lock.release();
    rmSync(dir, { recursive: true, force: true });
  }
});
