// `nfips rules stats | head -1` used to die with an unhandled EPIPE stack
// trace. A reader that closes the pipe early is a normal end, for every
// command: exit quietly.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ControlServer } from '../../src/control/server';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { RuleStats } from '../../src/queue/supervisor';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

/** Runs `nfips ARGS | head -1` and returns the shell's view of nfips: its stderr and exit status. */
async function pipedToHead(args: string[]): Promise<{ code: number; stderr: string; first: string }> {
  const quoted = [process.execPath, NFIPS, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // PIPESTATUS: nfips' own exit status, not head's.
  const child = spawn('bash', ['-c', `${quoted} | head -1; exit \${PIPESTATUS[0]}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  return { code, stderr: err, first: out };
}

test('nfips rules stats | head -1 ends quietly with exit 0', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-epipe-'));
  // Far more than a pipe holds (64 KiB), so nfips is still writing when head leaves.
  const stats: RuleStats = {
    version: 1,
    file: '/etc/nfips/rules.json',
    sha256: 'ab'.repeat(32),
    rules: Array.from({ length: 20_000 }, (_, i) => ({ id: `rule-number-${i}`, action: 'drop', packets: i, bytes: i * 60 })) as RuleStats['rules'],
    default: { action: 'accept', packets: 0, bytes: 0 },
  };
  const server = await ControlServer.listen(path.join(dir, 'control.sock'), async () => stats);
  try {
    for (const args of [['rules', 'stats'], ['rules', 'stats', '--json']]) {
      const r = await pipedToHead([...args, '--control-socket', path.join(dir, 'control.sock')]);
      assert.match(r.first, /rules version 1|^\{/, `head got the first line: ${JSON.stringify(r)}`);
      assert.doesNotMatch(r.stderr, /EPIPE|Error|at /, `no stack trace: ${r.stderr}`);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    // A command with no control socket: iptables print, longer than a pipe holds with many excludes.
    const excludes = Array.from({ length: 3000 }, (_, i) => ['--exclude', `10.${(i >> 8) & 255}.${i & 255}.0/24`]).flat();
    const p = await pipedToHead(['iptables', 'print', '--no-ipv6', ...excludes]);
    assert.doesNotMatch(p.stderr, /EPIPE|Error/);
    assert.equal(p.code, 0, p.stderr);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
