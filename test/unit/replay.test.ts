// nfips train --pcap and nfips replay, as a user runs them (no root needed).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { writeSyntheticPcap } from '../../lab/support/synthetic-pcap';
import { Detector } from '../../src/detect/detector';
import { OfflinePipeline } from '../../src/offline/pipeline';
import { PcapBatchReader } from '../../src/pcap/reader';
import { readRuleFile } from '../../src/rules/load';

const run = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const dir = mkdtempSync(path.join(tmpdir(), 'nfips-replay-'));
const file = (n: string) => path.join(dir, n);
const ATTACKER = '10.0.9.66';

type Line = Record<string, unknown> & { event_type: string };
async function replay(pcap: string, extra: string[] = []): Promise<Line[]> {
  const r = await run(process.execPath, [NFIPS, 'replay', '--pcap', pcap, '--model', file('model.json'), ...extra], { maxBuffer: 64 << 20 });
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
}
const summaryOf = (lines: Line[]) => lines.find((l) => l.event_type === 'replay_summary') as Line & { packets: number; anomaly_alerts: number; source_alerts: number; scored: number; verdicts: Record<string, number> };
const alertsOf = (lines: Line[]) => lines.filter((l) => l.event_type === 'alert' && l.anomaly) as (Line & { src_ip: string; alert: { signature: string }; anomaly: { kind: string; responsible: { ip: string }[]; step_start: string; evidence: { measure: string }[] } })[];

