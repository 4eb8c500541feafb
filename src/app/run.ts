// `nfips run`: wires rules, queue threads, iptables, stats and signals.
// Start order is queues first, then iptables, so no packet is sent to a
// queue nobody listens on; stop order is the reverse.
import { accessSync, constants, mkdirSync } from 'node:fs';
import { checkAppendable } from '../config/safe-file';
import { RunOptions, WINDOW_DEFAULTS } from '../config/run-options';
import { Detector, DetectorQueueStats } from '../detect/detector';
import { loadModel, Model } from '../detect/model';
import { FeatureSettings } from '../queue/messages';
import { install, IptablesBinaries, iptablesAvailable, remove, stopQueueing } from '../iptables/apply';
import { buildPlan, Family, IptablesPlan } from '../iptables/plan';
import { createEventLog, EventLog } from '../log/event-log';
import { NF_DROP, NF_REPEAT } from '../batch/layout';
import { QueueCounters, QueueSupervisor } from '../queue/supervisor';
import { readRuleFile } from '../rules/load';
import { RuleSet } from '../rules/types';
import { readKernelQueueStats } from '../stats/kernel-queue';
import { ControlServer } from '../control/server';
import { RuleReloader } from './reload';
import { logRuleWarnings } from './rule-warnings';
import { logRuleEvents } from './rule-event-log';
import { formatMarkSpec } from '../verdict/mark';
import { Allowlist } from '../blocks/allowlist';
import { setPrefixFor } from '../blocks/ipset';
import { BlockManager } from '../blocks/manager';
import { BlockState, readBlockState, stateFilePath } from '../blocks/state-file';
import { ControlRequest } from '../control/protocol';
import { ChainCounters, readChainCounters } from '../iptables/chain-counters';
import { LearningController, LearningPlan, prepareLearning } from '../detect/learning';
import { formatDuration } from '../config/duration';
import { shareFlagModel } from '../detect/flag-model';
import { ChainGuard } from './chain-guard';
import { checkRunFiles } from './file-checks';
import { readSuppressionFile, Suppressions } from '../detect/suppress';
import type { MetricsServer } from '../stats/metrics';
import { summaryLine } from '../stats/summary';
import { formatListenAddress } from '../config/listen-address';
import { acquireInstanceLock, InstanceLock, InstanceLockedError } from './instance-lock';
import { explainBindError, missingPrivilege } from './privileges';

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_CONFIG = 2;

const FLOW_CAPACITY = 1 << 16;

export class StartupError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'StartupError';
  }
}

export function planFor(o: RunOptions): IptablesPlan {
  const families: Family[] = o.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
  return buildPlan({ queues: o.queues, hook: o.hook, table: o.table, mark: o.mark, rejectMark: o.rejectMark, failClosed: o.failClosed, exclude: o.exclude, families });
}

export function binariesFor(o: RunOptions): IptablesBinaries {
  return { iptables: o.iptables, ip6tables: o.ip6tables, ipset: o.ipset };
}

function queueNumbers(o: RunOptions): number[] {
  const out: number[] = [];
  for (let q = o.queues.first; q <= o.queues.last; q++) out.push(q);
  return out;
}

/** The effective configuration, as logged in the start event. */
function describeConfig(o: RunOptions, rules: RuleSet): Record<string, unknown> {
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
    pid: process.pid,
  };
}

/** Features are computed when detecting, recording or learning. */
export interface DetectionSetup {
  features: FeatureSettings | null;
  /** The model detection starts with: --model, the one learning uses to alert meanwhile, or the one it learnt. */
  model: Model | null;
  /** --learn: where learning stands (done: plan.done holds the learnt model, which is `model`). */
  learning: LearningPlan | null;
  warnings: string[];
}

/**
 * Loads the model (detect mode) and settles the window length and step:
 * the model's unless flags say otherwise, and flags that contradict the
 * model are an error, since its scores only hold for the windows it was
 * trained on.
 */
