// Decides a whole batch: lockdown, then the rules, then the default policy.
// Runs on the queue thread for every batch; process() allocates nothing.
import { SessionTable } from '../flow/session-table';
import { SessionEvidence } from '../flow/session-evidence';
import { CompiledFlagModel } from '../flow/flag-model';
import { hashAddress } from '../features/hash';
import { decodeBatch } from '../packet/decode';
import { createDecodedBatch, DecodedBatch, DecodeStatus, FragBits, PROTO_ICMP, PROTO_ICMPV6 } from '../packet/decoded';
import { guessFromPacket } from '../flow/server-guess';
import { MetaColumns, NF_ACCEPT, NF_DROP, NF_REPEAT } from '../batch/layout';
import { CompiledMatcher } from '../rules/compile';
import { hasPorts, MatchInput } from '../rules/linear';
import { applyMark, MarkSpec } from './mark';
import { HiddenGuard, MalformedPolicy, UNTRUSTED_ACCEPT } from './hidden-guard';
import { RuleEventBuffer } from './rule-events';
import { ACT_ACCEPT, ACT_ALERT, ACT_DROP, ACT_REJECT, RuleSnapshot } from './rule-snapshot';

export { ACT_ACCEPT, ACT_ALERT, ACT_DROP, ACT_REJECT } from './rule-snapshot';

export type VerdictMode = 'repeat' | 'accept';
/** enforce: verdicts as decided; log: a dry run, every drop and reject is logged as would-drop/would-reject and accepted. */
export type RulesMode = 'enforce' | 'log';
export const RULES_MODES: readonly RulesMode[] = ['enforce', 'log'];

export const ENGINE_COUNTERS = ['accepted', 'dropped', 'rejected', 'alerts', 'malformed', 'lockDrops', 'defaultAccepted', 'defaultDropped', 'ruleMatched', 'bytes', 'flowOverflows', 'evasionDrops', 'dryRunPassed', 'flowEvictions', 'flowsLogged', 'flowsSuppressed'] as const;
export type EngineCounterName = (typeof ENGINE_COUNTERS)[number];
const C_ACCEPTED = 0;
const C_DROPPED = 1;
const C_REJECTED = 2;
const C_ALERTS = 3;
const C_MALFORMED = 4;
const C_LOCK = 5;
const C_DEF_ACCEPT = 6;
const C_DEF_DROP = 7;
const C_RULE = 8;
const C_BYTES = 9;
const C_FLOW_OVERFLOW = 10;
const C_EVASION_DROPS = 11;
const C_DRY_RUN_PASSED = 12;
/** Written by the pipeline's flow records (batch-pipeline.ts), after the verdicts. */
export const C_FLOW_EVICTIONS = 13;
export const C_FLOWS_LOGGED = 14;
export const C_FLOWS_SUPPRESSED = 15;

/** Event codes only (--rules-mode log): what the verdict would have been. */
export const ACT_WOULD_DROP = 4;
export const ACT_WOULD_REJECT = 5;
/** Rule index of events about lock drops (-1 is the default policy). */
export const LOCK_RULE = -2;

export interface EngineOptions {
  mode: VerdictMode;
  mark: MarkSpec;
  /** Second mark bit for reject: a REJECT rule in the NFIPS chain catches it. */
  rejectMark: MarkSpec;
  /** Drop/alert events per rule per second before suppression. */
  eventsPerSecond: number;
  flowCapacity: number;
  /**
   * What to do with packets whose transport header is hidden. The policy
   * compiled into the rule snapshot (compileRuleSet's malformed) is the one
   * applied; when given here it must be the same, or setRules throws.
   */
  malformed?: MalformedPolicy;
  /** 'enforce' when absent. */
  rulesMode?: RulesMode;
}

/** Per-rule packets then bytes, shared with the main thread for `rules stats`. */
export function ruleCounterBytes(ruleCount: number): number {
  return (ruleCount * 2 + 2) * 8;
}

