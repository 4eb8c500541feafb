// Decisions as the Local API streams them (GET /v1/decisions/stream), checked
// field by field (an answer without both lists is an error, not "nothing to
// do"; one garbled entry is set aside and reported, not applied), and what
// nfips makes of each one: a source block on the IP or range, or a reason to
// leave it alone. Pure.
import { BlockTarget, makeTarget } from '../blocks/block';
import { parseGoDuration } from './go-duration';

export interface Decision {
  id: number;
  origin: string;
  scenario: string;
  scope: string;
  type: string;
  value: string;
  /** Milliseconds left when the answer was written; <= 0 once ended. */
  remainingMs: number;
}

export interface StreamAnswer {
  new: Decision[];
  deleted: Decision[];
  /** Entries that could not be read, with where and why; left out of new/deleted. */
  malformed?: { where: string; reason: string }[];
}

/**
 * 1.4.6 writes null, not [], for an empty list, but always writes both keys:
 * a 200 without them (a proxy's or another service's answer) must not read
 * as "no decisions", or a startup pull would lift every CrowdSec block.
 */
export function parseStreamAnswer(doc: unknown): StreamAnswer {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('the stream answer is not a JSON object');
  const o = doc as Record<string, unknown>;
  for (const k of ['new', 'deleted']) if (!(k in o)) throw new Error(`the stream answer has no "${k}" key (not a decision stream)`);
  const malformed: { where: string; reason: string }[] = [];
  return { new: decisionList(o.new, 'new', malformed), deleted: decisionList(o.deleted, 'deleted', malformed), malformed };
}

function decisionList(v: unknown, name: string, malformed: { where: string; reason: string }[]): Decision[] {
  if (v === null) return [];
  if (!Array.isArray(v)) throw new Error(`"${name}" is not a list`);
  const out: Decision[] = [];
  for (const [i, d] of v.entries()) {
    try {
      out.push(parseDecision(d, `${name}[${i}]`));
    } catch (e) {
      malformed.push({ where: `${name}[${i}]`, reason: (e as Error).message });
    }
  }
  return out;
}

function parseDecision(d: unknown, where: string): Decision {
  if (typeof d !== 'object' || d === null) throw new Error(`${where} is not an object`);
  const o = d as Record<string, unknown>;
  const str = (k: string): string => {
    if (typeof o[k] !== 'string') throw new Error(`${where}.${k} is not a string`);
    return o[k] as string;
  };
  if (typeof o.id !== 'number' || !Number.isInteger(o.id)) throw new Error(`${where}.id is not an integer`);
  let remainingMs: number;
  try {
    remainingMs = parseGoDuration(str('duration'));
  } catch (e) {
    throw new Error(`${where}.duration: ${(e as Error).message}`);
  }
  return { id: o.id, origin: str('origin'), scenario: str('scenario'), scope: str('scope'), type: str('type'), value: str('value'), remainingMs };
}

export type Mapped = { kind: 'block'; target: BlockTarget } | { kind: 'skip'; reason: string };

/**
 * Bans on an Ip or a Range become a source block of exactly that network
 * (a range stays a range). Other types (captcha...) and scopes (Country,
 * AS...) are for other remediation components.
 */
export function mapDecision(d: Decision): Mapped {
  if (d.type.toLowerCase() !== 'ban') return { kind: 'skip', reason: `type ${d.type} is not ban` };
  const scope = d.scope.toLowerCase();
  if (scope !== 'ip' && scope !== 'range') return { kind: 'skip', reason: `scope ${d.scope} is not Ip or Range` };
  if (scope === 'ip' && d.value.includes('/')) return { kind: 'skip', reason: `an Ip decision with a prefix: ${d.value}` };
  try {
    return { kind: 'block', target: makeTarget(d.value, 'source') };
  } catch (e) {
    return { kind: 'skip', reason: (e as Error).message };
  }
}
