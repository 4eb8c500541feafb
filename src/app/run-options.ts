// Options of `nfips run`: the raw flags, the filled and checked form, and the
// defaults. Checks live here (not in yargs) so they are testable and give
// one clear message per mistake.
import path from 'node:path';
import { Hook, QUEUE_TABLES, QueueTable } from '../iptables/plan';
import { parsePrefix } from '../rules/address';
import { MarkSpec, parseMarkSpec } from '../verdict/mark';
import { RULES_MODES, RulesMode, VerdictMode } from '../verdict/engine';
import { MALFORMED_POLICIES, MalformedPolicy } from '../verdict/hidden-guard';
import { parseDuration } from '../config/duration';
import { ListenAddress, parseListenAddress } from '../config/listen-address';
// Hook point (issue 15): the --crowdsec-* flags are checked in their own module.
import { CrowdSecFlags, CrowdSecOptions, resolveCrowdSecOptions } from '../config/crowdsec-options';
import { SET_MAXELEM } from '../blocks/ipset';


export { PACKAGE_ROOT } from '../config/paths';
import { PACKAGE_ROOT } from '../config/paths';

export interface RunFlags extends CrowdSecFlags {
  /** The --config file the other flags were merged with (recorded in the start event). */
  config?: string;
  rules?: string;
  queues?: string;
  hook?: string;
  table?: string;
  mark?: string;
  rejectMark?: string;
  rulesFormat?: string;
  logRate?: number | string;
  controlSocket?: string;
  watchRules?: boolean;
  verdictMode?: string;
  failClosed?: boolean;
  exclude?: string[];
  logFile?: string;
  statsInterval?: number | string;
  copyRange?: number | string;
  queueMaxlen?: number | string;
  batchSize?: number | string;
  rcvbufMb?: number | string;
  ipv6?: boolean;
  logLevel?: string;
  iptables?: string;
  ip6tables?: string;
  mode?: string;
  model?: string;
  windowSeconds?: number | string;
  stepSeconds?: number | string;
  scoringThreads?: number | string;
  recordFeatures?: string;
  allow?: string[];
  blockTtl?: number | string;
  blockMaxTtl?: number | string;
  maxBlocks?: number | string;
  stateDir?: string;
  ipset?: string;
  learn?: string;
  malformed?: string;
  rulesMode?: string;
  suppress?: string;
  metricsListen?: string;
  // nfips watch (passive capture)
  iface?: string[];
  nflog?: (number | string)[];
  filter?: string;
  workers?: number | string;
  snaplen?: number | string;
  captureBufferMb?: number | string;
  promisc?: boolean;
  block?: boolean;
  direction?: string;
  flowLog?: string;
  flowLogRate?: number | string;
}

/**
 * `nfips watch`: where packets are captured instead of queued. Rules only
 * log what they would do; anomalies alert, and block only with --block.
 */
export interface CaptureSettings {
  /** Interfaces captured from (a mirror/SPAN port, a TAP's ports). */
  ifaces: string[];
  /** NFLOG groups read through libpcap's nflog device. */
  nflogGroups: number[];
  /** The operator's BPF filter ('' for all IPv4 and IPv6). */
  filter: string;
  /** Capture threads; flows are split between them by a symmetric hash. */
  workers: number;
  /** Bytes kept per frame, link header included. */
  snaplen: number;
  /** libpcap's kernel buffer per capture, MiB. */
  bufferMb: number;
  promisc: boolean;
  /** 'in': only frames arriving on each interface, so a packet forwarded between two watched interfaces is seen once. */
  direction: 'both' | 'in';
  /** Anomaly blocks go to the ipsets of a blocks-only chain (for a box that also forwards the traffic). */
  block: boolean;
}

/** Flags of `nfips watch` that `run` does not take, and `run`'s flags that make no sense without a queue. */
export const WATCH_ONLY_FLAGS = ['iface', 'nflog', 'filter', 'workers', 'snaplen', 'capture-buffer-mb', 'promisc', 'block', 'direction'] as const;
export const QUEUE_ONLY_FLAGS = ['queues', 'table', 'mark', 'reject-mark', 'fail-closed', 'verdict-mode', 'queue-maxlen', 'rcvbuf-mb', 'rules-mode', 'crowdsec-url', 'crowdsec-bouncer-key-file', 'crowdsec-interval', 'crowdsec-machine-id', 'crowdsec-password-file', 'crowdsec-max-decisions'] as const;

