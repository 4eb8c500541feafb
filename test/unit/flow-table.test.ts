import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlowTable } from '../../src/flow/flow-table';
import { buildPacket } from '../../src/packet/build';
import { decodePacket } from '../../src/packet/decode';
import { createDecodedBatch } from '../../src/packet/decoded';
import { FLOW_ESTABLISHED, FLOW_NEW } from '../../src/rules/types';

const d = createDecodedBatch(1);
function observe(t: FlowTable, spec: Parameters<typeof buildPacket>[0], now: number): number {
  const p = buildPacket(spec);
  decodePacket(p, 0, p.length, 0, d);
  return t.observe(d, 0, Float64Array.of(now));
}
function d0(spec: Parameters<typeof buildPacket>[0]) {
  const p = buildPacket(spec);
  decodePacket(p, 0, p.length, 0, d);
  return d;
}
const out = (sport: number) => ({ src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport, dport: 80 });
const back = (dport: number) => ({ src: '10.0.0.2', dst: '10.0.0.1', proto: 6, sport: 80, dport });

describe('FlowTable', () => {
  it('is new until the other side answers, then established in both directions', () => {
    const t = new FlowTable(1024);
    assert.equal(observe(t, out(1000), 1), FLOW_NEW);
    assert.equal(observe(t, out(1000), 1), FLOW_NEW, 'retransmitted SYN is still new');
    assert.equal(observe(t, back(1000), 1), FLOW_ESTABLISHED);
    assert.equal(observe(t, out(1000), 2), FLOW_ESTABLISHED);
    assert.equal(observe(t, out(1001), 2), FLOW_NEW, 'another source port is another flow');
    assert.equal(observe(t, { ...out(1000), proto: 17 }, 2), FLOW_NEW, 'another protocol is another flow');
    assert.equal(observe(t, { src: 'fd00::1', dst: 'fd00::2', proto: 6, sport: 1000, dport: 80 }, 2), FLOW_NEW);
  });

  it('forgets idle flows', () => {
    const t = new FlowTable(1024, 10);
    observe(t, out(1000), 1);
    observe(t, back(1000), 1);
    assert.equal(observe(t, out(1000), 5), FLOW_ESTABLISHED);
    assert.equal(observe(t, out(1000), 30), FLOW_NEW, 'idle longer than 10 s: a new flow');
  });

  it('under a flood of unanswered flows, established flows survive and new ones still get in', () => {
    const t = new FlowTable(1);
    for (let p = 0; p < 100; p++) {
      observe(t, out(p), 1);
      observe(t, back(p), 1);
    }
    for (let p = 1000; p < 60000; p++) observe(t, { src: '198.51.100.9', dst: '10.0.0.1', proto: 6, sport: p, dport: 22 }, 2);
    for (let p = 0; p < 100; p++) assert.equal(t.classify(d0(out(p)), 0, Float64Array.of(3)), FLOW_ESTABLISHED, `established flow ${p} kept`);
    assert.equal(observe(t, out(5000), 3), FLOW_NEW);
    assert.equal(observe(t, back(5000), 3), FLOW_ESTABLISHED, 'a new flow could still be recorded');
    assert.ok(t.evictions > 0);
  });

  it('is bounded: a neighbourhood full of established flows counts an overflow and answers new', () => {
    const t = new FlowTable(1);
    assert.equal(t.capacity, 1024);
    for (let p = 0; p < 5000; p++) {
      observe(t, out(p), 1);
      observe(t, back(p), 1);
    }
    assert.ok(t.overflows > 0, 'overflow counted');
    assert.ok(t.stats().flows <= t.capacity);
    for (let p = 0; p < 5000; p++) assert.ok(observe(t, back(p), 1) === FLOW_NEW || observe(t, back(p), 1) === FLOW_ESTABLISHED);
  });
});
