// Prevention on the real kernel path: blocks are ipset entries dropped at the
// top of the NFIPS chain, managed over the control socket, saved across a
// kill -9 with their remaining time; an attack is blocked in the kernel
// while the normal client keeps working, and the block lifts after its TTL.
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { BlockView } from '../../src/blocks/manager';
import { parseSave } from '../../src/blocks/ipset';
import { parseCounters } from '../../src/iptables/chain-counters';
import { InlineNfips, LogRecord, startInlineNfips } from '../../lab/netns/inline-nfips';
import { startNormalTraffic } from '../../lab/netns/normal-traffic';
import { startPeers } from '../../lab/netns/peers';
import { createTopology, Topology } from '../../lab/netns/topology';
import { requireIntegration } from '../helpers/env';
import { controlCli } from '../helpers/control-cli';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cli = (nf: InlineNfips, ...args: string[]) => controlCli(nf.controlSocket, ...args);

async function listBlocks(nf: InlineNfips): Promise<BlockView[]> {
  const r = await cli(nf, 'blocks', 'list', '--json');
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out) as BlockView[];
}

async function kernelEntries(t: Topology): Promise<ReturnType<typeof parseSave>> {
  const r = await t.exec(t.gateway, 'ipset', ['save']);
  return parseSave(r.stdout).filter((e) => e.set.startsWith('nfips-'));
}

/** Packets the block DROP rules of NFIPS (in mangle, where nfips queues) stopped (IPv4). */
async function blockDrops(t: Topology): Promise<number> {
  const r = await t.exec(t.gateway, 'iptables', ['-w', '-t', 'mangle', '-L', 'NFIPS', '-v', '-n', '-x']);
  return parseCounters(r.stdout).filter((c) => c.target === 'DROP' && /match-set/.test(c.extra)).reduce((n, c) => n + c.packets, 0);
}

