// `nfips demo`: the whole product on a throw-away topology, in about a minute.
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

/** Normal traffic, then a ping flood from another client address: shows the alert lines. */
async function anomalyAct(t: Topology, nfips: InlineNfips): Promise<number> {
  const attacker = t.addr.clientExtra4[3];
  say('\nanomaly detection (models/default.json): 10 s of normal traffic from 3 clients, then a ping flood from ' + attacker);
  const traffic = await startNormalTraffic(t, { seconds: 30, seed: 11 });
  let flood: ChildProcess | null = null;
  try {
    await new Promise((r) => setTimeout(r, 10_000));
    const quiet = nfips.events('alert').filter((a) => a.anomaly).length;
    say(`  normal traffic: ${quiet === 0 ? 'no alert' : `${quiet} alert(s)  <-- unexpected`}`);
    const onset = Date.now();
    flood = t.spawn(t.client, 'ping', ['-f', '-q', '-I', attacker, t.addr.server4]);
    let alert;
    try {
      alert = await nfips.waitFor('alert', 15_000, (a) => a.anomaly !== undefined);
    } catch {
      say('  ping flood: NOT detected within 15 s  <-- unexpected');
      return 1;
    }
    say(`  ping flood: alert after ${Date.parse(alert.timestamp) - onset} ms; the alert line (tail -F ${nfips.logFile}):`);
    say(JSON.stringify(alert, null, 2).split('\n').map((l) => `    ${l}`).join('\n'));
    return quiet === 0 ? 0 : 1;
  } finally {
    flood?.kill('SIGINT');
    const summary = await traffic.stop();
    say(`  normal clients meanwhile: ${summary.http.ok} HTTP requests ok, ${summary.http.failed} failed; ${summary.udp.answered}/${summary.udp.sent} UDP answered`);
  }
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
  const nfips = startInlineNfips(t.gateway, ['--queues', '0-1', '--stats-interval', '1']);
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
    failures += await anomalyAct(t, nfips);
    const fwd = await t.exec(t.gateway, 'iptables', ['-w', '-L', 'NFIPS', '-v', '-n', '-x']);
    say('\nNFIPS chain on the gateway (packet counters):');
    say(fwd.stdout.trim().split('\n').map((l) => `  ${l}`).join('\n'));
  } finally {
    const code = await nfips.stop();
    const finals = nfips.events('stats_final');
    say('\nnfips per-queue totals:');
    for (const s of finals) say(`  queue ${String(s.queue)}: received ${String(s.received)}, accepted ${String(s.accepted)}, dropped ${String(s.dropped)}, malformed ${String(s.malformed)}`);
    const left = await t.exec(t.gateway, 'iptables', ['-w', '-S'], { allowFail: true });
    say(`nfips exited with ${String(code)}; NFIPS chain left behind: ${left.stdout.includes('NFIPS') ? 'YES (bug)' : 'none'}`);
    for (const p of servers) p.kill();
    if (!opts.keep) {
      await t.destroy();
      nfips.cleanup();
    }
  }
  say(failures === 0 ? '\ndemo: everything behaved as expected' : `\ndemo: ${failures} check(s) did not behave as expected`);
  return failures === 0 ? 0 : 1;
}
