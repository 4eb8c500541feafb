// `nfips run`: the lifecycle. Starts the pieces in order (rules, detection,
// queue threads, iptables, then stats, reloads and the control socket) and
// stops them in reverse. Queues come first, then iptables, so no packet is
// sent to a queue nobody listens on. What each piece means is in its own
// module: run-config.ts, detection-setup.ts, stats-report.ts, status.ts,
// control-dispatch.ts, signals.ts.
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { RunOptions } from './run-options';
import { Detector, ScoreWorkerModule } from '../detect/detector';
import { install, iptablesAvailable, remove, stopQueueing } from '../iptables/apply';
import { IptablesPlan } from '../iptables/plan';
import { createEventLog } from '../log/event-log';
import { NF_DROP, NF_REPEAT } from '../batch/layout';
import { CaptureSourceOptions, QueueSourceOptions, QueueSupervisor } from '../queue/supervisor';
import { readRuleFile } from '../rules/load';
import { RuleSet } from '../rules/types';
import { readKernelQueueStats } from '../stats/kernel-queue';
import { ControlServer } from '../control/server';
import { RuleReloader } from './reload';
import { logRuleWarnings } from './rule-warnings';
import { logRuleEvents } from './rule-event-log';
import { logFlowRecords } from './flow-log';
import { Allowlist } from '../blocks/allowlist';
import { setPrefixFor, SET_MAXELEM } from '../blocks/ipset';
import { BlockManager } from '../blocks/manager';
import { BlockState, readBlockState, stateFilePath } from '../blocks/state-file';
import { LearningController } from '../detect/learning';
import { formatDuration } from '../config/duration';
import { shareFlagModel } from '../flow/flag-model';
import { ChainGuard } from './chain-guard';
import { checkRunFiles } from './file-checks';
import { readSuppressionFile, Suppressions } from '../detect/suppress';
import type { MetricsServer } from '../stats/metrics';
import { formatListenAddress } from '../config/listen-address';
import { acquireInstanceLock, InstanceLock, InstanceLockedError } from './instance-lock';
import { explainBindError, missingPrivilege } from './privileges';
import { binariesFor, captureSourceFor, describeConfig, doubleCaptureWarning, installsChain, planFor, queueNumbers } from './run-config';
import { DetectionSetup, detectionSetup } from './detection-setup';
import { chainCounters, StatsReporter } from './stats-report';
import { statusOf } from './status';
import { controlDispatch, NO_BLOCKS } from './control-dispatch';
import { catchSignals, SignalHooks } from './signals';
// Hook point (issue 15): the CrowdSec Local API link lives in src/crowdsec.
import { CrowdSecSecrets, readCrowdSecSecrets } from '../config/crowdsec-options';
import { CrowdSec, startCrowdSec } from '../crowdsec/setup';

/** Whether this network namespace forwards IPv4 or IPv6. */
function forwarding(): boolean {
  const on = (f: string) => {
    try {
      return readFileSync(f, 'utf8').trim() === '1';
    } catch {
      return false;
    }
  };
  return on('/proc/sys/net/ipv4/ip_forward') || on('/proc/sys/net/ipv6/conf/all/forwarding');
}

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

export interface RunHandle {
  /** Resolves with the exit code once nfips has stopped and cleaned up. */
  done: Promise<number>;
  stop(reason: string): Promise<number>;
}

export interface StartOptions {
  console: boolean;
  handleSignals: boolean;
  /** The scoring pool's worker module (tests pass one that fails on demand). */
  scoreWorker?: ScoreWorkerModule;
}

/**
 * Starts nfips. Throws StartupError (nothing left installed) if any step
 * fails; otherwise runs until stop() or a signal.
 */
