// A chain's rule counters (`iptables -L -v -x`), and what the NFIPS chain's own counters say about blocks: packets the block
// DROP rules stopped before the queue. (The NFQUEUE rule's counter, the
// measure of packets that failed open, is read by the chain watchdog.)
import { must } from '../exec/run';
import { DEFAULT_BINARIES, Family, IptablesBinaries } from '../exec/tools';
import { iptablesCommand } from './commands';
import { DEFAULT_CHAIN, QueueTable } from './plan';

export interface RuleCounter {
  /** 1-based position in the chain, as in `-L --line-numbers`. */
  index: number;
  packets: number;
  bytes: number;
  target: string;
  prot: string;
  in: string;
  out: string;
  source: string;
  destination: string;
  /** Match and target details, e.g. "mark match 0x1/0x1 /* nfips *\/". */
  extra: string;
}

// iptables prints an "opt" column ("--", "-f", "!f"); legacy ip6tables leaves it blank.
const OPT = /^(--|-f|!f)$/;

/** Parses `iptables -L CHAIN -v -n -x`. Assumes every rule has a target, as nfips' rules do. */
export function parseCounters(listing: string): RuleCounter[] {
  const lines = listing.split('\n');
  const header = lines.findIndex((l) => /^\s*pkts\s+bytes\s+target/.test(l));
  if (header < 0) return [];
  const rules: RuleCounter[] = [];
  for (const line of lines.slice(header + 1)) {
    if (line.trim() === '') continue;
    if (/^Chain /.test(line)) break;
    const words = [...line.matchAll(/\S+/g)];
    const w = words.map((m) => m[0]);
    const hasOpt = OPT.test(w[4] ?? '');
    const fields = hasOpt ? 9 : 8;
    const last = words[fields - 1];
    if (last === undefined || !/^\d+$/.test(w[0] ?? '') || !/^\d+$/.test(w[1] ?? '')) {
      throw new Error(`cannot parse iptables counter line: ${line}`);
    }
    const [inIf, outIf, source, destination] = w.slice(fields - 4, fields) as [string, string, string, string];
    rules.push({
      index: rules.length + 1,
      packets: Number(w[0]),
      bytes: Number(w[1]),
      target: w[2] as string,
      prot: w[3] as string,
      in: inIf,
      out: outIf,
      source,
      destination,
      extra: line.slice((last.index ?? 0) + last[0].length).trim(),
    });
  }
  return rules;
}

export async function readCounters(
  family: Family,
  bins: IptablesBinaries = DEFAULT_BINARIES,
  chain: string = DEFAULT_CHAIN,
  table: QueueTable = 'filter',
): Promise<RuleCounter[]> {
  const r = await must(iptablesCommand(family, bins, ['-L', chain, '-v', '-n', '-x'], table));
  return parseCounters(r.stdout);
}

export interface ChainCounters {
  blockDrops: { packets: number; bytes: number; sets: Record<string, { packets: number; bytes: number }> };
}

/** `table`: the one whose chain queues (and holds the block DROPs). */
export async function readChainCounters(families: readonly Family[], bins: IptablesBinaries, chain: string, table: QueueTable): Promise<ChainCounters> {
  const out: ChainCounters = { blockDrops: { packets: 0, bytes: 0, sets: {} } };
  for (const family of families) {
    for (const r of await readCounters(family, bins, chain, table)) {
      const m = /match-set (\S+) /.exec(r.extra);
      if (!m || r.target !== 'DROP') continue;
      out.blockDrops.packets += r.packets;
      out.blockDrops.bytes += r.bytes;
      out.blockDrops.sets[m[1] as string] = { packets: r.packets, bytes: r.bytes };
    }
  }
  return out;
}
