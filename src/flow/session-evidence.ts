// What each session says about the host that opened it: whether its
// attempt was answered, refused or left hanging, whether its TCP flags
// follow a probable sequence, and whether it stalls without progress.
// Kept beside the session table (same slots, typed arrays only) and fed
// after the verdicts, packet by packet, as sessions are recorded.
//
// Evidence is only ever credited to the side that opened a session and is
// its client: a host that only answered (a server, a victim of spoofed
// SYNs) or that a session was picked up from mid-stream (after a restart)
// is never credited with anything.
import { CLASSES, CompiledFlagModel, CONTEXTS, flagClass, KEPT_SYMBOLS, nextContext, SCORED_SYMBOLS, START_CONTEXT, SYM_ACK, SYM_DATA, SYM_FIN, SYM_NULL, SYM_ODD, SYM_RST, SYM_SYN, SYM_SYNACK, SYMBOLS, symbolOf } from './flag-model';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from '../packet/decoded';
import { isEchoReply, isEchoRequest } from './server-guess';
import { SessionTable } from './session-table';

/** Per-packet evidence bits (engine column), credited to the packet's source unless EV_OWNER_IS_DST. */
export const EV_TCP_FAILED = 1;
/** A UDP datagram toward a server that has not answered the flow yet. */
export const EV_UDP_UNANSWERED = 2;
/** The packet made its session improbable (flag sequence). */
export const EV_ODD = 4;
/** The packet made its session a working one (TCP handshake done, UDP answered): counted per service. */
export const EV_SESSION = 8;
/** The evidence belongs to the packet's destination (a server's RST refusing it). */
export const EV_OWNER_IS_DST = 128;

/** An attempt with no answer after this long has failed. */
export const UNANSWERED_SECONDS = 2;
/** A handshaken TCP session this old in which the server has sent no data yet is stalled... */
export const STALL_SECONDS = 5;
/** ...as long as its client sent something, but less than this... */
export const STALL_MAX_CLIENT_BYTES = 16384;
/** ...and the session is not idle. */
export const STALL_MAX_IDLE_SECONDS = 60;

// Per-session state bits.
const ST_ATTEMPT = 1; // opened by its client: TCP SYN, UDP toward a server, echo request
const ST_ANSWERED = 2; // the other side sent something
const ST_HANDSHAKE = 4; // TCP: the client acknowledged the SYN-ACK
const ST_OUTCOME = 8; // failure counted, or success seen: nothing more to count
const ST_SERVER_DATA = 16; // the server sent payload
const ST_SCORED = 32; // flag sequence scored (TCP opened by SYN or by a probe)
const ST_ODD = 64; // flag sequence found improbable
const ST_CLOSED = 128; // TCP: a FIN or RST was seen
const ST_PROBE = 256; // TCP: opened by a NULL, FIN, XMAS or other odd packet

/** Where swept and evicted sessions' evidence goes (the step's per-source table). */
export interface EvidenceSink {
  /** A failed attempt of the host at words[0..3]: toward server (hash) on proto/port. */
  failure(family: number, words: Uint32Array, proto: number, serverHash: number, serverPort: number): void;
  /** One stalled session of the host at words[0..3], to proto/port. */
  stalled(family: number, words: Uint32Array, proto: number, serverPort: number): void;
}

/** Hash of a server address for the distinct-destination bitmaps. */
export type AddressHasher = (words: Uint32Array, base: number, family: number) => number;

const PENDING_MAX = 1024;

