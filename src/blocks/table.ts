// The userspace copy of the blocks: dedupe, cap, time to live and repeat
// offenders. Pure: time comes in as an argument; the kernel set is kept in
// step by the BlockManager.
import { Block, BlockOrigin, BlockTarget, covers, targetKey } from './block';

export interface BlockPolicy {
  /** A first offence. */
  ttlSeconds: number;
  /** Repeat offences double the time to live up to this. */
  maxTtlSeconds: number;
  maxBlocks: number;
  /**
   * CrowdSec blocks have their own cap (--crowdsec-max-decisions), so a big
   * blocklist never leaves local blocks without room; maxBlocks when unset.
   */
  maxExternal?: number;
}

export interface BlockRequest {
  origin: BlockOrigin;
  reason: string;
  /** Manual blocks may set their own; anomaly blocks follow the policy. */
  ttlSeconds?: number;
  signatureId?: number;
  episode?: number;
  /** Epoch ms the episode opened: blocks of one episode are one offence. */
  episodeOpened?: number;
  queue?: number;
  /** CrowdSec blocks: the decision's scenario. */
  scenario?: string;
}

export type BlockOutcome =
  | { kind: 'added'; block: Block; replaced?: Block }
  | { kind: 'covered'; by: Block }
  | { kind: 'refused'; reason: string };

/** How often an address was blocked for anomalies, remembered for a while after its last block ends. */
export interface Offences {
  net: string;
  count: number;
  /** Epoch ms when the last block of the address ends. */
  lastEnds: number;
  /** Epoch ms the episode of its last offence opened. */
  lastEpisode?: number;
}

export class BlockTable {
  readonly #blocks = new Map<string, Block>();
  /** Blocks of origin crowdsec among #blocks (their own cap). */
  #external = 0;
  readonly #offences = new Map<string, Offences>();

  readonly #lifting = new WeakSet<Block>();

  constructor(readonly policy: BlockPolicy) {}

  get size(): number {
    return this.#blocks.size;
  }

