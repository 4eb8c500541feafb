// The optional Prometheus endpoint (--metrics-listen). Every value is read
// at scrape time from what nfips keeps anyway (shared queue counters, the
// kernel's queue file, the fail-open monitor, the detector, the block table),
// so a scrape costs the packet path nothing. Rule reloads are the exception:
// they are rare, so their durations are observed as they happen.
import { createServer, Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DetectorStats } from '../detect/detector';
import type { QueueCounters, RuleStats } from '../queue/supervisor';
import type { UnverdictedStatus } from './fail-open';
import type { KernelQueueStats } from './kernel-queue';
import { formatListenAddress, ListenAddress } from '../config/listen-address';

export { ListenAddress };

/** Where the values come from, once nfips runs; absent before that (only process metrics). */
export interface MetricSources {
  queues(): QueueCounters[];
  /** nfips watch: the threads capture; no kernel queue is theirs. */
  capture?: boolean;
  kernelQueues(): KernelQueueStats[];
  unverdicted(): UnverdictedStatus | null;
  ruleStats(): RuleStats;
  detector(): DetectorStats | null;
  blocks(): { active: number; counts: Record<string, number> } | null;
  /** Packets and bytes the block DROP rules stopped, per set (one iptables listing per scrape). */
  blockDrops(): Promise<{ sets: Record<string, { packets: number; bytes: number }> } | null>;
}

/** Every metric nfips exports besides prom-client's default process ones (the dashboard test checks against it). */
export const NFIPS_METRICS = [
  'nfips_up',
  'nfips_queue_received_packets_total',
  'nfips_queue_verdicts_total',
  'nfips_queue_decisions_total',
  'nfips_queue_malformed_packets_total',
  'nfips_queue_failure_verdicts_total',
  'nfips_queue_evasion_drops_total',
  'nfips_queue_errors_total',
  'nfips_flow_records_total',
  'nfips_session_table_full_total',
  'nfips_capture_dropped_packets_total',
  'nfips_kernel_queue_depth',
  'nfips_kernel_queue_dropped_packets_total',
  'nfips_kernel_queue_user_dropped_packets_total',
  'nfips_uninspected_packets_total',
  'nfips_queue_rule_packets_total',
  'nfips_rule_packets_total',
  'nfips_rule_bytes_total',
  'nfips_rules_version',
  'nfips_classifier_windows_total',
  'nfips_classifier_last_score',
  'nfips_classifier_alerts_total',
  'nfips_source_findings_total',
  'nfips_source_alerts_total',
  'nfips_blocks_active',
  'nfips_block_events_total',
  'nfips_block_kernel_dropped_packets_total',
  'nfips_block_kernel_dropped_bytes_total',
  'nfips_rule_reloads_total',
  'nfips_rule_reload_duration_seconds',
] as const;

export class Metrics {
  readonly registry = new Registry();
  #sources: MetricSources | null = null;
  readonly #reloads: Counter<'result'>;
  readonly #reloadSeconds: Histogram<string>;

