// What nfips installs into iptables, as data. Everything here is pure except
// readTemplate(), so the exact rules can be tested, printed and applied from
// the same source.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../config/paths';
import { ALL_FAMILIES, Family } from '../exec/tools';
import { blockSets, BlockSet, setPrefixFor } from '../blocks/ipset';
import { formatPrefix, parsePrefix } from '../rules/address';

export type Hook = 'forward' | 'input' | 'both';
/**
 * Where packets are queued from. mangle (the default): a packet the kernel
 * lets through uninspected (fail-open, no nfips bound) only skips the rest of
 * mangle, and the operator's filter rules still judge it. filter: nfips sits
 * in front of the operator's filter rules, and a fail-open accept ends the
 * filter table for that packet.
 */
export type QueueTable = 'mangle' | 'filter';
export const QUEUE_TABLES: readonly QueueTable[] = ['mangle', 'filter'];

export interface IptablesPlanOptions {
  queues: { first: number; last: number };
  hook: Hook;
  mark: { value: number; mask: number };
  failClosed: boolean;
  exclude: string[];
  families: Family[];
  chain?: string;
  /** Second mark bit: packets nfips rejects come back with it and meet a REJECT rule. */
  rejectMark?: { value: number; mask: number };
  /** Default 'mangle'. */
  table?: QueueTable;
  /**
   * Default true. false: a chain of block DROPs only, in filter, for
   * `nfips watch --block` (a capture sees the traffic, nothing is queued).
   */
  queueing?: boolean;
}

export type ResolvedPlanOptions = Required<IptablesPlanOptions>;

/** Arguments of one rule after "-A CHAIN" (or "-I CHAIN POS"). */
export type RuleSpec = readonly string[];

export type ParentChain = 'FORWARD' | 'INPUT';

export interface JumpRule {
  parent: ParentChain;
  /** Always inserted at position 1: nfips must see packets before the operator's ACCEPTs. */
  position: 1;
  spec: RuleSpec;
}

/** The chain nfips keeps in one table, and the jumps to it. */
export interface TablePlan {
  table: QueueTable;
  /** Whether this table's chain holds the NFQUEUE rule (the other only rejects). */
  queues: boolean;
  body: RuleSpec[];
  /** Payload for `iptables-restore --noflush`. */
  restore: string;
  jumps: JumpRule[];
}

export interface FamilyPlan {
  family: Family;
  chain: string;
  /** The ipsets of blocks, created before the chain that refers to them. */
  sets: BlockSet[];
  /**
   * In install order: the filter chain that rejects comes before the chain
   * that queues, so a packet nfips rejects always finds its REJECT rule.
   */
  tables: TablePlan[];
}

export interface IptablesPlan {
  options: ResolvedPlanOptions;
  chain: string;
  families: FamilyPlan[];
}

export const DEFAULT_CHAIN = 'NFIPS';
/** Every rule nfips installs carries this comment, so they can be recognised. */
export const NFIPS_COMMENT = 'nfips';
export const DEFAULT_REJECT_MARK = Object.freeze({ value: 0x2, mask: 0x2 });

/** A fresh copy each call, so callers may modify it. */
export function defaultPlanOptions(): ResolvedPlanOptions {
  return {
    queues: { first: 0, last: 0 },
    hook: 'forward',
    mark: { value: 0x1, mask: 0x1 },
    failClosed: false,
    exclude: [],
    families: ['ipv4', 'ipv6'],
    chain: DEFAULT_CHAIN,
    rejectMark: { ...DEFAULT_REJECT_MARK },
    table: 'mangle',
    queueing: true,
  };
}

export function templatePath(root: string = PACKAGE_ROOT): string {
  return path.join(root, 'iptables', 'nfips-chain.rules.in');
}

/** The only I/O in this module. */
export function readTemplate(file: string = templatePath()): string {
  return readFileSync(file, 'utf8');
}

// Names iptables reserves; a user chain called like this would be ambiguous.
const RESERVED_NAMES = new Set([
  'INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING',
  'ACCEPT', 'DROP', 'RETURN', 'QUEUE', 'NFQUEUE', 'REJECT', 'LOG', 'MARK',
]);

