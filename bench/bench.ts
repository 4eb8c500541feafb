// Gateway throughput/latency benchmark: kernel forwarding vs a minimal C
// NFQUEUE loop vs the npm `nfqueue` binding vs nfips, on a client/gateway/
// server namespace topology. Run as root: `npm run bench -- [--quick]`.
import { writeBenchRulesFile } from './rules-file';
import { parseCounters, RuleCounter } from '../src/iptables/chain-counters';
import { KernelQueueStats, parseKernelQueueStats } from '../src/stats/kernel-queue';
import { ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ADDRESSES, Topology, createTopology, netnsUnavailableReason } from '../lab/netns/topology';
import {
  UdpResult,
  markAcceptPackets,
  median,
  parseIperfTcp,
  parseIperfUdp,
  parsePing,
} from './iperf';

const PREFIX = 'nfb';
const QUEUE = 0;
const MARK = '0x1/0x1';
const CHAIN = 'NFIPS';
const TABLES = ['mangle', 'filter'] as const;
const START_TIMEOUT_MS = 5000;
const STOP_GRACE_MS = 5000;
const IPERF_PORT = 5201;

type ModeKey = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'g' | 'h';
const RULES_E = 1000;

interface Options {
  runs: number;
  seconds: number;
  pingCount: number;
  modes: ModeKey[];
  keepLogs: boolean;
  jsonOut: string;
  /** Kernel queue length for the C loop; 0 keeps the kernel default (1024). */
  loopMaxlen: number;
}

interface RunSample {
  run: number;
  tcpGbps: number | null;
  tcpRetransmits: number | null;
  tcpVerdicted: number | null;
  tcpQueued: number | null;
  udp: UdpResult | null;
  udpVerdicted: number | null;
  udpQueued: number | null;
  udpVerdictedPps: number | null;
  pingAvgUs: number | null;
  pingMedianUs: number | null;
  pingLossPercent: number | null;
  errors: string[];
}

interface ModeSummary {
  tcpGbps: number | null;
  udpDeliveredPps: number | null;
  udpSentPps: number | null;
  udpLossPercent: number | null;
  udpVerdictedPps: number | null;
  pingAvgUs: number | null;
  pingMedianUs: number | null;
}

interface ModeResult {
  key: ModeKey;
  label: string;
  queued: boolean;
  skipped: string | null;
  warnings: string[];
  /** What the consumer itself said it verdicted over the whole mode, when it says. */
  selfReportedVerdicted: number | null;
  kernelQueue: KernelQueueStats | null;
  median: ModeSummary | null;
  samples: RunSample[];
}

interface StopInfo {
  selfReportedVerdicted: number | null;
  warnings: string[];
}

interface ModeHandle {
  stop(): Promise<StopInfo>;
}

type StartResult = { handle: ModeHandle } | { skip: string };

interface ModeSpec {
  key: ModeKey;
  label: string;
  queued: boolean;
  start(): Promise<StartResult>;
}

const USAGE = `usage: node dist/bench/bench.js [--runs N] [--seconds S] [--quick] [--modes a,b,c,d]
                                [--ping-count N] [--json FILE] [--keep-logs] [--loop-maxlen N]
  --runs N        runs per measurement, median reported (env BENCH_RUNS, default 3)
  --seconds S     iperf3 duration per run (env BENCH_SECONDS, default 5)
  --quick         1 run of 2 s
  --modes LIST    subset of a (kernel), b (C loop), c (npm nfqueue), d (nfips, detection on), e (nfips, 1000 rules, detection on), f (nfips, detection off), g (nfips, detection on, --table filter), h (nfips, detection on, --flow-log off)
  --ping-count N  echo requests per ping run (default 200, 5 ms apart)
  --json FILE     where to write results (default bench/out/last.json)
  --keep-logs     keep the nfips log directory
  --loop-maxlen N kernel queue length for the C loop (default 4096 like nfips; 0 = kernel default)
Env NFQUEUE_MODULE: path of the npm nfqueue package when not installed here.`;

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

function positiveInt(v: string | undefined, what: string): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 1) fail(`${what} needs a positive integer, got ${v ?? 'nothing'}`);
  return n;
}

