// The Local API's decisions nfips knows of, by id, and what they ask of the
// block table: one source block per network, lasting as long as the longest
// live decision on it. Several decisions may name one network (two
// scenarios, a manual one on top); deleting one leaves the others in force.
// Pure: time comes in as an argument.
import { BlockTarget, targetKey } from '../blocks/block';
import { ownScenarioOf } from './alert';
import { Decision, mapDecision, StreamAnswer } from './decision';

export interface KnownDecision {
  id: number;
  key: string;
  target: BlockTarget;
  /** Epoch ms. */
  until: number;
  scenario: string;
  origin: string;
}

/** What the block table should hold for one network. */
export interface WantedBlock {
  key: string;
  target: BlockTarget;
  expiresAt: number;
  scenario: string;
  ids: number[];
}

export interface DecisionChanges {
  upsert: WantedBlock[];
  /** Networks no live decision names any more. */
  remove: string[];
  skipped: { decision: Decision; reason: string }[];
  /** Decisions this nfips published itself, coming back. */
  own: number;
  /**
   * Own decisions this answer shows deleted at the Local API well before
   * their known end (cscli decisions delete), each also recorded in
   * deletions() to be acted on. Only decisions seen live in an earlier
   * answer (or remembered from before a restart): 1.4.6 names an expired
   * decision in `deleted` just as a deleted one.
   */
  ownDeleted: OwnDeletion[];
}

export interface OwnDeletion {
  id: number;
  /** Canonical, as the decision's value. */
  net: string;
  /** nfips/<slug>, without the machine id (as alert.ts scenarioFor writes it). */
  scenario: string;
  /** Epoch ms: when the decision ended at the Local API (as its stream entry tells). */
  deletedAt: number;
}

/** What this gateway knows of one of its own decisions; persisted across restarts (queue-file.ts). */
export interface OwnDecision {
  net: string;
  scenario: string;
  until: number;
  /** Epoch ms of the first answer naming it: it cannot have been deleted before. */
  seenAt: number;
}

/**
 * An operator's deletion of this gateway's decisions of one network and
 * scenario, as the gateway still acts on it: lifting here the blocks placed
 * before it (withdrawing their queued alerts), and deleting again the
 * decisions that alerts of those blocks create after it. An alert posted
 * between the deletion and the answer that shows it cannot be taken back:
 * without this watch it would ban the user again at every gateway.
 */
export interface OwnDeletionRecord {
  net: string;
  scenario: string;
  /**
   * Epoch ms, the latest deletion (a lower bound), an operator's or `blocks
   * del`'s: blocks of the scenario placed from then on are the attacker
   * back, and alerts of blocks before it are not to be sent.
   */
  deletedAt: number;
  /**
   * Epoch ms: the local lift still to do, of the blocks placed before this
   * operator deletion (null: none). Deferred while another own decision
   * lives on the network, or retried after a failed kernel delete. Never
   * moved by `blocks del`, which lifts its own block.
   */
  liftBefore: number | null;
  /** Epoch ms of the answer that first named it: own decisions of the scenario first seen from then on are watched (0: all, for `blocks del`). */
  since: number;
  /** False once a late decision was kept (a block came after the deletion): later ones are right too. */
  watching: boolean;
  /**
   * Epoch ms: the watch ends with the first answer asked at or after it (an
   * outage or a restart does not end it unseen); held while a late decision
   * is known and its delete fails.
   */
  watchUntil: number;
}

/** A restored watch lasts at most this long from the restart (a damaged file must not keep a record for ever). */
const WATCH_RESTORE_MAX_MS = 7 * 86_400_000;

/** How long late decisions of a deleted scenario are watched for (an alert queued or in flight lands within this). */
export const DELETION_WATCH_MS = 10 * 60_000;
/** Deletions kept (lift pending or watched); the oldest go first. */
const DELETIONS_MAX = 10_000;