/** The rule set in force: views of a RuleSnapshot, swapped whole between batches. */
interface ActiveRules {
  version: number;
  lock: boolean;
  defaultAccepts: boolean;
  matcher: CompiledMatcher;
  actions: Uint8Array;
  /** 1 where the rule's drop/reject/accept events are logged (the rule's `log`). */
  logs: Uint8Array;
  /** [packets per rule..., bytes per rule..., default packets, default bytes] */
  counters: Float64Array;
  usesState: boolean;
}

export class VerdictEngine {
  readonly decoded: DecodedBatch;
  readonly events: RuleEventBuffer;
  /** Per packet: its session's packet count after it (1: it opened the session), 0 when not recorded. */
  readonly sessionPackets: Uint32Array;
  /**
   * Per packet: 1 when the features should see it. As in 2columnS, packets
   * an explicit rule dropped or rejected (and lockdown drops) are already
   * handled and are left out; default-policy decisions are analysed.
   */
  readonly analysed: Uint8Array;
  /** Per packet: 1 when it went to the server side (from its session, else guessed from the packet alone). */
  readonly toServer: Uint8Array;
  readonly sessions: SessionTable;
  /** What sessions say about the hosts that open them (answered, refused, improbable, stalled). */
  readonly evidence: SessionEvidence;
  /** Per packet: EV_* bits from the session evidence (0 when nothing). */
  readonly evBits: Uint8Array;
  /** Per packet with EV_ODD: the session's first symbols, their number, and the surprisal that tripped it. */
  readonly oddSeq: Uint32Array;
  readonly oddLen: Uint8Array;
  readonly oddSurprisal: Float32Array;
  /** Per packet: accepted (sessions are recorded only for those). */
  private readonly accepted: Uint8Array;
  private active!: ActiveRules;
  private readonly input: MatchInput;
  private readonly flowState: Uint8Array;
  private readonly acceptVerdict: number;
  private readonly rejectMarkSpec: MarkSpec;
  private readonly repeat: boolean;
  private readonly dryRun: boolean;
  private readonly hidden: HiddenGuard;
  /** Seconds, for flow idle times and event rate limits. */
  private readonly clock = new Float64Array(1);
  /** The packet buffer of the batch being decided (ICMP errors are read again after the verdicts). */
  private packets: Uint8Array = new Uint8Array(0);

  constructor(
    capacity: number,
    private meta: MetaColumns,
    rules: RuleSnapshot,
    rulesVersion: number,
    ruleCounters: SharedArrayBuffer | ArrayBuffer,
    private readonly opts: EngineOptions,
    /** Engine counters, in ENGINE_COUNTERS order (often a shared array). */
    private readonly counters: Float64Array,
  ) {
    this.decoded = createDecodedBatch(capacity);
    this.flowState = new Uint8Array(capacity);
    this.sessions = new SessionTable(opts.flowCapacity);
    this.evidence = new SessionEvidence(this.sessions, hashAddress);
    this.evBits = new Uint8Array(capacity);
    this.oddSeq = new Uint32Array(capacity);
    this.oddLen = new Uint8Array(capacity);
    this.oddSurprisal = new Float32Array(capacity);
    this.sessionPackets = new Uint32Array(capacity);
    this.analysed = new Uint8Array(capacity);
    this.toServer = new Uint8Array(capacity);
    this.accepted = new Uint8Array(capacity);
    this.input = { d: this.decoded, inIfindex: meta.inIfindex, outIfindex: meta.outIfindex, hook: meta.hook, flowState: this.flowState };
    this.acceptVerdict = opts.mode === 'repeat' ? NF_REPEAT : NF_ACCEPT;
    this.repeat = opts.mode === 'repeat';
    this.dryRun = opts.rulesMode === 'log';
    // A rejected packet re-enters with both bits, so it also skips the queue.
    this.rejectMarkSpec = { value: opts.mark.value | opts.rejectMark.value, mask: opts.mark.mask | opts.rejectMark.mask };
    this.events = new RuleEventBuffer(capacity, opts.eventsPerSecond, this.clock);
    this.hidden = new HiddenGuard();
    this.events.attach(this.decoded, meta);
    this.setRules(rules, rulesVersion, ruleCounters);
  }

