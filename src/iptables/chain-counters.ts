// What the NFIPS chain's own counters say: packets the block DROP rules
// stopped before the queue, and packets the NFQUEUE rule sent toward the
// queue. Under fail-open the kernel passes queue overflow without counting
// it anywhere else, so the NFQUEUE rule's count minus what nfips received is
// the only measure of packets that passed uninspected.
import { IptablesBinaries, readCounters } from './apply';
import { Family, QueueTable } from './plan';

export interface ChainCounters {
  blockDrops: { packets: number; bytes: number; sets: Record<string, { packets: number; bytes: number }> };
  /** Packets that hit the NFQUEUE rule, all families. */
  queued: number;
}

/** `table`: the one whose chain queues (and holds the block DROPs). */
export async function readChainCounters(families: readonly Family[], bins: IptablesBinaries, chain: string, table: QueueTable): Promise<ChainCounters> {
  const out: ChainCounters = { blockDrops: { packets: 0, bytes: 0, sets: {} }, queued: 0 };
  for (const family of families) {
    for (const r of await readCounters(family, bins, chain, table)) {
      if (r.target === 'NFQUEUE') out.queued += r.packets;
      const m = /match-set (\S+) /.exec(r.extra);
      if (!m || r.target !== 'DROP') continue;
      out.blockDrops.packets += r.packets;
      out.blockDrops.bytes += r.bytes;
      out.blockDrops.sets[m[1] as string] = { packets: r.packets, bytes: r.bytes };
    }
  }
  return out;
}
