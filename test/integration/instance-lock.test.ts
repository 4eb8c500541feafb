// Two real `nfips run` on one gateway. Issue 12: a second instance (own
// state directory, other queues) removed the first one's "stale" chain and
// emptied its block sets, then stopped and took the chain away for good.
// Now the second one must exit 1 naming the first one's pid and change
// nothing: chain, jumps, sets, blocks and control socket stay the first's.
// Once the first is gone (even by kill -9), a new one starts and replaces
// what the dead one left.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { promisify } from 'node:util';
import { InlineNfips, readLog, startInlineNfips } from '../../lab/netns/inline-nfips';
import { createTopology, Topology } from '../../lab/netns/topology';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

async function exitOf(nf: InlineNfips, timeoutMs: number): Promise<number | string> {
  const timer = setTimeout(() => nf.proc.kill('SIGKILL'), timeoutMs);
  const [code, sig] = nf.proc.exitCode !== null || nf.proc.signalCode !== null ? [nf.proc.exitCode, nf.proc.signalCode] : await once(nf.proc, 'exit');
  clearTimeout(timer);
  return (code as number | null) ?? (sig as string);
}

/** Everything of nfips' in the gateway's kernel: its iptables lines and its sets with their entries. */
async function kernelState(topo: Topology): Promise<string> {
  const parts: string[] = [];
  for (const bin of ['iptables', 'ip6tables']) {
    for (const table of ['mangle', 'filter']) {
      const out = (await topo.exec(topo.gateway, bin, ['-w', '-t', table, '-S'])).stdout;
      parts.push(`${bin} ${table}:`, ...out.split('\n').filter((l) => l.includes('NFIPS')));
    }
  }
  // Entries only: their timeouts count down between two listings.
  const sets = (await topo.exec(topo.gateway, 'ipset', ['list'])).stdout;
  parts.push(...sets.split('\n').filter((l) => /^Name: |^\d|^[0-9a-f:]+[/ ,]/.test(l)).map((l) => l.replace(/ timeout \d+.*/, '')));
  return parts.join('\n');
}

