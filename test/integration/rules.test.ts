// Rule actions and hot reload through the real kernel path.
import assert from 'node:assert/strict';
import { ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { promisify } from 'node:util';
import { InlineNfips, startInlineNfips } from '../../lab/netns/inline-nfips';
import { createTopology, Topology } from '../../lab/netns/topology';
import { startPeers } from '../../lab/netns/peers';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';
import { tcpConnect, udpProbe } from '../helpers/probes';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const CHATTER = path.join(__dirname, '..', 'helpers', 'tcp-chatter.js');

const startServers = (t: Topology): Promise<ChildProcess[]> => startPeers(t, t.server, [['http', 80], ['http', 8080], ['tcp-echo', 9], ['tcp-echo', 2323], ['udp-echo', 9999], ['udp-echo', 7]]);

async function curl(t: Topology, url: string, extra: string[] = []): Promise<{ code: number; out: string }> {
  const r = await t.exec(t.client, 'curl', ['-s', '-S', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '--max-time', '3', ...extra, url], { allowFail: true, timeoutMs: 60_000 });
  return { code: r.code, out: `${r.stdout.trim()} ${r.stderr.trim()}` };
}

/** The reload event's timings: present, finite, non-negative, one pause per queue thread (values are the machine's, never judged here). */
function assertReloadTimes(e: Record<string, unknown>, queues: number[]): void {
  assert.ok(typeof e.compile_ms === 'number' && Number.isFinite(e.compile_ms) && e.compile_ms >= 0, `compile_ms ${String(e.compile_ms)}`);
  const swaps = e.queues as { queue: number; swap_ms: number }[];
  assert.deepEqual(swaps.map((q) => q.queue).sort(), queues);
  for (const q of swaps) assert.ok(typeof q.swap_ms === 'number' && Number.isFinite(q.swap_ms) && q.swap_ms >= 0, `swap_ms ${JSON.stringify(q)}`);
  assert.equal(e.swap_ms_max, Math.max(...swaps.map((q) => q.swap_ms)));
}

const RULES_A = {
  default: 'accept',
  rules: [
    { id: 'range-8000-8100', action: 'drop', protocol: 'tcp', dport: '8000-8100' },
    { id: 'reject-2323', action: 'reject', protocol: 'tcp', dport: 2323 },
    { id: 'reject-udp-9999', action: 'reject', protocol: 'udp', dport: 9999 },
    { id: 'cidr-one-client', action: 'drop', source: '10.77.1.4/32' },
    { id: 'alert-http', action: 'alert', protocol: 'tcp', dport: 80 },
  ],
};
// B: the range rule is gone (8080 opens) and new connections to port 9 are refused by their SYN.
const RULES_B = {
  default: 'accept',
  rules: [{ id: 'no-new-9', action: 'drop', protocol: 'tcp', dport: 9, tcpFlags: 'SYN,!ACK' }, ...RULES_A.rules.slice(1)],
};

test('rules on the real kernel path', { timeout: 300_000 }, async (t: TestContext) => {
  await requireIntegration('curl', 'python3');
  const topo = await createTopology('nfru');
  const servers = await startServers(topo);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-rules-'));
  const file = path.join(dir, 'rules.json');
  writeFileSync(file, JSON.stringify(RULES_A));
  let n: InlineNfips | null = null;
  try {
    n = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', file, '--queues', '0-1', '--stats-interval', '1', '--no-watch-rules']);
    await n.waitFor('ready', 20_000);
    const nf = n;

    await t.test('drop, reject (TCP RST, ICMP unreachable), CIDR, port range and alert do what they say', async () => {
      assert.equal(await tcpConnect(topo, 2323), 'refused', 'reject answers TCP with a reset');
      assert.equal(await udpProbe(topo, 9999), 'unreachable', 'reject answers UDP with ICMP port unreachable');
      assert.equal(await udpProbe(topo, 7), 'reply', 'sanity: the same echo server answers on a port no rule touches, so the unreachable came from nfips');
      assert.equal((await curl(topo, `http://${topo.addr.server4}:8080/`)).out.split(' ')[0], '000', 'port range 8000-8100 dropped');
      assert.equal(await tcpConnect(topo, 8080), 'timeout', 'dropped, not refused');
      assert.equal((await curl(topo, `http://${topo.addr.server4}/`)).out.split(' ')[0], '200', 'port 80 passes (after an alert)');
      assert.equal((await curl(topo, `http://${topo.addr.server4}/`, ['--interface', topo.addr.clientExtra4[1]])).out.split(' ')[0], '000', 'CIDR rule drops 10.77.1.4');
      assert.equal((await curl(topo, `http://${topo.addr.server4}/`, ['--interface', topo.addr.clientExtra4[0]])).out.split(' ')[0], '200', 'its neighbour 10.77.1.3 passes');
      await nf.waitFor('drop', 5000, (r) => r.rule_id === 'range-8000-8100' && r.dest_port === 8080 && r.in_iface === topo.gwClientIf);
      await nf.waitFor('reject', 5000, (r) => r.rule_id === 'reject-2323' && r.proto === 'TCP');
      await nf.waitFor('alert', 5000, (r) => r.rule_id === 'alert-http' && r.dest_port === 80 && r.src_ip === topo.addr.client4);
      const stats = JSON.parse((await execFileP(process.execPath, [NFIPS, 'rules', 'stats', '--json', '--control-socket', nf.controlSocket])).stdout) as { rules: { id: string; packets: number; bytes: number }[] };
      const byId = new Map(stats.rules.map((r) => [r.id, r]));
      assert.ok(byId.get('range-8000-8100')!.packets >= 2 && byId.get('range-8000-8100')!.bytes > 0, 'per-rule counters count drops');
      assert.ok(byId.get('reject-2323')!.packets >= 1);
      assert.ok(byId.get('alert-http')!.packets >= 2, 'alerts are counted too');
      const rs = await nf.waitFor('rule_stats', 5000, (r) => (r.rules as { id: string }[]).some((x) => x.id === 'range-8000-8100'));
      assert.equal(rs.rules_total, 5, 'stats events carry the per-rule counters');
    });

    await t.test("a reject stays a reject when the operator's mangle rules rewrite the mark", async () => {
      // What a policy-routing or QoS set-up does after nfips' jump: the whole mark replaced.
      await topo.exec(topo.gateway, 'iptables', ['-w', '-t', 'mangle', '-A', 'FORWARD', '-j', 'MARK', '--set-xmark', '0x10/0xffffffff']);
      try {
        assert.equal(await tcpConnect(topo, 2323), 'refused', 'still answered by a reset, not let through to the echo server');
        assert.equal(await udpProbe(topo, 9999), 'unreachable');
        assert.equal(await udpProbe(topo, 7), 'reply', 'other traffic passes the rewrite as before');
        const listed = (await topo.exec(topo.gateway, 'iptables', ['-w', '-t', 'mangle', '-v', '-S', 'FORWARD'])).stdout;
        const counted = /-c (\d+) \d+ -j MARK/.exec(listed);
        assert.ok(counted && Number(counted[1]) > 0, `the rewrite ran on the packets it saw: ${listed}`);
      } finally {
        await topo.exec(topo.gateway, 'iptables', ['-w', '-t', 'mangle', '-D', 'FORWARD', '-j', 'MARK', '--set-xmark', '0x10/0xffffffff']);
      }
    });

    await t.test('hot reload under traffic changes a verdict without disturbing other flows', async () => {
      const chatter = topo.spawn(topo.client, process.execPath, [CHATTER, topo.addr.server4, '9', '6']);
      let chat = '';
      chatter.stdout?.on('data', (b: Buffer) => (chat += b.toString()));
      const chatDone = new Promise<void>((r) => chatter.once('exit', () => r()));
      const download = curl(topo, `http://${topo.addr.server4}/bytes/30000000`, ['--limit-rate', '6M', '--max-time', '20']);
      await new Promise((r) => setTimeout(r, 1500));
      writeFileSync(file, JSON.stringify(RULES_B));
      const r = await execFileP(process.execPath, [NFIPS, 'rules', 'reload', '--control-socket', nf.controlSocket]);
      assert.match(r.stdout, /reloaded: version 1, 5 rules/);
      const reloaded = await nf.waitFor('rules_reloaded', 5000, (e) => e.source === 'control' && e.version === 1);
      assertReloadTimes(reloaded, [0, 1]);
      assert.equal((await curl(topo, `http://${topo.addr.server4}:8080/`)).out.split(' ')[0], '200', '8080 opens after the reload');
      assert.equal(await tcpConnect(topo, 9), 'timeout', 'a new connection to 9 is dropped by its SYN');
      await chatDone;
      const c = JSON.parse(chat) as { sent: number; received: number };
      assert.ok(c.sent >= 50 && c.received === c.sent, `the established connection to 9 kept flowing: ${chat}`);
      assert.equal((await download).out.split(' ').slice(0, 2).join(' '), '200 30000000', 'the download across the reload completed');
    });

    await t.test('SIGHUP reloads too', async () => {
      writeFileSync(file, JSON.stringify(RULES_A));
      nf.proc.kill('SIGHUP');
      await nf.waitFor('rules_reloaded', 5000, (e) => e.source === 'sighup' && e.version === 2);
      assert.equal(await tcpConnect(topo, 8080), 'timeout', 'range rule is back');
      assert.equal(await tcpConnect(topo, 9), 'open');
    });

    await t.test('an invalid reload keeps the old rules working and says why', async () => {
      writeFileSync(file, JSON.stringify({ rules: [{ action: 'drop', dport: 70000 }] }));
      await assert.rejects(execFileP(process.execPath, [NFIPS, 'rules', 'reload', '--control-socket', nf.controlSocket]), (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr, /\/rules\/0\/dport: expected a port 0-65535/);
        return true;
      });
      const failed = await nf.waitFor('rules_reload_failed', 5000);
      assert.equal(failed.kept_version, 2);
      assert.equal(await tcpConnect(topo, 8080), 'timeout', 'old rules still drop 8080');
      assert.equal((await curl(topo, `http://${topo.addr.server4}/`)).out.split(' ')[0], '200', 'and pass 80');
      const status = JSON.parse((await execFileP(process.execPath, [NFIPS, 'status', '--json', '--control-socket', nf.controlSocket])).stdout) as { rules: { version: number } };
      assert.equal(status.rules.version, 2);
    });

    await t.test('a 10,000-rule reload logs the compile time and each queue thread\'s pause', async () => {
      // Host rules in 198.18.0.0/15 (benchmarking addresses no one here uses), after set A's rules.
      const extra = Array.from({ length: 10_000 }, (_, k) => ({ id: `bench-${k}`, action: 'drop', source: `198.18.${k >> 8}.${k & 255}/32` }));
      writeFileSync(file, JSON.stringify({ ...RULES_A, rules: [...RULES_A.rules, ...extra] }));
      nf.proc.kill('SIGHUP');
      const e = await nf.waitFor('rules_reloaded', 20_000, (r) => r.source === 'sighup' && r.version === 3);
      assert.equal(e.rules_count, 10_005);
      assertReloadTimes(e, [0, 1]);
      t.diagnostic(`10,005 rules: compile ${Number(e.compile_ms).toFixed(1)} ms on the main thread; queue thread pauses ${JSON.stringify(e.queues)}`);
      assert.equal(await tcpConnect(topo, 8080), 'timeout', 'the new set is in force');
      assert.equal(await tcpConnect(topo, 9), 'open');
    });
  } finally {
    await n?.stop();
    n?.cleanup();
    for (const s of servers) s.kill();
    await topo.destroy();
  }
});

test('a changed rules file is picked up by the watcher', { timeout: 120_000 }, async () => {
  await requireIntegration('curl', 'python3');
  const topo = await createTopology('nfrw');
  const servers = await startServers(topo);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-rules-'));
  const file = path.join(dir, 'rules.json');
  writeFileSync(file, JSON.stringify({ rules: [] }));
  const n = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', file, '--queues', '0', '--stats-interval', '0']);
  try {
    await n.waitFor('ready', 20_000);
    assert.equal(await tcpConnect(topo, 8080), 'open');
    // Editors replace files by rename; do the same.
    writeFileSync(`${file}.tmp`, JSON.stringify(RULES_A));
    await execFileP('mv', [`${file}.tmp`, file]);
    await n.waitFor('rules_reloaded', 5000, (e) => e.source === 'watch');
    assert.equal(await tcpConnect(topo, 8080), 'timeout');
  } finally {
    await n.stop();
    n.cleanup();
    for (const s of servers) s.kill();
    await topo.destroy();
  }
});
