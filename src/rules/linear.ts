// First-match rule evaluation, one rule after another. Issue-2 engine and,
// later, the reference the compiled matcher is checked against.
import { DecodedBatch, DecodeStatus, FragBits, PROTO_SCTP, PROTO_TCP, PROTO_UDP } from '../packet/decoded';
import { wordMask } from './address';
import { AddressMatch, Prefix, Rule } from './types';

export interface Matcher {
  /** Index of the first rule matching entry i, or -1. */
  match(d: DecodedBatch, i: number): number;
}

export function hasPorts(proto: number): boolean {
  return proto === PROTO_TCP || proto === PROTO_UDP || proto === PROTO_SCTP || proto === 136;
}

function prefixMatches(p: Prefix, family: number, words: Uint32Array, base: number): boolean {
  if (p.family !== family) return false;
  for (let k = 0; k < 4; k++) {
    const m = wordMask(p.bits, k);
    if (m === 0) return true;
    if (((words[base + k] & m) >>> 0) !== p.words[k]) return false;
  }
  return true;
}

export function addressMatches(a: AddressMatch, family: number, words: Uint32Array, base: number): boolean {
  let hit = false;
  for (const p of a.prefixes) {
    if (prefixMatches(p, family, words, base)) {
      hit = true;
      break;
    }
  }
  return hit !== a.negate;
}

export function ruleMatches(r: Rule, d: DecodedBatch, i: number): boolean {
  const proto = d.proto[i];
  if (r.protocol !== null && r.protocol !== proto) return false;
  const fam = d.family[i];
  if (r.source && !addressMatches(r.source, fam, d.src, i * 4)) return false;
  if (r.destination && !addressMatches(r.destination, fam, d.dst, i * 4)) return false;
  if (r.dport) {
    if (!hasPorts(proto) || d.frag[i] & FragBits.NonFirst) return false;
    const port = d.dport[i];
    let ok = false;
    for (const pr of r.dport) {
      if (port >= pr.lo && port <= pr.hi) {
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

export class LinearMatcher implements Matcher {
  constructor(private readonly rules: readonly Rule[]) {}

  match(d: DecodedBatch, i: number): number {
    if (d.status[i] !== DecodeStatus.Ok) return -1;
    const rules = this.rules;
    for (let r = 0; r < rules.length; r++) if (ruleMatches(rules[r], d, i)) return r;
    return -1;
  }
}
