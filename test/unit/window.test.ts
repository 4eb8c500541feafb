import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FEATURE_NAMES } from '../../src/features/feature-set';
import { HLL_REGISTERS, hllAdd, hllEstimate } from '../../src/features/hll';
import { fmix32 } from '../../src/features/hash';
import { WindowInputs } from '../../src/features/step-counter';
import { FeatureWindow, WindowAggregator } from '../../src/features/window';
import { PROTO_BIT_ICMP, PROTO_BIT_TCP, PROTO_BIT_UDP, TARGET_MANY } from '../../src/features/source-table';
import { guessFromPacket } from '../../src/flow/server-guess';
import { buildPacket, PacketSpec } from '../../src/packet/build';
import { decodeBatch } from '../../src/packet/decode';
import { createDecodedBatch, TCP_ACK, TCP_FIN, TCP_SYN } from '../../src/packet/decoded';

const CAP = 256;

interface Pkt extends PacketSpec {
  t: number;
  /** Session packet count the engine would report (default 0). */
  session?: number;
  /** Default: guessed from the packet alone, as the engine does without a session. */
  toServer?: boolean;
  analysed?: boolean;
  mac?: string;
}

/** Feeds packets through decode and the aggregator, as the queue thread does, in batches of up to CAP. */
class Feeder {
  readonly windows: FeatureWindow[] = [];
  readonly agg: WindowAggregator;
  private readonly d = createDecodedBatch(CAP);
  private readonly buf = new Uint8Array(CAP * 2048);
  private readonly offset = new Uint32Array(CAP);
  private readonly capLen = new Uint32Array(CAP);
  private readonly m: WindowInputs = {
    tsSec: new Uint32Array(CAP),
    tsNsec: new Uint32Array(CAP),
    origLen: new Uint32Array(CAP),
    hwAddrOffset: new Uint32Array(CAP),
    sessionPackets: new Uint32Array(CAP),
    analysed: new Uint8Array(CAP),
    toServer: new Uint8Array(CAP),
    evBits: new Uint8Array(CAP),
    oddSeq: new Uint32Array(CAP),
    oddLen: new Uint8Array(CAP),
    oddSurprisal: new Float32Array(CAP),
  };

  constructor(windowSeconds: number, stepSeconds = 1, maxSourcesPerStep?: number) {
    this.agg = new WindowAggregator({ queue: 3, windowSeconds, stepSeconds, maxSourcesPerStep }, (w) => this.windows.push(w));
  }

  feed(pkts: Pkt[]): void {
    for (let s = 0; s < pkts.length; s += CAP) {
      const chunk = pkts.slice(s, s + CAP);
      let pos = 0;
      chunk.forEach((p, i) => {
        const bytes = buildPacket(p);
        const macLen = p.mac ? 6 : 0;
        if (p.mac) this.buf.set(p.mac.split(':').map((x) => parseInt(x, 16)), pos);
        this.m.hwAddrOffset[i] = p.mac ? pos : 0xffffffff;
        this.buf.set(bytes, pos + macLen);
        this.offset[i] = pos + macLen;
        this.capLen[i] = bytes.length;
        this.m.origLen[i] = bytes.length;
        this.m.tsSec[i] = Math.floor(p.t);
        this.m.tsNsec[i] = Math.round((p.t - Math.floor(p.t)) * 1e9);
        this.m.sessionPackets[i] = p.session ?? 0;
        this.m.analysed[i] = p.analysed === false ? 0 : 1;
        const ports = p.proto === 6 || p.proto === 17;
        this.m.toServer[i] = p.toServer === undefined ? guessFromPacket(p.proto, p.tcpFlags ?? 0, p.icmpType ?? 0xffff, p.sport ?? 0, p.dport ?? 0, ports) & 1 : p.toServer ? 1 : 0;
        pos += macLen + bytes.length;
      });
      decodeBatch(this.buf, this.offset, this.capLen, chunk.length, this.d);
      this.agg.observe(chunk.length, this.d, this.m, this.buf);
    }
  }
}

const val = (w: FeatureWindow, name: string) => w.values[FEATURE_NAMES.indexOf(name)];
const syn = (src: string, sport: number, t: number, dport = 80): Pkt => ({ src, dst: '10.0.0.9', proto: 6, sport, dport, tcpFlags: TCP_SYN, t });

