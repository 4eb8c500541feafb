import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { buildPacket, PacketSpec } from '../../src/packet/build';
import { decodeBatch, decodePacket } from '../../src/packet/decode';
import { createDecodedBatch, DecodeStatus, FragBits, Hidden, L3Bits, TCP_ACK, TCP_SYN } from '../../src/packet/decoded';
import { fragment4, fragment6, fragment6At, withExtensions } from '../helpers/evasive-packets';

const ip4 = (s: string) => s.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);

describe('decodePacket', () => {
  it('reads IPv4 TCP headers', () => {
    const d = createDecodedBatch(1);
    const p = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40000, dport: 23, tcpFlags: TCP_SYN, tcpWindow: 1234, payloadLen: 10 });
    assert.equal(decodePacket(p, 0, p.length, 0, d), DecodeStatus.Ok);
    assert.equal(d.family[0], 4);
    assert.equal(d.proto[0], 6);
    assert.equal(d.src[0], ip4('10.0.0.5'));
    assert.equal(d.dst[0], ip4('192.0.2.7'));
    assert.equal(d.sport[0], 40000);
    assert.equal(d.dport[0], 23);
    assert.equal(d.tcpFlags[0], TCP_SYN);
    assert.equal(d.tcpWindow[0], 1234);
    assert.equal(d.ipLen[0], 50);
    assert.equal(d.l4Offset[0], 20);
    assert.equal(d.l4PayloadLen[0], 10);
    assert.equal(d.icmpType[0], 0xffff);
  });

  it('reads IPv6 UDP and ICMPv6 headers', () => {
    const d = createDecodedBatch(2);
    const u = buildPacket({ src: '2001:db8::1', dst: '2001:db8::2', proto: 17, sport: 5353, dport: 53, payloadLen: 3 });
    const icmp = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 58, icmpType: 128, icmpCode: 0 });
    assert.equal(decodePacket(u, 0, u.length, 0, d), DecodeStatus.Ok);
    assert.equal(decodePacket(icmp, 0, icmp.length, 1, d), DecodeStatus.Ok);
    assert.equal(d.family[0], 6);
    assert.deepEqual(Array.from(d.src.subarray(0, 4)), [0x20010db8, 0, 0, 1]);
    assert.deepEqual(Array.from(d.dst.subarray(0, 4)), [0x20010db8, 0, 0, 2]);
    assert.equal(d.sport[0], 5353);
    assert.equal(d.dport[0], 53);
    assert.equal(d.ipLen[0], 40 + 8 + 3);
    assert.equal(d.proto[1], 58);
    assert.equal(d.icmpType[1], 128);
    assert.equal(d.icmpCode[1], 0);
  });

  it('walks IPv6 extension headers to the transport header', () => {
    const d = createDecodedBatch(1);
    const inner = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 6, sport: 1, dport: 443, tcpFlags: TCP_ACK });
    // Insert an 8-byte hop-by-hop header (next = TCP) after the fixed header.
    const hbh = Buffer.from([6, 0, 1, 4, 0, 0, 0, 0]);
    const p = Buffer.concat([inner.subarray(0, 40), hbh, inner.subarray(40)]);
    p[6] = 0;
    p.writeUInt16BE(inner.length - 40 + 8, 4);
    assert.equal(decodePacket(p, 0, p.length, 0, d), DecodeStatus.Ok);
    assert.equal(d.proto[0], 6);
    assert.equal(d.dport[0], 443);
    assert.equal(d.tcpFlags[0], TCP_ACK);
    assert.equal(d.l4Offset[0], 48);
  });

  it('walks a chain of many extension headers, and never calls a cut chain Ok', () => {
    const d = createDecodedBatch(1);
    const inner = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 6, sport: 1, dport: 22, tcpFlags: TCP_ACK });
    const chain = (count: number) => {
      const opts = Array.from({ length: count }, (_, k) => Buffer.from([k === count - 1 ? 6 : 60, 0, 1, 4, 0, 0, 0, 0]));
      const p = Buffer.concat([inner.subarray(0, 40), ...opts, inner.subarray(40)]);
      p[6] = 60;
      p.writeUInt16BE(inner.length - 40 + count * 8, 4);
      return p;
    };
    const long = chain(12);
    assert.equal(decodePacket(long, 0, long.length, 0, d), DecodeStatus.Ok);
    assert.equal(d.proto[0], 6, 'twelve headers deep, still TCP');
    assert.equal(d.dport[0], 22);
    assert.equal(decodePacket(long, 0, 40 + 8 * 5, 0, d), DecodeStatus.Truncated, 'capture ends inside the chain');
  });

  it('marks IPv4 fragments and leaves ports empty on non-first ones', () => {
    const d = createDecodedBatch(2);
    const first = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, sport: 9, dport: 99, moreFragments: true });
    const later = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, fragOffset: 185, payloadLen: 100 });
    decodePacket(first, 0, first.length, 0, d);
    decodePacket(later, 0, later.length, 1, d);
    assert.equal(d.frag[0] & FragBits.First, FragBits.First);
    assert.equal(d.frag[0] & FragBits.MoreFragments, FragBits.MoreFragments);
    assert.equal(d.dport[0], 99);
    assert.equal(d.frag[1] & FragBits.NonFirst, FragBits.NonFirst);
    assert.equal(d.fragOffset[1], 185);
    assert.equal(d.dport[1], 0);
    assert.equal(d.status[1], DecodeStatus.Ok);
  });

  it('reports truncated and malformed packets', () => {
    const d = createDecodedBatch(1);
    const p = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 6, dport: 80 });
    assert.equal(decodePacket(p, 0, 19, 0, d), DecodeStatus.Truncated);
    assert.equal(decodePacket(p, 0, 30, 0, d), DecodeStatus.Truncated, 'TCP header cut short');
    const badIhl = Buffer.from(p);
    badIhl[0] = 0x43;
    assert.equal(decodePacket(badIhl, 0, badIhl.length, 0, d), DecodeStatus.Malformed);
    const badVersion = Buffer.from(p);
    badVersion[0] = 0x55;
    assert.equal(decodePacket(badVersion, 0, badVersion.length, 0, d), DecodeStatus.Malformed);
    const shortTotal = Buffer.from(p);
    shortTotal.writeUInt16BE(10, 2);
    assert.equal(decodePacket(shortTotal, 0, shortTotal.length, 0, d), DecodeStatus.Malformed);
    assert.equal(decodePacket(p, 0, 0, 0, d), DecodeStatus.Truncated);
    assert.equal(decodePacket(p, 0xffffffff, 0, 0, d), DecodeStatus.Truncated, 'no payload attribute');
    assert.equal(decodePacket(p, 10, 1000, 0, d), DecodeStatus.Truncated, 'claims bytes past the buffer');
  });

  it('never throws or reads out of bounds on random and truncated input', () => {
    const n = 64;
    const d = createDecodedBatch(n);
    const buf = new Uint8Array(n * 128);
    const offset = new Uint32Array(n);
    const capLen = new Uint32Array(n);
    const seeds = [
      buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 6, dport: 80 }),
      buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 17, dport: 53 }),
    ];
    let bad = 0;
    for (let round = 0; round < 200; round++) {
      buf.set(randomBytes(buf.length));
      for (let i = 0; i < n; i++) {
        offset[i] = i * 128;
        // Half start from a valid header with random corruption and cut.
        if (i % 2 === 0) buf.set(seeds[(i / 2) % 2].subarray(0, 60), i * 128);
        capLen[i] = Math.floor(Math.random() * 129);
      }
      bad += decodeBatch(buf, offset, capLen, n, d);
      for (let i = 0; i < n; i++) {
        assert.ok(d.status[i] <= DecodeStatus.Malformed);
        if (d.status[i] === DecodeStatus.Ok && d.l4Offset[i] !== 0) assert.ok(d.l4Offset[i] <= capLen[i]);
      }
    }
    assert.ok(bad > 0, 'random input must produce some rejected packets');
  });
});

