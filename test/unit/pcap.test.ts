import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { buildPacket, PacketSpec } from '../../src/packet/build';
import { decodeBatch } from '../../src/packet/decode';
import { createDecodedBatch, DecodeStatus, TCP_SYN } from '../../src/packet/decoded';
import { NO_OFFSET } from '../../src/pcap/link';
import { PcapBatchReader, splitTimestamp } from '../../src/pcap/reader';
import { ethernetFrame, PcapWriter } from '../../src/pcap/writer';

const dir = mkdtempSync(path.join(tmpdir(), 'nfips-pcap-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (name: string) => path.join(dir, `${fileNo++}-${name}`);

const ip4 = (s: string) => s.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);

const SPECS: PacketSpec[] = [
  { src: '10.0.0.1', dst: '192.0.2.7', proto: 6, sport: 40000, dport: 443, tcpFlags: TCP_SYN },
  { src: '10.0.0.2', dst: '192.0.2.8', proto: 17, sport: 5353, dport: 53, payloadLen: 31 },
  { src: '2001:db8::1', dst: '2001:db8::2', proto: 17, sport: 4000, dport: 4001, payloadLen: 7 },
  { src: '2001:db8::3', dst: '2001:db8::4', proto: 58, icmpType: 128 },
  { src: '10.0.0.3', dst: '192.0.2.9', proto: 6, sport: 1234, dport: 22, payloadLen: 300 },
];

interface Got {
  bytes: Buffer;
  capLen: number;
  origLen: number;
  mac: Buffer | null;
  hwProto: number;
  tsSec: number;
  tsNsec: number;
  src: number;
  dst: number;
  sport: number;
  dport: number;
  status: DecodeStatus;
}

/** Reads a whole file batch by batch, decoding every batch as the engine does. */
function readAll(file: string, batchSize: number, chunkSize?: number): { got: Got[]; batches: number[]; reader: PcapBatchReader } {
  const r = new PcapBatchReader(file, batchSize, { chunkSize });
  const d = createDecodedBatch(batchSize);
  const got: Got[] = [];
  const batches: number[] = [];
  for (let n = r.next(); n > 0; n = r.next()) {
    batches.push(n);
    decodeBatch(r.packets, r.meta.offset, r.meta.capLen, n, d);
    const m = r.meta;
    for (let i = 0; i < n; i++) {
      assert.equal(m.id[i] + m.mark[i] + m.hook[i] + m.inIfindex[i] + m.outIfindex[i] + m.verdict[i], 0);
      const mac = m.hwAddrOffset[i] === NO_OFFSET ? null : Buffer.from(r.packets.subarray(m.hwAddrOffset[i], m.hwAddrOffset[i] + 6));
      got.push({
        bytes: Buffer.from(r.packets.subarray(m.offset[i], m.offset[i] + m.capLen[i])),
        capLen: m.capLen[i],
        origLen: m.origLen[i],
        mac,
        hwProto: m.hwProto[i],
        tsSec: m.tsSec[i],
        tsNsec: m.tsNsec[i],
        src: d.src[i * 4],
        dst: d.dst[i * 4],
        sport: d.sport[i],
        dport: d.dport[i],
        status: d.status[i],
      });
    }
  }
  assert.equal(r.next(), 0);
  r.close();
  return { got, batches, reader: r };
}

function packets(count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => buildPacket(SPECS[i % SPECS.length]));
}

