// What the NFIPS chain's own counters say about blocks: packets the block
// DROP rules stopped before the queue. (The NFQUEUE rule's counter, the
// measure of packets that failed open, is read by the chain watchdog.)
import { IptablesBinaries, readCounters } from './apply';
import { Family, QueueTable } from './plan';

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
