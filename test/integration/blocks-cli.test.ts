// `nfips blocks` against a running nfips and a stopped one: flush empties
// the kernel sets, re-adding reports the reason and TTL it replaced, and a
// block added while nfips is stopped lands in the state file and in the
// kernel at the next start.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { parseSave } from '../../src/blocks/ipset';
import { startInlineNfips } from '../../lab/netns/inline-nfips';
import { nsExec } from '../../lab/netns/topology';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const NS = `nfbc${process.pid}`;

test('blocks add/flush through the running nfips, and add while it is stopped, applied at the next start', { timeout: 120_000 }, async () => {
  await requireIntegration();
  execFileSync('ip', ['netns', 'add', NS]);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-blockscli-'));
  const stateDir = path.join(dir, 'state');
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [] }));
  const args = ['--rules', rules, '--queues', '0', '--mode', 'off', '--stats-interval', '0', '--state-dir', stateDir];
  let nf = startInlineNfips(NS, args);
  const cli = async (...a: string[]) => {
    try {
      const r = await execFileP(process.execPath, [NFIPS, 'blocks', ...a, '--control-socket', nf.controlSocket, '--state-dir', stateDir]);
      return { code: 0, out: r.stdout, err: r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, out: x.stdout, err: x.stderr };
    }
  };
  const kernel = async () => parseSave((await nsExec(NS, 'ipset', ['save'])).stdout).filter((e) => e.set.startsWith('nfips-'));
  try {
    await nf.waitFor('ready', 20_000);
    // Asked on another socket, inside the namespace: taken as stopped, but warned that nfips' sets are live.
    const elsewhere = await execFileP('ip', ['netns', 'exec', NS, process.execPath, NFIPS, 'blocks', 'add', '192.0.2.99', '--control-socket', path.join(dir, 'other.sock'), '--state-dir', path.join(dir, 'other-state')]);
    assert.match(elsewhere.stderr, /nfips is not running \(nothing answers on .*other\.sock\)/);
    assert.match(elsewhere.stderr, /warning: nfips' block sets are in the kernel \(nfips-src4, .*\): if an nfips runs with another --control-socket \(or none\), it does not see this/);
    const add = await cli('add', '192.0.2.7', '--ttl', '300', '--reason', 'first');
    assert.equal(add.code, 0, add.err);
    assert.match(add.out, /^blocked 192\.0\.2\.7 \(source\) until /);
    assert.equal(add.err, '', 'running: nothing said about the state file');
    const again = await cli('add', '192.0.2.7', '--ttl', '900', '--reason', 'second');
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /^replaced 192\.0\.2\.7 \(source\): reason "first" -> "second", ttl 300 s \(\d+ s left, until \S+\) -> 900 s, until \S+\n$/);
    const ev = await nf.waitFor('block', 5000, (r) => r.action === 'replaced');
    assert.deepEqual([(ev.replaced as { reason: string }).reason, (ev.replaced as { ttl_seconds: number }).ttl_seconds], ['first', 300]);
    const entry = (await kernel()).find((e) => e.member === '192.0.2.7');
    assert.ok(entry && entry.timeout > 800, `the kernel entry has the new time: ${JSON.stringify(entry)}`);

    assert.equal((await cli('add', '198.51.100.0/24', '--proto', 'icmp')).code, 0);
    assert.equal((await kernel()).length, 2);
    const flush = await cli('flush');
    assert.equal(flush.code, 0, flush.err);
    assert.equal(flush.out, 'unblocked 2 blocks: 192.0.2.7, 198.51.100.0/24 icmp\n');
    assert.deepEqual(await kernel(), [], 'the kernel sets are empty');
    assert.equal((await cli('list')).out, 'no blocks\n');
    assert.equal(nf.events('unblock').filter((r) => r.reason === 'manual').length, 2);

    assert.equal((await cli('add', '192.0.2.9', '--ttl', '600')).code, 0);
    assert.equal(await nf.stop(), 0);
    nf.cleanup();

    // Stopped: the state file is edited, and the command says so.
    const off = await cli('add', '192.0.2.10', '--ttl', '600', '--reason', 'while stopped');
    assert.equal(off.code, 0, off.err);
    assert.match(off.err, /nfips is not running .*; edited the state file .*state\/blocks\.json, applied at next start/);
    const list = JSON.parse((await cli('list', '--json')).out) as { key: string }[];
    assert.deepEqual(list.map((b) => b.key), ['192.0.2.9', '192.0.2.10']);

    nf = startInlineNfips(NS, args);
    await nf.waitFor('ready', 20_000);
    assert.deepEqual((await kernel()).map((e) => `${e.set} ${e.member}`).sort(), ['nfips-src4 192.0.2.10', 'nfips-src4 192.0.2.9']);
    assert.equal(nf.events('block').filter((r) => r.action === 'restored').length, 2);
    assert.equal(await nf.stop(), 0);
  } finally {
    await nf.stop();
    nf.cleanup();
    execFileSync('ip', ['netns', 'del', NS]);
    rmSync(dir, { recursive: true, force: true });
  }
});
