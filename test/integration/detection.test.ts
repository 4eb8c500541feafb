// Anomaly detection end to end: normal traffic from the model recipe raises
// no alert; real attack tools are detected within 5 s and the alert names
// the attacker. Runs nfips with its shipped default model.
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { test, TestContext } from 'node:test';
import { InlineNfips, LogRecord, startInlineNfips } from '../../src/netns/inline-nfips';
import { startNormalTraffic } from '../../src/netns/normal-traffic';
import { createTopology, Topology } from '../../src/netns/topology';
import { integrationSkipReason } from '../helpers/env';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Minutes of normal traffic in the no-alert test; `make soak` runs longer. */
const NORMAL_SECONDS = Number(process.env.NFIPS_NORMAL_SECONDS ?? 180);
const DETECT_WITHIN_MS = 5000;

interface Anomaly {
  score: number;
  threshold: number;
  responsible: { ip: string; share: number }[];
  new_sources: string[];
  deviations: { feature: string; z: number }[];
}
const anomalyOf = (r: LogRecord) => r.anomaly as Anomaly | undefined;
const anomalyAlerts = (nf: InlineNfips) => nf.events('alert').filter((r) => anomalyOf(r) !== undefined);

interface Attack {
  name: string;
  tool: string;
  args: (t: Topology, attacker: string) => string[];
}

const ATTACKS: Attack[] = [
  { name: 'ping flood (ping -f)', tool: 'ping', args: (t, a) => ['-f', '-q', '-I', a, t.addr.server4] },
  { name: 'TCP SYN flood (hping3 -S --flood)', tool: 'hping3', args: (t, a) => ['-S', '--flood', '-q', '-a', a, '-p', '8080', t.addr.server4] },
  { name: 'UDP flood (hping3 --udp --flood)', tool: 'hping3', args: (t, a) => ['--udp', '--flood', '-q', '-a', a, '-p', '9', t.addr.server4] },
  { name: 'SYN port scan (nmap -sS)', tool: 'nmap', args: (t, a) => ['-sS', '-n', '-Pn', '-T4', '-p', '1-3000', '-S', a, '-e', `${t.prefix}c0`, t.addr.server4] },
];

function lastStats(nf: InlineNfips): LogRecord[] {
  const s = nf.events('stats');
  const byQueue = new Map<unknown, LogRecord>();
  for (const r of s) byQueue.set(r.queue, r);
  return [...byQueue.values()];
}

test('anomaly detection on the real kernel path', { timeout: 1_200_000 }, async (t: TestContext) => {
  const reason = await integrationSkipReason();
  if (reason) {
    t.skip(reason);
    return;
  }
  const topo = await createTopology('nfdt');
  const attacker = topo.addr.clientExtra4[3];
  try {
    await t.test(`normal traffic for ${NORMAL_SECONDS} s at varied rates raises no alert`, async () => {
      const nf = startInlineNfips(topo.gateway, ['--mode', 'detect', '--stats-interval', '5']);
      try {
        await nf.waitFor('ready', 20_000);
        // A seed the default model was not trained on.
        const traffic = await startNormalTraffic(topo, { seconds: NORMAL_SECONDS, seed: 4242 });
        const summary = await traffic.done;
        assert.ok(summary.http.ok > 50, `HTTP requests flowed: ${JSON.stringify(summary)}`);
        const alerts = anomalyAlerts(nf);
        assert.deepEqual(alerts.map((a) => anomalyOf(a)), [], 'no anomaly alert on normal traffic');
        const scored = lastStats(nf).reduce((n, r) => n + Number((r.classifier as { scored: number } | null)?.scored ?? 0), 0);
        assert.ok(scored >= NORMAL_SECONDS / 2, `windows were really scored (${scored})`);
      } finally {
        await nf.stop();
        nf.cleanup();
      }
    });

    for (const attack of ATTACKS) {
      await t.test(`${attack.name} is detected within ${DETECT_WITHIN_MS / 1000} s and the alert names ${attacker}`, async () => {
        const nf = startInlineNfips(topo.gateway, ['--mode', 'detect', '--stats-interval', '1']);
        let tool: ChildProcess | null = null;
        try {
          await nf.waitFor('ready', 20_000);
          const traffic = await startNormalTraffic(topo, { seconds: 40, seed: 77 });
          await sleep(12_000);
          assert.deepEqual(anomalyAlerts(nf).map((a) => anomalyOf(a)), [], 'no alert before the attack');
          const receivedBefore = lastStats(nf).reduce((n, r) => n + Number(r.received), 0);
          const onset = Date.now();
          tool = topo.spawn(topo.client, attack.tool, attack.args(topo, attacker));
          const alert = await nf.waitFor('alert', DETECT_WITHIN_MS + 10_000, (r) => anomalyOf(r) !== undefined);
          const latency = Date.parse(alert.timestamp) - onset;
          const a = anomalyOf(alert)!;
          assert.ok(latency <= DETECT_WITHIN_MS, `detected after ${latency} ms`);
          assert.ok(a.responsible.some((s) => s.ip === attacker), `attacker among the responsible sources: ${JSON.stringify(a.responsible)}`);
          assert.ok(a.score > a.threshold);
          await sleep(3000);
          tool.kill('SIGINT');
          // The verdict path kept flowing: packets were verdicted during the attack
          // and the normal client's requests still succeeded.
          const stats = lastStats(nf);
          const receivedAfter = stats.reduce((n, r) => n + Number(r.received), 0);
          assert.ok(receivedAfter > receivedBefore, 'packets verdicted during the attack');
          for (const s of stats) assert.equal(typeof (s.classifier as { skipped: number }).skipped, 'number', 'scoring skips are counted');
          const summary = await traffic.stop();
          assert.ok(summary.http.ok > 0 && summary.http.failed <= summary.http.ok, `normal client kept working: ${JSON.stringify(summary.http)}`);
          t.diagnostic(`${attack.name}: detected in ${latency} ms, score ${a.score} (threshold ${a.threshold}), lead ${a.deviations[0]?.feature}, responsible ${JSON.stringify(a.responsible)}`);
        } finally {
          tool?.kill('SIGKILL');
          await nf.stop();
          nf.cleanup();
        }
      });
    }
  } finally {
    await topo.destroy();
  }
});
