// What the block DROP rules at the top of the chain stopped, from iptables'
// own counters: packets that never reached the queue.
import { IptablesBinaries, readCounters } from '../iptables/apply';
import { Family } from '../iptables/plan';

export interface BlockDropCounters {
  packets: number;
  bytes: number;
  /** Per set name. */
  sets: Record<string, { packets: number; bytes: number }>;
}

export async function readBlockCounters(families: readonly Family[], bins: IptablesBinaries, chain: string): Promise<BlockDropCounters> {
  const out: BlockDropCounters = { packets: 0, bytes: 0, sets: {} };
  for (const family of families) {
    for (const r of await readCounters(family, bins, chain)) {
      const m = /match-set (\S+) /.exec(r.extra);
      if (!m || r.target !== 'DROP') continue;
      out.packets += r.packets;
      out.bytes += r.bytes;
      out.sets[m[1] as string] = { packets: r.packets, bytes: r.bytes };
    }
  }
  return out;
}