  /**
   * Reads later batches from other columns (offline: the next pcap file's
   * reader), keeping the session table and everything else.
   */
  setMeta(meta: MetaColumns): void {
    this.meta = meta;
    this.input.inIfindex = meta.inIfindex;
    this.input.outIfindex = meta.outIfindex;
    this.input.hook = meta.hook;
    this.events.attach(this.decoded, meta);
  }

  /**
   * Swaps the rule set between two batches; a batch never sees a mix. The
   * snapshot was compiled on the main thread (rule-snapshot.ts): this only
   * builds views of it, in time that does not grow with the rule count
   * (apart from zeroing the per-rule event buckets).
   */
  setRules(rules: RuleSnapshot, version: number, ruleCounters: SharedArrayBuffer | ArrayBuffer): void {
    const counters = new Float64Array(ruleCounters);
    if (counters.length < rules.ruleCount * 2 + 2) throw new RangeError('rule counter buffer too small');
    // The guard follows the policy the snapshot was compiled for; a different one asked of the engine is a bug upstream.
    if (this.opts.malformed !== undefined && this.opts.malformed !== rules.guard.policy) throw new Error(`rule set compiled for --malformed ${rules.guard.policy}, engine set to ${this.opts.malformed}`);
    this.active = {
      version,
      lock: rules.lock,
      defaultAccepts: rules.defaultAccepts,
      matcher: new CompiledMatcher(rules.matcher),
      actions: rules.actions,
      logs: rules.logs,
      counters,
      usesState: rules.usesState,
    };
    this.events.reset(rules.ruleCount);
    this.hidden.setRules(rules.guard);
  }

  /** The flag-sequence model sessions are scored with (null: sequences are only counted). */
  setFlagModel(m: CompiledFlagModel | null): void {
    this.evidence.setModel(m);
  }

  get rulesVersion(): number {
    return this.active.version;
  }

  /** Seconds of the last packet decided or recorded. */
  get now(): number {
    return this.clock[0];
  }


