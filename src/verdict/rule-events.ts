// Drop/reject/alert events of one batch, rate-limited per rule with a token
// bucket so a flood cannot fill the disk. Fields are copied into columns at
// record time (the decoded batch is reused); objects are made only for the
// events that pass the limit, after the batch.
import { DecodedBatch, HIDDEN_REASONS } from '../packet/decoded';
import { MetaColumns } from '../batch/layout';
import { formatAddress } from '../rules/address';
import { protocolName } from '../rules/protocols';

export interface RuleEvent {
  rule_index: number;
  /** would-*: --rules-mode log let the packet pass. */
  action: 'accept' | 'drop' | 'reject' | 'alert' | 'would-drop' | 'would-reject';
  proto: string;
  src_ip: string;
  /** TCP, UDP, SCTP and UDP-Lite only (0 when a hidden header kept them out of sight). */
  src_port?: number;
  dest_ip: string;
  dest_port?: number;
  /** ICMP and ICMPv6, when the header was seen (Suricata EVE's names). */
  icmp_type?: number;
  icmp_code?: number;
  in_ifindex: number;
  out_ifindex: number;
  length: number;
  /** Events of this rule held back by the rate limit since the last one reported. */
  suppressed: number;
  /**
   * Set on drops of packets whose transport header was hidden (HIDDEN_REASONS):
   * the rule did not match, it could have, and accepting was refused.
   */
  reason?: (typeof HIDDEN_REASONS)[number];
}

/** Indexed by the engine's ACT_* codes. */
const ACTION_NAMES = ['accept', 'drop', 'reject', 'alert', 'would-drop', 'would-reject'] as const;
/** Protocols with ports: TCP, UDP, SCTP, UDP-Lite. */
const PORT_PROTOS = new Set([6, 17, 132, 136]);
/** decode's "not ICMP" in the icmpType column. */
const NO_ICMP = 0xffff;

export class RuleEventBuffer {
  count = 0;
  private readonly rule: Int32Array;
  private readonly action: Uint8Array;
  private readonly family: Uint8Array;
  private readonly proto: Uint8Array;
  private readonly src: Uint32Array;
  private readonly dst: Uint32Array;
  private readonly sport: Uint16Array;
  private readonly dport: Uint16Array;
  private readonly icmpType: Uint16Array;
  private readonly icmpCode: Uint16Array;
  private readonly inIf: Uint32Array;
  private readonly outIf: Uint32Array;
  private readonly length: Uint32Array;
  private readonly reason: Uint8Array;
  private readonly held: Float64Array;
  private tokens = new Float64Array(1);
  private refilled = new Float64Array(1);
  private suppressed = new Float64Array(1);
  /** Rules of the set in force; the default policy's bucket follows them, then lock's. */
  private rules = 0;
  private decoded: DecodedBatch | null = null;
  private meta: MetaColumns | null = null;

  constructor(
    capacity: number,
    private readonly perSecond: number,
    /** clock[0] = now in seconds, kept by the engine. */
    private readonly clock: Float64Array,
  ) {
    this.rule = new Int32Array(capacity);
    this.action = new Uint8Array(capacity);
    this.family = new Uint8Array(capacity);
    this.proto = new Uint8Array(capacity);
    this.src = new Uint32Array(capacity * 4);
    this.dst = new Uint32Array(capacity * 4);
    this.sport = new Uint16Array(capacity);
    this.dport = new Uint16Array(capacity);
    this.icmpType = new Uint16Array(capacity);
    this.icmpCode = new Uint16Array(capacity);
    this.inIf = new Uint32Array(capacity);
    this.outIf = new Uint32Array(capacity);
    this.length = new Uint32Array(capacity);
    this.reason = new Uint8Array(capacity);
    this.held = new Float64Array(capacity);
  }

  attach(decoded: DecodedBatch, meta: MetaColumns): void {
    this.decoded = decoded;
    this.meta = meta;
  }

