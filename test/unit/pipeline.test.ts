import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metaBuffer, metaColumns, NF_DROP, NF_REPEAT } from '../../src/batch/layout';
import { buildPacket } from '../../src/packet/build';
import { TCP_ACK, TCP_SYN } from '../../src/packet/decoded';
import { BatchPipeline } from '../../src/pipeline/batch-pipeline';
import { WindowAggregator } from '../../src/features/window';
import { parseRuleText } from '../../src/rules/load';
import { compileRuleSet } from '../../src/verdict/rule-snapshot';
import { ENGINE_COUNTERS, ruleCounterBytes } from '../../src/verdict/engine';
import { RuleEvent } from '../../src/verdict/rule-events';

const B = 8;
const rules = compileRuleSet(parseRuleText(JSON.stringify({ default: 'accept', rules: [{ id: 'no-telnet', action: 'drop', protocol: 'tcp', dport: 23 }, { action: 'accept', protocol: 'tcp', dport: 80, log: true }] }), 't.json'), { ifindex: () => undefined });
const packets = [
  buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40000, dport: 23, tcpFlags: TCP_SYN }),
  buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40001, dport: 80, tcpFlags: TCP_SYN }),
  buildPacket({ src: '192.0.2.7', dst: '10.0.0.5', proto: 6, sport: 80, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK }),
  buildPacket({ src: '10.0.0.6', dst: '192.0.2.7', proto: 17, sport: 5000, dport: 53 }),
  buildPacket({ src: '10.0.0.6', dst: '192.0.2.7', proto: 6, sport: 40002, dport: 23, tcpFlags: TCP_SYN }),
];

function setup(consumer = true) {
  const meta = metaColumns(metaBuffer(B), B);
  const buf = new Uint8Array(B * 256);
  packets.forEach((p, i) => {
    buf.set(p, i * 256);
    meta.offset[i] = i * 256;
    meta.capLen[i] = p.length;
    meta.origLen[i] = p.length;
    meta.tsSec[i] = 1000;
    meta.verdict[i] = 0xffffffff;
  });
  const counters = new Float64Array(ENGINE_COUNTERS.length);
  const batches: RuleEvent[][] = [];
  const steps: number[] = [];
  const pipe = new BatchPipeline({
    capacity: B,
    meta,
    rules,
    rulesVersion: 3,
    ruleCounters: new ArrayBuffer(ruleCounterBytes(rules.ruleCount)),
    engine: { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 100, flowCapacity: 1024 },
    counters,
    windows: new WindowAggregator({ queue: 0, windowSeconds: 2, stepSeconds: 1, maxSourcesPerStep: 16 }, () => undefined, (s) => steps.push(s.sources.n)),
    onRuleEvents: consumer
      ? (events, version) => {
          assert.equal(version, 3);
          batches.push(events);
        }
      : null,
  });
  return { pipe, meta, buf, counters, batches, steps };
}

