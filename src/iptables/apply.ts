// Applies an IptablesPlan: idempotent install with all-or-nothing rollback,
// removal, counters, and the text `nfips iptables print` shows. Commands run
// through execFile, never a shell.
import { execFile } from 'node:child_process';
import { Block } from '../blocks/block';
import { blockSets, restoreScript, setPrefixFor } from '../blocks/ipset';
import {
  ALL_FAMILIES,
  DEFAULT_CHAIN,
  Family,
  FamilyPlan,
  IptablesPlan,
  ParentChain,
  QUEUE_TABLES,
  QueueTable,
  queueTable,
  TablePlan,
} from './plan';

export interface IptablesBinaries {
  iptables: string;
  ip6tables: string;
  /** Run every command as `ip netns exec NETNS <binary> ...`. */
  netns?: string;
  /** Default: "<iptables>-restore", which also fits iptables-legacy / iptables-nft. */
  iptablesRestore?: string;
  ip6tablesRestore?: string;
  /** The ipset binary for the block sets; default "ipset". */
  ipset?: string;
}

export const DEFAULT_BINARIES: Readonly<IptablesBinaries> = Object.freeze({ iptables: 'iptables', ip6tables: 'ip6tables' });

export interface Command {
  file: string;
  args: string[];
  /** Fed on stdin. */
  input?: string;
}

export class IptablesError extends Error {
  constructor(message: string, readonly command?: string, readonly output?: string) {
    super(message);
    this.name = 'IptablesError';
  }
}

const PARENTS: readonly ParentChain[] = ['FORWARD', 'INPUT'];
const TIMEOUT_MS = 60_000;
// Each pass deletes every jump it sees; more passes only matter if something re-adds jumps meanwhile.
const MAX_REMOVE_PASSES = 8;

// ---- commands (pure) ----

export function binaryFor(family: Family, bins: IptablesBinaries): string {
  return family === 'ipv4' ? bins.iptables : bins.ip6tables;
}

export function restoreBinaryFor(family: Family, bins: IptablesBinaries): string {
  const explicit = family === 'ipv4' ? bins.iptablesRestore : bins.ip6tablesRestore;
  return explicit ?? `${binaryFor(family, bins)}-restore`;
}

export function wrap(bins: IptablesBinaries, binary: string, args: string[], input?: string): Command {
  const cmd: Command = bins.netns === undefined
    ? { file: binary, args }
    : { file: 'ip', args: ['netns', 'exec', bins.netns, binary, ...args] };
  return input === undefined ? cmd : { ...cmd, input };
}

/** `<iptables> -w -t TABLE ARGS`: -w so a concurrent firewall tool makes us wait, not fail. */
export function iptablesCommand(family: Family, bins: IptablesBinaries, args: string[], table: QueueTable = 'filter'): Command {
  return wrap(bins, binaryFor(family, bins), ['-w', '-t', table, ...args]);
}

export function ipsetCommand(bins: IptablesBinaries, args: string[], input?: string): Command {
  return wrap(bins, bins.ipset ?? 'ipset', args, input);
}

/** Creates the family's block sets (they must not exist) and fills them with the blocks. */
export function setsCommand(fp: FamilyPlan, bins: IptablesBinaries, blocks: readonly Block[] = [], now = Date.now()): Command {
  return ipsetCommand(bins, ['restore'], restoreScript(setPrefixFor(fp.chain), [fp.family], blocks, now));
}

/** `iptables-restore --noflush` with a payload for one family (the payload names its table). */
export function restorePayloadCommand(family: Family, bins: IptablesBinaries, payload: string): Command {
  return wrap(bins, restoreBinaryFor(family, bins), ['--noflush', '-w'], payload);
}

export function restoreCommand(fp: FamilyPlan, tp: TablePlan, bins: IptablesBinaries): Command {
  return restorePayloadCommand(fp.family, bins, tp.restore);
}

export function jumpCommands(fp: FamilyPlan, tp: TablePlan, bins: IptablesBinaries): Command[] {
  return tp.jumps.map((j) => iptablesCommand(fp.family, bins, ['-I', j.parent, String(j.position), ...j.spec], tp.table));
}