  /**
   * One bucket per rule plus one for the default policy (index ruleCount)
   * and one for lock (ruleCount + 1). Called on every rule swap, while the
   * thread's packets wait: the arrays are reused when they are big enough,
   * since allocating 10,000 rules' worth could start a garbage collection.
   * They grow to the next power of two, so a set a little larger than any
   * before does not allocate again.
   */
  reset(ruleCount: number): void {
    const n = ruleCount + 2;
    if (this.tokens.length < n) {
      const room = 2 ** Math.ceil(Math.log2(n));
      this.tokens = new Float64Array(room);
      this.refilled = new Float64Array(room);
      this.suppressed = new Float64Array(room);
    }
    this.tokens.fill(this.perSecond, 0, n);
    this.refilled.fill(0, 0, n);
    this.suppressed.fill(0, 0, n);
    this.rules = ruleCount;
    this.count = 0;
  }

  /** rule = -1 for the default policy, -2 for lock; reason: the packet's Hidden code when that is why it was dropped. */
  record(rule: number, action: number, i: number, reason = 0): void {
    const slot = rule < 0 ? this.rules - 1 - rule : rule;
    const now = this.clock[0];
    const elapsed = now - this.refilled[slot];
    if (elapsed > 0) {
      this.tokens[slot] = Math.min(this.perSecond, this.tokens[slot] + elapsed * this.perSecond);
      this.refilled[slot] = now;
    }
    if (this.tokens[slot] < 1 || this.count >= this.rule.length) {
      this.suppressed[slot]++;
      return;
    }
    this.tokens[slot]--;
    const d = this.decoded!;
    const m = this.meta!;
    const e = this.count++;
    this.rule[e] = rule;
    this.action[e] = action;
    this.family[e] = d.family[i];
    this.proto[e] = d.proto[i];
    for (let k = 0; k < 4; k++) {
      this.src[e * 4 + k] = d.src[i * 4 + k];
      this.dst[e * 4 + k] = d.dst[i * 4 + k];
    }
    this.sport[e] = d.sport[i];
    this.dport[e] = d.dport[i];
    // A hidden header leaves the column as decode reset it (NO_ICMP).
    this.icmpType[e] = d.icmpType[i];
    this.icmpCode[e] = d.icmpCode[i];
    this.inIf[e] = m.inIfindex[i];
    this.outIf[e] = m.outIfindex[i];
    this.length[e] = m.origLen[i];
    this.reason[e] = reason;
    this.held[e] = this.suppressed[slot];
    this.suppressed[slot] = 0;
  }

  /**
   * Forgets the events recorded after the first k, for a part of a batch
   * whose decide threw: its packets got the failure verdict, not the actions
   * recorded. Their rate-limit tokens stay spent.
   */
  truncate(k: number): void {
    if (k < this.count) this.count = k;
  }

  drain(): RuleEvent[] {
    const out: RuleEvent[] = [];
    for (let e = 0; e < this.count; e++) {
      out.push({
        rule_index: this.rule[e],
        action: ACTION_NAMES[this.action[e]],
        proto: protocolName(this.proto[e]),
        src_ip: formatAddress(this.family[e], this.src, e * 4),
        ...(PORT_PROTOS.has(this.proto[e]) ? { src_port: this.sport[e] } : {}),
        dest_ip: formatAddress(this.family[e], this.dst, e * 4),
        ...(PORT_PROTOS.has(this.proto[e]) ? { dest_port: this.dport[e] } : {}),
        ...(this.icmpType[e] !== NO_ICMP ? { icmp_type: this.icmpType[e], icmp_code: this.icmpCode[e] } : {}),
        in_ifindex: this.inIf[e],
        out_ifindex: this.outIf[e],
        length: this.length[e],
        suppressed: this.held[e],
        ...(this.reason[e] !== 0 ? { reason: HIDDEN_REASONS[this.reason[e]] } : {}),
      });
    }
    this.count = 0;
    return out;
  }

}
