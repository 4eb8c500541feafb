// Decides a whole batch: lockdown, then the rules, then the default policy.
// Runs on the queue thread for every batch; no allocation in process().
import { decodeBatch } from '../packet/decode';
import { createDecodedBatch, DecodedBatch, DecodeStatus } from '../packet/decoded';
import { MetaColumns, NF_ACCEPT, NF_DROP, NF_REPEAT } from '../queue/native';
import { LinearMatcher, Matcher } from '../rules/linear';
import { RuleSet } from '../rules/types';
import { applyMark, MarkSpec } from './mark';

export type VerdictMode = 'repeat' | 'accept';

export const ENGINE_COUNTERS = ['accepted', 'dropped', 'malformed', 'lockDrops', 'defaultAccepted', 'defaultDropped', 'ruleMatched', 'bytes'] as const;
export type EngineCounterName = (typeof ENGINE_COUNTERS)[number];
const C_ACCEPTED = 0;
const C_DROPPED = 1;
const C_MALFORMED = 2;
const C_LOCK = 3;
const C_DEF_ACCEPT = 4;
const C_DEF_DROP = 5;
const C_RULE = 6;
const C_BYTES = 7;

interface ActiveRules {
  lock: boolean;
  defaultAccept: boolean;
  matcher: Matcher;
  /** 1 = accept, 0 = drop, per rule index. */
  ruleAccepts: Uint8Array;
  rulePackets: Float64Array;
}

function activate(rs: RuleSet): ActiveRules {
  const ruleAccepts = new Uint8Array(rs.rules.length);
  rs.rules.forEach((r, k) => (ruleAccepts[k] = r.action === 'accept' ? 1 : 0));
  return {
    lock: rs.lock,
    defaultAccept: rs.default === 'accept',
    matcher: new LinearMatcher(rs.rules),
    ruleAccepts,
    rulePackets: new Float64Array(rs.rules.length),
  };
}

export class VerdictEngine {
  readonly decoded: DecodedBatch;
  private active: ActiveRules;
  private readonly acceptVerdict: number;

  constructor(
    capacity: number,
    rules: RuleSet,
    private readonly mode: VerdictMode,
    private readonly mark: MarkSpec,
    /** Engine counters, in ENGINE_COUNTERS order (often a shared array). */
    private readonly counters: Float64Array,
  ) {
    this.decoded = createDecodedBatch(capacity);
    this.active = activate(rules);
    this.acceptVerdict = mode === 'repeat' ? NF_REPEAT : NF_ACCEPT;
  }

  /** Swaps the rule set between two batches; a batch never sees a mix. */
  setRules(rules: RuleSet): void {
    this.active = activate(rules);
  }

  rulePackets(): Float64Array {
    return this.active.rulePackets;
  }

  process(n: number, packets: Uint8Array, meta: MetaColumns): void {
    const d = this.decoded;
    const c = this.counters;
    const a = this.active;
    decodeBatch(packets, meta.offset, meta.capLen, n, d);
    const verdict = meta.verdict;
    const vmark = meta.verdictMark;
    const marks = meta.mark;
    const repeat = this.mode === 'repeat';
    for (let i = 0; i < n; i++) {
      let accept: boolean;
      c[C_BYTES] += meta.origLen[i];
      if (a.lock) {
        accept = false;
        c[C_LOCK]++;
      } else if (d.status[i] !== DecodeStatus.Ok) {
        c[C_MALFORMED]++;
        accept = a.defaultAccept;
      } else {
        const r = a.matcher.match(d, i);
        if (r >= 0) {
          accept = a.ruleAccepts[r] === 1;
          a.rulePackets[r]++;
          c[C_RULE]++;
        } else {
          accept = a.defaultAccept;
          c[accept ? C_DEF_ACCEPT : C_DEF_DROP]++;
        }
      }
      if (accept) {
        verdict[i] = this.acceptVerdict;
        vmark[i] = repeat ? applyMark(marks[i], this.mark) : marks[i];
        c[C_ACCEPTED]++;
      } else {
        verdict[i] = NF_DROP;
        c[C_DROPPED]++;
      }
    }
  }
}
