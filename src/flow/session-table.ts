// A bounded session table keyed by the 5-tuple in either direction, over
// typed arrays (no per-session objects). It answers the rules' `state`
// match and feeds the connection features: per-direction packets and bytes,
// first and last seen, and which side is the server.
import { DecodedBatch, FragBits } from '../packet/decoded';
import { guessFromPacket, ServerGuess, SERVER_GUESS_NAMES } from './server-guess';
import { FLOW_ESTABLISHED, FLOW_NEW } from '../rules/types';
import { hasPorts } from '../rules/linear';
import { PROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../packet/decoded';
import { EndReason, EndedSessions } from './ended-sessions';

const KEY_WORDS = 10; // famProto, a[4], b[4], ports
/** Words of a session's key (copyKey): (family << 8) | proto, address A, address B, (portA << 16) | portB. */
export const SESSION_KEY_WORDS = KEY_WORDS;
const MAX_PROBE = 16;
/**
 * Seconds of packet time after its last packet before a closed session's
 * slot may hold another session. Until then the closing side's last ACK
 * and retransmitted FINs (Linux: first RTO 200 ms to 1 s) find their own
 * session instead of opening a bogus one. At least UNANSWERED_SECONDS
 * (session-evidence.ts), so the evidence sweep decides an attempt before
 * its slot is reused, as when slots were only reused once idle.
 */
export const ENDED_GRACE_SECONDS = 4;
const F_USED = 1;
/** Bits of a slot's flags (flagsAt, EndedSessions.flags). */
export const F_INIT_IS_A = 2; // the initiator is endpoint A of the canonical key
export const F_ESTABLISHED = 4;
export const F_SERVER_IS_A = 8;
export const GUESS_SHIFT = 4; // two bits: how the server was guessed (ServerGuess)

export { ServerGuess, SERVER_GUESS_NAMES } from './server-guess';

/** One session as plain data, for tests and tools (not used on the data path). */
export interface SessionInfo {
  /** Canonical endpoints: A is the lower (address, port). */
  family: number;
  proto: number;
  a: number[];
  b: number[];
  portA: number;
  portB: number;
  initiatorIsA: boolean;
  established: boolean;
  serverIsA: boolean;
  serverGuess: (typeof SERVER_GUESS_NAMES)[number];
  packetsAB: number;
  packetsBA: number;
  bytesAB: number;
  bytesBA: number;
  firstSeen: number;
  lastSeen: number;
  /** TCP flags seen from A and from B, ORed. */
  tcpFlagsAB: number;
  tcpFlagsBA: number;
  /** Its end was reported (TCP close, idle sweep): late packets still find it; its slot is reused after ENDED_GRACE_SECONDS. */
  ended: boolean;
}

export class SessionTable {
  readonly capacity: number;
  private readonly mask: number;
  private readonly keys: Uint32Array;
  private readonly flags: Uint8Array;
  private readonly firstSeen: Float64Array;
  private readonly lastSeen: Float64Array;
  private readonly packetsAB: Float64Array;
  private readonly packetsBA: Float64Array;
  private readonly bytesAB: Float64Array;
  private readonly bytesBA: Float64Array;
  private readonly tcpAB: Uint8Array;
  private readonly tcpBA: Uint8Array;
  /** 1 once the session's end was reported: it is not reported again (the last ACK of a close must not start another). */
  private readonly endedAt: Uint8Array;
  private sweepCursor = 0;
  private readonly key = new Uint32Array(KEY_WORDS);
  private srcIsA = false;
  private freeSlot = -1;
  private victim = -1;
  /** Slot of the last record() that stored something, else -1. */
  lastSlot = -1;
  /** Whether the last recorded packet went to its session's server side. */
  lastToServer = false;
  /** Whether the last recorded packet came from the side that opened its session. */
  lastFromInitiator = false;
  /**
   * Called with a slot about to hold a new session while it still holds an
   * old one (evicted, or idle past the timeout): its owner may want to
   * account for the old session first.
   */
  onReuse: ((slot: number) => void) | null = null;
  /**
   * Where sessions that end are copied (flow records); null: ends are not
   * reported. The copy is made at once; a closed session's slot is reused
   * only after ENDED_GRACE_SECONDS.
   */
  ended: EndedSessions | null = null;
  /** Live sessions pushed out of a full table to make room (not idle ones). */
  evictions = 0;
  overflows = 0;

  /** capacity is rounded up to a power of two; idleSeconds frees quiet sessions. */
  constructor(capacity: number, private readonly idleSeconds = 120) {
    let c = 1024;
    while (c < capacity) c <<= 1;
    this.capacity = c;
    this.mask = c - 1;
    this.keys = new Uint32Array(c * KEY_WORDS);
    this.flags = new Uint8Array(c);
    this.firstSeen = new Float64Array(c);
    this.lastSeen = new Float64Array(c);
    this.packetsAB = new Float64Array(c);
    this.packetsBA = new Float64Array(c);
    this.bytesAB = new Float64Array(c);
    this.bytesBA = new Float64Array(c);
    this.tcpAB = new Uint8Array(c);
    this.tcpBA = new Uint8Array(c);
    this.endedAt = new Uint8Array(c);
  }

  /**
   * The state packet i would have, without changing the table. Like
   * conntrack, only accepted packets are recorded (see record()): a dropped
   * packet must not create a session nor make one established.
   */
  classify(d: DecodedBatch, i: number, clock: Float64Array): number {
    const s = this.locate(d, i, clock[0]);
    if (s < 0) return FLOW_NEW;
    // record() opens a new session for it, so a `state: new` rule must see it (not slip past as established).
    if (this.reopens(d, i, s)) return FLOW_NEW;
    const f = this.flags[s];
    if (f & F_ESTABLISHED) return FLOW_ESTABLISHED;
    return ((f & F_INIT_IS_A) !== 0) === this.srcIsA ? FLOW_NEW : FLOW_ESTABLISHED;
  }

  /** A bare SYN on the 4-tuple of a closed session (slot s) opens a new one: the port was reused. */
  private reopens(d: DecodedBatch, i: number, s: number): boolean {
    return this.endedAt[s] === 1 && d.proto[i] === PROTO_TCP && (d.tcpFlags[i] & (TCP_SYN | TCP_ACK)) === TCP_SYN;
  }

  /**
   * Records an accepted packet of `bytes` bytes and returns the session's
   * packet count including it (1: this packet created it), or 0 when nothing
   * could be stored. When every slot around it holds an established session,
   * an overflow is counted: the session then stays NEW, and a full table
   * never makes traffic look established.
   */
  record(d: DecodedBatch, i: number, clock: Float64Array, bytes: number): number {
    const now = clock[0];
    let s = this.locate(d, i, now);
    const fromA = this.srcIsA;
    const tcp = d.proto[i] === PROTO_TCP ? d.tcpFlags[i] : 0;
    // The old session was reported already.
    if (s >= 0 && this.reopens(d, i, s)) {
      this.onReuse?.(s);
      this.open(d, i, s, fromA, now);
    } else if (s >= 0) {
      const f = this.flags[s];
      if (!(f & F_ESTABLISHED) && ((f & F_INIT_IS_A) !== 0) !== fromA) this.flags[s] = f | F_ESTABLISHED;
      if ((f >> GUESS_SHIFT) < ServerGuess.Handshake) this.guessServer(d, i, s, fromA, false);
    } else {
      // Full around the slot: give way to the oldest session that never saw
      // a reply, so spoofed SYNs cannot lock new ones out; established stay.
      const forced = this.freeSlot < 0;
      s = forced ? this.victim : this.freeSlot;
      if (s < 0) {
        this.overflows++;
        this.lastSlot = -1;
        return 0;
      }
      if (this.flags[s] & F_USED) {
        if (forced) this.evictions++;
        if (this.endedAt[s] === 0 && this.ended !== null) this.ended.addNow(this, s, forced ? EndReason.Evicted : EndReason.Timeout, forced ? now : this.lastSeen[s]);
        this.onReuse?.(s);
      }
      this.open(d, i, s, fromA, now);
    }
    this.lastSeen[s] = now;
    if (tcp !== 0) {
      if (fromA) this.tcpAB[s] |= tcp;
      else this.tcpBA[s] |= tcp;
    }
    this.lastSlot = s;
    this.lastToServer = ((this.flags[s] & F_SERVER_IS_A) !== 0) !== fromA;
    this.lastFromInitiator = ((this.flags[s] & F_INIT_IS_A) !== 0) === fromA;
    let k: number;
    if (fromA) {
      this.bytesAB[s] += bytes;
      k = ++this.packetsAB[s] + this.packetsBA[s];
    } else {
      this.bytesBA[s] += bytes;
      k = this.packetsAB[s] + ++this.packetsBA[s];
    }
    // A reset from either side, or a FIN from both, ends a TCP session.
    if (tcp !== 0 && this.endedAt[s] === 0) {
      const ab = this.tcpAB[s];
      const ba = this.tcpBA[s];
      if (((ab | ba) & TCP_RST) !== 0 || (ab & ba & TCP_FIN) !== 0) {
        this.endedAt[s] = 1;
        this.ended?.addNow(this, s, EndReason.Closed, now);
      }
    }
    return k;
  }

  /** Slot s now holds packet i's session, from its first packet. */
  private open(d: DecodedBatch, i: number, s: number, fromA: boolean, now: number): void {
    this.keys.set(this.key, s * KEY_WORDS);
    this.flags[s] = F_USED | (fromA ? F_INIT_IS_A : 0);
    this.firstSeen[s] = now;
    this.packetsAB[s] = 0;
    this.packetsBA[s] = 0;
    this.bytesAB[s] = 0;
    this.bytesBA[s] = 0;
    this.tcpAB[s] = 0;
    this.tcpBA[s] = 0;
    this.endedAt[s] = 0;
    this.guessServer(d, i, s, fromA, true);
  }

  /**
   * Reports sessions idle past the timeout whose slot nothing reused yet,
   * looking at `slots` slots from where the last sweep stopped: the cost of
   * a full pass is spread over many calls. Returns how many it reported.
   */
  sweepIdle(now: number, slots: number): number {
    const sink = this.ended;
    if (sink === null) return 0;
    let n = 0;
    let s = this.sweepCursor;
    for (let k = 0; k < slots && k < this.capacity; k++) {
      if ((this.flags[s] & F_USED) !== 0 && this.endedAt[s] === 0 && now - this.lastSeen[s] > this.idleSeconds) {
        if (!sink.add(this, s, EndReason.Timeout, this.lastSeen[s])) break;
        this.endedAt[s] = 1;
        n++;
      }
      s = (s + 1) & this.mask;
    }
    this.sweepCursor = s;
    return n;
  }

  /**
   * Reports every session not reported yet (nfips stops), from slot `from`
   * on, until the sink is full; returns the slot to go on from, or -1 when
   * every slot was seen.
   */
  endAll(now: number, from = 0): number {
    const sink = this.ended;
    if (sink === null) return -1;
    for (let s = from; s < this.capacity; s++) {
      if ((this.flags[s] & F_USED) === 0 || this.endedAt[s] === 1) continue;
      const idle = now - this.lastSeen[s] > this.idleSeconds;
      if (!sink.add(this, s, idle ? EndReason.Timeout : EndReason.Shutdown, idle ? this.lastSeen[s] : now)) return sink.full ? s : -1;
      this.endedAt[s] = 1;
    }
    return -1;
  }

  /** classify() then record(), for a packet known to be accepted. */
  observe(d: DecodedBatch, i: number, clock: Float64Array, bytes = 0): number {
    const state = this.classify(d, i, clock);
    this.record(d, i, clock, bytes);
    return state;
  }

  isUsed(slot: number): boolean {
    return (this.flags[slot] & F_USED) !== 0;
  }

  /** Whether the session at a slot is live at `now`: used, not idle past the timeout. */
  isLive(slot: number, now: number): boolean {
    return (this.flags[slot] & F_USED) !== 0 && now - this.lastSeen[slot] <= this.idleSeconds;
  }

  isEnded(slot: number): boolean {
    return this.endedAt[slot] === 1;
  }

  /** Copies a slot's raw columns: the key words, flags, and counters (for EndedSessions). */
  copyKey(slot: number, out: Uint32Array, at: number): void {
    for (let j = 0; j < KEY_WORDS; j++) out[at + j] = this.keys[slot * KEY_WORDS + j];
  }

  flagsAt(slot: number): number {
    return this.flags[slot];
  }

  packetsABAt(slot: number): number {
    return this.packetsAB[slot];
  }

  packetsBAAt(slot: number): number {
    return this.packetsBA[slot];
  }

  bytesABAt(slot: number): number {
    return this.bytesAB[slot];
  }

  bytesBAAt(slot: number): number {
    return this.bytesBA[slot];
  }

  tcpFlagsABAt(slot: number): number {
    return this.tcpAB[slot];
  }

  tcpFlagsBAAt(slot: number): number {
    return this.tcpBA[slot];
  }

  /** Transport protocol of the session at a slot. */
  protoAt(slot: number): number {
    return this.keys[slot * KEY_WORDS] & 0xff;
  }

  familyAt(slot: number): number {
    return this.keys[slot * KEY_WORDS] >>> 8;
  }

  firstSeenAt(slot: number): number {
    return this.firstSeen[slot];
  }

  lastSeenAt(slot: number): number {
    return this.lastSeen[slot];
  }

  /** Whether the last lookup() found its packet going from the session's A side (see initiatorIsA). */
  get lookedUpFromA(): boolean {
    return this.srcIsA;
  }

  initiatorIsA(slot: number): boolean {
    return (this.flags[slot] & F_INIT_IS_A) !== 0;
  }

  /** True when the side that opened the session is its client by the server guess. */
  initiatorIsClient(slot: number): boolean {
    const f = this.flags[slot];
    return ((f & F_INIT_IS_A) !== 0) !== ((f & F_SERVER_IS_A) !== 0);
  }

  /**
   * Copies the address of the side that opened the session (or of the other
   * side) to out[0..3]; returns that side's port (0 without ports).
   */
  endpointAt(slot: number, initiator: boolean, out: Uint32Array): number {
    const base = slot * KEY_WORDS;
    const sideA = ((this.flags[slot] & F_INIT_IS_A) !== 0) === initiator;
    const from = base + (sideA ? 1 : 5);
    for (let j = 0; j < 4; j++) out[j] = this.keys[from + j];
    const ports = this.keys[base + 9];
    return sideA ? ports >>> 16 : ports & 0xffff;
  }

  /** The session at a slot (e.g. lastSlot), or null if the slot is free. */
  info(slot: number): SessionInfo | null {
    if (slot < 0 || slot >= this.capacity || !(this.flags[slot] & F_USED)) return null;
    const f = this.flags[slot];
    const k = this.keys.subarray(slot * KEY_WORDS, (slot + 1) * KEY_WORDS);
    return {
      family: k[0] >>> 8,
      proto: k[0] & 0xff,
      a: Array.from(k.subarray(1, 5)),
      b: Array.from(k.subarray(5, 9)),
      portA: k[9] >>> 16,
      portB: k[9] & 0xffff,
      initiatorIsA: (f & F_INIT_IS_A) !== 0,
      established: (f & F_ESTABLISHED) !== 0,
      serverIsA: (f & F_SERVER_IS_A) !== 0,
      serverGuess: SERVER_GUESS_NAMES[(f >> GUESS_SHIFT) & 3],
      packetsAB: this.packetsAB[slot],
      packetsBA: this.packetsBA[slot],
      bytesAB: this.bytesAB[slot],
      bytesBA: this.bytesBA[slot],
      firstSeen: this.firstSeen[slot],
      lastSeen: this.lastSeen[slot],
      tcpFlagsAB: this.tcpAB[slot],
      tcpFlagsBA: this.tcpBA[slot],
      ended: this.endedAt[slot] === 1,
    };
  }

  /**
   * Sets the server side of slot s from packet i when its evidence is
   * stronger than what is stored (or always, for a new session).
   */
  private guessServer(d: DecodedBatch, i: number, s: number, fromA: boolean, fresh: boolean): void {
    const g = guessFromPacket(d.proto[i], d.tcpFlags[i], d.icmpType[i], d.sport[i], d.dport[i], this.key[9] !== 0);
    const guess = g >> 1;
    const f = this.flags[s];
    if (!fresh && guess <= (f >> GUESS_SHIFT)) return;
    const serverIsA = (g & 1) !== 0 ? !fromA : fromA;
    this.flags[s] = (f & (F_USED | F_INIT_IS_A | F_ESTABLISHED)) | (serverIsA ? F_SERVER_IS_A : 0) | (guess << GUESS_SHIFT);
  }

  /**
   * Builds the canonical key of packet i in this.key and finds its slot
   * (-1 if absent); leaves the first reusable slot in this.freeSlot.
   */
  private locate(d: DecodedBatch, i: number, now: number): number {
    const ports = hasPorts(d.proto[i]) && !(d.frag[i] & FragBits.NonFirst);
    this.buildKey(d.family[i], d.proto[i], d.src, d.dst, i * 4, ports ? d.sport[i] : 0, ports ? d.dport[i] : 0);
    return this.probe(now);
  }

  /**
   * The slot of the session (family, proto, src -> dst, ports), or -1: for
   * packets described elsewhere than in a batch (the packet an ICMP error
   * quotes). Changes no session.
   */
  lookup(family: number, proto: number, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, now: number): number {
    const ports = hasPorts(proto);
    this.buildKey(family, proto, src, dst, 0, ports ? sport : 0, ports ? dport : 0);
    return this.probe(now);
  }

  /** this.key and this.srcIsA for src[w..] -> dst[w..]. */
  private buildKey(family: number, proto: number, src: Uint32Array, dst: Uint32Array, w: number, sp: number, dp: number): void {
    const k = this.key;
    // Canonical order: the lower (address, port) endpoint is A.
    let srcIsA = sp <= dp;
    for (let j = 0; j < 4; j++) {
      if (src[w + j] !== dst[w + j]) {
        srcIsA = src[w + j] < dst[w + j];
        break;
      }
    }
    this.srcIsA = srcIsA;
    k[0] = (family << 8) | proto;
    for (let j = 0; j < 4; j++) {
      k[1 + j] = srcIsA ? src[w + j] : dst[w + j];
      k[5 + j] = srcIsA ? dst[w + j] : src[w + j];
    }
    k[9] = srcIsA ? ((sp << 16) | dp) >>> 0 : ((dp << 16) | sp) >>> 0;
  }

  /** Finds this.key's slot (-1 if absent); leaves the first reusable slot in this.freeSlot. */
  private probe(now: number): number {
    const k = this.key;
    let h = 2166136261;
    for (let j = 0; j < KEY_WORDS; j++) h = Math.imul(h ^ k[j], 16777619);
    h ^= h >>> 15;
    this.freeSlot = -1;
    this.victim = -1;
    let ended = -1;
    for (let p = 0; p < MAX_PROBE; p++) {
      const s = (h + p) & this.mask;
      const f = this.flags[s];
      if (!(f & F_USED)) {
        if (this.freeSlot < 0) this.freeSlot = s;
        return -1;
      }
      if (now - this.lastSeen[s] > this.idleSeconds) {
        if (this.freeSlot < 0) this.freeSlot = s;
        continue;
      }
      if (this.sameKey(s)) return s;
      // A closed session already reported gives way to a new one once its
      // last ACK and retransmitted FINs are past (ENDED_GRACE_SECONDS),
      // but only when no free or idle slot is at hand.
      if (this.endedAt[s] === 1 && now - this.lastSeen[s] > ENDED_GRACE_SECONDS) {
        if (ended < 0) ended = s;
        continue;
      }
      if (!(f & F_ESTABLISHED) && (this.victim < 0 || this.lastSeen[s] < this.lastSeen[this.victim])) this.victim = s;
    }
    if (this.freeSlot < 0) this.freeSlot = ended;
    return -1;
  }

  private sameKey(s: number): boolean {
    const base = s * KEY_WORDS;
    const k = this.key;
    for (let j = 0; j < KEY_WORDS; j++) if (this.keys[base + j] !== k[j]) return false;
    return true;
  }
}