export async function startRun(o: RunOptions, opts: StartOptions): Promise<RunHandle> {
  const signals = catchSignals(opts.handleSignals);
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
    // A watch without --block installs no chain: a `run` beside it (with its own --state-dir) keeps the chain.
    instanceLock = await acquireInstanceLock({ stateDir: o.stateDir, chain: installsChain(o) ? plan.chain : null });
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

async function startLocked(o: RunOptions, opts: StartOptions, rules: RuleSet, suppress: Suppressions, plan: IptablesPlan, instanceLock: InstanceLock, signals: SignalHooks, undo: (() => Promise<void>)[]): Promise<RunHandle> {
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
  let crowdsecSecrets: CrowdSecSecrets | null;
  try {
    saved = readBlockState(stateFile);
    crowdsecSecrets = o.crowdsec ? readCrowdSecSecrets(o.crowdsec) : null;
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
  const chainWanted = installsChain(o);
  const unavailable = chainWanted ? await iptablesAvailable(bins, plan.families.map((f) => f.family)) : null;
  if (unavailable) {
    await closeMetrics();
    throw new StartupError(`cannot manage iptables: ${unavailable}`, EXIT_RUNTIME);
  }

  const log = createEventLog({ file: o.logFile, fileLabel: '--log-file', console: opts.console, level: o.logLevel });
  log.event('start', { config: describeConfig(o, rules) });
  for (const w of detection.warnings) log.event('config_warning', { warning: w }, 'warn');
  const doubled = o.capture ? doubleCaptureWarning(o.capture, forwarding()) : null;
  if (doubled) log.event('config_warning', { warning: doubled }, 'warn');
  if (!suppress.empty) {
    log.event('suppressions', { file: o.suppress, entries: suppress.entries.length, ...(detection.features && detection.model !== null ? {} : { warning: 'no anomaly detection in this mode: the list has nothing to suppress' }) });
  }
  // A watch without --block enforces nothing: no blocks, and its state file is left alone.
  const blocks = chainWanted ? new BlockManager({
    policy: { ttlSeconds: o.blockTtl, maxTtlSeconds: o.blockMaxTtl, maxBlocks: o.maxBlocks, maxExternal: o.crowdsec?.maxDecisions ?? SET_MAXELEM - o.maxBlocks },
    allowlist,
    saved,
    stateFile,
    setPrefix: setPrefixFor(plan.chain),
    families: plan.families.map((f) => f.family),
    bins,
    log,
  }) : null;
  // Scoring threads start before the queues, so the first window has somewhere to go.
  const learnPlan = detection.learning;
  const respondFor = (mode: RunOptions['mode']) => (mode === 'prevent' && blocks ? blocks.respondToSource.bind(blocks) : undefined);
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
      const queues = queueNumbers(o).length;
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
        scoreWorker: opts.scoreWorker,
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
    // A watch's threads capture; run's bind NFQUEUE queues. Everything after the batch is the same.
    const source: QueueSourceOptions | CaptureSourceOptions = o.capture
      ? { capture: captureSourceFor(o) }
      : {
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
        };
    sup = await QueueSupervisor.start({
      ...source,
      engine: { mode: o.verdictMode, mark: o.mark, rejectMark: o.rejectMark, eventsPerSecond: o.logRate, flowCapacity: FLOW_CAPACITY, malformed: o.malformed, rulesMode: o.rulesMode, flowsPerSecond: o.flowLog ? o.flowLogRate : null },
      features: detection.features,
      rules,
      log,
      onRuleEvents: (queue, rs, events) => logRuleEvents(log, queue, rs, events),
      onFlows: (_queue, records) => logFlowRecords(log, records),
      onStep: detector ? (s) => detector.onStep(s) : undefined,
    });
  } catch (e) {
    const error = o.capture ? `cannot capture: ${(e as Error).message}` : `cannot bind NFQUEUE: ${explainBindError((e as Error).message)}`;
    log.event('start_failed', { error }, 'error');
    await detector?.close();
    await log.close();
    await closeMetrics();
    // A device that is missing or a filter libpcap refuses is the operator's to fix; a permission or a kernel failure is not.
    throw new StartupError(error, o.capture && /bad filter|no such device|does ?n[o']t exist|cannot be split/i.test(error) ? EXIT_CONFIG : EXIT_RUNTIME);
  }
  supRef = sup;
  if (o.capture) log.event('capture_started', { workers: o.capture.workers, ifaces: o.capture.ifaces, nflog_groups: o.capture.nflogGroups, filter: o.capture.filter || null, block: o.capture.block });
  else log.event('queues_bound', { queues: queueNumbers(o) });
  logRuleWarnings(log, rules, sup.rulesVersion, sup.unresolvedInterfaces, o.capture !== null);

  let crowdsec: CrowdSec | null = null;
  try {
    abortIfSignalled();
    if (blocks) {
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
    }
    abortIfSignalled();
    // After the sets exist: the link's first pull may apply decisions at once.
    crowdsec = o.crowdsec && crowdsecSecrets && blocks ? startCrowdSec(o.crowdsec, crowdsecSecrets, blocks, log, o.stateDir) : null;
  } catch (e) {
    await crowdsec?.close();
    if (signals.signalled() && blocks) await remove({ chain: plan.chain, families: plan.families.map((f) => f.family) }, bins).catch(() => undefined);
    await sup.stop();
    await detector?.close();
    log.event('start_failed', { error: (e as Error).message }, signals.signalled() ? 'info' : 'error');
    await log.close();
    await closeMetrics();
    throw e instanceof StartupError ? e : new StartupError((e as Error).message, EXIT_RUNTIME);
  }

  const startedAt = Date.now();
  // Over what was installed; the fail-open accounting only where packets are queued.
  const guard = blocks ? new ChainGuard({ plan, bins, log, blocks, sup, failClosed: o.failClosed, queueing: o.capture === null }) : null;
  guard?.start();
  const learningStatus = (): Record<string, unknown> | null =>
    learning ? learning.status() : learnPlan?.done ? { state: 'done', finished_at: learnPlan.done.finishedAt, model: learnPlan.files.model } : null;
  const stats = new StatsReporter(sup, log, detector, blocks, guard, o, plan);
  const timer = o.statsInterval > 0 ? setInterval(() => stats.tick(), o.statsInterval * 1000) : null;
  const reloader = new RuleReloader(o.rules, o.rulesFormat, sup, log, metricsServer ? (result, s) => metricsServer?.metrics.reloaded(result, s) : undefined, o.capture !== null);
  metricsServer?.metrics.attach({
    queues: () => sup.snapshot(),
    capture: o.capture !== null,
    kernelQueues: () => (o.capture ? [] : readKernelQueueStats()),
    unverdicted: () => guard?.unverdicted() ?? null,
    ruleStats: () => sup.ruleStats(),
    detector: () => detector?.stats() ?? null,
    blocks: () => (blocks ? { active: blocks.size, counts: { ...blocks.counts } } : null),
    blockDrops: async () => {
      if (!blocks) return null;
      const c = await chainCounters(o, plan);
      return 'error' in c ? null : c.blockDrops;
    },
  });
  if (o.watchRules) reloader.watch();
  let control: ControlServer | null = null;
  if (o.controlSocket) {
    try {
      const status = () => statusOf(sup, startedAt, detector, blocks, o, plan, learningStatus(), guard, crowdsec);
      control = await ControlServer.listen(o.controlSocket, controlDispatch({ reloader, sup, blocks, status, deleteBlock: (key) => (crowdsec ? crowdsec.link.deleteBlock(key, 'manual') : blocks ? blocks.remove(key, 'manual') : Promise.reject(new Error(NO_BLOCKS))) }));
    } catch (e) {
      // The engine works without it; say so loudly rather than stop a gateway.
      log.event('control_socket_failed', { path: o.controlSocket, error: (e as Error).message }, 'error');
    }
  }
  log.event('ready', { [o.capture ? 'workers' : 'queues']: queueNumbers(o), rules_count: rules.rules.length, control_socket: control?.file ?? null, metrics: o.metricsListen && metricsServer ? `http://${formatListenAddress(o.metricsListen)}/metrics` : null });

  let stopping: Promise<number> | null = null;
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (resolveDone = r));

  const stop = (reason: string): Promise<number> => {
    if (stopping) return stopping;
    stopping = (async () => {
      if (timer) clearInterval(timer);
      reloader.close();
      log.event('stopping', { reason });
      await guard?.close();
      await crowdsec?.close();
      await blocks?.close();
      await stats.reportBlocks(true).catch(() => undefined);
      let code = EXIT_OK;
      // Stop queueing first, then drain and unbind while the REJECT rules
      // still stand for the verdicts on the way, then remove the rest.
      if (!o.capture) {
        try {
          await stopQueueing(plan, bins);
        } catch (e) {
          log.event('iptables_remove_failed', { error: (e as Error).message, hint: 'packets are still queued; the queues are drained and the chain removed next' }, 'warn');
        }
      }
      await sup.stop();
      if (blocks) {
        try {
          const removed = await remove({ chain: plan.chain, families: plan.families.map((f) => f.family) }, bins);
          log.event('iptables_removed', {
            chain: removed.chain,
            families: removed.families.map((f) => ({ family: f.family, jumps: f.jumpsRemoved.length, chain_removed: f.chainRemoved, block_sets_removed: f.setsRemoved })),
            blocks_saved: blocks?.size ?? 0,
          });
        } catch (e) {
          code = EXIT_RUNTIME;
          log.event('iptables_remove_failed', { error: (e as Error).message, hint: 'run "nfips iptables remove"' }, 'error');
        }
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
