// The bouncer side of the CrowdSec link: pulls the Local API's decision
// stream (a full "startup" pull first and after every outage, then what
// changed, every interval) and hands the changes to the block manager in one
// batch. Runs on timers beside the packet path, never in it. An outage is
// logged once (crowdsec_unreachable) and its end once (crowdsec_restored);
// the local blocks stay in force meanwhile.
import type { Block } from '../blocks/block';
import type { BlockManager, BlockView } from '../blocks/manager';
import { view } from '../blocks/manager';
import type { EventLog } from '../log/event-log';
import { anomalyScenario } from './alert';
import type { Decision, StreamAnswer } from './decision';
import { DecisionSet, OwnDeletionRecord, OwnMemory } from './decision-set';
import { LapiClient } from './lapi-client';

export type LinkState = 'connecting' | 'connected' | 'unreachable';

/** What the link needs of the publisher (publisher.ts), when nfips has machine credentials. */
export interface DecisionAuthority {
  /** A decision this nfips published itself, coming back in the stream. */
  isOwn(d: Decision): boolean;
  /**
   * Deletes decisions at the Local API, in order; resolves with the ids
   * deleted. On a failure part way, throws a DeleteError carrying the ids
   * deleted before it.
   */
  deleteDecisions(ids: readonly number[]): Promise<number[]>;
  /** Drops the queued alerts of a network and scenario (queued before `before`, when given); how many. `saveNow`: on disk before it returns. */
  withdraw(net: string, scenario: string, before?: number, saveNow?: boolean): number;
  /** Whether an alert of this network and scenario is being posted now, and the blocks of those still queued. */
  queued(net: string, scenario: string): { sending: boolean; keys: string[] };
  /** Own-decision knowledge from before a restart (null: none), and keeping it for the next one. */
  rememberedOwn(): OwnMemory | null;
  rememberOwn(m: OwnMemory, saveNow?: boolean): void;
  /** Resolves once the POST in progress (if any) has ended; not the rest of the queue. */
  posted(): Promise<void>;
  /** Starts sending the queue (called once the first pull has settled). */
  start(): void;
  status(): Record<string, unknown>;
}

/** What `blocks del` answers: the block lifted, and what became of it beyond this gateway. */
export type DeletedBlock = BlockView & { note?: string };

export interface LinkOptions {
  client: LapiClient;
  url: string;
  apiKey: string;
  intervalMs: number;
  blocks: BlockManager;
  log: Pick<EventLog, 'event'>;
  publisher: DecisionAuthority | null;
  clock?: () => number;
}

/** First retry after a failure; doubled per failure up to the larger of the interval and this cap. */
const RETRY_FIRST_MS = 1000;
const RETRY_CAP_MS = 30_000;
/** `blocks del` waits for an alert being posted and pulls again at most this many times. */
const DEL_ROUNDS = 3;

/** A delete that failed part way: `deleted` were deleted at the Local API before it. */
export class DeleteError extends Error {
  constructor(
    message: string,
    readonly deleted: readonly number[],
  ) {
    super(message);
    this.name = 'DeleteError';
  }
}

export function retryDelay(failures: number, intervalMs: number): number {
  return Math.min(RETRY_FIRST_MS * 2 ** Math.min(Math.max(failures - 1, 0), 20), Math.max(intervalMs, RETRY_CAP_MS));
}