function word(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export class SessionEvidence {
  private readonly st: Uint16Array;
  private readonly ctx: Uint16Array;
  private readonly nsym: Uint8Array;
  private readonly seq: Uint32Array;
  private readonly clientBytes: Uint32Array;
  private model: CompiledFlagModel | null = null;
  /** (context, symbol) counts of scored symbols since the last take: the learning data of the flag model. */
  private readonly seqCounts = new Uint32Array(CONTEXTS * SYMBOLS);
  private readonly touched = new Uint32Array(CONTEXTS * SYMBOLS);
  private nTouched = 0;
  private sessionsScored = 0;
  // Attempts that failed out of band (evicted before their outcome, refused by an ICMP error): credited at the next drain.
  private readonly pendFamily = new Uint8Array(PENDING_MAX);
  private readonly pendWords = new Uint32Array(PENDING_MAX * 4);
  private readonly pendProto = new Uint8Array(PENDING_MAX);
  private readonly pendServer = new Uint32Array(PENDING_MAX);
  private readonly pendPort = new Uint16Array(PENDING_MAX);
  private nPending = 0;
  /** Evicted attempts that found the pending buffer full. */
  pendingLost = 0;
  private readonly scratch = new Uint32Array(4);
  private readonly scratch2 = new Uint32Array(4);
  /** Of the last packet flagged EV_ODD: its sequence, length, and the surprisal that tripped it. */
  oddSeq = 0;
  oddLen = 0;
  oddSurprisal = 0;

  constructor(
    private readonly table: SessionTable,
    private readonly hashAddress: AddressHasher,
  ) {
    const c = table.capacity;
    this.st = new Uint16Array(c);
    this.ctx = new Uint16Array(c);
    this.nsym = new Uint8Array(c);
    this.seq = new Uint32Array(c);
    this.clientBytes = new Uint32Array(c);
    table.onReuse = (slot) => this.reused(slot);
  }

  /** The flag-sequence model to score with; null only counts sequences (learning). */
  setModel(m: CompiledFlagModel | null): void {
    this.model = m;
  }

  /**
   * One recorded packet of the session in `slot`; created: it opened the
   * session. Returns EV_* bits for the packet (0 almost always).
   */
  onPacket(slot: number, created: boolean, fromInitiator: boolean, proto: number, flags: number, icmpType: number, payloadLen: number, nonFirstFragment: boolean, now: number): number {
    // A non-first fragment has no ports: it is keyed apart from its datagram
    // and its direction cannot be told, so it says nothing about anyone.
    if (nonFirstFragment) {
      if (created) this.st[slot] = 0;
      return 0;
    }
    if (created) this.reset(slot, proto, flags, icmpType, payloadLen);
    let st = this.st[slot];
    let ev = 0;
    if (proto === PROTO_TCP) {
      const c = flagClass(flags, payloadLen);
      // A new SYN on the 4-tuple of a finished exchange is a new attempt.
      // (Retransmitted SYNs of an attempt still open do not: one connect is one attempt.)
      if (!created && fromInitiator && c === SYM_SYN && st & ST_CLOSED) {
        this.reset(slot, proto, flags, icmpType, payloadLen);
        st = this.st[slot];
      }
      if (st & ST_SCORED) ev |= this.score(slot, fromInitiator, flags, payloadLen);
      if (c === SYM_FIN || c === SYM_RST) this.st[slot] |= ST_CLOSED;
      if (fromInitiator) {
        if (payloadLen > 0) this.clientBytes[slot] = Math.min(0xffffffff, this.clientBytes[slot] + payloadLen);
        if ((st & (ST_ATTEMPT | ST_OUTCOME | ST_ANSWERED)) === (ST_ATTEMPT | ST_ANSWERED)) {
          if (c === SYM_RST) {
            // It gave up on a handshake the server had answered (nmap -sS, hping3 -S).
            this.st[slot] |= ST_OUTCOME;
            ev |= EV_TCP_FAILED;
          } else if (c === SYM_ACK || c === SYM_DATA) {
            this.st[slot] |= ST_HANDSHAKE | ST_OUTCOME;
            ev |= EV_SESSION;
          }
        }
      } else {
        let s = this.st[slot] | ST_ANSWERED;
        if (payloadLen > 0) s |= ST_SERVER_DATA;
        if ((st & (ST_ATTEMPT | ST_OUTCOME)) === ST_ATTEMPT) {
          if (c === SYM_RST) {
            s |= ST_OUTCOME;
            ev |= EV_TCP_FAILED | EV_OWNER_IS_DST;
          } else if (c !== SYM_SYNACK) {
            // Anything but a SYN-ACK or RST to a SYN: no attempt to judge.
            s |= ST_OUTCOME;
          }
        }
        this.st[slot] = s;
      }
    } else if (proto === PROTO_UDP) {
      if (fromInitiator) {
        // Datagrams into a flow still unanswered 2 s after it began: a client's
        // first query is not evidence, a one-flow flood soon is.
        if ((st & (ST_ATTEMPT | ST_ANSWERED)) === ST_ATTEMPT && now - this.table.firstSeenAt(slot) >= UNANSWERED_SECONDS) ev |= EV_UDP_UNANSWERED;
      } else {
        this.st[slot] |= ST_ANSWERED | ST_OUTCOME;
      }
    } else if (proto === PROTO_ICMP || proto === PROTO_ICMPV6) {
      if (!fromInitiator && isEchoReply(proto, icmpType)) this.st[slot] |= ST_ANSWERED | ST_OUTCOME;
    }
    return ev;
  }

  /**
   * An ICMP/ICMPv6 error at bytes[at..end) (its ICMP header) quoting an
   * attempt still waiting, sent by the side that opened it. Destination
   * unreachable: the attempt has failed (a closed UDP port, a host or a
   * filter refusing). Time exceeded: a router answered it (traceroute's
   * probes are answered, not failed). Off-path spoofing would have to guess
   * a pending attempt's addresses and ports exactly.
   */
  onIcmpError(bytes: Uint8Array, at: number, end: number, family: number, now: number, unreachable: boolean): void {
    const q = at + 8;
    const src = this.scratch;
    const dst = this.scratch2;
    let proto: number;
    let l4: number;
    if (family === 4) {
      if (q + 20 > end || bytes[q] >> 4 !== 4) return;
      const ihl = (bytes[q] & 0x0f) * 4;
      // A quoted non-first fragment has no ports to find its session by.
      if (ihl < 20 || ((bytes[q + 6] << 8) | bytes[q + 7]) & 0x1fff) return;
      proto = bytes[q + 9];
      src.fill(0);
      dst.fill(0);
      src[0] = word(bytes, q + 12);
      dst[0] = word(bytes, q + 16);
      l4 = q + ihl;
    } else {
      if (q + 40 > end || bytes[q] >> 4 !== 6) return;
      proto = bytes[q + 6];
      for (let j = 0; j < 4; j++) {
        src[j] = word(bytes, q + 8 + 4 * j);
        dst[j] = word(bytes, q + 24 + 4 * j);
      }
      l4 = q + 40;
    }
    if ((proto !== PROTO_TCP && proto !== PROTO_UDP) || l4 + 4 > end) return;
    const sport = (bytes[l4] << 8) | bytes[l4 + 1];
    const dport = (bytes[l4 + 2] << 8) | bytes[l4 + 3];
    const t = this.table;
    const slot = t.lookup(family, proto, src, dst, sport, dport, now);
    if (slot < 0 || t.lookedUpFromA !== t.initiatorIsA(slot)) return;
    const b = this.st[slot];
    if ((b & (ST_ATTEMPT | ST_OUTCOME)) !== ST_ATTEMPT) return;
    this.st[slot] = b | ST_OUTCOME | ST_ANSWERED;
    if (unreachable) this.pend(slot);
  }

  /**
   * Credits what time has decided: attempts unanswered for
   * UNANSWERED_SECONDS have failed; stalled sessions are counted (as a
   * level, at each sweep). Also drains evicted attempts. Runs once per step
   * on the queue thread, after the verdicts.
   */
  sweep(now: number, sink: EvidenceSink): void {
    this.drain(sink);
    const t = this.table;
    const st = this.st;
    const w = this.scratch;
    for (let s = 0; s < st.length; s++) {
      const b = st[s];
      if (b === 0 || !t.isUsed(s)) continue;
      if ((b & (ST_ATTEMPT | ST_OUTCOME)) === ST_ATTEMPT) {
        if (now - t.firstSeenAt(s) < UNANSWERED_SECONDS) continue;
        st[s] = b | ST_OUTCOME;
        this.credit(s, sink);
      } else if ((b & (ST_HANDSHAKE | ST_SERVER_DATA | ST_CLOSED)) === ST_HANDSHAKE) {
        const bytes = this.clientBytes[s];
        if (bytes === 0 || bytes >= STALL_MAX_CLIENT_BYTES) continue;
        if (now - t.firstSeenAt(s) < STALL_SECONDS || now - t.lastSeenAt(s) > STALL_MAX_IDLE_SECONDS) continue;
        const port = t.endpointAt(s, false, this.scratch2);
        t.endpointAt(s, true, w);
        sink.stalled(t.familyAt(s), w, t.protoAt(s), port);
      }
    }
  }

  /** Credits the evicted attempts held since the last drain. */
  drain(sink: EvidenceSink): void {
    for (let k = 0; k < this.nPending; k++) {
      const w = this.scratch;
      for (let j = 0; j < 4; j++) w[j] = this.pendWords[k * 4 + j];
      sink.failure(this.pendFamily[k], w, this.pendProto[k], this.pendServer[k], this.pendPort[k]);
    }
    this.nPending = 0;
  }

  /**
   * The (context, symbol) counts since the last call, sparse, and the
   * sessions scored: the flag model's training data. Resets them.
   */
  takeSequenceCounts(): { index: Uint32Array; count: Uint32Array; sessions: number } {
    const n = this.nTouched;
    const index = this.touched.slice(0, n);
    const count = new Uint32Array(n);
    for (let k = 0; k < n; k++) {
      count[k] = this.seqCounts[index[k]];
      this.seqCounts[index[k]] = 0;
    }
    this.nTouched = 0;
    const sessions = this.sessionsScored;
    this.sessionsScored = 0;
    return { index, count, sessions };
  }

  private reset(slot: number, proto: number, flags: number, icmpType: number, payloadLen: number): void {
    const t = this.table;
    let st = 0;
    if (proto === PROTO_TCP) {
      const c = flagClass(flags, payloadLen);
      // Only sessions seen from their first packet are judged: one picked up
      // mid-stream (after a restart or an eviction) proves nothing.
      if (c === SYM_SYN || c === SYM_NULL || c === SYM_ODD) {
        st |= ST_SCORED;
        this.sessionsScored++;
        if (c === SYM_SYN && t.initiatorIsClient(slot)) st |= ST_ATTEMPT;
        // A first packet with no ACK and no SYN is nobody's answer: its sender probes, whatever its ports.
        if (c !== SYM_SYN) st |= ST_PROBE;
      }
    } else if (proto === PROTO_UDP) {
      if (t.initiatorIsClient(slot)) st |= ST_ATTEMPT;
    } else if ((proto === PROTO_ICMP || proto === PROTO_ICMPV6) && isEchoRequest(proto, icmpType)) {
      st |= ST_ATTEMPT;
    }
    this.st[slot] = st;
    this.ctx[slot] = START_CONTEXT;
    this.nsym[slot] = 0;
    this.seq[slot] = 0;
    this.clientBytes[slot] = 0;
  }

  private score(slot: number, fromInitiator: boolean, flags: number, payloadLen: number): number {
    const k = this.nsym[slot];
    const m = this.model;
    if (k >= SCORED_SYMBOLS) return 0;
    const sym = symbolOf(flags, payloadLen, fromInitiator);
    const ctx = this.ctx[slot];
    const idx = ctx * SYMBOLS + sym;
    if (this.seqCounts[idx]++ === 0) this.touched[this.nTouched++] = idx;
    if (k < KEPT_SYMBOLS) this.seq[slot] |= sym << (4 * k);
    this.nsym[slot] = k + 1;
    this.ctx[slot] = nextContext(ctx, sym);
    // Only what the opener sends can make it improbable (a server's odd
    // answer is the server's doing), and only a flag combination no TCP
    // stack sends in the course of things (NULL, FIN without ACK, XMAS...):
    // ordinary flags in an unusual order (a RST close, a retransmitted
    // SYN-ACK, a server that speaks first) are habits no training traffic
    // covers completely, and never a reason to block anyone.
    if (!m || !fromInitiator || this.st[slot] & ST_ODD) return 0;
    const cls = sym % CLASSES;
    if (cls !== SYM_NULL && cls !== SYM_ODD) return 0;
    const surprisal = m.surprisal[idx];
    if (!(surprisal > m.threshold)) return 0;
    // An attempt whose handshake never completed (SYN then RST, SYN then
    // nothing) is judged by its outcome, as a failed attempt: counting it
    // here too would make one refused connection two pieces of evidence.
    const st = this.st[slot];
    if ((st & (ST_ATTEMPT | ST_HANDSHAKE)) === ST_ATTEMPT) return 0;
    this.st[slot] = st | ST_ODD;
    // Credited to whoever opened it: its client, or a prober whatever its ports (see the header).
    if (!(st & ST_PROBE) && !this.table.initiatorIsClient(slot)) return 0;
    this.oddSeq = this.seq[slot];
    this.oddLen = k + 1;
    this.oddSurprisal = surprisal;
    return EV_ODD;
  }

  /** An attempt still waiting for its outcome is about to be overwritten: it failed. */
  private reused(slot: number): void {
    const b = this.st[slot];
    this.st[slot] = 0;
    if ((b & (ST_ATTEMPT | ST_OUTCOME)) !== ST_ATTEMPT) return;
    this.pend(slot);
  }

  /** Holds the failure of the attempt in `slot` until the next drain (its addresses may be overwritten before). */
  private pend(slot: number): void {
    if (this.nPending >= PENDING_MAX) {
      this.pendingLost++;
      return;
    }
    const k = this.nPending++;
    const t = this.table;
    const w = this.scratch;
    this.pendPort[k] = t.endpointAt(slot, false, w);
    const fam = t.familyAt(slot);
    this.pendServer[k] = this.hashAddress(w, 0, fam);
    t.endpointAt(slot, true, w);
    for (let j = 0; j < 4; j++) this.pendWords[k * 4 + j] = w[j];
    this.pendFamily[k] = fam;
    this.pendProto[k] = t.protoAt(slot);
  }

  private credit(slot: number, sink: EvidenceSink): void {
    const t = this.table;
    const w = this.scratch;
    const fam = t.familyAt(slot);
    const port = t.endpointAt(slot, false, w);
    const server = this.hashAddress(w, 0, fam);
    t.endpointAt(slot, true, w);
    sink.failure(fam, w, t.protoAt(slot), server, port);
  }
}