describe('BatchPipeline', () => {
  it('a batch decided in parts gets the verdicts, counters and events of the whole', () => {
    const whole = setup();
    whole.pipe.decide(packets.length, whole.buf);
    whole.pipe.afterVerdicts(packets.length, whole.buf);
    const parts = setup();
    parts.pipe.decide(2, parts.buf);
    const first = Array.from(parts.meta.verdict.subarray(0, 2));
    assert.deepEqual(Array.from(parts.meta.verdict.subarray(2, packets.length)), [0xffffffff, 0xffffffff, 0xffffffff], 'the later part is not decided yet');
    parts.pipe.decide(packets.length, parts.buf, 2);
    assert.deepEqual(Array.from(parts.meta.verdict.subarray(0, 2)), first, 'the earlier part is left as it was');
    parts.pipe.afterVerdicts(packets.length, parts.buf);
    assert.deepEqual(Array.from(parts.meta.verdict.subarray(0, packets.length)), [NF_DROP, NF_REPEAT, NF_REPEAT, NF_REPEAT, NF_DROP]);
    assert.deepEqual(Array.from(parts.meta.verdict.subarray(0, packets.length)), Array.from(whole.meta.verdict.subarray(0, packets.length)));
    assert.deepEqual(Array.from(parts.meta.verdictMark.subarray(0, packets.length)), Array.from(whole.meta.verdictMark.subarray(0, packets.length)));
    assert.deepEqual(Array.from(parts.counters), Array.from(whole.counters));
    assert.deepEqual(parts.batches, whole.batches);
    assert.deepEqual(parts.batches.flat().map((e) => `${e.action}:${e.rule_index}:${e.dest_port}`), ['drop:0:23', 'accept:1:80', 'drop:0:23']);
    // Both count the same packets into the windows: one step, the same sources.
    whole.pipe.decide(0, whole.buf);
    for (const p of [whole, parts]) {
      p.meta.tsSec[0] = 1002;
      p.pipe.decide(1, p.buf);
      p.pipe.afterVerdicts(1, p.buf);
    }
    assert.deepEqual(parts.steps, whole.steps);
    assert.ok(whole.steps.length > 0 && whole.steps[0] > 0, `a step with sources closed (${JSON.stringify(whole.steps)})`);
  });

  it('rule events leave in afterVerdicts, not while the verdicts are being decided', () => {
    const s = setup();
    s.pipe.decide(packets.length, s.buf);
    assert.equal(s.batches.length, 0, 'nothing formatted before the verdicts are sent');
    s.pipe.afterVerdicts(packets.length, s.buf);
    assert.equal(s.batches.length, 1);
    assert.equal(s.batches[0].length, 3);
    s.pipe.afterVerdicts(0, s.buf);
    assert.equal(s.batches.length, 1, 'an empty batch posts nothing');
  });

  /** Makes the engine decide packets from..n-1 as usual, then throw, as a bug found after the rules ran would. */
  function throwAfterDeciding(s: ReturnType<typeof setup>): () => void {
    const engine = s.pipe.engine;
    const process = engine.process.bind(engine);
    engine.process = (n, bytes, from) => {
      process(n, bytes, from);
      throw new Error('failure on purpose');
    };
    return () => (engine.process = process);
  }

  it('a later part that throws reports none of its events; the earlier part keeps its own', () => {
    const s = setup();
    s.pipe.decide(2, s.buf);
    const restore = throwAfterDeciding(s);
    // Packet 4 is a logged drop: recorded, then the part fails.
    assert.throws(() => s.pipe.decide(packets.length, s.buf, 2), /failure on purpose/);
    restore();
    // What the native loop then does: afterVerdicts for the part that was sent.
    s.pipe.afterVerdicts(2, s.buf);
    assert.deepEqual(s.batches.flat().map((e) => `${e.action}:${e.rule_index}:${e.dest_port}`), ['drop:0:23', 'accept:1:80']);
    assert.equal(s.pipe.engine.events.count, 0, 'nothing left for the next batch');
  });

  it('a first part that throws leaves no events for the next batch to report', () => {
    const s = setup();
    const restore = throwAfterDeciding(s);
    assert.throws(() => s.pipe.decide(2, s.buf), /failure on purpose/);
    restore();
    assert.equal(s.pipe.engine.events.count, 0);
    s.meta.offset[0] = 4 * 256;
    s.meta.capLen[0] = packets[4].length;
    s.meta.origLen[0] = packets[4].length;
    s.pipe.decide(1, s.buf);
    s.pipe.afterVerdicts(1, s.buf);
    assert.deepEqual(s.batches.flat().map((e) => e.src_ip), ['10.0.0.6'], 'only the next batch\'s own drop');
  });

  it('with nobody reading events, each batch still records its own and none pile up', () => {
    const s = setup(false);
    // More batches than the buffer holds: were they kept, the later ones would be suppressed.
    for (let b = 0; b <= B; b++) {
      s.pipe.decide(1, s.buf);
      assert.equal(s.pipe.engine.events.count, 1, `batch ${b}: its drop recorded`);
      s.pipe.afterVerdicts(1, s.buf);
      assert.equal(s.pipe.engine.events.count, 0, `batch ${b}: emptied`);
    }
  });
});