export class CrowdSecLink {
  readonly #o: LinkOptions;
  readonly #now: () => number;
  readonly #set = new DecisionSet();
  #state: LinkState = 'connecting';
  #needStartup = true;
  #failures = 0;
  #outageSince: number | null = null;
  #lastPullAt: number | null = null;
  #lastError: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Aborted at close(): a pull waiting on a dead Local API must not hold up shutdown. */
  readonly #stop = new AbortController();
  #pulling: Promise<boolean> = Promise.resolve(false);
  /**
   * Wanted networks the block manager refused, why (rules: allowlist and
   * addresses, fixed while nfips runs; cap: --crowdsec-max-decisions) and the
   * decisions then on them: each refusal is logged once, rules refusals are
   * not retried, cap refusals only once a CrowdSec block has left room.
   */
  readonly #refused = new Map<string, { kind: 'rules' | 'cap'; ids: Set<number> }>();
  /** The gateway's addresses when rules refusals were last made: when they change, those refusals are tried again. */
  #ownAddresses: string | null = null;
  readonly counts = { pulls: 0, own_lifted: 0, own_lift_failures: 0, failed_pulls: 0, apply_failures: 0, decisions_applied: 0, decisions_reapplied: 0, decisions_removed: 0, refused: 0, skipped: 0, own: 0, outages: 0 };

  constructor(o: LinkOptions) {
    this.#o = o;
    this.#now = o.clock ?? Date.now;
    // Without it, own decisions that expired while nfips was away would pass for deleted ones in the startup answer.
    const m = o.publisher?.rememberedOwn();
    if (m) this.#set.restoreOwn(m, this.#now());
  }

  get state(): LinkState {
    return this.#state;
  }

  start(): void {
    this.#schedule(0);
  }

  /** One pull now (waits for one in progress first); resolves with whether an answer was applied. */
  pull(): Promise<boolean> {
    // One failed pull must not poison the chain for the next ones.
    this.#pulling = this.#pulling.catch(() => false).then(() => this.#pull());
    return this.#pulling;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#stop.abort();
    await this.#pulling.catch(() => undefined);
  }

  status(): Record<string, unknown> {
    return {
      url: this.#o.url,
      state: this.#state,
      interval_s: this.#o.intervalMs / 1000,
      last_pull: this.#lastPullAt === null ? null : new Date(this.#lastPullAt).toISOString(),
      last_error: this.#lastError,
      unreachable_since: this.#outageSince === null ? null : new Date(this.#outageSince).toISOString(),
      decisions_known: this.#set.size,
      ...this.counts,
      own_lifts_pending: this.#set.deletions(this.#now()).filter((d) => d.liftBefore !== null).length,
      publisher: this.#o.publisher?.status() ?? null,
    };
  }

