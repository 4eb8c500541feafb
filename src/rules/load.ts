// Reads, validates and normalises a rule file, native or 2columnS. Any
// problem rejects the whole file: a gateway must never run on half a rule set.
import { createHash } from 'node:crypto';
import { ValidateFunction } from 'ajv';
import { describeSchemaErrors, JsonProblem, parseJsonBounded } from '../config/json-file';
import { readFileBounded } from '../config/safe-file';
import { parsePrefix } from './address';
import { hasPorts } from './linear';
import { RuleFileError } from './errors';
import { PROTOCOL_NUMBERS } from './protocols';
import {
  NATIVE_FIELD_EXPECTED,
  parsePortText,
  parseTcpFlags,
  ruleWording,
  TWOCOLUMNS_FIELD_EXPECTED,
  validate2Columns,
  validateNative,
  VAR_NAME,
  VAR_REF,
} from './schema';
import { AddressMatch, anyRule, FLOW_ESTABLISHED, FLOW_NEW, logsByDefault, PortRange, Rule, RuleFormat, RuleSet } from './types';

type PortJson = number | string | (number | string)[];
interface NativeRuleJson {
  id?: string;
  description?: string;
  action: Rule['action'];
  protocol?: string | number;
  source?: string | string[];
  destination?: string | string[];
  sport?: PortJson;
  dport?: PortJson;
  tcpFlags?: string;
  icmpType?: number;
  icmpCode?: number;
  in?: string;
  out?: string;
  hook?: 'forward' | 'input';
  family?: 'ipv4' | 'ipv6';
  state?: 'new' | 'established' | ('new' | 'established')[];
  enabled?: boolean;
  log?: boolean;
  severity?: number;
  sid?: number;
}
interface NativeFileJson {
  lock?: boolean;
  default?: 'accept' | 'drop';
  vars?: Record<string, (number | string)[]>;
  rules: NativeRuleJson[];
}
interface TwoColumnsRuleJson {
  source: string;
  destination: string;
  port: number;
  protocol: number;
  action: 0 | 1;
}
interface TwoColumnsFileJson {
  lock?: string;
  default?: string;
  rules: TwoColumnsRuleJson[];
}

export type FormatChoice = RuleFormat | 'auto';

/** 2columnS writes lock as a string and actions as numbers; native never does. */
export function detectFormat(doc: unknown): RuleFormat {
  if (doc === null || typeof doc !== 'object') return 'native';
  const d = doc as { lock?: unknown; rules?: unknown };
  if (typeof d.lock === 'string') return '2columns';
  if (Array.isArray(d.rules)) {
    const first = d.rules.find((r): r is Record<string, unknown> => r !== null && typeof r === 'object');
    if (first && (typeof first.action === 'number' || 'port' in first)) return '2columns';
  }
  return 'native';
}

/** Far above any real rule set (10,000 rules take about 2 MB); bounds what a mistaken path can make nfips read. */
export const MAX_RULES_BYTES = 32 << 20;

export function readRuleFile(file: string, format: FormatChoice = 'auto'): RuleSet {
  let text: string;
  try {
    text = readFileBounded(file, 'rules file', { maxBytes: MAX_RULES_BYTES });
  } catch (e) {
    throw new RuleFileError(file, [{ path: '', message: `cannot read file: ${(e as Error).message}` }]);
  }
  return parseRuleText(text, file, format);
}

function check(doc: unknown, file: string, validate: ValidateFunction, expected: Record<string, string>, format: RuleFormat): void {
  if (validate(doc)) return;
  const problems = describeSchemaErrors(validate.errors ?? [], doc, ruleWording(expected));
  if (format === '2columns') problems.unshift({ path: '', message: 'read as a 2columnS rules.json (lock is a string or actions are numbers); use --rules-format native to force the native format' });
  throw new RuleFileError(file, problems);
}

export function parseRuleText(text: string, file: string, format: FormatChoice = 'auto'): RuleSet {
  const parsed = parseJsonBounded(text);
  if ('problem' in parsed) throw new RuleFileError(file, [parsed.problem]);
  const doc = parsed.doc;
  const sha256 = createHash('sha256').update(text).digest('hex');
  const chosen = format === 'auto' ? detectFormat(doc) : format;
  if (chosen === '2columns') {
    check(doc, file, validate2Columns, TWOCOLUMNS_FIELD_EXPECTED, chosen);
    return normalise2Columns(doc as TwoColumnsFileJson, file, sha256);
  }
  check(doc, file, validateNative, NATIVE_FIELD_EXPECTED, chosen);
  return normaliseNative(doc as NativeFileJson, file, sha256);
}

