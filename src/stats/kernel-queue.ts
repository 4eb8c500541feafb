// The kernel's own view of each queue, from /proc/net/netfilter/nfnetlink_queue.
import { readFileSync } from 'node:fs';

export interface KernelQueueStats {
  queue: number;
  portId: number;
  /** Packets waiting in the kernel for a verdict. */
  queueTotal: number;
  copyMode: number;
  copyRange: number;
  /** Dropped because the queue was full (or passed, under fail-open). */
  queueDropped: number;
  /** Dropped because the netlink socket could not take them. */
  userDropped: number;
  idSequence: number;
}

export function parseKernelQueueStats(text: string): KernelQueueStats[] {
  const out: KernelQueueStats[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.slice(0, 8).some((x) => !Number.isFinite(x))) continue;
    out.push({
      queue: f[0],
      portId: f[1],
      queueTotal: f[2],
      copyMode: f[3],
      copyRange: f[4],
      queueDropped: f[5],
      userDropped: f[6],
      idSequence: f[7],
    });
  }
  return out;
}

export function readKernelQueueStats(file = '/proc/net/netfilter/nfnetlink_queue'): KernelQueueStats[] {
  try {
    return parseKernelQueueStats(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
}
