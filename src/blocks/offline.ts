// `nfips blocks list|add|del|flush` while nfips is not running: the same
// decisions on the state file (<state-dir>/blocks.json) that the next start
// restores into the kernel sets. Blocks that expired meanwhile are left out;
// the file keeps its owner, so a service running as another user can still
// read it after root edited it.
import { chownSync, statSync } from 'node:fs';
import path from 'node:path';
import { BlockAddArgs } from '../control/protocol';
import { BlockScope, canonicalKey, makeTarget } from './block';
import { BlockAddResult, BlockView, replacedOf, view } from './manager';
import { readBlockState, stateFilePath, writeBlockState } from './state-file';
import { BlockPolicy, BlockTable } from './table';
import { blockSets, setPrefixFor } from './ipset';
import { run } from '../exec/run';
import { ALL_FAMILIES, ipsetCommand } from '../exec/tools';

/** The kernel's ipset timeout limit, as --block-max-ttl's. */
export const OFFLINE_MAX_TTL = 2_147_483;

export class OfflineBlocks {
  readonly file: string;
  readonly #table: BlockTable;
  readonly #now: number;

  /** Reads the state file (none yet: no blocks). Throws StateFileError naming the file. */
  constructor(
    readonly stateDir: string,
    readonly ttlSeconds: number,
    now = Date.now(),
  ) {
    this.file = stateFilePath(stateDir);
    this.#now = now;
    // No cap here: the next start applies --max-blocks and the allowlist, and logs what it leaves out.
    const policy: BlockPolicy = { ttlSeconds, maxTtlSeconds: OFFLINE_MAX_TTL, maxBlocks: Number.MAX_SAFE_INTEGER };
    this.#table = new BlockTable(policy);
    const saved = readBlockState(this.file);
    this.#table.restore(saved.blocks, saved.offences, now);
  }

  list(): BlockView[] {
    return this.#table.list().map((b) => ({ ...view(b, this.#now), kernel: null }));
  }

  add(args: BlockAddArgs): BlockAddResult {
    const scope = (args.scope ?? (args.port !== undefined ? 'service' : args.proto !== undefined ? 'protocol' : 'source')) as BlockScope;
    const target = makeTarget(args.net, scope, args.proto, args.port);
    const ttl = args.ttl_seconds ?? this.ttlSeconds;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > OFFLINE_MAX_TTL) throw new Error(`invalid --ttl ${ttl}: expected whole seconds from 1 to ${OFFLINE_MAX_TTL}`);
    const out = this.#table.add(target, { origin: 'manual', reason: args.reason ? args.reason : 'manual', ttlSeconds: ttl }, this.#now);
    if (out.kind !== 'added') throw new Error(out.kind === 'refused' ? `not blocked: ${out.reason}` : `already blocked by ${out.by.key}`);
    this.#save();
    const v = view(out.block, this.#now);
    return out.replaced ? { ...v, replaced: replacedOf(out.replaced, this.#now) } : v;
  }

  del(key: string): BlockView {
    const b = this.#table.get(key) ?? this.#table.get(canonicalKey(key));
    if (!b) throw new Error(`no block ${JSON.stringify(key)} in ${this.file}; see "nfips blocks list"`);
    this.#table.remove(b.key);
    this.#save();
    return view(b, this.#now);
  }

  flush(): BlockView[] {
    const gone = this.#table.list();
    for (const b of gone) this.#table.remove(b.key);
    this.#save();
    return gone.map((b) => view(b, this.#now));
  }

  #save(): void {
    // Who owned the file (else its directory) owns the new one: root editing
    // the service's state must not leave a file the service cannot read.
    let owner: { uid: number; gid: number } | null = null;
    for (const p of [this.file, path.dirname(this.file)]) {
      try {
        const st = statSync(p);
        owner = { uid: st.uid, gid: st.gid };
        break;
      } catch {
        // not there yet
      }
    }
    writeBlockState(this.file, { blocks: this.#table.list(), offences: this.#table.offences() }, this.#now);
    if (owner && process.getuid?.() === 0) chownSync(this.file, owner.uid, owner.gid);
  }
}

/**
 * nfips' block sets found in this network namespace's kernel, or [] (none,
 * or ipset unusable here, e.g. without root). They outlive nfips only after a
 * kill -9; otherwise an nfips is running that the control socket given did
 * not reach, and it would overwrite an edit of the state file. `chain`: the
 * chain the sets belong to (their names derive from it).
 */
export async function liveBlockSets(chain: string, ipset = 'ipset'): Promise<string[]> {
  const ours = new Set(ALL_FAMILIES.flatMap((f) => blockSets(setPrefixFor(chain), f).map((x) => x.name)));
  const r = await run(ipsetCommand({ iptables: 'iptables', ip6tables: 'ip6tables', ipset }, ['list', '-n']));
  if (r.code !== 0) return [];
  return r.stdout.split('\n').map((l) => l.trim()).filter((n) => ours.has(n));
}
