// What is wrong with nfips' chains, jumps and block sets, and the commands
// that put them back. Pure: the watchdog (watchdog.ts) feeds it what
// `iptables -S -v` and `ipset list -t` print and runs what it returns.
import { Block } from '../blocks/block';
import { entryOf, familyOf, remainingSeconds, restoreScript, setPrefixFor } from '../blocks/ipset';
import { Family } from '../exec/tools';
import { chainExists, parseSaveRules, SavedRule, targetOf } from './save';
import { FamilyPlan, ParentChain, QueueTable, restoreQuote, ruleLine, RuleSpec, TablePlan } from './plan';

export type DamageKind =
  | 'chain_missing'
  | 'chain_rules'
  | 'jump_missing'
  | 'jump_not_first'
  | 'jump_wrong'
  | 'jump_unexpected'
  | 'set_missing'
  | 'set_entries';

export interface Damage {
  family: Family;
  /** null for a block set. */
  table: QueueTable | null;
  kind: DamageKind;
  /** One line for a person: what is missing or out of place. */
  detail: string;
  parent?: ParentChain;
  set?: string;
}

const PARENTS: readonly ParentChain[] = ['FORWARD', 'INPUT'];

/** A rule of `iptables -S -v`, with its counters taken out of the words. */
export interface CountedRule extends SavedRule {
  packets: number;
  bytes: number;
}

/** `-v -S` puts "-c PACKETS BYTES" among a rule's words; the rest is what -S prints. */
export function parseCountedRules(save: string): CountedRule[] {
  return parseSaveRules(save).map((r) => {
    const i = r.spec.findIndex((w, k) => w === '-c' && /^\d+$/.test(r.spec[k + 1] ?? '') && /^\d+$/.test(r.spec[k + 2] ?? ''));
    if (i < 0) return { ...r, packets: 0, bytes: 0 };
    return { ...r, spec: [...r.spec.slice(0, i), ...r.spec.slice(i + 3)], packets: Number(r.spec[i + 1]), bytes: Number(r.spec[i + 2]) };
  });
}

function sameSpec(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((w, i) => w === b[i]);
}

const show = (chain: string, spec: RuleSpec) => ruleLine('-A', chain, spec, restoreQuote);

export interface TableInspection {
  damage: Damage[];
  /** Packets the NFQUEUE rule counted, when this table's chain queues and exists. */
  queued: number | null;
}

/** Compares one table's listing (`iptables -t TABLE -v -S`) with the plan. */
export function inspectTable(fp: FamilyPlan, tp: TablePlan, save: string): TableInspection {
  const { family, chain } = fp;
  const at = `${family} ${tp.table}`;
  const rules = parseCountedRules(save);
  const damage: Damage[] = [];
  let queued: number | null = null;
  if (!chainExists(save, chain)) {
    damage.push({ family, table: tp.table, kind: 'chain_missing', detail: `${at}: chain ${chain} missing` });
  } else {
    const actual = rules.filter((r) => r.chain === chain);
    const differs = actual.length !== tp.body.length || actual.some((r, i) => !sameSpec(r.spec, tp.body[i] ?? []));
    if (differs) {
      const i = tp.body.findIndex((spec, k) => !sameSpec(actual[k]?.spec ?? [], spec));
      const what = i < 0
        ? `${actual.length - tp.body.length} rule(s) too many, first "${show(chain, actual[tp.body.length]?.spec ?? [])}"`
        : actual[i] === undefined
          ? `rule ${i + 1} "${show(chain, tp.body[i] ?? [])}" missing (${actual.length} of ${tp.body.length} present)`
          : `rule ${i + 1} is "${show(chain, actual[i]?.spec ?? [])}" instead of "${show(chain, tp.body[i] ?? [])}"`;
      damage.push({ family, table: tp.table, kind: 'chain_rules', detail: `${at}: chain ${chain}: ${what}` });
    }
    if (tp.queues) queued = actual.filter((r) => targetOf(r.spec) === 'NFQUEUE').reduce((n, r) => n + r.packets, 0);
  }
  for (const parent of PARENTS) {
    const inParent = rules.filter((r) => r.chain === parent);
    const jumps = inParent.map((r, i) => ({ r, i })).filter((x) => targetOf(x.r.spec) === chain);
    const want = tp.jumps.find((j) => j.parent === parent);
    const base = { family, table: tp.table, parent };
    if (!want) {
      if (jumps.length > 0) damage.push({ ...base, kind: 'jump_unexpected', detail: `${at}: ${parent} jumps to ${chain} though nfips hooks only ${tp.jumps.map((j) => j.parent).join(' and ')}` });
      continue;
    }
    const first = jumps[0];
    if (first === undefined) damage.push({ ...base, kind: 'jump_missing', detail: `${at}: jump from ${parent} to ${chain} missing` });
    else if (first.i !== 0) damage.push({ ...base, kind: 'jump_not_first', detail: `${at}: jump from ${parent} to ${chain} is rule ${first.i + 1}, below "${show(parent, inParent[0]?.spec ?? [])}"` });
    else if (jumps.length > 1 || !sameSpec(first.r.spec, want.spec)) damage.push({ ...base, kind: 'jump_wrong', detail: `${at}: ${jumps.length} jump(s) from ${parent} to ${chain}, first "${show(parent, first.r.spec)}", expected one "${ruleLine('-A', parent, want.spec)}"` });
  }
  return { damage, queued };
}

