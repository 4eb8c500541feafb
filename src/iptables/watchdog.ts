// Keeps nfips' chains, jumps and block sets in the kernel while it runs. A
// firewall reload (`iptables -F FORWARD`, an `iptables-restore` from a config
// manager, firewalld, docker) removes them without telling anyone: nfips
// would stay "ready" while the kernel no longer sends it a packet. Every few
// seconds the watchdog lists the tables nfips uses (one `iptables -S -v` per
// table and family, one `ipset list -t`: nothing per packet), puts back
// whatever is missing or out of order, refills block sets from the block
// table, and logs `chain_repaired` as an error. The same listing carries the
// NFQUEUE rule's counter, which the fail-open accounting needs.
import { Block } from '../blocks/block';
import { EventLog } from '../log/event-log';
import { must, run } from '../exec/run';
import { Family, IptablesBinaries, ipsetCommand } from '../exec/tools';
import { iptablesCommand, restorePayloadCommand } from './commands';
import { blocksIn, Damage, inspectSets, inspectTable, KernelSet, parseSetHeaders, setRepairScript, tableRepairPayload } from './chain-check';
import { IptablesPlan, QueueTable } from './plan';

/** Short enough that a removal is undone within about this long; an inspection costs a few milliseconds. */
export const CHECK_INTERVAL_MS = 2000;
/**
 * The same damage repaired more often than this within REPAIR_WINDOW_MS (a
 * tool fighting nfips over the chain) is counted into the next event
 * instead of logged each time; different damage is always logged.
 */
const SAME_REPAIR_EVENTS_PER_WINDOW = 5;
const REPAIR_WINDOW_MS = 60_000;
/** The same repair failure is logged again at most this often. */
const FAILURE_REPEAT_MS = 60_000;

export interface Observation {
  at: number;
  damage: Damage[];
  /** NFQUEUE rule packets per family; null when the queueing chain is missing, absent when it could not be read. */
  queued: Partial<Record<Family, number | null>>;
  /** Listings that could not be read (iptables or ipset failed). */
  errors: string[];
  /** Raw listings, for building the repair. */
  saves: Map<string, string>;
}

export interface RepairRecord {
  at: string;
  damage: Damage[];
  blocks_restored: number;
  /** Time from the last check that found everything in place to the end of the repair. */
  within_ms: number | null;
}

export interface ChainStatus {
  intact: boolean;
  checked_at: string | null;
  damage: Damage[];
  errors: string[];
  repairs: number;
  last_repair: RepairRecord | null;
  last_failure: { at: string; error: string } | null;
  check_interval_s: number;
}

export interface WatchdogOptions {
  plan: IptablesPlan;
  bins: IptablesBinaries;
  log: Pick<EventLog, 'event'>;
  /** The blocks in force now (BlockManager.inForce): what a recreated set is refilled with. */
  blocks: () => readonly Block[];
  /** Called with every observation the periodic check makes (counters for the fail-open accounting). */
  onObservation?: (o: Observation) => void;
  /** Called when a repair rewrote a family's queueing chain, whose counters start again from 0. */
  onChainRewritten?: (family: Family) => void;
  intervalMs?: number;
  clock?: () => number;
}

const key = (family: Family, table: QueueTable) => `${family} ${table}`;

export class ChainWatchdog {
  readonly #o: WatchdogOptions;
  readonly #now: () => number;
  readonly #interval: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #closed = false;
  #lastIntactAt: number | null;
  #last: Observation | null = null;
  /** Sets seen short of entries by the previous check: acted on when seen again. */
  #shortSets = new Set<string>();
  #repairs = 0;
  #lastRepair: RepairRecord | null = null;
  /** When each kind of damage (its details, joined) was last logged as repaired. */
  #recentRepairs = new Map<string, number[]>();
  #unlogged: Damage[] = [];
  #unloggedCount = 0;
  #lastFailure: { at: number; error: string } | null = null;

