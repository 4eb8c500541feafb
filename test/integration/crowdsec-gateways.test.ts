// Several gateways, one decision store: two nfips gateways (each a client /
// gateway / server topology) and a stock crowdsec-firewall-bouncer share a
// real CrowdSec Local API in a namespace all three reach. A SYN flood
// blocked by gateway A is published and enforced at gateway B (within 15 s
// at the default 10 s interval) and by the stock bouncer; A does not apply
// its own decision again. cscli decisions reach both gateways and their
// deletion lifts them. A block placed while the Local API is down is queued
// and published once it is back. Lifting a published block at A with
// `nfips blocks del` deletes its decision at the Local API too.
import assert from 'node:assert/strict';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test, TestContext } from 'node:test';
import { parseSave } from '../../src/blocks/ipset';
import { InlineNfips, startInlineNfips } from '../../lab/netns/inline-nfips';
import { startPeers } from '../../lab/netns/peers';
import { createTopology, nsExec, PROCESS_TAG, Topology } from '../../lab/netns/topology';
import { startLapi } from '../helpers/crowdsec-lapi';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The Local API's namespace, with a link to each gateway and to the stock bouncer's namespace.
const LAPI_NS = `nfcsl${PROCESS_TAG}`;
const FW_NS = `nfcsf${PROCESS_TAG}`;
const LAPI_ADDR = '10.79.0.1';
const LINKS = { a: ['10.79.1.1', '10.79.1.2'], b: ['10.79.2.1', '10.79.2.2'], f: ['10.79.3.1', '10.79.3.2'] } as const;

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | null | undefined | false>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}

async function ip(args: string[]): Promise<void> {
  await execFileP('ip', args);
}

/** A veth from the Local API's namespace to `ns`, and a route there to the Local API. */
async function linkToLapi(ns: string, name: string, [near, far]: readonly [string, string]): Promise<void> {
  await ip(['link', 'add', `${name}l`, 'netns', LAPI_NS, 'type', 'veth', 'peer', 'name', `${name}x`, 'netns', ns]);
  await ip(['-n', LAPI_NS, 'addr', 'add', `${near}/30`, 'dev', `${name}l`]);
  await ip(['-n', LAPI_NS, 'link', 'set', `${name}l`, 'up']);
  await ip(['-n', ns, 'addr', 'add', `${far}/30`, 'dev', `${name}x`]);
  await ip(['-n', ns, 'link', 'set', `${name}x`, 'up']);
  await ip(['-n', ns, 'route', 'add', `${LAPI_ADDR}/32`, 'via', near]);
}

