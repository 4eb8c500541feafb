// `make demo`: the whole product on a throw-away topology, in about two minutes.
import { ChildProcess } from 'node:child_process';
import { InlineNfips, startInlineNfips } from '../netns/inline-nfips';
import { startPeers } from '../netns/peers';
import { startNormalTraffic } from '../netns/normal-traffic';
import { createTopology, netnsUnavailableReason, Topology } from '../netns/topology';

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

interface Check {
  what: string;
  expect: 'pass' | 'drop';
  run: (t: Topology) => Promise<boolean>;
}

const CHECKS: Check[] = [
  { what: 'ping client -> server (IPv4, 3 echoes)', expect: 'pass', run: async (t) => (await t.exec(t.client, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', t.addr.server4], { allowFail: true })).code === 0 },
  { what: 'ping client -> server (IPv6, 3 echoes)', expect: 'pass', run: async (t) => (await t.exec(t.client, 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '1', t.addr.server6], { allowFail: true })).code === 0 },
  {
    what: 'HTTP GET http://server/bytes/200000',
    expect: 'pass',
    run: async (t) => {
      const r = await t.exec(t.client, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '--max-time', '5', `http://${t.addr.server4}/bytes/200000`], { allowFail: true });
      return r.stdout.trim() === '200 200000';
    },
  },
  {
    what: 'telnet (tcp/23) client -> server, blocked by rule no-telnet',
    expect: 'drop',
    run: async (t) => (await t.exec(t.client, 'nc', ['-z', '-w', '2', t.addr.server4, '23'], { allowFail: true })).code === 0,
  },
];

/** Lines of the NFIPS chain (mangle, where nfips queues) whose DROP rules match the block sets, with their counters. */
async function blockRuleLines(t: Topology): Promise<string[]> {
  const r = await t.exec(t.gateway, 'iptables', ['-w', '-t', 'mangle', '-L', 'NFIPS', '-v', '-n', '-x'], { allowFail: true });
  return r.stdout.split('\n').filter((l) => /match-set/.test(l) && /\d/.test(l.trim().split(/\s+/)[0] ?? ''));
}

function show(label: string, r: object): void {
  say(`  ${label}:`);
  say(JSON.stringify(r, null, 2).split('\n').map((l) => `    ${l}`).join('\n'));
}

/**
 * Prevention: normal traffic, then a SYN flood and a ping flood from another
 * client address. Shows the alert and block lines, the kernel dropping the
 * attacker before the queue, and the block expiring.
 */
async function preventionAct(t: Topology, nfips: InlineNfips, ttl: number): Promise<number> {
  const attacker = t.addr.clientExtra4[3]!;
  say(`\nprevention (models/default.json, --block-ttl ${ttl}): 12 s of normal traffic from 3 clients, then a SYN flood and a ping flood from ${attacker}`);
  const traffic = await startNormalTraffic(t, { seconds: 40, seed: 11 });
  const floods: ChildProcess[] = [];
  let failures = 0;
  try {
    await new Promise((r) => setTimeout(r, 12_000));
    const quiet = nfips.events('alert').filter((a) => a.anomaly);
    say(`  normal traffic: ${quiet.length === 0 ? 'no alert' : `${quiet.length} alert(s)  <-- unexpected: ${quiet.map((a) => `${String(a.src_ip ?? 'traffic')}: ${(a.alert as { signature: string }).signature}`).join('; ')}`}`);
    if (quiet.length) failures++;
    const onset = Date.now();
    floods.push(t.spawn(t.client, 'hping3', ['-S', '--flood', '-q', '-a', attacker, '-p', '80', t.addr.server4]));
    floods.push(t.spawn(t.client, 'ping', ['-f', '-q', '-I', attacker, t.addr.server4]));
    let alert;
    let block;
    try {
      alert = await nfips.waitFor('alert', 15_000, (a) => a.anomaly !== undefined);
      block = await nfips.waitFor('block', 15_000, (b) => b.src_ip === attacker);
    } catch {
      say('  floods: NOT blocked within 15 s  <-- unexpected');
      return failures + 1;
    }
    say(`  floods: alert after ${Date.parse(alert.timestamp) - onset} ms, block after ${Date.parse(block.timestamp) - onset} ms (tail -F ${nfips.logFile}):`);
    show('alert line', alert);
    show('block line', block);
    await new Promise((r) => setTimeout(r, 3000));
    // The members of nfips' sets (ipset save: one "add SET MEMBER ..." line each).
    const saved = await t.exec(t.gateway, 'ipset', ['save'], { allowFail: true });
    say('  the kernel sets and the DROP rules before the queue, 3 s later (nfips blocks list shows the same):');
    say(saved.stdout.split('\n').filter((l) => /^add nfips-/.test(l)).map((l) => `    ${l}`).join('\n'));
    say((await blockRuleLines(t)).map((l) => `    ${l.trim()}`).join('\n'));
    const stats = nfips.events('stats').slice(-2);
    say(`  queue rate now: ${stats.reduce((n, r) => n + Number(r.pps), 0)} packets/s (the floods no longer reach user space)`);
  } finally {
    for (const f of floods) f.kill('SIGINT');
    const summary = await traffic.stop();
    say(`  normal clients meanwhile: ${summary.http.ok} HTTP requests ok, ${summary.http.failed} failed; ${summary.udp.answered}/${summary.udp.sent} UDP answered`);
  }
  const placed = nfips.events('block').map((b) => b.block as { key: string; expires_at: string; ttl_seconds: number });
  const keys = new Set(placed.map((b) => b.key));
  // The wait follows the blocks' own expiry, not the flag: a repeat offence would double it.
  const lastExpiry = Math.max(...placed.map((b) => Date.parse(b.expires_at)));
  say(`  waiting for the block${keys.size > 1 ? 's' : ''} to expire (${[...new Set(placed.map((b) => b.ttl_seconds))].join(', ')} s TTL, --block-ttl ${ttl})...`);
  const until = lastExpiry + 10_000;
  while (Date.now() < until && nfips.events('unblock').length < keys.size) await new Promise((r) => setTimeout(r, 500));
  const unblocks = nfips.events('unblock');
  if (unblocks.length < keys.size) {
    say('  the block did not expire  <-- unexpected');
    return failures + 1;
  }
  show('unblock line', unblocks[0]!);
  const ping = await t.exec(t.client, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '-I', attacker, t.addr.server4], { allowFail: true });
  say(`  ping from ${attacker} after expiry: ${ping.code === 0 ? 'passes again' : 'still dropped  <-- unexpected'}`);
  return failures + (ping.code === 0 ? 0 : 1);
}