export function detectionSetup(o: RunOptions): DetectionSetup {
  const warnings: string[] = [];
  let model: Model | null = null;
  const queues = o.queues.last - o.queues.first + 1;
  if (o.learnSeconds !== null) {
    // Learning records with the flags' window settings (else the model's); the
    // model alerts meanwhile only if its windows are the same.
    const current = loadModel(o.model);
    const windowSeconds = o.windowSeconds ?? current.windowSeconds;
    const stepSeconds = o.stepSeconds ?? current.stepSeconds;
    const plan = prepareLearning({ stateDir: o.stateDir, learnSeconds: o.learnSeconds, windowSeconds, stepSeconds, queues });
    if (plan.done) model = plan.done.model;
    else if (current.windowSeconds === windowSeconds && current.stepSeconds === stepSeconds) model = current;
    else warnings.push(`no alerts while learning: ${o.model} was trained on ${current.windowSeconds} s windows / ${current.stepSeconds} s steps and this learning records ${windowSeconds} s / ${stepSeconds} s`);
    return { features: { windowSeconds, stepSeconds, maxSourcesPerStep: 256, flags: model ? shareFlagModel(model.flags) : null }, model, learning: plan, warnings };
  }
  if (o.mode !== 'off') {
    model = loadModel(o.model);
    const clash = (flag: string, given: number | undefined, trained: number) =>
      given !== undefined && given !== trained ? `--${flag} ${given} differs from the model's ${trained} s (${o.model}); drop the flag or train a model with it` : null;
    const problems = [clash('window-seconds', o.windowSeconds, model.windowSeconds), clash('step-seconds', o.stepSeconds, model.stepSeconds)].filter((x): x is string => x !== null);
    if (problems.length) throw new Error(problems.join('\n'));
    if (model.queues !== queues) warnings.push(`the model was trained on windows of ${model.queues} queue(s) and this run has ${queues}: per-queue volumes differ, so scores may be off; train with the same --queues`);
  }
  if (o.recordFeatures) {
    // Checked with the other settings, before anything is bound or installed.
    // As the recorder will open it: no links followed, no FIFO or device.
    try {
      checkAppendable(o.recordFeatures, '--record-features');
    } catch (e) {
      throw new Error(`invalid ${(e as Error).message}`);
    }
  }
  if (o.mode === 'off' && !o.recordFeatures) return { features: null, model: null, learning: null, warnings };
  return {
    features: {
      windowSeconds: model?.windowSeconds ?? o.windowSeconds ?? WINDOW_DEFAULTS.windowSeconds,
      stepSeconds: model?.stepSeconds ?? o.stepSeconds ?? WINDOW_DEFAULTS.stepSeconds,
      maxSourcesPerStep: 256,
      flags: model ? shareFlagModel(model.flags) : null,
    },
    model,
    learning: null,
    warnings,
  };
}

const RULE_STATS_MAX = 50;

class StatsReporter {
  #last = new Map<number, QueueCounters>();
  #lastAt = Date.now();

  constructor(
    private readonly sup: QueueSupervisor,
    private readonly log: EventLog,
    private readonly detector: Detector | null,
  ) {}

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
        // Suricata EVE's stats.ips, so eve.json dashboards read it as is.
        stats: { ips: { accepted: c.accepted, blocked: c.dropped, rejected: c.rejected } },
        classifier: classifier[c.queue] ?? null,
        detection,
        kernel: k
          ? { queue_depth: k.queueTotal, queue_dropped: k.queueDropped, user_dropped: k.userDropped, id_sequence: k.idSequence, port_id: k.portId }
          : null,
      });
    }
  }
}