/**
 * prevent: anomalies raise alerts and block their sources; detect: alerts
 * only; off: rules only, no feature path (unless recording).
 */
export type DetectMode = 'prevent' | 'detect' | 'off';
export const DETECT_MODES: readonly DetectMode[] = ['prevent', 'detect', 'off'];

export interface RunOptions {
  /** The --config file read, or null. */
  configFile: string | null;
  rules: string;
  queues: { first: number; last: number };
  hook: Hook;
  /** Table the queueing chain lives in (rejects are always in filter). */
  table: QueueTable;
  mark: MarkSpec;
  rejectMark: MarkSpec;
  rulesFormat: 'auto' | 'native' | '2columns';
  /** Drop/reject/alert events per rule per second before suppression. */
  logRate: number;
  /** Unix socket for `nfips status` and `nfips rules ...`; '' turns it off. */
  controlSocket: string;
  watchRules: boolean;
  verdictMode: VerdictMode;
  failClosed: boolean;
  exclude: string[];
  logFile: string;
  statsInterval: number;
  copyRange: number;
  queueMaxlen: number;
  batchSize: number;
  rcvbufMb: number;
  ipv6: boolean;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  iptables: string;
  ip6tables: string;
  mode: DetectMode;
  model: string;
  /** Undefined: take the model's. */
  windowSeconds: number | undefined;
  stepSeconds: number | undefined;
  scoringThreads: number;
  /** Append every feature window to this file ('' for none). */
  recordFeatures: string;
  /** Networks never blocked (besides --exclude and the gateway's own addresses). */
  allow: string[];
  blockTtl: number;
  blockMaxTtl: number;
  maxBlocks: number;
  /** Where blocks are saved across restarts. */
  stateDir: string;
  ipset: string;
  /** --learn: seconds of this site's traffic to learn a model from before running in `mode`; null: no learning. */
  learnSeconds: number | null;
  /** Packets whose transport header nfips cannot see: dropped when a drop rule could have matched them, or left to the rules. */
  malformed: MalformedPolicy;
  /** log: a dry run; drops and rejects are logged as would-drop/would-reject and the packets accepted. */
  rulesMode: RulesMode;
  /** Anomaly suppression list (JSON file), '' for none. */
  suppress: string;
  /** --metrics-listen: where the Prometheus endpoint listens; null: no endpoint. */
  metricsListen: ListenAddress | null;
  /** --crowdsec-url and the rest: the CrowdSec Local API link; null: none. */
  crowdsec: CrowdSecOptions | null;
  /** `nfips watch`: the capture; null for `nfips run` (inline, NFQUEUE). */
  capture: CaptureSettings | null;
  /** --flow-log on: a `flow` event for every session that ends. */
  flowLog: boolean;
  /** Flow events per second per queue thread; the rest are counted (flows_suppressed). */
  flowLogRate: number;
}

export const RUN_DEFAULTS = {
  rules: path.join(PACKAGE_ROOT, 'rules', 'default.json'),
  queues: '0-1',
  hook: 'forward',
  table: 'mangle',
  mark: '0x1/0x1',
  rejectMark: '0x2/0x2',
  rulesFormat: 'auto',
  logRate: 10,
  controlSocket: '/run/nfips/nfips.sock',
  watchRules: true,
  verdictMode: 'repeat',
  failClosed: false,
  exclude: [] as string[],
  logFile: '/var/log/nfips/nfips.json',
  statsInterval: 10,
  copyRange: 256,
  queueMaxlen: 4096,
  batchSize: 256,
  rcvbufMb: 8,
  ipv6: true,
  logLevel: 'info',
  iptables: 'iptables',
  ip6tables: 'ip6tables',
  mode: 'prevent',
  model: path.join(PACKAGE_ROOT, 'models', 'default.json'),
  scoringThreads: 1,
  recordFeatures: '',
  allow: [] as string[],
  blockTtl: 600,
  blockMaxTtl: 86_400,
  maxBlocks: 4096,
  stateDir: '/var/lib/nfips',
  ipset: 'ipset',
  malformed: 'drop',
  rulesMode: 'enforce',
  suppress: '',
  workers: 1,
  // A full Ethernet frame with tags: rules read headers, and lengths come from the IP header.
  snaplen: 2048,
  captureBufferMb: 32,
  promisc: true,
  block: false,
  direction: 'both',
  flowLog: 'on',
  flowLogRate: 2000,
} as const;

