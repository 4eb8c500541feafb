// nfips watch: the same engine on a copy of the traffic. Here a `watch` on
// the gateway's client-side veth runs beside an inline `run` on the same
// gateway, so both see the very same packets and their rule counts and
// anomaly alerts can be compared one for one.
import assert from 'node:assert/strict';
import { ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test, TestContext } from 'node:test';
import { InlineNfips, LogRecord, startInlineNfips } from '../../lab/netns/inline-nfips';
import { startPeers } from '../../lab/netns/peers';
import { createTopology, Topology } from '../../lab/netns/topology';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';
import { controlCli } from '../helpers/control-cli';
import { parseSave } from '../../src/blocks/ipset';
import type { RuleStats } from '../../src/queue/supervisor';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const RULES = {
  default: 'accept',
  rules: [
    { id: 'no-udp-9999', action: 'drop', protocol: 'udp', dport: 9999, sid: 9999 },
    { id: 'syn-8080', action: 'alert', protocol: 'tcp', dport: 8080, tcpFlags: 'SYN,!ACK', sid: 8080 },
  ],
};

const cli = (nf: InlineNfips, ...args: string[]) => controlCli(nf.controlSocket, ...args);

async function ruleCounts(nf: InlineNfips): Promise<Record<string, number>> {
  const r = await cli(nf, 'rules', 'stats', '--json');
  assert.equal(r.code, 0, r.out);
  const s = JSON.parse(r.out) as RuleStats;
  return Object.fromEntries(s.rules.map((x) => [x.id, x.packets]));
}

/** N UDP datagrams from the client to the server's port, paced so no queue overflows. */
async function sendUdp(t: Topology, port: number, n: number): Promise<void> {
  const script = `import socket,time\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(${n}):\n  s.sendto(b'x'*32, ('${t.addr.server4}', ${port}))\n  time.sleep(0.005)`;
  await t.exec(t.client, 'python3', ['-c', script]);
}

const anomalySources = (events: LogRecord[]) => [...new Set(events.filter((r) => r.anomaly !== undefined).map((r) => String(r.src_ip)))].sort();

