// Command line: parses and checks flags, then hands over to src/app.
import yargs, { Argv } from 'yargs';
import { EXIT_CONFIG, EXIT_RUNTIME, startRun, StartOptions, StartupError } from '../app/run';
import { binariesFor, planFor } from '../app/run-config';
import { resolveRunOptions, RUN_DEFAULTS, RunFlags, RunOptions } from '../app/run-options';
import { describeRemoval, install, iptablesAvailable, remove } from '../iptables/apply';
import { renderPlanText } from '../iptables/commands';
import { DEFAULT_CHAIN } from '../iptables/plan';
import path from 'node:path';
import { controlRequest, notRunning } from '../control/client';
import { liveBlockSets, OfflineBlocks } from '../blocks/offline';
import { ControlRequest, DEFAULT_CONTROL_SOCKET } from '../control/protocol';
import { formatBlocks, formatSessions, formatStatus } from './status-text';
import { SessionsAnswer, sessionsCsv } from '../flow/flow-record';
import { DEFAULT_SESSIONS_LIMIT, MAX_SESSIONS_LIMIT } from '../flow/session-snapshot';
import { explain, formatExplanation } from '../rules/explain';
import { FormatChoice, readRuleFile } from '../rules/load';
import { parsePacketText } from '../rules/packet-text';
import { describeMissing, describeShadowed, missingInterfaces, shadowedRules } from '../rules/lint';
import { ifindexOf } from '../rules/interfaces';
import { RuleStats } from '../queue/supervisor';
import { runTrain } from '../app/train';
import { runReplay } from '../app/replay';
import { createEventLog } from '../log/event-log';
import { checkLines, parseSince, runLogs } from './logs';
import { escapeControl, escapeJsonLine } from '../log/escape';
import { chainLockHolder, holdStateLock, InstanceLockedError } from '../app/instance-lock';
import { repeatedFlags } from './repeated-flags';
import { readSuppressionFile } from '../detect/suppress';
import { CONFIG_FLAGS, ConfigFile, locateProblems, mergeConfig, readConfigFile } from '../app/config-file';

function die(message: string, code: number): never {
  // Messages quote file names, ids and flag values: no escape sequence from them reaches the terminal.
  process.stderr.write(`nfips: ${message.split('\n').map(escapeControl).join('\nnfips: ')}\n`);
  process.exit(code);
}

