// Applies an IptablesPlan: idempotent install with all-or-nothing rollback,
// removal, and whether the tools can be used at all.
import { Block } from '../blocks/block';
import { blockSets, setPrefixFor } from '../blocks/ipset';
import { commandFailure, CommandError, must, run } from '../exec/run';
import { ALL_FAMILIES, binaryFor, DEFAULT_BINARIES, Family, IptablesBinaries, ipsetCommand, restoreBinaryFor, wrap } from '../exec/tools';
import { iptablesCommand, jumpCommands, restoreCommand, setsCommand } from './commands';
import { DEFAULT_CHAIN, FamilyPlan, IptablesPlan, ParentChain, QUEUE_TABLES, QueueTable, queueTable } from './plan';
import { chainExists, findJumps, parseSaveRules, targetOf } from './save';

// Each pass deletes every jump it sees; more passes only matter if something re-adds jumps meanwhile.
const MAX_REMOVE_PASSES = 8;

/** A failure of install or remove as a whole (a single command's failure is its CommandError). */
export class IptablesError extends CommandError {
  override name = 'IptablesError';
}

// ---- removal ----

export interface FamilyRemoval {
  family: Family;
  /** The `-S` lines of the jumps deleted. */
  jumpsRemoved: string[];
  chainRemoved: boolean;
  /** Block sets destroyed. */
  setsRemoved: string[];
  /** Rules the chain held when it was flushed. */
  rulesRemoved: number;
  /** Set when the family was not touched because its binary cannot be run. */
  skipped?: string;
}

export interface RemovalSummary {
  chain: string;
  families: FamilyRemoval[];
}

/**
 * Deletes every jump to `chain` and the chain itself, in mangle and filter
 * whatever the current --table (an earlier run may have used the other), the
 * queueing table first; then the block sets. Throws on any failure other
 * than "nothing there".
 */
async function clearFamily(family: Family, chain: string, bins: IptablesBinaries): Promise<FamilyRemoval> {
  const res: FamilyRemoval = { family, jumpsRemoved: [], chainRemoved: false, setsRemoved: [], rulesRemoved: 0 };
  for (const table of QUEUE_TABLES) {
    const list = iptablesCommand(family, bins, ['-S'], table);
    let save = (await must(list)).stdout;
    const existed = chainExists(save, chain);
    res.rulesRemoved += parseSaveRules(save).filter((r) => r.chain === chain).length;
    for (let pass = 0; ; pass++) {
      const jumps = findJumps(save, chain);
      if (jumps.length === 0) break;
      if (pass === MAX_REMOVE_PASSES) throw new IptablesError(`jumps to ${chain} keep reappearing in ${family} ${table}: ${jumps[0]?.line}`);
      for (const j of jumps) {
        await must(iptablesCommand(family, bins, ['-D', j.chain, ...j.spec], table));
        res.jumpsRemoved.push(table === 'filter' ? j.line : `-t ${table} ${j.line}`);
      }
      save = (await must(list)).stdout;
    }
    if (existed) {
      await deleteChain(family, chain, bins, save, table);
      res.chainRemoved = true;
    }
  }
  // Only once no rule of ours refers to them.
  res.setsRemoved = await destroySets(family, chain, bins);
  return res;
}

async function deleteChain(family: Family, chain: string, bins: IptablesBinaries, save: string, table: QueueTable): Promise<void> {
  const others = parseSaveRules(save).filter((r) => r.chain !== chain && targetOf(r.spec) === chain);
  if (others.length > 0) {
    throw new IptablesError(`cannot delete chain ${chain} (${family} ${table}): still referenced by rules nfips does not manage: ${others.map((r) => r.line).join('; ')}`);
  }
  await must(iptablesCommand(family, bins, ['-F', chain], table));
  await must(iptablesCommand(family, bins, ['-X', chain], table));
}