async function pings(t: Topology, from: string, count = 2): Promise<boolean> {
  const r = await t.exec(t.client, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', '-I', from, t.addr.server4], { allowFail: true });
  return r.code === 0;
}

async function tcpWorks(t: Topology, from: string, port: number): Promise<boolean> {
  const r = await t.exec(t.client, 'curl', ['-s', '-m', '3', '--interface', from, '-o', '/dev/null', '-w', '%{http_code}', `http://${t.addr.server4}:${port}/`], { allowFail: true });
  return r.stdout.trim() === '200';
}

test('blocks over the control socket: kernel ipset, allowlist, kill -9 and restore with the time left, expiry', { timeout: 180_000 }, async () => {
  await requireIntegration('ping', 'curl', 'hping3');
  const topo = await createTopology('nfbk');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-blocks-'));
  const stateDir = path.join(dir, 'state');
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [] }));
  const peers = await startPeers(topo, topo.server, [['http', 8080]]);
  const args = ['--rules', rules, '--mode', 'off', '--queues', '0', '--stats-interval', '0', '--state-dir', stateDir, '--allow', '10.77.1.5'];
  const client = topo.addr.client4;
  let nf = startInlineNfips(topo.gateway, args);
  try {
    await nf.waitFor('ready', 20_000);
    assert.ok(await pings(topo, client), 'ping works before any block');

    // An ICMP-only block: pings stop, TCP from the same address goes on.
    const add = await cli(nf, 'blocks', 'add', client, '--proto', 'icmp', '--ttl', '120', '--reason', 'test');
    assert.equal(add.code, 0, add.out);
    assert.match(add.out, new RegExp(`blocked ${client} icmp \\(protocol\\)`));
    assert.deepEqual((await kernelEntries(topo)).map((e) => [e.set, e.member]), [['nfips-icmp4', client]]);
    assert.equal(await pings(topo, client), false, 'pings from the blocked address are dropped');
    assert.ok(await tcpWorks(topo, client, 8080), 'TCP from it still works: the block is ICMP only');
    const listed = await listBlocks(nf);
    assert.equal(listed.length, 1);
    assert.ok((listed[0]?.kernel?.packets ?? 0) >= 2, `the kernel counted the dropped pings: ${JSON.stringify(listed[0])}`);
    assert.ok((await blockDrops(topo)) >= 2);
    const blockEvent = await nf.waitFor('block', 5000);
    assert.equal(blockEvent.src_ip, client);
    assert.equal(blockEvent.action, 'added');

    // IPv6 goes through its own sets.
    const ping6 = async () => (await topo.exec(topo.client, 'ping', ['-6', '-c', '2', '-i', '0.2', '-W', '1', topo.addr.server6], { allowFail: true })).code === 0;
    assert.ok(await ping6(), 'IPv6 ping works before its block');
    assert.equal((await cli(nf, 'blocks', 'add', topo.addr.client6, '--ttl', '60')).code, 0);
    assert.equal(await ping6(), false, 'IPv6 source block drops it');
    assert.deepEqual((await kernelEntries(topo)).filter((e) => e.set === 'nfips-src6').map((e) => e.member), [topo.addr.client6]);
    assert.equal((await cli(nf, 'blocks', 'del', topo.addr.client6)).code, 0);
    assert.ok(await ping6(), 'and passes once lifted');

    // Refusals: allowlisted, own address, nonsense.
    for (const [net, why] of [['10.77.1.5', /allowlisted: 10\.77\.1\.5 overlaps 10\.77\.1\.5 \(allow\)/], [topo.addr.gwClient4, /10\.77\.1\.1 \(own address\)/], ['10.77.1.300', /not an IPv4 or IPv6 address/]] as const) {
      const r = await cli(nf, 'blocks', 'add', net);
      assert.notEqual(r.code, 0, `${net} must be refused`);
      assert.match(r.out, why);
    }
    assert.equal((await kernelEntries(topo)).length, 1, 'nothing was added for the refused ones');

    // A short one that expires while we watch.
    assert.equal((await cli(nf, 'blocks', 'add', topo.addr.clientExtra4[0]!, '--ttl', '2')).code, 0);
    assert.equal(await pings(topo, topo.addr.clientExtra4[0]!, 1), false);
    const unblock = await nf.waitFor('unblock', 8000, (r) => r.src_ip === topo.addr.clientExtra4[0]);
    assert.equal(unblock.reason, 'expired');
    assert.ok(await pings(topo, topo.addr.clientExtra4[0]!), 'pings pass again once the block expired');

    // kill -9: the kernel keeps enforcing; a restart restores the block with the time it had left.
    const before = (await listBlocks(nf))[0]!;
    nf.proc.kill('SIGKILL');
    await nf.stop();
    assert.equal(await pings(topo, client), false, 'the block holds while nfips is down');
    await sleep(3000);
    const saved = JSON.parse(readFileSync(path.join(stateDir, 'blocks.json'), 'utf8')) as { blocks: { expires_at: string }[] };
    assert.equal(saved.blocks.length, 1);
    nf.cleanup();
    nf = startInlineNfips(topo.gateway, args);
    await nf.waitFor('ready', 20_000);
    const restored = await nf.waitFor('block', 5000, (r) => r.action === 'restored');
    assert.equal(restored.src_ip, client);
    const after = (await listBlocks(nf))[0]!;
    assert.equal(after.expires_at, before.expires_at, 'same expiry: the time left is not reset');
    assert.ok(after.remaining_s <= before.remaining_s - 3, `remaining ${after.remaining_s} s after ${before.remaining_s} s and a 3 s outage`);
    const k = (await kernelEntries(topo)).find((e) => e.member === client);
    assert.ok(k && k.timeout <= before.remaining_s - 3 && k.timeout > 0, `kernel timeout follows the saved expiry: ${JSON.stringify(k)}`);
    const save = (await topo.exec(topo.gateway, 'iptables', ['-w', '-t', 'mangle', '-S'])).stdout.split('\n');
    assert.equal(save.filter((l) => l.includes('-j NFIPS')).length, 1, 'one jump, no duplicate');
    assert.equal(save.filter((l) => l.includes('match-set nfips-icmp4')).length, 1, 'one block rule per set, no duplicate');
    assert.equal(await pings(topo, client), false, 'still blocked after the restart');
    assert.ok(await tcpWorks(topo, client, 8080), 'and traffic flows through the new instance');

    // Lifting it by hand.
    const del = await cli(nf, 'blocks', 'del', `${client} icmp`);
    assert.equal(del.code, 0, del.out);
    assert.ok(await pings(topo, client));
    assert.equal((await nf.waitFor('unblock', 5000, (r) => r.reason === 'manual')).src_ip, client);
    assert.equal((await cli(nf, 'blocks', 'del', client)).code !== 0, true, 'deleting a block that is not there is an error');

    const status = JSON.parse((await cli(nf, 'status', '--json')).out) as { uptime_s: number; blocks: { active: number }; queues: { received: number; failVerdicts: number; kernel: unknown }[]; unverdicted: { packets: number } };
    assert.equal(status.blocks.active, 0);
    assert.ok(status.queues[0]!.received > 0 && status.queues[0]!.kernel !== null && status.queues[0]!.failVerdicts === 0 && status.unverdicted.packets === 0);
    const text = await cli(nf, 'status');
    assert.match(text.out, /up \d+m \d+s, mode off/);
    assert.match(text.out, /blocks: 0 active, \d+ packets dropped before the queue/);

    assert.equal(await nf.stop(), 0);
    assert.deepEqual(await kernelEntries(topo), [], 'sets destroyed on a clean stop');
    assert.equal((await topo.exec(topo.gateway, 'ipset', ['list', '-n'])).stdout.trim(), '');
  } finally {
    await nf.stop();
    nf.cleanup();
    for (const p of peers) p.kill();
    await topo.destroy();
  }
});

