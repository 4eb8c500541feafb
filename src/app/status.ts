// What `nfips status` answers: rules, queues, detection, learning, the
// chain's state, what went uninspected, and the blocks in force.
import { BlockManager } from '../blocks/manager';
import { Detector, DetectorQueueStats } from '../detect/detector';
import { IptablesPlan } from '../iptables/plan';
import { QueueSupervisor } from '../queue/supervisor';
import { readKernelQueueStats } from '../stats/kernel-queue';
import { ChainGuard } from './chain-guard';
import type { CrowdSec } from '../crowdsec/setup';
import { RunOptions } from './run-options';
import { blockSummary, chainCounters } from './stats-report';

export async function statusOf(sup: QueueSupervisor, startedAt: number, detector: Detector | null, blocks: BlockManager, o: RunOptions, plan: IptablesPlan, learning: Record<string, unknown> | null, guard: ChainGuard, crowdsec: CrowdSec | null): Promise<Record<string, unknown>> {
  const kernel = new Map(readKernelQueueStats().map((k) => [k.queue, k]));
  const classifier: Record<number, DetectorQueueStats> = detector?.queueStats() ?? {};
  const queues = sup.snapshot();
  const chain = await chainCounters(o, plan);
  return {
    pid: process.pid,
    uptime_s: Math.round((Date.now() - startedAt) / 1000),
    mode: o.mode,
    rules_mode: o.rulesMode,
    fail_closed: o.failClosed,
    rules: { version: sup.rulesVersion, file: sup.rules.origin.file, sha256: sup.rules.origin.sha256, count: sup.rules.rules.length, lock: sup.rules.lock, default: sup.rules.default },
    queues: queues.map((c) => ({ ...c, kernel: kernel.get(c.queue) ?? null, classifier: classifier[c.queue] ?? null })),
    // The session table (the flow budget) under pressure, and the flow records.
    flows: {
      log: o.flowLog,
      rate_per_queue: o.flowLogRate,
      logged: queues.reduce((n, c) => n + c.flowsLogged, 0),
      suppressed: queues.reduce((n, c) => n + c.flowsSuppressed, 0),
      evictions: queues.reduce((n, c) => n + c.flowEvictions, 0),
      overflows: queues.reduce((n, c) => n + c.flowOverflows, 0),
    },
    detection: detector ? { sources: detector.stats().sources, traffic_episode_open: detector.stats().traffic_episode_open } : null,
    learning,
    // Whether nfips' chains are in place, i.e. whether it sees traffic at all.
    iptables: { table: o.table, ...(await guard.chainStatus()) },
    // Sent to the queue but never received by nfips: under fail-open they passed
    // uninspected (the kernel counts them nowhere else); under fail-closed they
    // were dropped (also in each queue's kernel.queueDropped).
    unverdicted: guard.unverdicted(),
    blocks: await blockSummary(blocks, o, chain, true),
    crowdsec: crowdsec?.status() ?? null,
  };
}