export function shellQuote(arg: string): string {
  if (arg === '!' || /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function commandLine(cmd: Command): string {
  return [cmd.file, ...cmd.args].map(shellQuote).join(' ');
}

function heredocDelimiter(payload: string): string {
  const lines = new Set(payload.split('\n'));
  let d = 'NFIPS_RULES';
  while (lines.has(d)) d += '_';
  return d;
}

/** A POSIX shell script doing what install() does after removing stale nfips state. */
export function renderPlanText(plan: IptablesPlan, bins: IptablesBinaries = DEFAULT_BINARIES): string {
  const o = plan.options;
  const queues = o.queues.first === o.queues.last ? `${o.queues.first}` : `${o.queues.first}:${o.queues.last}`;
  const where = o.table === 'filter' ? 'queued from the filter table' : 'queued from the mangle table, rejects in the filter table';
  const out = [
    `# nfips iptables plan: chain ${plan.chain}, hook ${o.hook}, queue ${queues}, ${where}, ${o.failClosed ? 'fail-closed' : 'fail-open (--queue-bypass)'}`,
    `# install first deletes any ${plan.chain} jumps from FORWARD/INPUT (mangle and filter), the ${plan.chain} chains and the block sets left by an earlier run, then runs:`,
  ];
  for (const fp of plan.families) {
    const sets = setsCommand(fp, bins);
    out.push('', `# ${fp.family}: the block sets (then the saved blocks are added), then per table the chain and its jumps`);
    out.push(`${commandLine(sets)} <<'${heredocDelimiter(sets.input ?? '')}'`, ...(sets.input ?? '').replace(/\n$/, '').split('\n'), heredocDelimiter(sets.input ?? ''));
    for (const tp of fp.tables) {
      const restore = restoreCommand(fp, tp, bins);
      const delim = heredocDelimiter(tp.restore);
      out.push(`${commandLine(restore)} <<'${delim}'`, ...tp.restore.replace(/\n$/, '').split('\n'), delim);
      out.push(...jumpCommands(fp, tp, bins).map(commandLine));
    }
  }
  return `${out.join('\n')}\n`;
}

// ---- running ----

export interface RunResult {
  /** null when the process could not be started or was killed. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Why it did not start or did not finish. */
  error?: string;
}

export function run(cmd: Command): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd.file, cmd.args, { timeout: TIMEOUT_MS, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const code = typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr, error: code === null ? err.message : undefined });
    });
    // A binary that fails to start closes stdin under us; the callback reports that.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(cmd.input ?? '');
  });
}

function output(r: RunResult): string {
  return (r.stderr.trim() || r.stdout.trim() || r.error || '').replace(/\s*\n\s*/g, ' / ');
}

/** For restore failures, quote the payload line iptables-restore complains about. */
function failingLine(r: RunResult, input: string | undefined): string {
  const m = /(?:Error occurred at line: |line )(\d+)/.exec(r.stderr);
  const line = m && input ? input.split('\n')[Number(m[1]) - 1] : undefined;
  return line === undefined ? '' : ` [line ${m?.[1]}: ${line}]`;
}

function failure(cmd: Command, r: RunResult): IptablesError {
  const how = r.code === null ? `could not be run (${r.error ?? 'unknown error'})` : `failed with exit code ${r.code}`;
  // A process that never started has nothing to add beyond the reason above.
  const text = r.code === null ? '' : output(r);
  return new IptablesError(`\`${commandLine(cmd)}\` ${how}${text ? `: ${text}` : ''}${failingLine(r, cmd.input)}`, commandLine(cmd), text);
}

/** Runs cmd; throws an IptablesError naming the command and its output unless it exits 0. */
export async function must(cmd: Command): Promise<RunResult> {
  const r = await run(cmd);
  if (r.code !== 0) throw failure(cmd, r);
  return r;
}

// ---- reading `iptables -S` (pure) ----