/** The run flags the command line set (yargs sets no defaults for them), over those of --config. */
function resolveOrDie(argv: Record<string, unknown>, command: 'run' | 'watch' = 'run'): RunOptions {
  const given = Object.fromEntries(Object.keys(CONFIG_FLAGS).map((k) => [camelCase(k), argv[camelCase(k)]]).filter(([, v]) => v !== undefined)) as RunFlags;
  let config: ConfigFile | null = null;
  if (argv.config === '') die('invalid --config "": give the config file, e.g. --config /etc/nfips/nfips.yaml', EXIT_CONFIG);
  if (typeof argv.config === 'string') {
    try {
      config = readConfigFile(argv.config);
    } catch (e) {
      die((e as Error).message, EXIT_CONFIG);
    }
  }
  const { flags, origins } = mergeConfig(config, given);
  try {
    return resolveRunOptions({ ...flags, config: typeof argv.config === 'string' ? argv.config : undefined }, command);
  } catch (e) {
    die(locateProblems((e as Error).message, origins), EXIT_CONFIG);
  }
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Flags that shape what is installed in iptables (run and iptables share them). */
function chainFlags<T>(y: Argv<T>) {
  return y
    .option('config', { type: 'string', describe: 'YAML or JSON file holding any "nfips run" flags, keys named like the long flags (state-dir: /var/lib/nfips); flags given here override it' })
    .option('queues', { type: 'string', defaultDescription: String(RUN_DEFAULTS.queues), describe: 'NFQUEUE queue number N or range A-B; one thread per queue, flows spread with --queue-balance' })
    .option('hook', { type: 'string', defaultDescription: String(RUN_DEFAULTS.hook), choices: ['forward', 'input', 'both'], describe: 'which packets: forwarded ones, ones addressed to this host (INPUT, lo excluded), or both' })
    .option('table', { type: 'string', defaultDescription: String(RUN_DEFAULTS.table), choices: ['mangle', 'filter'], describe: 'table nfips queues from: mangle keeps the host\'s filter rules in force for packets that fail open; filter puts nfips in front of them (a fail-open accept then skips them)' })
    .option('mark', { type: 'string', defaultDescription: String(RUN_DEFAULTS.mark), describe: 'repeat mark VALUE/MASK set on accepted packets; marked packets skip the queue on re-entry' })
    .option('reject-mark', { type: 'string', defaultDescription: String(RUN_DEFAULTS.rejectMark), describe: 'mark VALUE/MASK for rejected packets; a REJECT rule in the NFIPS chain answers them' })
    .option('fail-closed', { type: 'boolean', defaultDescription: 'false', describe: 'drop packets when nfips is not running or the queue is full (default: let them pass)' })
    .option('exclude', { type: 'string', array: true, describe: 'CIDR whose traffic never goes to the queue (repeatable)' })
    .option('ipv6', { type: 'boolean', defaultDescription: String(RUN_DEFAULTS.ipv6), describe: 'also inspect IPv6 (ip6tables); --no-ipv6 for IPv4 only' })
    .option('iptables', { type: 'string', defaultDescription: String(RUN_DEFAULTS.iptables), describe: 'iptables binary (e.g. iptables-legacy)' })
    .option('ip6tables', { type: 'string', defaultDescription: String(RUN_DEFAULTS.ip6tables), describe: 'ip6tables binary' });
}

/** What `nfips watch` captures, and the few chain flags its --block uses. */
function watchFlags<T>(y: Argv<T>) {
  return y
    .option('config', { type: 'string', describe: 'YAML or JSON file holding any "nfips watch" flags, keys named like the long flags; flags given here override it' })
    .option('iface', { type: 'string', array: true, describe: 'interface to capture from (repeatable: e.g. both ports of a TAP); promiscuous unless --no-promisc' })
    .option('nflog', { type: 'string', array: true, describe: 'NFLOG group to read (repeatable): packets an iptables "-j NFLOG --nflog-group N" rule copies, through libpcap\'s nflog device' })
    .option('filter', { type: 'string', describe: 'BPF filter (tcpdump syntax) applied in the kernel, e.g. "not port 22"' })
    .option('workers', { type: 'string', defaultDescription: String(RUN_DEFAULTS.workers), describe: 'capture threads; flows are split between them by a symmetric hash of the addresses, so both directions of a session meet in one' })
    .option('snaplen', { type: 'string', defaultDescription: String(RUN_DEFAULTS.snaplen), describe: 'bytes kept of each frame, link header included' })
    .option('capture-buffer-mb', { type: 'string', defaultDescription: String(RUN_DEFAULTS.captureBufferMb), describe: 'libpcap\'s kernel buffer per interface and thread, MiB; what overflows it is counted as capture drops in stats and status' })
    .option('promisc', { type: 'boolean', defaultDescription: String(RUN_DEFAULTS.promisc), describe: 'put interfaces in promiscuous mode (a mirror port\'s traffic is not addressed to this host); --no-promisc to leave them' })
    .option('direction', { type: 'string', defaultDescription: String(RUN_DEFAULTS.direction), choices: ['both', 'in'], describe: 'both: frames arriving and leaving each interface (one interface of a router sees both directions of what it forwards); in: arriving only, so a packet forwarded between two watched interfaces (or on "any") is seen once, not twice' })
    .option('block', { type: 'boolean', defaultDescription: 'false', describe: 'block anomalous sources in the kernel (ipsets matched from --hook), as nfips run does in prevent mode: for a box that also forwards the watched traffic' })
    .option('hook', { type: 'string', defaultDescription: String(RUN_DEFAULTS.hook), choices: ['forward', 'input', 'both'], describe: 'with --block: which packets the block sets stop: forwarded ones, ones addressed to this host, or both' })
    .option('exclude', { type: 'string', array: true, describe: 'CIDR never blocked (repeatable)' })
    .option('ipv6', { type: 'boolean', defaultDescription: String(RUN_DEFAULTS.ipv6), describe: 'with --block: also ip6tables; --no-ipv6 for IPv4 only' })
    .option('iptables', { type: 'string', defaultDescription: String(RUN_DEFAULTS.iptables), describe: 'iptables binary (with --block)' })
    .option('ip6tables', { type: 'string', defaultDescription: String(RUN_DEFAULTS.ip6tables), describe: 'ip6tables binary (with --block)' });
}

/** Flags of both `run` and `watch`: rules, logs, detection, blocks, the control socket. */
function inspectionFlags<T>(y: Argv<T>) {
  return y
    .option('rules', { type: 'string', describe: 'JSON rule file (default: rules/default.json shipped with nfips)' })
    .option('rules-format', { ...formatFlag, default: undefined, defaultDescription: 'auto' })
    .option('log-rate', { type: 'string', defaultDescription: String(RUN_DEFAULTS.logRate), describe: 'drop/reject/alert events logged per rule per second; the rest are counted as suppressed' })
    .option('control-socket', { type: 'string', defaultDescription: String(RUN_DEFAULTS.controlSocket), describe: 'unix socket for "nfips status" and "nfips rules reload|stats" ("" to disable)' })
    .option('watch-rules', { type: 'boolean', defaultDescription: String(RUN_DEFAULTS.watchRules), describe: 'reload the rules when the file changes (also on SIGHUP)' })
    .option('log-file', { type: 'string', defaultDescription: String(RUN_DEFAULTS.logFile), describe: 'JSON-lines event log' })
    .option('log-level', { type: 'string', defaultDescription: String(RUN_DEFAULTS.logLevel), choices: ['error', 'warn', 'info', 'debug'] })
    .option('stats-interval', { type: 'string', defaultDescription: String(RUN_DEFAULTS.statsInterval), describe: 'seconds between per-queue stats events (0: off)' })
    .option('batch-size', { type: 'string', defaultDescription: String(RUN_DEFAULTS.batchSize), describe: 'most packets handed over per native call' })
    .option('model', { type: 'string', describe: 'anomaly model (default: models/default.json shipped with nfips)' })
    .option('window-seconds', { type: 'string', describe: 'feature window length (default: the model\'s, 60)' })
    .option('step-seconds', { type: 'string', describe: 'seconds between windows (default: the model\'s, 1)' })
    .option('scoring-threads', { type: 'string', defaultDescription: String(RUN_DEFAULTS.scoringThreads), describe: 'classifier worker threads (never the queue threads)' })
    .option('record-features', { type: 'string', describe: 'append every feature window to this JSON-lines file, for "nfips train --features"' })
    .option('allow', { type: 'string', array: true, describe: 'CIDR never blocked (repeatable); the gateway\'s own addresses and --exclude networks never are either' })
    .option('block-ttl', { type: 'string', defaultDescription: String(RUN_DEFAULTS.blockTtl), describe: 'seconds a first anomaly block lasts; each repeat offence doubles it' })
    .option('block-max-ttl', { type: 'string', defaultDescription: String(RUN_DEFAULTS.blockMaxTtl), describe: 'cap on a block\'s time to live, seconds' })
    .option('max-blocks', { type: 'string', defaultDescription: String(RUN_DEFAULTS.maxBlocks), describe: 'most blocks in force at once; more are refused and logged' })
    .option('state-dir', { type: 'string', defaultDescription: String(RUN_DEFAULTS.stateDir), describe: 'directory of blocks.json (blocks survive a restart with their remaining time) and of --learn\'s recording and model' })
    .option('learn', { type: 'string', describe: 'learn this site first: for DURATION (e.g. 24h) enforce the rules, only alert, and record the traffic; then train a site model (written to --state-dir/model.json) and run in --mode with it. A restart resumes the learning' })
    .option('malformed', { type: 'string', defaultDescription: String(RUN_DEFAULTS.malformed), choices: ['drop', 'policy'], describe: 'packets whose transport header nfips cannot see (IPv6 headers past --copy-range, tiny or overlapping fragments, unknown next header, bad TCP offset): drop them when a drop/reject rule could have matched, or leave them to the rules and default policy' })
    .option('suppress', { type: 'string', describe: 'JSON file of anomaly suppressions (by signature_id and/or source network): a suppressed anomaly neither alerts nor blocks' })
    .option('ipset', { type: 'string', defaultDescription: String(RUN_DEFAULTS.ipset), describe: 'ipset binary (blocks are ipsets matched before the queue)' })
    .option('flow-log', { type: 'string', defaultDescription: String(RUN_DEFAULTS.flowLog), choices: ['on', 'off'], describe: 'on: a Suricata EVE "flow" event in the log file for every session that ends (TCP close, idle timeout, pushed out of a full table, stop), with packets and bytes each way; on by default, as Suricata\'s eve.json ships with flow records and dashboards expect them; --flow-log-rate bounds the volume. off: none' })
    .option('flow-log-rate', { type: 'string', defaultDescription: String(RUN_DEFAULTS.flowLogRate), describe: 'most flow events per second per queue; the rest are counted as flows_suppressed in stats' })
    .option('metrics-listen', { type: 'string', describe: 'serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9808; off by default)' });
}

async function cmdRun(argv: Record<string, unknown>, extras: Pick<StartOptions, 'scoreWorker'>, command: 'run' | 'watch' = 'run'): Promise<void> {
  // Named for ps, top and `pidof nfips` (else it is one more "node"); only the daemon, not the other commands.
  process.title = 'nfips';
  exitOnStdoutError = false;
  const o = resolveOrDie(argv, command);
  try {
    const h = await startRun(o, { console: true, handleSignals: true, ...extras });
    process.exitCode = await h.done;
  } catch (e) {
    die((e as Error).message, e instanceof StartupError ? e.exitCode : EXIT_RUNTIME);
  }
}

async function cmdIptables(action: string, argv: Record<string, unknown>): Promise<void> {
  const o = resolveOrDie(argv);
  const plan = planFor(o);
  const bins = binariesFor(o);
  if (action === 'print') {
    process.stdout.write(renderPlanText(plan, bins));
    return;
  }
  // The chain of a running nfips is its own: replacing or removing it under
  // it would leave it running with nothing queued to it.
  const holder = await chainLockHolder(plan.chain);
  if (holder) die(`nfips (pid ${holder.pid ?? 'unknown'}) is running with chain ${plan.chain} in this network namespace (lock ${holder.lock}); stop it instead, it removes its chain itself`, EXIT_RUNTIME);
  const reason = await iptablesAvailable(bins, plan.families.map((f) => f.family));
  if (reason) die(`cannot manage iptables: ${reason}`, EXIT_RUNTIME);
  try {
    if (action === 'install') {
      const s = await install(plan, bins);
      process.stdout.write(`installed chain ${s.chain}: ${s.families.map((f) => `${f.family} ${f.rules} rules, jumps from ${f.jumps.join('+')}`).join('; ')}\n`);
      process.stdout.write('nothing answers the queue until "nfips run" starts; without --fail-closed packets bypass it meanwhile\n');
    } else {
      process.stdout.write(`${describeRemoval(await remove({ chain: plan.chain, families: plan.families.map((f) => f.family) }, bins))}\n`);
    }
  } catch (e) {
    die((e as Error).message, EXIT_RUNTIME);
  }
}

function loadOrDie(file: string, format: string): ReturnType<typeof readRuleFile> {
  try {
    return readRuleFile(file, format as FormatChoice);
  } catch (e) {
    die((e as Error).message, EXIT_CONFIG);
  }
}

async function ask(socket: string, req: ControlRequest): Promise<unknown> {
  try {
    return await controlRequest(socket, req);
  } catch (e) {
    die((e as Error).message, EXIT_RUNTIME);
  }
}

function printRuleStats(s: RuleStats): void {
  const rows = [...s.rules.map((r, i) => ({ n: `#${i}`, ...r })), { n: '-', id: '(default)', action: s.default.action, packets: s.default.packets, bytes: s.default.bytes }];
  const w = Math.max(8, ...rows.map((r) => escapeControl(r.id).length));
  process.stdout.write(`rules version ${s.version} from ${escapeControl(s.file)} (sha256 ${s.sha256.slice(0, 12)})\n`);
  process.stdout.write(`${'#'.padEnd(6)} ${'id'.padEnd(w)} ${'action'.padEnd(7)} ${'packets'.padStart(12)} ${'bytes'.padStart(14)}\n`);
  // Rule ids come from the rules file: escaped so one rule stays one line.
  for (const r of rows) process.stdout.write(`${r.n.padEnd(6)} ${escapeControl(r.id).padEnd(w)} ${r.action.padEnd(7)} ${String(r.packets).padStart(12)} ${String(r.bytes).padStart(14)}\n`);
}

/** Flags of the blocks commands: the running instance's socket, and the state directory used when it is stopped. */
function blockFlags<T>(y: Argv<T>) {
  return y
    .option('control-socket', controlFlag)
    .option('state-dir', { type: 'string', default: RUN_DEFAULTS.stateDir, describe: 'state directory of nfips run (blocks.json), edited when nfips is not running' });
}

/**
 * A blocks command: over the control socket when nfips answers there, else
 * on the state file, saying so (the next start applies it).
 */
async function onBlocks<R>(argv: { controlSocket: string; stateDir: string }, req: ControlRequest, offline: (o: OfflineBlocks) => R): Promise<R> {
  try {
    return (await controlRequest(argv.controlSocket, req)) as R;
  } catch (e) {
    if (!notRunning(e)) die((e as Error).message, EXIT_RUNTIME);
  }
  // Held for the edit: an nfips running on another socket (its edit would be
  // overwritten) is refused, and one starting meanwhile waits for the file.
  let lock: { release(): void };
  try {
    lock = holdStateLock(path.resolve(argv.stateDir));
  } catch (e) {
    die(e instanceof InstanceLockedError ? `${e.message.replace(/^another nfips/, 'nfips')} (nothing answers on ${argv.controlSocket})` : (e as Error).message, e instanceof InstanceLockedError ? EXIT_RUNTIME : EXIT_CONFIG);
  }
  let result: R;
  try {
    const o = new OfflineBlocks(path.resolve(argv.stateDir), RUN_DEFAULTS.blockTtl);
    result = offline(o);
    // stderr, so `blocks list --json` stays parseable.
    process.stderr.write(`nfips is not running (nothing answers on ${argv.controlSocket}); ${req.cmd === 'blocks.list' ? 'read' : 'edited'} the state file ${o.file}${req.cmd === 'blocks.list' ? '' : ', applied at next start'}\n`);
  } catch (e) {
    die((e as Error).message, EXIT_CONFIG);
  } finally {
    lock.release();
  }
  const sets = await liveBlockSets(DEFAULT_CHAIN);
  if (sets.length) {
    process.stderr.write(`nfips: warning: nfips' block sets are in the kernel (${sets.join(', ')}): if an nfips runs with another --control-socket (or none), it does not see this and will overwrite the state file; give its socket instead. If none runs (it was killed), the sets are stale and the next start replaces them\n`);
  }
  return result;
}

const controlFlag = { type: 'string', default: DEFAULT_CONTROL_SOCKET, describe: 'control socket of the running nfips' } as const;
const formatFlag = { type: 'string', default: 'auto', choices: ['auto', 'native', '2columns'], describe: 'rule file format (auto detects 2columnS files)' } as const;

// `nfips rules stats | head -1` closes the pipe early: for every command that
// is a normal end, not an unhandled EPIPE with a stack trace. Except `run`:
// exiting there would skip its cleanup and leave the chain installed; its
// console is only a copy of the event log, so it runs on without it.
let exitOnStdoutError = true;
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (exitOnStdoutError) process.exit(e.code === 'EPIPE' ? 0 : EXIT_RUNTIME);
});