test('watch on a veth logs the same rule matches and anomaly alerts as run on the same traffic; nothing is dropped by it', { timeout: 150_000 }, async (t: TestContext) => {
  await requireIntegration('python3', 'curl', 'hping3');
  const topo = await createTopology('nfwa');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-watch-'));
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify(RULES));
  const attacker = topo.addr.clientExtra4[2]!;
  let peers: ChildProcess[] = [];
  let flood: ChildProcess | null = null;
  // Events are compared one for one: no rate limit may hide any.
  const common = ['--rules', rules, '--log-rate', '100000', '--stats-interval', '1', '--no-watch-rules'];
  const inline = startInlineNfips(topo.gateway, [...common, '--queues', '0', '--mode', 'detect']);
  let watch: InlineNfips | null = null;
  try {
    peers = await startPeers(topo, topo.server, [['http', 8080]]);
    await inline.waitFor('ready', 20_000);
    watch = startInlineNfips(topo.gateway, [...common, '--iface', topo.gwClientIf], { command: 'watch' });
    const w = watch;
    await w.waitFor('ready', 20_000);
    const started = await w.waitFor('capture_started', 1000);
    assert.deepEqual(started.ifaces, [topo.gwClientIf]);

    await t.test('rule matches: the same packets, would-drop where run drops', async () => {
      await sendUdp(topo, 9999, 40);
      for (let i = 0; i < 5; i++) {
        const r = await topo.exec(topo.client, 'curl', ['-s', '-m', '3', '-o', '/dev/null', '-w', '%{http_code}', `http://${topo.addr.server4}:8080/`], { allowFail: true });
        assert.equal(r.stdout.trim(), '200', 'HTTP through the inline nfips works');
      }
      // Both have seen every packet once their counters stop moving (events are logged after the verdicts).
      const until = Date.now() + 15_000;
      let [a, b] = [await ruleCounts(inline), await ruleCounts(w)];
      while (Date.now() < until && !(a['no-udp-9999'] === 40 && a['syn-8080'] === 5 && JSON.stringify(a) === JSON.stringify(b))) {
        await sleep(200);
        [a, b] = [await ruleCounts(inline), await ruleCounts(w)];
      }
      t.diagnostic(`rule packets: run ${JSON.stringify(a)}, watch ${JSON.stringify(b)}`);
      assert.equal(a['no-udp-9999'], 40);
      assert.deepEqual(b, a, 'watch counted every rule match run counted');
      const udpDrops = (nf: InlineNfips) => nf.events('drop').filter((r) => r.rule_id === 'no-udp-9999');
      await inline.waitFor('drop', 5000, () => udpDrops(inline).length >= 40);
      await w.waitFor('drop', 5000, () => udpDrops(w).length >= 40);
      const [drops, wouldDrops] = [udpDrops(inline), udpDrops(w)];
      assert.equal(drops.length, 40);
      assert.equal(wouldDrops.length, drops.length);
      assert.equal((drops[0]!.alert as { action: string }).action, 'blocked');
      assert.equal((wouldDrops[0]!.alert as { action: string }).action, 'would-drop');
      assert.equal(wouldDrops[0]!.in_iface, topo.gwClientIf);
      const alerts = (nf: InlineNfips) => nf.events('alert').filter((r) => r.rule_id === 'syn-8080').length;
      await w.waitFor('alert', 5000, () => alerts(w) >= 5);
      await inline.waitFor('alert', 5000, () => alerts(inline) >= 5);
      assert.equal(alerts(w), 5);
      assert.equal(alerts(w), alerts(inline));
    });

    await t.test('anomaly alerts: a SYN flood names the same source in both', async () => {
      // To a port no rule names: the alert rule would log every packet of the flood.
      flood = topo.spawn(topo.client, 'hping3', ['-S', '--flood', '-q', '-a', attacker, '-p', '8081', topo.addr.server4]);
      await inline.waitFor('alert', 20_000, (r) => r.anomaly !== undefined && r.src_ip === attacker);
      await w.waitFor('alert', 20_000, (r) => r.anomaly !== undefined && r.src_ip === attacker);
      flood.kill('SIGINT');
      flood = null;
      const [a, b] = [anomalySources(inline.events('alert')), anomalySources(w.events('alert'))];
      t.diagnostic(`anomaly alert sources: run ${a.join(',')}, watch ${b.join(',')}`);
      assert.deepEqual(b, a);
      assert.deepEqual(a, [attacker]);
      // Under the flood the inline queue may fail open and a capture buffer may overflow: each can
      // miss packets the other saw, so both must name the flood, not necessarily every later finding.
      const sig = (nf: InlineNfips) => new Set(nf.events('alert').filter((r) => r.anomaly !== undefined && r.src_ip === attacker).map((r) => (r.alert as { signature: string }).signature));
      const common = [...sig(w)].filter((s) => sig(inline).has(s));
      t.diagnostic(`signatures: run ${[...sig(inline)].join(' | ')}; watch ${[...sig(w)].join(' | ')}`);
      assert.ok(common.length > 0, 'a signature in common');
      assert.equal(w.events('block').length, 0, 'watch without --block blocks nothing');
    });

    await t.test('status, stats and the control socket', async () => {
      const s = JSON.parse((await cli(w, 'status', '--json')).out) as { mode: string; rules_mode: string; workers: { received: number; capture: { drops: number } }[]; blocks: unknown; iptables: unknown; unverdicted: unknown };
      assert.equal(s.mode, 'detect');
      assert.equal(s.rules_mode, 'log');
      assert.equal(s.workers.length, 1);
      assert.ok(s.workers[0]!.received > 1000, JSON.stringify(s.workers[0]));
      assert.equal(typeof s.workers[0]!.capture.drops, 'number');
      assert.equal(s.blocks, null);
      assert.equal(s.iptables, null);
      const text = (await cli(w, 'status')).out;
      assert.match(text, new RegExp(`watching interface ${topo.gwClientIf}: passive`));
      const stats = await w.waitFor('stats', 3000);
      assert.ok(stats.capture && typeof (stats.capture as { drops: number }).drops === 'number', JSON.stringify(stats));
      // The session table of a capture thread, over the control socket as for run.
      const sessions = await cli(w, 'sessions', '--json');
      assert.equal(sessions.code, 0, sessions.out);
      const rows = JSON.parse(sessions.out) as { server_ip: string; server_port: number; client_ip: string; protocol: string }[];
      assert.ok(rows.some((r) => r.client_ip === attacker && r.server_ip === topo.addr.server4 && r.server_port === 8081 && r.protocol.toUpperCase() === 'TCP'), `the flood's sessions are listed: ${JSON.stringify(rows.slice(0, 3))}`);
      const refused = await cli(w, 'blocks', 'add', attacker);
      assert.notEqual(refused.code, 0);
      assert.match(refused.out, /without --block: it enforces no blocks/);
      const save = (await topo.exec(topo.gateway, 'iptables-save', [])).stdout;
      assert.equal(save.split('\n').filter((l) => l.includes('-j NFIPS')).length, 2, 'only run\'s jumps (mangle queue, filter reject): watch installed none');
    });

    assert.equal(await w.stop(), 0);
    assert.equal(await inline.stop(), 0);
  } finally {
    (flood as ChildProcess | null)?.kill('SIGKILL');
    await watch?.stop();
    watch?.cleanup();
    await inline.stop();
    inline.cleanup();
    for (const p of peers) p.kill();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('watch --block --workers 2: the flood source is blocked in the kernel sets from the capture; chain and sets go at stop', { timeout: 120_000 }, async (t: TestContext) => {
  await requireIntegration('ping', 'hping3');
  const topo = await createTopology('nfwb');
  const attacker = topo.addr.clientExtra4[1]!;
  const nf = startInlineNfips(topo.gateway, ['--iface', topo.gwClientIf, '--workers', '2', '--block', '--block-ttl', '30', '--stats-interval', '1'], { command: 'watch' });
  let flood: ChildProcess | null = null;
  try {
    await nf.waitFor('ready', 20_000);
    const installed = await nf.waitFor('iptables_installed', 1000);
    t.diagnostic(JSON.stringify(installed.families));
    const filter = (await topo.exec(topo.gateway, 'iptables', ['-w', '-S', 'NFIPS'])).stdout;
    assert.match(filter, /match-set nfips-src4 src .*-j DROP/);
    assert.doesNotMatch((await topo.exec(topo.gateway, 'iptables-save', [])).stdout, /NFQUEUE/, 'nothing is queued');
    const onset = Date.now();
    flood = topo.spawn(topo.client, 'hping3', ['-S', '--flood', '-q', '-a', attacker, '-p', '8080', topo.addr.server4]);
    const block = await nf.waitFor('block', 20_000, (r) => r.src_ip === attacker);
    t.diagnostic(`blocked ${Date.parse(block.timestamp) - onset} ms after onset`);
    const members = parseSave((await topo.exec(topo.gateway, 'ipset', ['save'])).stdout).map((e) => e.member.split(',')[0]);
    assert.ok(members.includes(attacker), `the attacker is in a kernel set: ${members.join(' ')}`);
    flood.kill('SIGINT');
    flood = null;
    // Sources whose address hash falls on each worker (the flood's pair is on one of them).
    for (const from of [topo.addr.clientExtra4[0]!, topo.addr.clientExtra4[2]!, topo.addr.client4]) {
      await topo.exec(topo.client, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '-I', from, topo.addr.server4], { allowFail: true });
    }
    const s = JSON.parse((await execFileP(process.execPath, [NFIPS, 'status', '--json', '--control-socket', nf.controlSocket])).stdout) as { workers: { received: number }[]; blocks: { active: number } };
    assert.equal(s.workers.length, 2);
    assert.ok(s.workers.every((x) => x.received > 0), `both workers got a share: ${JSON.stringify(s.workers.map((x) => x.received))}`);
    assert.ok(s.blocks.active >= 1);
    assert.equal(await nf.stop(), 0);
    assert.equal((await topo.exec(topo.gateway, 'iptables', ['-w', '-S', 'NFIPS'], { allowFail: true })).code !== 0, true, 'chain removed at stop');
    assert.equal((await topo.exec(topo.gateway, 'ipset', ['list', '-n'])).stdout.trim(), '', 'sets removed at stop');
  } finally {
    (flood as ChildProcess | null)?.kill('SIGKILL');
    await nf.stop();
    nf.cleanup();
    await topo.destroy();
  }
});

test('watch --nflog: only what the NFLOG rule copies (port 80) is inspected', { timeout: 90_000 }, async (t: TestContext) => {
  await requireIntegration('curl', 'iptables');
  const topo = await createTopology('nfwn');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-watch-nflog-'));
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [
    { id: 'syn-80', action: 'alert', protocol: 'tcp', dport: 80, tcpFlags: 'SYN,!ACK' },
    { id: 'syn-8080', action: 'alert', protocol: 'tcp', dport: 8080, tcpFlags: 'SYN,!ACK' },
  ] }));
  const group = 7;
  let peers: ChildProcess[] = [];
  const nflogRule = ['-w', '-I', 'FORWARD', '-p', 'tcp', '--dport', '80', '-j', 'NFLOG', '--nflog-group', String(group)];
  const nf = startInlineNfips(topo.gateway, ['--nflog', String(group), '--rules', rules, '--stats-interval', '1', '--no-watch-rules', '--mode', 'off'], { command: 'watch' });
  try {
    peers = await startPeers(topo, topo.server, [['http', 80], ['http', 8080]]);
    await topo.exec(topo.gateway, 'iptables', nflogRule);
    await nf.waitFor('ready', 20_000);
    for (const port of [80, 8080, 80, 8080, 80]) {
      const r = await topo.exec(topo.client, 'curl', ['-s', '-m', '3', '-o', '/dev/null', '-w', '%{http_code}', `http://${topo.addr.server4}:${port}/`], { allowFail: true });
      assert.equal(r.stdout.trim(), '200');
    }
    // The kernel hands NFLOG records over in batches, up to a second late: poll, then check nothing else came.
    const until = Date.now() + 10_000;
    let counts = await ruleCounts(nf);
    while (Date.now() < until && counts['syn-80'] < 3) {
      await sleep(200);
      counts = await ruleCounts(nf);
    }
    await sleep(1500);
    counts = await ruleCounts(nf);
    t.diagnostic(JSON.stringify(counts));
    assert.deepEqual(counts, { 'syn-80': 3, 'syn-8080': 0 });
    const alert = nf.events('alert').find((r) => r.rule_id === 'syn-80');
    assert.equal(alert?.in_iface, topo.gwClientIf, 'the NFLOG record names the interface the packet came in on');
    assert.equal(await nf.stop(), 0);
  } finally {
    await nf.stop();
    nf.cleanup();
    for (const p of peers) p.kill();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