function parseArgs(argv: string[], root: string): Options {
  const o: Options = {
    runs: process.env.BENCH_RUNS ? positiveInt(process.env.BENCH_RUNS, 'BENCH_RUNS') : 3,
    seconds: process.env.BENCH_SECONDS ? positiveInt(process.env.BENCH_SECONDS, 'BENCH_SECONDS') : 5,
    pingCount: 200,
    modes: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'],
    keepLogs: false,
    // nfips' default --queue-maxlen; a shorter queue would fail open sooner and flatter nfips.
    loopMaxlen: 4096,
    jsonOut: path.join(root, 'bench', 'out', 'last.json'),
  };
  const names: Record<string, ModeKey> = { a: 'a', kernel: 'a', b: 'b', c: 'c', cloop: 'b', loop: 'b', peer: 'c', nfqueue: 'c', d: 'd', nfips: 'd', e: 'e', f: 'f', g: 'g', h: 'h' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--runs': o.runs = positiveInt(argv[++i], a); break;
      case '--seconds': o.seconds = positiveInt(argv[++i], a); break;
      case '--quick': o.runs = 1; o.seconds = 2; break;
      case '--ping-count': o.pingCount = positiveInt(argv[++i], a); break;
      case '--json': o.jsonOut = path.resolve(argv[++i] ?? fail('--json needs a file')); break;
      case '--keep-logs': o.keepLogs = true; break;
      case '--loop-maxlen': {
        const v = argv[++i];
        o.loopMaxlen = v === '0' ? 0 : positiveInt(v, a);
        break;
      }
      case '--modes': {
        const list = (argv[++i] ?? fail('--modes needs a list')).split(',').map((s) => s.trim().toLowerCase());
        const keys = list.map((s) => names[s] ?? fail(`unknown mode "${s}"`));
        o.modes = (['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'] as ModeKey[]).filter((k) => keys.includes(k));
        break;
      }
      case '-h': case '--help': process.stdout.write(`${USAGE}\n`); process.exit(0);
      default: fail(`unknown argument "${a}"\n${USAGE}`);
    }
  }
  return o;
}

/** The package root, wherever this file was compiled to; else the working directory. */
function findRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
      if (typeof pkg === 'object' && pkg !== null && (pkg as { name?: unknown }).name === 'nfips') return dir;
    } catch {
      // not here; keep walking up
    }
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- child processes ------------------------------------------------------

class Proc {
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  exitSignal: string | null = null;
  running = true;
  readonly exited: Promise<void>;

