// Per-source counters for one step, so an alert can say who is responsible.
// Exact for up to `maxSources` sources per step; beyond that the lightest
// rows give way to new sources and their counts move to an "others" row,
// so heavy hitters keep exact rows and the totals stay exact.
import { BlameCounter } from './feature-set';

export const SOURCE_COUNTERS: readonly BlameCounter[] = ['packets', 'bytes', 'syn', 'icmpEcho', 'udp', 'newSessions'];
export const SC_PACKETS = 0;
export const SC_BYTES = 1;
export const SC_SYN = 2;
export const SC_ICMP_ECHO = 3;
export const SC_UDP = 4;
export const SC_NEW_SESSIONS = 5;
export const SC_COUNT = SOURCE_COUNTERS.length;

/**
 * Evidence counters per source (see flow/session-evidence): what marks an
 * attack rather than volume. Besides these, rows keep distinct-destination
 * bitmaps of failed attempts and the busiest service of new attempts.
 */
export const EVIDENCE_COUNTERS = ['tcp_failed', 'udp_failed', 'udp_unanswered', 'echo_requests', 'odd_sessions', 'stalled_sessions'] as const;
export const EV_TCP_FAILED = 0;
export const EV_UDP_FAILED = 1;
export const EV_UDP_UNANSWERED = 2;
export const EV_ECHO = 3;
export const EV_ODD = 4;
export const EV_STALLED = 5;
export const EV_COUNT = EVIDENCE_COUNTERS.length;
/** Bitmap words per row: distinct (server, protocol, port) and distinct servers of failed attempts. */
export const PORT_BITS_WORDS = 8;
export const HOST_BITS_WORDS = 2;
/** Services tracked per row for its new working sessions (Misra-Gries): the busiest one's count is a lower bound. */
export const SVC_SLOTS = 2;

const MAX_PROBE = 16;
export const NO_MAC = -1;

/** Protocol bits of a source's packets toward servers. */
export const PROTO_BIT_TCP = 1;
export const PROTO_BIT_UDP = 2;
export const PROTO_BIT_ICMP = 4;
export const PROTO_BIT_OTHER = 8;
/** Destination of a source's port-carrying packets: (proto << 16) | port, or one of these. */
export const TARGET_NONE = -1;
export const TARGET_MANY = -2;

/** Folds one more destination into a source's: the same one stays, a second makes it "many". */
export function mergeTarget(cur: number, next: number): number {
  if (cur === TARGET_NONE) return next;
  if (next === TARGET_NONE || next === cur) return cur;
  return TARGET_MANY;
}

export class SourceTable {
  readonly maxSources: number;
  readonly slots: number;
  private readonly mask: number;
  /** A slot is in use when its stamp equals the table's generation: clear() is O(1). */
  private readonly stamp: Uint32Array;
  private generation = 1;
  readonly hashes: Uint32Array;
  readonly family: Uint8Array;
  readonly addr: Uint32Array;
  /** Source MAC as two 24-bit halves, or NO_MAC in macHi. */
  readonly macHi: Int32Array;
  readonly macLo: Int32Array;
  readonly counts: Float64Array;
  /** PROTO_BIT_* of the source's packets: a block can be narrowed to one protocol. */
  readonly protos: Uint8Array;
  /** The single (protocol, destination port) it sent to, or TARGET_*: a block can be narrowed to one service. */
  readonly target: Int32Array;
  readonly others = new Float64Array(SC_COUNT);
  readonly ev: Float64Array;
  readonly othersEv = new Float64Array(EV_COUNT);
  readonly portBits: Uint32Array;
  readonly hostBits: Uint32Array;
  /** Per (server, service) of its working TCP sessions: a 31-bit key (-1 for none), the service ((proto << 16) | port) and the count. */
  readonly svcKey: Int32Array;
  readonly svcService: Int32Array;
  readonly svcCount: Uint32Array;
  /** PROTO_BIT_* of the row's failed, improbable or stalled sessions. */
  readonly evProtos: Uint8Array;
  /** The single TCP and UDP (proto << 16) | port its evidence was about, or TARGET_*: a block can be narrowed to it. */
  readonly evTcp: Int32Array;
  readonly evUdp: Int32Array;
  /** One improbable session of the row: its packed symbols, their number and the surprisal that tripped it. */
  readonly oddSeq: Uint32Array;
  readonly oddLen: Uint8Array;
  readonly oddSurprisal: Float32Array;
  used = 0;
  /** Rows handed from a light source to a new one since the last clear. */
  evictions = 0;