  /**
   * Decides n packets. Time is each packet's timestamp from the native side
   * (or the capture), kept in a typed array: Date.now() and double arguments
   * are boxed on every call, and the data path must not allocate. Counters
   * are summed in locals and written once per batch (they are often in
   * shared memory). With `from`, only packets from..n-1 are decided: the
   * rest of a batch that grew while open; earlier packets keep their state.
   */
  process(n: number, packets: Uint8Array, from = 0): void {
    this.packets = packets;
    this.clock[0] = this.meta.tsSec[from] + this.meta.tsNsec[from] * 1e-9;
    const d = this.decoded;
    const a = this.active;
    const meta = this.meta;
    const rc = a.counters;
    const nRules = a.actions.length;
    decodeBatch(packets, meta.offset, meta.capLen, n, d, from);
    const usesState = a.usesState;
    // Resolved once per rule set, when it was compiled (rule-snapshot.ts).
    const locked = a.lock;
    const defaultAction = a.defaultAccepts ? ACT_ACCEPT : ACT_DROP;
    const analysed = this.analysed;
    const accepted = this.accepted;
    const tsSec = meta.tsSec;
    const tsNsec = meta.tsNsec;
    const overflowsBefore = this.sessions.overflows;
    const verdict = meta.verdict;
    const vmark = meta.verdictMark;
    const marks = meta.mark;
    const origLen = meta.origLen;
    const repeat = this.repeat;
    const dryRun = this.dryRun;
    const logs = a.logs;
    let nAccepted = 0;
    let nDropped = 0;
    let nRejected = 0;
    let nAlerts = 0;
    let nMalformed = 0;
    let nRule = 0;
    let nDefAccept = 0;
    let nDefDrop = 0;
    let nEvasion = 0;
    let nDryRun = 0;
    let bytes = 0;
    let defPackets = 0;
    let defBytes = 0;
    for (let i = from; i < n; i++) {
      const len = origLen[i];
      bytes += len;
      this.clock[0] = tsSec[i] + tsNsec[i] * 1e-9;
      let action = ACT_ACCEPT;
      let decided = -1;
      let hiddenBy = -1;
      if (locked) {
        action = ACT_DROP;
      } else {
        if (d.status[i] !== DecodeStatus.Ok) {
          nMalformed++;
          this.flowState[i] = 0;
        } else if (d.hidden[i] !== 0) {
          // A fragment that may rewrite its transport header must not create
          // or advance a flow on the strength of that header.
          this.flowState[i] = 0;
        } else if (usesState) {
          // Classified just before its own match, so a reply later in the
          // same batch sees the flow its request created.
          this.flowState[i] = this.sessions.classify(d, i, this.clock);
        }
        // Packets with a broken transport header still meet the rules that
        // need none (addresses, interfaces...); see firstMismatch.
        let r = a.matcher.match(this.input, i, 0);
        while (r >= 0 && a.actions[r] === ACT_ALERT) {
          rc[r]++;
          rc[nRules + r] += len;
          nAlerts++;
          this.events.record(r, ACT_ALERT, i);
          r = a.matcher.match(this.input, i, r + 1);
        }
        if (d.hidden[i] !== 0) hiddenBy = this.hidden.overrules(this.input, i, r);
        if (hiddenBy >= 0 || hiddenBy === UNTRUSTED_ACCEPT) {
          // The accept would rest on headers nfips could not read (hidden-guard.ts).
          action = ACT_DROP;
          nEvasion++;
        } else if (r >= 0) {
          decided = r;
          action = a.actions[r];
          rc[r]++;
          rc[nRules + r] += len;
          nRule++;
        } else {
          action = defaultAction;
          defPackets++;
          defBytes += len;
          if (action === ACT_ACCEPT) nDefAccept++;
          else nDefDrop++;
        }
      }
      analysed[i] = decided < 0 && !locked ? 1 : 0;
      accepted[i] = 0;
      if (action === ACT_ACCEPT || dryRun) {
        if (action === ACT_ACCEPT) {
          nAccepted++;
          if (decided >= 0 && logs[decided] === 1) this.events.record(decided, ACT_ACCEPT, i);
        } else {
          // Dry run: the counters say what would have happened, the event
          // says it was not done, and the packet passes like an accepted one.
          // Every would-drop is logged, whatever the rule's `log`: seeing
          // them is the point of a dry run.
          if (action === ACT_REJECT) nRejected++;
          else nDropped++;
          nDryRun++;
          const by = locked ? LOCK_RULE : hiddenBy >= 0 ? hiddenBy : decided;
          this.events.record(by, action === ACT_REJECT ? ACT_WOULD_REJECT : ACT_WOULD_DROP, i, hiddenBy !== -1 ? d.hidden[i] : 0);
        }
        verdict[i] = this.acceptVerdict;
        vmark[i] = repeat ? applyMark(marks[i], this.opts.mark) : marks[i];
        analysed[i] = 1;
        accepted[i] = 1;
        // A state rule needs the session now: a reply later in this batch
        // must see the flow its request created. A hidden header makes none.
        if (usesState && d.hidden[i] === 0) this.recordSession(d, i, len);
      } else if (action === ACT_REJECT) {
        verdict[i] = NF_REPEAT;
        vmark[i] = applyMark(marks[i], this.rejectMarkSpec);
        nRejected++;
        if (logs[decided] === 1) this.events.record(decided, ACT_REJECT, i);
      } else {
        verdict[i] = NF_DROP;
        nDropped++;
        if (hiddenBy !== -1) this.events.record(hiddenBy >= 0 ? hiddenBy : -1, ACT_DROP, i, d.hidden[i]);
        else if (!locked && (decided < 0 || logs[decided] === 1)) this.events.record(decided, ACT_DROP, i);
      }
    }
    if (defPackets !== 0) {
      rc[2 * nRules] += defPackets;
      rc[2 * nRules + 1] += defBytes;
    }
    const c = this.counters;
    c[C_BYTES] += bytes;
    if (locked) c[C_LOCK] += n - from;
    if (nAccepted !== 0) c[C_ACCEPTED] += nAccepted;
    if (nDropped !== 0) c[C_DROPPED] += nDropped;
    if (nRejected !== 0) c[C_REJECTED] += nRejected;
    if (nAlerts !== 0) c[C_ALERTS] += nAlerts;
    if (nMalformed !== 0) c[C_MALFORMED] += nMalformed;
    if (nRule !== 0) c[C_RULE] += nRule;
    if (nDefAccept !== 0) c[C_DEF_ACCEPT] += nDefAccept;
    if (nDefDrop !== 0) c[C_DEF_DROP] += nDefDrop;
    if (nEvasion !== 0) c[C_EVASION_DROPS] += nEvasion;
    if (nDryRun !== 0) c[C_DRY_RUN_PASSED] += nDryRun;
    const overflows = this.sessions.overflows - overflowsBefore;
    if (overflows !== 0) c[C_FLOW_OVERFLOW] += overflows;
  }