/**
 * Parses `args` (what follows `nfips` on the command line) and runs the
 * command. bin/nfips passes no extras; test harnesses pass what they inject
 * into `run` (a scoring worker that fails on demand).
 */
export function runCli(args: readonly string[], extras: Pick<StartOptions, 'scoreWorker'> = {}): Promise<unknown> {
  return yargs([...args])
    .scriptName('nfips')
    .usage('$0 <command> [options]\n\nInline intrusion prevention over NFQUEUE repeat mode.')
    .command(
      'run',
      'inspect every forwarded (and/or input) packet until stopped with SIGINT/SIGTERM',
      (y) =>
        inspectionFlags(chainFlags(y))
          .option('verdict-mode', { type: 'string', defaultDescription: String(RUN_DEFAULTS.verdictMode), choices: ['repeat', 'accept'], describe: 'repeat: NF_REPEAT + mark, so the host ruleset still decides; accept: plain NF_ACCEPT' })
          .option('copy-range', { type: 'string', defaultDescription: String(RUN_DEFAULTS.copyRange), describe: 'bytes of each packet copied to nfips' })
          .option('queue-maxlen', { type: 'string', defaultDescription: String(RUN_DEFAULTS.queueMaxlen), describe: 'kernel queue length, in packets' })
          .option('rcvbuf-mb', { type: 'string', defaultDescription: String(RUN_DEFAULTS.rcvbufMb), describe: 'netlink socket receive buffer, MiB' })
          .option('rules-mode', { type: 'string', defaultDescription: String(RUN_DEFAULTS.rulesMode), choices: ['enforce', 'log'], describe: 'enforce: the rules decide; log: a dry run, every packet a rule, the default policy or lock would drop or reject is accepted and logged with alert.action would-drop/would-reject (anomaly blocks follow --mode)' })
          .option('crowdsec-url', { type: 'string', describe: 'CrowdSec Local API (e.g. http://10.0.0.1:8080): apply its ban decisions on IPs and ranges as blocks (origin crowdsec); see README "Several gateways"' })
          .option('crowdsec-bouncer-key-file', { type: 'string', describe: 'file holding the bouncer key "cscli bouncers add NAME" printed (needed with --crowdsec-url)' })
          .option('crowdsec-interval', { type: 'string', defaultDescription: '10s', describe: 'time between decision pulls from the Local API' })
          .option('crowdsec-machine-id', { type: 'string', describe: 'machine name "cscli machines add" registered: publish every anomaly block to the Local API as an alert with its decision' })
          .option('crowdsec-password-file', { type: 'string', describe: 'file holding that machine\'s password (needed with --crowdsec-machine-id)' })
          .option('crowdsec-max-decisions', { type: 'string', defaultDescription: '65536 minus --max-blocks', describe: 'most CrowdSec blocks in force at once, apart from --max-blocks (local blocks always have their own room)' })
          .option('mode', { type: 'string', defaultDescription: String(RUN_DEFAULTS.mode), choices: ['prevent', 'detect', 'off'], describe: 'prevent: alert on anomalies and block sources whose own behaviour is far outside what single sources do in normal traffic; detect: alert only; off: rules only' })
          .example('$0 run --rules rules/default.json --queues 0-1 --hook forward --log-file /var/log/nfips/nfips.json', ''),
      (argv) => cmdRun(argv, extras),
    )
    .command(
      'watch',
      'passive: inspect a copy of the traffic (a mirror/SPAN port, a TAP, or packets an iptables NFLOG rule copies) with the same rules and detection, until stopped; rules only log what they would drop',
      (y) =>
        inspectionFlags(watchFlags(y))
          .option('mode', { type: 'string', defaultDescription: 'detect', choices: ['detect', 'off'], describe: 'detect: alert on anomalies (with --block also block their sources); off: rules only' })
          .example('$0 watch --iface eth1 --log-file /var/log/nfips/nfips.json', 'a mirror port: every rule match and anomaly is logged, nothing is dropped')
          .example('$0 watch --nflog 5', 'what "iptables -A FORWARD -p tcp --dport 80 -j NFLOG --nflog-group 5" copies')
          .example('$0 watch --iface eth1 --workers 2 --block', 'a box that also forwards the traffic: anomalous sources are blocked in the kernel'),
      (argv) => cmdRun(argv, extras, 'watch'),
    )
    .command(
      'iptables <action>',
      'print, install or remove the NFIPS chain, its block sets and its jumps (remove cleans up after kill -9)',
      (y) => chainFlags(y).positional('action', { choices: ['print', 'install', 'remove'] as const, demandOption: true }),
      (argv) => cmdIptables(argv.action, argv),
    )
    .command('rules <action>', 'check, test, reload or show counters of rules', (y) =>
      y
        .command(
          'check [file]',
          'validate a rule file (or the one a --config file names, which is checked too); exit 0 if it would load, 2 with every problem listed otherwise',
          (yy) =>
            yy
              .positional('file', { type: 'string' })
              .option('config', { type: 'string', describe: 'the "nfips run" config file: check it, and its rules file unless FILE is given' })
              .option('rules-format', formatFlag),
          (argv) => {
            // The unit's ExecStartPre checks the config file and the rules it names before starting.
            const o = argv.config !== undefined ? resolveOrDie({ config: argv.config }) : null;
            const file = argv.file ?? o?.rules;
            if (file === undefined) die('say which rules file to check, or give --config', EXIT_CONFIG);
            // The suppression list the config names is a start error too: check it here, not in a restart loop.
            if (o?.suppress) {
              try {
                readSuppressionFile(o.suppress);
              } catch (e) {
                die((e as Error).message, EXIT_CONFIG);
              }
            }
            const rs = loadOrDie(file, argv.file === undefined && o ? o.rulesFormat : argv.rulesFormat);
            const disabled = rs.rules.filter((r) => !r.enabled).length;
            process.stdout.write(`${escapeControl(file)}: OK (${rs.origin.format} format, ${rs.rules.length} rules${disabled ? ` (${disabled} disabled)` : ''}, default ${rs.default}${rs.lock ? ', LOCKED' : ''})\n`);
            // Warnings go to stderr and leave the exit code at 0: the file loads.
            const warnings = [...missingInterfaces(rs, (n) => ifindexOf(n) !== undefined).map(describeMissing), ...shadowedRules(rs).map(describeShadowed)];
            for (const w of warnings) process.stderr.write(`nfips: warning: ${escapeControl(w)}\n`);
          },
        )
        .command(
          'test <file>',
          'show which rule decides a described packet, and why the rules before it did not match',
          (yy) =>
            yy
              .positional('file', { type: 'string', demandOption: true })
              .option('packet', { type: 'string', demandOption: true, describe: 'e.g. "tcp 10.0.0.5:40000 -> 192.0.2.7:23 flags S in lan0"' })
              .option('rules-format', formatFlag)
              .option('verbose', { type: 'boolean', default: false, describe: 'list every non-matching rule, with what it wants in the field that failed and what the packet has there' }),
          (argv) => {
            const rs = loadOrDie(argv.file, argv.rulesFormat);
            let p;
            try {
              p = parsePacketText(argv.packet);
            } catch (e) {
              die((e as Error).message, EXIT_CONFIG);
            }
            process.stdout.write(`${formatExplanation(explain(rs, p), argv.verbose)}\n`);
          },
        )
        .command(
          'reload',
          'make the running nfips reload its rule file (validated first; on error the old rules stay)',
          (yy) => yy.option('control-socket', controlFlag),
          async (argv) => {
            const r = (await ask(argv.controlSocket, { cmd: 'rules.reload' })) as { version: number; rules_count: number; sha256: string };
            process.stdout.write(`reloaded: version ${r.version}, ${r.rules_count} rules, sha256 ${r.sha256.slice(0, 12)}\n`);
          },
        )
        .command(
          'stats',
          'per-rule packet and byte counters of the running nfips',
          (yy) => yy.option('control-socket', controlFlag).option('json', { type: 'boolean', default: false }),
          async (argv) => {
            const s = (await ask(argv.controlSocket, { cmd: 'rules.stats' })) as RuleStats;
            if (argv.json) process.stdout.write(`${escapeJsonLine(JSON.stringify(s, null, 2))}\n`);
            else printRuleStats(s);
          },
        )
        .demandCommand(1, 'say which rules command: check, test, reload or stats'),
    )
    .command('blocks <action>', 'list, add, remove or flush blocks (enforced in the kernel before the queue); while nfips is stopped, in its state file', (y) =>
      y
        .command(
          'list',
          'blocks in force: scope, origin, time left, packets the kernel dropped',
          (yy) => blockFlags(yy).option('json', { type: 'boolean', default: false }),
          async (argv) => {
            const list = await onBlocks(argv, { cmd: 'blocks.list' }, (o) => o.list());
            process.stdout.write(argv.json ? `${escapeJsonLine(JSON.stringify(list, null, 2))}\n` : formatBlocks(list));
          },
        )
        .command(
          'add <net>',
          'block an address or CIDR: everything from it, one protocol (--proto), or one service (--proto and --port)',
          (yy) =>
            blockFlags(yy)
              .positional('net', { type: 'string', demandOption: true, describe: 'IPv4/IPv6 address or CIDR' })
              .option('proto', { type: 'string', choices: ['tcp', 'udp', 'icmp'], describe: 'only this protocol' })
              .option('port', { type: 'number', describe: 'only this destination port (with --proto tcp or udp)' })
              .option('ttl', { type: 'number', describe: `seconds (default: --block-ttl of the running nfips; ${RUN_DEFAULTS.blockTtl} while it is stopped)` })
              .option('reason', { type: 'string', describe: 'logged with the block' }),
          async (argv) => {
            const args = { net: argv.net, proto: argv.proto, port: argv.port, ttl_seconds: argv.ttl, reason: argv.reason };
            const v = await onBlocks(argv, { cmd: 'blocks.add', ...args }, (o) => o.add(args));
            if (v.replaced) {
              const r = v.replaced;
              process.stdout.write(`replaced ${v.key} (${v.scope}): reason ${JSON.stringify(r.reason)} -> ${JSON.stringify(v.reason)}, ttl ${r.ttl_seconds} s (${r.remaining_s} s left, until ${r.expires_at}) -> ${v.ttl_seconds} s, until ${v.expires_at}\n`);
            } else {
              process.stdout.write(`blocked ${v.key} (${v.scope}) until ${v.expires_at}\n`);
            }
          },
        )
        .command(
          'del <block>',
          'lift a block, named as "blocks list" shows it (e.g. 10.0.0.6, or "10.0.0.6 tcp:22")',
          (yy) => blockFlags(yy).positional('block', { type: 'string', demandOption: true }),
          async (argv) => {
            const v: { key: string; note?: string } = await onBlocks(argv, { cmd: 'blocks.del', key: argv.block }, (o) => o.del(argv.block));
            // The note (a running nfips with a CrowdSec link) says what became of the block beyond this gateway.
            process.stdout.write(`unblocked ${v.key}${v.note ? ` (${v.note})` : ''}\n`);
          },
        )
        .command(
          'flush',
          'lift every block (running: the kernel sets are emptied too)',
          (yy) => blockFlags(yy),
          async (argv) => {
            const gone = await onBlocks(argv, { cmd: 'blocks.flush' }, (o) => o.flush());
            process.stdout.write(`unblocked ${gone.length} block${gone.length === 1 ? '' : 's'}${gone.length ? `: ${gone.map((b) => b.key).join(', ')}` : ''}\n`);
          },
        )
        .demandCommand(1, 'say which blocks command: list, add, del or flush'),
    )
    .command(
      'status',
      'uptime, per-queue counters, kernel queue state, classifier, rules version and blocks of the running nfips',
      (y) => y.option('control-socket', controlFlag).option('json', { type: 'boolean', default: false, describe: 'the full status as JSON' }),
      async (argv) => {
        const s = await ask(argv.controlSocket, { cmd: 'status' });
        process.stdout.write(argv.json ? `${escapeJsonLine(JSON.stringify(s, null, 2))}\n` : formatStatus(s as Parameters<typeof formatStatus>[0]));
      },
    )
    .command(
      'sessions',
      'live sessions of the running nfips: server, client, protocol, packets and bytes each way, first and last seen',
      (y) =>
        y
          .option('control-socket', controlFlag)
          // No defaults: yargs would take a default false for a conflict.
          .option('json', { type: 'boolean', describe: 'a JSON array of sessions' })
          .option('csv', { type: 'boolean', describe: 'CSV with a header line (RFC 4180)' })
          .option('limit', { type: 'number', default: DEFAULT_SESSIONS_LIMIT, describe: `most sessions listed (1 to ${MAX_SESSIONS_LIMIT}); the number of live sessions is always told. Each queue thread's packets wait while it copies this many` })
          .conflicts('json', 'csv'),
      async (argv) => {
        const limit = argv.limit;
        if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SESSIONS_LIMIT) throw new Error(`invalid --limit ${JSON.stringify(String(limit))}: expected an integer from 1 to ${MAX_SESSIONS_LIMIT}`);
        const a = (await ask(argv.controlSocket, { cmd: 'sessions', limit })) as SessionsAnswer;
        if (argv.json) process.stdout.write(`${escapeJsonLine(JSON.stringify(a.rows, null, 2))}\n`);
        else if (argv.csv) process.stdout.write(sessionsCsv(a.rows));
        else process.stdout.write(formatSessions(a.rows, a.total));
        // Beside the JSON or CSV, so their readers get the rows alone.
        if ((argv.json || argv.csv) && a.total > a.rows.length) process.stderr.write(`nfips sessions: ${a.rows.length} of ${a.total} live sessions listed (--limit ${a.limit})\n`);
      },
    )
    .command(
      'train',
      'train an anomaly model on normal traffic: from pcap files, a live interface, or windows recorded by "nfips run --record-features"',
      (y) =>
        y
          .option('out', { type: 'string', demandOption: true, describe: 'model file to write (e.g. models/site.json)' })
          .option('pcap', { type: 'string', array: true, default: [] as string[], describe: 'pcap/pcapng file(s) of normal traffic' })
          .option('iface', { type: 'string', describe: 'capture live on this interface (libpcap; needs root or CAP_NET_RAW)' })
          .option('seconds', { type: 'number', describe: 'how long to capture with --iface: at least 429 (the shortest capture training accepts with 60 s windows on one queue)' })
          .option('features', { type: 'string', array: true, default: [] as string[], describe: 'feature-window recording(s) from "nfips run --record-features"' })
          .option('rules', { type: 'string', default: RUN_DEFAULTS.rules, describe: 'rules applied before the features (packets an explicit rule drops are not learnt)' })
          .option('rules-format', formatFlag)
          .option('window-seconds', { type: 'number', describe: 'window length (default 60; recordings carry their own)' })
          .option('step-seconds', { type: 'number', describe: 'seconds between windows (default 1)' })
          .option('queues', { type: 'number', describe: 'queues the model will run on (default: as recorded; 1 for pcap/live)' })
          .option('false-alarm-rate', { type: 'number', describe: 'target false-alarm rate on held-out windows (default 0.001)' })
          .option('margin', { type: 'number', describe: 'threshold = margin x that quantile (default 2.5)' })
          .option('k-max', { type: 'number', describe: 'largest k tried (default 8)' })
          .option('min-packets', { type: 'number', describe: 'windows with fewer packets are neither learnt nor scored (default 100)' })
          .option('seed', { type: 'number', describe: 'k-means seed (default 1)' })
          .example('$0 train --pcap normal.pcap --out models/site.json', '')
          .example('$0 train --features /var/lib/nfips/windows.jsonl --out models/site.json', ''),
      async (argv) => {
        try {
          await runTrain({ ...argv, rulesFormat: argv.rulesFormat as FormatChoice, command: `nfips ${args.join(' ')}` }, (l) => process.stdout.write(`${escapeControl(l)}\n`));
        } catch (e) {
          die((e as Error).message, EXIT_CONFIG);
        }
      },
    )
    .command(
      'replay',
      'run a pcap through the rules, feature windows and classifier offline (no root), printing verdict counts and alerts as JSON lines',
      (y) =>
        y
          .option('pcap', { type: 'string', demandOption: true, describe: 'pcap or pcapng file' })
          .option('rules', { type: 'string', default: RUN_DEFAULTS.rules })
          .option('rules-format', formatFlag)
          .option('model', { type: 'string', default: RUN_DEFAULTS.model, describe: 'anomaly model' })
          .option('rules-only', { type: 'boolean', default: false, describe: 'skip the anomaly model' })
          .option('iface-in', { type: 'string', describe: 'take every packet to have come in on this interface, so "in" rules can match (a capture carries none)' })
          .option('iface-out', { type: 'string', describe: 'take every packet to go out on this interface, so "out" rules can match' })
          .option('suppress', { type: 'string', describe: 'anomaly suppression list (JSON), as for nfips run' })
          .option('flow-log', { type: 'string', default: 'off', choices: ['on', 'off'], describe: `on: a "flow" line for every session that ends, as nfips run logs them (at most ${RUN_DEFAULTS.flowLogRate} per second of capture time); off by default here, where the output is meant for alerts` }),
      async (argv) => {
        const captureClock = { now: new Date(0) };
        const log = createEventLog({ console: false, stdoutJson: true, level: 'info', clock: () => captureClock.now });
        try {
          const s = runReplay({ pcap: argv.pcap, rules: argv.rules, rulesFormat: argv.rulesFormat as FormatChoice, model: argv.rulesOnly ? null : argv.model, ifaceIn: argv.ifaceIn ?? null, ifaceOut: argv.ifaceOut ?? null, suppress: argv.suppress ?? null, flowsPerSecond: argv.flowLog === 'on' ? RUN_DEFAULTS.flowLogRate : null }, log, captureClock);
          for (const w of s.warnings) process.stderr.write(`nfips replay: warning: ${escapeControl(w)}\n`);
          log.event('replay_summary', { ...s });
          await log.close();
        } catch (e) {
          await log.close();
          die((e as Error).message, EXIT_CONFIG);
        }
      },
    )
    .command(
      'logs',
      'show the event log, one readable line per record (alerts, drops, stats...)',
      (y) =>
        y
          .option('file', { type: 'string', default: RUN_DEFAULTS.logFile, describe: 'the log file (nfips run --log-file)' })
          .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep printing new records, across rotation (like tail -F)' })
          .option('type', { type: 'string', array: true, default: [] as string[], describe: 'only these event types (repeatable or comma-separated), e.g. alert,drop' })
          .option('json', { type: 'boolean', default: false, describe: 'print the matching JSON lines unchanged' })
          .option('lines', { alias: 'n', type: 'number', describe: 'only the last N matching records (with -f: then every new one)' })
          .option('since', { type: 'string', describe: 'only records from this time on: a duration back from now (10m, 2h, 1d) or an ISO time' })
          .example('$0 logs -f --type alert', '')
          .example('$0 logs -n 20 --since 1h --type alert,block', ''),
      async (argv) => {
        try {
          let lines: number | null = null;
          let since: number | null = null;
          try {
            if (argv.lines !== undefined) lines = checkLines(argv.lines);
            if (argv.since !== undefined) since = parseSince(argv.since);
          } catch (e) {
            die((e as Error).message, EXIT_CONFIG);
          }
          const h = runLogs({ file: argv.file, follow: argv.follow, types: argv.type, json: argv.json, lines, since }, (s) => process.stdout.write(s));
          process.once('SIGINT', () => h.stop());
          process.once('SIGTERM', () => h.stop());
          await h.done;
        } catch (e) {
          die((e as Error).message, EXIT_CONFIG);
        }
      },
    )
    // yargs' own: `nfips completion` prints a bash/zsh script that asks `nfips --get-yargs-completions`.
    .completion('completion', 'print a bash or zsh completion script (e.g. nfips completion > /etc/bash_completion.d/nfips)')
    // Before any command's handler: a flag given twice is a mistake to name, not an array to crash on.
    .middleware((argv) => {
      const repeated = repeatedFlags(argv);
      if (repeated.length > 0) die(repeated.join('\n'), EXIT_CONFIG);
    })
    .demandCommand(1, 'say which command to run')
    .strict()
    .recommendCommands()
    .help()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err, y) => {
      if (err) die(err.message, EXIT_RUNTIME);
      y.showHelp();
      die(msg, EXIT_CONFIG);
    })
    .parseAsync();
}
