// The kernel side of blocks: one ipset per kind of block and family, each
// with per-entry timeouts (the kernel expires entries itself, even if nfips
// is gone) and counters (packets and bytes each block stopped).
import { Family } from '../exec/tools';
import { Block, BlockProto } from './block';

export type SetKind = 'src' | BlockProto | 'svc';

export interface BlockSet {
  kind: SetKind;
  family: Family;
  name: string;
  type: 'hash:net' | 'hash:net,port';
  /** iptables matches of the DROP rule that enforces it. */
  match: string[];
}

/** ipset names are at most 31 characters. */
export function setPrefixFor(chain: string): string {
  return chain.toLowerCase().slice(0, 24);
}

export function blockSets(prefix: string, family: Family): BlockSet[] {
  const f = family === 'ipv4' ? '4' : '6';
  const icmp = family === 'ipv4' ? 'icmp' : 'ipv6-icmp';
  const set = (kind: SetKind, type: BlockSet['type'], match: (name: string) => string[]): BlockSet => {
    const name = `${prefix}-${kind}${f}`;
    return { kind, family, name, type, match: match(name) };
  };
  return [
    set('src', 'hash:net', (n) => ['-m', 'set', '--match-set', n, 'src']),
    set('tcp', 'hash:net', (n) => ['-p', 'tcp', '-m', 'set', '--match-set', n, 'src']),
    set('udp', 'hash:net', (n) => ['-p', 'udp', '-m', 'set', '--match-set', n, 'src']),
    set('icmp', 'hash:net', (n) => ['-p', icmp, '-m', 'set', '--match-set', n, 'src']),
    // Source address and (protocol, destination port) of the packet.
    set('svc', 'hash:net,port', (n) => ['-m', 'set', '--match-set', n, 'src,dst']),
  ];
}

export function familyOf(b: Pick<Block, 'prefix'>): Family {
  return b.prefix.family === 4 ? 'ipv4' : 'ipv6';
}

/** The set and the member that enforce a block. */
export function entryOf(prefix: string, b: Pick<Block, 'prefix' | 'net' | 'scope' | 'proto' | 'port'>): { set: string; member: string } {
  const f = familyOf(b) === 'ipv4' ? '4' : '6';
  if (b.scope === 'source') return { set: `${prefix}-src${f}`, member: b.net };
  if (b.scope === 'protocol') return { set: `${prefix}-${b.proto}${f}`, member: b.net };
  return { set: `${prefix}-svc${f}`, member: `${b.net},${b.proto}:${b.port}` };
}

/** The kernel's limit for a timeout, in seconds. */
export const MAX_IPSET_TIMEOUT = 2_147_483;

/** Whole seconds left, at least 1 (0 would mean "never expires"). */
export function remainingSeconds(b: Pick<Block, 'expiresAt'>, now: number): number {
  return Math.min(MAX_IPSET_TIMEOUT, Math.max(1, Math.ceil((b.expiresAt - now) / 1000)));
}

export const SET_MAXELEM = 65536;

/** `ipset restore` input: (re)creates the sets of these families and adds the blocks. */
export function restoreScript(prefix: string, families: readonly Family[], blocks: readonly Block[], now: number): string {
  const lines: string[] = [];
  for (const family of families) {
    for (const s of blockSets(prefix, family)) {
      lines.push(`create ${s.name} ${s.type} family ${family === 'ipv4' ? 'inet' : 'inet6'} timeout 0 counters maxelem ${SET_MAXELEM}`);
    }
  }
  for (const b of blocks) {
    if (!families.includes(familyOf(b))) continue;
    const e = entryOf(prefix, b);
    lines.push(`add ${e.set} ${e.member} timeout ${remainingSeconds(b, now)}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface SetEntry {
  set: string;
  member: string;
  /** Seconds left as the kernel sees it; 0 for none. */
  timeout: number;
  packets: number;
  bytes: number;
}

/** Parses the `add` lines of `ipset save`. */
export function parseSave(text: string): SetEntry[] {
  const out: SetEntry[] = [];
  for (const line of text.split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w[0] !== 'add' || w.length < 3) continue;
    const num = (key: string) => {
      const i = w.indexOf(key, 3);
      return i > 0 && i + 1 < w.length ? Number(w[i + 1]) : 0;
    };
    out.push({ set: w[1] as string, member: w[2] as string, timeout: num('timeout'), packets: num('packets'), bytes: num('bytes') });
  }
  return out;
}