/** Watch's defaults where they differ from run's: a mirror port only alerts unless --block. */
export const WATCH_DEFAULTS = { mode: 'detect' } as const;

/** Window length and step when neither a model nor a flag sets them. */
export const WINDOW_DEFAULTS = { windowSeconds: 60, stepSeconds: 1 } as const;

export const MAX_QUEUES = 32;
export const MAX_LEARN_SECONDS = 30 * 86400;

export function parseQueueRange(text: string): { first: number; last: number } {
  const m = /^(\d{1,5})(?:[-:](\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new Error(`invalid --queues "${text}": expected N or A-B, e.g. 0-1`);
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  if (first > 65535 || last > 65535) throw new Error(`invalid --queues "${text}": queue numbers go from 0 to 65535`);
  if (first > last) throw new Error(`invalid --queues "${text}": ${first} is greater than ${last}`);
  if (last - first + 1 > MAX_QUEUES) throw new Error(`invalid --queues "${text}": at most ${MAX_QUEUES} queues (one thread each)`);
  return { first, last };
}

/**
 * An integer flag: a number from a config file, or the text given on the
 * command line (read here, not by yargs, which turned "abc" into NaN and
 * left the message saying only "NaN").
 */
function intIn(name: string, given: number | string, lo: number, hi: number): number {
  const text = String(given).trim();
  const v = typeof given === 'number' ? given : /^[+-]?\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(v) || v < lo || v > hi) {
    const shown = typeof given === 'number' ? String(given) : JSON.stringify(given);
    throw new Error(`invalid --${name} ${shown}: expected an integer from ${lo} to ${hi}${Number.isNaN(v) ? ' (a whole number in decimal)' : ''}`);
  }
  return v;
}

function oneOf<T extends string>(name: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) throw new Error(`invalid --${name} "${v}": expected one of ${allowed.join(', ')}`);
  return v as T;
}

/**
 * The repeat and reject marks must not share a bit. Blame the flag the user
 * gave, and say when the other side is a default they never wrote (`--mark
 * 0x1` means mask 0xffffffff, which covers the default reject mark 0x2/0x2).
 */
function markClash(mark: string, markGiven: boolean, reject: string, rejectGiven: boolean): string {
  const bare = (t: string) => (t.includes('/') ? '' : ` (no mask: it means ${t.trim()}/0xffffffff, every bit)`);
  if (markGiven && !rejectGiven) {
    return `invalid --mark "${mark}"${bare(mark)}: its mask shares bits with the default --reject-mark ${reject}; give --mark a mask that leaves those bits free, e.g. --mark 0x1/0x1, or set --reject-mark to bits your --mark does not use`;
  }
  if (!markGiven && rejectGiven) {
    return `invalid --reject-mark "${reject}"${bare(reject)}: its mask shares bits with the default --mark ${mark}; use other bits, e.g. --reject-mark 0x2/0x2, or move --mark too`;
  }
  return `invalid --reject-mark "${reject}"${bare(reject)}: its mask shares bits with --mark ${mark}${bare(mark)}; the two marks need separate bits, e.g. --mark 0x1/0x1 --reject-mark 0x2/0x2`;
}

