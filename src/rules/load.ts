// Reads, validates and normalises a rule file. Any problem rejects the whole
// file: a gateway must never run on half a rule set.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parsePrefix } from './address';
import { RuleFileError, RuleProblem } from './errors';
import { PROTOCOL_NUMBERS } from './protocols';
import { describeAjvErrors, parsePortText, validateNative } from './schema';
import { AddressMatch, PortRange, Rule, RuleSet } from './types';

interface NativeRuleJson {
  id?: string;
  description?: string;
  action: 'accept' | 'drop';
  protocol?: string | number;
  source?: string | string[];
  destination?: string | string[];
  dport?: number | string | (number | string)[];
}
interface NativeFileJson {
  lock?: boolean;
  default?: 'accept' | 'drop';
  rules: NativeRuleJson[];
}

function pointerGet(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
}

export function readRuleFile(file: string): RuleSet {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RuleFileError(file, [{ path: '', message: `cannot read file: ${(e as Error).message}` }]);
  }
  return parseRuleText(text, file);
}

export function parseRuleText(text: string, file: string): RuleSet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new RuleFileError(file, [{ path: '', message: `not valid JSON: ${(e as Error).message}` }]);
  }
  const sha256 = createHash('sha256').update(text).digest('hex');
  if (!validateNative(doc)) {
    const problems: RuleProblem[] = describeAjvErrors(validateNative.errors ?? []).map((p) => ({
      ...p,
      value: pointerGet(doc, p.path),
    }));
    throw new RuleFileError(file, problems);
  }
  return normaliseNative(doc as NativeFileJson, file, sha256);
}

function addressMatch(v: string | string[] | undefined): AddressMatch | null {
  if (v === undefined) return null;
  const list = Array.isArray(v) ? v : [v];
  // A "!" on any entry negates the whole list: "not in any of these".
  const negate = list.some((s) => s.startsWith('!'));
  const texts = list.map((s) => (s.startsWith('!') ? s.slice(1) : s));
  if (texts.includes('*')) return negate ? { negate: false, prefixes: [] } : null;
  return { negate, prefixes: texts.map((t) => parsePrefix(t)!) };
}

function portRanges(v: NativeRuleJson['dport']): PortRange[] | null {
  if (v === undefined) return null;
  const list = Array.isArray(v) ? v : [v];
  return list.map((p) => (typeof p === 'number' ? { lo: p, hi: p } : parsePortText(p)!));
}

function protocolNumber(v: string | number | undefined): number | null {
  if (v === undefined || v === 'any') return null;
  return typeof v === 'number' ? v : PROTOCOL_NUMBERS[v];
}

function normaliseNative(doc: NativeFileJson, file: string, sha256: string): RuleSet {
  const problems: RuleProblem[] = [];
  const seen = new Map<string, number>();
  const rules: Rule[] = doc.rules.map((r, index) => {
    const id = r.id ?? `rule-${index}`;
    const prev = seen.get(id);
    if (prev !== undefined) {
      problems.push({ path: `/rules/${index}/id`, message: `duplicate id, already used by /rules/${prev}`, value: id });
    } else {
      seen.set(id, index);
    }
    for (const field of ['source', 'destination'] as const) {
      const v = r[field];
      if (Array.isArray(v) && v.some((s) => s.startsWith('!')) && v.some((s) => !s.startsWith('!'))) {
        problems.push({ path: `/rules/${index}/${field}`, message: 'mixes negated and plain entries; negate all or none', value: v });
      }
    }
    return {
      id,
      ...(r.description === undefined ? {} : { description: r.description }),
      action: r.action,
      protocol: protocolNumber(r.protocol),
      source: addressMatch(r.source),
      destination: addressMatch(r.destination),
      dport: portRanges(r.dport),
    };
  });
  if (problems.length) throw new RuleFileError(file, problems);
  return { lock: doc.lock ?? false, default: doc.default ?? 'accept', rules, origin: { file, format: 'native', sha256 } };
}