function addressMatch(v: string | string[] | undefined): AddressMatch | null {
  if (v === undefined) return null;
  const list = Array.isArray(v) ? v : [v];
  // A "!" negates the whole list: "not in any of these" (mixing is rejected).
  const negate = list.some((s) => s.startsWith('!'));
  const texts = list.map((s) => (s.startsWith('!') ? s.slice(1) : s));
  if (texts.includes('*')) return negate ? { negate: false, prefixes: [] } : null;
  return { negate, prefixes: texts.map((t) => parsePrefix(t)!) };
}

function portRanges(v: PortJson | undefined): PortRange[] | null {
  if (v === undefined) return null;
  const list = Array.isArray(v) ? v : [v];
  return list.map((p) => (typeof p === 'number' ? { lo: p, hi: p } : parsePortText(p)!));
}

function protocolNumber(v: string | number | undefined): number | null {
  if (v === undefined || v === 'any') return null;
  return typeof v === 'number' ? v : PROTOCOL_NUMBERS[v];
}

function stateBits(v: NativeRuleJson['state']): number | null {
  if (v === undefined) return null;
  return (Array.isArray(v) ? v : [v]).reduce((bits, s) => bits | (s === 'new' ? FLOW_NEW : FLOW_ESTABLISHED), 0);
}

type VarKind = 'address' | 'port';
interface VarSet {
  kind: VarKind;
  items: (number | string)[];
}

/** Sorts each var into an address set or a port set (by its entries); a mix is a problem. */
function readVars(vars: NativeFileJson['vars'], problems: JsonProblem[]): Map<string, VarSet> {
  const out = new Map<string, VarSet>();
  for (const [name, items] of Object.entries(vars ?? {})) {
    if (!VAR_NAME.test(name)) {
      problems.push({ path: `/vars/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`, message: 'expected a var name of letters, digits and _ (not starting with a digit), at most 64 characters', value: name });
      continue;
    }
    // The schema let each item through as an address or a port; "*" is an address.
    const kinds = items.map((v): VarKind => (typeof v === 'string' && (v === '*' || parsePrefix(v) !== null) ? 'address' : 'port'));
    const mixed = kinds.findIndex((k) => k !== kinds[0]);
    if (mixed >= 0) {
      problems.push({ path: `/vars/${name}/${mixed}`, message: `expected ${kinds[0] === 'address' ? 'an address or CIDR' : 'a port or "lo-hi" range'} like the var's first entry: a var is either an address set or a port set`, value: items[mixed] });
      continue;
    }
    out.set(name, { kind: kinds[0], items });
  }
  return out;
}

/**
 * Replaces "$NAME" (and "!$NAME" for addresses) by the var's entries, so the
 * rest of loading, and the engine, never see a var. Problems are located at
 * the reference.
 */
function expandVars<T extends number | string>(v: T | T[] | undefined, kind: VarKind, vars: Map<string, VarSet>, at: string, problems: JsonProblem[]): T | T[] | undefined {
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? v : [v];
  if (!list.some((x) => typeof x === 'string' && x.includes('$'))) return v;
  const out: T[] = [];
  list.forEach((x, k) => {
    if (typeof x !== 'string') return void out.push(x);
    const negate = kind === 'address' && x.startsWith('!');
    const m = VAR_REF.exec(negate ? x.slice(1) : x);
    if (!m) return void out.push(x);
    const where = Array.isArray(v) ? `${at}/${k}` : at;
    const set = vars.get(m[1]);
    if (!set) {
      const known = [...vars.entries()].filter(([, s]) => s.kind === kind).map(([n]) => `$${n}`);
      problems.push({ path: where, message: `unknown var; expected one of the ${kind} vars defined under /vars${known.length ? ` (${known.join(', ')})` : ' (there are none)'}`, value: x });
      return;
    }
    if (set.kind !== kind) {
      problems.push({ path: where, message: `$${m[1]} is ${set.kind === 'port' ? 'a port' : 'an address'} set; expected ${kind === 'port' ? 'a port' : 'an address'} var here`, value: x });
      return;
    }
    for (const item of set.items) out.push((negate ? `!${String(item)}` : item) as T);
  });
  return out;
}

