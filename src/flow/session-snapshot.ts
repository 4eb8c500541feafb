// A copy of the live sessions' raw columns, for `nfips sessions`. The queue
// thread only copies numbers into a buffer the main thread lent it (no
// objects, no strings, at most `limit` sessions) and hands it back; the
// main thread makes the rows. Packets wait while the copy runs, so it must
// stay a short loop whatever the table holds.
import { SESSION_KEY_WORDS as KEY_WORDS, SessionTable } from './session-table';

/** Rows `nfips sessions` asks for without --limit. */
export const DEFAULT_SESSIONS_LIMIT = 1000;
/**
 * Most sessions one request may ask of a queue thread: a run's session
 * table holds 65,536 (FLOW_CAPACITY in src/app/run.ts), and each thread gets
 * a buffer this size, so more would only cost memory (about 5.6 MiB a thread here).
 */
export const MAX_SESSIONS_LIMIT = 1 << 16;

/** Bytes a snapshot of `limit` sessions takes (sessionSnapshotBuffer). */
export function snapshotBytes(limit: number): number {
  // Float64 columns first so every view is aligned: 6 numbers, 10 key words, flags and ended.
  return limit * (6 * 8 + KEY_WORDS * 4 + 2);
}

/** Views of a snapshot buffer holding up to `limit` sessions. */
export class SessionSnapshot {
  readonly firstSeen: Float64Array;
  readonly lastSeen: Float64Array;
  readonly packetsAB: Float64Array;
  readonly packetsBA: Float64Array;
  readonly bytesAB: Float64Array;
  readonly bytesBA: Float64Array;
  readonly keys: Uint32Array;
  readonly flags: Uint8Array;
  /** 1: its end was reported already (closed, waiting for late packets). */
  readonly ended: Uint8Array;

  constructor(
    readonly buffer: ArrayBuffer,
    readonly limit: number,
  ) {
    let at = 0;
    const f64 = () => {
      const v = new Float64Array(buffer, at, limit);
      at += limit * 8;
      return v;
    };
    this.firstSeen = f64();
    this.lastSeen = f64();
    this.packetsAB = f64();
    this.packetsBA = f64();
    this.bytesAB = f64();
    this.bytesBA = f64();
    this.keys = new Uint32Array(buffer, at, limit * KEY_WORDS);
    at += limit * KEY_WORDS * 4;
    this.flags = new Uint8Array(buffer, at, limit);
    this.ended = new Uint8Array(buffer, at + limit, limit);
  }
}

/** How many sessions were copied, and how many were live in all. */
export interface SnapshotCount {
  copied: number;
  total: number;
}

/**
 * Copies the first `out.limit` live sessions at `now` into `out` and counts
 * every live one. One pass over the slots with a few typed-array reads
 * each; nothing is allocated.
 */
export function copyLiveSessions(t: SessionTable, now: number, out: SessionSnapshot): SnapshotCount {
  let n = 0;
  let total = 0;
  const limit = out.limit;
  for (let slot = 0; slot < t.capacity; slot++) {
    if (!t.isLive(slot, now)) continue;
    total++;
    if (n >= limit) continue;
    t.copyKey(slot, out.keys, n * KEY_WORDS);
    out.flags[n] = t.flagsAt(slot);
    out.ended[n] = t.isEnded(slot) ? 1 : 0;
    out.firstSeen[n] = t.firstSeenAt(slot);
    out.lastSeen[n] = t.lastSeenAt(slot);
    out.packetsAB[n] = t.packetsABAt(slot);
    out.packetsBA[n] = t.packetsBAAt(slot);
    out.bytesAB[n] = t.bytesABAt(slot);
    out.bytesBA[n] = t.bytesBAAt(slot);
    n++;
  }
  return { copied: n, total };
}
