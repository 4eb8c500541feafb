// Networks nfips never blocks: the operator's --allow and --exclude lists,
// the gateway's own addresses (read fresh each time, so an address added
// later is protected too) and addresses no attacker can own.
import { networkInterfaces } from 'node:os';
import { formatPrefix, parsePrefix } from '../rules/address';
import { Prefix } from '../rules/types';
import { prefixesOverlap } from './block';

// Loopback, unspecified, link-local (IPv6: neighbour discovery), multicast.
const ALWAYS = ['127.0.0.0/8', '0.0.0.0/32', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32', '::1/128', '::/128', 'ff00::/8', 'fe80::/10'];

export interface AllowEntry {
  prefix: Prefix;
  why: 'allow' | 'exclude' | 'own address' | 'reserved';
}

export function ownAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((i) => i.address.replace(/%.*$/, ''));
}

function conflictIn(entries: readonly AllowEntry[], p: Prefix): string | null {
  for (const e of entries) {
    if (prefixesOverlap(e.prefix, p)) return `${formatPrefix(p)} overlaps ${formatPrefix(e.prefix)} (${e.why})`;
  }
  return null;
}

export class Allowlist {
  readonly #fixed: AllowEntry[];

  /** Throws on a CIDR that does not parse (flags are checked before this). */
  constructor(allow: readonly string[], exclude: readonly string[], private readonly own: () => string[] = ownAddresses) {
    const parse = (text: string, why: AllowEntry['why']): AllowEntry => {
      const prefix = parsePrefix(text);
      if (!prefix) throw new Error(`invalid allowlist network "${text}"`);
      return { prefix, why };
    };
    this.#fixed = [...allow.map((c) => parse(c, 'allow')), ...exclude.map((c) => parse(c, 'exclude')), ...ALWAYS.map((c) => parse(c, 'reserved'))];
  }

  /** Why the network may not be blocked (it overlaps an allowlisted one), or null. */
  conflict(p: Prefix): string | null {
    return conflictIn(this.entries(), p);
  }

  /** conflict() for a batch: the gateway's addresses are read once, not per network. */
  checker(): (p: Prefix) => string | null {
    const entries = this.entries();
    return (p) => conflictIn(entries, p);
  }

  /** The gateway's own addresses as one string: a change means refusals for "own address" may no longer hold. */
  ownKey(): string {
    return [...new Set(this.own())].sort().join(' ');
  }

  entries(): AllowEntry[] {
    const own = this.own().flatMap((a) => {
      const prefix = parsePrefix(a);
      return prefix ? [{ prefix, why: 'own address' as const }] : [];
    });
    return [...this.#fixed, ...own];
  }
}
