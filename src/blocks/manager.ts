// Blocks at run time: decides (allowlist, dedupe, cap, time to live), keeps
// the kernel sets, the state file and the log in step with the table.
// Kernel commands run one at a time, in the order they were decided.
import type { SourceFinding } from '../detect/source-tracker';
import { run } from '../exec/run';
import { Family, IptablesBinaries, ipsetCommand } from '../exec/tools';
import { EventLog } from '../log/event-log';
import { parsePrefix, formatPrefix } from '../rules/address';
import { Allowlist } from './allowlist';
import { Block, BlockOrigin, BlockTarget, canonicalKey, makeTarget, targetKey } from './block';
import { blockSets, entryOf, familyOf, parseSave, remainingSeconds } from './ipset';
import { evidenceTargets } from './scope';
import { BlockState, SavedBlock, savedBlock, writeBlockState } from './state-file';
import { BlockOutcome, BlockPolicy, BlockRequest, BlockTable } from './table';
import { BlockAddArgs } from '../control/protocol';

export interface BlockManagerOptions {
  policy: BlockPolicy;
  allowlist: Allowlist;
  /** What the state file held at start (readBlockState); saved back to stateFile on every change. */
  saved: BlockState;
  stateFile: string;
  setPrefix: string;
  families: Family[];
  bins: IptablesBinaries;
  log: Pick<EventLog, 'event'>;
  clock?: () => number;
}

/** A block as the control socket and the log show it: the saved form plus its key and time left. */
export type BlockView = SavedBlock & {
  key: string;
  remaining_s: number;
  /** Kernel counters of the set entry: packets and bytes it dropped. */
  kernel?: { packets: number; bytes: number; timeout_s: number } | null;
};

/** What a manual add answers: the block, and the one of the same key it replaced (its reason and time to live). */
export type BlockAddResult = BlockView & { replaced?: ReplacedBlock };

export interface ReplacedBlock {
  origin: BlockOrigin;
  reason: string;
  ttl_seconds: number;
  remaining_s: number;
  expires_at: string;
}

export function replacedOf(b: Block, now: number): ReplacedBlock {
  return { origin: b.origin, reason: b.reason, ttl_seconds: b.ttlSeconds, remaining_s: Math.max(0, Math.round((b.expiresAt - now) / 1000)), expires_at: new Date(b.expiresAt).toISOString() };
}

export interface AnomalyResponse {
  action: 'allowed' | 'blocked';
  blocks: { key: string; outcome: 'added' | 'already blocked' | 'refused'; ttl_seconds?: number; reason?: string }[];
}

/** What the source judge tells prevent mode about a finding it acts on. */
export interface SourceResponseMeta {
  signatureId: number;
  signature: string;
  episode: number;
  /** Epoch ms the source's episode opened (one episode is one offence). */
  episodeOpened: number;
}

/**
 * A block decided elsewhere (a CrowdSec decision): its network, until when,
 * and why. The refusal rules are the local blocks' (allowlist, own
 * addresses, reserved networks, family, --max-blocks).
 */
export interface ExternalBlock {
  target: BlockTarget;
  /** Epoch ms. */
  expiresAt: number;
  scenario: string;
}

export interface ExternalOutcome {
  added: number;
  updated: number;
  removed: number;
  /** Same network blocked locally for at least as long: left as it is. */
  kept_local: number;
  refused: number;
  failed: number;
}

/**
 * Told of each external block refused: `rules` for the allowlist, own and
 * reserved addresses and the family (fixed while nfips runs, bar the
 * gateway's addresses), `cap` for --crowdsec-max-decisions (room comes back
 * when a CrowdSec block ends).
 */
export type ExternalRefusal = (key: string, reason: string, kind: 'rules' | 'cap') => void;

/** What a new anomaly block is told to (the CrowdSec publisher). */
export type PlacedListener = (b: Block, f: Pick<SourceFinding, 'exceeded'>, meta: SourceResponseMeta) => void;

/** Per-block events of one external batch beyond this are summed up in one event. */
const EXTERNAL_EVENTS_MAX = 50;

const SWEEP_MS = 1000;

export class BlockManager {
  readonly #table: BlockTable;
  readonly #o: BlockManagerOptions;
  readonly #now: () => number;
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;
  #loaded: { restored: Block[]; expired: Block[]; dropped: Block[] } = { restored: [], expired: [], dropped: [] };
  /** Counts since start. */
  readonly counts = { added: 0, removed: 0, expired: 0, refused: 0, failed: 0 };
  #placed: PlacedListener | null = null;

