// The data path on a real kernel: client -> gateway (nfips inline) -> server.
import assert from 'node:assert/strict';
import { ChildProcess, execFile } from 'node:child_process';
import { createConnection } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { promisify } from 'node:util';
import { readCounters } from '../../src/iptables/chain-counters';
import { InlineNfips, LogRecord, startInlineNfips } from '../../lab/netns/inline-nfips';
import { createTopology, Topology } from '../../lab/netns/topology';
import { startPeers } from '../../lab/netns/peers';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

const startServers = (t: Topology): Promise<ChildProcess[]> => startPeers(t, t.server, [['http', 80], ['http', 8080], ['udp-echo', 7], ['tcp-echo', 9]]);

async function curl(t: Topology, url: string, extra: string[] = []): Promise<string> {
  const r = await t.exec(t.client, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '--max-time', '10', ...extra, url], { allowFail: true, timeoutMs: 60_000 });
  return r.stdout.trim();
}

async function ping(t: Topology, dst: string, extra: string[] = []): Promise<boolean> {
  const r = await t.exec(t.client, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', ...extra, dst], { allowFail: true });
  return r.code === 0;
}

function finals(n: InlineNfips): Map<number, LogRecord> {
  return new Map(n.events('stats_final').map((r) => [Number(r.queue), r]));
}

/** Both families, both tables nfips uses (it queues from mangle, rejects in filter). */
async function chainState(t: Topology): Promise<string> {
  let out = '';
  for (const bin of ['iptables', 'ip6tables']) {
    for (const table of ['mangle', 'filter']) out += (await t.exec(t.gateway, bin, ['-w', '-t', table, '-S'], { allowFail: true })).stdout;
  }
  return out;
}

/** Packets counted by the operator's ACCEPT rule that sits after nfips' jump. */
async function acceptAfterJump(t: Topology, bin: 'iptables' | 'ip6tables'): Promise<number> {
  const r = await t.exec(t.gateway, bin, ['-w', '-L', 'FORWARD', '-v', '-n', '-x']);
  const line = r.stdout.split('\n').find((l) => /\bACCEPT\b/.test(l) && /operator-accept/.test(l));
  assert.ok(line, `operator ACCEPT rule missing:\n${r.stdout}`);
  return Number(line.trim().split(/\s+/)[0]);
}

test('inline data path', { timeout: 240_000 }, async (t: TestContext) => {
  await requireIntegration('ping', 'curl', 'iperf3');
  const topo = await createTopology('nfdp');
  const servers = await startServers(topo);
  const rulesDir = mkdtempSync(path.join(tmpdir(), 'nfips-rules-'));
  const rulesFile = path.join(rulesDir, 'rules.json');
  writeFileSync(rulesFile, JSON.stringify({ default: 'accept', rules: [{ id: 'no-8080', action: 'drop', protocol: 'tcp', dport: 8080 }] }));
  // The operator's own ruleset: nfips must leave it in place and packets must reach it.
  for (const bin of ['iptables', 'ip6tables']) {
    await topo.exec(topo.gateway, bin, ['-w', '-A', 'FORWARD', '-m', 'comment', '--comment', 'operator-accept', '-j', 'ACCEPT']);
  }
  try {
    await t.test('ping, TCP and UDP pass through the queue and re-enter the ruleset', async () => {
      const n = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', rulesFile, '--queues', '0-1', '--stats-interval', '1']);
      try {
        await n.waitFor('ready', 20_000);
        assert.ok(await ping(topo, topo.addr.server4), 'IPv4 ping');
        assert.equal(await curl(topo, `http://${topo.addr.server4}/bytes/3000000`), '200 3000000', 'TCP download');
        const udp = await topo.exec(topo.client, 'sh', ['-c', `for i in 1 2 3 4 5; do echo hello-$i; done | nc -u -w 1 ${topo.addr.server4} 7`], { allowFail: true });
        assert.match(udp.stdout, /hello-1/, 'UDP echo came back');
        const counters = await readCounters('ipv4', { iptables: 'iptables', ip6tables: 'ip6tables', netns: topo.gateway }, 'NFIPS', 'mangle');
        const queued = counters.find((c) => c.target === 'NFQUEUE');
        assert.ok(queued && queued.packets > 100, `NFQUEUE rule saw the traffic: ${JSON.stringify(counters)}`);
        const accepted = await acceptAfterJump(topo, 'iptables');
        // Every packet nfips accepted came back through FORWARD with the mark.
        assert.ok(accepted >= queued.packets, `ACCEPT after the jump (${accepted}) >= packets queued (${queued.packets})`);
      } finally {
        await n.stop();
        n.cleanup();
      }
    });

    await t.test('a drop rule drops its port and nothing else', async () => {
      const n = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', rulesFile, '--queues', '0', '--stats-interval', '0']);
      try {
        await n.waitFor('ready', 20_000);
        assert.equal(await curl(topo, `http://${topo.addr.server4}:8080/`, ['--max-time', '2']), '000 0', 'port 8080 is dropped');
        assert.equal(await curl(topo, `http://${topo.addr.server4}/`), '200 3', 'port 80 still works');
        assert.equal(await curl(topo, `http://[${topo.addr.server6}]:8080/`, ['--max-time', '2']), '000 0', 'IPv6 port 8080 is dropped too');
      } finally {
        await n.stop();
        const q0 = finals(n).get(0);
        assert.ok(q0 && Number(q0.dropped) >= 2, 'nfips counted the drops');
        n.cleanup();
      }
    });

    await t.test('IPv6 goes through the queue', async () => {
      const n = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', rulesFile, '--queues', '0', '--stats-interval', '0']);
      try {
        await n.waitFor('ready', 20_000);
        for (const table of ['mangle', 'filter']) await topo.exec(topo.gateway, 'ip6tables', ['-w', '-t', table, '-Z']);
        assert.ok(await ping(topo, topo.addr.server6, ['-6']), 'IPv6 ping');
        assert.equal(await curl(topo, `http://[${topo.addr.server6}]/bytes/100000`), '200 100000', 'IPv6 TCP');
        const c6 = await readCounters('ipv6', { iptables: 'iptables', ip6tables: 'ip6tables', netns: topo.gateway }, 'NFIPS', 'mangle');
        const q = c6.find((c) => c.target === 'NFQUEUE');
        assert.ok(q && q.packets >= 6, `ip6tables NFQUEUE rule counted the IPv6 packets: ${JSON.stringify(c6)}`);
        assert.ok((await acceptAfterJump(topo, 'ip6tables')) >= q.packets);
      } finally {
        await n.stop();
        n.cleanup();
      }
    });

    await t.test('many thousands of packets: every one verdicted, none dropped by the kernel', async () => {
      const n = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', rulesFile, '--queues', '0-1', '--stats-interval', '1']);
      const iperfSrv = topo.spawn(topo.server, 'iperf3', ['-s', '-1', '-p', '5201']);
      try {
        await n.waitFor('ready', 20_000);
        await new Promise((r) => setTimeout(r, 300));
        // ~6k packets/s for 4 s: moderate for one queue, well above the rest of the suite.
        const r = await topo.exec(topo.client, 'iperf3', ['-c', topo.addr.server4, '-u', '-b', '10M', '-l', '200', '-t', '4', '-J'], { timeoutMs: 30_000 });
        const sum = (JSON.parse(r.stdout) as { end: { sum: { packets: number; lost_packets: number } } }).end.sum;
        assert.ok(sum.packets > 20_000, `sent ${sum.packets} datagrams`);
      } finally {
        await n.stop();
        iperfSrv.kill();
      }
      const all = [...finals(n).values()];
      const received = all.reduce((a, s) => a + Number(s.received), 0);
      assert.ok(received > 20_000, `nfips received ${received}`);
      for (const s of all) {
        const v = s.verdicts as { repeat: number; accept: number; drop: number; failure: number };
        assert.equal(v.repeat + v.accept + v.drop + v.failure, Number(s.received), `queue ${String(s.queue)}: a verdict for every packet`);
        assert.equal(v.failure, 0, 'no failure verdicts');
      }
      const kernel = n.events('stats').map((s) => s.kernel as { user_dropped: number; queue_dropped: number } | null).filter((k) => k !== null);
      assert.ok(kernel.length > 0, 'stats carried the kernel queue counters');
      const last = kernel[kernel.length - 1]!;
      assert.equal(last.user_dropped, 0, 'kernel: no user-dropped packets');
      assert.equal(last.queue_dropped, 0, 'kernel: no queue overflow');
      n.cleanup();
    });

    await t.test('two queues both get traffic when several flows run', async () => {
      const n = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', rulesFile, '--queues', '0-1', '--stats-interval', '0']);
      try {
        await n.waitFor('ready', 20_000);
        // --queue-balance hashes addresses and protocol: vary the source address.
        for (const src of [topo.addr.client4, ...topo.addr.clientExtra4]) {
          assert.ok(await ping(topo, topo.addr.server4, ['-I', src, '-c', '2']), `ping from ${src}`);
          assert.equal(await curl(topo, `http://${topo.addr.server4}/`, ['--interface', src]), '200 3');
        }
      } finally {
        await n.stop();
      }
      const f = finals(n);
      assert.ok(Number(f.get(0)?.received) > 0 && Number(f.get(1)?.received) > 0, `both queues received: q0=${String(f.get(0)?.received)} q1=${String(f.get(1)?.received)}`);
      n.cleanup();
    });

    await t.test('--hook both: packets to the gateway itself go through the queue too', async () => {
      const hookRules = path.join(rulesDir, 'hook.json');
      // Drop pings addressed to the gateway on the input hook only; forwarded pings still pass.
      writeFileSync(hookRules, JSON.stringify({ rules: [{ id: 'no-ping-gw', action: 'drop', protocol: 'icmp', hook: 'input' }] }));
      const n = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', hookRules, '--queues', '0', '--hook', 'both', '--stats-interval', '0']);
      try {
        await n.waitFor('ready', 20_000);
        assert.match(await chainState(topo), /-A INPUT ! -i lo .*-j NFIPS/);
        assert.equal(await ping(topo, topo.addr.gwClient4), false, 'ping to the gateway dropped on INPUT');
        assert.ok(await ping(topo, topo.addr.server4), 'forwarded ping still passes');
        const lo = await topo.exec(topo.gateway, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '127.0.0.1'], { allowFail: true });
        assert.equal(lo.code, 0, 'loopback is never queued');
        await n.waitFor('drop', 5000, (r) => r.rule_id === 'no-ping-gw' && r.dest_ip === topo.addr.gwClient4);
      } finally {
        await n.stop();
        n.cleanup();
      }
    });

    await t.test('SIGTERM removes every chain and jump; kill -9 fails open and "iptables remove" cleans up', async () => {
      const n = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', rulesFile, '--queues', '0', '--stats-interval', '0']);
      await n.waitFor('ready', 20_000);
      assert.match(await chainState(topo), /-A FORWARD .*-j NFIPS/);
      // A control-socket client that connects and says nothing must not hold up the stop.
      const idle = createConnection(n.controlSocket);
      await new Promise<void>((resolve, reject) => idle.once('connect', () => resolve()).once('error', reject));
      idle.on('error', () => undefined);
      assert.equal(await n.stop('SIGTERM', 8000), 0, 'clean exit, despite the idle control client');
      idle.destroy();
      const after = await chainState(topo);
      assert.doesNotMatch(after, /NFIPS/, 'no NFIPS chain or jump after SIGTERM');
      assert.match(after, /operator-accept/, "the operator's rules are untouched");
      n.cleanup();

      const k = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', rulesFile, '--queues', '0', '--stats-interval', '0']);
      await k.waitFor('ready', 20_000);
      // A transfer in flight when nfips dies must still complete.
      const transfer = curl(topo, `http://${topo.addr.server4}/bytes/20000000`, ['--limit-rate', '10M', '--max-time', '20']);
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(await k.stop('SIGKILL'), 'SIGKILL');
      assert.equal(await transfer, '200 20000000', 'transfer in flight completed under --queue-bypass');
      assert.match(await chainState(topo), /-j NFIPS/, 'rules stay after kill -9');
      assert.ok(await ping(topo, topo.addr.server4), 'traffic flows with nobody on the queue');
      const rm = await execFileP('ip', ['netns', 'exec', topo.gateway, process.execPath, NFIPS, 'iptables', 'remove']);
      assert.match(rm.stdout, /ipv4: 2 jump\(s\) removed, chain NFIPS/, 'the mangle jump that queues and the filter jump that rejects');
      assert.doesNotMatch(await chainState(topo), /NFIPS/, 'nfips iptables remove cleaned up');
      k.cleanup();
    });

    await t.test('--fail-closed: with nfips killed, packets are dropped instead of bypassing it', async () => {
      const k = startInlineNfips(topo.gateway, ['--mode', 'detect', '--rules', rulesFile, '--queues', '0', '--stats-interval', '0', '--fail-closed']);
      await k.waitFor('ready', 20_000);
      assert.ok(await ping(topo, topo.addr.server4), 'traffic flows while nfips runs');
      assert.doesNotMatch(await chainState(topo), /queue-bypass/, 'no --queue-bypass on the queue rule');
      assert.equal(await k.stop('SIGKILL'), 'SIGKILL');
      assert.equal(await ping(topo, topo.addr.server4), false, 'nobody on the queue: dropped');
      await execFileP('ip', ['netns', 'exec', topo.gateway, process.execPath, NFIPS, 'iptables', 'remove']);
      assert.ok(await ping(topo, topo.addr.server4), 'flows again once the chain is removed');
      k.cleanup();
    });
  } finally {
    for (const s of servers) s.kill();
    await topo.destroy();
  }
});
