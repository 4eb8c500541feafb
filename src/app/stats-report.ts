// The periodic records of `nfips run` (stats, rule_stats, block_stats and
// their _final forms at stop) and the console's one summary line.
import { BlockManager } from '../blocks/manager';
import { Detector, DetectorQueueStats } from '../detect/detector';
import { ChainCounters, readChainCounters } from '../iptables/chain-counters';
import { IptablesPlan } from '../iptables/plan';
import { EventLog } from '../log/event-log';
import { QueueCounters, QueueSupervisor } from '../queue/supervisor';
import { readKernelQueueStats } from '../stats/kernel-queue';
import { summaryLine } from '../stats/summary';
import { ChainGuard } from './chain-guard';
import { binariesFor } from './run-config';
import { RunOptions } from './run-options';

const RULE_STATS_MAX = 50;

export class StatsReporter {
  #last = new Map<number, QueueCounters>();
  #lastAt = Date.now();
  /** Received packets at the last console line, and when. */
  #summarised = { received: 0, at: Date.now() };

  constructor(
    private readonly sup: QueueSupervisor,
    private readonly log: EventLog,
    private readonly detector: Detector | null,
    private readonly blocks: BlockManager | null,
    private readonly guard: ChainGuard | null,
    private readonly o: RunOptions,
    private readonly plan: IptablesPlan,
  ) {}

  /** Every --stats-interval: the queue and rule records, then the blocks', then the console line. */
  tick(): void {
    this.report();
    void this.reportBlocks(false).then((chain) => this.summarise(chain));
  }

  async reportBlocks(final: boolean): Promise<ChainCounters | { error: string } | null> {
    if (!this.blocks) return null;
    const chain = await chainCounters(this.o, this.plan);
    this.log.event(final ? 'block_stats_final' : 'block_stats', await blockSummary(this.blocks, this.o, chain, false));
    return chain;
  }

  /** The console's one line per interval (at info level; the JSON log has the full records). */
  summarise(chain: ChainCounters | { error: string } | null): void {
    const queues = this.sup.snapshot();
    const now = Date.now();
    const ds = this.detector?.stats();
    const alerts = queues.reduce((n, c) => n + c.alerts, 0) + (ds ? ds.sources.alerts + ds.sources.distributed_alerts + Object.values(ds.queues).reduce((n, q) => n + q.alerts, 0) : 0);
    const text = summaryLine({
      queues,
      previousReceived: this.#summarised.received,
      seconds: (now - this.#summarised.at) / 1000,
      alerts,
      blocks: this.blocks && chain ? { active: this.blocks.size, kernelDropped: 'error' in chain ? null : chain.blockDrops.packets } : null,
      uninspected: this.guard?.unverdicted() ?? null,
      capture: this.o.capture !== null,
    });
    this.#summarised = { received: queues.reduce((n, c) => n + c.received, 0), at: now };
    this.log.event('summary', { console_only: true, console_text: text });
  }

  /** Cumulative per-rule counters of the current rule set: the busiest rules that matched anything. */
  reportRules(final: boolean): void {
    const s = this.sup.ruleStats();
    const hit = s.rules.filter((r) => r.packets > 0).sort((a, b) => b.packets - a.packets);
    this.log.event(final ? 'rule_stats_final' : 'rule_stats', {
      rules_version: s.version,
      rules_sha256: s.sha256,
      rules_total: s.rules.length,
      rules_hit: hit.length,
      rules: hit.slice(0, RULE_STATS_MAX),
      default: s.default,
    });
  }

  report(final = false): void {
    this.reportRules(final);
    const now = Date.now();
    const secs = Math.max((now - this.#lastAt) / 1000, 1e-3);
    this.#lastAt = now;
    const kernel = new Map(readKernelQueueStats().map((k) => [k.queue, k]));
    const classifier: Record<number, DetectorQueueStats> = this.detector?.queueStats() ?? {};
    const ds = this.detector?.stats();
    // Run-wide, repeated in each queue's record: per-source episodes span the queues.
    const detection = ds ? { sources: ds.sources, traffic_episode_open: ds.traffic_episode_open } : null;
    const recording = this.detector?.recording();
    if (recording) this.log.event(final ? 'record_features_final' : 'record_features', recording);
    for (const c of this.sup.snapshot()) {
      const prev = this.#last.get(c.queue);
      this.#last.set(c.queue, c);
      const d = (k: keyof QueueCounters) => c[k] - (prev?.[k] ?? 0);
      const batches = d('batches');
      const k = kernel.get(c.queue);
      this.log.event(final ? 'stats_final' : 'stats', {
        queue: c.queue,
        received: c.received,
        accepted: c.accepted,
        dropped: c.dropped,
        rejected: c.rejected,
        alerts: c.alerts,
        fail_verdicts: c.failVerdicts,
        verdicts: { repeat: c.verdictRepeat, accept: c.verdictAccept, drop: c.verdictDrop, failure: c.failVerdicts },
        malformed: c.malformed,
        evasion_drops: c.evasionDrops,
        // --rules-mode log: packets dropped/rejected above that passed all the same.
        dry_run_passed: c.dryRunPassed,
        lock_drops: c.lockDrops,
        rule_matches: c.ruleMatched,
        js_errors: c.jsErrors,
        recv_errors: c.recvErrors,
        enobufs: c.enobufs,
        send_errors: c.sendErrors,
        batches: c.batches,
        interval_s: Number(secs.toFixed(3)),
        pps: Math.round(d('received') / secs),
        avg_batch: batches > 0 ? Number((d('received') / batches).toFixed(2)) : 0,
        max_batch: c.maxBatch,
        flow_overflows: c.flowOverflows,
        // Live sessions pushed out of a full table (a flood), and flow records logged or over --flow-log-rate.
        flow_evictions: c.flowEvictions,
        flows_logged: c.flowsLogged,
        flows_suppressed: c.flowsSuppressed,
        // Suricata EVE's stats.ips, so eve.json dashboards read it as is.
        stats: { ips: { accepted: c.accepted, blocked: c.dropped, rejected: c.rejected } },
        classifier: classifier[c.queue] ?? null,
        detection,
        // nfips watch: what libpcap and the kernel's capture buffer lost (pcap_stats).
        ...(this.o.capture ? { capture: captureCounters(c) } : {}),
        kernel: k && !this.o.capture
          ? { queue_depth: k.queueTotal, queue_dropped: k.queueDropped, user_dropped: k.userDropped, id_sequence: k.idSequence, port_id: k.portId }
          : null,
      });
    }
  }
}

export async function chainCounters(o: RunOptions, plan: IptablesPlan): Promise<ChainCounters | { error: string }> {
  try {
    return await readChainCounters(plan.families.map((f) => f.family), binariesFor(o), plan.chain, plan.options.table);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** A capture thread's losses, from its libpcap handles' pcap_stats. */
export function captureCounters(c: QueueCounters): Record<string, number> {
  return { drops: c.captureDrops, if_drops: c.captureIfDrops, skipped: c.captureSkipped };
}

/** Blocks in force and what they stopped, for `status` and the block_stats event. */
export async function blockSummary(blocks: BlockManager, o: RunOptions, chain: ChainCounters | { error: string }, withList: boolean): Promise<Record<string, unknown>> {
  return {
    mode: o.mode,
    active: blocks.size,
    since_start: { ...blocks.counts },
    // Packets the block DROP rules stopped before the queue.
    kernel_dropped: 'error' in chain ? chain : chain.blockDrops,
    ...(withList ? { blocks: await blocks.list() } : {}),
  };
}