  constructor() {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    const self = this;
    const src = () => self.#sources;
    // Every reading first, then reset and set with no await in between: two
    // scrapes at once must not add their readings up.
    const readAll = async <L extends string>(fill: (set: (labels: Record<L, string | number>, v: number) => void) => void | Promise<void>) => {
      const values: [Record<L, string | number>, number][] = [];
      await fill((labels, v) => values.push([labels, v]));
      return values;
    };
    // A counter whose values are set from absolute readings at scrape time.
    const counter = <L extends string>(name: string, help: string, labelNames: L[], fill: (set: (labels: Record<L, string | number>, v: number) => void) => void | Promise<void>) =>
      new Counter<L>({
        name,
        help,
        labelNames,
        registers: [r],
        async collect() {
          const values = await readAll(fill);
          this.reset();
          for (const [labels, v] of values) this.inc(labels as never, Math.max(0, v));
        },
      });
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], fill: (set: (labels: Record<L, string | number>, v: number) => void) => void | Promise<void>) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers: [r],
        async collect() {
          const values = await readAll(fill);
          this.reset();
          for (const [labels, v] of values) this.set(labels as never, v);
        },
      });
    const perQueue = (fn: (c: QueueCounters, set: (labels: Record<string, string | number>, v: number) => void) => void) => (set: (labels: Record<string, string | number>, v: number) => void) => {
      for (const c of src()?.queues() ?? []) fn(c, set);
    };

    gauge('nfips_up', 'Whether nfips is inspecting (1 once its queues and chain are in place)', [], (set) => set({}, src() ? 1 : 0));
    counter('nfips_queue_received_packets_total', 'Packets nfips received from the queue', ['queue'], perQueue((c, set) => set({ queue: c.queue }, c.received)));
    counter('nfips_queue_verdicts_total', 'Verdicts sent to the kernel by kind (failure: the batch could not be decided)', ['queue', 'verdict'], perQueue((c, set) => {
      set({ queue: c.queue, verdict: 'repeat' }, c.verdictRepeat);
      set({ queue: c.queue, verdict: 'accept' }, c.verdictAccept);
      set({ queue: c.queue, verdict: 'drop' }, c.verdictDrop);
      set({ queue: c.queue, verdict: 'failure' }, c.failVerdicts);
    }));
    counter('nfips_queue_decisions_total', 'What the rules decided: accepted, dropped, rejected packets, and alerts', ['queue', 'decision'], perQueue((c, set) => {
      for (const d of ['accepted', 'dropped', 'rejected', 'alerts'] as const) set({ queue: c.queue, decision: d }, c[d]);
    }));
    counter('nfips_queue_malformed_packets_total', 'Packets with truncated or malformed headers', ['queue'], perQueue((c, set) => set({ queue: c.queue }, c.malformed)));
    counter('nfips_queue_failure_verdicts_total', 'Packets given the failure verdict (fail-open repeat, or drop with --fail-closed)', ['queue'], perQueue((c, set) => set({ queue: c.queue }, c.failVerdicts)));
    counter('nfips_queue_evasion_drops_total', 'Packets dropped because their transport header was hidden and a drop rule could have matched (--malformed drop)', ['queue'], perQueue((c, set) => set({ queue: c.queue }, c.evasionDrops)));
    counter('nfips_flow_records_total', 'Flow records of ended sessions: logged, or over --flow-log-rate and only counted', ['queue', 'outcome'], perQueue((c, set) => {
      set({ queue: c.queue, outcome: 'logged' }, c.flowsLogged);
      set({ queue: c.queue, outcome: 'suppressed' }, c.flowsSuppressed);
    }));
    counter('nfips_session_table_full_total', 'The session table (the flow budget) full: live sessions pushed out by new ones, and packets that found no room', ['queue', 'kind'], perQueue((c, set) => {
      set({ queue: c.queue, kind: 'evicted' }, c.flowEvictions);
      set({ queue: c.queue, kind: 'overflow' }, c.flowOverflows);
    }));
    counter('nfips_queue_errors_total', 'Netlink receive and send errors, ENOBUFS and JS errors of a queue thread', ['queue', 'kind'], perQueue((c, set) => {
      set({ queue: c.queue, kind: 'recv' }, c.recvErrors);
      set({ queue: c.queue, kind: 'enobufs' }, c.enobufs);
      set({ queue: c.queue, kind: 'send' }, c.sendErrors);
      set({ queue: c.queue, kind: 'js' }, c.jsErrors);
    }));
    counter('nfips_capture_dropped_packets_total', 'nfips watch: frames the capture lost (pcap_stats): buffer, the kernel capture buffer was full; interface, the interface dropped them (its own counter, the same for every worker on it)', ['queue', 'kind'], perQueue((c, set) => {
      if (src()?.capture !== true) return;
      set({ queue: c.queue, kind: 'buffer' }, c.captureDrops);
      set({ queue: c.queue, kind: 'interface' }, c.captureIfDrops);
    }));
    const mine = () => {
      const s = src();
      if (!s || s.capture === true) return [];
      const queues = new Set(s.queues().map((c) => c.queue));
      return s.kernelQueues().filter((k) => queues.has(k.queue));
    };
    gauge('nfips_kernel_queue_depth', 'Packets waiting in the kernel queue for a verdict (/proc/net/netfilter/nfnetlink_queue)', ['queue'], (set) => {
      for (const k of mine()) set({ queue: k.queue }, k.queueTotal);
    });
    counter('nfips_kernel_queue_dropped_packets_total', 'Packets the kernel could not queue because the queue was full (passed uninspected under fail-open)', ['queue'], (set) => {
      for (const k of mine()) set({ queue: k.queue }, k.queueDropped);
    });
    counter('nfips_kernel_queue_user_dropped_packets_total', 'Packets the netlink socket could not take', ['queue'], (set) => {
      for (const k of mine()) set({ queue: k.queue }, k.userDropped);
    });
    counter('nfips_uninspected_packets_total', 'Packets sent to the queue that nfips never verdicted: passed uninspected (fail-open) or dropped (--fail-closed)', ['meaning'], (set) => {
      const u = src()?.unverdicted();
      if (u) set({ meaning: u.meaning }, u.packets);
    });
    counter('nfips_queue_rule_packets_total', 'Packets the NFQUEUE rules counted since start', [], (set) => {
      const u = src()?.unverdicted();
      if (u) set({}, u.queue_rule_packets);
    });
    // Rule counters belong to one loaded rule set: a reload starts them again (Prometheus sees a counter reset).
    const rules = (key: 'packets' | 'bytes') => (set: (labels: Record<'rule' | 'action', string>, v: number) => void) => {
      const s = src()?.ruleStats();
      if (!s) return;
      for (const row of s.rules) set({ rule: row.id, action: row.action }, row[key]);
      set({ rule: '(default)', action: s.default.action }, s.default[key]);
    };
    counter('nfips_rule_packets_total', 'Packets each rule (and the default policy) decided, since the rule set was loaded', ['rule', 'action'], rules('packets'));
    counter('nfips_rule_bytes_total', 'Bytes each rule (and the default policy) decided, since the rule set was loaded', ['rule', 'action'], rules('bytes'));
    gauge('nfips_rules_version', 'Version of the loaded rule set (0 at start, +1 per reload)', [], (set) => {
      const s = src()?.ruleStats();
      if (s) set({}, s.version);
    });
    const det = () => src()?.detector() ?? null;
    counter('nfips_classifier_windows_total', 'Feature windows per queue by outcome: scored, skipped (previous still scoring), thin (not comparable), anomalous, errors', ['queue', 'outcome'], (set) => {
      for (const [q, s] of Object.entries(det()?.queues ?? {})) {
        set({ queue: q, outcome: 'all' }, s.windows);
        set({ queue: q, outcome: 'scored' }, s.scored);
        set({ queue: q, outcome: 'skipped' }, s.skipped);
        set({ queue: q, outcome: 'thin' }, s.thin);
        set({ queue: q, outcome: 'anomalous' }, s.anomalous);
        set({ queue: q, outcome: 'errors' }, s.errors);
      }
    });
    gauge('nfips_classifier_last_score', 'Score of the queue\'s last scored window (alerting above the model\'s threshold)', ['queue'], (set) => {
      for (const [q, s] of Object.entries(det()?.queues ?? {})) if (s.last_score !== null) set({ queue: q }, s.last_score);
    });
    counter('nfips_classifier_alerts_total', 'Traffic (window classifier) alerts', ['queue'], (set) => {
      for (const [q, s] of Object.entries(det()?.queues ?? {})) set({ queue: q }, s.alerts);
    });
    counter('nfips_source_findings_total', 'Per-source findings (a source far outside what single sources do)', [], (set) => {
      const d = det();
      if (d) set({}, d.sources.findings);
    });
    counter('nfips_source_alerts_total', 'Per-source and distributed alerts', ['kind'], (set) => {
      const d = det();
      if (!d) return;
      set({ kind: 'source' }, d.sources.alerts);
      set({ kind: 'distributed' }, d.sources.distributed_alerts);
    });
    gauge('nfips_blocks_active', 'Blocks in force', [], (set) => {
      const b = src()?.blocks();
      if (b) set({}, b.active);
    });
    counter('nfips_block_events_total', 'Blocks added, removed, expired, refused and failed since start', ['event'], (set) => {
      const b = src()?.blocks();
      if (b) for (const [k, v] of Object.entries(b.counts)) set({ event: k }, v);
    });
    // Both kernel-drop counters read one listing per scrape.
    let drops: Promise<Awaited<ReturnType<MetricSources['blockDrops']>>> | null = null;
    const blockDrops = () => {
      drops ??= (src()?.blockDrops() ?? Promise.resolve(null)).catch(() => null).finally(() => setImmediate(() => (drops = null)));
      return drops;
    };
    counter('nfips_block_kernel_dropped_packets_total', 'Packets the block sets dropped in the kernel, before the queue', ['set'], async (set) => {
      for (const [name, c] of Object.entries((await blockDrops())?.sets ?? {})) set({ set: name }, c.packets);
    });
    counter('nfips_block_kernel_dropped_bytes_total', 'Bytes the block sets dropped in the kernel, before the queue', ['set'], async (set) => {
      for (const [name, c] of Object.entries((await blockDrops())?.sets ?? {})) set({ set: name }, c.bytes);
    });
    this.#reloads = new Counter({ name: 'nfips_rule_reloads_total', help: 'Rule reloads by result (ok, unchanged, failed)', labelNames: ['result'], registers: [r] });
    this.#reloadSeconds = new Histogram({ name: 'nfips_rule_reload_duration_seconds', help: 'Time from a reload request until every queue runs the new rules', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [r] });
    for (const result of ['ok', 'unchanged', 'failed']) this.#reloads.inc({ result }, 0);
  }

  /** nfips runs: values come from these from now on. */
  attach(sources: MetricSources): void {
    this.#sources = sources;
  }

  reloaded(result: 'ok' | 'unchanged' | 'failed', seconds: number): void {
    this.#reloads.inc({ result });
    if (result !== 'unchanged') this.#reloadSeconds.observe(seconds);
  }
}

/** The HTTP side: GET /metrics, nothing else. */
export class MetricsServer {
  private constructor(
    readonly metrics: Metrics,
    readonly server: Server,
    readonly address: ListenAddress,
  ) {}

  /** Binds at once, so a port in use is a start error. */
  static listen(address: ListenAddress, metrics = new Metrics()): Promise<MetricsServer> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('nfips: metrics are at /metrics\n');
        return;
      }
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
      );
    });
    // A scraper that stops reading must not hold a socket for ever.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    return new Promise((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        const why = e.code === 'EADDRINUSE' ? 'the port is in use by another program' : e.code === 'EADDRNOTAVAIL' ? 'no interface has that address' : e.code === 'EACCES' ? 'permission denied' : e.message;
        reject(new Error(`cannot listen on --metrics-listen ${formatListenAddress(address)}: ${why} (${e.code ?? 'error'})`));
      });
      server.listen(address.port, address.host, () => resolve(new MetricsServer(metrics, server, address)));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
