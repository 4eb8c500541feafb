// The log-processor side: every anomaly block nfips places is sent to the
// Local API as an alert with its decision, so the other gateways (and any
// bouncer on the same Local API) block the attacker too. Alerts wait in a
// bounded queue persisted in the state directory while the Local API is
// away, and go out when it is back. Its own decisions coming back in the
// stream are told by their scenario (alert.ts isOwnDecision), not by a record.
// Runs on timers beside the packet path; enqueue() only records and returns.
import { readdirSync, renameSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { Block, BlockTarget, makeTarget } from '../blocks/block';
import type { SourceResponseMeta } from '../blocks/manager';
import type { Exceeded, SourceFinding } from '../detect/source-tracker';
import { JsonFileError, writeFileAtomic } from '../config/json-file';
import type { EventLog } from '../log/event-log';
import { alertOf, decisionScenario, isOwnDecision, PendingAlert, scenarioFor } from './alert';
import type { Decision } from './decision';
import type { OwnMemory } from './decision-set';
import { LapiClient, LapiError } from './lapi-client';
import type { DecisionAuthority } from './link';
import { DeleteError, retryDelay } from './link';
import { QUEUE_FORMAT, QueueDoc, QueueLoad, readQueueFile } from './queue-file';

export const QUEUE_FILE_NAME = 'crowdsec-queue.json';
/** Alerts kept while the Local API is away; the oldest go first when full. */
export const MAX_PENDING = 1000;
/** Alerts per POST /v1/alerts. */
const BATCH = 50;
/** Answers to POST /v1/alerts that refuse the alerts sent (bad, conflicting, too large), not the link. */
const REFUSED_CONTENT: readonly number[] = [400, 409, 413, 422];
/** Single alerts refused in a row before the refusals are taken as a link failure (back off, keep the queue). */
const REFUSED_IN_A_ROW_MAX = 5;
/** A token this close to its end is renewed before use. */
const RENEW_BEFORE_MS = 60_000;
/** Queued blocks reach the file this soon (close() writes at once). */
const SAVE_DELAY_MS = 200;
/** Unreadable queue files kept aside (timestamped); older ones are deleted. */
const KEEP_BAD_FILES = 3;

export interface PublisherOptions {
  client: LapiClient;
  machineId: string;
  password: string;
  stateDir: string;
  log: Pick<EventLog, 'event'>;
  /** Retries back off from 1 s up to max(this, 30 s). */
  intervalMs: number;
  clock?: () => number;
  /**
   * The block manager's refusal rules (allowlist, own addresses...): what they
   * refuse is not published. Called once per flush for a checker reused over
   * the queue (the gateway's addresses are read once, not per alert).
   */
  refusalChecker?: () => (t: BlockTarget) => string | null;
}

export function evidenceOf(x: Exceeded): string {
  return `${x.measure}${x.service ? `(${x.service})` : ''}=${x.value}/${x.scale} (limit ${x.threshold.value})`;
}

function refusalOf(value: string, check: ((t: BlockTarget) => string | null) | null): string | null {
  let t: BlockTarget;
  try {
    t = makeTarget(value);
  } catch (e) {
    return (e as Error).message;
  }
  return check?.(t) ?? null;
}

export class Publisher implements DecisionAuthority {
  readonly #o: PublisherOptions;
  readonly #now: () => number;
  readonly #file: string;
  #pending: PendingAlert[] = [];
  /** The link's own-decision knowledge, kept in the queue file (see rememberOwn). */
  #own: OwnMemory | null = null;
  /** The batch being posted: a block queued meanwhile gets its own entry, not merged into one about to be removed. */
  #inFlight: ReadonlySet<PendingAlert> = new Set();
  /** Withdrawn while being posted: not queued again however the POST ends (a decision it made is the link's to delete). */
  readonly #withdrawnInFlight = new Set<PendingAlert>();
  #token: { token: string; expiresAt: number } | null = null;
  #flushing: Promise<void> | null = null;
  /** Settles when the POST in progress (if any) has ended: what `blocks del` waits for, not the whole queue. */
  #posting: Promise<void> | null = null;
  /** Off until start(): the link starts it after its first pull, so deletions made while nfips was away are seen before old alerts go. */
  #started = false;
  #timer: NodeJS.Timeout | null = null;
  #saveTimer: NodeJS.Timeout | null = null;
  #failures = 0;
  #lastError: string | null = null;
  #lastPush: number | null = null;
  #closed = false;
  /** Aborted at close(): pushes, logins and deletes waiting on a dead Local API must not hold up shutdown. */
  readonly #stop = new AbortController();
  readonly #deleting = new Set<Promise<unknown>>();
  readonly counts = { published: 0, dropped: 0, rejected: 0, failed_pushes: 0, logins: 0 };
  /** Alerts per POST: BATCH, halved while the Local API refuses one (4xx), back to BATCH once the queue is empty. */
  #batchSize = BATCH;
  /** Single alerts refused in a row (reset by any accepted POST). */
  #refusedInARow = 0;

  constructor(o: PublisherOptions) {
    this.#o = o;
    this.#now = o.clock ?? Date.now;
    this.#file = path.join(o.stateDir, QUEUE_FILE_NAME);
    this.#load();
  }

  get pending(): number {
    return this.#pending.length;
  }

  /** Sends what a previous run left in the queue, and each block from now on. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (this.#pending.length) this.#kick(0);
  }

  /** The block manager's onPlaced hook: records and returns; the push is asynchronous. */
  enqueue(b: Block, f: Pick<SourceFinding, 'exceeded'>, meta: SourceResponseMeta): void {
    const scenario = scenarioFor(meta.signature);
    const same = this.#pending.find((p) => p.value === b.net && p.scenario === scenario && !this.#inFlight.has(p));
    if (same) {
      // Blocks of one episode (tcp and icmp, say) are one ban of the source.
      same.until = Math.max(same.until, b.expiresAt);
      // The latest block's time: an operator's deletion between the two must not withdraw the later one with the earlier.
      same.at = Math.max(same.at, b.createdAt);
      same.key = `${same.key}, ${b.key}`;
    } else {
      this.#pending.push({ value: b.net, scenario, until: b.expiresAt, at: b.createdAt, key: b.key, signature: meta.signature, signatureId: meta.signatureId, episode: meta.episode, evidence: f.exceeded.map(evidenceOf) });
    }
    if (this.#pending.length > MAX_PENDING) {
      const gone = this.#pending.splice(0, this.#pending.length - MAX_PENDING);
      this.counts.dropped += gone.length;
      this.#o.log.event('crowdsec_push_dropped', { count: gone.length, values: gone.map((g) => g.value), reason: `the queue holds at most ${MAX_PENDING} alerts` }, 'warn');
    }
    this.#saveSoon();
    this.#kick(0);
  }

  /** What rememberOwn() was last given, as read back at the start (null: none). */
  rememberedOwn(): OwnMemory | null {
    return this.#own;
  }

  /** Keeps the link's own-decision knowledge in the queue file (written soon, and at close). */
  rememberOwn(m: OwnMemory, saveNow = false): void {
    this.#own = { ...m, machine: this.#o.machineId };
    if (saveNow) this.#save();
    else this.#saveSoon();
  }

  isOwn(d: Decision): boolean {
    return isOwnDecision(d, this.#o.machineId);
  }

  /**
   * Drops the queued alerts of one network and scenario (queued before
   * `before`, when given): `nfips blocks del` of the block, or an operator's
   * deletion of its decision. One being posted cannot be taken back: it is
   * dropped when its POST ends, sent or not (a failed POST must not send it
   * again later); a decision it made is deleted by the link's watch.
   */
  withdraw(net: string, scenario: string, before = Infinity, saveNow = false): number {
    const mine = (p: PendingAlert): boolean => p.value === net && p.scenario === scenario && p.at < before;
    const flying = [...this.#inFlight].filter((p) => mine(p) && !this.#withdrawnInFlight.has(p));
    for (const p of flying) this.#withdrawnInFlight.add(p);
    const gone = this.#pending.filter((p) => mine(p) && !this.#inFlight.has(p));
    if (gone.length) this.#pending = this.#pending.filter((p) => !gone.includes(p));
    // A pull may withdraw for many deletions, and each save writes and syncs the whole file: soon, unless asked
    // (then whatever else changed is written too, withdrawn or not).
    if (saveNow) this.#save();
    else if (gone.length) this.#saveSoon();
    for (const p of [...gone, ...flying]) this.#o.log.event('crowdsec_push_withdrawn', { src_ip: p.value, scenario: p.scenario, block: p.key, ...(flying.includes(p) ? { in_flight: true } : {}) });
    return gone.length + flying.length;
  }

  /** Whether an alert of this network and scenario is being posted now, and the blocks of those still queued. */
  queued(net: string, scenario: string): { sending: boolean; keys: string[] } {
    const mine = (p: PendingAlert): boolean => p.value === net && p.scenario === scenario;
    return { sending: [...this.#inFlight].some(mine), keys: this.#pending.filter((p) => mine(p) && !this.#inFlight.has(p)).flatMap((p) => p.key.split(', ')) };
  }

  /** Resolves once the POST in progress (if any) has ended, however it ended; not the rest of the queue. */
  posted(): Promise<void> {
    return this.#posting ?? Promise.resolve();
  }

  deleteDecisions(ids: readonly number[]): Promise<number[]> {
    const p = this.#delete(ids);
    this.#deleting.add(p);
    void p.finally(() => this.#deleting.delete(p)).catch(() => undefined);
    return p;
  }

  async #delete(ids: readonly number[]): Promise<number[]> {
    const done: number[] = [];
    const signal = this.#stop.signal;
    try {
      if (this.#closed) throw new Error('nfips is shutting down');
      let token = await this.#ensureToken();
      for (const id of ids) {
        try {
          try {
            await this.#o.client.deleteDecision(token, id, signal);
          } catch (e) {
            if (!(e instanceof LapiError && e.status === 401)) throw e;
            this.#token = null;
            token = await this.#ensureToken();
            await this.#o.client.deleteDecision(token, id, signal);
          }
        } catch (e) {
          // Already gone at the Local API (expired or deleted by an operator): the goal is met.
          // 1.4.x answers 500 "decision with id 'N' doesn't exist" rather than 404.
          if (!(e instanceof LapiError && (e.status === 404 || (e.status === 500 && /doesn't exist/.test(e.message))))) throw e;
        }
        done.push(id);
      }
      return done;
    } catch (e) {
      throw new DeleteError(`not deleted: the Local API refused or did not answer (${(e as Error).message})`, done);
    }
  }

  status(): Record<string, unknown> {
    return {
      machine_id: this.#o.machineId,
      state: this.#failures ? 'failing' : 'ok',
      pending: this.#pending.length,
      ...this.counts,
      last_push: this.#lastPush === null ? null : new Date(this.#lastPush).toISOString(),
      last_error: this.#lastError,
      token_expires: this.#token ? new Date(this.#token.expiresAt).toISOString() : null,
    };
  }

  /** Shutdown's first step: requests stop at once (a delete the link's last pull waits on must not hold it up); close() does the rest. */
  halt(): void {
    this.#closed = true;
    this.#stop.abort();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#stop.abort();
    await this.#flushing;
    await Promise.allSettled([...this.#deleting]);
    this.#save();
  }

  /** Pushes now (waits for a push in progress); resolves when done either way. */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => (this.#flushing = null));
    return this.#flushing;
  }

  #kick(ms: number): void {
    if (this.#closed || this.#timer || !this.#started) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.flush().then(() => {
        if (this.#pending.length) this.#kick(this.#failures ? retryDelay(this.#failures, this.#o.intervalMs) : 0);
      });
    }, ms);
    this.#timer.unref();
  }

  async #ensureToken(): Promise<string> {
    if (this.#token && this.#token.expiresAt - this.#now() > RENEW_BEFORE_MS) return this.#token.token;
    this.#token = await this.#o.client.login(this.#o.machineId, this.#o.password, this.#stop.signal);
    this.counts.logins++;
    return this.#token.token;
  }

  async #flush(): Promise<void> {
    try {
      await this.#flushQueue();
    } finally {
      if (!this.#pending.length) this.#batchSize = BATCH;
    }
  }

  async #flushQueue(): Promise<void> {
    while (this.#pending.length && !this.#closed) {
      const now = this.#now();
      // A block that has ended has nothing left to share.
      const ended = this.#pending.filter((p) => p.until <= now);
      if (ended.length) {
        this.#pending = this.#pending.filter((p) => p.until > now);
        this.#o.log.event('crowdsec_push_dropped', { count: ended.length, values: ended.map((g) => g.value), reason: 'the block ended before the Local API could be told' }, 'warn');
        this.counts.dropped += ended.length;
        this.#save();
        continue;
      }
      // Checked again here: the queue may come from a file, and the allowlist may have changed since.
      // One checker per pass (it lists the host's interfaces once), one check per entry.
      const check = this.#o.refusalChecker?.() ?? null;
      const refused = this.#pending.map((p) => ({ p, reason: refusalOf(p.value, check) })).filter((r) => r.reason !== null);
      if (refused.length) {
        const gone = new Set(refused.map((r) => r.p));
        this.#pending = this.#pending.filter((p) => !gone.has(p));
        for (const { p, reason } of refused) this.#o.log.event('crowdsec_push_dropped', { count: 1, values: [p.value], reason }, 'warn');
        this.counts.dropped += refused.length;
        this.#save();
        continue;
      }
      const batch = this.#pending.slice(0, this.#batchSize);
      this.#inFlight = new Set(batch);
      let posting = false;
      let posted = (): void => undefined;
      this.#posting = new Promise<void>((r) => (posted = r));
      // What is sent: the batch less what was withdrawn while a login was awaited (dropped by the finally).
      let sending = batch;
      const unwithdrawn = (): PendingAlert[] => sending.filter((p) => !this.#withdrawnInFlight.has(p));
      try {
        let token = await this.#ensureToken();
        sending = unwithdrawn();
        if (!sending.length) continue;
        posting = true;
        let alerts = sending.map((p) => alertOf(p, now, this.#o.machineId));
        let ids: string[];
        try {
          ids = await this.#o.client.postAlerts(token, alerts, this.#stop.signal);
        } catch (e) {
          // Expired or revoked early: one fresh login, then give up for now.
          if (!(e instanceof LapiError && e.status === 401)) throw e;
          this.#token = null;
          posting = false;
          token = await this.#ensureToken();
          sending = unwithdrawn();
          if (!sending.length) continue;
          alerts = sending.map((p) => alertOf(p, now, this.#o.machineId));
          posting = true;
          ids = await this.#o.client.postAlerts(token, alerts, this.#stop.signal);
        }
        this.#pending = this.#pending.filter((p) => !batch.includes(p));
        this.counts.published += sending.length;
        this.#lastPush = this.#now();
        if (this.#failures) this.#o.log.event('crowdsec_push_restored', { sent: sending.length, pending: this.#pending.length, failures: this.#failures }, 'warn');
        this.#failures = 0;
        this.#lastError = null;
        this.#refusedInARow = 0;
        // Grows back after a split: the alert refused is gone, the rest need not go one by one.
        this.#batchSize = Math.min(BATCH, this.#batchSize * 2);
        for (const [i, p] of sending.entries()) this.#o.log.event('crowdsec_pushed', { src_ip: p.value, scenario: decisionScenario(p.scenario, this.#o.machineId), alert_id: ids[i] ?? null, block: p.key, until: new Date(p.until).toISOString() });
        this.#save();
      } catch (e) {
        // Stopped at shutdown: the batch stays queued (saved by close()), no failure to report.
        if (this.#closed) return;
        // A 4xx about the content refuses what was sent, not the link: halve the batch until the alert
        // it refuses is alone, then drop that one. Not on login, nor on auth, route or rate answers.
        const refusedContent = posting && e instanceof LapiError && e.status !== null && REFUSED_CONTENT.includes(e.status);
        if (refusedContent && sending.length > 1) {
          this.#batchSize = Math.ceil(sending.length / 2);
          continue;
        }
        if (refusedContent && this.#refusedInARow < REFUSED_IN_A_ROW_MAX) {
          this.#refusedInARow++;
          const [p] = sending as [PendingAlert];
          this.#pending = this.#pending.filter((x) => x !== p);
          this.counts.dropped++;
          this.counts.rejected++;
          this.#o.log.event('crowdsec_push_dropped', { count: 1, values: [p.value], block: p.key, scenario: p.scenario, reason: `the Local API refused it: ${(e as Error).message}` }, 'warn');
          this.#save();
          continue;
        }
        if (refusedContent) {
          // Alert after alert refused: the server's problem, not theirs. This one goes to the back, so the next
          // try is another alert: one the server always refuses cannot hold the queue, and the link only counts
          // as failing while different alerts keep being refused.
          const [p] = sending as [PendingAlert];
          this.#pending = [...this.#pending.filter((x) => x !== p), p];
          this.#save();
        }
        this.#lastError = (e as Error).message;
        this.counts.failed_pushes++;
        // Kept and retried with backoff until a POST is accepted again.
        if (this.#failures++ === 0) this.#o.log.event('crowdsec_push_failed', { error: this.#lastError, pending: this.#pending.length, hint: `kept in ${this.#file} and sent when the Local API answers` }, 'error');
        return;
      } finally {
        this.#inFlight = new Set();
        if (this.#withdrawnInFlight.size) {
          this.#pending = this.#pending.filter((p) => !this.#withdrawnInFlight.has(p));
          this.#withdrawnInFlight.clear();
          this.#save();
        }
        this.#posting = null;
        posted();
      }
    }
  }

  #load(): void {
    let load: QueueLoad | null;
    try {
      load = readQueueFile(this.#file);
    } catch (e) {
      // nfips' own file: one that is not a queue at all costs the queued alerts, not the start; it is kept aside for a look.
      const kept = this.#setAside();
      this.#o.log.event('crowdsec_queue_unreadable', { file: this.#file, path: e instanceof JsonFileError ? e.jsonPath : null, error: (e as Error).message, set_aside: kept, hint: 'starting with an empty queue' }, 'error');
      return;
    }
    if (!load) return;
    if (load.dropped.length) {
      const shown = load.dropped.slice(0, 20).map((d) => ({ path: d.path, problems: d.problems.map((p) => `${p.path}: ${p.message}`) }));
      this.#o.log.event('crowdsec_queue_entries_dropped', { file: this.#file, count: load.dropped.length, kept: load.doc.pending.length, entries: shown, hint: 'the other queued alerts are kept' }, 'error');
    }
    this.#pending = load.doc.pending.slice(-MAX_PENDING);
    const own = load.doc.own ?? null;
    // Written under another machine id: those decisions are not this gateway's, and their deletions lift nothing here.
    if (own?.machine !== undefined && own.machine !== this.#o.machineId) {
      this.#o.log.event('crowdsec_own_memory_ignored', { file: this.#file, machine_id: own.machine, now: this.#o.machineId, hint: 'own decisions of the old machine id are not tracked' }, 'warn');
    } else this.#own = own;
  }

  /** Renames the file to <file>.bad.<UTC time> and keeps only the newest few; returns the new name, or null. */
  #setAside(): string | null {
    const stamp = new Date(this.#now()).toISOString().replace(/[:.]/g, '-');
    const aside = `${this.#file}.bad.${stamp}`;
    try {
      renameSync(this.#file, aside);
    } catch {
      return null;
    }
    const dir = path.dirname(this.#file);
    const prefix = `${path.basename(this.#file)}.bad.`;
    try {
      // ISO times sort as text.
      const old = readdirSync(dir).filter((n) => n.startsWith(prefix)).sort().slice(0, -KEEP_BAD_FILES);
      for (const n of old) unlinkSync(path.join(dir, n));
    } catch {
      // Old copies left over cost disk space only.
    }
    return aside;
  }

  /** A burst of blocks is one write (JSON and fsync), not one per block, off the caller's turn. */
  #saveSoon(): void {
    if (this.#saveTimer) return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = null;
      this.#save();
    }, SAVE_DELAY_MS);
    this.#saveTimer.unref();
  }

  #save(): void {
    if (this.#saveTimer) clearTimeout(this.#saveTimer);
    this.#saveTimer = null;
    // published: [] keeps the file readable by an older nfips (which requires the list) after a downgrade.
    const doc: QueueDoc = { format: QUEUE_FORMAT, version: 1, pending: this.#pending, published: [], ...(this.#own ? { own: this.#own } : {}) };
    try {
      writeFileAtomic(this.#file, `${JSON.stringify(doc)}\n`, 0o600);
    } catch (e) {
      this.#o.log.event('crowdsec_queue_unwritable', { file: this.#file, error: (e as Error).message, hint: 'queued alerts will not survive a restart' }, 'error');
    }
  }
}