const U32_MAX = 0xffffffff;

function isIntIn(n: number, lo: number, hi: number): boolean {
  return Number.isInteger(n) && n >= lo && n <= hi;
}

/** Family of "ADDR" or "ADDR/PREFIX"; throws on anything else. */
export function cidrFamily(cidr: string): Family {
  const [addr, prefix, extra] = cidr.split('/');
  const v = isIP(addr ?? '');
  const bits = v === 4 ? 32 : 128;
  const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
  if (v === 0 || extra !== undefined || !prefixOk) throw new Error(`invalid exclude CIDR "${cidr}"`);
  return v === 4 ? 'ipv4' : 'ipv6';
}

/**
 * The form `iptables -S` prints a CIDR back in (host bits cleared, the
 * length always given, IPv6 compressed), so the chain nfips installs reads
 * back exactly as planned and the watchdog does not see "10.0.0.1" vs
 * "10.0.0.1/32" as damage to repair every check.
 */
export function canonicalCidr(cidr: string): string {
  cidrFamily(cidr);
  const p = parsePrefix(cidr);
  if (p === null) throw new Error(`invalid exclude CIDR "${cidr}"`);
  // iptables drops "-s 0.0.0.0/0" altogether, and it would exempt all traffic.
  if (p.bits === 0) throw new Error(`invalid exclude CIDR "${cidr}": a /0 would exempt every packet from nfips`);
  const w = p.words;
  // glibc's inet_ntop writes IPv4-mapped (::ffff:a.b.c.d) and -compatible
  // (::a.b.c.d) addresses with a dotted tail; ip6tables prints through it.
  const mapped = w[2] === 0xffff;
  const compatible = w[2] === 0 && w[3] >>> 16 !== 0;
  if (p.family === 6 && w[0] === 0 && w[1] === 0 && (mapped || compatible)) {
    const v4 = `${w[3] >>> 24}.${(w[3] >>> 16) & 255}.${(w[3] >>> 8) & 255}.${w[3] & 255}`;
    return `::${mapped ? 'ffff:' : ''}${v4}/${p.bits}`;
  }
  const text = formatPrefix(p);
  return text.includes('/') ? text : `${text}/${p.bits}`;
}

/** Fills defaults and rejects values iptables would refuse (or silently misread). */
export function resolvePlanOptions(o: IptablesPlanOptions): ResolvedPlanOptions {
  const chain = o.chain ?? DEFAULT_CHAIN;
  // 28 = XT_EXTENSION_MAXNAMELEN - 1; a leading '-' or '!' would parse as an option.
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,27}$/.test(chain) || RESERVED_NAMES.has(chain)) {
    throw new Error(`invalid chain name "${chain}"`);
  }
  const { first, last } = o.queues;
  if (!isIntIn(first, 0, 65535) || !isIntIn(last, 0, 65535) || first > last) {
    throw new Error(`invalid queue range ${first}:${last}: need 0 <= first <= last <= 65535`);
  }
  const { value, mask } = o.mark;
  if (!isIntIn(value, 0, U32_MAX) || !isIntIn(mask, 1, U32_MAX)) {
    throw new Error(`invalid repeat mark ${value}/${mask}: need 32-bit value and non-zero mask`);
  }
  if (!['forward', 'input', 'both'].includes(o.hook)) throw new Error(`invalid hook "${o.hook}"`);
  const families = ALL_FAMILIES.filter((f) => o.families.includes(f));
  if (families.length === 0 || o.families.some((f) => !ALL_FAMILIES.includes(f))) {
    throw new Error(`invalid families [${o.families.join(', ')}]: use ipv4 and/or ipv6`);
  }
  const exclude = [...new Set(o.exclude.map(canonicalCidr))];
  const rejectMark = o.rejectMark ?? DEFAULT_REJECT_MARK;
  if (!isIntIn(rejectMark.value, 1, U32_MAX) || !isIntIn(rejectMark.mask, 1, U32_MAX) || (rejectMark.mask & mask) !== 0) {
    throw new Error(`invalid reject mark ${formatMark(rejectMark)}: need a non-zero value and a mask that shares no bit with the repeat mark`);
  }
  const table = o.table ?? 'mangle';
  if (!QUEUE_TABLES.includes(table)) throw new Error(`invalid table "${String(table)}": use mangle or filter`);
  return {
    queues: { first, last },
    hook: o.hook,
    mark: { value, mask },
    failClosed: o.failClosed,
    exclude,
    families,
    chain,
    rejectMark: { ...rejectMark },
    // Block DROPs only: they belong in filter, where the host's own verdicts are.
    table: o.queueing === false ? 'filter' : table,
    queueing: o.queueing ?? true,
  };
}