/** An own decision ending this close to its known end is taken as expired, not deleted. */
const OWN_END_SLACK_MS = 5000;
/** Own decision ids already handled (deleted or expired): 1.4.6 names them again in later answers. */
const OWN_GONE_MAX = 10_000;

/** Own decisions kept across a restart: live ones at most this many (the latest ending), gone ids as OWN_GONE_MAX. */
export const OWN_KEEP_MAX = 10_000;

/** The own-decision knowledge that must survive a restart, or expired decisions would pass for deleted ones. */
export interface OwnMemory {
  /** The machine id the decisions were published as: another one's memory says nothing about this one's. */
  machine?: string;
  live: (OwnDecision & { id: number })[];
  gone: number[];
  /** Absent in files of earlier versions. */
  deletions?: OwnDeletionRecord[];
  /** Own decision ids this gateway sent a DELETE for without an answer yet (a lost answer must not pass for an operator's deletion later). */
  deleting?: number[];
}

export class DecisionSet {
  readonly #byId = new Map<number, KnownDecision>();
  readonly #byKey = new Map<string, Set<number>>();
  /** Own decisions by id (never blocks here). */
  readonly #own = new Map<number, OwnDecision>();
  /** Own decision ids by network: per-network questions are asked for every deletion at every pull. */
  readonly #ownByNet = new Map<string, Set<number>>();
  /** Own decision ids seen ending (in insertion order, bounded): a repeat lifts nothing. */
  readonly #ownGone = new Set<number>();
  /** Own decision ids this gateway is deleting now: an answer naming them deleted meanwhile shows its own delete. */
  readonly #ownDeleting = new Set<number>();
  /** By "<net> <scenario>", oldest first. */
  readonly #deletions = new Map<string, OwnDeletionRecord>();

  /** Set when the own-decision knowledge changed since the last ownMemory(). */
  #ownDirty = false;

  get ownDirty(): boolean {
    return this.#ownDirty;
  }

