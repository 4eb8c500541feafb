// Blocks at run time: decides (allowlist, dedupe, cap, time to live), keeps
// the kernel sets, the state file and the log in step with the table.
// Kernel commands run one at a time, in the order they were decided.
import type { SourceFinding } from '../detect/source-tracker';
import { run } from '../exec/run';
import { Family, IptablesBinaries, ipsetCommand } from '../exec/tools';
import { EventLog } from '../log/event-log';
import { parsePrefix, formatPrefix } from '../rules/address';
import { Allowlist } from './allowlist';
import { Block, BlockTarget, canonicalKey, makeTarget, targetKey } from './block';
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
  origin: 'anomaly' | 'manual';
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

  /**
   * Blocks what a source was caught at (its own evidence far outside what
   * single sources do), in the narrowest scope that stops it. Synchronous,
   * so the alert can say what was done; the kernel follows.
   */
  respondToSource(f: Pick<SourceFinding, 'ip' | 'exceeded' | 'evProtos' | 'evTcp' | 'evUdp'>, meta: SourceResponseMeta): AnomalyResponse {
    const res: AnomalyResponse = { action: 'allowed', blocks: [] };
    for (const target of evidenceTargets(f)) {
      const out = this.#decide(target, { origin: 'anomaly', reason: `nfips: ${meta.signature}`, signatureId: meta.signatureId, episode: meta.episode, episodeOpened: meta.episodeOpened });
      if (out.kind === 'added') res.blocks.push({ key: out.block.key, outcome: 'added', ttl_seconds: out.block.ttlSeconds });
      else if (out.kind === 'covered') res.blocks.push({ key: targetKey(target), outcome: 'already blocked' });
      else res.blocks.push({ key: targetKey(target), outcome: 'refused', reason: out.reason });
      if (out.kind !== 'refused') res.action = 'blocked';
    }
    return res;
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

  /** Removes a block by its key (as `blocks list` shows it) or by its network for a source block. */
  async remove(key: string, reason: string): Promise<BlockView> {
    const b = this.#table.get(key) ?? this.#table.get(canonicalKey(key));
    if (!b) throw new Error(`no block ${JSON.stringify(key)}; see "nfips blocks list"`);
    this.#table.remove(b.key);
    this.counts.removed++;
    this.#kernel(b, 'del');
    this.#save();
    this.#o.log.event('unblock', { ...eveOf(b), reason, block: view(b, this.#now()) });
    await this.#chain;
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
      this.#kernel(b, 'del');
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
    const conflict = this.#o.allowlist.conflict(target.prefix);
    const now = this.#now();
    let out: BlockOutcome;
    if (conflict) out = { kind: 'refused', reason: `allowlisted: ${conflict}` };
    else if (!this.#o.families.includes(familyOf(target))) out = { kind: 'refused', reason: `${familyOf(target)} is not inspected (--no-ipv6)` };
    else out = this.#table.add(target, req, now);
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
    this.#kernel(block, 'add', () => this.#o.log.event('block', { ...eveOf(block), action, block: view(block, now), ...replaced }, 'warn'));
    this.#save();
    return out;
  }

  #kernel(b: Block, op: 'add' | 'del', done?: () => void): void {
    const e = entryOf(this.#o.setPrefix, b);
    const args = op === 'add' ? ['add', e.set, e.member, 'timeout', String(remainingSeconds(b, this.#now())), '-exist'] : ['del', e.set, e.member, '-exist'];
    this.#chain = this.#chain.then(async () => {
      const r = await run(ipsetCommand(this.#o.bins, args));
      if (r.code === 0) {
        done?.();
        return;
      }
      const error = (r.stderr.trim() || r.error || `exit code ${r.code}`).replace(/\s*\n\s*/g, ' / ');
      this.counts.failed++;
      this.#o.log.event('block_failed', { src_ip: b.net, target: b.key, op, error }, 'error');
      if (op === 'add' && this.#table.get(b.key) === b) {
        this.#table.remove(b.key);
        this.#save();
      }
    });
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
