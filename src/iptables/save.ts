// Reading `iptables -S` output (pure): words, rules, targets, chains, jumps.
import { ParentChain } from './plan';

const PARENTS: readonly ParentChain[] = ['FORWARD', 'INPUT'];

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