test('a second nfips on the same gateway refuses to start and leaves the first one\'s chain, sets and blocks alone', { timeout: 240_000 }, async (t: TestContext) => {
  await requireIntegration('nc');
  const topo = await createTopology('nflk');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lock-'));
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [{ id: 'no-telnet', action: 'drop', protocol: 'tcp', dport: 23 }] }));
  const base = ['--rules', rules, '--stats-interval', '0', '--mode', 'off'];
  const blocked = topo.addr.clientExtra4[3] as string;
  const started: InlineNfips[] = [];
  const start = (args: string[]) => {
    const nf = startInlineNfips(topo.gateway, [...base, ...args]);
    started.push(nf);
    return nf;
  };
  try {
    const first = start(['--queues', '0-1']);
    await first.waitFor('ready', 30_000);
    const firstPid = (await first.waitFor('start', 1000)).config as { pid: number; state_dir: string };
    await execFileP(process.execPath, [NFIPS, 'blocks', 'add', blocked, '--ttl', '600', '--reason', 'lock test', '--control-socket', first.controlSocket]);
    const before = await kernelState(topo);
    assert.match(before, new RegExp(blocked.replace(/\./g, '\\.')), 'the block is in a kernel set');

    const cases: { what: string; args: string[] }[] = [
      // The case: own state directory and control socket, other queues; same chain.
      { what: 'own state dir, other queues', args: ['--queues', '2-3'] },
      // Same state directory and control socket as the first.
      { what: 'same state dir and control socket', args: ['--queues', '2-3', '--state-dir', firstPid.state_dir, '--control-socket', first.controlSocket] },
    ];
    for (const c of cases) {
      const second = start(c.args);
      const code = await exitOf(second, 30_000);
      t.diagnostic(`${c.what}: exit ${String(code)}: ${second.output().trim()}`);
      assert.equal(code, 1, `${c.what}: exit code; output:\n${second.output()}`);
      assert.match(second.output(), new RegExp(`another nfips \\(pid ${firstPid.pid}\\) is already running`), c.what);
      // Nothing of its own was logged past the refusal: it never started.
      assert.equal(second.events('iptables_installed').length, 0, c.what);
      assert.equal(await kernelState(topo), before, `${c.what}: the first instance's chain, jumps and sets are unchanged`);
    }

    // The first still works: its control socket answers, its chain is in place, its block holds.
    const status = JSON.parse((await execFileP(process.execPath, [NFIPS, 'status', '--json', '--control-socket', first.controlSocket])).stdout) as { pid: number; iptables: { intact: boolean } };
    assert.equal(status.pid, firstPid.pid);
    assert.equal(status.iptables.intact, true, 'status: chain in place');
    const list = (await execFileP(process.execPath, [NFIPS, 'blocks', 'list', '--control-socket', first.controlSocket])).stdout;
    assert.match(list, new RegExp(blocked.replace(/\./g, '\\.')));
    const probe = await topo.exec(topo.client, 'nc', ['-z', '-w', '2', topo.addr.server4, '23'], { allowFail: true });
    assert.notEqual(probe.code, 0, 'telnet still dropped');

    // iptables install/remove would take the chain from under it as well.
    const rm = await execFileP('ip', ['netns', 'exec', topo.gateway, process.execPath, NFIPS, 'iptables', 'remove']).then(() => null, (e: { code: number; stderr: string }) => e);
    assert.ok(rm, 'iptables remove refused');
    assert.equal(rm.code, 1);
    assert.match(rm.stderr, new RegExp(`pid ${firstPid.pid}`));
    assert.equal(await kernelState(topo), before, 'iptables remove changed nothing');

    // kill -9: the kernel frees the locks; the next instance replaces the dead one's chain and sets.
    process.kill(firstPid.pid, 'SIGKILL');
    await exitOf(first, 10_000);
    const third = start(['--queues', '2-3']);
    const installed = await third.waitFor('iptables_installed', 30_000);
    const families = installed.families as { stale_removed: number }[];
    assert.ok(families.some((f) => f.stale_removed > 0), `the dead instance's chain was replaced: ${JSON.stringify(families)}`);
    assert.equal(await third.stop(), 0);
  } finally {
    for (const nf of started) {
      await nf.stop('SIGKILL', 5000).catch(() => undefined);
      nf.cleanup();
    }
    await execFileP('ip', ['netns', 'exec', topo.gateway, process.execPath, NFIPS, 'iptables', 'remove']).catch(() => undefined);
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a queue bound by another program: exit 1 saying so, not "Operation not permitted"; nothing of the first touched', { timeout: 120_000 }, async (t: TestContext) => {
  await requireIntegration('nc');
  const ns = `nflkq${process.pid % 100000}`;
  await execFileP('ip', ['netns', 'add', ns]);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-queue-'));
  const started: InlineNfips[] = [];
  try {
    // Another program on queue 0: the native addon driven by a small harness, no nfips locks involved.
    const harness = spawn('ip', ['netns', 'exec', ns, process.execPath, path.join(__dirname, '..', 'helpers', 'addon-harness.js'), 'repeat', '0', '60'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await once(harness.stdout, 'data');
      const before = (await execFileP('ip', ['netns', 'exec', ns, 'iptables', '-w', '-t', 'mangle', '-S'])).stdout;
      const other = startInlineNfips(ns, ['--queues', '0', '--stats-interval', '0', '--mode', 'off']);
      started.push(other);
      const code = await exitOf(other, 30_000);
      t.diagnostic(other.output().trim().split('\n').pop() ?? '');
      assert.equal(code, 1, other.output());
      assert.match(other.output(), /nfips: cannot bind NFQUEUE: queue 0 is in use by another program \(another nfips, suricata, \.\.\.\); stop it, or give this nfips other --queues/);
      assert.equal((await execFileP('ip', ['netns', 'exec', ns, 'iptables', '-w', '-t', 'mangle', '-S'])).stdout, before, 'nothing left installed');
    } finally {
      harness.kill('SIGKILL');
    }
  } finally {
    for (const nf of started) {
      await nf.stop('SIGKILL', 5000).catch(() => undefined);
      nf.cleanup();
    }
    await execFileP('ip', ['netns', 'del', ns]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('nfips run | head -1: a closed stdout neither kills nfips nor skips its cleanup', { timeout: 120_000 }, async () => {
  await requireIntegration('nc');
  const ns = `nflkp${process.pid % 100000}`;
  await execFileP('ip', ['netns', 'add', ns]);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-pipe-'));
  const log = path.join(dir, 'nfips.json');
  try {
    const args = [NFIPS, 'run', '--queues', '0', '--stats-interval', '1', '--mode', 'off', '--log-file', log, '--state-dir', path.join(dir, 'state'), '--control-socket', ''];
    const sh = spawn('bash', ['-c', `ip netns exec ${ns} ${[process.execPath, ...args].join(' ')} | head -1 >/dev/null; exit \${PIPESTATUS[0]}`], { stdio: 'ignore' });
    const ready = async (type: string) => {
      for (let i = 0; i < 300; i++) {
        const hit = readLog(log).find((r) => r.event_type === type);
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no ${type} event`);
    };
    const pid = ((await ready('start')).config as { pid: number }).pid;
    await ready('ready');
    // Stats every second write to the closed pipe meanwhile.
    await new Promise((r) => setTimeout(r, 3000));
    assert.doesNotThrow(() => process.kill(pid, 0), 'still running with its stdout closed');
    process.kill(pid, 'SIGTERM');
    const [code] = (await once(sh, 'exit')) as [number];
    assert.equal(code, 0);
    assert.equal(readLog(log).find((r) => r.event_type === 'stop')?.exit_code, 0);
    for (const table of ['mangle', 'filter']) {
      assert.doesNotMatch((await execFileP('ip', ['netns', 'exec', ns, 'iptables', '-w', '-t', table, '-S'])).stdout, /NFIPS/, 'chain removed');
    }
  } finally {
    await execFileP('ip', ['netns', 'exec', ns, process.execPath, NFIPS, 'iptables', 'remove']).catch(() => undefined);
    await execFileP('ip', ['netns', 'del', ns]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});