/** Fills defaults and checks every flag; throws Error with one line per mistake. */
export function resolveRunOptions(flags: RunFlags, command: 'run' | 'watch' = 'run'): RunOptions {
  const watching = command === 'watch';
  const f = { ...RUN_DEFAULTS, ...(watching ? WATCH_DEFAULTS : {}), ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) } as Required<RunFlags>;
  const problems: string[] = [];
  const given = (flag: string) => (flags as Record<string, unknown>)[flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())] !== undefined;
  for (const flag of watching ? QUEUE_ONLY_FLAGS : WATCH_ONLY_FLAGS) {
    if (given(flag)) problems.push(watching ? `invalid --${flag} for nfips watch: it applies to the NFQUEUE path of nfips run only` : `invalid --${flag} for nfips run: it applies to nfips watch (passive capture) only`);
  }
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (e) {
      problems.push((e as Error).message);
      return undefined;
    }
  };
  const queues = attempt(() => parseQueueRange(f.queues));
  const hook = attempt(() => oneOf('hook', f.hook, ['forward', 'input', 'both'] as const));
  const table = attempt(() => oneOf('table', f.table, QUEUE_TABLES));
  const markFlag = (name: string, text: string) => attempt(() => {
    try {
      return parseMarkSpec(text);
    } catch (e) {
      throw new Error((e as Error).message.replace(/^invalid mark/, `invalid --${name}`));
    }
  });
  const mark = markFlag('mark', f.mark);
  const rejectMark = markFlag('reject-mark', f.rejectMark);
  if (mark && rejectMark && (mark.mask & rejectMark.mask) !== 0) problems.push(markClash(f.mark, flags.mark !== undefined, f.rejectMark, flags.rejectMark !== undefined));
  const rulesFormat = attempt(() => oneOf('rules-format', f.rulesFormat, ['auto', 'native', '2columns'] as const));
  const logRate = attempt(() => intIn('log-rate', f.logRate, 1, 100000));
  const verdictMode = attempt(() => oneOf('verdict-mode', f.verdictMode, ['repeat', 'accept'] as const));
  const logLevel = attempt(() => oneOf('log-level', f.logLevel, ['error', 'warn', 'info', 'debug'] as const));
  const statsInterval = attempt(() => intIn('stats-interval', f.statsInterval, 0, 86400));
  const copyRange = attempt(() => intIn('copy-range', f.copyRange, 64, 65535));
  const queueMaxlen = attempt(() => intIn('queue-maxlen', f.queueMaxlen, 16, 1 << 20));
  const batchSize = attempt(() => intIn('batch-size', f.batchSize, 1, 4096));
  const rcvbufMb = attempt(() => intIn('rcvbuf-mb', f.rcvbufMb, 1, 1024));
  const mode = attempt(() => oneOf('mode', f.mode, DETECT_MODES));
  const malformed = attempt(() => oneOf('malformed', f.malformed, MALFORMED_POLICIES));
  const rulesMode = attempt(() => oneOf('rules-mode', f.rulesMode, RULES_MODES));
  const flowLog = attempt(() => oneOf('flow-log', String(f.flowLog), ['on', 'off'] as const));
  const flowLogRate = attempt(() => intIn('flow-log-rate', f.flowLogRate, 1, 1_000_000));
  const scoringThreads = attempt(() => intIn('scoring-threads', f.scoringThreads, 1, 64));
  const windowSeconds = flags.windowSeconds === undefined ? undefined : attempt(() => intIn('window-seconds', f.windowSeconds, 1, 3600));
  const stepSeconds = flags.stepSeconds === undefined ? undefined : attempt(() => intIn('step-seconds', f.stepSeconds, 1, 3600));
  if (windowSeconds !== undefined && stepSeconds !== undefined && stepSeconds > windowSeconds) problems.push(`invalid --step-seconds ${stepSeconds}: longer than --window-seconds ${windowSeconds}`);
  const exclude = f.exclude.map(String);
  for (const cidr of exclude) {
    if (!parsePrefix(cidr)) problems.push(`invalid --exclude "${cidr}": expected an IPv4 or IPv6 address or CIDR`);
    else if (!f.ipv6 && cidr.includes(':')) problems.push(`invalid --exclude "${cidr}": IPv6 network given with --no-ipv6`);
  }
  const allow = f.allow.map(String);
  for (const cidr of allow) {
    if (!parsePrefix(cidr)) problems.push(`invalid --allow "${cidr}": expected an IPv4 or IPv6 address or CIDR`);
  }
  // The kernel's ipset timeout tops out at 2^31/1000 s (24.8 days).
  const blockMaxTtl = attempt(() => intIn('block-max-ttl', f.blockMaxTtl, 1, 2_147_483));
  const blockTtl = attempt(() => intIn('block-ttl', f.blockTtl, 1, 2_147_483));
  if (blockTtl !== undefined && blockMaxTtl !== undefined && blockTtl > blockMaxTtl) problems.push(`invalid --block-ttl ${blockTtl}: longer than --block-max-ttl ${blockMaxTtl}`);
  const maxBlocks = attempt(() => intIn('max-blocks', f.maxBlocks, 1, 65536));
  // An empty path would mean the working directory, and a puzzling error about it later.
  for (const [flag, value] of [['rules', f.rules], ['log-file', f.logFile], ['model', f.model]] as const) {
    if (value === '') problems.push(`invalid --${flag} "": give a file name`);
  }
  if (f.stateDir === '') problems.push('invalid --state-dir "": blocks need a directory to survive restarts');
  let learnSeconds: number | null = null;
  if (flags.learn !== undefined) {
    learnSeconds = attempt(() => parseDuration('learn', flags.learn!)) ?? null;
    if (learnSeconds !== null && learnSeconds > MAX_LEARN_SECONDS) problems.push(`invalid --learn "${flags.learn}": at most 30 days`);
    if (f.mode === 'off') problems.push('invalid --learn with --mode off: learning needs the feature path; drop --mode off (the mode applies once the model is learnt)');
    if (flags.recordFeatures) problems.push('invalid --learn with --record-features: learning keeps its own recording under --state-dir/learning');
  }
  const metricsListen = flags.metricsListen === undefined ? null : attempt(() => parseListenAddress(String(flags.metricsListen))) ?? null;
  const crowdsec = attempt(() => resolveCrowdSecOptions(flags)) ?? null;
  // Local and CrowdSec blocks share the kernel sets (SET_MAXELEM entries each).
  if (crowdsec && maxBlocks !== undefined) {
    if (crowdsec.maxDecisions !== null && crowdsec.maxDecisions + maxBlocks > SET_MAXELEM) problems.push(`invalid --crowdsec-max-decisions ${crowdsec.maxDecisions}: with --max-blocks ${maxBlocks} more than the ${SET_MAXELEM} entries an ipset set holds`);
    if (crowdsec.maxDecisions === null && maxBlocks >= SET_MAXELEM) problems.push(`invalid --max-blocks ${maxBlocks} with --crowdsec-url: no room left for CrowdSec decisions in the ${SET_MAXELEM} entries an ipset set holds; lower it`);
  }
  const capture = watching ? resolveCapture(flags, f, problems) : null;
  if (watching && f.mode === 'off' && flags.block) problems.push('invalid --block with --mode off: blocks come from anomaly detection, which --mode off turns off; drop one of them');
  if (watching && f.mode === 'prevent') problems.push('invalid --mode prevent for nfips watch: a capture cannot drop; give --block to block anomalous sources in the ipsets (on a box that also forwards the traffic)');
  if (problems.length) throw new Error(problems.join('\n'));
  return {
    configFile: flags.config === undefined ? null : path.resolve(flags.config),
    rules: path.resolve(f.rules),
    queues: queues!,
    hook: hook!,
    table: table!,
    mark: mark!,
    rejectMark: rejectMark!,
    rulesFormat: rulesFormat!,
    logRate: logRate!,
    controlSocket: f.controlSocket === '' ? '' : path.resolve(f.controlSocket),
    watchRules: Boolean(f.watchRules),
    verdictMode: verdictMode!,
    failClosed: Boolean(f.failClosed),
    exclude,
    logFile: path.resolve(f.logFile),
    statsInterval: statsInterval!,
    copyRange: copyRange!,
    queueMaxlen: queueMaxlen!,
    batchSize: batchSize!,
    rcvbufMb: rcvbufMb!,
    ipv6: Boolean(f.ipv6),
    logLevel: logLevel!,
    iptables: f.iptables,
    ip6tables: f.ip6tables,
    mode: mode!,
    model: path.resolve(f.model),
    windowSeconds,
    stepSeconds,
    scoringThreads: scoringThreads!,
    recordFeatures: f.recordFeatures === '' ? '' : path.resolve(f.recordFeatures),
    allow,
    blockTtl: blockTtl!,
    blockMaxTtl: blockMaxTtl!,
    maxBlocks: maxBlocks!,
    stateDir: path.resolve(f.stateDir),
    ipset: f.ipset,
    learnSeconds,
    malformed: malformed!,
    rulesMode: rulesMode!,
    suppress: f.suppress === '' ? '' : path.resolve(f.suppress),
    metricsListen,
    crowdsec,
    capture,
    // In watch, --block is what prevent means inline: alerts, and blocks of the sources.
    ...(capture ? { mode: capture.block && mode === 'detect' ? 'prevent' : mode!, rulesMode: 'log' as const } : {}),
    flowLog: flowLog === 'on',
    flowLogRate: flowLogRate!,
  };
}