export async function runDemo(opts: { keep: boolean }): Promise<number> {
  const reason = await netnsUnavailableReason();
  if (reason) {
    process.stderr.write(`nfips demo: ${reason}\n`);
    return 2;
  }
  say('nfips demo: building namespaces client <-> gateway <-> server');
  const t = await createTopology('nfdemo');
  let servers: ChildProcess[] = [];
  const ttl = 45;
  const nfips = startInlineNfips(t.gateway, ['--queues', '0-1', '--stats-interval', '1', '--block-ttl', String(ttl)]);
  let failures = 0;
  try {
    servers = await startPeers(t, t.server, [['http', 80], ['tcp-echo', 23]]);
    await nfips.waitFor('ready', 15000);
    say(`nfips is inline on the gateway (queues 0-1, rules/default.json); log: ${nfips.logFile}\n`);
    for (const c of CHECKS) {
      const passed = await c.run(t);
      const ok = passed === (c.expect === 'pass');
      if (!ok) failures++;
      say(`  ${passed ? 'PASSED ' : 'DROPPED'}  ${c.what}${ok ? '' : `   <-- expected ${c.expect}`}`);
    }
    failures += await preventionAct(t, nfips, ttl);
    const fwd = await t.exec(t.gateway, 'iptables', ['-w', '-t', 'mangle', '-L', 'NFIPS', '-v', '-n', '-x']);
    say('\nNFIPS chain (mangle table) on the gateway (packet counters):');
    say(fwd.stdout.trim().split('\n').map((l) => `  ${l}`).join('\n'));
  } finally {
    const code = await nfips.stop();
    const finals = nfips.events('stats_final');
    say('\nnfips per-queue totals:');
    for (const s of finals) say(`  queue ${String(s.queue)}: received ${String(s.received)}, accepted ${String(s.accepted)}, dropped ${String(s.dropped)}, malformed ${String(s.malformed)}`);
    let left = '';
    for (const table of ['mangle', 'filter']) left += (await t.exec(t.gateway, 'iptables', ['-w', '-t', table, '-S'], { allowFail: true })).stdout;
    say(`nfips exited with ${String(code)}; NFIPS chain left behind: ${left.includes('NFIPS') ? 'YES (bug)' : 'none'}`);
    for (const p of servers) p.kill();
    if (!opts.keep) {
      await t.destroy();
      nfips.cleanup();
    }
  }
  say(failures === 0 ? '\ndemo: everything behaved as expected' : `\ndemo: ${failures} check(s) did not behave as expected`);
  return failures === 0 ? 0 : 1;
}

// `make demo` runs this file; `--keep` leaves the namespaces in place afterwards.
if (require.main === module) {
  runDemo({ keep: process.argv.slice(2).includes('--keep') }).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      console.error(`demo: ${(e as Error).message}`);
      process.exitCode = 1;
    },
  );
}
