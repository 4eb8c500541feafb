// --rules-mode log (dry run) on the real kernel path: a drop rule's packets
// pass and are logged as would-drop; a reject rule's as would-reject; and a
// rule naming an interface the gateway lacks is warned about at every load.
import assert from 'node:assert/strict';
import { ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { promisify } from 'node:util';
import { InlineNfips, startInlineNfips } from '../../lab/netns/inline-nfips';
import { createTopology } from '../../lab/netns/topology';
import { startPeers } from '../../lab/netns/peers';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';
import { tcpConnect, udpProbe } from '../helpers/probes';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

const RULES = {
  default: 'accept',
  vars: { ECHO: [2323] },
  rules: [
    { id: 'absent-if', action: 'drop', in: 'nfipsnone0', protocol: 'tcp', dport: 1 },
    // log: false does not hide a would-drop: seeing them is what a dry run is for.
    { id: 'no-2323', action: 'drop', protocol: 'tcp', dport: '$ECHO', log: false, sid: 4242, severity: 1 },
    { id: 'reject-udp-9999', action: 'reject', protocol: 'udp', dport: 9999 },
  ],
};

type Alert = { action: string; signature_id: number; severity: number };

test('--rules-mode log: drops and rejects pass and are logged as would-drop/would-reject', { timeout: 180_000 }, async (t: TestContext) => {
  await requireIntegration('python3');
  const topo = await createTopology('nfrmx');
  let servers: ChildProcess[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-rules-mode-'));
  const file = path.join(dir, 'rules.json');
  writeFileSync(file, JSON.stringify(RULES));
  let n: InlineNfips | null = null;
  try {
    servers = await startPeers(topo, topo.server, [['tcp-echo', 2323], ['udp-echo', 9999]]);
    n = startInlineNfips(topo.gateway, ['--mode', 'off', '--rules', file, '--rules-mode', 'log', '--queues', '0', '--stats-interval', '1', '--no-watch-rules']);
    const nf = n;
    await nf.waitFor('ready', 20_000);
    const start = await nf.waitFor('start', 1000);
    assert.equal((start.config as { rules_mode: string }).rules_mode, 'log');

    await t.test('a missing interface is warned about at start and at reload', async () => {
      const w = await nf.waitFor('rules_warning', 1000, (r) => r.interface === 'nfipsnone0' && r.rules_version === 0);
      assert.equal(w.level, 'warn');
      await execFileP(process.execPath, [NFIPS, 'rules', 'reload', '--control-socket', nf.controlSocket]);
      await nf.waitFor('rules_warning', 5000, (r) => r.interface === 'nfipsnone0' && r.rules_version === 1);
    });

    await t.test('the drop rule\'s connection opens and each packet it would drop is a would-drop event', async () => {
      assert.equal(await tcpConnect(topo, 2323), 'open');
      const d = await nf.waitFor('drop', 5000, (r) => r.rule_id === 'no-2323');
      assert.deepEqual({ ...(d.alert as Alert) }, { action: 'would-drop', signature_id: 4242, signature: 'nfips rule no-2323', category: 'nfips rule', severity: 1 });
      assert.equal(d.dest_port, 2323);
      assert.equal(d.in_iface, topo.gwClientIf);
    });

    await t.test('the reject rule\'s datagram gets its reply, logged as would-reject', async () => {
      assert.equal(await udpProbe(topo, 9999), 'reply');
      const r = await nf.waitFor('reject', 5000, (e) => e.rule_id === 'reject-udp-9999');
      assert.equal((r.alert as Alert).action, 'would-reject');
    });

    await t.test('counters say what would have happened, and how much passed because of the dry run', async () => {
      const s = await nf.waitFor('stats', 5000, (e) => Number(e.dropped) >= 1 && Number(e.rejected) >= 1);
      assert.equal(s.verdicts && (s.verdicts as { drop: number }).drop, 0, 'nothing was really dropped');
      const status = JSON.parse((await execFileP(process.execPath, [NFIPS, 'status', '--json', '--control-socket', nf.controlSocket])).stdout) as { rules_mode: string; queues: { dryRunPassed: number }[] };
      assert.equal(status.rules_mode, 'log');
      assert.ok(status.queues[0].dryRunPassed >= 2, JSON.stringify(status.queues[0]));
    });
  } finally {
    await n?.stop();
    n?.cleanup();
    for (const s of servers) s.kill();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
