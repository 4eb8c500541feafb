// The normal-traffic recipe really produces its mix through a plain
// forwarding gateway: every kind of exchange gets answers, phases vary and
// several client addresses take part.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test, TestContext } from 'node:test';
import { promisify } from 'node:util';
import { startNormalTraffic } from '../../lab/netns/normal-traffic';
import { createTopology, Topology } from '../../lab/netns/topology';
import { requireIntegration } from '../helpers/env';

async function forwarded(t: Topology): Promise<number> {
  const snmp = (await t.exec(t.gateway, 'cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const names = snmp[0].split(/\s+/);
  return Number(snmp[1].split(/\s+/)[names.indexOf('ForwDatagrams')]);
}

test('normal traffic recipe through a forwarding gateway', { timeout: 120_000 }, async (t: TestContext) => {
  await requireIntegration('ping');
  const topo = await createTopology('ntr');
  try {
    await t.test('20 s of traffic: every kind answered, several phases and sources', async () => {
      const before = await forwarded(topo);
      const traffic = await startNormalTraffic(topo, { seconds: 20, seed: 7 });
      const s = await traffic.done;
      const packets = (await forwarded(topo)) - before;
      t.diagnostic(`summary ${JSON.stringify(s)}; gateway forwarded ${packets} packets`);
      const why = JSON.stringify(s);
      assert.equal(s.stoppedBy, 'time');
      assert.ok(s.seconds >= 19 && s.seconds < 30, why);
      assert.ok(s.http.ok >= 5 && s.http.failed === 0 && s.http.bytes > 0, `HTTP: ${why}`);
      assert.ok(s.http.newConnection > 0, `HTTP on new connections: ${why}`);
      assert.ok(s.udp.answered >= 10 && s.udp.answered >= s.udp.sent * 0.95, `UDP: ${why}`);
      assert.ok(s.echo.sent >= 5 && s.echo.echoed === s.echo.sent, `echo: ${why}`);
      assert.ok(s.ping.ok >= 1 && s.ping.failed === 0, `ping: ${why}`);
      assert.ok(s.phases.length >= 3 && new Set(s.phases.map((p) => p.level)).size >= 2, `phases: ${why}`);
      assert.ok(s.sourcesUsed.length > 1, `sources: ${why}`);
      assert.ok(!s.sourcesUsed.includes(topo.addr.clientExtra4[3]), 'the attacker address stays free');
      assert.ok(packets > 500, `the gateway forwarded the traffic (${packets} packets)`);
    });

    await t.test('the same seed plans the same phases', async () => {
      const a = await startNormalTraffic(topo, { seconds: 6, seed: 11 });
      const sa = await a.done;
      const b = await startNormalTraffic(topo, { seconds: 6, seed: 11 });
      const sb = await b.done;
      const shape = (s: typeof sa) => s.phases.map((p) => `${p.level}/${p.clients}`);
      assert.deepEqual(shape(sa), shape(sb));
    });

    await t.test('stop() ends early with a summary and leaves nothing running', async () => {
      const traffic = await startNormalTraffic(topo, { seconds: 600, seed: 3 });
      await new Promise((r) => setTimeout(r, 4000));
      const s = await traffic.stop();
      assert.equal(s.stoppedBy, 'signal');
      assert.ok(s.seconds < 10 && s.udp.answered > 0, JSON.stringify(s));
      assert.deepEqual(await traffic.done, s);
      for (const ns of [topo.client, topo.server]) {
        const pids = (await promisify(execFile)('ip', ['netns', 'pids', ns])).stdout.trim();
        assert.equal(pids, '', `no process left in ${ns}`);
      }
    });
  } finally {
    await topo.destroy();
  }
});