/** Destroys the family's block sets that exist; the kernel refuses while anything still uses one. */
async function destroySets(family: Family, chain: string, bins: IptablesBinaries): Promise<string[]> {
  const listCmd = ipsetCommand(bins, ['list', '-n']);
  const listed = await run(listCmd);
  // No ipset tool: nothing nfips could have created either.
  if (listed.code === null) return [];
  if (listed.code !== 0) throw commandFailure(listCmd, listed);
  const existing = new Set(listed.stdout.split('\n').map((l) => l.trim()));
  const gone: string[] = [];
  for (const set of blockSets(setPrefixFor(chain), family)) {
    if (!existing.has(set.name)) continue;
    await must(ipsetCommand(bins, ['destroy', set.name]));
    gone.push(set.name);
  }
  return gone;
}

async function familyUnavailable(family: Family, bins: IptablesBinaries): Promise<string | null> {
  const cmd = wrap(bins, binaryFor(family, bins), ['--version']);
  const r = await run(cmd);
  return r.code === 0 ? null : commandFailure(cmd, r).message;
}

/** Like clearFamily, but a family whose binary is missing is skipped rather than an error. */
async function removeFamily(family: Family, chain: string, bins: IptablesBinaries): Promise<FamilyRemoval> {
  const reason = await familyUnavailable(family, bins);
  if (reason !== null) return { family, jumpsRemoved: [], chainRemoved: false, setsRemoved: [], rulesRemoved: 0, skipped: reason };
  return clearFamily(family, chain, bins);
}

export interface RemoveOptions {
  chain?: string;
  families?: Family[];
}

/** Removes all nfips jumps and the chain; absent ones are fine. Tries every family before throwing. */
export async function remove(opts: RemoveOptions = {}, bins: IptablesBinaries = DEFAULT_BINARIES): Promise<RemovalSummary> {
  const chain = opts.chain ?? DEFAULT_CHAIN;
  const families: FamilyRemoval[] = [];
  const errors: string[] = [];
  for (const family of opts.families ?? ALL_FAMILIES) {
    try {
      families.push(await removeFamily(family, chain, bins));
    } catch (e) {
      errors.push(`${family}: ${(e as Error).message}`);
    }
  }
  if (errors.length > 0) throw new IptablesError(`nfips iptables remove failed: ${errors.join('; ')}`);
  return { chain, families };
}

/**
 * Deletes only the NFQUEUE rule of each family's queueing chain, the first
 * step of a shutdown: no new packet is queued, while the REJECT rules and
 * the repeat-mark RETURN stay for the packets still in the queue, whose
 * verdicts (rejects included) come back once nfips drains it. Removing the
 * chains first would turn those rejects into accepts. A rule already gone is
 * fine; other failures are collected and thrown after every family was tried.
 */
export async function stopQueueing(plan: IptablesPlan, bins: IptablesBinaries = DEFAULT_BINARIES): Promise<void> {
  const errors: string[] = [];
  for (const fp of plan.families) {
    const tp = queueTable(fp);
    const rule = tp.body.find((spec) => targetOf(spec) === 'NFQUEUE');
    if (!rule) continue;
    const r = await run(iptablesCommand(fp.family, bins, ['-D', fp.chain, ...rule], tp.table));
    if (r.code !== 0 && !/does a matching rule exist|No chain\/target\/match|does not exist/i.test(r.stderr)) errors.push(`${fp.family}: ${(r.stderr || r.error || `exit ${r.code}`).trim()}`);
  }
  if (errors.length > 0) throw new IptablesError(`could not stop queueing: ${errors.join('; ')}`);
}

export function describeRemoval(s: RemovalSummary): string {
  return s.families
    .map((f) => {
      if (f.skipped !== undefined) return `${f.family}: skipped (${f.skipped})`;
      const parts = [`${f.jumpsRemoved.length} jump(s) removed`];
      parts.push(f.chainRemoved ? `chain ${s.chain} with ${f.rulesRemoved} rule(s) removed` : `no chain ${s.chain}`);
      if (f.setsRemoved.length) parts.push(`block sets ${f.setsRemoved.join(', ')} destroyed`);
      return `${f.family}: ${parts.join(', ')}`;
    })
    .join('\n');
}

// ---- install ----