  constructor(maxSources = 256) {
    this.maxSources = maxSources;
    let c = 16;
    while (c < maxSources * 2) c <<= 1;
    this.slots = c;
    this.mask = c - 1;
    this.stamp = new Uint32Array(c);
    this.hashes = new Uint32Array(c);
    this.family = new Uint8Array(c);
    this.addr = new Uint32Array(c * 4);
    this.macHi = new Int32Array(c);
    this.macLo = new Int32Array(c);
    this.counts = new Float64Array(c * SC_COUNT);
    this.protos = new Uint8Array(c);
    this.target = new Int32Array(c);
    this.ev = new Float64Array(c * EV_COUNT);
    this.portBits = new Uint32Array(c * PORT_BITS_WORDS);
    this.hostBits = new Uint32Array(c * HOST_BITS_WORDS);
    this.svcKey = new Int32Array(c * SVC_SLOTS);
    this.svcService = new Int32Array(c * SVC_SLOTS);
    this.svcCount = new Uint32Array(c * SVC_SLOTS);
    this.evProtos = new Uint8Array(c);
    this.evTcp = new Int32Array(c);
    this.evUdp = new Int32Array(c);
    this.oddSeq = new Uint32Array(c);
    this.oddLen = new Uint8Array(c);
    this.oddSurprisal = new Float32Array(c);
  }

  clear(): void {
    this.generation = (this.generation + 1) >>> 0 || 1;
    this.used = 0;
    this.evictions = 0;
    this.others.fill(0);
    this.othersEv.fill(0);
  }

  inUse(slot: number): boolean {
    return this.stamp[slot] === this.generation;
  }

  /**
   * The row of the source at words[base..] (hash precomputed); -1 means
   * "count it under others". mac: the packet bytes and offset of its source
   * MAC, or macOffset < 0. When the table is full, the lightest row met on
   * the probe path is folded into "others" and given to the new source
   * (Space-Saving style, over the probe path only so a miss costs at most
   * MAX_PROBE compares): light sources churn, heavy ones keep their rows.
   */
  rowFor(hash: number, family: number, words: Uint32Array, base: number, bytes: Uint8Array, macOffset: number): number {
    let victim = -1;
    let slot = -1;
    for (let p = 0; p < MAX_PROBE; p++) {
      const s = (hash + p) & this.mask;
      if (this.stamp[s] !== this.generation) {
        if (this.used < this.maxSources) {
          this.stamp[s] = this.generation;
          this.used++;
          slot = s;
        }
        break;
      }
      if (this.hashes[s] === hash && this.family[s] === family && this.sameAddr(s, words, base, family)) return s;
      if (victim < 0 || this.counts[s * SC_COUNT + SC_PACKETS] < this.counts[victim * SC_COUNT + SC_PACKETS]) victim = s;
    }
    if (slot < 0) {
      if (victim < 0) return -1;
      slot = victim;
      const o = slot * SC_COUNT;
      for (let k = 0; k < SC_COUNT; k++) this.others[k] += this.counts[o + k];
      const e = slot * EV_COUNT;
      for (let k = 0; k < EV_COUNT; k++) this.othersEv[k] += this.ev[e + k];
      this.evictions++;
    }
    this.hashes[slot] = hash;
    this.family[slot] = family;
    const a = slot * 4;
    this.addr[a] = words[base];
    this.addr[a + 1] = family === 6 ? words[base + 1] : 0;
    this.addr[a + 2] = family === 6 ? words[base + 2] : 0;
    this.addr[a + 3] = family === 6 ? words[base + 3] : 0;
    if (macOffset >= 0) {
      this.macHi[slot] = (bytes[macOffset] << 16) | (bytes[macOffset + 1] << 8) | bytes[macOffset + 2];
      this.macLo[slot] = (bytes[macOffset + 3] << 16) | (bytes[macOffset + 4] << 8) | bytes[macOffset + 5];
    } else {
      this.macHi[slot] = NO_MAC;
    }
    this.counts.fill(0, slot * SC_COUNT, (slot + 1) * SC_COUNT);
    this.protos[slot] = 0;
    this.target[slot] = TARGET_NONE;
    this.ev.fill(0, slot * EV_COUNT, (slot + 1) * EV_COUNT);
    this.portBits.fill(0, slot * PORT_BITS_WORDS, (slot + 1) * PORT_BITS_WORDS);
    this.hostBits.fill(0, slot * HOST_BITS_WORDS, (slot + 1) * HOST_BITS_WORDS);
    this.svcKey.fill(-1, slot * SVC_SLOTS, (slot + 1) * SVC_SLOTS);
    this.svcCount.fill(0, slot * SVC_SLOTS, (slot + 1) * SVC_SLOTS);
    this.evProtos[slot] = 0;
    this.evTcp[slot] = TARGET_NONE;
    this.evUdp[slot] = TARGET_NONE;
    this.oddLen[slot] = 0;
    return slot;
  }

