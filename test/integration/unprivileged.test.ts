// nfips as the systemd unit runs it: an unprivileged user whose only
// capabilities are CAP_NET_ADMIN and CAP_NET_RAW, kept as ambient
// capabilities (setpriv here, AmbientCapabilities= in the unit). It must
// bind its queue, install its chains and sets, verdict, block, repair its
// chain and clean up; without the capabilities it must refuse to start.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { promisify } from 'node:util';
import { InlineNfips, startInlineNfips } from '../../lab/netns/inline-nfips';
import { startPeers } from '../../lab/netns/peers';
import { createTopology, Topology } from '../../lab/netns/topology';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
// No passwd entry needed: nfips never looks its user up.
const UID = 61011;
const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

/** setpriv to UID with nothing but the given capabilities, ambient so they survive exec into node. */
function asUser(caps: string[]): string[] {
  const list = caps.map((c) => `+${c}`).join(',');
  const keep = caps.length > 0 ? ['--inh-caps', list, '--ambient-caps', list] : ['--inh-caps', '-all'];
  return ['setpriv', '--reuid', String(UID), '--regid', String(UID), '--clear-groups', '--bounding-set', caps.length > 0 ? `-all,${list}` : '-all', ...keep, '--'];
}

async function probe(t: Topology, port: number): Promise<'dropped' | 'refused' | 'open'> {
  const started = Date.now();
  const r = await t.exec(t.client, 'nc', ['-z', '-w', '2', t.addr.server4, String(port)], { allowFail: true });
  if (r.code === 0) return 'open';
  return Date.now() - started >= 1900 ? 'dropped' : 'refused';
}

function procStatus(pid: number): { uid: string; capEff: bigint; capBnd: bigint } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  return { uid: field('Uid'), capEff: BigInt(`0x${field('CapEff')}`), capBnd: BigInt(`0x${field('CapBnd')}`) };
}

test('an unprivileged user with only CAP_NET_ADMIN and CAP_NET_RAW (ambient) runs nfips inline', { timeout: 180_000 }, async (t: TestContext) => {
  await requireIntegration('ping', 'nc', 'setpriv');
  const topo = await createTopology('nfup');
  const peers = await startPeers(topo, topo.server, [['tcp-echo', 23], ['tcp-echo', 24], ['http', 8080]]);
  // The rules must be readable by that user, as /etc/nfips/rules.json is (0644).
  const rulesDir = mkdtempSync(path.join(tmpdir(), 'wt11b-unpriv-'));
  chmodSync(rulesDir, 0o755);
  const rules = path.join(rulesDir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [
    { id: 'no-telnet', action: 'drop', protocol: 'tcp', dport: 23 },
    { id: 'reject-24', action: 'reject', protocol: 'tcp', dport: 24 },
  ] }), { mode: 0o644 });
  const gw = (cmd: string, args: string[]) => topo.exec(topo.gateway, cmd, args);
  const blocked = topo.addr.clientExtra4[3] as string;
  let nf: InlineNfips | null = null;
  try {
    await t.test('without the capabilities it refuses to start and installs nothing', async () => {
      const bare = startInlineNfips(topo.gateway, ['--rules', rules, '--queues', '0', '--stats-interval', '0'], { prefix: asUser([]), owner: { uid: UID, gid: UID } });
      const code = bare.proc.exitCode ?? (await once(bare.proc, 'exit'))[0];
      t.diagnostic(`no capabilities: exit ${String(code)}: ${bare.output().trim().split('\n').pop() ?? ''}`);
      assert.notEqual(code, 0);
      assert.match(bare.output(), /nfips run needs CAP_NET_ADMIN/);
      for (const table of ['mangle', 'filter']) assert.doesNotMatch((await gw('iptables', ['-w', '-t', table, '-S'])).stdout, /NFIPS/);
      bare.cleanup();
    });

    nf = startInlineNfips(topo.gateway, ['--rules', rules, '--queues', '0', '--stats-interval', '0'], { prefix: asUser(['net_admin', 'net_raw']), owner: { uid: UID, gid: UID } });
    await nf.waitFor('ready', 30_000);
    const n = nf;
    const ps = procStatus(n.proc.pid as number);
    const want = (1n << BigInt(CAP_NET_ADMIN)) | (1n << BigInt(CAP_NET_RAW));
    assert.match(ps.uid, new RegExp(`^${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`), 'runs as the unprivileged user');
    assert.equal(ps.capEff, want, `effective capabilities are exactly CAP_NET_ADMIN and CAP_NET_RAW (0x${ps.capEff.toString(16)})`);
    assert.equal(ps.capBnd, want, 'and nothing else can be gained');

    await t.test('its chains and block sets are installed and it verdicts traffic', async () => {
      assert.match((await gw('iptables', ['-w', '-t', 'mangle', '-S', 'FORWARD'])).stdout, /-A FORWARD -m comment --comment nfips -j NFIPS/);
      assert.match((await gw('iptables', ['-w', '-t', 'filter', '-S', 'FORWARD'])).stdout, /--mark 0x2\/0x2 .*-j NFIPS/);
      assert.match((await gw('ipset', ['list', '-n'])).stdout, /nfips-src4/);
      assert.equal(await probe(topo, 23), 'dropped');
      assert.equal(await probe(topo, 24), 'refused');
      assert.equal(await probe(topo, 8080), 'open');
      await n.waitFor('drop', 5000, (r) => r.rule_id === 'no-telnet');
    });

    await t.test('blocks go into the kernel set; the state file is 0600 and the log 0640, both its own', async () => {
      const r = await execFileP(process.execPath, [NFIPS, 'blocks', 'add', blocked, '--ttl', '300', '--control-socket', n.controlSocket]);
      assert.match(r.stdout, /^blocked /);
      const ping = await topo.exec(topo.client, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '-I', blocked, topo.addr.server4], { allowFail: true });
      assert.notEqual(ping.code, 0, 'the blocked address is dropped');
      const state = statSync(path.join(path.dirname(n.logFile), 'state', 'blocks.json'));
      assert.deepEqual([state.uid, state.mode & 0o777], [UID, 0o600]);
      const log = statSync(n.logFile);
      assert.deepEqual([log.uid, log.mode & 0o777], [UID, 0o640]);
    });

    await t.test('the chain watchdog repairs with the same two capabilities', async () => {
      const t0 = Date.now();
      await gw('iptables', ['-w', '-t', 'mangle', '-F', 'FORWARD']);
      const ev = await n.waitFor('chain_repaired', 10_000, (r) => Date.parse(r.timestamp) >= t0);
      assert.deepEqual(ev.missing, ['ipv4 mangle: jump from FORWARD to NFIPS missing']);
      assert.equal(await probe(topo, 23), 'dropped');
    });

    assert.equal(await n.stop(), 0, 'clean stop');
    for (const table of ['mangle', 'filter']) assert.doesNotMatch((await gw('iptables', ['-w', '-t', table, '-S'])).stdout, /NFIPS/, `${table}: nothing left`);
    assert.doesNotMatch((await gw('ipset', ['list', '-n'])).stdout, /nfips-/);
    assert.equal(n.events('iptables_remove_failed').length, 0);
  } finally {
    await nf?.stop();
    nf?.cleanup();
    for (const p of peers) p.kill();
    await topo.destroy();
    rmSync(rulesDir, { recursive: true, force: true });
  }
});