export function formatMark(mark: { value: number; mask: number }): string {
  return `0x${(mark.value >>> 0).toString(16)}/0x${(mark.mask >>> 0).toString(16)}`;
}

/** Matches first, then our comment, then the target: the order `iptables -S` prints back. */
function tagged(matches: string[], target: string[]): RuleSpec {
  return [...matches, '-m', 'comment', '--comment', NFIPS_COMMENT, ...target];
}

/** Produces some rules of the chain body. */
export type BodyPart = (o: ResolvedPlanOptions, family: Family) => RuleSpec[];

/** TCP gets a reset, everything else an ICMP port unreachable. */
export const rejectRules: BodyPart = (o, family) => {
  const m = ['-m', 'mark', '--mark', formatMark(o.rejectMark)];
  const icmp = family === 'ipv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
  return [tagged(['-p', 'tcp', ...m], ['-j', 'REJECT', '--reject-with', 'tcp-reset']), tagged(m, ['-j', 'REJECT', '--reject-with', icmp])];
};

/** Blocked sources are dropped before the queue: a flood from them never reaches user space. */
export const blockDrops: BodyPart = (o, family) => blockSets(setPrefixFor(o.chain), family).map((set) => tagged(set.match, ['-j', 'DROP']));

/** Packets nfips already judged come back with the repeat mark and must not loop. */
export const repeatMarkReturn: BodyPart = (o) => [tagged(['-m', 'mark', '--mark', formatMark(o.mark)], ['-j', 'RETURN'])];

export const excludeReturns: BodyPart = (o, family) =>
  o.exclude
    .filter((cidr) => cidrFamily(cidr) === family)
    .flatMap((cidr) => [tagged(['-s', cidr], ['-j', 'RETURN']), tagged(['-d', cidr], ['-j', 'RETURN'])]);

export const queueRule: BodyPart = (o) => {
  const { first, last } = o.queues;
  const queue = first === last ? ['--queue-num', String(first)] : ['--queue-balance', `${first}:${last}`];
  // Without a listener the kernel drops queued packets; bypass lets them through instead.
  const bypass = o.failClosed ? [] : ['--queue-bypass'];
  return [tagged([], ['-j', 'NFQUEUE', ...queue, ...bypass])];
};

// Order matters: the first matching rule decides. Rejected packets carry the
// repeat bit too, so the REJECT rules come before the repeat RETURN. Blocks
// come after it and the excludes (never blocked anyway), so a packet nfips
// already accepted does not pay the set lookups again on re-entry.
export const BODY_PARTS: readonly BodyPart[] = [rejectRules, repeatMarkReturn, excludeReturns, blockDrops, queueRule];
/**
 * From mangle, a packet nfips rejected leaves the mangle table at once
 * (ACCEPT ends only this table's hook): otherwise an operator's later
 * MARK or CONNMARK --restore-mark rule could overwrite the reject bit, and
 * filter, not seeing it, would pass what nfips rejected.
 */
export const rejectHold: BodyPart = (o) => [tagged(['-m', 'mark', '--mark', formatMark(o.rejectMark)], ['-j', 'ACCEPT'])];

/** Queueing from mangle: the REJECT rules live in filter, the only table that allows them; here the mark is held for them. */
export const MANGLE_BODY_PARTS: readonly BodyPart[] = [rejectHold, repeatMarkReturn, excludeReturns, blockDrops, queueRule];

export function chainBody(o: ResolvedPlanOptions, family: Family, parts: readonly BodyPart[] = BODY_PARTS): RuleSpec[] {
  return parts.flatMap((part) => part(o, family));
}