describe('WindowAggregator', () => {
  it('computes the 2columnS features of a window with known answers', () => {
    const f = new Feeder(60);
    // Second 100: 10 SYNs from one source on 10 ports (10 connections), plus
    // 2 more packets on the first connection, all 40-byte TCP headers.
    const pkts: Pkt[] = [];
    for (let p = 0; p < 10; p++) pkts.push(syn('10.0.0.1', 1000 + p, 100 + p / 100));
    pkts.push({ src: '10.0.0.1', dst: '10.0.0.9', proto: 6, sport: 1000, dport: 80, tcpFlags: TCP_ACK, t: 100.5 });
    pkts.push({ src: '10.0.0.1', dst: '10.0.0.9', proto: 6, sport: 1000, dport: 80, tcpFlags: TCP_ACK | TCP_FIN, t: 100.6 });
    f.feed(pkts);
    assert.equal(f.windows.length, 0, 'no window before the step ends');
    f.agg.advanceTo(101.2);
    assert.equal(f.windows.length, 1);
    const w = f.windows[0];
    assert.deepEqual([w.queue, w.start, w.end, w.packets], [3, 100, 101, 12]);
    assert.equal(val(w, 'packets'), 12);
    assert.equal(val(w, 'connections'), 10);
    assert.equal(val(w, 'sources'), 1);
    assert.equal(val(w, 'connections_per_source'), 10);
    assert.equal(val(w, 'syn_connections'), 10);
    assert.equal(val(w, 'mean_ip_len'), 40);
    assert.equal(val(w, 'ip_len_std'), 0);
    assert.equal(val(w, 'packets_per_connection'), 1.2);
    assert.equal(val(w, 'syn_per_s'), 10, 'span is the one covered second');
    assert.equal(val(w, 'syn_synack_ratio'), 10);
    assert.equal(val(w, 'syn_fin_ratio'), 5);
    assert.equal(val(w, 'dst_ports'), 1, 'only the server side port');
    assert.equal(val(w, 'top_source_share'), 1);
    assert.equal(val(w, 'small_packet_share'), 1);
    assert.equal(val(w, 'packets_per_s'), 12);
    assert.equal(val(w, 'bytes_per_s'), 480);
    assert.equal(val(w, 'new_source_packets'), 12, 'the source is new within the window');
  });

  it('slides: each step emits the sum of the last window, rates over the covered span', () => {
    const f = new Feeder(3);
    const at = (t: number, k: number) => Array.from({ length: k }, (_, j): Pkt => ({ src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 5000 + j, dport: 53, t: t + j / 1000 }));
    f.feed([...at(10, 5), ...at(11, 3), ...at(13, 2)]);
    f.agg.advanceTo(14);
    assert.deepEqual(f.windows.map((w) => [w.start, w.end, w.packets]), [
      [10, 11, 5],
      [10, 12, 8],
      [10, 13, 8],
      [11, 14, 5],
    ]);
    assert.deepEqual(f.windows.map((w) => val(w, 'packets_per_s')), [5, 4, 8 / 3, 5 / 3]);
    assert.deepEqual(f.windows.map((w) => val(w, 'udp_share')), [1, 1, 1, 1]);
    assert.deepEqual(f.windows.map((w) => val(w, 'udp_per_s')), [5, 4, 8 / 3, 5 / 3]);
  });

  it('after a gap longer than the window emits one window of empty steps, then jumps', () => {
    const f = new Feeder(3);
    f.feed([{ src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, t: 10 }]);
    f.agg.advanceTo(1000);
    assert.deepEqual(f.windows.map((w) => [w.end, w.packets]), [[11, 1]]);
    f.feed([{ src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, t: 1000.5 }]);
    f.agg.advanceTo(1001);
    // The skipped steps: the packet ages out over one window, then nothing until step 1000.
    assert.deepEqual(f.windows.map((w) => [w.end, w.packets]), [[11, 1], [12, 1], [13, 1], [14, 0], [1001, 1]]);
    assert.equal(f.windows.at(-1)!.start, 998);
  });

  it('an idle queue that advances its clock step by step emits one window per step', () => {
    const f = new Feeder(3);
    f.feed([{ src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, t: 10 }]);
    for (let k = 1; k <= 50; k++) f.agg.advanceTo(10 + k / 10);
    assert.deepEqual(f.windows.map((w) => [w.end, w.packets]), [[11, 1], [12, 1], [13, 1], [14, 0], [15, 0]]);
  });

  it('shares: ICMP and echo requests, small and over-MTU packets, fragments', () => {
    const f = new Feeder(10);
    const t = 50;
    f.feed([
      { src: '10.0.0.1', dst: '10.0.0.9', proto: 1, icmpType: 8, t },
      { src: '10.0.0.9', dst: '10.0.0.1', proto: 1, icmpType: 0, t },
      { src: 'fd00::1', dst: 'fd00::9', proto: 58, icmpType: 128, t },
      { src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, payloadLen: 2000, t },
      { src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, payloadLen: 600, fragOffset: 0, moreFragments: true, t },
      { src: '10.0.0.1', dst: '10.0.0.9', proto: 17, payloadLen: 600, fragOffset: 100, t },
    ]);
    f.agg.advanceTo(51);
    const w = f.windows[0];
    assert.equal(val(w, 'icmp_share'), 0.5);
    assert.equal(val(w, 'icmp_echo_per_s'), 2);
    assert.equal(val(w, 'over_mtu_share'), 1 / 6);
    assert.equal(val(w, 'small_packet_share'), 0.5);
    assert.equal(val(w, 'fragment_share'), 2 / 6);
    assert.equal(val(w, 'sources'), 3);
    assert.equal(w.totals.icmpEcho, 2);
  });

  it('few-packet session share and new sessions come from the session counts', () => {
    const f = new Feeder(10);
    const s = (sport: number, session: number): Pkt => ({ src: '10.0.0.1', dst: '10.0.0.9', proto: 6, sport: 40000 + sport, dport: 80, tcpFlags: TCP_ACK, session, t: 7 });
    // Four sessions open; one of them reaches 3 packets.
    f.feed([s(1, 1), s(2, 1), s(3, 1), s(4, 1), s(1, 2), s(1, 3), s(1, 4)]);
    f.agg.advanceTo(8);
    const w = f.windows[0];
    assert.equal(val(w, 'few_packet_session_share'), 0.75);
    assert.equal(val(w, 'new_tcp_sessions'), 4);
    assert.equal(val(w, 'new_sessions_per_s'), 4);
    assert.equal(w.totals.newSessions, 4);
  });

  it('a source counts as new only within one window of its first packet', () => {
    const f = new Feeder(60);
    const u = (t: number): Pkt => ({ src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, t });
    f.feed([u(0), u(30)]);
    f.agg.advanceTo(31);
    assert.equal(val(f.windows.at(-1)!, 'new_source_packets'), 2);
    f.feed([u(70)]);
    f.agg.advanceTo(71);
    assert.equal(val(f.windows.at(-1)!, 'new_source_packets'), 1, 'the t=70 packet is 70 s after first sight');
  });

  it('packets the engine left out are not counted', () => {
    const f = new Feeder(10);
    f.feed([
      { src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, t: 5 },
      { src: '10.0.0.2', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, t: 5, analysed: false },
    ]);
    f.agg.advanceTo(6);
    assert.equal(f.windows[0].packets, 1);
    assert.equal(val(f.windows[0], 'sources'), 1);
  });

  it('names the heaviest sources per counter, with MAC and shares', () => {
    const f = new Feeder(60);
    const pkts: Pkt[] = [];
    for (let k = 0; k < 30; k++) pkts.push({ src: `10.0.1.${k + 1}`, dst: '10.0.0.9', proto: 17, sport: 1000, dport: 53, t: 20 + k / 100 });
    for (let k = 0; k < 500; k++) pkts.push({ ...syn('10.0.0.66', 2000 + k, 20.5), mac: '02:00:00:00:00:66' });
    for (let k = 0; k < 40; k++) pkts.push({ src: '10.0.0.77', dst: '10.0.0.9', proto: 1, icmpType: 8, t: 20.7 });
    f.feed(pkts);
    f.agg.advanceTo(21);
    const w = f.windows[0];
    assert.equal(w.sources[0].ip, '10.0.0.66');
    assert.equal(w.sources[0].mac, '02:00:00:00:00:66');
    assert.equal(w.sources[0].syn, 500);
    assert.ok(w.sources.some((s) => s.ip === '10.0.0.77' && s.icmpEcho === 40), 'top ICMP echo sender listed');
    assert.ok(w.sources.length <= 5 * 6);
    assert.equal(val(w, 'top_source_share'), 500 / 570);
    assert.deepEqual([w.totals.packets, w.totals.syn, w.totals.udp], [570, 500, 30]);
  });

  it('per source: the protocols it used, its single service if it had one, and its packets in the newest step', () => {
    const f = new Feeder(60);
    const pkts: Pkt[] = [];
    for (let k = 0; k < 50; k++) pkts.push(syn('10.0.0.66', 2000 + k, 20.1, 8080));
    for (let k = 0; k < 50; k++) pkts.push(syn('10.0.0.67', 2000, 20.1, 1000 + k));
    for (let k = 0; k < 20; k++) pkts.push({ src: '10.0.0.68', dst: '10.0.0.9', proto: 1, icmpType: 8, t: 20.2 });
    pkts.push({ src: '10.0.0.68', dst: '10.0.0.9', proto: 17, sport: 5000, dport: 53, t: 20.3 });
    pkts.push(syn('10.0.0.66', 3000, 21.5, 8080));
    f.feed(pkts);
    f.agg.advanceTo(22);
    const at = (w: FeatureWindow, ip: string) => w.sources.find((s) => s.ip === ip)!;
    const [w1, w2] = [f.windows[0]!, f.windows[1]!];
    assert.deepEqual([at(w1, '10.0.0.66').protos, at(w1, '10.0.0.66').target], [PROTO_BIT_TCP, (6 << 16) | 8080], 'one service');
    assert.deepEqual([at(w1, '10.0.0.67').protos, at(w1, '10.0.0.67').target], [PROTO_BIT_TCP, TARGET_MANY], 'a scan: many ports');
    assert.deepEqual([at(w1, '10.0.0.68').protos, at(w1, '10.0.0.68').target], [PROTO_BIT_ICMP | PROTO_BIT_UDP, (17 << 16) | 53]);
    assert.deepEqual([at(w1, '10.0.0.66').recent, at(w1, '10.0.0.67').recent], [50, 50]);
    // One second later: only 10.0.0.66 sent anything in the newest step.
    assert.deepEqual([at(w2, '10.0.0.66').recent, at(w2, '10.0.0.67').recent, at(w2, '10.0.0.66').syn], [1, 0, 51]);
  });

  it('stays bounded under a spoofed flood: sources beyond the per-step cap are summed, totals stay exact', () => {
    const f = new Feeder(5, 1, 64);
    const pkts: Pkt[] = [];
    for (let k = 0; k < 20000; k++) pkts.push(syn(`10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`, 1000, 3 + k / 40000));
    f.feed(pkts);
    f.agg.advanceTo(4);
    const w = f.windows[0];
    assert.equal(w.totals.packets, 20000);
    assert.equal(w.totals.syn, 20000);
    const srcs = val(w, 'sources');
    assert.ok(Math.abs(srcs - 20000) / 20000 < 0.1, `HyperLogLog estimate ${srcs} within 10%`);
    assert.ok(w.sources.length <= 6 * 5);
  });

  it('a clock step back of more than two steps starts the window over instead of freezing it', () => {
    const f = new Feeder(10);
    const u = (t: number): Pkt => ({ src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, t });
    f.feed([u(1000), u(1001), u(1002)]);
    f.feed([u(500), u(501)]);
    f.agg.advanceTo(502);
    assert.equal(f.agg.clockResets, 1);
    const last = f.windows.at(-1)!;
    assert.deepEqual([last.start, last.end, last.packets], [500, 502, 2], 'only the packets after the step back');
  });

  it('a batch with nothing to count still advances time', () => {
    const f = new Feeder(10);
    const u = (t: number, analysed = true): Pkt => ({ src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, t, analysed });
    f.feed([u(10)]);
    f.feed([u(11.5, false), u(11.6, false)]);
    assert.deepEqual(f.windows.map((w) => w.end), [11]);
  });

  it('per-source rows count what goes toward servers: the server answering a flood is not a top source', () => {
    const f = new Feeder(60);
    const pkts: Pkt[] = [];
    for (let k = 0; k < 100; k++) {
      pkts.push({ src: '10.0.0.66', dst: '10.0.0.9', proto: 1, icmpType: 8, t: 30 + k / 1000 });
      pkts.push({ src: '10.0.0.9', dst: '10.0.0.66', proto: 1, icmpType: 0, t: 30 + k / 1000 });
    }
    f.feed(pkts);
    f.agg.advanceTo(31);
    const w = f.windows[0];
    assert.deepEqual(w.sources.map((s) => s.ip), ['10.0.0.66']);
    assert.equal(w.totals.packets, 100);
    assert.equal(w.packets, 200);
    assert.equal(val(w, 'top_source_share'), 1, 'the busiest client among client packets');
  });

  it('a heavy source that starts after the per-step table is full still gets an exact row', () => {
    const f = new Feeder(5, 1, 64);
    const pkts: Pkt[] = [];
    // 5,000 spoofed one-packet sources fill the table first; then the real attacker mixes in.
    for (let k = 0; k < 5000; k++) pkts.push(syn(`10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`, 1000, 3 + k / 20000));
    for (let k = 0; k < 3000; k++) {
      pkts.push(syn('192.0.2.66', 2000 + k, 3.5 + k / 10000));
      pkts.push(syn(`10.200.${(k >> 8) & 255}.${k & 255}`, 1000, 3.5 + k / 10000));
    }
    f.feed(pkts);
    f.agg.advanceTo(4);
    const w = f.windows[0];
    const heavy = w.sources.find((x) => x.ip === '192.0.2.66');
    assert.ok(heavy, 'named');
    assert.equal(heavy.syn, 3000, 'its row was never given away');
    assert.equal(w.totals.syn, 11000, 'totals stay exact');
    assert.equal(w.sources[0].ip, '192.0.2.66');
  });

  it('counts stamps from before the current step as late, into the current step', () => {
    const f = new Feeder(10);
    const u = (t: number): Pkt => ({ src: '10.0.0.1', dst: '10.0.0.9', proto: 17, sport: 1, dport: 2, t });
    f.feed([u(10), u(9.5)]);
    f.agg.advanceTo(11);
    assert.equal(f.agg.lateStamps, 1);
    assert.equal(f.windows[0].packets, 2);
  });
});