  /** How many more CrowdSec blocks the cap lets in now. */
  get externalRoom(): number {
    return Math.max(0, (this.policy.maxExternal ?? this.policy.maxBlocks) - this.#external);
  }

  list(): Block[] {
    return [...this.#blocks.values()].sort((a, b) => a.createdAt - b.createdAt);
  }

  get(key: string): Block | undefined {
    return this.#blocks.get(key);
  }

  offences(): Offences[] {
    return [...this.#offences.values()];
  }

  /** Time to live of the n-th anomaly block of an address: doubling from ttlSeconds, capped. */
  ttlFor(offence: number): number {
    const p = this.policy;
    return Math.min(p.maxTtlSeconds, p.ttlSeconds * 2 ** Math.min(offence - 1, 30));
  }

  /**
   * A block whose removal waits for the kernel (BlockManager.remove): until
   * it is gone, it covers nothing, so a source caught again meanwhile is
   * blocked anew (its add queued after the delete) instead of being told
   * "already blocked" by a block about to go.
   */
  lifting(b: Block, on: boolean): void {
    if (on) this.#lifting.add(b);
    else this.#lifting.delete(b);
  }

  add(target: BlockTarget, req: BlockRequest, now: number): BlockOutcome {
    this.forget(now);
    const key = targetKey(target);
    const same = this.#blocks.get(key);
    if (req.origin === 'anomaly') {
      // An anomaly never shortens or stretches what is already in place.
      const standing = (b: Block | undefined) => (b !== undefined && !this.#lifting.has(b) ? b : undefined);
      const by = standing(same) ?? this.list().find((b) => !this.#lifting.has(b) && covers(b, target));
      if (by) return { kind: 'covered', by };
    }
    const full = this.#full(req.origin, same);
    if (full) return { kind: 'refused', reason: full };
    let offence = 1;
    let ttl = req.ttlSeconds ?? this.policy.ttlSeconds;
    if (req.origin === 'anomaly') {
      // Blocks raised by one episode (a SYN flood and a ping flood from one
      // attacker, say) are one offence; only a new episode escalates.
      const prev = this.#offences.get(target.net);
      const sameEpisode = prev !== undefined && req.episodeOpened !== undefined && prev.lastEpisode === req.episodeOpened;
      offence = sameEpisode ? prev.count : (prev?.count ?? 0) + 1;
      ttl = this.ttlFor(offence);
    }
    const block: Block = {
      ...target,
      key,
      origin: req.origin,
      reason: req.reason,
      createdAt: now,
      expiresAt: now + ttl * 1000,
      ttlSeconds: ttl,
      offence,
    };
    if (req.signatureId !== undefined) block.signatureId = req.signatureId;
    if (req.episode !== undefined) block.episode = req.episode;
    if (req.queue !== undefined) block.queue = req.queue;
    if (req.scenario !== undefined) block.scenario = req.scenario;
    this.#put(block);
    if (req.origin === 'anomaly') {
      const prev = this.#offences.get(target.net);
      const o: Offences = { net: target.net, count: offence, lastEnds: Math.max(prev?.lastEnds ?? 0, block.expiresAt) };
      if (req.episodeOpened !== undefined) o.lastEpisode = req.episodeOpened;
      this.#offences.set(target.net, o);
    }
    return same ? { kind: 'added', block, replaced: same } : { kind: 'added', block };
  }

  /** Why a new block of this origin finds no room (replacing `same` takes none of its pool), or null. */
  #full(origin: BlockOrigin, same: Block | undefined): string | null {
    const external = origin === 'crowdsec';
    if (same && (same.origin === 'crowdsec') === external) return null;
    if (external) {
      const cap = this.policy.maxExternal ?? this.policy.maxBlocks;
      return this.#external >= cap ? `the CrowdSec decisions are at their cap (${cap}, --crowdsec-max-decisions)` : null;
    }
    return this.#blocks.size - this.#external >= this.policy.maxBlocks ? `the block list is full (${this.policy.maxBlocks} blocks, --max-blocks)` : null;
  }

  #put(b: Block): void {
    const old = this.#blocks.get(b.key);
    if (old) this.#del(old);
    this.#blocks.set(b.key, b);
    if (b.origin === 'crowdsec') this.#external++;
  }

  #del(b: Block): void {
    if (this.#blocks.delete(b.key) && b.origin === 'crowdsec') this.#external--;
  }

  remove(key: string): Block | undefined {
    const b = this.#blocks.get(key);
    if (b) this.#del(b);
    return b;
  }

  /** Removes and returns the blocks whose time is up. */
  expire(now: number): Block[] {
    const out: Block[] = [];
    for (const b of this.#blocks.values()) if (b.expiresAt <= now) out.push(b);
    for (const b of out) this.#del(b);
    this.forget(now);
    return out;
  }

  nextExpiry(): number | null {
    let t: number | null = null;
    for (const b of this.#blocks.values()) if (t === null || b.expiresAt < t) t = b.expiresAt;
    return t;
  }

  /**
   * Takes blocks and offences back from a saved state; the ones whose time
   * ran out while nfips was down are returned as expired, not restored.
   */
  restore(blocks: readonly Block[], offences: readonly Offences[], now: number): { restored: Block[]; expired: Block[]; dropped: Block[] } {
    const restored: Block[] = [];
    const expired: Block[] = [];
    const dropped: Block[] = [];
    for (const o of offences) this.#offences.set(o.net, { ...o });
    for (const b of blocks) {
      if (b.expiresAt <= now) expired.push(b);
      else if (this.#full(b.origin, this.#blocks.get(b.key))) dropped.push(b);
      else {
        this.#put({ ...b });
        restored.push(b);
      }
    }
    this.forget(now);
    return { restored, expired, dropped };
  }

  /** An address with no offence for maxTtl after its last block starts afresh. */
  private forget(now: number): void {
    for (const [net, o] of this.#offences) if (now - o.lastEnds > this.policy.maxTtlSeconds * 1000) this.#offences.delete(net);
  }
}