export function jumpRules(hook: Hook, chain: string, matches: readonly string[] = []): JumpRule[] {
  const forward: JumpRule = { parent: 'FORWARD', position: 1, spec: tagged([...matches], ['-j', chain]) };
  // Loopback traffic is the host talking to itself (and to nfips' own sockets).
  const input: JumpRule = { parent: 'INPUT', position: 1, spec: tagged(['!', '-i', 'lo', ...matches], ['-j', chain]) };
  if (hook === 'forward') return [forward];
  if (hook === 'input') return [input];
  return [forward, input];
}

/** Quotes one argument the way iptables-save does, so iptables-restore reads it back intact. */
export function restoreQuote(arg: string): string {
  if (arg !== '' && !/[\s"'\\#]/.test(arg)) return arg;
  return `"${arg.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

export function ruleLine(action: '-A' | '-I' | '-D', chain: string, spec: RuleSpec, quote: (s: string) => string = restoreQuote): string {
  return [action, chain, ...spec].map(quote).join(' ');
}

/** Fills the template; template comment lines are dropped. */
export function renderRestore(template: string, chain: string, body: readonly RuleSpec[], table: QueueTable = 'filter'): string {
  const out: string[] = [];
  for (const raw of template.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.trimStart().startsWith('#') || line.trim() === '') continue;
    if (line.trim() === '@RULES@') out.push(...body.map((spec) => ruleLine('-A', chain, spec)));
    else out.push(line.split('@CHAIN@').join(chain).split('@TABLE@').join(table));
  }
  const left = out.find((l) => /@[A-Z_]+@/.test(l));
  if (left !== undefined) throw new Error(`iptables template has an unknown placeholder: ${left}`);
  if (!out.some((l) => l.trim() === 'COMMIT')) throw new Error('iptables template has no COMMIT line');
  return `${out.join('\n')}\n`;
}

/** The body as `iptables -S CHAIN` prints it back (without the -N line). */
export function bodyLines(tp: TablePlan, chain: string): string[] {
  return tp.body.map((spec) => ruleLine('-A', chain, spec));
}

/** The table whose chain holds the NFQUEUE rule (and the block DROPs). */
export function queueTable(fp: FamilyPlan): TablePlan {
  const tp = fp.tables.find((t) => t.queues);
  if (!tp) throw new Error(`plan for ${fp.family} has no queueing chain`);
  return tp;
}

function tablePlan(o: ResolvedPlanOptions, table: QueueTable, queues: boolean, body: RuleSpec[], jumps: JumpRule[], template: string): TablePlan {
  return { table, queues, body, restore: renderRestore(template, o.chain, body, table), jumps };
}

export function buildFamilyPlan(o: ResolvedPlanOptions, family: Family, template: string): FamilyPlan {
  const sets = blockSets(setPrefixFor(o.chain), family);
  if (!o.queueing) {
    // The one chain holds the block DROPs, so it is the table queueTable() finds.
    return { family, chain: o.chain, sets, tables: [tablePlan(o, 'filter', true, chainBody(o, family, [blockDrops]), jumpRules(o.hook, o.chain), template)] };
  }
  if (o.table === 'filter') {
    const tables = [tablePlan(o, 'filter', true, chainBody(o, family), jumpRules(o.hook, o.chain), template)];
    return { family, chain: o.chain, sets, tables };
  }
  // Only packets carrying the reject mark enter the filter chain, so every
  // other packet pays one mark test there.
  const rejectJumps = jumpRules(o.hook, o.chain, ['-m', 'mark', '--mark', formatMark(o.rejectMark)]);
  const tables = [
    tablePlan(o, 'filter', false, chainBody(o, family, [rejectRules]), rejectJumps, template),
    tablePlan(o, 'mangle', true, chainBody(o, family, MANGLE_BODY_PARTS), jumpRules(o.hook, o.chain), template),
  ];
  return { family, chain: o.chain, sets, tables };
}

export function buildPlan(options: IptablesPlanOptions, template: string = readTemplate()): IptablesPlan {
  const o = resolvePlanOptions(options);
  return { options: o, chain: o.chain, families: o.families.map((f) => buildFamilyPlan(o, f, template)) };
}