  constructor(readonly name: string, readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { this.stdout = (this.stdout + d).slice(-65536); });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { this.stderr = (this.stderr + d).slice(-65536); });
    this.exited = new Promise((resolve) => {
      child.once('error', (e) => { this.stderr += `${e.message}\n`; this.running = false; resolve(); });
      child.once('close', (code, signal) => { this.exitCode = code; this.exitSignal = signal; this.running = false; resolve(); });
    });
    live.add(this);
    void this.exited.then(() => live.delete(this));
  }

  stderrTail(lines = 5): string {
    return this.stderr.trim().split('\n').slice(-lines).join(' | ') || '(no stderr)';
  }

  describeExit(): string {
    return this.exitSignal ? `signal ${this.exitSignal}` : `code ${this.exitCode}`;
  }

  /** Waits waitMs for a natural exit, then signals, then SIGKILLs after graceMs. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = STOP_GRACE_MS, waitMs = 0): Promise<boolean> {
    const within = (ms: number) => Promise.race([this.exited.then(() => true), sleep(ms).then(() => false)]);
    if (!this.running || (waitMs > 0 && (await within(waitMs)))) return true;
    this.child.kill(signal);
    if (await within(graceMs)) return true;
    this.child.kill('SIGKILL');
    await within(2000);
    return false;
  }
}

const live = new Set<Proc>();

// ---- the benchmark --------------------------------------------------------

class Bench {
  private topo!: Topology;
  private cleaned: Promise<void> | null = null;
  private nfipsLogDir: string | null = null;

  constructor(readonly opts: Options, readonly root: string) {}

  private gw(cmd: string, args: string[], allowFail = false) {
    return this.topo.exec(this.topo.gateway, cmd, args, { allowFail, timeoutMs: 20_000 });
  }

  private ipt(args: string[], allowFail = false) {
    return this.gw('iptables', ['-w', ...args], allowFail);
  }

  /** The chain layout nfips installs, for the baselines that do not install their own. */
  private async installQueueLayout(): Promise<void> {
    await this.ipt(['-N', CHAIN]);
    await this.ipt(['-A', CHAIN, '-m', 'mark', '--mark', MARK, '-j', 'RETURN']);
    await this.ipt(['-A', CHAIN, '-j', 'NFQUEUE', '--queue-num', String(QUEUE), '--queue-bypass']);
    await this.ipt(['-I', 'FORWARD', '1', '-j', CHAIN]);
  }

  /** Counts repeat-marked packets: those the consumer verdicted, not those that failed open. */
  private async installCountingRule(): Promise<void> {
    await this.ipt(['-A', 'FORWARD', '-m', 'mark', '--mark', MARK, '-j', 'ACCEPT']);
  }

  /** The gateway namespace is ours alone, so wiping its filter and mangle tables is safe. */
  private async resetFirewall(): Promise<void> {
    for (const cmd of ['iptables', 'ip6tables']) {
      for (const table of TABLES) {
        for (const op of ['-F', '-X', '-Z']) await this.gw(cmd, ['-w', '-t', table, op], true);
      }
    }
  }

  private async zeroCounters(): Promise<void> {
    for (const table of TABLES) await this.ipt(['-t', table, '-Z']);
  }

  private async listChain(chain: string, table = 'filter'): Promise<RuleCounter[] | null> {
    const r = await this.ipt(['-t', table, '-L', chain, '-v', '-n', '-x'], true);
    return r.code === 0 ? parseCounters(r.stdout) : null;
  }

  private async readCounters(): Promise<{ verdicted: number | null; queued: number | null }> {
    const fwd = await this.listChain('FORWARD');
    // nfips queues from mangle by default (filter with --table filter); the baselines from filter.
    const chains = await Promise.all(TABLES.map((t) => this.listChain(CHAIN, t)));
    const queuedRules = chains.flatMap((c) => c ?? []).filter((r) => r.target === 'NFQUEUE');
    return {
      verdicted: fwd === null ? null : markAcceptPackets(fwd, MARK),
      queued: queuedRules.length === 0 ? null : queuedRules.reduce((s, r) => s + r.packets, 0),
    };
  }

  private async queueEntry(): Promise<KernelQueueStats | null> {
    const r = await this.gw('cat', ['/proc/net/netfilter/nfnetlink_queue'], true);
    return parseKernelQueueStats(r.stdout).find((q) => q.queue === QUEUE) ?? null;
  }

  /** Leftover nfips rules after it was asked to stop, for both families and tables. */
  private async nfipsLeftovers(): Promise<string[]> {
    const out: string[] = [];
    for (const cmd of ['iptables', 'ip6tables']) {
      for (const table of TABLES) {
        const r = await this.gw(cmd, ['-w', '-t', table, '-S'], true);
        const lines = r.stdout.split('\n').filter((l) => l.includes(CHAIN) || /--comment "?nfips"?/.test(l));
        out.push(...lines.map((l) => `${cmd} ${table}: ${l}`));
      }
    }
    return out;
  }

  // ---- modes ----

  private spawnInGateway(name: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Proc {
    const child = this.topo.spawn(this.topo.gateway, cmd, args, { cwd: this.root, env: env ?? process.env });
    return new Proc(name, child);
  }

  /** Waits until `p` has bound the queue (and `extra` holds), or explains why not. */
  private async waitBound(p: Proc, extra?: () => Promise<string | null>): Promise<string | null> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let missing = `queue ${QUEUE} not bound`;
    while (Date.now() < deadline) {
      if (!p.running) return `${p.name} exited with ${p.describeExit()}: ${p.stderrTail()}`;
      const bound = (await this.queueEntry()) !== null;
      const extraMissing = bound && extra ? await extra() : null;
      if (bound && extraMissing === null) return null;
      missing = bound ? (extraMissing ?? '') : `queue ${QUEUE} not bound`;
      await sleep(100);
    }
    return `${p.name} not ready within ${START_TIMEOUT_MS / 1000} s (${missing}); stderr: ${p.stderrTail()}`;
  }

  private selfCount(p: Proc): number | null {
    const lines = p.stdout.trim().split('\n').reverse();
    for (const l of lines) {
      try {
        const v: unknown = JSON.parse(l);
        if (typeof v === 'object' && v !== null && typeof (v as { verdicted?: unknown }).verdicted === 'number') {
          return (v as { verdicted: number }).verdicted;
        }
      } catch {
        // not a JSON line
      }
    }
    return null;
  }

  /** Shared by the C loop and the npm peer: both only consume the queue. */
  private async startConsumer(p: Proc): Promise<StartResult> {
    const why = await this.waitBound(p);
    if (why !== null) {
      await p.stop('SIGKILL', 1000);
      return { skip: why };
    }
    try {
      await this.installQueueLayout();
      await this.installCountingRule();
    } catch (e) {
      await p.stop('SIGTERM');
      return { skip: `could not install the queue rules: ${(e as Error).message}` };
    }
    return {
      handle: {
        stop: async () => {
          const warnings: string[] = [];
          if (!(await p.stop('SIGTERM'))) warnings.push(`${p.name} ignored SIGTERM and was killed`);
          const n = this.selfCount(p);
          if (n === null) warnings.push(`${p.name} printed no {"verdicted":N}: ${p.stderrTail()}`);
          return { selfReportedVerdicted: n, warnings };
        },
      },
    };
  }

  private modes(): ModeSpec[] {
    return [
      {
        key: 'a', label: 'kernel forwarding', queued: false,
        start: async () => ({ handle: { stop: async () => ({ selfReportedVerdicted: null, warnings: [] }) } }),
      },
      {
        key: 'b', label: 'C nfq loop', queued: true,
        start: async () => {
          const bin = path.join(this.root, 'bench', 'out', 'nfq_loop');
          const built = compileLoop(this.root);
          if (built !== null) return { skip: built };
          return this.startConsumer(this.spawnInGateway('nfq_loop', bin, [String(QUEUE), String(this.opts.loopMaxlen)]));
        },
      },
      {
        key: 'c', label: 'npm nfqueue', queued: true,
        start: async () => {
          const mod = process.env.NFQUEUE_MODULE || 'nfqueue';
          try {
            require.resolve(mod, { paths: [path.join(this.root, 'bench')] });
          } catch {
            return { skip: `npm package "${mod}" not found; install it (devDependency) or set NFQUEUE_MODULE=/path/to/nfqueue` };
          }
          const script = path.join(this.root, 'bench', 'nfqueue-peer.js');
          return this.startConsumer(this.spawnInGateway('nfqueue-peer', process.execPath, [script, String(QUEUE)]));
        },
      },
      {
        key: 'd', label: 'nfips (features + classifier)', queued: true,
        start: () => this.startNfips('rules/default.json', ['--mode', 'detect']),
      },
      {
        key: 'e', label: `nfips, ${RULES_E} rules (features + classifier)`, queued: true,
        start: () => {
          const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'nfips-bench-rules-')), 'rules.json');
          writeBenchRulesFile(file, RULES_E);
          return this.startNfips(file, ['--mode', 'detect']);
        },
      },
      {
        key: 'f', label: 'nfips, detection off (rules only)', queued: true,
        // Rules only: flow records would keep the session table for them.
        start: () => this.startNfips('rules/default.json', ['--mode', 'off', '--flow-log', 'off']),
      },
      {
        key: 'g', label: 'nfips (features + classifier), --table filter', queued: true,
        start: () => this.startNfips('rules/default.json', ['--mode', 'detect', '--table', 'filter']),
      },
      {
        key: 'h', label: 'nfips (features + classifier), --flow-log off', queued: true,
        start: () => this.startNfips('rules/default.json', ['--mode', 'detect', '--flow-log', 'off']),
      },
    ];
  }

  private async startNfips(rulesFile: string, extra: string[] = []): Promise<StartResult> {
    const cli = path.join(this.root, 'bin', 'nfips');
    if (!existsSync(cli)) return { skip: `${path.relative(this.root, cli)} does not exist (nfips CLI not built yet)` };
    this.nfipsLogDir = mkdtempSync(path.join(os.tmpdir(), 'nfips-bench-'));
    const logFile = path.join(this.nfipsLogDir, 'nfips.json');
    const args = [cli, 'run', '--rules', rulesFile, '--control-socket', path.join(this.nfipsLogDir, 'control.sock'), '--queues', String(QUEUE), '--hook', 'forward',
      '--log-file', logFile, '--stats-interval', '1', '--state-dir', path.join(this.nfipsLogDir, 'state'), ...extra];
    const p = this.spawnInGateway('nfips', process.execPath, args);
    const why = await this.waitBound(p, async () => {
      // Ready once the chain that queues is jumped to (the filter chain of rejects comes first).
      for (const table of TABLES) {
        const fwd = await this.ipt(['-t', table, '-S', 'FORWARD'], true);
        const chain = await this.ipt(['-t', table, '-S', CHAIN], true);
        if (fwd.stdout.includes(`-j ${CHAIN}`) && chain.stdout.includes('-j NFQUEUE')) return null;
      }
      return `no FORWARD jump to a ${CHAIN} chain that queues`;
    });
    if (why !== null) {
      await p.stop('SIGTERM');
      await this.resetFirewall();
      return { skip: why };
    }
    await this.installCountingRule();
    return {
      handle: {
        stop: async () => {
          const warnings: string[] = [];
          if (!(await p.stop('SIGTERM'))) warnings.push(`nfips did not exit within ${STOP_GRACE_MS / 1000} s of SIGTERM and was killed`);
          else if (p.exitCode !== 0) warnings.push(`nfips exited with ${p.describeExit()}: ${p.stderrTail()}`);
          const left = await this.nfipsLeftovers();
          if (left.length > 0) warnings.push(`nfips left ${left.length} iptables rule(s) behind: ${left.join('; ')}`);
          return { selfReportedVerdicted: null, warnings };
        },
      },
    };
  }

  // ---- measurements ----

  private async withIperfServer<T>(fn: () => Promise<T>): Promise<T> {
    const { server } = this.topo;
    // One-off server per test: a test that failed half-way cannot leave it busy.
    const srv = new Proc('iperf3 -s', this.topo.spawn(server, 'iperf3', ['-s', '-1', '-B', ADDRESSES.server4, '-p', String(IPERF_PORT)]));
    try {
      const deadline = Date.now() + 5000;
      for (;;) {
        const r = await this.topo.exec(server, 'ss', ['-Hltn', `sport = :${IPERF_PORT}`], { allowFail: true });
        if (r.stdout.trim() !== '') break;
        if (!srv.running) throw new Error(`iperf3 server exited: ${srv.stderrTail()}`);
        if (Date.now() > deadline) throw new Error('iperf3 server not listening after 5 s');
        await sleep(50);
      }
      return await fn();
    } finally {
      await srv.stop('SIGTERM', 2000, 2000);
    }
  }

  private async iperf(extra: string[]): Promise<string> {
    const args = ['-c', ADDRESSES.server4, '-p', String(IPERF_PORT), '-t', String(this.opts.seconds), '-J', '--connect-timeout', '3000', ...extra];
    const r = await this.topo.exec(this.topo.client, 'iperf3', args, { allowFail: true, timeoutMs: (this.opts.seconds + 30) * 1000 });
    return r.stdout.trim() !== '' ? r.stdout : `iperf3 exited ${r.code}: ${r.stderr.trim()}`;
  }

  /** One retry: a single flaky start should not void a whole run. */
  private async twice<T>(what: string, fn: () => Promise<T>, errors: string[]): Promise<T | null> {
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        return await fn();
      } catch (e) {
        errors.push(`${what} (attempt ${attempt}): ${(e as Error).message}`);
        await sleep(500);
      }
    }
    return null;
  }

  private async measure(run: number, queued: boolean): Promise<RunSample> {
    const s: RunSample = {
      run, tcpGbps: null, tcpRetransmits: null, tcpVerdicted: null, tcpQueued: null, udp: null,
      udpVerdicted: null, udpQueued: null, udpVerdictedPps: null, pingAvgUs: null, pingMedianUs: null, pingLossPercent: null, errors: [],
    };
    const counters = async () => (queued ? this.readCounters() : { verdicted: null, queued: null });

    await this.zeroCounters();
    const tcp = await this.twice('tcp', () => this.withIperfServer(async () => parseIperfTcp(await this.iperf([]))), s.errors);
    if (tcp) {
      s.tcpGbps = tcp.bitsPerSecond / 1e9;
      s.tcpRetransmits = tcp.retransmits;
      ({ verdicted: s.tcpVerdicted, queued: s.tcpQueued } = await counters());
    }
    await sleep(300);

    await this.zeroCounters();
    const udp = await this.twice('udp', () => this.withIperfServer(async () => parseIperfUdp(await this.iperf(['-u', '-l', '64', '-b', '0']))), s.errors);
    if (udp) {
      s.udp = udp;
      ({ verdicted: s.udpVerdicted, queued: s.udpQueued } = await counters());
      if (s.udpVerdicted !== null && udp.seconds > 0) s.udpVerdictedPps = s.udpVerdicted / udp.seconds;
    }
    await sleep(300);

    const ping = await this.twice('ping', async () => {
      const timeoutMs = this.opts.pingCount * 5 + 30_000;
      const r = await this.topo.exec(this.topo.client, 'ping',
        ['-c', String(this.opts.pingCount), '-i', '0.005', '-W', '2', ADDRESSES.server4], { allowFail: true, timeoutMs });
      return parsePing(r.stdout + r.stderr);
    }, s.errors);
    if (ping) {
      s.pingAvgUs = ping.rttAvgUs;
      s.pingMedianUs = ping.rttMedianUs;
      s.pingLossPercent = ping.lossPercent;
    }
    return s;
  }

  private async runMode(spec: ModeSpec): Promise<ModeResult> {
    const res: ModeResult = {
      key: spec.key, label: spec.label, queued: spec.queued, skipped: null, warnings: [],
      selfReportedVerdicted: null, kernelQueue: null, median: null, samples: [],
    };
    log(`(${spec.key}) ${spec.label}: starting`);
    await this.resetFirewall();
    const started = await spec.start();
    if ('skip' in started) {
      res.skipped = started.skip;
      log(`(${spec.key}) ${spec.label}: SKIPPED: ${started.skip}`);
      await this.resetFirewall();
      return res;
    }
    try {
      for (let run = 1; run <= this.opts.runs; run++) {
        const s = await this.measure(run, spec.queued);
        res.samples.push(s);
        log(`(${spec.key}) run ${run}/${this.opts.runs}: tcp ${fmt(s.tcpGbps, 2)} Gbit/s, udp-64 delivered ${fmt(kilo(s.udp?.deliveredPps ?? null), 1)} kpps`
          + ` (verdicted ${fmt(kilo(s.udpVerdictedPps), 1)} kpps, loss ${fmt(s.udp?.lostPercent ?? null, 1)} %), ping ${fmt(s.pingAvgUs, 0)} µs`
          + (s.errors.length ? ` [${s.errors.join('; ')}]` : ''));
      }
      if (spec.queued) res.kernelQueue = await this.queueEntry();
    } finally {
      const info = await started.handle.stop();
      res.selfReportedVerdicted = info.selfReportedVerdicted;
      res.warnings.push(...info.warnings);
      await this.resetFirewall();
    }
    for (const w of res.warnings) log(`(${spec.key}) warning: ${w}`);
    res.median = {
      tcpGbps: median(res.samples.map((s) => s.tcpGbps)),
      udpDeliveredPps: median(res.samples.map((s) => s.udp?.deliveredPps ?? null)),
      udpSentPps: median(res.samples.map((s) => s.udp?.sentPps ?? null)),
      udpLossPercent: median(res.samples.map((s) => s.udp?.lostPercent ?? null)),
      udpVerdictedPps: median(res.samples.map((s) => s.udpVerdictedPps)),
      pingAvgUs: median(res.samples.map((s) => s.pingAvgUs)),
      pingMedianUs: median(res.samples.map((s) => s.pingMedianUs)),
    };
    return res;
  }

  async run(): Promise<ModeResult[]> {
    log(`building topology ${PREFIX}{c,g,s}`);
    this.topo = await createTopology(PREFIX);
    // Resolve neighbours up front so the first measured run does not pay for ARP.
    await this.topo.exec(this.topo.client, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', ADDRESSES.server4], { allowFail: true });
    const results: ModeResult[] = [];
    const specs = this.modes().filter((m) => this.opts.modes.includes(m.key));
    for (const spec of specs) results.push(await this.runMode(spec));
    return results;
  }

  /** Idempotent; also used from the signal handler. */
  cleanup(): Promise<void> {
    this.cleaned ??= (async () => {
      await Promise.all([...live].map((p) => p.stop('SIGTERM', 2000)));
      // Anything else still inside our namespaces was started by this run.
      const topo = this.topo as Topology | undefined;
      for (const role of topo ? ['c', 'g', 's'] : []) {
        for (const pid of nsPids(`${topo?.prefix ?? ''}${role}`)) {
          try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
        }
      }
      await topo?.destroy();
      if (this.nfipsLogDir !== null) {
        if (this.opts.keepLogs) log(`nfips log kept in ${this.nfipsLogDir}`);
        else rmSync(this.nfipsLogDir, { recursive: true, force: true });
      }
    })();
    return this.cleaned;
  }
}

