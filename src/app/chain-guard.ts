// The run's guard over what it installed: the chain watchdog (repairs) and
// the fail-open accounting fed by the watchdog's listings, wired to the
// queue counters. One object so `nfips run` starts, stops and asks it in a
// line each.
import { BlockManager } from '../blocks/manager';
import { IptablesBinaries } from '../exec/tools';
import { IptablesPlan } from '../iptables/plan';
import { ChainStatus, ChainWatchdog } from '../iptables/watchdog';
import { EventLog } from '../log/event-log';
import { QueueSupervisor } from '../queue/supervisor';
import { FailOpenMonitor, UnverdictedStatus } from '../stats/fail-open';
import { readKernelQueueStats } from '../stats/kernel-queue';

export interface ChainGuardOptions {
  plan: IptablesPlan;
  bins: IptablesBinaries;
  log: Pick<EventLog, 'event'>;
  blocks: Pick<BlockManager, 'inForce'>;
  sup: Pick<QueueSupervisor, 'snapshot'>;
  failClosed: boolean;
  /** false (nfips watch --block): the chain holds block DROPs only, so nothing can pass uninspected. */
  queueing?: boolean;
  intervalMs?: number;
}

export class ChainGuard {
  readonly watchdog: ChainWatchdog;
  readonly failOpen: FailOpenMonitor | null;

  constructor(o: ChainGuardOptions) {
    const queues = new Set(o.sup.snapshot().map((c) => c.queue));
    const failOpen = o.queueing === false ? null : new FailOpenMonitor({
      failClosed: o.failClosed,
      log: o.log,
      received: () => o.sup.snapshot().reduce((n, c) => n + c.received, 0),
      waiting: () => readKernelQueueStats().filter((k) => queues.has(k.queue)).reduce((n, k) => n + k.queueTotal, 0),
    });
    this.failOpen = failOpen;
    this.watchdog = new ChainWatchdog({
      plan: o.plan,
      bins: o.bins,
      log: o.log,
      blocks: () => o.blocks.inForce(),
      onObservation: (obs) => failOpen?.observe(obs.queued),
      onChainRewritten: (family) => failOpen?.chainRewritten(family),
      intervalMs: o.intervalMs,
    });
  }

  start(): void {
    this.watchdog.start();
  }

  /** Before nfips removes its chains: the watchdog must not put them back. */
  close(): Promise<void> {
    return this.watchdog.close();
  }

  chainStatus(): Promise<ChainStatus> {
    return this.watchdog.status();
  }

  /** null where nothing is queued (watch). */
  unverdicted(): UnverdictedStatus | null {
    return this.failOpen?.status() ?? null;
  }
}