  /** Takes the saved blocks back with their remaining time. */
  constructor(o: BlockManagerOptions) {
    this.#o = o;
    this.#now = o.clock ?? Date.now;
    this.#table = new BlockTable(o.policy);
    const saved = o.saved;
    // Saved blocks on networks allowlisted since are not restored.
    const allowed = saved.blocks.filter((b) => this.#o.allowlist.conflict(b.prefix) === null && o.families.includes(familyOf(b)));
    this.#loaded = this.#table.restore(allowed, saved.offences, this.#now());
    this.#loaded.dropped.push(...saved.blocks.filter((b) => !allowed.includes(b)));
  }

  /** For the install: the kernel sets start with these. */
  restoredBlocks(): Block[] {
    return this.#table.list();
  }

  /** The blocks the kernel sets should hold now: what the chain watchdog refills a destroyed set with. */
  inForce(): Block[] {
    return this.#table.list();
  }

  /** Once the sets exist: logs what was restored and starts expiring. */
  start(): void {
    const now = this.#now();
    for (const b of this.#loaded.restored) this.#o.log.event('block', { ...eveOf(b), action: 'restored', block: view(b, now) });
    for (const b of this.#loaded.expired) this.#o.log.event('unblock', { ...eveOf(b), reason: 'expired while nfips was down', block: view(b, now) });
    for (const b of this.#loaded.dropped) this.#o.log.event('block_refused', { ...eveOf(b), reason: 'saved block not restored: allowlisted now, its family is off, or the list is full', block: view(b, now) }, 'warn');
    this.#save();
    this.#timer = setInterval(() => this.sweep(), SWEEP_MS);
    this.#timer.unref();
  }

  get size(): number {
    return this.#table.size;
  }

  /** How many more CrowdSec blocks --crowdsec-max-decisions lets in now. */
  get externalRoom(): number {
    return this.#table.externalRoom;
  }

  /**
   * Blocks what a source was caught at (its own evidence far outside what
   * single sources do), in the narrowest scope that stops it. Synchronous,
   * so the alert can say what was done; the kernel follows.
   */
  respondToSource(f: Pick<SourceFinding, 'ip' | 'exceeded' | 'evProtos' | 'evTcp' | 'evUdp'>, meta: SourceResponseMeta): AnomalyResponse {
    const res: AnomalyResponse = { action: 'allowed', blocks: [] };
    for (const target of evidenceTargets(f)) {
      const out = this.#decide(target, { origin: 'anomaly', reason: `nfips: ${meta.signature}`, signatureId: meta.signatureId, episode: meta.episode, episodeOpened: meta.episodeOpened });
      if (out.kind === 'added') {
        res.blocks.push({ key: out.block.key, outcome: 'added', ttl_seconds: out.block.ttlSeconds });
        this.#placed?.(out.block, f, meta);
      }
      else if (out.kind === 'covered') res.blocks.push({ key: targetKey(target), outcome: 'already blocked' });
      else res.blocks.push({ key: targetKey(target), outcome: 'refused', reason: out.reason });
      if (out.kind !== 'refused') res.action = 'blocked';
    }
    return res;
  }

  /** Hook point: told of every anomaly block placed (one listener). */
  onPlaced(fn: PlacedListener | null): void {
    this.#placed = fn;
  }

  get(key: string): Block | undefined {
    return this.#table.get(key) ?? this.#table.get(canonicalKey(key));
  }

  /**
   * Applies blocks decided elsewhere and lifts the ones no longer wanted
   * (only blocks of origin crowdsec are lifted), all in one `ipset restore`.
   * A local block on the same network that lasts at least as long is kept.
   */
  async applyExternal(upsert: readonly ExternalBlock[], remove: readonly string[], onRefused?: ExternalRefusal): Promise<ExternalOutcome> {
    const now = this.#now();
    const res: ExternalOutcome = { added: 0, updated: 0, removed: 0, kept_local: 0, refused: 0, failed: 0 };
    const lines: string[] = [];
    const events: [string, Record<string, unknown>, 'info' | 'warn'][] = [];
    let notLogged = 0;
    // Built only for the events that are logged: a blocklist brings thousands.
    const note = (name: string, fields: () => Record<string, unknown>, level: 'info' | 'warn') => {
      if (events.length < EXTERNAL_EVENTS_MAX) events.push([name, fields(), level]);
      else notLogged++;
    };
    const applied: Block[] = [];
    const allowed = this.#o.allowlist.checker();
    for (const key of remove) {
      const b = this.#table.get(key);
      if (!b || b.origin !== 'crowdsec') continue;
      this.#table.remove(key);
      res.removed++;
      const e = entryOf(this.#o.setPrefix, b);
      lines.push(`del ${e.set} ${e.member}`);
      note('unblock', () => ({ ...eveOf(b), reason: 'crowdsec decision deleted', block: view(b, now) }), 'info');
    }
    for (const x of upsert) {
      if (x.expiresAt <= now) continue;
      const same = this.#table.get(targetKey(x.target));
      if (same && same.origin !== 'crowdsec' && same.expiresAt >= x.expiresAt) {
        res.kept_local++;
        continue;
      }
      if (same && same.origin === 'crowdsec' && same.scenario === x.scenario && Math.abs(same.expiresAt - x.expiresAt) < 2000) continue;
      const ttl = Math.max(1, Math.ceil((x.expiresAt - now) / 1000));
      const reason = this.#refusal(x.target, allowed);
      const out: BlockOutcome = reason ? { kind: 'refused', reason } : this.#table.add(x.target, { origin: 'crowdsec', reason: `crowdsec: ${x.scenario}`, ttlSeconds: ttl, scenario: x.scenario }, now);
      if (out.kind === 'refused') {
        // The table refuses a crowdsec block only for its cap.
        onRefused?.(targetKey(x.target), out.reason, reason ? 'rules' : 'cap');
        res.refused++;
        this.counts.refused++;
        const why = out.reason;
        note('block_refused', () => ({ src_ip: x.target.net, target: targetKey(x.target), origin: 'crowdsec', scenario: x.scenario, reason: why }), 'warn');
        continue;
      }
      if (out.kind !== 'added') continue;
      if (same) res.updated++;
      else {
        res.added++;
        this.counts.added++;
      }
      const e = entryOf(this.#o.setPrefix, out.block);
      lines.push(`add ${e.set} ${e.member} timeout ${remainingSeconds(out.block, now)}`);
      applied.push(out.block);
      const placed = out.block;
      note('block', () => ({ ...eveOf(placed), action: same ? 'replaced' : 'added', block: view(placed, now) }), 'warn');
    }
    if (lines.length === 0) return this.#logExternal(events, notLogged, res);
    this.#save();
    const script = `${lines.join('\n')}\n`;
    let error: string | null = null;
    this.#chain = this.#chain.then(async () => {
      const r = await run(ipsetCommand(this.#o.bins, ['-exist', 'restore'], script));
      if (r.code !== 0) error = (r.stderr.trim() || r.error || `exit code ${r.code}`).replace(/\s*\n\s*/g, ' / ');
    });
    await this.#chain;
    if (error !== null) {
      // ipset restore stops at the failing line: those after it are unknown, so
      // each block is put in on its own (the rare slow path).
      this.#o.log.event('block_failed', { op: 'restore', origin: 'crowdsec', error, hint: 'retrying the batch one entry at a time' }, 'error');
      for (const b of applied) this.#kernel(b, 'add');
      await this.#chain;
      res.failed = applied.filter((b) => this.#table.get(b.key) !== b).length;
    }
    return this.#logExternal(events, notLogged, res);
  }

  #logExternal(events: [string, Record<string, unknown>, 'info' | 'warn'][], notLogged: number, res: ExternalOutcome): ExternalOutcome {
    for (const [name, fields, level] of events) this.#o.log.event(name, fields, level);
    if (notLogged > 0) this.#o.log.event('crowdsec_blocks_applied', { ...res, events_not_logged: notLogged }, 'warn');
    return res;
  }

  /** Why a block on this target would be refused now (allowlist, own addresses, family...), or null. */
  refusalOf(target: BlockTarget): string | null {
    return this.#refusal(target);
  }

  /** The gateway's own addresses (refused as block targets), as one comparable string. */
  ownAddressesKey(): string {
    return this.#o.allowlist.ownKey();
  }

  /** refusalOf() for a batch: the gateway's addresses are read once, when this is called. */
  refusalChecker(): (target: BlockTarget) => string | null {
    const allowed = this.#o.allowlist.checker();
    return (t) => this.#refusal(t, allowed);
  }

  #refusal(target: BlockTarget, conflictOf: (p: BlockTarget['prefix']) => string | null = (p) => this.#o.allowlist.conflict(p)): string | null {
    const conflict = conflictOf(target.prefix);
    if (conflict) return `allowlisted: ${conflict}`;
    if (!this.#o.families.includes(familyOf(target))) return `${familyOf(target)} is not inspected (--no-ipv6)`;
    return null;
  }

  /** A manual block from the control socket. Resolves once the kernel has it. */
  async addManual(args: BlockAddArgs): Promise<BlockAddResult> {
    if (typeof args.net !== 'string') throw new Error('blocks add needs an address or CIDR');
    if (args.port !== undefined && typeof args.port !== 'number') throw new Error('port must be a number');
    const target = makeTarget(args.net, (args.scope ?? (args.port !== undefined ? 'service' : args.proto !== undefined ? 'protocol' : 'source')) as BlockTarget['scope'], args.proto, args.port);
    const ttl = args.ttl_seconds ?? this.#o.policy.ttlSeconds;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > this.#o.policy.maxTtlSeconds) throw new Error(`ttl must be whole seconds from 1 to ${this.#o.policy.maxTtlSeconds} (--block-max-ttl)`);
    const out = this.#decide(target, { origin: 'manual', reason: typeof args.reason === 'string' && args.reason ? args.reason : 'manual', ttlSeconds: ttl });
    if (out.kind === 'refused') throw new Error(`not blocked: ${out.reason}`);
    if (out.kind === 'covered') throw new Error(`already blocked by ${out.by.key}`);
    await this.#chain;
    if (!this.#table.get(out.block.key)) throw new Error(`the kernel refused the block ${out.block.key}; see the block_failed event`);
    const now = this.#now();
    return out.replaced ? { ...view(out.block, now), replaced: replacedOf(out.replaced, now) } : view(out.block, now);
  }

  /** Lifts every block: the sets are flushed in the kernel, the state file emptied. Resolves once the kernel has done it. */
  async flush(reason: string): Promise<BlockView[]> {
    const now = this.#now();
    const gone = this.#table.list();
    for (const b of gone) this.#table.remove(b.key);
    this.counts.removed += gone.length;
    const sets = this.#o.families.flatMap((f) => blockSets(this.#o.setPrefix, f).map((x) => x.name));
    this.#chain = this.#chain.then(async () => {
      for (const set of sets) {
        const r = await run(ipsetCommand(this.#o.bins, ['flush', set]));
        if (r.code === 0) continue;
        this.counts.failed++;
        this.#o.log.event('block_failed', { target: set, op: 'flush', error: (r.stderr.trim() || r.error || `exit code ${r.code}`).replace(/\s*\n\s*/g, ' / ') }, 'error');
      }
    });
    this.#save();
    for (const b of gone) this.#o.log.event('unblock', { ...eveOf(b), reason, block: view(b, now) });
    await this.#chain;
    return gone.map((b) => view(b, now));
  }

  /**
   * Removes a block by its key (as `blocks list` shows it) or by its network
   * for a source block. The table lets go only once the kernel has: a failed
   * `ipset del` rejects and the block stays (still listed, still swept, a
   * lift retried), rather than nfips saying unblocked while the kernel drops.
   */
  async remove(key: string, reason: string): Promise<BlockView> {
    const b = this.#table.get(key) ?? this.#table.get(canonicalKey(key));
    if (!b) throw new Error(`no block ${JSON.stringify(key)}; see "nfips blocks list"`);
    // While the kernel delete waits its turn, the block covers no new request (BlockTable.lifting).
    this.#table.lifting(b, true);
    let error: string | null;
    try {
      error = await this.#kernel(b, 'del');
    } finally {
      this.#table.lifting(b, false);
    }
    if (error !== null) throw new Error(`the kernel did not lift ${b.key} (ipset: ${error}); the block stays`);
    // Replaced meanwhile (a re-block queued its add after this delete), or ended by the sweep: nothing more to lift.
    if (this.#table.get(b.key) === b) {
      this.#table.remove(b.key);
      this.counts.removed++;
      this.#save();
      this.#o.log.event('unblock', { ...eveOf(b), reason, block: view(b, this.#now()) });
    }
    return view(b, this.#now());
  }

  /** The active blocks with the kernel's counters for each. */
  async list(): Promise<BlockView[]> {
    const now = this.#now();
    const kernel = await this.#kernelEntries();
    return this.#table.list().map((b) => {
      const v = view(b, now);
      const e = entryOf(this.#o.setPrefix, b);
      const k = kernel?.get(`${e.set} ${e.member}`);
      v.kernel = kernel === null ? null : k ? { packets: k.packets, bytes: k.bytes, timeout_s: k.timeout } : null;
      return v;
    });
  }

  /** Ends the blocks whose time is up (the kernel has dropped its entries already, or is about to). */
  sweep(): void {
    const now = this.#now();
    const gone = this.#table.expire(now);
    if (gone.length === 0) return;
    for (const b of gone) {
      this.counts.expired++;
      void this.#kernel(b, 'del');
      this.#o.log.event('unblock', { ...eveOf(b), reason: 'expired', block: view(b, now) });
    }
    this.#save();
  }

  /** Stops the sweep; the state file holds every block. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#chain;
    this.#save();
  }

  #decide(target: BlockTarget, req: BlockRequest): BlockOutcome {
    const now = this.#now();
    const reason = this.#refusal(target);
    const out: BlockOutcome = reason ? { kind: 'refused', reason } : this.#table.add(target, req, now);
    if (out.kind === 'refused') {
      this.counts.refused++;
      this.#o.log.event('block_refused', { src_ip: target.net, target: targetKey(target), origin: req.origin, reason: out.reason }, 'warn');
      return out;
    }
    if (out.kind === 'covered') return out;
    this.counts.added++;
    const block = out.block;
    const action = out.replaced ? 'replaced' : 'added';
    const replaced = out.replaced ? { replaced: replacedOf(out.replaced, now) } : {};
    // Logged once the kernel holds it: a block event means packets are being dropped.
    void this.#kernel(block, 'add', () => this.#o.log.event('block', { ...eveOf(block), action, block: view(block, now), ...replaced }, 'warn'));
    this.#save();
    return out;
  }

  /** Queues one kernel change; resolves once done with null, or the error (already logged as block_failed). */
  #kernel(b: Block, op: 'add' | 'del', done?: () => void): Promise<string | null> {
    const e = entryOf(this.#o.setPrefix, b);
    const args = op === 'add' ? ['add', e.set, e.member, 'timeout', String(remainingSeconds(b, this.#now())), '-exist'] : ['del', e.set, e.member, '-exist'];
    const step = this.#chain.then(async (): Promise<string | null> => {
      const r = await run(ipsetCommand(this.#o.bins, args));
      if (r.code === 0) {
        done?.();
        return null;
      }
      const error = (r.stderr.trim() || r.error || `exit code ${r.code}`).replace(/\s*\n\s*/g, ' / ');
      this.counts.failed++;
      this.#o.log.event('block_failed', { src_ip: b.net, target: b.key, op, error }, 'error');
      if (op === 'add' && this.#table.get(b.key) === b) {
        this.#table.remove(b.key);
        this.#save();
      }
      return error;
    });
    this.#chain = step.then(() => undefined);
    return step;
  }

  async #kernelEntries(): Promise<Map<string, ReturnType<typeof parseSave>[number]> | null> {
    const names = new Set(this.#o.families.flatMap((f) => blockSets(this.#o.setPrefix, f).map((s) => s.name)));
    const r = await run(ipsetCommand(this.#o.bins, ['save']));
    if (r.code !== 0) return null;
    const out = new Map<string, ReturnType<typeof parseSave>[number]>();
    for (const e of parseSave(r.stdout)) if (names.has(e.set)) out.set(`${e.set} ${canonicalMember(e.member)}`, e);
    return out;
  }

  #save(): void {
    try {
      writeBlockState(this.#o.stateFile, { blocks: this.#table.list(), offences: this.#table.offences() }, this.#now());
    } catch (e) {
      this.#o.log.event('block_state_failed', { file: this.#o.stateFile, error: (e as Error).message, hint: 'blocks stay in force but will not survive a restart' }, 'error');
    }
  }
}

/** ipset prints members its own way; compare them in our canonical form. */
function canonicalMember(member: string): string {
  const [net, rest] = member.split(',');
  const p = parsePrefix(net ?? '');
  const canon = p ? formatPrefix(p) : (net ?? '');
  return rest === undefined ? canon : `${canon},${rest}`;
}

/** EVE-style top-level fields of a block event. */
function eveOf(b: Block): Record<string, unknown> {
  const out: Record<string, unknown> = { src_ip: b.net };
  if (b.proto) out.proto = b.proto.toUpperCase();
  if (b.port !== undefined) out.dest_port = b.port;
  return out;
}

export function view(b: Block, now: number): BlockView {
  return { key: b.key, ...savedBlock(b), remaining_s: Math.max(0, Math.round((b.expiresAt - now) / 1000)) };
}