function nsPids(ns: string): number[] {
  try {
    const out = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number).filter((pid) => pid !== process.pid);
  } catch {
    return [];
  }
}

/** Null on success, else why the loop cannot be built. */
function compileLoop(root: string): string | null {
  mkdirSync(path.join(root, 'bench', 'out'), { recursive: true });
  try {
    execFileSync('gcc', ['-O2', '-o', 'bench/out/nfq_loop', 'bench/nfq_loop.c', '-lnetfilter_queue', '-lmnl'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    return null;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return `gcc failed: ${(err.stderr ?? err.message).trim().split('\n').slice(0, 3).join(' | ')}`;
  }
}

// ---- reporting ------------------------------------------------------------

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function kilo(v: number | null): number | null {
  return v === null ? null : v / 1000;
}

function fmt(v: number | null | undefined, digits: number): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a == null || b == null || b === 0 ? null : a / b;
}

interface MetricDef {
  name: string;
  unit: string;
  digits: number;
  scale: number;
  pick: (m: ModeSummary) => number | null;
}

const METRICS: MetricDef[] = [
  { name: 'TCP', unit: 'Gbit/s', digits: 2, scale: 1, pick: (m) => m.tcpGbps },
  { name: 'UDP-64 delivered', unit: 'kpps', digits: 1, scale: 1e-3, pick: (m) => m.udpDeliveredPps },
  { name: 'UDP-64 loss', unit: '%', digits: 1, scale: 1, pick: (m) => m.udpLossPercent },
  { name: 'UDP-64 verdicted', unit: 'kpps', digits: 1, scale: 1e-3, pick: (m) => m.udpVerdictedPps },
  { name: 'ping avg RTT', unit: 'µs', digits: 0, scale: 1, pick: (m) => m.pingAvgUs },
  { name: 'ping median RTT', unit: 'µs', digits: 0, scale: 1, pick: (m) => m.pingMedianUs },
];

interface Comparison {
  metric: string;
  unit: string;
  nfips: number | null;
  cLoop: number | null;
  peer: number | null;
  nfipsVsCLoop: number | null;
  nfipsVsPeer: number | null;
}

interface Target {
  name: string;
  ratio: number | null;
  limit: string;
  result: 'PASS' | 'MISS' | 'n/a';
}

function pickMode(results: ModeResult[], key: ModeKey): ModeSummary | null {
  return results.find((r) => r.key === key)?.median ?? null;
}

function compare(results: ModeResult[]): { comparisons: Comparison[]; targets: Target[] } {
  const b = pickMode(results, 'b');
  const c = pickMode(results, 'c');
  const d = pickMode(results, 'd');
  const e = pickMode(results, 'e');
  const f = pickMode(results, 'f');
  const g = pickMode(results, 'g');
  const h = pickMode(results, 'h');
  const v = (m: ModeSummary | null, def: MetricDef) => (m === null ? null : def.pick(m));
  const comparisons = METRICS.filter((m) => m.name !== 'UDP-64 loss').map((def) => ({
    metric: def.name,
    unit: def.unit,
    nfips: v(d, def),
    cLoop: v(b, def),
    peer: v(c, def),
    nfipsVsCLoop: ratio(v(d, def), v(b, def)),
    nfipsVsPeer: ratio(v(d, def), v(c, def)),
  }));
  const target = (name: string, r: number | null, ok: (x: number) => boolean, limit: string): Target =>
    ({ name, ratio: r, limit, result: r === null ? 'n/a' : ok(r) ? 'PASS' : 'MISS' });
  const targets = [
    target('nfips TCP vs C loop', ratio(d?.tcpGbps, b?.tcpGbps), (x) => x >= 0.8, '>= 0.80'),
    target('nfips UDP-64 verdicted pkts/s vs C loop', ratio(d?.udpVerdictedPps, b?.udpVerdictedPps), (x) => x >= 0.8, '>= 0.80'),
    target('nfips ping RTT vs C loop', ratio(d?.pingAvgUs, b?.pingAvgUs), (x) => x <= 1.5, '<= 1.50'),
    target(`nfips with ${RULES_E} rules: TCP vs C loop`, ratio(e?.tcpGbps, b?.tcpGbps), (x) => x >= 0.8, '>= 0.80'),
    target(`nfips with ${RULES_E} rules: UDP-64 verdicted pkts/s vs C loop`, ratio(e?.udpVerdictedPps, b?.udpVerdictedPps), (x) => x >= 0.8, '>= 0.80'),
    target(`nfips with ${RULES_E} rules: ping RTT vs C loop`, ratio(e?.pingAvgUs, b?.pingAvgUs), (x) => x <= 1.5, '<= 1.50'),
    // What detection costs: nfips with it against nfips without it, same run.
    // Every detector on (session evidence, flag sequences, windows, classifier) costs at most 10%.
    target('detection on vs off: TCP', ratio(d?.tcpGbps, f?.tcpGbps), (x) => x >= 0.9, '>= 0.90'),
    target('detection on vs off: UDP-64 verdicted', ratio(d?.udpVerdictedPps, f?.udpVerdictedPps), (x) => x >= 0.9, '>= 0.90'),
    target('detection on vs off: ping RTT', ratio(d?.pingAvgUs, f?.pingAvgUs), (x) => x <= 1.1, '<= 1.10'),
    // What flow records cost: (d) logs them (the default), (h) does not; at most 5%.
    target('flow log on vs off: TCP', ratio(d?.tcpGbps, h?.tcpGbps), (x) => x >= 0.95, '>= 0.95'),
    target('flow log on vs off: UDP-64 verdicted', ratio(d?.udpVerdictedPps, h?.udpVerdictedPps), (x) => x >= 0.95, '>= 0.95'),
    target('flow log on vs off: ping RTT', ratio(d?.pingAvgUs, h?.pingAvgUs), (x) => x <= 1.05, '<= 1.05'),
    // What queueing from mangle (the default, so fail-open keeps the filter rules) costs against filter.
    target('(info) mangle vs --table filter: TCP', ratio(d?.tcpGbps, g?.tcpGbps), (x) => x >= 0.9, '>= 0.90'),
    target('(info) mangle vs --table filter: UDP-64 verdicted', ratio(d?.udpVerdictedPps, g?.udpVerdictedPps), (x) => x >= 0.9, '>= 0.90'),
    target('(info) mangle vs --table filter: ping RTT', ratio(d?.pingAvgUs, g?.pingAvgUs), (x) => x <= 1.1, '<= 1.10'),
    // Not the target (that is the average, as stated), shown because the average follows the tail.
    target('(info) nfips median ping RTT vs C loop', ratio(d?.pingMedianUs, b?.pingMedianUs), (x) => x <= 1.5, '<= 1.50'),
  ];
  return { comparisons, targets };
}

function textTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')).join('\n');
}

