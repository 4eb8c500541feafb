// A --log-file nfips cannot write is a start error (exit 2) naming the flag
// and saying what is wrong, with nothing installed: the audit trail must
// not be lost silently (issue 12: a directory or a read-only file system
// ran without a log; a path under a regular file said only "EEXIST: mkdir").
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { startInlineNfips } from '../../lab/netns/inline-nfips';
import { nsExec } from '../../lab/netns/topology';
import { requireIntegration } from '../helpers/env';

const NS = `nflog${process.pid % 100000}`;

test('an unwritable --log-file: exit 2 naming the flag and the reason, nothing installed', { timeout: 120_000 }, async (t: TestContext) => {
  await requireIntegration('mount', 'umount');
  execFileSync('ip', ['netns', 'add', NS]);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-logfile-'));
  const ro = path.join(dir, 'ro');
  mkdirSync(ro);
  let mounted = false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m,mode=0755', 'tmpfs', ro]);
    mounted = true;
    const aDir = path.join(dir, 'logs');
    mkdirSync(aDir);
    const regular = path.join(dir, 'regular');
    writeFileSync(regular, 'not a directory\n');
    const cases = [
      { what: 'a directory', logFile: aDir, message: /--log-file .*\/logs is a directory; give a file in it, e\.g\. .*\/logs\/nfips\.json/ },
      { what: 'a read-only file system', logFile: path.join(ro, 'nfips.json'), message: /--log-file .*\/ro\/nfips\.json: cannot write there, the file system is read-only/ },
      { what: 'a path under a regular file', logFile: path.join(regular, 'nfips.json'), message: /--log-file .*\/regular\/nfips\.json: .*\/regular cannot be its directory, a file is in the way/ },
    ];
    for (const c of cases) {
      const nf = startInlineNfips(NS, ['--queues', '0', '--stats-interval', '0', '--mode', 'off'], { logFile: c.logFile });
      const timer = setTimeout(() => nf.proc.kill('SIGKILL'), 20_000);
      const code = nf.proc.exitCode ?? (await once(nf.proc, 'exit'))[0];
      clearTimeout(timer);
      t.diagnostic(`${c.what}: exit ${String(code)}: ${nf.output().trim()}`);
      assert.equal(code, 2, `${c.what}: exit code; output:\n${nf.output()}`);
      assert.match(nf.output(), c.message, c.what);
      for (const table of ['mangle', 'filter']) {
        assert.doesNotMatch((await nsExec(NS, 'iptables', ['-w', '-t', table, '-S'])).stdout, /NFIPS/, `${c.what}: nothing installed`);
      }
      assert.doesNotMatch((await nsExec(NS, 'ipset', ['list', '-n'])).stdout, /nfips-/, `${c.what}: no block sets`);
      nf.cleanup();
    }
  } finally {
    if (mounted) execFileSync('umount', [ro]);
    execFileSync('ip', ['netns', 'del', NS]);
    rmSync(dir, { recursive: true, force: true });
  }
});