  /**
   * A new working session of row r with one server's service: key (31 bits)
   * names the pair, service is (proto << 16) | port. Misra-Gries over
   * SVC_SLOTS counters: the busiest pair's count is a lower bound.
   */
  countService(r: number, key: number, service: number): void {
    const b = r * SVC_SLOTS;
    const keys = this.svcKey;
    const c = this.svcCount;
    if (keys[b] === key) c[b]++;
    else if (keys[b + 1] === key) c[b + 1]++;
    else if (c[b] === 0) {
      keys[b] = key;
      this.svcService[b] = service;
      c[b] = 1;
    } else if (c[b + 1] === 0) {
      keys[b + 1] = key;
      this.svcService[b + 1] = service;
      c[b + 1] = 1;
    } else {
      c[b]--;
      c[b + 1]--;
    }
  }

  /** Marks a failed attempt of row r toward a server (address hash) on proto/port in the distinct bitmaps. */
  markFailure(r: number, serverHash: number, portHash: number): void {
    const p = portHash & 255;
    this.portBits[r * PORT_BITS_WORDS + (p >>> 5)] |= 1 << (p & 31);
    const h = serverHash & 63;
    this.hostBits[r * HOST_BITS_WORDS + (h >>> 5)] |= 1 << (h & 31);
  }

  private sameAddr(s: number, words: Uint32Array, base: number, family: number): boolean {
    const a = s * 4;
    if (this.addr[a] !== words[base]) return false;
    if (family !== 6) return true;
    return this.addr[a + 1] === words[base + 1] && this.addr[a + 2] === words[base + 2] && this.addr[a + 3] === words[base + 3];
  }
}

/**
 * Distinct values estimated from a bitmap of `words` 32-bit words by linear
 * counting (Whang et al. 1990): -m ln(zero bits / m); a full map gives
 * m ln m, its limit.
 */
export function bitmapDistinct(bits: ArrayLike<number>, base: number, words: number): number {
  const m = words * 32;
  let ones = 0;
  for (let k = 0; k < words; k++) ones += popcount(bits[base + k]);
  const zeros = m - ones;
  if (zeros === m) return 0;
  return Math.round(zeros === 0 ? m * Math.log(m) : -m * Math.log(zeros / m));
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** "aa:bb:cc:dd:ee:ff" from the two halves, or undefined. */
export function formatMac(hi: number, lo: number): string | undefined {
  if (hi === NO_MAC) return undefined;
  const hex = (v: number) => v.toString(16).padStart(6, '0');
  const s = hex(hi) + hex(lo);
  return s.replace(/(..)(?=.)/g, '$1:');
}