function mdTable(rows: string[][]): string {
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(rows[0]), line(rows[0].map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.slice(1).map(line)].join('\n');
}

function modeRows(results: ModeResult[]): string[][] {
  const header = ['mode', ...METRICS.map((m) => `${m.name} ${m.unit}`), 'self-reported verdicts'];
  const rows = results.map((r) => {
    const label = `(${r.key}) ${r.label}`;
    if (r.median === null) return [label, ...METRICS.map(() => 'skipped'), '–'];
    const med = r.median;
    return [
      label,
      ...METRICS.map((m) => (m.name === 'UDP-64 verdicted' && !r.queued ? 'n/a' : fmt(scaled(m.pick(med), m.scale), m.digits))),
      r.selfReportedVerdicted === null ? '–' : String(r.selfReportedVerdicted),
    ];
  });
  return [header, ...rows];
}

function scaled(v: number | null, scale: number): number | null {
  return v === null ? null : v * scale;
}

function comparisonRows(comparisons: Comparison[]): string[][] {
  const def = (name: string) => METRICS.find((m) => m.name === name) as MetricDef;
  return [
    ['metric', '(d) nfips', '(b) C loop', '(c) npm nfqueue', 'nfips / C loop', 'nfips / nfqueue'],
    ...comparisons.map((c) => {
      const m = def(c.metric);
      return [`${c.metric} ${c.unit}`, fmt(scaled(c.nfips, m.scale), m.digits), fmt(scaled(c.cLoop, m.scale), m.digits),
        fmt(scaled(c.peer, m.scale), m.digits), fmt(c.nfipsVsCLoop, 2), fmt(c.nfipsVsPeer, 2)];
    }),
  ];
}

