// Reads, validates and normalises a rule file, native or 2columnS. Any
// problem rejects the whole file: a gateway must never run on half a rule set.
import { createHash } from 'node:crypto';
import { ValidateFunction } from 'ajv';
import { parseJsonBounded } from '../config/json-file';
import { readFileBounded } from '../config/safe-file';
import { parsePrefix } from './address';
import { hasPorts } from './linear';
import { RuleFileError, RuleProblem } from './errors';
import { PROTOCOL_NUMBERS } from './protocols';
import {
  describeAjvErrors,
  NATIVE_FIELD_EXPECTED,
  parsePortText,
  parseTcpFlags,
  TWOCOLUMNS_FIELD_EXPECTED,
  validate2Columns,
  validateNative,
} from './schema';
import { AddressMatch, anyRule, FLOW_ESTABLISHED, FLOW_NEW, PortRange, Rule, RuleFormat, RuleSet } from './types';

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
}
interface NativeFileJson {
  lock?: boolean;
  default?: 'accept' | 'drop';
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

function pointerGet(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
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
  const problems: RuleProblem[] = describeAjvErrors(validate.errors ?? [], expected).map((p) => ({ ...p, value: pointerGet(doc, p.path) }));
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

function normaliseNative(doc: NativeFileJson, file: string, sha256: string): RuleSet {
  const problems: RuleProblem[] = [];
  const seen = new Map<string, number>();
  const rules: Rule[] = doc.rules.map((r, index) => {
    const at = `/rules/${index}`;
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