const IFACE_NAME = /^[A-Za-z0-9_.:@-]{1,15}$/;

/** The capture flags of `nfips watch`, checked; problems are added to the list. */
function resolveCapture(flags: RunFlags, f: Required<RunFlags>, problems: string[]): CaptureSettings {
  const ifaces = (flags.iface ?? []).map(String);
  for (const name of ifaces) if (!IFACE_NAME.test(name)) problems.push(`invalid --iface "${name}": expected an interface name (1 to 15 letters, digits or _.:@-)`);
  if (new Set(ifaces).size !== ifaces.length) problems.push(`invalid --iface: ${ifaces.join(', ')} names an interface twice`);
  const nflogGroups: number[] = [];
  for (const g of flags.nflog ?? []) {
    const text = String(g).trim();
    const v = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
    if (!(v >= 0 && v <= 65535)) problems.push(`invalid --nflog ${JSON.stringify(g)}: expected an NFLOG group number from 0 to 65535 (iptables -j NFLOG --nflog-group N)`);
    else nflogGroups.push(v);
  }
  if (ifaces.length === 0 && nflogGroups.length === 0) problems.push('nfips watch needs what to capture: --iface IF (repeatable) and/or --nflog GROUP (repeatable)');
  const workers = intOrProblem(problems, 'workers', f.workers, 1, 32);
  // The split is a BPF filter on IP headers, and NFLOG records carry their own header first.
  if (workers > 1 && nflogGroups.length > 0) problems.push(`invalid --workers ${workers} with --nflog: NFLOG packets cannot be split between capture threads; use --workers 1 with --nflog (or run one watch for the interfaces and one for the NFLOG groups)`);
  const filter = String(f.filter ?? '');
  if (/[\0\n]/.test(filter)) problems.push('invalid --filter: a BPF expression on one line');
  return {
    ifaces,
    nflogGroups,
    filter,
    workers,
    snaplen: intOrProblem(problems, 'snaplen', f.snaplen, 96, 262144),
    // libpcap takes the size as an int.
    bufferMb: intOrProblem(problems, 'capture-buffer-mb', f.captureBufferMb, 1, 2047),
    promisc: Boolean(f.promisc),
    direction: oneOrProblem(problems, 'direction', String(f.direction), ['both', 'in'] as const),
    block: Boolean(f.block),
  };
}

function oneOrProblem<T extends string>(problems: string[], name: string, v: string, allowed: readonly T[]): T {
  try {
    return oneOf(name, v, allowed);
  } catch (e) {
    problems.push((e as Error).message);
    return allowed[0];
  }
}

function intOrProblem(problems: string[], name: string, given: number | string, lo: number, hi: number): number {
  try {
    return intIn(name, given, lo, hi);
  } catch (e) {
    problems.push((e as Error).message);
    return lo;
  }
}