export interface FamilyInstall {
  family: Family;
  /** What an earlier run had left behind. */
  stale: FamilyRemoval;
  /** Rules in nfips' chains, all tables. */
  rules: number;
  /** Hook chains that jump to the queueing chain. */
  jumps: ParentChain[];
  /** The table that queues. */
  table: QueueTable;
  sets: string[];
}

export interface InstallSummary {
  chain: string;
  families: FamilyInstall[];
}

async function installFamily(fp: FamilyPlan, bins: IptablesBinaries, blocks: readonly Block[]): Promise<FamilyInstall> {
  const stale = await clearFamily(fp.family, fp.chain, bins);
  await must(setsCommand(fp, bins, blocks));
  for (const tp of fp.tables) {
    await must(restoreCommand(fp, tp, bins));
    for (const cmd of jumpCommands(fp, tp, bins)) await must(cmd);
  }
  const q = queueTable(fp);
  return {
    family: fp.family,
    stale,
    rules: fp.tables.reduce((n, tp) => n + tp.body.length, 0),
    jumps: q.jumps.map((j) => j.parent),
    table: q.table,
    sets: fp.sets.map((x) => x.name),
  };
}

/**
 * Installs the plan in every family, replacing whatever an earlier run left;
 * the block sets start with `blocks` (saved ones being restored).
 * All or nothing: on any failure every family of the plan is cleared again.
 */
export async function install(plan: IptablesPlan, bins: IptablesBinaries = DEFAULT_BINARIES, blocks: readonly Block[] = []): Promise<InstallSummary> {
  const families: FamilyInstall[] = [];
  let current: Family | undefined;
  try {
    for (const fp of plan.families) {
      current = fp.family;
      families.push(await installFamily(fp, bins, blocks));
    }
    return { chain: plan.chain, families };
  } catch (e) {
    const cause = (e as Error).message;
    const rolledBack: string[] = [];
    const rollbackErrors: string[] = [];
    for (const fp of plan.families) {
      try {
        const r = await removeFamily(fp.family, plan.chain, bins);
        rolledBack.push(`${fp.family}: ${r.skipped === undefined ? 'removed' : 'not touched, its iptables cannot run'}`);
      } catch (re) {
        rollbackErrors.push(`${fp.family}: ${(re as Error).message}`);
      }
    }
    const after = rollbackErrors.length === 0
      ? `rolled back (${rolledBack.join('; ')})`
      : `rollback failed too, nfips rules may remain: ${rollbackErrors.join('; ')}`;
    const ie = e instanceof CommandError ? e : undefined;
    throw new IptablesError(`nfips iptables install failed (${current ?? 'setup'}): ${cause}; ${after}`, ie?.command, ie?.output);
  }
}

// ---- availability ----

/** Why the iptables tools for these families cannot be used, or null when they can. */
export async function iptablesAvailable(
  opts: IptablesBinaries = DEFAULT_BINARIES,
  families: readonly Family[] = ALL_FAMILIES,
  tables: readonly QueueTable[] = QUEUE_TABLES,
): Promise<string | null> {
  for (const family of families) {
    for (const binary of [binaryFor(family, opts), restoreBinaryFor(family, opts)]) {
      const cmd = wrap(opts, binary, ['--version']);
      const r = await run(cmd);
      if (r.code !== 0) return `${binary} (needed for ${family}) is not usable: ${commandFailure(cmd, r).message}`;
    }
    // Lists nothing we need, but proves permissions and kernel support.
    for (const table of tables) {
      const probe = iptablesCommand(family, opts, ['-S', 'INPUT'], table);
      const r = await run(probe);
      if (r.code !== 0) return `${binaryFor(family, opts)} cannot read the ${table} table: ${commandFailure(probe, r).message}`;
    }
  }
  // Blocks live in ipsets; without them nfips could not enforce any.
  const sets = ipsetCommand(opts, ['list', '-n']);
  const r = await run(sets);
  if (r.code !== 0) return `${opts.ipset ?? 'ipset'} is not usable (install the ipset package): ${commandFailure(sets, r).message}`;
  return null;
}
