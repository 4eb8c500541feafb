// The addon's promise: no packet is left without a verdict, even when the
// JavaScript side throws or forgets to answer.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { install } from '../../src/iptables/apply';
import { buildPlan } from '../../src/iptables/plan';
import { createTopology } from '../../src/netns/topology';
import { integrationSkipReason } from '../helpers/env';

const HARNESS = path.join(__dirname, '..', 'helpers', 'addon-harness.js');

test('addon failure verdicts', { timeout: 120_000 }, async (t: TestContext) => {
  const reason = await integrationSkipReason();
  if (reason) {
    t.skip(reason);
    return;
  }
  const topo = await createTopology('nfaf');
  try {
    const plan = buildPlan({ queues: { first: 0, last: 0 }, hook: 'forward', mark: { value: 1, mask: 1 }, failClosed: false, exclude: [], families: ['ipv4'] });
    await install(plan, { iptables: 'iptables', ip6tables: 'ip6tables', netns: topo.gateway });

    for (const mode of ['throw', 'unset'] as const) {
      await t.test(`handler that ${mode === 'throw' ? 'throws' : 'leaves verdicts unset'}: every packet gets the failure verdict`, async () => {
        const h = topo.spawn(topo.gateway, process.execPath, [HARNESS, mode, '0', '3']);
        let out = '';
        h.stdout?.on('data', (b: Buffer) => (out += b.toString()));
        h.stderr?.on('data', (b: Buffer) => (out += b.toString()));
        const exited = new Promise<void>((r) => h.once('exit', () => r()));
        while (!out.includes('ready')) await new Promise((r) => setTimeout(r, 20));
        // Failure verdict is NF_REPEAT + mark (fail-open), so traffic still flows.
        const ping = await topo.exec(topo.client, 'ping', ['-c', '5', '-i', '0.2', '-W', '1', topo.addr.server4], { allowFail: true });
        await exited;
        assert.equal(ping.code, 0, `ping passes on failure verdicts: ${ping.stdout}`);
        const c = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
        assert.ok(c.received >= 10, `received ${c.received}`);
        assert.equal(c.failVerdicts, c.received, 'every packet got the failure verdict');
        assert.equal(c.verdictRepeat + c.verdictDrop + c.verdictAccept, 0);
        if (mode === 'throw') {
          assert.equal(c.jsErrors, c.batches, 'each throwing batch counted');
          assert.equal(c.onErrorCalls, c.batches, 'and reported to onError');
        } else {
          assert.equal(c.jsErrors, 0);
        }
      });
    }

    await t.test('a well-behaved handler: verdicts sent, none failed', async () => {
      const h = topo.spawn(topo.gateway, process.execPath, [HARNESS, 'repeat', '0', '2']);
      let out = '';
      h.stdout?.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise<void>((r) => h.once('exit', () => r()));
      while (!out.includes('ready')) await new Promise((r) => setTimeout(r, 20));
      await topo.exec(topo.client, 'ping', ['-c', '3', '-i', '0.2', topo.addr.server4]);
      await exited;
      const c = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
      assert.equal(c.verdictRepeat, c.received);
      assert.equal(c.failVerdicts, 0);
    });
  } finally {
    await topo.destroy();
  }
});