function normaliseNative(doc: NativeFileJson, file: string, sha256: string): RuleSet {
  const problems: JsonProblem[] = [];
  const seen = new Map<string, number>();
  const sids = new Map<number, number>();
  const vars = readVars(doc.vars, problems);
  const rules: Rule[] = doc.rules.map((raw, index) => {
    const at = `/rules/${index}`;
    const r: NativeRuleJson = {
      ...raw,
      source: expandVars(raw.source, 'address', vars, `${at}/source`, problems),
      destination: expandVars(raw.destination, 'address', vars, `${at}/destination`, problems),
      sport: expandVars(raw.sport, 'port', vars, `${at}/sport`, problems),
      dport: expandVars(raw.dport, 'port', vars, `${at}/dport`, problems),
    };
    if (r.sid !== undefined) {
      const prevSid = sids.get(r.sid);
      if (prevSid !== undefined) problems.push({ path: `${at}/sid`, message: `duplicate sid, already used by /rules/${prevSid}; sids must be unique within the file`, value: r.sid });
      else sids.set(r.sid, index);
    }
    const id = r.id ?? `rule-${index}`;
    const prev = seen.get(id);
    if (prev !== undefined) {
      problems.push(
        r.id === undefined
          ? { path: at, message: `has no id, and the one generated for it is already used by /rules/${prev}`, value: id }
          : { path: `${at}/id`, message: `duplicate id, already used by /rules/${prev}`, value: id },
      );
    } else seen.set(id, index);
    for (const field of ['source', 'destination'] as const) {
      const v = r[field];
      if (Array.isArray(v) && v.some((s) => s.startsWith('!')) && v.some((s) => !s.startsWith('!'))) {
        problems.push({ path: `${at}/${field}`, message: 'mixes negated and plain entries; negate all or none', value: v });
      }
    }
    const protocol = protocolNumber(r.protocol);
    if ((r.sport !== undefined || r.dport !== undefined) && protocol !== null && !hasPorts(protocol)) {
      problems.push({ path: `${at}/${r.dport !== undefined ? 'dport' : 'sport'}`, message: 'only tcp, udp, sctp and udplite packets have ports, but the rule is for another protocol', value: r.dport ?? r.sport });
    }
    if (r.tcpFlags !== undefined && protocol !== null && protocol !== 6) {
      problems.push({ path: `${at}/tcpFlags`, message: 'only TCP packets have TCP flags, but the rule is for another protocol', value: r.tcpFlags });
    }
    if ((r.icmpType !== undefined || r.icmpCode !== undefined) && protocol !== null && protocol !== 1 && protocol !== 58) {
      problems.push({ path: `${at}/${r.icmpType !== undefined ? 'icmpType' : 'icmpCode'}`, message: 'only icmp/icmpv6 packets have ICMP types, but the rule is for another protocol', value: r.icmpType ?? r.icmpCode });
    }
    const rule: Rule = {
      ...anyRule(id, r.action),
      ...(r.description === undefined ? {} : { description: r.description }),
      protocol,
      source: addressMatch(r.source),
      destination: addressMatch(r.destination),
      sport: portRanges(r.sport),
      dport: portRanges(r.dport),
      tcpFlags: r.tcpFlags === undefined ? null : parseTcpFlags(r.tcpFlags),
      icmpType: r.icmpType ?? null,
      icmpCode: r.icmpCode ?? null,
      in: r.in ?? null,
      out: r.out ?? null,
      hook: r.hook === undefined ? null : r.hook === 'input' ? 1 : 2,
      family: r.family === undefined ? null : r.family === 'ipv4' ? 4 : 6,
      state: stateBits(r.state),
      enabled: r.enabled ?? true,
      log: r.log ?? logsByDefault(r.action),
      severity: r.severity ?? null,
      sid: r.sid ?? null,
    };
    return rule;
  });
  if (problems.length) throw new RuleFileError(file, problems);
  return { lock: doc.lock ?? false, default: doc.default ?? 'accept', rules, origin: { file, format: 'native', sha256 } };
}

const TWOCOLUMNS_ANY_PROTOCOL = 250;

/**
 * 2columnS semantics, as its kernel module applies them: exact IPv4 hosts or
 * "*", destination port with 0 = any, protocol number with 250 = any,
 * action 0 accept / 1 drop, default drops only on exactly "DROP". The
 * module only ever sees IPv4, so its rules never touch IPv6 packets.
 */
function normalise2Columns(doc: TwoColumnsFileJson, file: string, sha256: string): RuleSet {
  const host = (s: string): AddressMatch | null => (s === '*' ? null : { negate: false, prefixes: [parsePrefix(s)!] });
  const rules = doc.rules.map((r, index): Rule => ({
    ...anyRule(`2columns-${index}`, r.action === 1 ? 'drop' : 'accept'),
    family: 4,
    protocol: r.protocol === TWOCOLUMNS_ANY_PROTOCOL ? null : r.protocol,
    source: host(r.source),
    destination: host(r.destination),
    dport: r.port === 0 ? null : [{ lo: r.port, hi: r.port }],
  }));
  return {
    lock: (doc.lock ?? 'false').toLowerCase() === 'true',
    default: doc.default === 'DROP' ? 'drop' : 'accept',
    rules,
    origin: { file, format: '2columns', sha256 },
  };
}
