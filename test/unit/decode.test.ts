import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { buildPacket } from '../../src/packet/build';
import { decodeBatch, decodePacket } from '../../src/packet/decode';
import { createDecodedBatch, DecodeStatus, FragBits, TCP_ACK, TCP_SYN } from '../../src/packet/decoded';

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
