// Writes pcaps of synthetic gateway traffic for tests and benchmarks: a few
// clients talking HTTP-like TCP, DNS-like UDP and the odd ping to a server,
// at rates that change every 30 s; optionally with a flood from one source.
import { buildPacket, PacketSpec } from '../../src/packet/build';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../../src/packet/decoded';
import { PcapWriter } from '../../src/pcap/writer';
import { mulberry32 } from './mulberry32';

export interface Flood {
  from: string;
  kind: 'ping' | 'syn' | 'udp';
  at: number;
  seconds: number;
  pps: number;
}

export interface SyntheticOptions {
  seconds: number;
  seed: number;
  start?: number;
  flood?: Flood;
}

export const SERVER = '10.0.2.2';
export const CLIENTS = ['10.0.1.2', '10.0.1.3', '10.0.1.4'];


/** Writes the pcap; returns the number of packets. */
export function writeSyntheticPcap(file: string, o: SyntheticOptions): number {
  const r = mulberry32(o.seed);
  const t0 = o.start ?? 1_700_000_000;
  const pkts: { t: number; spec: PacketSpec }[] = [];
  const at = (t: number, spec: PacketSpec) => pkts.push({ t, spec });
  let port = 30000;
  let level = 1;
  for (let s = 0; s < o.seconds; s++) {
    if (s % 30 === 0) level = 0.3 + r() * 2.5;
    const sessions = Math.round(level * (1 + r() * 2));
    for (let k = 0; k < sessions; k++) {
      const c = CLIENTS[Math.floor(r() * CLIENTS.length)];
      const sp = port++ > 60000 ? (port = 30000) : port;
      let t = s + r() * 0.8;
      const out = (flags: number, len = 0) => at((t += 0.0005 + r() * 0.002), { src: c, dst: SERVER, proto: 6, sport: sp, dport: 8080, tcpFlags: flags, payloadLen: len });
      const back = (flags: number, len = 0) => at((t += 0.0005 + r() * 0.002), { src: SERVER, dst: c, proto: 6, sport: 8080, dport: sp, tcpFlags: flags, payloadLen: len });
      out(TCP_SYN);
      back(TCP_SYN | TCP_ACK);
      out(TCP_ACK);
      out(TCP_PSH | TCP_ACK, 200 + Math.floor(r() * 300));
      const segs = 1 + Math.floor(r() * 12);
      for (let j = 0; j < segs; j++) {
        back(TCP_ACK, 1448);
        if (j % 2 === 1) out(TCP_ACK);
      }
      out(TCP_FIN | TCP_ACK);
      back(TCP_FIN | TCP_ACK);
      out(TCP_ACK);
    }
    const dns = Math.round(level * (2 + r() * 4));
    for (let k = 0; k < dns; k++) {
      const c = CLIENTS[Math.floor(r() * CLIENTS.length)];
      const sp = 40000 + Math.floor(r() * 20000);
      const t = s + r() * 0.95;
      at(t, { src: c, dst: SERVER, proto: 17, sport: sp, dport: 5353, payloadLen: 30 + Math.floor(r() * 50) });
      at(t + 0.001, { src: SERVER, dst: c, proto: 17, sport: 5353, dport: sp, payloadLen: 80 + Math.floor(r() * 100) });
    }
    if (r() < 0.1) {
      const c = CLIENTS[Math.floor(r() * CLIENTS.length)];
      for (let k = 0; k < 3; k++) {
        at(s + k * 0.2, { src: c, dst: SERVER, proto: 1, icmpType: 8, payloadLen: 56 });
        at(s + k * 0.2 + 0.0002, { src: SERVER, dst: c, proto: 1, icmpType: 0, payloadLen: 56 });
      }
    }
  }
  const f = o.flood;
  if (f) {
    const n = Math.round(f.pps * f.seconds);
    for (let k = 0; k < n; k++) {
      const t = f.at + (k / n) * f.seconds;
      if (f.kind === 'ping') {
        at(t, { src: f.from, dst: SERVER, proto: 1, icmpType: 8, payloadLen: 56 });
        at(t + 0.00005, { src: SERVER, dst: f.from, proto: 1, icmpType: 0, payloadLen: 56 });
      } else if (f.kind === 'syn') {
        at(t, { src: f.from, dst: SERVER, proto: 6, sport: 1024 + (k % 60000), dport: 8080, tcpFlags: TCP_SYN });
      } else {
        at(t, { src: f.from, dst: SERVER, proto: 17, sport: 1024 + (k % 60000), dport: 9, payloadLen: 0 });
      }
    }
  }
  pkts.sort((a, b) => a.t - b.t);
  const w = new PcapWriter(file, { linkType: 101, nanos: true });
  for (const p of pkts) {
    const abs = t0 + p.t;
    const sec = Math.floor(abs);
    w.write(sec, Math.floor((abs - sec) * 1e9), buildPacket(p.spec));
  }
  w.close();
  return pkts.length;
}