describe('decodePacket: transport headers out of sight', () => {
  const d = createDecodedBatch(1);
  const dec = (p: Buffer, cap = p.length) => {
    decodePacket(p, 0, cap, 0, d);
    return { status: d.status[0], hidden: d.hidden[0], proto: d.proto[0], dport: d.dport[0], protoKnown: (d.l3[0] & L3Bits.Protocol) !== 0 };
  };
  const syn4 = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 6, sport: 40000, dport: 23, tcpFlags: TCP_SYN });
  const syn6: PacketSpec = { src: 'fd00::1', dst: 'fd00::2', proto: 6, sport: 40000, dport: 23, tcpFlags: TCP_SYN };

  it('an IPv6 SYN behind a 264-byte destination options header: seen when copied, hidden when the copy ends first', () => {
    const p = withExtensions(syn6, [{ type: 60, bytes: 264 }]);
    assert.deepEqual(dec(p), { status: DecodeStatus.Ok, hidden: Hidden.None, proto: 6, dport: 23, protoKnown: true });
    const cut = dec(p, 256);
    assert.equal(cut.status, DecodeStatus.Truncated);
    assert.equal(cut.hidden, Hidden.BeyondCopy);
    assert.equal(cut.protoKnown, true, 'the chain ends inside the copy; the TCP header does not');
    const deeper = withExtensions(syn6, [{ type: 0, bytes: 8 }, { type: 60, bytes: 256 }, { type: 43, bytes: 16 }]);
    const c2 = dec(deeper, 256);
    assert.equal(c2.hidden, Hidden.BeyondCopy);
    assert.equal(c2.protoKnown, false, 'the chain itself goes past the copy');
  });

  it('walks RFC 7045 headers (mobility, HIP, shim6, experimental) in the generic format', () => {
    for (const type of [135, 139, 140, 253, 254]) {
      const r = dec(withExtensions(syn6, [{ type, bytes: 16 }]));
      assert.deepEqual([r.status, r.hidden, r.proto, r.dport], [DecodeStatus.Ok, Hidden.None, 6, 23], `next header ${type}`);
    }
  });

  it('an unassigned IPv6 next header is decoded as its number and marked unknown', () => {
    const p = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 200, payloadLen: 40 });
    const r = dec(p);
    assert.deepEqual([r.status, r.hidden, r.proto], [DecodeStatus.Ok, Hidden.UnknownHeader, 200]);
    const v4 = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 200, payloadLen: 40 });
    assert.equal(dec(v4).hidden, Hidden.None, 'IPv4 has no chain to hide behind');
  });

  it('IPv4 tiny first fragments (RFC 1858) and offsets inside the TCP header', () => {
    for (const size of [8, 16]) {
      const [first, ...rest] = fragment4(syn4, [size, 8, 8]);
      assert.equal(dec(first).hidden, Hidden.TinyFragment, `${size}-byte first fragment`);
      assert.equal(d.status[0], DecodeStatus.Malformed);
      for (const f of rest) dec(f);
    }
    const frags = fragment4(syn4, [8, 8, 8]);
    assert.equal(dec(frags[1]).hidden, Hidden.FragmentOverlap, 'offset 1 lands on the data offset and flags');
    assert.equal(d.status[0], DecodeStatus.Ok);
    assert.equal(dec(frags[2]).hidden, Hidden.FragmentOverlap, 'offset 2 still inside the 20-byte header');
    const big = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 6, dport: 80, tcpFlags: TCP_ACK, payloadLen: 100 });
    const whole = fragment4(big, [24, 48, 48]);
    assert.equal(dec(whole[0]).hidden, Hidden.None, 'a first fragment with the whole header');
    assert.equal(d.dport[0], 80);
    assert.equal(dec(whole[1]).hidden, Hidden.None, 'offset 3: past the header');
  });

  it('UDP, SCTP and ICMP fragments: the header each protocol needs', () => {
    const udp = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, sport: 1, dport: 137, payloadLen: 30 });
    const [u0, u1] = fragment4(udp, [8, 32]);
    assert.deepEqual([dec(u0).hidden, d.dport[0]], [Hidden.None, 137], 'an 8-byte first fragment holds the whole UDP header');
    assert.equal(dec(u1).hidden, Hidden.None);
    const sctp = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 132, sport: 1, dport: 2905, payloadLen: 20 });
    const [s0, s1] = fragment4(sctp, [8, 24]);
    assert.equal(dec(s0).hidden, Hidden.TinyFragment);
    assert.equal(dec(s1).hidden, Hidden.FragmentOverlap, 'offset 1 is inside the 12-byte SCTP header');
    assert.deepEqual([dec(sctp).hidden, d.dport[0]], [Hidden.None, 2905]);
    const icmp = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, payloadLen: 40 });
    const [i0, i1] = fragment4(icmp, [8, 40]);
    assert.deepEqual([dec(i0).hidden, d.icmpType[0]], [Hidden.None, 8]);
    assert.equal(dec(i1).hidden, Hidden.None);
  });

  it('IPv6 first fragments must hold the whole chain and transport header (RFC 7112)', () => {
    const plain = buildPacket(syn6);
    const [f0, f1, f2] = fragment6(plain, [8, 8, 8]);
    assert.equal(dec(f0).hidden, Hidden.TinyFragment);
    assert.equal(dec(f1).hidden, Hidden.FragmentOverlap);
    assert.equal(dec(f2).hidden, Hidden.FragmentOverlap);
    const chained = withExtensions(syn6, [{ type: 60, bytes: 264 }]);
    const [c0, c1] = fragment6(chained, [256, 64]);
    const r = dec(c0);
    assert.deepEqual([r.hidden, r.protoKnown], [Hidden.TinyFragment, false], 'the chain does not end in the first fragment');
    assert.equal(dec(c1).hidden, Hidden.FragmentOverlap, 'offset 256 may still land on a chain the first fragment carries');
    // A later fragment's next header is ignored by reassembly, so claiming
    // UDP (or anything without a header worth overlapping) does not help.
    const claimsUdp = Buffer.from(f1);
    claimsUdp[40] = 17;
    const u = dec(claimsUdp);
    assert.deepEqual([u.hidden, d.proto[0]], [Hidden.FragmentOverlap, 17]);
    const big = fragment6(buildPacket({ ...syn6, payloadLen: 1400 }), [1232, 188]);
    assert.equal(dec(big[1]).hidden, Hidden.None, 'offset 1232, where fragments at the minimum MTU start, is past anything a first fragment holds');
    // A 24-byte routing header before the fragment header leaves 1208 bytes for the first fragment.
    const routed = (frag: Buffer): Buffer => {
      const rh = Buffer.alloc(24);
      rh[0] = 44;
      rh[1] = 2;
      const h = Buffer.from(frag.subarray(0, 40));
      h[6] = 43;
      h.writeUInt16BE(frag.readUInt16BE(4) + 24, 4);
      return Buffer.concat([h, rh, frag.subarray(40)]);
    };
    const whole = buildPacket({ ...syn6, payloadLen: 1400 });
    assert.equal(dec(routed(fragment6At(whole, 1208, 64, false))).hidden, Hidden.None, 'at 1208, a routed sender\'s real later fragment');
    assert.equal(dec(routed(fragment6At(whole, 1200, 64, false))).hidden, Hidden.FragmentOverlap, 'below it, a possible overlap');
    // A first fragment whose chain ends past the minimum MTU could be overlapped by a later one at 1232.
    const longChain = fragment6(withExtensions({ ...syn6, payloadLen: 64 }, [{ type: 60, bytes: 1264 }]), [1296, 56]);
    assert.equal(dec(longChain[0]).hidden, Hidden.TinyFragment);
    const ok = fragment6(buildPacket({ ...syn6, payloadLen: 64 }), [24, 60]);
    assert.deepEqual([dec(ok[0]).hidden, d.dport[0]], [Hidden.None, 23]);
  });

  it('bad TCP data offsets and short ICMP headers are bad transport headers', () => {
    for (const doff of [0, 4, 15]) {
      const p = Buffer.from(syn4);
      p[20 + 12] = doff << 4;
      assert.equal(dec(p).hidden, Hidden.BadTransport, `data offset ${doff}`);
    }
    const icmp = buildPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8 }).subarray(0, 24);
    icmp.writeUInt16BE(24, 2);
    assert.equal(dec(icmp).hidden, Hidden.BadTransport);
  });

  it('IPv4 options are skipped, not hidden behind', () => {
    const p = Buffer.concat([syn4.subarray(0, 20), Buffer.alloc(40, 1), syn4.subarray(20)]);
    p[0] = 0x4f;
    p.writeUInt16BE(p.length, 2);
    assert.deepEqual([dec(p).status, d.hidden[0], d.dport[0]], [DecodeStatus.Ok, Hidden.None, 23]);
  });

  it('never leaves a packet it could not decode unexplained', () => {
    const buf = new Uint8Array(4096);
    const seeds = [syn4, withExtensions(syn6, [{ type: 60, bytes: 64 }, { type: 44, bytes: 8 }])];
    for (let round = 0; round < 5000; round++) {
      const s = seeds[round % 2];
      buf.set(s);
      for (let k = 0; k < 3; k++) buf[Math.floor(Math.random() * s.length)] = Math.floor(Math.random() * 256);
      const st = decodePacket(buf, 0, 1 + Math.floor(Math.random() * s.length), 0, d);
      if (st !== DecodeStatus.Ok) assert.notEqual(d.hidden[0], Hidden.None, `status ${st} with no reason`);
    }
  });
});
