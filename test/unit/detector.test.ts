// The live detector: piscina scoring with the skip-if-busy policy, alerts and
// episode ends as log events, thin windows never scored.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Detector } from '../../src/detect/detector';
import { CONFIRM_WINDOWS } from '../../src/detect/judge';
import { trainModel } from '../../src/detect/train';
import { FEATURE_COUNT, FEATURE_NAMES } from '../../src/features/feature-set';
import { StepCounter } from '../../src/features/step-counter';
import { FeatureWindow } from '../../src/features/window';
import { createDecodedBatch } from '../../src/packet/decoded';
import { EventFields } from '../../src/log/event-log';
import { mulberry32 } from '../../lab/support/mulberry32';
import { quietBehaviour } from '../helpers/behaviour';


const r = mulberry32(9);
const normalValues = () => FEATURE_NAMES.map((n) => (n.endsWith('share') ? 0.2 + 0.05 * r() : 100 + 20 * r()));
const model = trainModel(
  Array.from({ length: 400 }, (_, i) => ({ start: i, end: i + 60, packets: 1000, values: normalValues() })),
  quietBehaviour(),
  { windowSeconds: 60, stepSeconds: 1, queues: 1, source: 'test', command: 'test' },
).model;

const pps = FEATURE_NAMES.indexOf('packets_per_s');
function win(queue: number, end: number, values: number[], packets = 1000): FeatureWindow {
  return {
    queue,
    start: end - 60,
    end,
    packets,
    values,
    totals: { packets, bytes: packets * 100, syn: 0, icmpEcho: 0, udp: 0, newSessions: 0 },
    sources: [{ ip: '10.9.9.9', packets: packets * 0.9, bytes: 0, syn: 0, icmpEcho: 0, udp: 0, newSessions: 0, protos: 0, target: -1, recent: 0 }, { ip: '10.1.1.1', packets: packets * 0.1, bytes: 0, syn: 0, icmpEcho: 0, udp: 0, newSessions: 0, protos: 0, target: -1, recent: 0 }],
  };
}

function recordingLog() {
  const events: { type: string; fields: EventFields }[] = [];
  return { events, log: { event: (type: string, fields: EventFields = {}) => void events.push({ type, fields }), close: async () => undefined, reopen: () => undefined } };
}
const settle = async (d: Detector, queue: number, scored: number) => {
  for (let i = 0; i < 200 && (d.queueStats()[queue]?.scored ?? 0) + (d.queueStats()[queue]?.errors ?? 0) < scored; i++) await new Promise((res) => setTimeout(res, 10));
};