export interface KernelSet {
  name: string;
  type: string;
  entries: number;
}

/** Parses `ipset list -t` (headers only). */
export function parseSetHeaders(text: string): Map<string, KernelSet> {
  const out = new Map<string, KernelSet>();
  let cur: KernelSet | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^(Name|Type|Number of entries):\s*(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'Name') {
      cur = { name: m[2] ?? '', type: '', entries: 0 };
      out.set(cur.name, cur);
    } else if (cur && m[1] === 'Type') cur.type = m[2] ?? '';
    else if (cur) cur.entries = Number(m[2]);
  }
  return out;
}

/** Blocks with at least this long to go must be in their set; shorter ones may be expiring in the kernel first. */
const MIN_REMAINING_MS = 3000;

/**
 * Sets that are gone, and sets holding fewer entries than the block table
 * has blocks for them. A short count is only a hint (an add may be under
 * way): the watchdog acts on it when two checks in a row see it.
 */
export function inspectSets(fp: FamilyPlan, kernel: ReadonlyMap<string, KernelSet>, blocks: readonly Block[], now: number): Damage[] {
  const prefix = setPrefixFor(fp.chain);
  const expected = new Map<string, number>();
  for (const b of blocks) {
    if (familyOf(b) !== fp.family || b.expiresAt - now < MIN_REMAINING_MS) continue;
    const set = entryOf(prefix, b).set;
    expected.set(set, (expected.get(set) ?? 0) + 1);
  }
  const damage: Damage[] = [];
  for (const s of fp.sets) {
    const k = kernel.get(s.name);
    if (!k) damage.push({ family: fp.family, table: null, kind: 'set_missing', set: s.name, detail: `${fp.family}: block set ${s.name} missing` });
    else if (k.entries < (expected.get(s.name) ?? 0)) damage.push({ family: fp.family, table: null, kind: 'set_entries', set: s.name, detail: `${fp.family}: block set ${s.name} holds ${k.entries} of ${expected.get(s.name) ?? 0} blocks` });
  }
  return damage;
}

/**
 * `ipset -exist restore` input that (re)creates the damaged sets and adds
 * the table's blocks for them: harmless for what is already there.
 */
export function setRepairScript(fp: FamilyPlan, sets: ReadonlySet<string>, blocks: readonly Block[], now: number): string {
  const lines = restoreScript(setPrefixFor(fp.chain), [fp.family], blocks, now)
    .split('\n')
    .filter((l) => sets.has(l.split(' ')[1] ?? ''));
  return `${lines.join('\n')}\n`;
}

/** How many of the blocks go into these sets. */
export function blocksIn(fp: FamilyPlan, sets: ReadonlySet<string>, blocks: readonly Block[], now: number): number {
  const prefix = setPrefixFor(fp.chain);
  return blocks.filter((b) => familyOf(b) === fp.family && remainingSeconds(b, now) > 0 && sets.has(entryOf(prefix, b).set)).length;
}

/**
 * One `iptables-restore --noflush` transaction that rebuilds the chain when
 * it is missing or wrong, and puts each damaged hook chain's jump back at the
 * top (deleting the stray copies): atomic, so no packet sees half of it.
 * null when this table needs nothing.
 */
export function tableRepairPayload(fp: FamilyPlan, tp: TablePlan, save: string, damage: readonly Damage[]): string | null {
  const mine = damage.filter((d) => d.family === fp.family && d.table === tp.table);
  if (mine.length === 0) return null;
  const lines = [`*${tp.table}`];
  if (mine.some((d) => d.kind === 'chain_missing' || d.kind === 'chain_rules')) {
    lines.push(`:${fp.chain} - [0:0]`, ...tp.body.map((spec) => ruleLine('-A', fp.chain, spec)));
  }
  const rules = parseCountedRules(save);
  for (const parent of PARENTS) {
    if (!mine.some((d) => d.parent === parent)) continue;
    for (const r of rules) if (r.chain === parent && targetOf(r.spec) === fp.chain) lines.push(ruleLine('-D', parent, r.spec));
    const want = tp.jumps.find((j) => j.parent === parent);
    if (want) lines.push(ruleLine('-I', parent, [String(want.position), ...want.spec]));
  }
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}