async function chainCounters(o: RunOptions, plan: IptablesPlan): Promise<ChainCounters | { error: string }> {
  try {
    return await readChainCounters(plan.families.map((f) => f.family), binariesFor(o), plan.chain, plan.options.table);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Blocks in force and what they stopped, for `status` and the block_stats event. */
async function blockSummary(blocks: BlockManager, o: RunOptions, chain: ChainCounters | { error: string }, withList: boolean): Promise<Record<string, unknown>> {
  return {
    mode: o.mode,
    active: blocks.size,
    since_start: { ...blocks.counts },
    // Packets the block DROP rules stopped before the queue.
    kernel_dropped: 'error' in chain ? chain : chain.blockDrops,
    ...(withList ? { blocks: await blocks.list() } : {}),
  };
}

async function statusOf(sup: QueueSupervisor, startedAt: number, detector: Detector | null, blocks: BlockManager, o: RunOptions, plan: IptablesPlan, learning: Record<string, unknown> | null, guard: ChainGuard): Promise<Record<string, unknown>> {
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
    detection: detector ? { sources: detector.stats().sources, traffic_episode_open: detector.stats().traffic_episode_open } : null,
    learning,
    // Whether nfips' chains are in place, i.e. whether it sees traffic at all.
    iptables: { table: o.table, ...(await guard.chainStatus()) },
    // Sent to the queue but never received by nfips: under fail-open they passed
    // uninspected (the kernel counts them nowhere else); under fail-closed they
    // were dropped (also in each queue's kernel.queueDropped).
    unverdicted: guard.unverdicted(),
    blocks: await blockSummary(blocks, o, chain, true),
  };
}

export interface RunHandle {
  /** Resolves with the exit code once nfips has stopped and cleaned up. */
  done: Promise<number>;
  stop(reason: string): Promise<number>;
}

/**
 * Starts nfips. Throws StartupError (nothing left installed) if any step
 * fails; otherwise runs until stop() or a signal.
 */
export async function startRun(o: RunOptions, opts: { console: boolean; handleSignals: boolean }): Promise<RunHandle> {
  // Signals are caught from the first moment: one arriving while queues are
  // bound or iptables is being changed must roll back, not kill the process
  // with the jumps in place. Repeats while stopping are ignored.
  let signalled: string | null = null;
  let onStop: ((reason: string) => void) | null = null;
  let onReload: (() => void) | null = null;
  let onReopen: (() => void) | null = null;
  if (opts.handleSignals) {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.on(sig, () => {
        signalled ??= sig;
        onStop?.(sig);
      });
    }
    process.on('SIGHUP', () => onReload?.());
    // logrotate: move the file, then SIGUSR1 makes nfips write to a new one.
    process.on('SIGUSR1', () => onReopen?.());
  }
  const signals: SignalHooks = {
    signalled: () => signalled,
    onStop: (fn) => (onStop = fn),
    onReload: (fn) => (onReload = fn),
    onReopen: (fn) => (onReopen = fn),
  };
  // First: without it every later step fails with a message about something else.
  const lacking = missingPrivilege();
  if (lacking) throw new StartupError(lacking, EXIT_RUNTIME);
  let rules: RuleSet;
  try {
    rules = readRuleFile(o.rules, o.rulesFormat);
  } catch (e) {
    throw new StartupError((e as Error).message, EXIT_CONFIG);
  }
  let suppress: Suppressions;
  try {
    // Validated with the rules, before any file is created or checked for writing.
    suppress = o.suppress ? readSuppressionFile(o.suppress) : new Suppressions();
    checkRunFiles(o);
  } catch (e) {
    throw new StartupError((e as Error).message, EXIT_CONFIG);
  }
  const plan = planFor(o);
  // Before anything shared is touched (learning files, block state, iptables,
  // sets, the control socket): a second instance must change nothing.
  let instanceLock: InstanceLock;
  try {
    instanceLock = await acquireInstanceLock({ stateDir: o.stateDir, chain: plan.chain });
  } catch (e) {
    throw new StartupError((e as Error).message, e instanceof InstanceLockedError ? EXIT_RUNTIME : EXIT_CONFIG);
  }
  // What a failed start must undo whichever step threw (the metrics endpoint).
  const undo: (() => Promise<void>)[] = [];
  try {
    return await startLocked(o, opts, rules, suppress, plan, instanceLock, signals, undo);
  } catch (e) {
    for (const u of undo) await u().catch(() => undefined);
    instanceLock.release();
    throw e;
  }
}

interface SignalHooks {
  signalled(): string | null;
  onStop(fn: (reason: string) => void): void;
  onReload(fn: () => void): void;
  onReopen(fn: () => void): void;
}