test('prevent mode: a SYN flood and a ping flood are blocked in the kernel, the normal client keeps working, the block lifts after its TTL', { timeout: 300_000 }, async (t: TestContext) => {
  await requireIntegration('ping', 'curl', 'hping3');
  const topo = await createTopology('nfpv');
  const attacker = topo.addr.clientExtra4[3]!;
  const TTL = 40;
  const nf = startInlineNfips(topo.gateway, ['--queues', '0-1', '--stats-interval', '1', '--block-ttl', String(TTL)]);
  const tools: ChildProcess[] = [];
  let traffic: Awaited<ReturnType<typeof startNormalTraffic>> | null = null;
  try {
    await nf.waitFor('ready', 20_000);
    traffic = await startNormalTraffic(topo, { seconds: 60, seed: 77 });
    // A paced 40 MB download that spans the attack.
    const transfer = topo.exec(topo.client, 'curl', ['-s', '-m', '120', '--limit-rate', '2M', '-o', '/dev/null', '-w', '%{size_download}', `http://${topo.addr.server4}:8080/bytes/40000000`], { timeoutMs: 130_000, allowFail: true });
    await sleep(12_000);
    assert.deepEqual(nf.events('block'), [], 'nothing blocked on normal traffic');
    assert.deepEqual(nf.events('alert'), [], 'no alert on normal traffic, the first seconds after start included');
    const onset = Date.now();
    tools.push(topo.spawn(topo.client, 'hping3', ['-S', '--flood', '-q', '-a', attacker, '-p', '8080', topo.addr.server4]));
    tools.push(topo.spawn(topo.client, 'ping', ['-f', '-q', '-I', attacker, topo.addr.server4]));

    const alert = await nf.waitFor('alert', 15_000, (r) => r.anomaly !== undefined);
    const block = await nf.waitFor('block', 15_000, (r) => r.src_ip === attacker);
    let inKernelAt = 0;
    while (Date.now() - onset < 15_000) {
      if ((await kernelEntries(topo)).some((e) => e.member.split(',')[0] === attacker)) {
        inKernelAt = Date.now();
        break;
      }
      await sleep(100);
    }
    assert.ok(inKernelAt > 0, 'the attacker reached the kernel ipset');
    const latency = inKernelAt - onset;
    t.diagnostic(`alert ${Date.parse(alert.timestamp) - onset} ms, block event ${Date.parse(block.timestamp) - onset} ms, in the kernel set ${latency} ms after onset; first block ${(block.block as BlockView).key}`);
    assert.ok(latency <= 10_000, `blocked in the kernel ${latency} ms after onset`);
    assert.equal((alert.alert as { action: string }).action, 'blocked');

    // Give escalation (e.g. service -> source when both floods show) a few seconds, then measure.
    await sleep(4000);
    const d0 = await blockDrops(topo);
    const rate = (): number => {
      const recent = nf.events('stats').slice(-2);
      return recent.reduce((n, r) => n + Number(r.pps), 0);
    };
    const peak = Math.max(...groupPps(nf.events('stats')).filter((x) => x.at >= onset && x.at <= Date.parse(block.timestamp) + 1000).map((x) => x.pps), 0);
    await sleep(3000);
    const d1 = await blockDrops(topo);
    const after = rate();
    t.diagnostic(`block DROP counter ${d0} -> ${d1} in 3 s; queue rate ${peak} pkt/s at the attack's peak, ${after} pkt/s once blocked`);
    assert.ok(d1 > d0 + 1000, 'the NFIPS block rules keep dropping the floods');
    assert.ok(after < peak / 4, `queue rate fell back: ${after} pkt/s vs ${peak} at the peak`);
    for (const tool of tools) tool.kill('SIGINT');

    const moved = Number((await transfer).stdout.trim());
    assert.equal(moved, 40_000_000, 'the normal client\'s download completed');
    const summary = await traffic.done;
    assert.ok(summary.http.ok > 20 && summary.http.failed <= summary.http.ok / 10, `normal clients kept working: ${JSON.stringify(summary.http)}`);
    const blocked = nf.events('block').map((r) => String(r.src_ip));
    const why = JSON.stringify([...nf.events('block'), ...nf.events('alert')].filter((r) => r.src_ip !== attacker));
    assert.deepEqual([...new Set(blocked)], [attacker], `only the attacker was blocked: ${why}`);

    // The block lifts after its time to live (and is not placed again: the attack is over).
    const keys = nf.events('block').map((r) => (r.block as BlockView).key);
    const lastEnd = Math.max(...nf.events('block').map((r) => Date.parse((r.block as BlockView).expires_at)));
    await sleep(Math.max(0, lastEnd - Date.now()) + 2500);
    const unblocked = nf.events('unblock').filter((r) => r.reason === 'expired').map((r) => (r.block as BlockView).key);
    assert.deepEqual(unblocked.sort(), [...keys].sort(), 'every block expired');
    assert.deepEqual((await kernelEntries(topo)).filter((e) => e.member.startsWith(attacker)), [], 'kernel set empty again');
    assert.ok(await pings(topo, attacker), 'the attacker address may talk again');
    assert.equal(nf.events('block').length, keys.length, 'no new block after the TTL');
    t.diagnostic(`blocks: ${nf.events('block').map((r) => `${(r.block as BlockView).key} ttl ${(r.block as BlockView).ttl_seconds}s`).join('; ')}`);
  } finally {
    for (const tool of tools) tool.kill('SIGKILL');
    await traffic?.stop().catch(() => undefined);
    await nf.stop();
    nf.cleanup();
    await topo.destroy();
  }
});

