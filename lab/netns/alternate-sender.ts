// Datagrams sent alternately to two addresses a fixed gap apart, from inside
// a namespace: the cross-device order check of a capture holding both
// interfaces they leave by (capture-source.test.ts, bench/capture-order.ts).
import { Topology } from './topology';

// Payload length i + 1 is the datagram's place in the sequence; the next
// send waits for the previous one to leave, then the gap.
const SENDER = `
const dgram = require('node:dgram');
const [a, b, port, pairs, gap] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
let i = 0;
const next = () => {
  if (i === 2 * Number(pairs)) return s.close();
  s.send(Buffer.alloc(i + 1, 120), Number(port), i % 2 ? b : a, () => setTimeout(next, Number(gap)));
  i++;
};
next();
`;

/** UDP payload length of the n-th datagram (1-based) sendAlternately sends. */
export const alternatePayload = (n: number) => n;

/** Sends `pairs` pairs of UDP datagrams from ns to port: to a, then to b gapMs later, and so on. */
export async function sendAlternately(t: Topology, ns: string, a: string, b: string, port: number, pairs: number, gapMs: number): Promise<void> {
  await t.exec(ns, process.execPath, ['-e', SENDER, a, b, String(port), String(pairs), String(gapMs)], { timeoutMs: 30_000 + pairs * 2 * gapMs });
}