describe('PcapWriter + PcapBatchReader (classic pcap)', () => {
  for (const bigEndian of [false, true]) {
    it(`reads RAW µs records across batches and chunk boundaries (${bigEndian ? 'big' : 'little'}-endian)`, () => {
      const file = tmp('raw.pcap');
      const pkts = packets(23);
      const w = new PcapWriter(file, { linkType: 101, bigEndian });
      pkts.forEach((p, i) => w.write(1_700_000_000 + i, i * 1000 + 7000, p));
      w.close();
      // A 100-byte chunk makes most records straddle a chunk boundary and
      // the 340-byte ones outgrow it.
      const { got, batches, reader } = readAll(file, 5, 100);
      assert.deepEqual(batches, [5, 5, 5, 5, 3]);
      assert.equal(reader.format, 'pcap');
      assert.equal(reader.linkType, 101);
      assert.deepEqual({ ...reader.stats, warnings: reader.stats.warnings.length }, {
        records: 23,
        packets: 23,
        skippedNonIp: 0,
        skippedShort: 0,
        skippedLinkType: 0,
        clipped: 0,
        truncated: false,
        warnings: 0,
      });
      got.forEach((g, i) => {
        assert.deepEqual(g.bytes, pkts[i]);
        assert.equal(g.capLen, pkts[i].length);
        assert.equal(g.origLen, pkts[i].length);
        assert.equal(g.mac, null);
        assert.equal(g.hwProto, pkts[i][0] >> 4 === 4 ? 0x0800 : 0x86dd);
        assert.equal(g.tsSec, 1_700_000_000 + i);
        // µs resolution: the 7 µs survive, nothing finer.
        assert.equal(g.tsNsec, i * 1000 + 7000);
        assert.equal(g.status, DecodeStatus.Ok);
      });
      assert.equal(got[0].src, ip4('10.0.0.1'));
      assert.equal(got[0].dst, ip4('192.0.2.7'));
      assert.equal(got[0].dport, 443);
      assert.equal(got[1].sport, 5353);
      assert.equal(got[2].src, 0x20010db8);
      assert.equal(got[2].dport, 4001);
      assert.equal(got[4].dport, 22);
    });
  }

  for (const bigEndian of [false, true]) {
    it(`reads EN10MB ns frames with MACs, VLAN and QinQ tags, and skips non-IP (${bigEndian ? 'big' : 'little'}-endian)`, () => {
      const file = tmp('eth.pcap');
      const mac = Buffer.from([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
      const p4 = buildPacket(SPECS[0]);
      const p6 = buildPacket(SPECS[2]);
      const frames = [
        ethernetFrame(p4, { src: mac }),
        ethernetFrame(Buffer.alloc(28), { ethertype: 0x0806 }), // ARP
        ethernetFrame(p6, { src: mac, vlans: [42] }),
        ethernetFrame(p4, { src: mac, vlans: [100, 200] }),
        Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), // cut inside the header
        ethernetFrame(p6, { src: mac }),
      ];
      const w = new PcapWriter(file, { linkType: 1, nanos: true, bigEndian });
      frames.forEach((f, i) => w.write(1_700_000_000, 123_456_789 + i, f, f.length + 4));
      w.close();
      const { got, reader } = readAll(file, 2, 64);
      assert.equal(reader.linkType, 1);
      assert.equal(reader.stats.records, 6);
      assert.equal(reader.stats.packets, 4);
      assert.equal(reader.stats.skippedNonIp, 1);
      assert.equal(reader.stats.skippedShort, 1);
      assert.deepEqual(got.map((g) => g.tsNsec), [123_456_789, 123_456_791, 123_456_792, 123_456_794]);
      assert.deepEqual(got.map((g) => g.hwProto), [0x0800, 0x86dd, 0x0800, 0x86dd]);
      assert.deepEqual(got.map((g) => g.bytes), [p4, p6, p4, p6]);
      // Original wire length minus the link header (4 FCS bytes were "lost").
      assert.deepEqual(got.map((g) => g.origLen), [p4.length + 4, p6.length + 4, p4.length + 4, p6.length + 4]);
      for (const g of got) assert.deepEqual(g.mac, mac);
      assert.equal(got[2].src, ip4('10.0.0.1'));
      assert.equal(got[2].sport, 40000);
      assert.equal(got[3].dport, 4001);
      assert.ok(got.every((g) => g.status === DecodeStatus.Ok));
    });
  }

  it('keeps capLen and origLen apart for records cut by the snaplen', () => {
    const file = tmp('snap.pcap');
    const p = buildPacket({ ...SPECS[4], payloadLen: 1000 });
    const w = new PcapWriter(file, { linkType: 1, snapLen: 96 });
    w.write(1, 0, ethernetFrame(p));
    w.close();
    const { got } = readAll(file, 4);
    assert.equal(got.length, 1);
    assert.equal(got[0].capLen, 96 - 14);
    assert.equal(got[0].origLen, p.length);
    assert.equal(got[0].status, DecodeStatus.Ok);
    assert.equal(got[0].dport, 22);
  });

  it('ends a batch early when the packet buffer is full and resumes with the next call', () => {
    const file = tmp('big.pcap');
    const big = buildPacket({ ...SPECS[1], payloadLen: 30000 });
    const w = new PcapWriter(file);
    for (let i = 0; i < 10; i++) w.write(i, 0, big);
    w.close();
    const r = new PcapBatchReader(file, 8, { bytesPerPacket: 64 });
    const sizes: number[] = [];
    for (let n = r.next(); n > 0; n = r.next()) sizes.push(n);
    r.close();
    assert.ok(sizes.length > 2, `batches ${sizes}`);
    assert.equal(sizes.reduce((a, b) => a + b, 0), 10);
  });

  it('stops cleanly at the last full record of a truncated file', () => {
    const file = tmp('trunc.pcap');
    const pkts = packets(7);
    const w = new PcapWriter(file);
    pkts.forEach((p, i) => w.write(i, 0, p));
    w.close();
    const full = readFileSync(file).length;
    for (const cut of [5, pkts[6].length + 10]) {
      truncateSync(file, full - cut);
      const { got, reader } = readAll(file, 4, 128);
      assert.equal(got.length, 6);
      assert.equal(reader.stats.truncated, true);
      assert.match(reader.stats.warnings[0], /file ends inside (a )?record/);
    }
  });

  it('refuses files that are not captures, naming the magic', () => {
    const file = tmp('text.pcap');
    writeFileSync(file, 'hello world, not a capture');
    assert.throws(() => new PcapBatchReader(file, 4), (e: Error) => e.message === `${file}: not a pcap or pcapng file (magic 0x68656c6c)`);
    const empty = tmp('empty.pcap');
    writeFileSync(empty, '');
    assert.throws(() => new PcapBatchReader(empty, 4), /not a pcap or pcapng file \(empty file\)/);
  });

  it('refuses unsupported link types, naming the file and the number', () => {
    const file = tmp('usb.pcap');
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(65535, 16);
    h.writeUInt32LE(189, 20);
    writeFileSync(file, h);
    assert.throws(() => new PcapBatchReader(file, 4), (e: Error) => e.message.startsWith(`${file}: unsupported link type 189`));
  });
});

// --- pcapng, built by hand -------------------------------------------------

class Ng {
  private readonly parts: Buffer[] = [];
  constructor(private readonly le: boolean) {}

  private u16(b: Buffer, o: number, v: number): void {
    if (this.le) b.writeUInt16LE(v, o);
    else b.writeUInt16BE(v, o);
  }
  private u32(b: Buffer, o: number, v: number): void {
    if (this.le) b.writeUInt32LE(v >>> 0, o);
    else b.writeUInt32BE(v >>> 0, o);
  }

  block(type: number, body: Buffer): this {
    const pad = (4 - (body.length % 4)) % 4;
    const len = 12 + body.length + pad;
    const b = Buffer.alloc(len);
    this.u32(b, 0, type);
    this.u32(b, 4, len);
    body.copy(b, 8);
    this.u32(b, len - 4, len);
    this.parts.push(b);
    return this;
  }

  shb(): this {
    const body = Buffer.alloc(16, 0xff);
    this.u32(body, 0, 0x1a2b3c4d);
    this.u16(body, 4, 1);
    this.u16(body, 6, 0);
    return this.block(0x0a0d0d0a, body);
  }

  idb(linkType: number, tsresol?: number, snapLen = 0): this {
    const opts = tsresol === undefined ? Buffer.alloc(0) : Buffer.alloc(8);
    if (tsresol !== undefined) {
      this.u16(opts, 0, 9);
      this.u16(opts, 2, 1);
      opts[4] = tsresol;
    }
    const body = Buffer.alloc(8 + opts.length + 4);
    this.u16(body, 0, linkType);
    this.u32(body, 4, snapLen);
    opts.copy(body, 8);
    return this.block(1, body);
  }

  epb(ifIdx: number, ticks: bigint, data: Buffer, origLen = data.length): this {
    const pad = (4 - (data.length % 4)) % 4;
    const body = Buffer.alloc(20 + data.length + pad);
    this.u32(body, 0, ifIdx);
    this.u32(body, 4, Number(ticks >> 32n));
    this.u32(body, 8, Number(ticks & 0xffffffffn));
    this.u32(body, 12, data.length);
    this.u32(body, 16, origLen);
    data.copy(body, 20);
    return this.block(6, body);
  }

  spb(data: Buffer): this {
    const body = Buffer.alloc(4 + data.length);
    this.u32(body, 0, data.length);
    data.copy(body, 4);
    return this.block(3, body);
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function sll(ip: Buffer, mac: Buffer | null): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(0, 0); // to us
  h.writeUInt16BE(1, 2); // ARPHRD_ETHER
  h.writeUInt16BE(mac ? 6 : 0, 4);
  if (mac) mac.copy(h, 6);
  h.writeUInt16BE(ip[0] >> 4 === 6 ? 0x86dd : 0x0800, 14);
  return Buffer.concat([h, ip]);
}

function sll2(ip: Buffer, mac: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(ip[0] >> 4 === 6 ? 0x86dd : 0x0800, 0);
  h.writeUInt32BE(3, 4);
  h.writeUInt16BE(1, 8);
  h[10] = 0;
  h[11] = 6;
  mac.copy(h, 12);
  return Buffer.concat([h, ip]);
}

function nullHdr(ip: Buffer, family: number, bigEndian: boolean): Buffer {
  const h = Buffer.alloc(4);
  if (bigEndian) h.writeUInt32BE(family, 0);
  else h.writeUInt32LE(family, 0);
  return Buffer.concat([h, ip]);
}

describe('PcapBatchReader (pcapng)', () => {
  const mac = Buffer.from([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
  const p4 = buildPacket(SPECS[0]);
  const p6 = buildPacket(SPECS[2]);
  const ns = 1_700_000_000_123_456_789n;

  for (const le of [true, false]) {
    it(`reads SHB/IDB/EPB/SPB and skips other blocks (${le ? 'little' : 'big'}-endian)`, () => {
      const file = tmp('a.pcapng');
      const ng = new Ng(le)
        .shb()
        .idb(1) // default µs
        .block(4, Buffer.alloc(20)) // name resolution block: skipped
        .idb(101, 9) // ns
        .epb(0, ns / 1000n, ethernetFrame(p4, { src: mac }), p4.length + 14)
        .epb(1, ns + 1n, p6)
        .block(0x00000bad, Buffer.alloc(300)) // custom block: skipped
        .spb(ethernetFrame(p6, { src: mac, vlans: [7] }))
        .epb(0, ns / 1000n + 2n, ethernetFrame(Buffer.alloc(28), { ethertype: 0x0806 }));
      writeFileSync(file, ng.bytes());
      const { got, reader } = readAll(file, 2, 96);
      assert.equal(reader.format, 'pcapng');
      assert.equal(reader.linkType, 1);
      assert.equal(reader.stats.records, 4);
      assert.equal(reader.stats.skippedNonIp, 1);
      assert.equal(reader.stats.truncated, false);
      assert.deepEqual(got.map((g) => g.bytes), [p4, p6, p6]);
      assert.deepEqual(got.map((g) => [g.tsSec, g.tsNsec]), [
        [1_700_000_000, 123_456_000],
        [1_700_000_000, 123_456_790],
        [0, 0], // SPBs carry no timestamp
      ]);
      assert.deepEqual(got.map((g) => g.mac), [mac, null, mac]);
      assert.deepEqual(got.map((g) => g.origLen), [p4.length, p6.length, p6.length]);
      assert.equal(got[0].dst, ip4('192.0.2.7'));
      assert.equal(got[1].dport, 4001);
      assert.equal(got[2].sport, 4000);
    });
  }

  it('reads LINUX_SLL, LINUX_SLL2, NULL, LOOP, IPV4/IPV6 and RAW (12) interfaces', () => {
    const file = tmp('links.pcapng');
    const ng = new Ng(true)
      .shb()
      .idb(113)
      .idb(276)
      .idb(0)
      .idb(108)
      .idb(228)
      .idb(229)
      .idb(12)
      .epb(0, 1n, sll(p4, mac))
      .epb(0, 2n, sll(p6, null))
      .epb(1, 3n, sll2(p6, mac))
      .epb(2, 4n, nullHdr(p4, 2, false))
      .epb(2, 5n, nullHdr(p6, 30, false))
      .epb(3, 6n, nullHdr(p6, 10, true))
      .epb(3, 7n, nullHdr(Buffer.alloc(20), 7, true)) // unknown family
      .epb(4, 8n, p4)
      .epb(5, 9n, p6)
      .epb(6, 10n, p4);
    writeFileSync(file, ng.bytes());
    const { got, reader } = readAll(file, 4);
    assert.equal(reader.stats.skippedNonIp, 1);
    assert.deepEqual(got.map((g) => g.bytes), [p4, p6, p6, p4, p6, p6, p4, p6, p4]);
    assert.deepEqual(got.map((g) => g.mac), [mac, null, mac, null, null, null, null, null, null]);
    assert.deepEqual(got.map((g) => g.tsNsec / 1000), [1, 2, 3, 4, 5, 6, 8, 9, 10]);
    assert.ok(got.every((g) => g.status === DecodeStatus.Ok));
  });

  it('stops cleanly inside a truncated block', () => {
    const file = tmp('trunc.pcapng');
    const ng = new Ng(true).shb().idb(101).epb(0, 1n, p4).epb(0, 2n, p6).epb(0, 3n, p4);
    const b = ng.bytes();
    writeFileSync(file, b.subarray(0, b.length - 9));
    const { got, reader } = readAll(file, 8, 64);
    assert.equal(got.length, 2);
    assert.equal(reader.stats.truncated, true);
    // A skipped block that runs past the end is caught too.
    writeFileSync(file, Buffer.concat([new Ng(true).shb().idb(101).epb(0, 1n, p4).bytes(), new Ng(true).block(4, Buffer.alloc(4000)).bytes().subarray(0, 1000)]));
    const r2 = readAll(file, 8, 64);
    assert.equal(r2.got.length, 1);
    assert.equal(r2.reader.stats.truncated, true);
  });

  it('refuses a file whose interfaces all have unsupported link types', () => {
    const file = tmp('bt.pcapng');
    writeFileSync(file, new Ng(false).shb().idb(187).epb(0, 1n, Buffer.alloc(30)).bytes());
    assert.throws(() => new PcapBatchReader(file, 4), (e: Error) => e.message.startsWith(`${file}: unsupported link type 187`));
  });

  it('skips packets of an unsupported interface next to a supported one', () => {
    const file = tmp('mixed.pcapng');
    writeFileSync(file, new Ng(true).shb().idb(187).idb(101).epb(0, 1n, Buffer.alloc(30)).epb(1, 2n, p4).bytes());
    const { got, reader } = readAll(file, 4);
    assert.equal(got.length, 1);
    assert.equal(reader.stats.skippedLinkType, 1);
    assert.match(reader.stats.warnings[0], /interface 0 has unsupported link type 187/);
  });
});

describe('splitTimestamp', () => {
  it('splits 64-bit tick counts exactly', () => {
    const cases: [bigint, number][] = [
      [1_700_000_000_123_456_789n, 1e9],
      [18_446_744_073_709_551_615n, 1e9],
      [1_700_000_000_123_456n, 1e6],
      [1_700_000_000_123n, 1e3],
      [(1_700_000_000n << 20n) + 524288n, 2 ** 20],
    ];
    for (const [ticks, units] of cases) {
      const { sec, nsec } = splitTimestamp(Number(ticks >> 32n), Number(ticks & 0xffffffffn), units);
      const u = BigInt(units);
      assert.equal(sec, Number(ticks / u));
      assert.equal(nsec, Number(((ticks % u) * 1_000_000_000n) / u));
    }
  });
});