  /**
   * Records the batch's accepted packets in the session table for the
   * features, when no rule needed it during the match: called after the
   * verdicts are sent, so the bookkeeping stays off the verdict path.
   * Fills sessionPackets and toServer for every packet either way.
   */
  recordSessions(n: number): void {
    const d = this.decoded;
    const meta = this.meta;
    const inline = this.active.usesState;
    const overflowsBefore = this.sessions.overflows;
    for (let i = 0; i < n; i++) {
      const ok = this.accepted[i] === 1 && d.status[i] === DecodeStatus.Ok && d.hidden[i] === 0;
      const done = inline && ok; // recorded in process()
      if (!done) {
        this.sessionPackets[i] = 0;
        this.evBits[i] = 0;
        if (ok) {
          this.clock[0] = meta.tsSec[i] + meta.tsNsec[i] * 1e-9;
          this.recordSession(d, i, meta.origLen[i]);
        }
      }
      // No session to ask: guess the direction from the packet alone.
      if (this.sessionPackets[i] === 0) this.toServer[i] = guessFromPacket(d.proto[i], d.tcpFlags[i], d.icmpType[i], d.sport[i], d.dport[i], hasPorts(d.proto[i]) && !(d.frag[i] & FragBits.NonFirst)) & 1;
    }
    // Only when there is something to add: the counters are shared memory the main thread reads.
    const overflows = this.sessions.overflows - overflowsBefore;
    if (overflows !== 0) this.counters[C_FLOW_OVERFLOW] += overflows;
  }

  private recordSession(d: DecodedBatch, i: number, len: number): void {
    const t = this.sessions;
    const k = t.record(d, i, this.clock, len);
    this.sessionPackets[i] = k;
    this.toServer[i] = k > 0 && t.lastToServer ? 1 : 0;
    if (k === 0) {
      this.evBits[i] = 0;
      return;
    }
    const ev = this.evidence;
    const proto = d.proto[i];
    const bits = ev.onPacket(t.lastSlot, k === 1, t.lastFromInitiator, proto, d.tcpFlags[i], d.icmpType[i], d.l4PayloadLen[i], (d.frag[i] & FragBits.NonFirst) !== 0, this.clock[0]);
    // An ICMP error decides the attempt it quotes: unreachable fails it, time exceeded answers it.
    const type = d.icmpType[i];
    const unreachable = (proto === PROTO_ICMP && type === 3) || (proto === PROTO_ICMPV6 && type === 1);
    if (unreachable || (proto === PROTO_ICMP && type === 11) || (proto === PROTO_ICMPV6 && type === 3)) {
      const start = this.meta.offset[i];
      ev.onIcmpError(this.packets, start + d.l4Offset[i], start + this.meta.capLen[i], d.family[i], this.clock[0], unreachable);
    }
    this.evBits[i] = bits;
    if (bits !== 0 && ev.oddLen > 0) {
      this.oddSeq[i] = ev.oddSeq;
      this.oddLen[i] = ev.oddLen;
      this.oddSurprisal[i] = ev.oddSurprisal;
      ev.oddLen = 0;
    }
  }
}