  /**
   * `nfips blocks del`: a CrowdSec block is deleted at the Local API (so it
   * does not come back in the next pull, and every other gateway lifts it
   * too), which needs machine credentials; other blocks are local.
   */
  async deleteBlock(key: string, reason: string): Promise<DeletedBlock> {
    const b = this.#o.blocks.get(key);
    if (!b) return this.#o.blocks.remove(key, reason);
    if (b.origin === 'anomaly' && this.#o.publisher) return this.#deletePublished(b, reason, this.#o.publisher);
    if (b.origin !== 'crowdsec') return this.#removeLocal(b, reason);
    if (!this.#o.publisher) throw new Error(`${b.key} is a CrowdSec decision (${b.scenario ?? 'unknown scenario'}); deleting it at the Local API needs --crowdsec-machine-id and --crowdsec-password-file, or run "cscli decisions delete --ip ${b.net}" (or --range) where the Local API runs`);
    const ids = this.#set.idsFor(b.key);
    // Answered, and no live decision wants it any more (deleted at the Local
    // API by an earlier attempt whose local lift failed, say): only the local block is left.
    if (!ids.length && this.#lastPullAt !== null && this.#state === 'connected' && this.#set.wanted(b.key) === null) {
      return this.#removeLocal(b, `${reason}: no live CrowdSec decision wants it any more`);
    }
    // Without ids (restored from the state file, no pull yet) nothing could be
    // deleted at the Local API, and the next pull would bring the block back.
    if (!ids.length) throw new Error(`${b.key} is a CrowdSec decision whose id is not known yet (${this.#state === 'connected' ? 'not in the last answer' : 'no answer from the Local API since the start'}); try again once "nfips status" shows crowdsec connected, or run "cscli decisions delete --${b.net.includes('/') ? 'range' : 'ip'} ${b.net}" where the Local API runs`);
    let deleted: readonly number[];
    try {
      deleted = await this.#deleteAtLapi(this.#o.publisher, ids, true);
    } catch (e) {
      const done = e instanceof DeleteError ? e.deleted : [];
      const left = ids.filter((id) => !done.includes(id));
      throw new Error(`${(e as Error).message}; ${done.length ? `decision${done.length === 1 ? '' : 's'} ${done.join(', ')} deleted, ` : 'nothing deleted, '}decision${left.length === 1 ? '' : 's'} ${left.join(', ')} not deleted; the block stays`);
    }
    return this.#removeLocal(b, `${reason}: crowdsec decision${deleted.length === 1 ? '' : 's'} ${deleted.join(', ')} deleted at the Local API`);
  }

  /**
   * An anomaly block this gateway published: its decision (the one of its
   * scenario on its network) is deleted at the Local API too, or the other
   * gateways would keep blocking whom the operator unblocked. Refused, the
   * block staying, when that cannot be done or checked (the Local API down):
   * as for a CrowdSec block, an operator must not believe a user unblocked
   * everywhere who is not.
   */
  async #deletePublished(b: Block, reason: string, pub: DecisionAuthority): Promise<DeletedBlock> {
    const scenario = anomalyScenario(b);
    if (scenario === null) return this.#removeLocal(b, reason);
    // Blocks of the scenario placed from now on are the attacker back; alerts of earlier ones are not to ban anew.
    const asked = this.#now();
    const cscli = `"cscli decisions delete --${b.net.includes('/') ? 'range' : 'ip'} ${b.net}" where the Local API runs`;
    // Wait for a POST in flight, then learn the decision's id from the stream
    // (always pulled when none is known). A retry may start posting the alert
    // during the pull: then wait for it and pull again, a few times at most.
    let ids: number[] = [];
    let pulled = true;
    let q = pub.queued(b.net, scenario);
    for (let round = 0; ; round++) {
      if (q.sending) await pub.posted();
      ids = this.#set.ownIdsFor(b.net, scenario);
      if (!ids.length) {
        pulled = await this.pull().catch(() => false);
        ids = this.#set.ownIdsFor(b.net, scenario);
      }
      q = pub.queued(b.net, scenario);
      if (!q.sending) break;
      if (round === DEL_ROUNDS) throw new Error(`${b.key}: its alert is being posted to the Local API again and again; the block stays. Try again shortly, or run ${cscli}`);
    }
    let note: string;
    if (ids.length) {
      let deleted: readonly number[];
      try {
        deleted = await this.#deleteAtLapi(pub, ids, true);
      } catch (e) {
        const done = e instanceof DeleteError ? e.deleted : [];
        const left = ids.filter((id) => !done.includes(id));
        throw new Error(`${b.key} was published to the Local API and its decision could not be deleted there (${(e as Error).message}); ${done.length ? `decision${done.length === 1 ? '' : 's'} ${done.join(', ')} deleted, ` : ''}decision${left.length === 1 ? '' : 's'} ${left.join(', ')} not; the block stays. Try again once "nfips status" shows crowdsec connected, or run ${cscli}`);
      }
      note = `its crowdsec decision${deleted.length === 1 ? '' : 's'} ${deleted.join(', ')} deleted at the Local API`;
      // The decision banned the whole address: blocks of the scenario on other protocols or ports stay here only.
      const siblings = this.#o.blocks.inForce().filter((x) => x.origin === 'anomaly' && x.net === b.net && x.key !== b.key && anomalyScenario(x) === scenario);
      if (siblings.length) note += `; ${siblings.map((x) => x.key).join(', ')} of the same scenario stay${siblings.length === 1 ? 's' : ''} here but no longer shared (blocks del to lift)`;
    } else if (pulled) {
      note = q.keys.includes(b.key) ? 'its alert had not been sent to the Local API yet: withdrawn' : `no decision of this gateway for ${scenario} on ${b.net} at the Local API`;
    } else if (q.keys.includes(b.key) && !q.sending) {
      note = 'its alert had not been sent to the Local API yet: withdrawn';
    } else {
      throw new Error(`${b.key} may have been published to the Local API, which does not answer (${this.#lastError ?? 'unreachable'}): its decision cannot be deleted there; the block stays. Try again once "nfips status" shows crowdsec connected, or run ${cscli}`);
    }
    // An alert of the scenario that started posting while the decision was being deleted made a new one: deleted again at the next pull.
    this.#set.watch(b.net, scenario, asked);
    this.#remember();
    // Blocks of the scenario placed while this ran are the attacker back: theirs are to be shared.
    // On disk (with the watch) before the answer: an alert that came back after a crash would ban the user again everywhere.
    pub.withdraw(b.net, scenario, asked, true);
    const out = await this.#removeLocal(b, `${reason}: ${note}`);
    return { ...out, note: out.note ? `${out.note}; ${note}` : note };
  }

  /**
   * Acts on operators' deletions of this gateway's decisions (decision-set.ts
   * OwnDeletionRecord), from one snapshot of the block table per pull:
   * first the decisions alerts of earlier blocks created after a deletion
   * are deleted again (they would ban the user everywhere anew), then the
   * blocks placed before it are lifted here.
   */
  async #settleDeletions(pub: DecisionAuthority, now: number): Promise<void> {
    const deletions = this.#set.deletions(now);
    if (!deletions.length) return;
    const byNet = new Map<string, Block[]>();
    for (const b of this.#o.blocks.inForce()) {
      if (b.origin !== 'anomaly') continue;
      const l = byNet.get(b.net);
      if (l) l.push(b);
      else byNet.set(b.net, [b]);
    }
    const blocksOf = deletions.map((d) => (byNet.get(d.net) ?? []).filter((b) => anomalyScenario(b) === d.scenario));
    // Stopping: the rest waits for the next start (the records are kept); a dead Local API must not hold up shutdown.
    for (const [i, d] of deletions.entries()) if (!this.#closed) await this.#bury(pub, d, blocksOf[i] ?? []);
    for (const [i, d] of deletions.entries()) {
      if (this.#closed) break;
      // Every pull while the record lasts: an alert a failed POST put back, or one restored from the queue file, goes too.
      pub.withdraw(d.net, d.scenario, d.deletedAt);
      if (d.liftBefore !== null) await this.#lift(d, d.liftBefore, blocksOf[i] ?? []);
    }
    // Stopping part way: records not worked on this time must not be forgotten.
    if (!this.#closed) this.#set.settled(now);
    this.#remember();
  }

  /**
   * Late decisions of a deleted scenario (first seen since the answer that
   * showed the deletion) come from alerts of blocks placed before it, queued
   * or in flight then: deleted again at the Local API. Not when a block of
   * that scenario was placed here after the deletion: the attacker came
   * back, and the ban is right. A failed delete is retried every pull for
   * as long as those decisions live.
   */
  async #bury(pub: DecisionAuthority, d: OwnDeletionRecord, blocks: readonly Block[]): Promise<void> {
    const ids = this.#set.lateIds(d);
    if (!ids.length) return;
    if (blocks.some((b) => b.createdAt >= d.deletedAt)) {
      this.#set.endWatch(d);
      this.#o.log.event('crowdsec_decision_kept', { src_ip: d.net, scenario: d.scenario, decisions: ids, reason: 'blocked here again after the deletion' });
      return;
    }
    try {
      const done = await this.#deleteAtLapi(pub, ids, false);
      this.#o.log.event('crowdsec_decision_redeleted', { src_ip: d.net, scenario: d.scenario, decisions: done, reason: 'an alert of a block placed before an operator deleted the decision was posted after the deletion' }, 'warn');
    } catch (e) {
      this.#set.holdWatch(d, ids);
      if (this.#closed) return;
      this.#o.log.event('crowdsec_lift_failed', { src_ip: d.net, scenario: d.scenario, decisions: ids, error: (e as Error).message, hint: 'retried at the next pull while the decisions live' }, 'error');
    }
  }

  /**
   * The anomaly blocks of a deleted scenario placed before the deletion are
   * lifted here, and their queued alerts withdrawn (or a re-block made
   * during an outage would ban the user again everywhere). The withdrawal is
   * done at once; the lift waits while another own decision lives on the
   * network (the other gateways ban the whole source anyway). A block placed
   * after the deletion stays: the attacker came back.
   */
  async #lift(d: OwnDeletionRecord, before: number, blocks: readonly Block[]): Promise<void> {
    // The snapshot is of the pull's start and remove() awaits: a block the sweep ended meanwhile is done, not an error,
    // and one placed again under the same key meanwhile (the attacker back) is another block, not this one.
    const due = blocks.filter((b) => b.createdAt < before && this.#o.blocks.get(b.key) === b);
    // Nothing left to lift: done, whatever else lives on the network (the record must not wait on it).
    if (!due.length) return this.#set.lifted(d);
    if (this.#set.ownIdsFor(d.net).length) return;
    let failed = false;
    for (const b of due) {
      if (this.#o.blocks.get(b.key) !== b) continue;
      try {
        await this.#o.blocks.remove(b.key, `its crowdsec decision for ${d.scenario} was deleted at the Local API`);
        this.counts.own_lifted++;
      } catch (e) {
        if (this.#o.blocks.get(b.key) !== b) continue;
        failed = true;
        this.counts.own_lift_failures++;
        this.#o.log.event('crowdsec_lift_failed', { src_ip: b.net, block: b.key, scenario: d.scenario, error: (e as Error).message, hint: 'retried at the next pull' }, 'error');
      }
    }
    if (!failed) this.#set.lifted(d);
  }

  /**
   * Deletes decisions at the Local API and forgets those deleted. For this
   * gateway's own: an answer naming them deleted while the DELETE is under
   * way (a scheduled pull), or after an answer to it was lost (a timeout, a
   * restart), shows this gateway's own doing, not an operator's: it lifts
   * nothing. The mark is on disk before the DELETE goes. `unmarkOnFailure`
   * (blocks del, refused to the operator, who may then use cscli): a later
   * deletion is the operator's.
   */
  async #deleteAtLapi(pub: DecisionAuthority, ids: readonly number[], unmarkOnFailure: boolean): Promise<number[]> {
    const marked = this.#set.markDeleting(ids);
    this.#remember(true);
    try {
      const done = await pub.deleteDecisions(ids);
      for (const id of done) this.#set.forget(id);
      return done;
    } catch (e) {
      for (const id of e instanceof DeleteError ? e.deleted : []) this.#set.forget(id);
      if (unmarkOnFailure) this.#set.unmarkDeleting(marked);
      throw e;
    } finally {
      this.#remember();
    }
  }

  /** Lifts a block here; one the sweep ended meanwhile is already gone, not an error. */
  async #removeLocal(b: Block, reason: string): Promise<DeletedBlock> {
    // Ended during an await (the caller's, or remove()'s), and perhaps placed again since: that is another block.
    const now = this.#o.blocks.get(b.key);
    if (now !== b) return { ...view(b, this.#now()), note: now ? `already expired; ${now.key} was blocked again since (${new Date(now.createdAt).toISOString()}), and that block stays` : 'already expired' };
    try {
      return await this.#o.blocks.remove(b.key, reason);
    } catch (e) {
      if (this.#o.blocks.get(b.key)) throw e;
      return { ...view(b, this.#now()), note: 'already expired' };
    }
  }

  #remember(saveNow = false): void {
    if (this.#o.publisher && this.#set.ownDirty) this.#o.publisher.rememberOwn(this.#set.ownMemory(), saveNow);
  }

  /** An anomaly block placed here (the block manager's onPlaced): after a deletion of its scenario, the attacker is back. */
  placed(b: Block): void {
    const scenario = anomalyScenario(b);
    if (scenario === null) return;
    this.#set.placed(b.net, scenario, b.createdAt);
    this.#remember();
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const next = (): void => {
        // After the first pull, answered or not: alerts left from a previous run must not go out before a
        // deletion made meanwhile is seen (it withdraws them). A late one is still caught (#bury).
        this.#o.publisher?.start();
        this.#schedule(this.#failures ? retryDelay(this.#failures, this.#o.intervalMs) : this.#o.intervalMs);
      };
      // A throw past the fetch (applying, logging) must not end the loop: count it as a failed pull and retry.
      void this.pull().then(next, (e: unknown) => {
        this.#failed(`pull failed: ${(e as Error).message}`);
        next();
      });
    }, ms);
    this.#timer.unref();
  }

  async #pull(): Promise<boolean> {
    if (this.#closed) return false;
    const startup = this.#needStartup;
    const t0 = performance.now();
    // Remaining durations count from when the Local API wrote them: taking the time before the fetch never stretches a block.
    const asked = this.#now();
    let answer;
    try {
      answer = await this.#o.client.stream(this.#o.apiKey, startup, this.#stop.signal);
    } catch (e) {
      if (!this.#closed) this.#failed((e as Error).message);
      return false;
    }
    // An answer arriving after close() is not applied: the block manager may be closing.
    if (this.#closed) return false;
    const t1 = performance.now();
    const now = asked;
    try {
      await this.#apply(answer, now, startup, t0, t1);
    } catch (e) {
      // The Local API answered: this is not an outage. The set may now disagree with the table: resynchronise next time.
      this.#needStartup = true;
      this.counts.apply_failures++;
      this.#lastError = `applying the decisions failed: ${(e as Error).message}`;
      this.#o.log.event('crowdsec_apply_failed', { url: this.#o.url, error: (e as Error).message, startup, hint: 'blocks in force stay; a full resynchronisation at the next pull' }, 'error');
      return false;
    }
    if (this.#state !== 'connected') {
      if (this.#outageSince !== null) this.#o.log.event('crowdsec_restored', { url: this.#o.url, down_s: Math.round((now - this.#outageSince) / 1000), resynchronised: startup }, 'warn');
      else this.#o.log.event('crowdsec_connected', { url: this.#o.url, decisions: this.#set.size });
    }
    this.#state = 'connected';
    this.#outageSince = null;
    this.#failures = 0;
    return true;
  }

  async #apply(answer: StreamAnswer, now: number, startup: boolean, t0: number, t1: number): Promise<void> {
    const pub = this.#o.publisher;
    const changes = this.#set.apply(answer, now, startup, pub ? (d) => pub.isOwn(d) : undefined, t1 - t0);
    this.#remember();
    for (const d of changes.ownDeleted) this.#o.log.event('crowdsec_own_decision_deleted', { src_ip: d.net, scenario: d.scenario, decision: d.id, deleted_at: new Date(d.deletedAt).toISOString(), hint: 'its blocks placed before the deletion are lifted here, and its queued alerts withdrawn' }, 'warn');
    // First, so a CrowdSec decision an anomaly block lifted here shadowed is applied in this same pull.
    if (pub) await this.#settleDeletions(pub, now);
    if (startup) {
      // Blocks of decisions that ended while nfips was away (or down) are not in a startup answer.
      const wanted = new Set(changes.upsert.map((w) => w.key));
      const lifting = new Set(changes.remove);
      for (const b of this.#o.blocks.inForce()) if (b.origin === 'crowdsec' && !wanted.has(b.key) && !lifting.has(b.key)) changes.remove.push(b.key);
    }
    // An address the gateway has given up (DHCP, a moved VIP) no longer protects a decision refused for it.
    const addresses = this.#o.blocks.ownAddressesKey();
    if (addresses !== this.#ownAddresses) {
      for (const [k, r] of [...this.#refused]) if (r.kind === 'rules') this.#refused.delete(k);
      this.#ownAddresses = addresses;
    }
    // A network refused before is not offered again for the same decisions (no new log line per pull).
    const upsert = changes.upsert.filter((w) => {
      const r = this.#refused.get(w.key);
      return !r || w.ids.some((id) => !r.ids.has(id));
    });
    const offered = new Map<string, number[]>();
    const onRefused = (key: string, _reason: string, kind: 'rules' | 'cap'): void => void this.#refused.set(key, { kind, ids: new Set(offered.get(key) ?? []) });
    for (const w of upsert) offered.set(w.key, w.ids);
    const out = await this.#o.blocks.applyExternal(upsert, changes.remove, onRefused);
    for (const w of upsert) if (this.#o.blocks.get(w.key)) this.#refused.delete(w.key);
    for (const k of changes.remove) this.#refused.delete(k);
    // A live decision whose block left the table (a longer local block on it
    // was lifted, a manual del or flush, an ipset failure) is applied again;
    // one refused for the cap only once a CrowdSec block has ended and left room.
    const handled = new Set([...upsert.map((w) => w.key), ...changes.remove]);
    const left: typeof upsert = [];
    const capped: typeof upsert = [];
    for (const w of this.#set.allWanted()) {
      if (handled.has(w.key) || this.#o.blocks.get(w.key)) continue;
      const r = this.#refused.get(w.key);
      if (!r) left.push(w);
      else if (r.kind === 'cap') capped.push(w);
    }
    const again = [...left, ...capped.slice(0, Math.max(0, this.#o.blocks.externalRoom - left.length))];
    for (const w of again) offered.set(w.key, w.ids);
    const re = again.length ? await this.#o.blocks.applyExternal(again, [], onRefused) : null;
    for (const w of again) if (this.#o.blocks.get(w.key)) this.#refused.delete(w.key);
    for (const k of [...this.#refused.keys()]) if (!this.#set.wanted(k)) this.#refused.delete(k);
    const t2 = performance.now();
    this.counts.pulls++;
    this.counts.decisions_applied += out.added + out.updated;
    this.counts.decisions_reapplied += re ? re.added + re.updated : 0;
    this.counts.decisions_removed += out.removed;
    this.counts.refused += out.refused + (re?.refused ?? 0);
    this.counts.skipped += changes.skipped.length;
    this.counts.own += changes.own;
    this.#lastPullAt = now;
    this.#lastError = null;
    this.#needStartup = false;
    for (const s of changes.skipped.slice(0, 20)) this.#o.log.event('crowdsec_decision_skipped', { id: s.decision.id, value: s.decision.value, scope: s.decision.scope, type: s.decision.type, scenario: s.decision.scenario, reason: s.reason });
    const malformed = answer.malformed ?? [];
    this.counts.skipped += malformed.length;
    for (const m of malformed.slice(0, 20)) this.#o.log.event('crowdsec_decision_skipped', { entry: m.where, reason: `unreadable: ${m.reason}` }, 'warn');
    if (startup || answer.new.length || answer.deleted.length) {
      this.#o.log.event('crowdsec_pull', { startup, new: answer.new.length, deleted: answer.deleted.length, own: changes.own, skipped: changes.skipped.length, ...out, ...(re ? { reapplied: re.added + re.updated, reapply_refused: re.refused } : {}), fetch_ms: Math.round(t1 - t0), apply_ms: Math.round(t2 - t1) });
    }
  }

  #failed(error: string): void {
    this.#failures++;
    this.counts.failed_pulls++;
    this.#lastError = error;
    // What changed meanwhile is only known from a full answer.
    this.#needStartup = true;
    if (this.#state === 'unreachable') return;
    this.#state = 'unreachable';
    this.#outageSince = this.#now();
    this.counts.outages++;
    this.#o.log.event('crowdsec_unreachable', { url: this.#o.url, error, hint: 'local blocks stay in force; retrying with backoff, then a full resynchronisation' }, 'error');
  }
}
