// A bounded flow table keyed by the 5-tuple in either direction, over typed
// arrays (no per-flow objects). It tells whether a packet starts a flow or
// belongs to one that has already seen a reply.
import { DecodedBatch, FragBits } from '../packet/decoded';
import { FLOW_ESTABLISHED, FLOW_NEW } from '../rules/types';
import { hasPorts } from '../rules/linear';

const KEY_WORDS = 10; // famProto, a[4], b[4], ports
const MAX_PROBE = 16;
const F_USED = 1;
const F_INIT_IS_A = 2; // the initiator is endpoint A of the canonical key
const F_ESTABLISHED = 4;

export interface FlowTableStats {
  flows: number;
  evictions: number;
  overflows: number;
}

export class FlowTable {
  readonly capacity: number;
  private readonly mask: number;
  private readonly keys: Uint32Array;
  private readonly flags: Uint8Array;
  private readonly lastSeen: Float64Array;
  private readonly key = new Uint32Array(KEY_WORDS);
  private used = 0;
  private srcIsA = false;
  private freeSlot = -1;
  private victim = -1;
  evictions = 0;
  overflows = 0;

  /** capacity is rounded up to a power of two; idleSeconds frees quiet flows. */
  constructor(capacity: number, private readonly idleSeconds = 120) {
    let c = 1024;
    while (c < capacity) c <<= 1;
    this.capacity = c;
    this.mask = c - 1;
    this.keys = new Uint32Array(c * KEY_WORDS);
    this.flags = new Uint8Array(c);
    this.lastSeen = new Float64Array(c);
  }

  stats(): FlowTableStats {
    return { flows: this.used, evictions: this.evictions, overflows: this.overflows };
  }

  /**
   * The state packet i would have, without changing the table. Like
   * conntrack, only accepted packets are recorded (see record()): a dropped
   * packet must not create a flow nor make one established.
   */
  classify(d: DecodedBatch, i: number, clock: Float64Array): number {
    const s = this.locate(d, i, clock[0]);
    if (s < 0) return FLOW_NEW;
    const f = this.flags[s];
    if (f & F_ESTABLISHED) return FLOW_ESTABLISHED;
    return ((f & F_INIT_IS_A) !== 0) === this.srcIsA ? FLOW_NEW : FLOW_ESTABLISHED;
  }

  /**
   * Records an accepted packet: creates its flow, or marks it established
   * when it comes from the responder. When every slot around it holds an
   * established flow, nothing is stored and an overflow is counted: the flow
   * then stays NEW, and a full table never makes traffic look established.
   */
  record(d: DecodedBatch, i: number, clock: Float64Array): void {
    const now = clock[0];
    const s = this.locate(d, i, now);
    if (s >= 0) {
      this.lastSeen[s] = now;
      const f = this.flags[s];
      if (!(f & F_ESTABLISHED) && ((f & F_INIT_IS_A) !== 0) !== this.srcIsA) this.flags[s] = f | F_ESTABLISHED;
      return;
    }
    // Full around the slot: give way to the oldest flow that never saw a
    // reply, so spoofed SYNs cannot lock new flows out; established ones stay.
    const free = this.freeSlot >= 0 ? this.freeSlot : this.victim;
    if (free < 0) {
      this.overflows++;
      return;
    }
    if (this.flags[free] & F_USED) this.evictions++;
    else this.used++;
    this.keys.set(this.key, free * KEY_WORDS);
    this.flags[free] = F_USED | (this.srcIsA ? F_INIT_IS_A : 0);
    this.lastSeen[free] = now;
  }

  /** classify() then record(), for a packet known to be accepted. */
  observe(d: DecodedBatch, i: number, clock: Float64Array): number {
    const state = this.classify(d, i, clock);
    this.record(d, i, clock);
    return state;
  }

  /**
   * Builds the canonical key of packet i in this.key and finds its slot
   * (-1 if absent); leaves the first reusable slot in this.freeSlot.
   */
  private locate(d: DecodedBatch, i: number, now: number): number {
    const k = this.key;
    const src = d.src;
    const dst = d.dst;
    const w = i * 4;
    const ports = hasPorts(d.proto[i]) && !(d.frag[i] & FragBits.NonFirst);
    const sp = ports ? d.sport[i] : 0;
    const dp = ports ? d.dport[i] : 0;
    // Canonical order: the lower (address, port) endpoint is A.
    let srcIsA = sp <= dp;
    for (let j = 0; j < 4; j++) {
      if (src[w + j] !== dst[w + j]) {
        srcIsA = src[w + j] < dst[w + j];
        break;
      }
    }
    this.srcIsA = srcIsA;
    k[0] = (d.family[i] << 8) | d.proto[i];
    for (let j = 0; j < 4; j++) {
      k[1 + j] = srcIsA ? src[w + j] : dst[w + j];
      k[5 + j] = srcIsA ? dst[w + j] : src[w + j];
    }
    k[9] = srcIsA ? ((sp << 16) | dp) >>> 0 : ((dp << 16) | sp) >>> 0;

    let h = 2166136261;
    for (let j = 0; j < KEY_WORDS; j++) h = Math.imul(h ^ k[j], 16777619);
    h ^= h >>> 15;
    this.freeSlot = -1;
    this.victim = -1;
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
      if (!(f & F_ESTABLISHED) && (this.victim < 0 || this.lastSeen[s] < this.lastSeen[this.victim])) this.victim = s;
    }
    return -1;
  }

  private sameKey(s: number): boolean {
    const base = s * KEY_WORDS;
    const k = this.key;
    for (let j = 0; j < KEY_WORDS; j++) if (this.keys[base + j] !== k[j]) return false;
    return true;
  }
}
