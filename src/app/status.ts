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
import { blockSummary, captureCounters, chainCounters } from './stats-report';

export async function statusOf(sup: QueueSupervisor, startedAt: number, detector: Detector | null, blocks: BlockManager | null, o: RunOptions, plan: IptablesPlan, learning: Record<string, unknown> | null, guard: ChainGuard | null, crowdsec: CrowdSec | null): Promise<Record<string, unknown>> {
  const kernel = new Map(readKernelQueueStats().map((k) => [k.queue, k]));
  const classifier: Record<number, DetectorQueueStats> = detector?.queueStats() ?? {};
  const queues = sup.snapshot();
  const chain = blocks ? await chainCounters(o, plan) : null;
  return {
    pid: process.pid,
    uptime_s: Math.round((Date.now() - startedAt) / 1000),
    mode: o.mode,
    rules_mode: o.rulesMode,
    fail_closed: o.failClosed,
    rules: { version: sup.rulesVersion, file: sup.rules.origin.file, sha256: sup.rules.origin.sha256, count: sup.rules.rules.length, lock: sup.rules.lock, default: sup.rules.default },
    // nfips watch: one entry per capture thread, with what its captures lost.
    ...(o.capture
      ? { capture: { ifaces: o.capture.ifaces, nflog_groups: o.capture.nflogGroups, filter: o.capture.filter || null, block: o.capture.block }, workers: queues.map((c) => ({ ...c, capture: captureCounters(c), classifier: classifier[c.queue] ?? null })) }
      : { queues: queues.map((c) => ({ ...c, kernel: kernel.get(c.queue) ?? null, classifier: classifier[c.queue] ?? null })) }),
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
    iptables: guard ? { table: plan.options.table, queueing: plan.options.queueing, ...(await guard.chainStatus()) } : null,
    // Sent to the queue but never received by nfips: under fail-open they passed
    // uninspected (the kernel counts them nowhere else); under fail-closed they
    // were dropped (also in each queue's kernel.queueDropped).
    unverdicted: guard?.unverdicted() ?? null,
    blocks: blocks && chain ? await blockSummary(blocks, o, chain, true) : null,
    crowdsec: crowdsec?.status() ?? null,
  };
}
