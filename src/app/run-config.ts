// What the options of `nfips run` mean for the pieces it starts: the
// iptables plan, the tools' binaries, the queue numbers, and the effective
// configuration the start event records.
import { formatListenAddress } from '../config/listen-address';
import { Family, IptablesBinaries } from '../exec/tools';
import { buildPlan, IptablesPlan } from '../iptables/plan';
import { RuleSet } from '../rules/types';
import type { CaptureSourceOptions } from '../queue/supervisor';
import { formatMarkSpec } from '../verdict/mark';
import { CaptureSettings, RunOptions } from './run-options';

export function planFor(o: RunOptions): IptablesPlan {
  const families: Family[] = o.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
  return buildPlan({ queues: o.queues, hook: o.hook, table: o.table, mark: o.mark, rejectMark: o.rejectMark, failClosed: o.failClosed, exclude: o.exclude, families, queueing: o.capture === null });
}

export function binariesFor(o: RunOptions): IptablesBinaries {
  return { iptables: o.iptables, ip6tables: o.ip6tables, ipset: o.ipset };
}

/** Queue numbers inline; capture worker indexes (0..N-1) in watch. */
export function queueNumbers(o: RunOptions): number[] {
  if (o.capture) return Array.from({ length: o.capture.workers }, (_, k) => k);
  const out: number[] = [];
  for (let q = o.queues.first; q <= o.queues.last; q++) out.push(q);
  return out;
}

/** The effective configuration, as logged in the start event. */
export function describeConfig(o: RunOptions, rules: RuleSet): Record<string, unknown> {
  return {
    config_file: o.configFile,
    rules_file: o.rules,
    rules_format: rules.origin.format,
    rules_sha256: rules.origin.sha256,
    rules_count: rules.rules.length,
    lock: rules.lock,
    default_policy: rules.default,
    queues: o.queues,
    hook: o.hook,
    table: o.table,
    mark: formatMarkSpec(o.mark),
    reject_mark: formatMarkSpec(o.rejectMark),
    log_rate: o.logRate,
    verdict_mode: o.verdictMode,
    fail_closed: o.failClosed,
    exclude: o.exclude,
    ipv6: o.ipv6,
    copy_range: o.copyRange,
    queue_maxlen: o.queueMaxlen,
    batch_size: o.batchSize,
    rcvbuf_mb: o.rcvbufMb,
    stats_interval: o.statsInterval,
    log_file: o.logFile,
    mode: o.mode,
    model: o.mode === 'off' ? null : o.model,
    window_seconds: o.windowSeconds ?? null,
    step_seconds: o.stepSeconds ?? null,
    scoring_threads: o.scoringThreads,
    record_features: o.recordFeatures || null,
    allow: o.allow,
    block_ttl: o.blockTtl,
    block_max_ttl: o.blockMaxTtl,
    max_blocks: o.maxBlocks,
    state_dir: o.stateDir,
    learn_s: o.learnSeconds,
    malformed: o.malformed,
    rules_mode: o.rulesMode,
    suppress: o.suppress || null,
    metrics_listen: o.metricsListen ? formatListenAddress(o.metricsListen) : null,
    crowdsec: o.crowdsec ? { url: o.crowdsec.url, interval_s: o.crowdsec.intervalSeconds, machine_id: o.crowdsec.machineId } : null,
    capture: o.capture ? { ifaces: o.capture.ifaces, nflog_groups: o.capture.nflogGroups, filter: o.capture.filter || null, workers: o.capture.workers, snaplen: o.capture.snaplen, buffer_mb: o.capture.bufferMb, promisc: o.capture.promisc, block: o.capture.block } : null,
    pid: process.pid,
  };
}

/** Whether this run installs a chain: inline always; a watch only to enforce --block. */
export function installsChain(o: RunOptions): boolean {
  return o.capture === null || o.capture.block;
}

/** The capture every watch thread opens (the supervisor adds each one's share of the flows to the filter). */
export function captureSourceFor(o: RunOptions): CaptureSourceOptions['capture'] {
  const c = o.capture;
  if (!c) throw new Error('captureSourceFor: not a watch');
  return {
    devices: [...c.ifaces, ...c.nflogGroups.map((g) => `nflog:${g}`)],
    filter: c.filter,
    snaplen: c.snaplen,
    bufferBytes: c.bufferMb * 1024 * 1024,
    promisc: c.promisc,
    direction: c.direction,
    batchSize: o.batchSize,
    workers: c.workers,
  };
}


/**
 * On a box that forwards, a packet routed between two watched interfaces
 * (or seen on "any") is captured coming in and going out: twice, which
 * doubles the volumes detection compares with normal traffic.
 */
export function doubleCaptureWarning(c: CaptureSettings, forwards: boolean): string | null {
  if (!forwards || c.direction === 'in') return null;
  if (c.ifaces.length < 2 && !c.ifaces.includes('any')) return null;
  return `this host forwards packets and --iface ${c.ifaces.join(', --iface ')} captures both directions: a packet routed between watched interfaces is seen twice, doubling the volumes detection judges; give --direction in (each packet is then seen arriving only)`;
}