/** Splits one iptables-save line into words, undoing its double-quote escaping. */
export function splitSaveLine(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

export interface SavedRule {
  chain: string;
  spec: string[];
  line: string;
}

export function parseSaveRules(save: string): SavedRule[] {
  return save.split('\n').flatMap((line) => {
    const w = splitSaveLine(line.trim());
    return w[0] === '-A' && w[1] !== undefined ? [{ chain: w[1], spec: w.slice(2), line: line.trim() }] : [];
  });
}

export function targetOf(spec: readonly string[]): string | undefined {
  const i = spec.findIndex((w, k) => (w === '-j' || w === '-g') && k + 1 < spec.length);
  return i < 0 ? undefined : spec[i + 1];
}

export function chainExists(save: string, chain: string): boolean {
  return save.split('\n').some((l) => {
    const w = splitSaveLine(l.trim());
    return w[0] === '-N' && w[1] === chain;
  });
}

/** Jumps to `chain` from FORWARD/INPUT, whatever their matches: stale ones may come from older versions. */
export function findJumps(save: string, chain: string): SavedRule[] {
  return parseSaveRules(save).filter((r) => (PARENTS as readonly string[]).includes(r.chain) && targetOf(r.spec) === chain);
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
  if (listed.code !== 0) throw failure(listCmd, listed);
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
  return r.code === 0 ? null : failure(cmd, r).message;
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
    const ie = e instanceof IptablesError ? e : undefined;
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
      if (r.code !== 0) return `${binary} (needed for ${family}) is not usable: ${failure(cmd, r).message}`;
    }
    // Lists nothing we need, but proves permissions and kernel support.
    for (const table of tables) {
      const probe = iptablesCommand(family, opts, ['-S', 'INPUT'], table);
      const r = await run(probe);
      if (r.code !== 0) return `${binaryFor(family, opts)} cannot read the ${table} table: ${failure(probe, r).message}`;
    }
  }
  // Blocks live in ipsets; without them nfips could not enforce any.
  const sets = ipsetCommand(opts, ['list', '-n']);
  const r = await run(sets);
  if (r.code !== 0) return `${opts.ipset ?? 'ipset'} is not usable (install the ipset package): ${failure(sets, r).message}`;
  return null;
}

// ---- counters ----

export interface RuleCounter {
  /** 1-based position in the chain, as in `-L --line-numbers`. */
  index: number;
  packets: number;
  bytes: number;
  target: string;
  prot: string;
  in: string;
  out: string;
  source: string;
  destination: string;
  /** Match and target details, e.g. "mark match 0x1/0x1 /* nfips *\/". */
  extra: string;
}

// iptables prints an "opt" column ("--", "-f", "!f"); legacy ip6tables leaves it blank.
const OPT = /^(--|-f|!f)$/;

/** Parses `iptables -L CHAIN -v -n -x`. Assumes every rule has a target, as nfips' rules do. */
export function parseCounters(listing: string): RuleCounter[] {
  const lines = listing.split('\n');
  const header = lines.findIndex((l) => /^\s*pkts\s+bytes\s+target/.test(l));
  if (header < 0) return [];
  const rules: RuleCounter[] = [];
  for (const line of lines.slice(header + 1)) {
    if (line.trim() === '') continue;
    if (/^Chain /.test(line)) break;
    const words = [...line.matchAll(/\S+/g)];
    const w = words.map((m) => m[0]);
    const hasOpt = OPT.test(w[4] ?? '');
    const fields = hasOpt ? 9 : 8;
    const last = words[fields - 1];
    if (last === undefined || !/^\d+$/.test(w[0] ?? '') || !/^\d+$/.test(w[1] ?? '')) {
      throw new Error(`cannot parse iptables counter line: ${line}`);
    }
    const [inIf, outIf, source, destination] = w.slice(fields - 4, fields) as [string, string, string, string];
    rules.push({
      index: rules.length + 1,
      packets: Number(w[0]),
      bytes: Number(w[1]),
      target: w[2] as string,
      prot: w[3] as string,
      in: inIf,
      out: outIf,
      source,
      destination,
      extra: line.slice((last.index ?? 0) + last[0].length).trim(),
    });
  }
  return rules;
}

export async function readCounters(
  family: Family,
  bins: IptablesBinaries = DEFAULT_BINARIES,
  chain: string = DEFAULT_CHAIN,
  table: QueueTable = 'filter',
): Promise<RuleCounter[]> {
  const r = await must(iptablesCommand(family, bins, ['-L', chain, '-v', '-n', '-x'], table));
  return parseCounters(r.stdout);
}

