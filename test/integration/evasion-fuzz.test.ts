// Randomly mutated packets through the real path (client -> gateway with
// nfips inline -> server): nfips stays up, every queued packet gets exactly
// one verdict (its counters equal the NFQUEUE rules' counters), and nothing
// a drop rule should have caught reaches the server's INPUT chain.
// `make test` sends NFIPS_FUZZ_PACKETS=50000 (the default); `make fuzz` 1,000,000.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { startInlineNfips } from '../../lab/netns/inline-nfips';
import { createTopology } from '../../lab/netns/topology';
import { PACKAGE_ROOT, requireEvasionTools, requireIntegration, SCAPY_PYTHON } from '../helpers/env';
import { gatewayMac, installServerCounters, readServerCounters, ServerCounter, verdictAccount, writeEvasionRules } from '../helpers/evasion-net';

const SCRIPT = path.join(PACKAGE_ROOT, 'test', 'evasion', 'fuzz.py');
const PACKETS = Number(process.env.NFIPS_FUZZ_PACKETS ?? 50_000);
// Below what nfips verdicts on two shared cores, so no packet fails open uninspected.
const RATE = Number(process.env.NFIPS_FUZZ_RATE ?? 20_000);
const SEED = Number(process.env.NFIPS_FUZZ_SEED ?? 11);

/** What the drop rules under test forbid, counted where the server's stack receives it. */
const FORBIDDEN: ServerCounter[] = [
  ...([4, 6] as const).flatMap((family) => [
    { tag: `fuzz-tcp23-v${family}`, family, match: ['-p', 'tcp', '--dport', '23'] },
    { tag: `fuzz-udp137-v${family}`, family, match: ['-p', 'udp', '--dport', '137'] },
    { tag: `fuzz-sctp2905-v${family}`, family, match: ['-p', 'sctp', '--dport', '2905'] },
  ]),
  { tag: 'fuzz-echo6', family: 6, match: ['-p', 'icmpv6', '--icmpv6-type', '128'] },
];
const EVERYTHING: ServerCounter[] = [
  { tag: 'fuzz-all-v4', family: 4, match: [] },
  { tag: 'fuzz-all-v6', family: 6, match: [] },
];

test(`fuzz: ${PACKETS} mutated packets through nfips`, { timeout: 120_000 + (PACKETS / RATE) * 3000 }, async (t: TestContext) => {
  await requireIntegration();
  requireEvasionTools();
  assert.ok(Number.isInteger(PACKETS) && PACKETS > 0, `NFIPS_FUZZ_PACKETS must be a positive integer, got ${process.env.NFIPS_FUZZ_PACKETS}`);
  const topo = await createTopology('nffz');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-fuzz-'));
  const a = topo.addr;
  try {
    await installServerCounters(topo, [...FORBIDDEN, ...EVERYTHING]);
    const n = startInlineNfips(topo.gateway, ['--mode', 'off', '--rules', writeEvasionRules(dir), '--queues', '0-1', '--queue-maxlen', '16384', '--stats-interval', '0', '--log-rate', '5']);
    try {
      await n.waitFor('ready', 20_000);
      const args = [SCRIPT, '--count', String(PACKETS), '--seed', String(SEED), '--rate', String(RATE), '--iface', `${topo.prefix}c0`, '--gw-mac', await gatewayMac(topo), '--client4', a.client4, '--server4', a.server4, '--client6', a.client6, '--server6', a.server6];
      const r = await topo.exec(topo.client, SCAPY_PYTHON, args, { timeoutMs: 60_000 + (PACKETS / RATE) * 3000 });
      const sent = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { sent: number; ipv4: number; ipv6: number; corpus: number; seconds: number };
      await new Promise((res) => setTimeout(res, 1500));
      assert.equal(n.proc.exitCode, null, `nfips is still running: ${n.output()}`);
      const account = await verdictAccount(n.controlSocket);
      const counted = await readServerCounters(topo);
      const forbidden = FORBIDDEN.map((c) => [c.tag, counted.get(c.tag) ?? -1] as const);
      t.diagnostic(`sent ${sent.sent} mutated packets (${sent.ipv4} IPv4, ${sent.ipv6} IPv6) from a corpus of ${sent.corpus} in ${sent.seconds} s, seed ${SEED}`);
      t.diagnostic(`NFQUEUE rules queued ${account.queued}; nfips received ${account.received}, gave ${account.verdicts} verdicts (${account.accepted} accepted, ${account.dropped} dropped of which ${account.evasionDrops} evasion drops), ${account.failVerdicts} failure verdicts`);
      t.diagnostic(`server INPUT: ${counted.get('fuzz-all-v4')} IPv4 and ${counted.get('fuzz-all-v6')} IPv6 packets in all; forbidden: ${forbidden.map(([k, v]) => `${k}=${v}`).join(' ')}`);

      assert.ok(sent.sent >= PACKETS * 0.99, `the fuzzer sent what it was asked to (${sent.sent} of ${PACKETS})`);
      assert.ok(account.queued > sent.sent * 0.3, `a good share reached the queue (${account.queued} of ${sent.sent})`);
      assert.equal(account.received, account.queued, 'nfips received every queued packet (none failed open)');
      assert.equal(account.verdicts, account.queued, 'exactly one engine verdict per queued packet');
      assert.equal(account.failVerdicts, 0);
      assert.deepEqual(forbidden.filter(([, v]) => v !== 0), [], 'nothing a drop rule should have caught reached the server');
      assert.deepEqual(n.events().filter((e) => /queue_error|queue_restart|error/.test(e.event_type)).map((e) => e.event_type), [], 'no queue thread failed');
    } finally {
      await n.stop();
      n.cleanup();
    }
  } finally {
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
