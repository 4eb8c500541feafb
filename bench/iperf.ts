// Pure parsers for what the benchmark reads back from iperf3, ping, iptables
import { RuleCounter } from '../src/iptables/chain-counters';
// and /proc. Kept free of I/O so they can be tested on captured output.

export interface TcpResult {
  /** Receiver side: what actually crossed the gateway. */
  bitsPerSecond: number;
  bytes: number;
  seconds: number;
  retransmits: number | null;
}

export interface UdpResult {
  seconds: number;
  sentPackets: number;
  /** Highest sequence the receiver saw; iperf3 counts gaps below it as lost. */
  receiverPackets: number;
  lostPackets: number;
  deliveredPackets: number;
  lostPercent: number;
  deliveredPps: number;
  sentPps: number;
}

export interface PingResult {
  transmitted: number;
  received: number;
  lossPercent: number;
  /** Null when no reply came back, since ping then prints no rtt line. */
  rttMinUs: number | null;
  rttAvgUs: number | null;
  rttMaxUs: number | null;
  rttMdevUs: number | null;
  /** The average is dominated by rare millisecond outliers; the median shows the typical packet. */
  rttMedianUs: number | null;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(o: Json, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`iperf3 JSON: ${where}.${key} is not a number`);
  return v;
}

function iperfEnd(jsonText: string): Json {
  let doc: unknown;
  try {
    doc = JSON.parse(jsonText);
  } catch {
    const head = jsonText.trim().slice(0, 200);
    throw new Error(`iperf3 did not print JSON: ${head || '(empty output)'}`);
  }
  if (!isObject(doc)) throw new Error('iperf3 JSON: top level is not an object');
  // iperf3 reports failures inside the JSON, sometimes with exit status 0.
  if (typeof doc.error === 'string') throw new Error(`iperf3: ${doc.error}`);
  if (!isObject(doc.end)) throw new Error('iperf3 JSON: no "end" section');
  return doc.end;
}

export function parseIperfTcp(jsonText: string): TcpResult {
  const end = iperfEnd(jsonText);
  const recv = end.sum_received;
  if (!isObject(recv)) throw new Error('iperf3 JSON: no end.sum_received (not a TCP test?)');
  if ('lost_packets' in recv) throw new Error('iperf3 JSON: a UDP result, not a TCP test');
  const sent = end.sum_sent;
  const retr = isObject(sent) && typeof sent.retransmits === 'number' ? sent.retransmits : null;
  return {
    bitsPerSecond: num(recv, 'bits_per_second', 'end.sum_received'),
    bytes: num(recv, 'bytes', 'end.sum_received'),
    seconds: num(recv, 'seconds', 'end.sum_received'),
    retransmits: retr,
  };
}

export function parseIperfUdp(jsonText: string): UdpResult {
  const end = iperfEnd(jsonText);
  // Older iperf3 only has end.sum, which carries the receiver's counts for UDP.
  const recv = isObject(end.sum_received) ? end.sum_received : end.sum;
  const sent = isObject(end.sum_sent) ? end.sum_sent : end.sum;
  if (!isObject(recv) || !isObject(sent)) throw new Error('iperf3 JSON: no UDP summary in "end"');
  if (typeof recv.lost_packets !== 'number') throw new Error('iperf3 JSON: no lost_packets (not a UDP test?)');
  const receiverPackets = num(recv, 'packets', 'end.sum_received');
  const lostPackets = num(recv, 'lost_packets', 'end.sum_received');
  const sentPackets = num(sent, 'packets', 'end.sum_sent');
  const seconds = num(recv, 'seconds', 'end.sum_received');
  const sentSeconds = num(sent, 'seconds', 'end.sum_sent');
  const deliveredPackets = Math.max(0, receiverPackets - lostPackets);
  return {
    seconds,
    sentPackets,
    receiverPackets,
    lostPackets,
    deliveredPackets,
    lostPercent: num(recv, 'lost_percent', 'end.sum_received'),
    deliveredPps: seconds > 0 ? deliveredPackets / seconds : 0,
    sentPps: sentSeconds > 0 ? sentPackets / sentSeconds : 0,
  };
}

/** Parses the summary of iputils `ping -q`. */
export function parsePing(text: string): PingResult {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received(?:, \+\d+ errors)?(?:, \+\d+ duplicates)?, ([\d.]+)% packet loss/.exec(text);
  if (counts === null) throw new Error(`ping printed no summary: ${text.trim().slice(-200) || '(empty output)'}`);
  const rtt = /(?:rtt|round-trip) min\/avg\/max\/(?:mdev|stddev) = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(text);
  const us = (s: string | undefined): number | null => (s === undefined ? null : Number(s) * 1000);
  return {
    transmitted: Number(counts[1]),
    received: Number(counts[2]),
    lossPercent: Number(counts[3]),
    rttMinUs: us(rtt?.[1]),
    rttAvgUs: us(rtt?.[2]),
    rttMaxUs: us(rtt?.[3]),
    rttMdevUs: us(rtt?.[4]),
    rttMedianUs: medianReplyUs(text),
  };
}

/** Median of the per-reply "time=X ms" lines (ping without -q); null if none. */
function medianReplyUs(text: string): number | null {
  const t = [...text.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  if (t.length === 0) return null;
  return t.length % 2 ? t[(t.length - 1) / 2] : (t[t.length / 2 - 1] + t[t.length / 2]) / 2;
}

/** Packets counted by the benchmark's `-m mark --mark VALUE/MASK -j ACCEPT` rule. */
export function markAcceptPackets(rules: RuleCounter[], mark: string): number | null {
  const hits = rules.filter((r) => r.target === 'ACCEPT' && r.extra.includes(`mark match ${mark}`));
  return hits.length === 0 ? null : hits.reduce((s, r) => s + r.packets, 0);
}


/** Median of the finite values; null when there are none. */
export function median(values: ReadonlyArray<number | null>): number | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}
