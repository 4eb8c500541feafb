// Packets the kernel sent toward the queue that nfips never verdicted. Under
// fail-open the kernel passes queue overflow (and everything while no nfips
// is bound) uninspected and counts it nowhere: not in queue_dropped, not in
// user_dropped. The only measure is the NFQUEUE rule's own counter minus what
// nfips received minus what still waits in the queue. Under fail-closed the
// same difference was dropped. This keeps the running total across chain
// rewrites (a repaired chain's counter starts from 0), raises a rate-limited
// event while it grows, and gives `status` the share.
import { Family } from '../exec/tools';
import { EventLog } from '../log/event-log';

/** Events at most this often while packets keep failing; the counts in between are summed. */
export const FAIL_EVENT_INTERVAL_MS = 10_000;

export interface FailOpenOptions {
  failClosed: boolean;
  log: Pick<EventLog, 'event'>;
  /** Packets nfips has received, all queues, since start. */
  received: () => number;
  /** Packets waiting in the kernel queues now (sent to nfips or not, not yet verdicted). */
  waiting: () => number;
  clock?: () => number;
  eventIntervalMs?: number;
}

export interface UnverdictedStatus {
  /** Packets the NFQUEUE rules counted since start (across chain rewrites). */
  queue_rule_packets: number;
  received: number;
  waiting: number;
  /** Never verdicted: passed uninspected (fail-open) or dropped (fail-closed). */
  packets: number;
  /** packets / queue_rule_packets. */
  share: number;
  meaning: 'passed uninspected' | 'dropped';
  /** The last minute or so: what the most recent checks saw. */
  recent: { packets: number; queue_rule_packets: number; share: number; seconds: number };
  /** When the counters were last read (the watchdog reads them every check), null before the first. */
  as_of: string | null;
}

interface Sample {
  at: number;
  queued: number;
  unverdicted: number;
}

const RECENT_MS = 60_000;

export class FailOpenMonitor {
  readonly #o: FailOpenOptions;
  readonly #now: () => number;
  readonly #every: number;
  /** Per family: the counter last read, and what earlier counters (before a reset) had reached. */
  readonly #counter = new Map<Family, { last: number; base: number }>();
  /** High-water mark: reads race with packets in flight, so the estimate may dip; it never really does. */
  #unverdicted = 0;
  #samples: Sample[] = [];
  #pending = 0;
  /** When the packets not yet reported began to fail, and the rule counter then. */
  #pendingSince: { at: number; queued: number } | null = null;
  #lastEventAt: number | null = null;
  #lastReceived = 0;
  #lastWaiting = 0;

  constructor(o: FailOpenOptions) {
    this.#o = o;
    this.#now = o.clock ?? Date.now;
    this.#every = o.eventIntervalMs ?? FAIL_EVENT_INTERVAL_MS;
  }

  /** Packets the NFQUEUE rules counted since start, all families. */
  get queued(): number {
    let n = 0;
    for (const c of this.#counter.values()) n += c.base + c.last;
    return n;
  }

  /**
   * The watchdog rewrote this family's queueing chain: its counter starts
   * again from 0, even if by the next reading it has passed the old value.
   */
  chainRewritten(family: Family): void {
    const c = this.#counter.get(family);
    if (!c) return;
    c.base += c.last;
    c.last = 0;
  }

  /**
   * Takes the NFQUEUE rule counters just read (null: that family's chain is
   * missing, its count so far is kept and a new chain starts from 0; absent:
   * not read this time, nothing changes), then the received and
   * waiting counts, in that order: a packet counted by the rule is by then
   * received, waiting, or never verdicted.
   */
  observe(queued: Partial<Record<Family, number | null>>): void {
    for (const [family, value] of Object.entries(queued) as [Family, number | null][]) {
      const c = this.#counter.get(family) ?? { last: 0, base: 0 };
      if (value === null) {
        // Gone: whatever it had counted stays in the total; a new chain starts from 0.
        c.base += c.last;
        c.last = 0;
      } else {
        if (value < c.last) c.base += c.last;
        c.last = value;
      }
      this.#counter.set(family, c);
    }
    const now = this.#now();
    const total = this.queued;
    const received = this.#o.received();
    const waiting = this.#o.waiting();
    this.#lastReceived = received;
    this.#lastWaiting = waiting;
    const estimate = Math.max(0, total - received - waiting);
    const grew = estimate - this.#unverdicted;
    if (grew > 0) {
      // They failed since the previous check.
      const prev = this.#samples.at(-1);
      this.#pendingSince ??= { at: prev?.at ?? now, queued: prev?.queued ?? 0 };
      this.#unverdicted = estimate;
      this.#pending += grew;
    }
    this.#samples.push({ at: now, queued: total, unverdicted: this.#unverdicted });
    this.#samples = this.#samples.filter((s) => now - s.at <= RECENT_MS);
    if (this.#pending > 0 && (this.#lastEventAt === null || now - this.#lastEventAt >= this.#every)) this.#emit(now);
  }

  #emit(now: number): void {
    const packets = this.#pending;
    const queued = Math.max(packets, this.queued - (this.#pendingSince?.queued ?? 0));
    const fields = {
      packets,
      queue_rule_packets: queued,
      share: round(packets / queued),
      since: new Date(this.#pendingSince?.at ?? now).toISOString(),
      total: this.#unverdicted,
      total_share: round(this.#unverdicted / Math.max(1, this.queued)),
    };
    if (this.#o.failClosed) this.#o.log.event('fail_closed', { ...fields, meaning: 'dropped: the queue was full or nobody was bound to it (--fail-closed)' }, 'warn');
    else this.#o.log.event('fail_open', { ...fields, meaning: 'passed uninspected: the queue was full or nobody was bound to it; the filter table still judged them when queueing from mangle' }, 'warn');
    this.#pending = 0;
    this.#pendingSince = null;
    this.#lastEventAt = now;
  }

  status(): UnverdictedStatus {
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    const recentPackets = first && last ? last.unverdicted - first.unverdicted : 0;
    const recentQueued = first && last ? last.queued - first.queued : 0;
    const total = this.queued;
    return {
      queue_rule_packets: total,
      received: this.#lastReceived,
      waiting: this.#lastWaiting,
      packets: this.#unverdicted,
      share: round(this.#unverdicted / Math.max(1, total)),
      meaning: this.#o.failClosed ? 'dropped' : 'passed uninspected',
      recent: {
        packets: recentPackets,
        queue_rule_packets: recentQueued,
        share: round(recentPackets / Math.max(1, recentQueued)),
        seconds: first && last ? Math.round((last.at - first.at) / 1000) : 0,
      },
      as_of: last ? new Date(last.at).toISOString() : null,
    };
  }
}

function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toFixed(4)) : 0;
}