describe('nfips train --pcap, then nfips replay', () => {
  before(async () => {
    writeSyntheticPcap(file('train.pcap'), { seconds: 600, seed: 1 });
    writeSyntheticPcap(file('normal.pcap'), { seconds: 300, seed: 2 });
    for (const kind of ['ping', 'syn', 'udp'] as const) writeSyntheticPcap(file(`${kind}.pcap`), { seconds: 200, seed: 3, flood: { from: ATTACKER, kind, at: 120, seconds: 10, pps: 2000 } });
    const r = await run(process.execPath, [NFIPS, 'train', '--pcap', file('train.pcap'), '--out', file('model.json')]);
    assert.match(r.stdout, /model written to/);
    assert.match(r.stdout, /windows: \d+/);
    assert.match(r.stdout, /k: \d+/);
    assert.match(r.stdout, /threshold: [\d.]+/);
    assert.match(r.stdout, /false-alarm rate on held-out normal windows: [\d.]+%/);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('several files are one capture, read in time order whatever the order given', async () => {
    writeSyntheticPcap(file('part1.pcap'), { seconds: 300, seed: 1, start: 1_700_000_000 });
    writeSyntheticPcap(file('part2.pcap'), { seconds: 300, seed: 5, start: 1_700_000_300 });
    const r = await run(process.execPath, [NFIPS, 'train', '--pcap', file('part2.pcap'), file('part1.pcap'), '--out', file('parts.json')]);
    assert.match(r.stdout, /part1\.pcap: \d+ packets[^]*part2\.pcap: \d+ packets/, 'part1 first');
    assert.match(r.stdout, /windows: 600 /, 'one window per step across the boundary, none repeated');
  });

  it('writes a model that records how it was made', () => {
    const m = JSON.parse(readFileSync(file('model.json'), 'utf8')) as { training: { source: string; command: string; windows: number }; queues: number; windowSeconds: number };
    assert.match(m.training.source, /train\.pcap/);
    assert.match(m.training.command, /nfips train --pcap/);
    assert.ok(m.training.windows > 400);
    assert.deepEqual([m.queues, m.windowSeconds], [1, 60]);
  });

  it('normal traffic it was not trained on: verdict counts and no alert', async () => {
    const lines = await replay(file('normal.pcap'));
    const s = summaryOf(lines);
    assert.ok(s.packets > 1000);
    assert.equal(s.verdicts.accepted, s.packets, 'the default rules accept everything here');
    assert.ok(s.scored > 100, `windows scored: ${s.scored}`);
    assert.deepEqual(alertsOf(lines), []);
    assert.equal(s.anomaly_alerts, 0);
    assert.equal(s.source_alerts, 0);
  });

  // SYNs and datagrams nobody answers fail by time: 2 s without an answer.
  const expected = { ping: ['echo_requests', 1], syn: ['tcp_failed', 3], udp: ['udp_failed', 3] } as const;
  for (const kind of ['ping', 'syn', 'udp'] as const) {
    it(`a ${kind} flood: one alert episode naming the flooder, on its own evidence`, async () => {
      const lines = await replay(file(`${kind}.pcap`));
      const alerts = alertsOf(lines);
      assert.equal(alerts.length, 1, `one alert: ${JSON.stringify(alerts.map((a) => a.alert.signature))}`);
      const first = alerts[0];
      assert.equal(first.src_ip, ATTACKER);
      assert.equal(first.anomaly.kind, 'source');
      assert.deepEqual(first.anomaly.responsible.map((x) => x.ip), [ATTACKER]);
      assert.equal(first.anomaly.evidence[0]?.measure, expected[kind][0]);
      const at = Date.parse(first.anomaly.step_start) / 1000;
      const onset = 1_700_000_000 + 120;
      assert.ok(at >= onset && at - onset <= expected[kind][1], `found ${at - onset} s after onset`);
      const logged = Date.parse(first.timestamp as string) / 1000;
      assert.ok(Math.abs(logged - onset) <= 5, 'events carry the capture clock');
      assert.equal(summaryOf(lines).source_alerts, 1);
      assert.equal(summaryOf(lines).anomaly_alerts, 0, 'the traffic classifier stays quiet: the source finding explains the windows');
      assert.ok(lines.some((l) => l.event_type === 'anomaly_end' && l.src_ip === ATTACKER), 'the episode closes after the flood');
    });
  }

  it('rules apply offline: a drop rule counts drops and logs drop events', async () => {
    const rules = file('rules.json');
    require('node:fs').writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [{ id: 'no-dns', action: 'drop', protocol: 'udp', dport: 5353 }] }));
    const lines = await replay(file('normal.pcap'), ['--rules', rules]);
    const s = summaryOf(lines);
    assert.ok(s.verdicts.dropped > 0);
    assert.ok(lines.some((l) => l.event_type === 'drop' && l.rule_id === 'no-dns'));
  });

  it('train --features: learns from windows and behaviour recorded the way run --record-features writes them', async () => {
    // The detector run uses, without a model: it only records.
    const d = new Detector({ model: null, threads: 1, log: { event: () => undefined }, recordFile: file('windows.jsonl'), windowSeconds: 60, stepSeconds: 1, queues: 1 });
    const reader = new PcapBatchReader(file('train.pcap'), 256);
    const rules = readRuleFile(path.join(PACKAGE_ROOT, 'rules', 'default.json'), 'auto');
    const pipe = new OfflinePipeline(reader.meta, { rules, batchSize: 256, features: { windowSeconds: 60, stepSeconds: 1, maxSourcesPerStep: 256, flags: null }, onWindow: () => undefined, onStep: (st) => d.onStep(st) });
    for (let n = reader.next(); n > 0; n = reader.next()) pipe.process(n, reader.packets);
    pipe.finish();
    reader.close();
    await d.close();
    const lines = readFileSync(file('windows.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    const behaviour = lines.filter((l) => l.type === 'behaviour').length;
    assert.ok(behaviour >= 10 && behaviour <= 11, `one behaviour line per minute of steps, the rest at the end: ${behaviour}`);
    const r = await run(process.execPath, [NFIPS, 'train', '--features', file('windows.jsonl'), '--out', file('from-features.json')]);
    assert.match(r.stdout, /windows: 600/);
    const m = JSON.parse(readFileSync(file('from-features.json'), 'utf8')) as { queues: number; training: { source: string }; sources: { steps: number; sourceSteps: number }; flags: { sessions: number } };
    assert.equal(m.queues, 1);
    assert.ok(m.sources.steps >= 598 && m.sources.sourceSteps > m.sources.steps, `per-source behaviour learnt: ${JSON.stringify(m.sources)}`);
    assert.ok(m.flags.sessions > 1000, 'and the flag sequences of its TCP sessions');
    assert.match(m.training.source, /feature recording/);
    await assert.rejects(run(process.execPath, [NFIPS, 'train', '--features', file('windows.jsonl'), '--window-seconds', '30', '--out', file('x.json')]), /the recording has 60 s windows/);
  });

  it('bad input: a clear error and exit code 2', async () => {
    await assert.rejects(run(process.execPath, [NFIPS, 'replay', '--pcap', file('model.json'), '--model', file('model.json')]), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 2);
      assert.match(e.stderr, /not a pcap or pcapng file/);
      return true;
    });
    await assert.rejects(run(process.execPath, [NFIPS, 'replay', '--pcap', file('normal.pcap'), '--model', file('normal.pcap')]), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 2);
      assert.match(e.stderr, /normal\.pcap/);
      return true;
    });
    await assert.rejects(run(process.execPath, [NFIPS, 'train', '--out', file('x.json')]), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 2);
      assert.match(e.stderr, /exactly one kind of input/);
      return true;
    });
  });
});