describe('Detector', () => {
  it('skips and counts a window while the queue\'s previous one is still being scored', async () => {
    const { log } = recordingLog();
    const d = new Detector({ model, threads: 1, log, windowSeconds: 60, stepSeconds: 1, queues: 1 });
    try {
      for (let i = 0; i < 50; i++) d.onWindow(win(0, 100 + i, normalValues()));
      d.onWindow(win(1, 100, normalValues()));
      await settle(d, 0, 1);
      await settle(d, 1, 1);
      const s = d.queueStats();
      assert.deepEqual([s[0].windows, s[0].scored, s[0].skipped], [50, 1, 49], 'a burst never queues up work');
      assert.deepEqual([s[1].scored, s[1].skipped], [1, 0], 'queues are independent');
    } finally {
      await d.close();
    }
  });

  it('alerts once per episode, naming the source, and ends the episode after quiet windows', async () => {
    const { log, events } = recordingLog();
    const d = new Detector({ model, threads: 1, log, quietWindows: 3, windowSeconds: 60, stepSeconds: 1, queues: 1 });
    try {
      const feed = async (end: number, values: number[], packets = 1000) => {
        const before = d.queueStats()[0]?.scored ?? 0;
        d.onWindow(win(0, end, values, packets));
        if (packets >= model.minPackets) await settle(d, 0, before + 1);
      };
      await feed(1, normalValues());
      const flood = normalValues();
      flood[pps] = 1e6;
      await feed(2, flood);
      await feed(3, normalValues());
      assert.equal(events.length, 0, 'one anomalous window is not an episode: it must last CONFIRM_WINDOWS');
      for (let t = 4; t < 4 + CONFIRM_WINDOWS + 1; t++) await feed(t, flood);
      await feed(20, normalValues());
      await feed(21, normalValues(), 10); // thin: not scored, counts as quiet
      await feed(22, normalValues());
      const types = events.map((e) => e.type);
      assert.deepEqual(types, ['alert', 'anomaly_end']);
      const alert = events[0].fields as { src_ip: string; alert: { signature_id: number; action: string }; anomaly: { deviations: { feature: string }[]; score: number; threshold: number } };
      assert.equal(alert.src_ip, '10.9.9.9');
      assert.equal(alert.alert.action, 'allowed');
      assert.equal(alert.anomaly.deviations[0].feature, 'packets_per_s');
      assert.ok(alert.anomaly.score > alert.anomaly.threshold);
      const s = d.queueStats()[0];
      assert.deepEqual([s.scored, s.thin, s.anomalous, s.alerts, d.stats().traffic_episode_open], [11, 1, 1 + CONFIRM_WINDOWS + 1, 1, false]);
    } finally {
      await d.close();
    }
  });

  it('does not score a window shorter than the model\'s (the first minute after start): it is not comparable', async () => {
    const { log, events } = recordingLog();
    const d = new Detector({ model, threads: 1, log, windowSeconds: 60, stepSeconds: 1, queues: 1 });
    try {
      const flood = normalValues();
      flood[pps] = 1e6;
      d.onWindow({ ...win(0, 102, flood), start: 100 });
      d.onWindow({ ...win(0, 159, flood), start: 100 });
      await new Promise((res) => setTimeout(res, 50));
      assert.deepEqual([d.queueStats()[0].thin, d.queueStats()[0].scored], [2, 0]);
      for (let t = 0; t < CONFIRM_WINDOWS; t++) {
        d.onWindow({ ...win(0, 160 + t, flood), start: 100 + t });
        await settle(d, 0, t + 1);
      }
      assert.deepEqual(events.map((e) => e.type), ['alert'], 'full windows are judged');
    } finally {
      await d.close();
    }
  });

  it('reports the queue thread\'s late stamps and clock resets from its steps', async () => {
    const { log } = recordingLog();
    const d = new Detector({ model: null, threads: 1, log, windowSeconds: 60, stepSeconds: 1, queues: 1 });
    const counter = new StepCounter({ queue: 2, windowSeconds: 60, stepSeconds: 1 }, (r) => d.onStep(r));
    const inputs = { tsSec: new Uint32Array(3), tsNsec: new Uint32Array(3), origLen: new Uint32Array(3), hwAddrOffset: new Uint32Array(3).fill(0xffffffff), sessionPackets: new Uint32Array(3), analysed: new Uint8Array(3).fill(1), toServer: new Uint8Array(3), evBits: new Uint8Array(3), oddSeq: new Uint32Array(3), oddLen: new Uint8Array(3), oddSurprisal: new Float32Array(3) };
    const decoded = createDecodedBatch(3);
    inputs.tsSec.set([100, 99, 50]); // one late stamp, then a step back of 50 s
    counter.observe(3, decoded, inputs, new Uint8Array(0));
    counter.advanceTo(60);
    assert.deepEqual([d.queueStats()[2].late_stamps, d.queueStats()[2].clock_resets], [1, 1]);
    await d.close();
  });

  it('without a model only records (no pool, nothing scored)', async () => {
    const { log, events } = recordingLog();
    const d = new Detector({ model: null, threads: 1, log, windowSeconds: 60, stepSeconds: 1, queues: 1 });
    d.onWindow(win(0, 1, new Array<number>(FEATURE_COUNT).fill(1e9)));
    assert.deepEqual([d.queueStats()[0].windows, d.queueStats()[0].scored], [1, 0]);
    assert.deepEqual(events, []);
    await d.close();
  });
});
