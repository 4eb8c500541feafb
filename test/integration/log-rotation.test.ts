// logrotate's way (move the file, then SIGUSR1) under traffic: no line is
// lost. Every UDP datagram to port 9999 raises one rule alert event; after
// three rotations, the moved files and the new one hold exactly one event
// per datagram sent.
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { readLog, startInlineNfips } from '../../lab/netns/inline-nfips';
import { startPeers } from '../../lab/netns/peers';
import { createTopology } from '../../lab/netns/topology';
import { requireIntegration } from '../helpers/env';

const SENT = 600;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('log rotation under traffic loses no lines', { timeout: 120_000 }, async (t: TestContext) => {
  await requireIntegration('python3');
  const topo = await createTopology('nflr');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-rot-'));
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [{ id: 'udp-9999', action: 'alert', protocol: 'udp', dport: 9999 }] }));
  const peers = await startPeers(topo, topo.server, [['udp-echo', 9999]]);
  const nf = startInlineNfips(topo.gateway, ['--rules', rules, '--log-rate', '100000', '--mode', 'off', '--stats-interval', '0']);
  try {
    await nf.waitFor('ready', 20_000);
    const sender = topo.spawn(topo.client, 'python3', ['-c', `import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(${SENT}):\n  s.sendto(b'x%d' % i, ('${topo.addr.server4}', 9999)); time.sleep(0.01)\nprint('sent')`]);
    const sent = new Promise<void>((resolve) => sender.once('exit', () => resolve()));
    const moved: string[] = [];
    for (let k = 1; k <= 3; k++) {
      await sleep(1500);
      const to = `${nf.logFile}.${k}`;
      renameSync(nf.logFile, to);
      moved.push(to);
      nf.proc.kill('SIGUSR1');
    }
    await sent;
    await sleep(1000);
    assert.equal(await nf.stop(), 0);
    const files = [...moved, nf.logFile];
    const alertsPer = files.map((f) => readLog(f).filter((r) => r.event_type === 'alert' && r.rule_id === 'udp-9999').length);
    t.diagnostic(`alert events per file (3 moved, then the current one): ${alertsPer.join(', ')}`);
    assert.equal(alertsPer.reduce((a, b) => a + b, 0), SENT, 'one event per datagram, none lost, none doubled');
    assert.ok(alertsPer.slice(1).every((n) => n > 0), 'traffic was logged into each file after a rotation');
    assert.equal(files.slice(1).filter((f) => readLog(f).some((r) => r.event_type === 'log_reopened')).length, 3, 'each new file starts with log_reopened');
    const suppressed = files.flatMap((f) => readLog(f)).reduce((n, r) => n + Number(r.suppressed ?? 0), 0);
    assert.equal(suppressed, 0);
  } finally {
    await nf.stop();
    nf.cleanup();
    for (const p of peers) p.kill();
    await topo.destroy();
  }
});