test('two gateways and a stock bouncer share blocks through one CrowdSec Local API', { timeout: 300_000 }, async (t: TestContext) => {
  await requireIntegration('hping3', 'crowdsec', 'cscli', 'crowdsec-firewall-bouncer');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-csgw-'));
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [] }));
  const topos: Topology[] = [];
  const procs: ChildProcess[] = [];
  const nfs: InlineNfips[] = [];
  let lapi: Awaited<ReturnType<typeof startLapi>> | null = null;
  try {
    const A = await createTopology('nfcsa');
    topos.push(A);
    const B = await createTopology('nfcsb');
    topos.push(B);
    for (const ns of [LAPI_NS, FW_NS]) {
      await ip(['netns', 'add', ns]);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await ip(['-n', LAPI_NS, 'addr', 'add', `${LAPI_ADDR}/32`, 'dev', 'lo']);
    await linkToLapi(A.gateway, `${A.prefix}a`.slice(0, 13), LINKS.a);
    await linkToLapi(B.gateway, `${B.prefix}b`.slice(0, 13), LINKS.b);
    await linkToLapi(FW_NS, `nfcsf${PROCESS_TAG}`, LINKS.f);
    lapi = await startLapi(LAPI_NS, LAPI_ADDR, 8080);

    // The stock firewall bouncer: iptables mode on INPUT with its own ipsets, in its own namespace.
    const fwKey = readFileSync(await lapi.addBouncer('stock'), 'utf8').trim();
    const fwConfig = path.join(dir, 'fw-bouncer.yaml');
    writeFileSync(fwConfig, [
      'mode: iptables', `pid_dir: ${dir}`, 'update_frequency: 2s', 'daemonize: false', 'log_mode: file', `log_dir: ${dir}`, 'log_level: info',
      `api_url: ${lapi.url}/`, `api_key: ${fwKey}`, 'disable_ipv6: false', 'deny_action: DROP', 'deny_log: false',
      'supported_decisions_types:', '  - ban', 'blacklists_ipv4: crowdsec-blacklists', 'blacklists_ipv6: crowdsec6-blacklists', 'ipset_type: nethash',
      'iptables_chains:', '  - INPUT', 'prometheus:', '  enabled: false', '',
    ].join('\n'));
    const fw = spawn('ip', ['netns', 'exec', FW_NS, 'crowdsec-firewall-bouncer', '-c', fwConfig], { stdio: 'ignore' });
    procs.push(fw);

    const gateway = async (topo: Topology, name: string, mode: string) => {
      const key = await lapi!.addBouncer(`nfips-${name}`);
      const password = await lapi!.addMachine(`nfips-${name}`);
      const nf = startInlineNfips(topo.gateway, ['--rules', rules, '--queues', '0', '--stats-interval', '1', '--mode', mode, '--block-ttl', '300',
        '--crowdsec-url', lapi!.url, '--crowdsec-bouncer-key-file', key, '--crowdsec-machine-id', `nfips-${name}`, '--crowdsec-password-file', password]);
      nfs.push(nf);
      await nf.waitFor('crowdsec_connected', 30_000);
      return nf;
    };
    const nfA = await gateway(A, 'a', 'prevent');
    const nfB = await gateway(B, 'b', 'off');
    procs.push(...(await startPeers(A, A.server, [['http', 8080]])), ...(await startPeers(B, B.server, [['http', 8080]])));
    const inSet = async (topo: Topology, member: string) => parseSave((await topo.exec(topo.gateway, 'ipset', ['save'])).stdout).some((e) => e.set.startsWith('nfips-') && e.member.split(',')[0] === member);
    const inStock = async (member: string) => (await nsExec(FW_NS, 'ipset', ['list', 'crowdsec-blacklists'], { allowFail: true })).stdout.split('\n').some((l) => l.trim().split(' ')[0] === member);
    const pings = async (topo: Topology, from: string) => (await topo.exec(topo.client, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '-I', from, topo.addr.server4], { allowFail: true })).code === 0;
    const cli = async (nf: InlineNfips, ...a: string[]) => JSON.parse((await execFileP(process.execPath, [NFIPS, ...a, '--json', '--control-socket', nf.controlSocket])).stdout) as Record<string, unknown>;

    // 1. A SYN flood at A: blocked there, published, enforced at B and by the stock bouncer.
    const attacker = A.addr.clientExtra4[3]!;
    assert.ok(await pings(B, attacker), 'the attacker\'s address passes B before');
    const flood = A.spawn(A.client, 'hping3', ['-S', '--flood', '-q', '-a', attacker, '-p', '8080', A.addr.server4]);
    procs.push(flood);
    const onset = Date.now();
    await until('the attacker in A\'s kernel set', 20_000, () => inSet(A, attacker));
    const atA = Date.now();
    flood.kill('SIGINT');
    const pushed = await nfA.waitFor('crowdsec_pushed', 15_000, (r) => r.src_ip === attacker);
    assert.match(String(pushed.scenario), /^nfips\//);
    await until('the attacker in B\'s kernel set', 20_000, () => inSet(B, attacker));
    const atB = Date.now();
    t.diagnostic(`SYN flood: in A's set ${atA - onset} ms after onset, in B's set ${atB - atA} ms after A's (default 10 s interval)`);
    assert.ok(atB - atA <= 15_000, `propagation ${atB - atA} ms`);
    assert.equal(await pings(B, attacker), false, 'B drops the attacker');
    const atBblock = (await cli(nfB, 'blocks', 'list') as unknown as { key: string; origin: string; scenario: string }[]).find((b) => b.key === attacker);
    assert.deepEqual([atBblock?.origin, atBblock?.scenario], ['crowdsec', pushed.scenario]);
    await until('the attacker in the stock bouncer\'s ipset', 20_000, () => inStock(attacker));
    // A: its own decision came back and was recognised, not applied a second time.
    await nfA.waitFor('crowdsec_pull', 15_000, (r) => Number(r.own) >= 1);
    const atAblocks = (await cli(nfA, 'blocks', 'list') as unknown as { key: string; origin: string }[]).filter((b) => b.key.split(' ')[0] === attacker);
    assert.ok(atAblocks.length >= 1 && atAblocks.every((b) => b.origin === 'anomaly'), JSON.stringify(atAblocks));
    assert.equal(nfB.events('crowdsec_pushed').length, 0, 'B publishes nothing: it placed no anomaly block');

    // 2. An operator's decision reaches both gateways, and its deletion lifts it at both.
    const manual = A.addr.clientExtra4[2]!;
    await lapi.cscli(['decisions', 'add', '--ip', manual, '--duration', '1h']);
    await until('the manual decision at A and B', 15_000, async () => (await inSet(A, manual)) && inSet(B, manual));
    assert.equal(await pings(A, manual), false);
    assert.equal(await pings(B, manual), false);
    await lapi.cscli(['decisions', 'delete', '--ip', manual]);
    await until('the manual decision lifted at A and B', 15_000, async () => !(await inSet(A, manual)) && !(await inSet(B, manual)));
    assert.ok(await pings(A, manual));
    assert.ok(await pings(B, manual));

    // 3. The Local API down: a block at A is queued, and published once it is back.
    await lapi.kill();
    await nfA.waitFor('crowdsec_unreachable', 20_000);
    const late = A.addr.clientExtra4[1]!;
    const flood2 = A.spawn(A.client, 'hping3', ['-S', '--flood', '-q', '-a', late, '-p', '8080', A.addr.server4]);
    procs.push(flood2);
    await until('the second attacker in A\'s kernel set', 20_000, () => inSet(A, late));
    flood2.kill('SIGINT');
    await nfA.waitFor('crowdsec_push_failed', 15_000);
    const status = (await cli(nfA, 'status')).crowdsec as { state: string; publisher: { pending: number } };
    assert.deepEqual([status.state, status.publisher.pending], ['unreachable', 1]);
    await lapi.start();
    await nfA.waitFor('crowdsec_pushed', 40_000, (r) => r.src_ip === late);
    await until('the queued block enforced at B', 20_000, () => inSet(B, late));
    assert.ok(await inSet(B, attacker), 'B kept the first block through the outage');
    assert.equal((await cli(nfA, 'status')).crowdsec && ((await cli(nfA, 'status')).crowdsec as { publisher: { pending: number } }).publisher.pending, 0);

    // 4. nfips blocks del of a CrowdSec decision, with machine credentials: deleted at the Local API, lifted everywhere.
    const del = await execFileP(process.execPath, [NFIPS, 'blocks', 'del', late, '--control-socket', nfB.controlSocket]);
    assert.match(del.stdout, new RegExp(late.replace(/\./g, '\\.')));
    await until('the deleted decision gone at the stock bouncer', 20_000, async () => !(await inStock(late)));

    // 5. nfips blocks del of A's own published anomaly block: its decision is deleted at the Local API too.
    assert.ok(await inStock(attacker), 'the published decision is still in force at the stock bouncer');
    const ownKey = atAblocks[0]!.key;
    const delAt = Date.now();
    const delOwn = await execFileP(process.execPath, [NFIPS, 'blocks', 'del', ownKey, '--control-socket', nfA.controlSocket]);
    assert.match(delOwn.stdout, /crowdsec decisions? [\d, ]+ deleted at the Local API/);
    await until('the published decision gone at the stock bouncer', 8_000, async () => !(await inStock(attacker)));
    t.diagnostic(`blocks del of a published block: gone at the stock bouncer ${Date.now() - delAt} ms later (its update_frequency is 2 s)`);
    for (const nf of nfs) assert.equal(await nf.stop(), 0);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    for (const nf of nfs) {
      await nf.stop();
      nf.cleanup();
    }
    await lapi?.destroy();
    for (const ns of [LAPI_NS, FW_NS]) await execFileP('ip', ['netns', 'del', ns]).catch(() => undefined);
    for (const topo of topos) await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