  constructor(o: WatchdogOptions) {
    this.#o = o;
    this.#now = o.clock ?? Date.now;
    this.#interval = o.intervalMs ?? CHECK_INTERVAL_MS;
    // Started right after the install, which left everything in place.
    this.#lastIntactAt = this.#now();
  }

  start(): void {
    if (this.#closed || this.#timer) return;
    const tick = () => {
      this.#running = this.check().finally(() => {
        this.#running = null;
        if (!this.#closed) this.#timer = setTimeout(tick, this.#interval);
      });
    };
    this.#timer = setTimeout(tick, this.#interval);
  }

  /** Stops checking; must come before nfips removes its chains, or the watchdog would put them back. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** One check: observe, and repair what is damaged. */
  async check(): Promise<void> {
    const obs = await this.observe();
    // A short set counts only when the previous check saw it short too.
    const short = new Set(obs.damage.filter((d) => d.kind === 'set_entries').map((d) => d.set ?? ''));
    const actionable = obs.damage.filter((d) => d.kind !== 'set_entries' || this.#shortSets.has(d.set ?? ''));
    this.#shortSets = short;
    this.#last = obs;
    this.#o.onObservation?.(obs);
    if (this.#closed) return;
    if (actionable.length === 0) {
      if (obs.errors.length === 0 && obs.damage.length === 0) this.#lastIntactAt = obs.at;
      return;
    }
    await this.#repair(obs, actionable);
  }

  /** What the kernel holds now compared with the plan; changes nothing. */
  async observe(): Promise<Observation> {
    const { plan, bins } = this.#o;
    const at = this.#now();
    const obs: Observation = { at, damage: [], queued: {}, errors: [], saves: new Map() };
    const setList = await run(ipsetCommand(bins, ['list', '-t']));
    let sets: Map<string, KernelSet> | null = null;
    if (setList.code === 0) sets = parseSetHeaders(setList.stdout);
    else obs.errors.push(`ipset list -t: ${(setList.stderr || setList.error || `exit ${setList.code}`).trim()}`);
    const blocks = this.#o.blocks();
    for (const fp of plan.families) {
      for (const tp of fp.tables) {
        const r = await run(iptablesCommand(fp.family, bins, ['-v', '-S'], tp.table));
        if (r.code !== 0) {
          obs.errors.push(`${key(fp.family, tp.table)}: ${(r.stderr || r.error || `exit ${r.code}`).trim()}`);
          // Unreadable is not gone: the counter runs on, and counting it
          // as reset would add it twice at the next reading.
          continue;
        }
        obs.saves.set(key(fp.family, tp.table), r.stdout);
        const t = inspectTable(fp, tp, r.stdout);
        obs.damage.push(...t.damage);
        if (tp.queues) obs.queued[fp.family] = t.queued;
      }
      if (sets) obs.damage.push(...inspectSets(fp, sets, blocks, at));
    }
    return obs;
  }

  /** For `status`: a fresh look, plus what the watchdog has done so far. */
  async status(): Promise<ChainStatus> {
    const obs = await this.observe().catch((e: Error) => ({ at: this.#now(), damage: [], queued: {}, errors: [e.message], saves: new Map<string, string>() }));
    return {
      intact: obs.damage.filter((d) => d.kind !== 'set_entries').length === 0 && obs.errors.length === 0,
      checked_at: new Date(obs.at).toISOString(),
      damage: obs.damage,
      errors: obs.errors,
      repairs: this.#repairs,
      last_repair: this.#lastRepair,
      last_failure: this.#lastFailure ? { at: new Date(this.#lastFailure.at).toISOString(), error: this.#lastFailure.error } : null,
      check_interval_s: this.#interval / 1000,
    };
  }

  /** The last periodic observation (null before the first). */
  get last(): Observation | null {
    return this.#last;
  }

  async #repair(obs: Observation, damage: Damage[]): Promise<void> {
    const { plan, bins } = this.#o;
    const blocks = this.#o.blocks();
    let restored = 0;
    try {
      for (const fp of plan.families) {
        // Sets first: the chain's DROP rules refer to them.
        const sets = new Set(damage.filter((d) => d.family === fp.family && d.set !== undefined).map((d) => d.set as string));
        if (sets.size > 0) {
          await must(ipsetCommand(bins, ['-exist', 'restore'], setRepairScript(fp, sets, blocks, this.#now())));
          restored += blocksIn(fp, sets, blocks, this.#now());
        }
        // Tables in install order: the rejecting chain before the queueing one.
        for (const tp of fp.tables) {
          const save = obs.saves.get(key(fp.family, tp.table));
          if (save === undefined) continue;
          const payload = tableRepairPayload(fp, tp, save, damage);
          if (payload === null) continue;
          await must(restorePayloadCommand(fp.family, bins, payload));
          if (tp.queues && payload.includes(`:${fp.chain} `)) this.#o.onChainRewritten?.(fp.family);
        }
      }
    } catch (e) {
      this.#failed(`repair of ${damage.map((d) => d.detail).join('; ')} failed: ${(e as Error).message}`);
      return;
    }
    const after = await this.observe();
    const left = after.damage.filter((d) => d.kind !== 'set_entries' || damage.some((x) => x.set === d.set));
    if (left.length > 0) {
      this.#failed(`still damaged after repair: ${left.map((d) => d.detail).join('; ')}`);
      return;
    }
    this.#lastFailure = null;
    this.#shortSets.clear();
    const done = this.#now();
    this.#repairs++;
    this.#lastRepair = {
      at: new Date(done).toISOString(),
      damage,
      blocks_restored: restored,
      within_ms: this.#lastIntactAt === null ? null : done - this.#lastIntactAt,
    };
    this.#lastIntactAt = done;
    this.#logRepair(this.#lastRepair, done);
  }

  #logRepair(r: RepairRecord, now: number): void {
    const what = r.damage.map((d) => d.detail).sort().join('\n');
    for (const [k, times] of this.#recentRepairs) {
      const kept = times.filter((t) => now - t < REPAIR_WINDOW_MS);
      if (kept.length === 0) this.#recentRepairs.delete(k);
      else this.#recentRepairs.set(k, kept);
    }
    const times = this.#recentRepairs.get(what) ?? [];
    // A tool that keeps removing the chain would otherwise fill the log with one event per check.
    if (times.length >= SAME_REPAIR_EVENTS_PER_WINDOW) {
      this.#unlogged.push(...r.damage);
      this.#unloggedCount++;
      return;
    }
    this.#recentRepairs.set(what, [...times, now]);
    const earlier = this.#unloggedCount > 0 ? { repairs_not_logged: this.#unloggedCount, their_damage: [...new Set(this.#unlogged.map((d) => d.detail))] } : {};
    this.#unlogged = [];
    this.#unloggedCount = 0;
    this.#o.log.event('chain_repaired', {
      chain: this.#o.plan.chain,
      missing: r.damage.map((d) => d.detail),
      damage: r.damage.map((d) => ({ family: d.family, table: d.table, kind: d.kind, ...(d.parent ? { parent: d.parent } : {}), ...(d.set ? { set: d.set } : {}) })),
      blocks_restored: r.blocks_restored,
      within_ms: r.within_ms,
      repairs: this.#repairs,
      hint: 'something outside nfips removed or reordered its rules (a firewall reload?); packets passed uninspected meanwhile',
      ...earlier,
    }, 'error');
  }

  #failed(error: string): void {
    const now = this.#now();
    const prev = this.#lastFailure;
    this.#lastFailure = { at: now, error };
    if (prev && prev.error === error && now - prev.at < FAILURE_REPEAT_MS) {
      this.#lastFailure = prev;
      return;
    }
    this.#o.log.event('chain_repair_failed', { chain: this.#o.plan.chain, error, hint: `nfips tries again every ${this.#interval / 1000} s; until then packets may pass uninspected` }, 'error');
  }
}
