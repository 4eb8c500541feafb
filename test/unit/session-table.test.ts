import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionTable } from '../../src/flow/session-table';
import { buildPacket } from '../../src/packet/build';
import { decodePacket } from '../../src/packet/decode';
import { createDecodedBatch } from '../../src/packet/decoded';
import { FLOW_ESTABLISHED, FLOW_NEW } from '../../src/rules/types';

const d = createDecodedBatch(1);
function observe(t: SessionTable, spec: Parameters<typeof buildPacket>[0], now: number): number {
  const p = buildPacket(spec);
  decodePacket(p, 0, p.length, 0, d);
  return t.observe(d, 0, Float64Array.of(now));
}
function d0(spec: Parameters<typeof buildPacket>[0]) {
  const p = buildPacket(spec);
  decodePacket(p, 0, p.length, 0, d);
  return d;
}
/** Slots holding a session. */
function sessionsIn(t: SessionTable): number {
  let n = 0;
  for (let slot = 0; slot < t.capacity; slot++) if (t.isUsed(slot)) n++;
  return n;
}
const out = (sport: number) => ({ src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport, dport: 80 });
const back = (dport: number) => ({ src: '10.0.0.2', dst: '10.0.0.1', proto: 6, sport: 80, dport });

describe('SessionTable', () => {
  it('is new until the other side answers, then established in both directions', () => {
    const t = new SessionTable(1024);
    assert.equal(observe(t, out(1000), 1), FLOW_NEW);
    assert.equal(observe(t, out(1000), 1), FLOW_NEW, 'retransmitted SYN is still new');
    assert.equal(observe(t, back(1000), 1), FLOW_ESTABLISHED);
    assert.equal(observe(t, out(1000), 2), FLOW_ESTABLISHED);
    assert.equal(observe(t, out(1001), 2), FLOW_NEW, 'another source port is another flow');
    assert.equal(observe(t, { ...out(1000), proto: 17 }, 2), FLOW_NEW, 'another protocol is another flow');
    assert.equal(observe(t, { src: 'fd00::1', dst: 'fd00::2', proto: 6, sport: 1000, dport: 80 }, 2), FLOW_NEW);
  });

  it('forgets idle flows', () => {
    const t = new SessionTable(1024, 10);
    observe(t, out(1000), 1);
    observe(t, back(1000), 1);
    assert.equal(observe(t, out(1000), 5), FLOW_ESTABLISHED);
    assert.equal(observe(t, out(1000), 30), FLOW_NEW, 'idle longer than 10 s: a new flow');
  });

  it('under a flood of unanswered flows, established flows survive and new ones still get in', () => {
    const t = new SessionTable(1);
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
    const t = new SessionTable(1);
    assert.equal(t.capacity, 1024);
    for (let p = 0; p < 5000; p++) {
      observe(t, out(p), 1);
      observe(t, back(p), 1);
    }
    assert.ok(t.overflows > 0, 'overflow counted');
    assert.ok(sessionsIn(t) <= t.capacity);
    // Flows that found room are established; the overflowed ones stayed new, never established by mistake.
    let established = 0;
    for (let p = 0; p < 5000; p++) if (t.classify(d0(back(p)), 0, Float64Array.of(1)) === FLOW_ESTABLISHED) established++;
    assert.equal(established, sessionsIn(t));
    assert.ok(established < 5000);
  });

  it('record() returns the session packet count and keeps packets and bytes per direction', () => {
    const t = new SessionTable(1024);
    const clock = Float64Array.of(10);
    assert.equal(t.record(d0(out(1000)), 0, clock, 60), 1, 'first packet opens the session');
    const slot = t.lastSlot;
    assert.equal(t.record(d0(back(1000)), 0, clock, 1500), 2);
    clock[0] = 12;
    assert.equal(t.record(d0(out(1000)), 0, clock, 52), 3);
    assert.equal(t.lastSlot, slot, 'both directions share one slot');
    const s = t.info(slot)!;
    // 10.0.0.1 is endpoint A (the lower address) and initiated.
    assert.equal(s.initiatorIsA, true);
    assert.deepEqual([s.packetsAB, s.packetsBA, s.bytesAB, s.bytesBA], [2, 1, 112, 1500]);
    assert.deepEqual([s.firstSeen, s.lastSeen], [10, 12]);
    assert.equal(s.established, true);
    assert.equal(t.info(-1), null);
  });

  describe('server guess (eBPF_TrafficAnalyzer order)', () => {
    const first = (spec: Parameters<typeof buildPacket>[0]) => {
      const t = new SessionTable(1024);
      t.record(d0(spec), 0, Float64Array.of(1), 40);
      const s = t.info(t.lastSlot)!;
      // Which address is the server, as text of its first word's last byte.
      const server = (s.serverIsA ? s.a : s.b)[0] & 0xff;
      return { server, guess: s.serverGuess, t, slot: t.lastSlot };
    };
    const A = '10.0.0.1';
    const B = '10.0.0.2';

    it('a SYN makes the destination the server, whatever the ports', () => {
      const r = first({ src: B, dst: A, proto: 6, sport: 80, dport: 40000, tcpFlags: 0x02 });
      assert.deepEqual([r.server, r.guess], [1, 'handshake']);
    });
    it('a SYN/ACK makes the source the server', () => {
      const r = first({ src: B, dst: A, proto: 6, sport: 40000, dport: 80, tcpFlags: 0x12 });
      assert.deepEqual([r.server, r.guess], [2, 'handshake']);
    });
    it('an ICMP echo request goes to the server; a reply comes from it', () => {
      assert.deepEqual(Object.values(first({ src: A, dst: B, proto: 1, icmpType: 8 })).slice(0, 2), [2, 'handshake']);
      assert.deepEqual(Object.values(first({ src: A, dst: B, proto: 1, icmpType: 0 })).slice(0, 2), [1, 'handshake']);
    });
    it('otherwise a port below 1024 is the server', () => {
      const r = first({ src: A, dst: B, proto: 17, sport: 53, dport: 40000 });
      assert.deepEqual([r.server, r.guess], [1, 'port_below_1024']);
    });
    it('otherwise the lower port is the server', () => {
      const r = first({ src: A, dst: B, proto: 17, sport: 40000, dport: 8080 });
      assert.deepEqual([r.server, r.guess], [2, 'lower_port']);
      const r2 = first({ src: A, dst: B, proto: 17, sport: 5000, dport: 8080 });
      assert.deepEqual([r2.server, r2.guess], [1, 'lower_port']);
    });
    it('a later SYN overrides a guess made from ports, not the other way round', () => {
      const r = first({ src: A, dst: B, proto: 6, sport: 5000, dport: 8080, tcpFlags: 0x10 });
      assert.deepEqual([r.server, r.guess], [1, 'lower_port']);
      r.t.record(d0({ src: B, dst: A, proto: 6, sport: 8080, dport: 5000, tcpFlags: 0x02 }), 0, Float64Array.of(2), 40);
      assert.equal(r.t.lastSlot, r.slot);
      let s = r.t.info(r.slot)!;
      assert.deepEqual([(s.serverIsA ? s.a : s.b)[0] & 0xff, s.serverGuess], [1, 'handshake']);
      // Ports alone (B's 8080 is the lower port) do not undo what the handshake said.
      r.t.record(d0({ src: A, dst: B, proto: 6, sport: 5000, dport: 8080, tcpFlags: 0x10 }), 0, Float64Array.of(3), 40);
      assert.equal(r.t.lastSlot, r.slot);
      assert.equal(r.t.lastToServer, false, 'A is the server: this packet went from it to the client');
      s = r.t.info(r.slot)!;
      assert.deepEqual([(s.serverIsA ? s.a : s.b)[0] & 0xff, s.serverGuess], [1, 'handshake']);
    });
  });

  it('a full table counts overflows and record() returns 0 for them', () => {
    const t = new SessionTable(1);
    let zeros = 0;
    for (let p = 0; p < 5000; p++) {
      t.record(d0(out(p)), 0, Float64Array.of(1), 40);
      t.record(d0(back(p)), 0, Float64Array.of(1), 40);
    }
    for (let p = 5000; p < 6000; p++) if (t.record(d0(out(p)), 0, Float64Array.of(1), 40) === 0) zeros++;
    assert.ok(zeros > 0, 'overflowing records return 0');
    assert.ok(sessionsIn(t) <= t.capacity);
  });
});