function targetRows(targets: Target[]): string[][] {
  return [['target', 'ratio', 'limit', 'result'], ...targets.map((t) => [t.name, fmt(t.ratio, 2), t.limit, t.result])];
}

function commandLine(): string {
  const args = process.argv.slice(2).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${args ? ` -- ${args}` : ''}`;
  return `node ${path.relative(process.cwd(), process.argv[1] ?? 'dist/bench/bench.js')}${args ? ` ${args}` : ''}`;
}

function toolVersion(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n')[0];
  } catch {
    return 'unknown';
  }
}

function report(opts: Options, results: ModeResult[], startedAt: Date): void {
  const { comparisons, targets } = compare(results);
  const nproc = toolVersion('nproc', []);
  const env = {
    date: startedAt.toISOString(),
    command: commandLine(),
    kernel: os.release(),
    nproc,
    node: process.version,
    iperf3: toolVersion('iperf3', ['--version']),
    runs: opts.runs,
    seconds: opts.seconds,
    pingCount: opts.pingCount,
    loopMaxlen: opts.loopMaxlen,
    nfqueueModule: process.env.NFQUEUE_MODULE || 'nfqueue',
  };
  const skipped = results.filter((r) => r.skipped !== null);
  const dNote = results.find((r) => r.key === 'd')?.skipped;

  const out: string[] = [];
  out.push('', `Results: median of ${opts.runs} run(s), ${opts.seconds} s iperf3 each, ${opts.pingCount} pings at 5 ms`, '');
  out.push(textTable(modeRows(results)));
  for (const r of skipped) out.push(`  (${r.key}) ${r.label} skipped: ${r.skipped}`);
  out.push('', 'nfips relative to the baselines:', '');
  out.push(textTable(comparisonRows(comparisons)));
  out.push('', textTable(targetRows(targets)));
  if (dNote) out.push(`  targets are n/a because (d) nfips was skipped: ${dNote}`);

  out.push('', '--- markdown for docs/PERFORMANCE.md ---', '');
  out.push(`Measured ${env.date.slice(0, 10)} with \`${env.command}\``);
  out.push(`(kernel ${env.kernel}, nproc ${env.nproc}, ${env.iperf3}, Node ${env.node}; median of ${opts.runs} × ${opts.seconds} s;`
    + ' veth client → gateway → server in network namespaces; verdicted = packets that came back with the repeat mark;'
    + ` C loop: one verdict per packet, copy range 128, queue maxlen ${opts.loopMaxlen || 'kernel default'}).`, '');
  out.push(mdTable(modeRows(results)));
  for (const r of skipped) out.push('', `(${r.key}) ${r.label} skipped: ${r.skipped}`);
  out.push('', mdTable(comparisonRows(comparisons)), '', mdTable(targetRows(targets)), '', '--- end markdown ---', '');
  process.stdout.write(`${out.join('\n')}\n`);

  mkdirSync(path.dirname(opts.jsonOut), { recursive: true });
  writeFileSync(opts.jsonOut, `${JSON.stringify({ ...env, modes: results, comparisons, targets }, null, 2)}\n`);
  log(`results written to ${opts.jsonOut}`);
}

async function main(): Promise<number> {
  const root = findRoot();
  const opts = parseArgs(process.argv.slice(2), root);
  const why = await netnsUnavailableReason();
  if (why !== null) {
    log(`cannot run: ${why}`);
    return 1;
  }
  const bench = new Bench(opts, root);
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    void bench.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const startedAt = new Date();
  try {
    const results = await bench.run();
    report(opts, results, startedAt);
    return 0;
  } finally {
    await bench.cleanup();
  }
}

main().then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    log(`failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