  /** Own-decision knowledge to persist (clears ownDirty). */
  ownMemory(): OwnMemory {
    this.#ownDirty = false;
    const live = [...this.#own].map(([id, o]) => ({ id, ...o }));
    live.sort((a, b) => a.until - b.until);
    return { live: live.slice(-OWN_KEEP_MAX), gone: [...this.#ownGone], deletions: [...this.#deletions.values()].map((d) => ({ ...d })), deleting: [...this.#ownDeleting] };
  }

  /** Restores what ownMemory() gave before a restart; entries already ended are kept as gone. */
  restoreOwn(m: OwnMemory, now: number): void {
    for (const id of m.gone) this.#markGone(id);
    for (const o of m.live) {
      if (this.#ownGone.has(o.id)) continue;
      // A first sighting from the future (a clock stepped back) would move a deletion's time after blocks placed since.
      this.#setOwn(o.id, { net: o.net, scenario: o.scenario, until: o.until, seenAt: Math.min(o.seenAt, now) });
    }
    // Times from the future are taken as now by deletions(); the watch's end is bounded here.
    for (const id of m.deleting ?? []) if (this.#own.has(id)) this.#ownDeleting.add(id);
    for (const d of m.deletions ?? []) this.#mergeDeletion({ net: d.net, scenario: d.scenario, deletedAt: d.deletedAt, liftBefore: d.liftBefore, since: d.since, watching: d.watching, watchUntil: Math.min(d.watchUntil, now + WATCH_RESTORE_MAX_MS) });
    // Ended while nfips was away: named in `deleted` later, they expired.
    this.#prune(now);
    this.#ownDirty = false;
  }

  get size(): number {
    return this.#byId.size;
  }

  /** The live decisions on a network (for `blocks del`). */
  idsFor(key: string): number[] {
    return [...(this.#byKey.get(key) ?? [])];
  }

  /** This gateway's own live decisions on a network (canonical, as the decision's value), of one scenario (nfips/<slug>) or all. */
  ownIdsFor(net: string, scenario?: string): number[] {
    return [...(this.#ownByNet.get(net) ?? [])].filter((id) => scenario === undefined || this.#own.get(id)?.scenario === scenario);
  }

  /**
   * Deletions still acted on (see OwnDeletionRecord), oldest first. A time
   * later than `now` (the clock stepped back since) is taken as now.
   */
  deletions(now: number): readonly OwnDeletionRecord[] {
    for (const d of this.#deletions.values()) {
      d.deletedAt = Math.min(d.deletedAt, now);
      if (d.liftBefore !== null) d.liftBefore = Math.min(d.liftBefore, now);
      d.since = Math.min(d.since, now);
    }
    return [...this.#deletions.values()];
  }

  /**
   * `blocks del` of a published block deleted its decisions: what alerts of
   * that network and scenario already on their way create is deleted again,
   * as after an operator's deletion (nothing left to lift: the command lifts).
   */
  watch(net: string, scenario: string, now: number): void {
    this.#mergeDeletion({ net, scenario, deletedAt: now, liftBefore: null, since: 0, watching: true, watchUntil: now + DELETION_WATCH_MS });
  }

  /** Forgets the deletions whose work is done, once the answer asked at `now` has been acted on. */
  settled(now: number): void {
    for (const [key, d] of [...this.#deletions]) {
      if (d.liftBefore !== null || (d.watching && d.watchUntil > now)) continue;
      this.#deletions.delete(key);
      this.#ownDirty = true;
    }
  }

  /** The lift of a deletion is done, or there is nothing left to lift (its watch goes on). */
  lifted(d: OwnDeletionRecord): void {
    d.liftBefore = null;
    this.#ownDirty = true;
  }

  /** The watch of a deletion ends (a block came after it: the attacker is back, later decisions are right). */
  endWatch(d: OwnDeletionRecord): void {
    d.watching = false;
    this.#ownDirty = true;
  }

  /** A late decision's delete failed: the watch lasts at least as long as the late decisions, so it is retried until they go. */
  holdWatch(d: OwnDeletionRecord, ids: readonly number[]): void {
    for (const id of ids) d.watchUntil = Math.max(d.watchUntil, this.#own.get(id)?.until ?? 0);
    this.#ownDirty = true;
  }

  /** Own live decisions of a deletion's network and scenario first seen since the answer that named it. */
  lateIds(d: OwnDeletionRecord): number[] {
    if (!d.watching) return [];
    return this.ownIdsFor(d.net, d.scenario).filter((id) => (this.#own.get(id)?.seenAt ?? -1) >= d.since);
  }

  /**
   * Takes one stream answer (asked for with dedup=false: every decision, not
   * only the longest per IP). A startup answer is the whole truth about
   * other decisions: what it does not name is gone. An own decision counts
   * as deleted only when an answer names it in `deleted`, never for being
   * missing. `isOwn` tells decisions this nfips published. `now` is when the
   * answer was asked for, `fetchMs` how long it took to come.
   */
  apply(a: StreamAnswer, now: number, startup: boolean, isOwn: (d: Decision) => boolean = () => false, fetchMs = 0): DecisionChanges {
    const touched = new Set<string>();
    const ownBefore = new Map(this.#own);
    if (startup) {
      for (const key of this.#byKey.keys()) touched.add(key);
      this.#byId.clear();
      this.#byKey.clear();
      if (this.#own.size) this.#ownDirty = true;
      this.#own.clear();
      this.#ownByNet.clear();
    }
    const ownDeleted: OwnDeletion[] = [];
    // 1.4.6 repeats deletions in later answers; dropping an unknown id is a no-op.
    for (const d of a.deleted) {
      const k = this.#drop(d.id);
      if (k !== null) touched.add(k);
      const known = ownBefore.get(d.id);
      if (this.#deleteOwn(d.id)) this.#ownDirty = true;
      if (!isOwn(d) || this.#ownGone.has(d.id)) continue;
      this.#markGone(d.id);
      if (this.#ownDeleting.delete(d.id)) continue;
      // Never seen live (a restart without memory of it, an id long gone, or
      // one deleted before any pull saw it): whether it was deleted or simply
      // expired cannot be told, and a false lift frees an attacker. Not lifted.
      if (!known) continue;
      const m = mapDecision(d);
      if (m.kind === 'skip') continue;
      // A deleted decision's remaining time is minus the time since it ended (1.4.6); it cannot have ended before it was seen.
      // The Local API counted it somewhere between asking and the answer: deletedAt is the earliest it can be.
      const deletedAt = Math.max(Math.min(now, now + d.remainingMs), known.seenAt);
      // Known and ending at its known end (the earliest it can be, against the latest the end can be): it expired, and its block with it.
      if (known.until - (deletedAt + fetchMs) <= OWN_END_SLACK_MS) continue;
      const del = { id: d.id, net: m.target.net, scenario: ownScenarioOf(d.scenario), deletedAt };
      ownDeleted.push(del);
      this.#recordDeletion(del, now);
    }
    const skipped: DecisionChanges['skipped'] = [];
    let own = 0;
    for (const d of a.new) {
      if (d.remainingMs <= 0) continue;
      const m = mapDecision(d);
      if (m.kind === 'skip') {
        skipped.push({ decision: d, reason: m.reason });
        continue;
      }
      if (isOwn(d)) {
        own++;
        if (!this.#ownGone.has(d.id)) {
          const before = ownBefore.get(d.id);
          const until = now + d.remainingMs;
          // Only a new id or a changed end is worth a write (remaining time shrinks each answer; the end does not move).
          if (!before || Math.abs(before.until - until) > OWN_END_SLACK_MS) this.#ownDirty = true;
          this.#setOwn(d.id, { net: m.target.net, scenario: ownScenarioOf(d.scenario), until, seenAt: before?.seenAt ?? now });
        }
        continue;
      }
      const key = targetKey(m.target);
      this.#drop(d.id);
      this.#byId.set(d.id, { id: d.id, key, target: m.target, until: now + d.remainingMs, scenario: d.scenario, origin: d.origin });
      let ids = this.#byKey.get(key);
      if (!ids) this.#byKey.set(key, (ids = new Set()));
      ids.add(d.id);
      touched.add(key);
    }
    this.#prune(now);
    const upsert: WantedBlock[] = [];
    const remove: string[] = [];
    for (const key of touched) {
      const w = this.wanted(key);
      if (w) upsert.push(w);
      else remove.push(key);
    }
    return { upsert, remove, skipped, own, ownDeleted };
  }

  /** The block the live decisions on a network ask for, or null. */
  wanted(key: string): WantedBlock | null {
    const ids = this.#byKey.get(key);
    if (!ids || ids.size === 0) return null;
    let best: KnownDecision | null = null;
    for (const id of ids) {
      const d = this.#byId.get(id) as KnownDecision;
      if (best === null || d.until > best.until) best = d;
    }
    const b = best as KnownDecision;
    return { key, target: b.target, expiresAt: b.until, scenario: b.scenario, ids: [...ids] };
  }

  /** The block of every network with a live decision. */
  *allWanted(): IterableIterator<WantedBlock> {
    for (const key of this.#byKey.keys()) {
      const w = this.wanted(key);
      if (w) yield w;
    }
  }

  /**
   * Marks own decisions as being deleted by this gateway; returns those not
   * marked already (what an unmark may take back: another delete of the same
   * id may be under way). A mark ends with the decision (deleted, forgotten
   * or run out), or by unmark.
   */
  markDeleting(ids: readonly number[]): number[] {
    const added = ids.filter((id) => this.#own.has(id) && !this.#ownDeleting.has(id));
    for (const id of added) this.#ownDeleting.add(id);
    if (added.length) this.#ownDirty = true;
    return added;
  }

  unmarkDeleting(ids: readonly number[]): void {
    for (const id of ids) if (this.#ownDeleting.delete(id)) this.#ownDirty = true;
  }

  /** An anomaly block placed here: one of a deleted scenario placed after the deletion is the attacker back (its decision is right). */
  placed(net: string, scenario: string, createdAt: number): void {
    const d = this.#deletions.get(`${net} ${scenario}`);
    if (d && d.watching && createdAt >= d.deletedAt) this.endWatch(d);
  }

  /** Forgets one decision (own ones too); returns its network, or null if it was not a CrowdSec block's. */
  forget(id: number): string | null {
    // Deleted by this gateway: its echo in the next answer must lift nothing more.
    this.#ownDeleting.delete(id);
    if (this.#deleteOwn(id)) this.#markGone(id);
    return this.#drop(id);
  }

  #drop(id: number): string | null {
    const d = this.#byId.get(id);
    if (!d) return null;
    this.#byId.delete(id);
    const ids = this.#byKey.get(d.key);
    ids?.delete(id);
    if (ids && ids.size === 0) this.#byKey.delete(d.key);
    return d.key;
  }

  /** Decisions that ran out end with their block (the table sweeps it). */
  #prune(now: number): void {
    for (const d of [...this.#byId.values()]) if (d.until <= now) this.#drop(d.id);
    for (const [id, o] of [...this.#own]) {
      if (o.until > now) continue;
      this.#deleteOwn(id);
      this.#ownDeleting.delete(id);
      // Named in `deleted` later, it ended on its own: nothing to lift.
      this.#markGone(id);
    }
  }

  #recordDeletion(del: OwnDeletion, now: number): void {
    this.#mergeDeletion({ net: del.net, scenario: del.scenario, deletedAt: del.deletedAt, liftBefore: del.deletedAt, since: now, watching: true, watchUntil: now + DELETION_WATCH_MS });
  }

  #setOwn(id: number, o: OwnDecision): void {
    const was = this.#own.get(id);
    if (was && was.net !== o.net) this.#deleteOwn(id);
    this.#own.set(id, o);
    let ids = this.#ownByNet.get(o.net);
    if (!ids) this.#ownByNet.set(o.net, (ids = new Set()));
    ids.add(id);
  }

  #deleteOwn(id: number): boolean {
    const o = this.#own.get(id);
    if (!o) return false;
    this.#own.delete(id);
    const ids = this.#ownByNet.get(o.net);
    ids?.delete(id);
    if (ids?.size === 0) this.#ownByNet.delete(o.net);
    return true;
  }

  /** A later deletion of the same network and scenario covers the blocks placed before it too; the watch covers both. */
  #mergeDeletion(d: OwnDeletionRecord): void {
    const key = `${d.net} ${d.scenario}`;
    const was = this.#deletions.get(key);
    this.#deletions.delete(key);
    const lifts = [d.liftBefore, was?.liftBefore ?? null].filter((x): x is number => x !== null);
    this.#deletions.set(key, {
      net: d.net,
      scenario: d.scenario,
      deletedAt: Math.max(d.deletedAt, was?.deletedAt ?? -Infinity),
      // Only operator deletions bound the lift: a `blocks del` after one must not reach blocks placed between them.
      liftBefore: lifts.length ? Math.max(...lifts) : null,
      since: Math.min(d.since, was?.since ?? Infinity),
      // A new deletion watches again (an earlier kept decision was of the attacker back before it).
      watching: d.watching,
      watchUntil: Math.max(d.watchUntil, was?.watchUntil ?? 0),
    });
    if (this.#deletions.size > DELETIONS_MAX) {
      // The oldest other one whose lift is done goes first: one still to lift has alerts to withdraw and blocks to free.
      let victim: string | null = null;
      for (const [k, x] of this.#deletions) {
        if (k === key) continue;
        victim ??= k;
        if (x.liftBefore === null) {
          victim = k;
          break;
        }
      }
      if (victim !== null) this.#deletions.delete(victim);
    }
    this.#ownDirty = true;
  }

  #markGone(id: number): void {
    this.#ownDirty = true;
    this.#ownGone.add(id);
    if (this.#ownGone.size > OWN_GONE_MAX) this.#ownGone.delete(this.#ownGone.values().next().value as number);
  }
}
