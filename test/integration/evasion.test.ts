// Crafted evasion packets through a namespace gateway running nfips with
// drop rules for TCP/23, UDP/137, SCTP/2905 and ICMPv6 echo requests: long
// IPv6 extension chains, tiny, overlapping, reversed and duplicated
// fragments of both families, bad TCP data offsets, IP options, ICMP errors
// quoting forbidden packets. Each case states what the server must not
// receive (test/evasion/evasion.py); a capture at the server and counting
// rules in its INPUT chain check it. Controls check that what must pass does.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { promisify } from 'node:util';
import { startInlineNfips } from '../../lab/netns/inline-nfips';
import { createTopology } from '../../lab/netns/topology';
import { PACKAGE_ROOT, requireEvasionTools, requireIntegration, SCAPY_PYTHON } from '../helpers/env';
import { gatewayMac, installServerCounters, readServerCounters, ServerCounter, startCapture, verdictAccount, writeEvasionRules } from '../helpers/evasion-net';

const execFileP = promisify(execFile);
const SCRIPT = path.join(PACKAGE_ROOT, 'test', 'evasion', 'evasion.py');

interface Case {
  name: string;
  family: 4 | 6;
  must: string;
  expect: 'blocked' | 'delivered';
  sport: number;
  counter: { proto: string; port: number; want: 'none' | 'some' } | null;
}

function counterFor(c: Case): ServerCounter | null {
  if (!c.counter) return null;
  const { proto, port } = c.counter;
  const match = proto === 'icmpv6' ? ['-p', 'icmpv6', '--icmpv6-type', String(port)] : ['-p', proto, '--sport', String(c.sport), '--dport', String(port)];
  return { tag: `evasion-${c.sport}`, family: c.family, match };
}

test('evasion: crafted packets never carry a forbidden header past nfips', { timeout: 180_000 }, async (t: TestContext) => {
  await requireIntegration();
  requireEvasionTools();
  const topo = await createTopology('nfev');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-evasion-'));
  const a = topo.addr;
  const addrArgs = ['--client4', a.client4, '--server4', a.server4, '--client6', a.client6, '--server6', a.server6];
  try {
    const cases = JSON.parse((await execFileP(SCAPY_PYTHON, [SCRIPT, 'list', ...addrArgs])).stdout) as Case[];
    await installServerCounters(topo, cases.map(counterFor).filter((c): c is ServerCounter => c !== null));
    const n = startInlineNfips(topo.gateway, ['--mode', 'off', '--rules', writeEvasionRules(dir), '--queues', '0-1', '--stats-interval', '0', '--log-rate', '1000']);
    try {
      await n.waitFor('ready', 20_000);
      const pcap = path.join(dir, 'server.pcap');
      const manifest = path.join(dir, 'manifest.json');
      const cap = await startCapture(topo, pcap);
      await topo.exec(topo.client, SCAPY_PYTHON, [SCRIPT, 'send', ...addrArgs, '--iface', `${topo.prefix}c0`, '--gw-mac', await gatewayMac(topo), '--manifest', manifest], { timeoutMs: 60_000 });
      // Let the last packets cross and the server answer (its RSTs and errors go through nfips too).
      await new Promise((r) => setTimeout(r, 1500));
      await cap.stop();
      const account = await verdictAccount(n.controlSocket);
      const counted = await readServerCounters(topo);
      const arrived = new Map((JSON.parse((await execFileP(SCAPY_PYTHON, [SCRIPT, 'analyze', '--manifest', manifest, '--pcap', pcap])).stdout) as { name: string; arrived: boolean; packets_seen: number; packets: number }[]).map((r) => [r.name, r]));

      const rows = cases.map((c) => {
        const seen = arrived.get(c.name);
        const stack = c.counter ? (counted.get(`evasion-${c.sport}`) ?? 0) : null;
        const ok = c.expect === 'blocked' ? !seen?.arrived && !stack : seen?.arrived === true && (c.counter?.want === 'none' ? stack === 0 : (stack ?? 1) > 0);
        return { c, seen, stack, ok };
      });
      t.diagnostic('| case | server must | reached the server (capture) | server INPUT counted | ok |');
      t.diagnostic('| --- | --- | --- | ---: | --- |');
      for (const r of rows) {
        const must = r.c.expect === 'blocked' ? `not receive ${r.c.must}` : `receive ${r.c.must}`;
        t.diagnostic(`| ${r.c.name} | ${must} | ${r.seen?.arrived ? 'yes' : 'no'} (${r.seen?.packets_seen}/${r.seen?.packets} packets) | ${r.stack ?? '–'} | ${r.ok ? 'ok' : 'FAIL'} |`);
      }
      const blocked = rows.filter((r) => r.c.expect === 'blocked');
      const leaked = blocked.filter((r) => r.seen?.arrived || (r.stack ?? 0) > 0);
      t.diagnostic(`forbidden cases that reached the server: ${leaked.length} of ${blocked.length}; controls delivered: ${rows.filter((r) => r.c.expect === 'delivered' && r.ok).length} of ${rows.length - blocked.length}`);
      t.diagnostic(`nfips: ${account.received} packets received, ${account.verdicts} verdicts, ${account.evasionDrops} evasion drops; NFQUEUE rules counted ${account.queued}`);

      assert.deepEqual(leaked.map((r) => r.c.name), [], 'no forbidden packet reaches the server');
      assert.deepEqual(rows.filter((r) => !r.ok).map((r) => r.c.name), [], 'every case as stated');
      assert.equal(account.verdicts, account.queued, 'every queued packet got exactly one verdict from the engine');
      assert.equal(account.received, account.queued);
      assert.equal(account.failVerdicts, 0);

      await n.stop();
      const reasons = new Set(n.events('evasion').map((e) => String(e.reason)));
      for (const r of ['beyond-copy-range', 'tiny-first-fragment', 'fragment-overlap', 'unknown-next-header', 'bad-transport-header']) assert.ok(reasons.has(r), `an evasion event says ${r}: ${[...reasons].join(', ')}`);
      const ev = n.events('evasion')[0];
      assert.equal((ev.alert as { action: string }).action, 'blocked');
      const fin = n.events('stats_final');
      assert.equal(fin.reduce((s, r) => s + Number(r.evasion_drops), 0), account.evasionDrops, 'stats carry the evasion drops');
    } finally {
      await n.stop();
      n.cleanup();
    }
  } finally {
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