/** Summed pps over queues per stats second. */
function groupPps(stats: LogRecord[]): { at: number; pps: number }[] {
  const by = new Map<number, number>();
  for (const r of stats) {
    const at = Math.round(Date.parse(r.timestamp) / 1000) * 1000;
    by.set(at, (by.get(at) ?? 0) + Number(r.pps));
  }
  return [...by.entries()].map(([at, pps]) => ({ at, pps }));
}

test('a bad rules file, model, state file or ipset at start: a clear error, a non-zero exit, nothing installed', { timeout: 120_000 }, async (t: TestContext) => {
  await requireIntegration('ping', 'curl', 'hping3');
  const topo = await createTopology('nfbs');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-badstart-'));
  const file = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const stateDir = path.join(dir, 'bad-state');
  mkdirSync(stateDir);
  writeFileSync(path.join(stateDir, 'blocks.json'), JSON.stringify({ format: 'nfips-blocks', version: 1, saved_at: '2026-01-01T00:00:00Z', blocks: [{ net: '10.0.0.1', scope: 'service', proto: 'tcp', origin: 'anomaly', reason: 'x', created_at: '2026-01-01T00:00:00Z', expires_at: '2026-01-01T00:10:00Z', ttl_seconds: 600, offence: 1 }], offences: [] }));
  const cases: { what: string; args: string[]; code: number; message: RegExp }[] = [
    { what: 'rules', args: ['--rules', file('rules.json', '{"default": "accept", "rules": [{"id": "x", "action": "explode"}]}')], code: 2, message: /rules\.json.*\/rules\/0\/action/ },
    { what: 'model', args: ['--model', file('model.json', '{"format": "nfips-model", "version": 2}')], code: 2, message: /model\.json: at \(root\): missing required field/ },
    { what: 'older model', args: ['--model', file('old-model.json', '{"format": "nfips-model", "version": 1}')], code: 2, message: /old-model\.json: at \/version: this model was trained by an older nfips .*retrain it/ },
    { what: 'state file', args: ['--state-dir', stateDir], code: 2, message: /blocks\.json: at \/blocks\/0: a service block needs a destination port/ },
    { what: 'ipset', args: ['--ipset', '/nonexistent/ipset'], code: 1, message: /\/nonexistent\/ipset is not usable \(install the ipset package\)/ },
  ];
  try {
    for (const c of cases) {
      const nf = startInlineNfips(topo.gateway, c.args);
      const code = nf.proc.exitCode ?? (await once(nf.proc, 'exit'))[0];
      t.diagnostic(`${c.what}: exit ${String(code)}: ${nf.output().trim().split('\n')[0]}`);
      assert.equal(code, c.code, `${c.what}: exit code; output:\n${nf.output()}`);
      assert.match(nf.output(), c.message, c.what);
      const save = (await topo.exec(topo.gateway, 'iptables', ['-w', '-S'])).stdout;
      assert.ok(!save.includes('NFIPS'), `${c.what}: nothing installed in iptables`);
      assert.equal((await topo.exec(topo.gateway, 'ipset', ['list', '-n'])).stdout.trim(), '', `${c.what}: no ipset left`);
      nf.cleanup();
    }
  } finally {
    await topo.destroy();
  }
});