describe('guessFromPacket (server side of one packet)', () => {
  const dstIsServer = (...a: Parameters<typeof guessFromPacket>) => (guessFromPacket(...a) & 1) === 1;
  const strength = (...a: Parameters<typeof guessFromPacket>) => guessFromPacket(...a) >> 1;
  it('follows eBPF_TrafficAnalyzer order', () => {
    assert.equal(dstIsServer(6, TCP_SYN, 0xffff, 40000, 22, true), true);
    assert.equal(dstIsServer(6, TCP_SYN | TCP_ACK, 0xffff, 22, 40000, true), false);
    assert.equal(dstIsServer(6, TCP_SYN, 0xffff, 22, 40000, true), true, 'a SYN goes to the server even from a low port');
    assert.equal(strength(6, TCP_SYN, 0xffff, 22, 40000, true), 3);
    assert.equal(dstIsServer(17, 0, 0xffff, 40000, 53, true), true);
    assert.equal(dstIsServer(17, 0, 0xffff, 53, 40000, true), false);
    assert.equal(strength(17, 0, 0xffff, 53, 40000, true), 2);
    assert.equal(dstIsServer(17, 0, 0xffff, 40000, 8080, true), true);
    assert.equal(dstIsServer(17, 0, 0xffff, 8080, 40000, true), false);
    assert.equal(strength(17, 0, 0xffff, 8080, 40000, true), 1);
  });
  it('ICMP: echo requests go to the server; replies and errors come from it; the type is read per protocol', () => {
    assert.equal(dstIsServer(1, 0, 8, 0, 0, false), true);
    assert.equal(dstIsServer(1, 0, 0, 0, 0, false), false);
    assert.equal(dstIsServer(1, 0, 3, 0, 0, false), false);
    assert.equal(dstIsServer(58, 0, 128, 0, 0, false), true);
    assert.equal(dstIsServer(58, 0, 8, 0, 0, false), false, 'type 8 is not an ICMPv6 echo request');
  });
});

describe('HyperLogLog', () => {
  it('is exact-ish for small sets and within 5% for large ones', () => {
    for (const n of [1, 10, 100, 5000, 200000]) {
      const regs = new Uint8Array(HLL_REGISTERS);
      for (let k = 0; k < n; k++) hllAdd(regs, 0, fmix32(k * 7919 + 1));
      for (let k = 0; k < n; k++) hllAdd(regs, 0, fmix32(k * 7919 + 1)); // duplicates do not count
      const e = hllEstimate(regs);
      assert.ok(Math.abs(e - n) / n < (n <= 100 ? 0.03 : 0.05), `n=${n} estimated ${e}`);
    }
  });
});