async function startLocked(o: RunOptions, opts: { console: boolean; handleSignals: boolean }, rules: RuleSet, suppress: Suppressions, plan: IptablesPlan, instanceLock: InstanceLock, signals: SignalHooks, undo: (() => Promise<void>)[]): Promise<RunHandle> {
  const abortIfSignalled = () => {
    const sig = signals.signalled();
    if (sig) throw new StartupError(`stopped by ${sig} while starting; nothing left installed`, EXIT_OK);
  };
  let detection: DetectionSetup;
  try {
    detection = detectionSetup(o);
  } catch (e) {
    throw new StartupError((e as Error).message, EXIT_CONFIG);
  }
  const stateFile = stateFilePath(o.stateDir);
  let saved: BlockState;
  let allowlist: Allowlist;
  try {
    saved = readBlockState(stateFile);
    allowlist = new Allowlist(o.allow, o.exclude);
    try {
      mkdirSync(o.stateDir, { recursive: true, mode: 0o750 });
      accessSync(o.stateDir, constants.W_OK);
    } catch (e) {
      throw new Error(`invalid --state-dir ${o.stateDir}: blocks could not be saved there (${(e as Error).message})`);
    }
  } catch (e) {
    throw new StartupError((e as Error).message, EXIT_CONFIG);
  }
  // Bound before anything is installed: a port in use is a configuration error.
  let metricsServer: MetricsServer | null = null;
  if (o.metricsListen) {
    try {
      // Loaded only when asked for: the other commands need no prom-client.
      const { MetricsServer: Server } = await import('../stats/metrics');
      metricsServer = await Server.listen(o.metricsListen);
    } catch (e) {
      throw new StartupError((e as Error).message, EXIT_CONFIG);
    }
  }
  const closeMetrics = async () => {
    await metricsServer?.close();
    metricsServer = null;
  };
  undo.push(closeMetrics);
  const bins = binariesFor(o);
  const unavailable = await iptablesAvailable(bins, plan.families.map((f) => f.family));
  if (unavailable) {
    await closeMetrics();
    throw new StartupError(`cannot manage iptables: ${unavailable}`, EXIT_RUNTIME);
  }

  const log = createEventLog({ file: o.logFile, fileLabel: '--log-file', console: opts.console, level: o.logLevel });
  log.event('start', { config: describeConfig(o, rules) });
  for (const w of detection.warnings) log.event('config_warning', { warning: w }, 'warn');
  if (!suppress.empty) {
    log.event('suppressions', { file: o.suppress, entries: suppress.entries.length, ...(detection.features && detection.model !== null ? {} : { warning: 'no anomaly detection in this mode: the list has nothing to suppress' }) });
  }
  const blocks = new BlockManager({
    policy: { ttlSeconds: o.blockTtl, maxTtlSeconds: o.blockMaxTtl, maxBlocks: o.maxBlocks },
    allowlist,
    saved,
    stateFile,
    setPrefix: setPrefixFor(plan.chain),
    families: plan.families.map((f) => f.family),
    bins,
    log,
  });
  // Scoring threads start before the queues, so the first window has somewhere to go.
  const learnPlan = detection.learning;
  const respondFor = (mode: RunOptions['mode']) => (mode === 'prevent' ? blocks.respondToSource.bind(blocks) : undefined);
  let learning: LearningController | null = null;
  let detector: Detector | null = null;
  let supRef: QueueSupervisor | null = null;
  if (learnPlan && !learnPlan.done) {
    learning = new LearningController(learnPlan, log, {
      command: `nfips ${process.argv.slice(2).join(' ')}`,
      onModel: (model) => {
        void (async () => {
          // From now on: the configured mode, with the site's model.
          await detector?.useModel(model, respondFor(o.mode));
          supRef?.setFlags(shareFlagModel(model.flags));
          await detector?.stopRecording();
          log.event('mode_changed', { mode: o.mode, model: learnPlan.files.model, reason: 'site model learnt' }, 'warn');
        })();
      },
    });
    log.event('learning', { state: learnPlan.resumed ? 'resumed' : 'started', learnt_s: Math.round(learnPlan.learntSeconds), duration_s: learnPlan.durationSeconds, recording: learnPlan.files.recording, then: o.mode, hint: `alerts only until ${formatDuration(learnPlan.durationSeconds)} of this site's traffic is learnt` }, 'warn');
  } else if (learnPlan?.done) {
    log.event('learning', { state: 'done', finished_at: learnPlan.done.finishedAt, model: learnPlan.files.model, hint: `running ${o.mode} with the learnt model; remove ${learnPlan.files.dir} to learn again` });
  }
  if (detection.features) {
    try {
      const queues = o.queues.last - o.queues.first + 1;
      const learningNow = learning !== null;
      detector = new Detector({
        model: detection.model,
        threads: o.scoringThreads,
        log,
        recordFile: learningNow ? learnPlan!.files.recording : o.recordFeatures || undefined,
        recordLabel: learningNow ? 'the --learn recording' : undefined,
        queues,
        respond: learningNow ? undefined : respondFor(o.mode),
        suppress,
        // Learning keeps its progress in the recording: write it often enough that a restart loses little.
        behaviourEverySeconds: learningNow ? Math.max(5, Math.min(60, learnPlan!.durationSeconds / 20)) : undefined,
        onBehaviour: learningNow ? (steps) => learning?.progress(steps) : undefined,
        ...detection.features,
      });
    } catch (e) {
      const file = learning !== null ? learnPlan!.files.recording : o.recordFeatures;
      const message = `cannot record features to ${file}: ${(e as Error).message}`;
      log.event('start_failed', { error: message }, 'error');
      await log.close();
      await closeMetrics();
      throw new StartupError(message, EXIT_CONFIG);
    }
  }

  let sup: QueueSupervisor;
  try {
    sup = await QueueSupervisor.start({
      queues: queueNumbers(o),
      queue: {
        copyRange: o.copyRange,
        maxLen: o.queueMaxlen,
        rcvBuf: o.rcvbufMb << 20,
        batchSize: o.batchSize,
        gso: true,
        // GSO stays on either way: fail-open must not cost the TCP fast path.
        failOpen: !o.failClosed,
        failVerdict: o.failClosed ? NF_DROP : NF_REPEAT,
        markValue: o.mark.value,
        markMask: o.mark.mask,
      },
      engine: { mode: o.verdictMode, mark: o.mark, rejectMark: o.rejectMark, eventsPerSecond: o.logRate, flowCapacity: FLOW_CAPACITY, malformed: o.malformed, rulesMode: o.rulesMode },
      features: detection.features,
      rules,
      log,
      onRuleEvents: (queue, rs, events) => logRuleEvents(log, queue, rs, events),
      onStep: detector ? (s) => detector.onStep(s) : undefined,
    });
  } catch (e) {
    log.event('start_failed', { error: explainBindError((e as Error).message) }, 'error');
    await detector?.close();
    await log.close();
    await closeMetrics();
    throw new StartupError(`cannot bind NFQUEUE: ${explainBindError((e as Error).message)}`, EXIT_RUNTIME);
  }
  supRef = sup;
  log.event('queues_bound', { queues: queueNumbers(o) });
  logRuleWarnings(log, rules, sup.rulesVersion);

  try {
    abortIfSignalled();
    const summary = await install(plan, bins, blocks.restoredBlocks());
    log.event('iptables_installed', {
      chain: summary.chain,
      families: summary.families.map((f) => ({
        family: f.family,
        rules: f.rules,
        jumps: f.jumps,
        block_sets: f.sets,
        stale_removed: f.stale.jumpsRemoved.length + (f.stale.chainRemoved ? 1 : 0) + f.stale.setsRemoved.length,
      })),
    });
    blocks.start();
    abortIfSignalled();
  } catch (e) {
    if (signals.signalled()) await remove({ chain: plan.chain, families: plan.families.map((f) => f.family) }, bins).catch(() => undefined);
    await sup.stop();
    await detector?.close();
    log.event('start_failed', { error: (e as Error).message }, signals.signalled() ? 'info' : 'error');
    await log.close();
    await closeMetrics();
    throw e instanceof StartupError ? e : new StartupError((e as Error).message, EXIT_RUNTIME);
  }

  const startedAt = Date.now();
  const guard = new ChainGuard({ plan, bins, log, blocks, sup, failClosed: o.failClosed });
  guard.start();
  const learningStatus = (): Record<string, unknown> | null =>
    learning ? learning.status() : learnPlan?.done ? { state: 'done', finished_at: learnPlan.done.finishedAt, model: learnPlan.files.model } : null;
  const stats = new StatsReporter(sup, log, detector);
  const reportBlocks = async (final: boolean) => {
    const chain = await chainCounters(o, plan);
    log.event(final ? 'block_stats_final' : 'block_stats', await blockSummary(blocks, o, chain, false));
    return chain;
  };
  let summarised = { received: 0, at: Date.now() };
  /** The console's one line per interval (at info level; the JSON log has the full records). */
  const summarise = (chain: ChainCounters | { error: string }) => {
    const queues = sup.snapshot();
    const now = Date.now();
    const ds = detector?.stats();
    const alerts = queues.reduce((n, c) => n + c.alerts, 0) + (ds ? ds.sources.alerts + ds.sources.distributed_alerts + Object.values(ds.queues).reduce((n, q) => n + q.alerts, 0) : 0);
    const text = summaryLine({
      queues,
      previousReceived: summarised.received,
      seconds: (now - summarised.at) / 1000,
      alerts,
      blocks: { active: blocks.size, kernelDropped: 'error' in chain ? null : chain.blockDrops.packets },
      uninspected: guard.unverdicted(),
    });
    summarised = { received: queues.reduce((n, c) => n + c.received, 0), at: now };
    log.event('summary', { console_only: true, console_text: text });
  };
  const timer = o.statsInterval > 0
    ? setInterval(() => {
      stats.report();
      void reportBlocks(false).then(summarise);
    }, o.statsInterval * 1000)
    : null;
  const reloader = new RuleReloader(o.rules, o.rulesFormat, sup, log, metricsServer ? (result, s) => metricsServer?.metrics.reloaded(result, s) : undefined);
  metricsServer?.metrics.attach({
    queues: () => sup.snapshot(),
    kernelQueues: () => readKernelQueueStats(),
    unverdicted: () => guard.unverdicted(),
    ruleStats: () => sup.ruleStats(),
    detector: () => detector?.stats() ?? null,
    blocks: () => ({ active: blocks.size, counts: { ...blocks.counts } }),
    blockDrops: async () => {
      const c = await chainCounters(o, plan);
      return 'error' in c ? null : c.blockDrops;
    },
  });
  if (o.watchRules) reloader.watch();
  let control: ControlServer | null = null;
  if (o.controlSocket) {
    try {
      control = await ControlServer.listen(o.controlSocket, async (req: ControlRequest) => {
        switch (req.cmd) {
          case 'rules.reload':
            return reloader.reload('control');
          case 'rules.stats':
            return sup.ruleStats();
          case 'blocks.list':
            return blocks.list();
          case 'blocks.add':
            return blocks.addManual(req);
          case 'blocks.del':
            if (typeof req.key !== 'string') throw new Error('blocks del needs the block, as "nfips blocks list" shows it');
            return blocks.remove(req.key, 'manual');
          case 'blocks.flush':
            return blocks.flush('manual');
          case 'status':
            return statusOf(sup, startedAt, detector, blocks, o, plan, learningStatus(), guard);
        }
      });
    } catch (e) {
      // The engine works without it; say so loudly rather than stop a gateway.
      log.event('control_socket_failed', { path: o.controlSocket, error: (e as Error).message }, 'error');
    }
  }
  log.event('ready', { queues: queueNumbers(o), rules_count: rules.rules.length, control_socket: control?.file ?? null, metrics: o.metricsListen && metricsServer ? `http://${formatListenAddress(o.metricsListen)}/metrics` : null });

  let stopping: Promise<number> | null = null;
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (resolveDone = r));

  const stop = (reason: string): Promise<number> => {
    if (stopping) return stopping;
    stopping = (async () => {
      if (timer) clearInterval(timer);
      reloader.close();
      log.event('stopping', { reason });
      await guard.close();
      await blocks.close();
      await reportBlocks(true).catch(() => undefined);
      let code = EXIT_OK;
      // Stop queueing first, then drain and unbind while the REJECT rules
      // still stand for the verdicts on the way, then remove the rest.
      try {
        await stopQueueing(plan, bins);
      } catch (e) {
        log.event('iptables_remove_failed', { error: (e as Error).message, hint: 'packets are still queued; the queues are drained and the chain removed next' }, 'warn');
      }
      await sup.stop();
      try {
        const removed = await remove({ chain: plan.chain, families: plan.families.map((f) => f.family) }, bins);
        log.event('iptables_removed', {
          chain: removed.chain,
          families: removed.families.map((f) => ({ family: f.family, jumps: f.jumpsRemoved.length, chain_removed: f.chainRemoved, block_sets_removed: f.setsRemoved })),
          blocks_saved: blocks.size,
        });
      } catch (e) {
        code = EXIT_RUNTIME;
        log.event('iptables_remove_failed', { error: (e as Error).message, hint: 'run "nfips iptables remove"' }, 'error');
      }
      await control?.close();
      await closeMetrics();
      stats.report(true);
      await learning?.close();
      await detector?.close();
      log.event('stop', { reason, exit_code: code });
      await log.close();
      // Last: the chain and sets are gone, so the next instance finds nothing of ours.
      instanceLock.release();
      resolveDone(code);
      return code;
    })();
    return stopping;
  };

  signals.onStop((reason) => void stop(reason));
  signals.onReload(() => void reloader.reload('sighup').catch(() => undefined));
  signals.onReopen(() => {
    log.reopen();
    log.event('log_reopened', { file: o.logFile });
  });
  const sig = signals.signalled();
  if (sig) void stop(sig);
  return { done, stop };
}
