// Sessions that ended (closed, idle, evicted, stopped), copied out of the
// session table into columns the moment they end (an evicted or idle one's
// slot is being reused; a closed one's may be after a grace period), and the
// flow records are made from these copies only after the batch's verdicts
// are sent. Bounded, with a per-second budget: a flood of
// short sessions is counted, never queued without end.
import { SESSION_KEY_WORDS as KEY_WORDS, SessionTable } from './session-table';

export const enum EndReason {
  /** TCP: a reset from either side, or a FIN from both. */
  Closed = 0,
  /** Idle past the table's timeout. */
  Timeout = 1,
  /** Pushed out of a full table by a new session. */
  Evicted = 2,
  /** nfips stopped. */
  Shutdown = 3,
}

export class EndedSessions {
  count = 0;
  /** Ends not reported: over the per-second budget, or with the columns full. */
  suppressed = 0;
  readonly capacity: number;
  readonly keys: Uint32Array;
  readonly flags: Uint8Array;
  readonly reason: Uint8Array;
  readonly tcpAB: Uint8Array;
  readonly tcpBA: Uint8Array;
  readonly firstSeen: Float64Array;
  readonly lastSeen: Float64Array;
  /** When it ended: the last packet for a timeout, else the time it was found ended. */
  readonly endTime: Float64Array;
  readonly packetsAB: Float64Array;
  readonly packetsBA: Float64Array;
  readonly bytesAB: Float64Array;
  readonly bytesBA: Float64Array;
  private tokens: number;
  private second = -1;

  /** perSecond: most records a second (the budget); capacity: most held between two drains. */
  constructor(
    capacity: number,
    private readonly perSecond: number,
  ) {
    this.capacity = capacity;
    this.keys = new Uint32Array(capacity * KEY_WORDS);
    this.flags = new Uint8Array(capacity);
    this.reason = new Uint8Array(capacity);
    this.tcpAB = new Uint8Array(capacity);
    this.tcpBA = new Uint8Array(capacity);
    this.firstSeen = new Float64Array(capacity);
    this.lastSeen = new Float64Array(capacity);
    this.endTime = new Float64Array(capacity);
    this.packetsAB = new Float64Array(capacity);
    this.packetsBA = new Float64Array(capacity);
    this.bytesAB = new Float64Array(capacity);
    this.bytesBA = new Float64Array(capacity);
    this.tokens = perSecond;
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  /**
   * Copies the session at `slot`. Returns false only when the columns are
   * full (drain, then try again); a session over the budget is counted in
   * `suppressed` and taken as reported.
   */
  add(t: SessionTable, slot: number, reason: EndReason, endTime: number): boolean {
    if (this.count >= this.capacity) return false;
    // The budget refills per whole second of packet time.
    const sec = Math.floor(endTime);
    if (sec > this.second) {
      this.second = sec;
      this.tokens = this.perSecond;
    }
    if (this.tokens <= 0) {
      this.suppressed++;
      return true;
    }
    this.tokens--;
    const k = this.count++;
    t.copyKey(slot, this.keys, k * KEY_WORDS);
    this.flags[k] = t.flagsAt(slot);
    this.reason[k] = reason;
    this.tcpAB[k] = t.tcpFlagsABAt(slot);
    this.tcpBA[k] = t.tcpFlagsBAAt(slot);
    this.firstSeen[k] = t.firstSeenAt(slot);
    this.lastSeen[k] = t.lastSeenAt(slot);
    this.endTime[k] = endTime;
    this.packetsAB[k] = t.packetsABAt(slot);
    this.packetsBA[k] = t.packetsBAAt(slot);
    this.bytesAB[k] = t.bytesABAt(slot);
    this.bytesBA[k] = t.bytesBAAt(slot);
    return true;
  }

  /**
   * add() for an end that cannot wait for a drain (its slot is being
   * reused, or a packet closed it): with the columns full it is counted in
   * `suppressed`, never lost uncounted.
   */
  addNow(t: SessionTable, slot: number, reason: EndReason, endTime: number): void {
    if (!this.add(t, slot, reason, endTime)) this.suppressed++;
  }
}
