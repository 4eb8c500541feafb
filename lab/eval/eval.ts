// The detection benchmark (`make eval`, `make eval-quick`):
//   node dist/lab/eval/eval.js [--normal-minutes N] [--attack-seconds S] [--mode prevent|detect]
//                              [--only NAME...] [--out FILE]
// Builds its own namespace topology, runs `nfips run` inline on the gateway
// with the shipped rules and model, plays normal traffic made by real
// programs (lab/real-traffic.ts), then keeps it playing while each attack
// runs in turn, from its own address, with a pause between attacks. Measures
// from nfips' event log how soon each attacker was alerted on and blocked,
// who else was named, and the alerts and blocks of the normal phase, and
// compares them with the targets (PASS/MISS). A benchmark, not a test: it
// exits 0 whatever the figures are, and non-zero only when the harness
// itself fails (1: nfips or the traffic failed; 2: bad flags; 3: a tool is
// missing).
import { ChildProcess, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { InlineNfips, startInlineNfips } from '../netns/inline-nfips';
import { createTopology, netnsUnavailableReason, Topology } from '../netns/topology';
import { mulberry32 } from '../support/mulberry32';
import { ipsetsHolding, parseIpsetSave, parseIptablesCounters } from '../parse';
import { guardChildren, killTree, run, sleep, stopAll } from '../procs';
import { RealTraffic, RealTrafficSummary, REAL_TRAFFIC_PORTS, startRealTraffic } from '../real-traffic';
import { AttackContext, AttackSpec, ATTACKS, SUPPORT_TOOLS } from './attacks';
import { LogTail } from './log-tail';
import {
  analyseAttack,
  analyseNormal,
  AttackResult,
  AttackWindow,
  attackRow,
  markdownTable,
  normalBlocksIn,
  normalLine,
  NormalResult,
  TABLE_HEADER,
  TARGETS,
  textTable,
} from './report';

export interface EvalOptions {
  normalMinutes: number;
  attackSeconds: number;
  slowSeconds: number;
  pauseSeconds: number;
  maxPauseSeconds: number;
  mode: 'prevent' | 'detect';
  only: string[];
  out: string | null;
  seed: number;
  blockTtl: number | null;
  prefix: string;
}

class UsageError extends Error {}

export function parseArgs(argv: string[]): EvalOptions {
  const o: EvalOptions = {
    normalMinutes: 30,
    attackSeconds: 30,
    slowSeconds: NaN,
    pauseSeconds: 10,
    maxPauseSeconds: 90,
    mode: 'prevent',
    only: [],
    out: null,
    seed: 7,
    blockTtl: null,
    prefix: 'nfeval',
  };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) throw new UsageError(`${flag} needs a number >= ${min} (got ${v ?? 'nothing'})`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--normal-minutes':
        o.normalMinutes = num(flag, value(), 0);
        break;
      case '--attack-seconds':
        o.attackSeconds = num(flag, value(), 1);
        break;
      case '--slow-seconds':
        o.slowSeconds = num(flag, value(), 1);
        break;
      case '--pause-seconds':
        o.pauseSeconds = num(flag, value(), 0);
        break;
      case '--max-pause-seconds':
        o.maxPauseSeconds = num(flag, value(), 0);
        break;
      case '--block-ttl':
        o.blockTtl = num(flag, value(), 1);
        break;
      case '--seed':
        o.seed = num(flag, value(), 0);
        break;
      case '--mode': {
        const m = value();
        if (m !== 'prevent' && m !== 'detect') throw new UsageError(`--mode is prevent or detect (got ${m ?? 'nothing'})`);
        o.mode = m;
        break;
      }
      case '--out': {
        const f = value();
        if (!f) throw new UsageError('--out needs a file name');
        o.out = f;
        break;
      }
      case '--only': {
        if (inline !== undefined) o.only.push(...inline.split(','));
        while (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) o.only.push(...argv[++i]!.split(','));
        if (o.only.length === 0) throw new UsageError(`--only needs attack names: ${ATTACKS.map((x) => x.name).join(' ')}`);
        break;
      }
      case '--help':
      case '-h':
        throw new UsageError('');
      default:
        throw new UsageError(`unknown flag ${a}`);
    }
  }
  // The slow attacks have 60 s targets: they run at least that long.
  if (Number.isNaN(o.slowSeconds)) o.slowSeconds = Math.max(60, Math.round(o.attackSeconds * 2.5));
  if (o.maxPauseSeconds < o.pauseSeconds) o.maxPauseSeconds = o.pauseSeconds;
  for (const n of o.only) if (!ATTACKS.some((x) => x.name === n)) throw new UsageError(`unknown attack ${n}; known: ${ATTACKS.map((x) => x.name).join(' ')}`);
  return o;
}

const USAGE = `usage: node dist/lab/eval/eval.js [--normal-minutes N (30)] [--attack-seconds S (30)] [--slow-seconds S (max(60, 2.5 x S))]
       [--pause-seconds S (10, least pause between attacks)] [--max-pause-seconds S (90, longest wait for nfips' episode to close)]
       [--mode prevent|detect] [--only NAME...] [--out FILE (bench/out/eval-<time>.md and .json)] [--seed N] [--block-ttl S]
attacks: ${ATTACKS.map((x) => x.name).join(' ')}`;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function has(tool: string): boolean {
  if (tool.startsWith('/')) return existsSync(tool);
  try {
    execFileSync('sh', ['-c', `command -v "$1"`, 'sh', tool], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The first missing tool as "TOOL (apt-get install PKG)", or null. */
export function missingTool(attacks: AttackSpec[]): string | null {
  for (const t of [...SUPPORT_TOOLS, ...attacks.map((a) => ({ tool: a.tool, pkg: a.pkg }))]) {
    if (!has(t.tool)) return `${t.tool} is not installed: apt-get install ${t.pkg} (or: make deps)`;
  }
  return null;
}

interface ToolRun {
  runs: number;
  exits: (number | string)[];
  /** Packets (or SYNs) from the attacker seen arriving at the gateway, and reaching the server. */
  sentPackets: number;
  sentSyn: number;
  reachedServer: number;
  sentPps: number;
  synPerS: number;
  note: Record<string, unknown>;
  outputTail: string;
}

export interface AttackRecord extends AttackResult {
  startedAt: string;
  ipsets: string[] | null;
  tool: ToolRun;
  queueMaxPps: number;
  kernelQueueDropped: number;
}

export interface EvalReport {
  format: 'nfips-eval';
  version: 1;
  started: string;
  finished: string;
  commit: string;
  options: EvalOptions;
  nfipsArgs: string[];
  clients: string[];
  targets: typeof TARGETS;
  normal: NormalResult | null;
  attacks: AttackRecord[];
  attackPhase: { normalClientBlocks: { ip: string; at: string; reason: string }[] };
  traffic: RealTrafficSummary | null;
  nfips: { exit: number | string | null; crashed: boolean };
  notes: string[];
}

function gitCommit(): string {
  try {
    const git = (args: string[]) => execFileSync('git', ['-C', PACKAGE_ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const head = git(['rev-parse', '--short', 'HEAD']);
    const dirty = git(['status', '--porcelain', '--', 'src', 'models', 'rules']) !== '';
    return dirty ? `${head} + uncommitted changes under src/models/rules` : head;
  } catch {
    return 'unknown';
  }
}

function stamp(d = new Date()): string {
  return d.toISOString().replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** The client /24's hosts .2-.254 as an nft map body for numgen. */
export function spoofMap(clientAddr: string): string {
  const base = clientAddr.split('.').slice(0, 3).join('.');
  return Array.from({ length: 253 }, (_, i) => `${i} : ${base}.${i + 2}`).join(', ');
}

class Harness {
  readonly tail: LogTail;
  readonly notes: string[] = [];
  private readonly attackProcs: ChildProcess[] = [];
  private readonly unguard: () => void;
  private readonly work: string;

  constructor(
    readonly t: Topology,
    readonly nf: InlineNfips,
    readonly o: EvalOptions,
  ) {
    this.tail = new LogTail(nf.logFile);
    this.work = mkdtempSync(path.join(tmpdir(), 'nfips-eval-'));
    this.unguard = guardChildren(this.attackProcs, () => rmSync(this.work, { recursive: true, force: true }));
  }

  get subnet(): string {
    return `${this.t.addr.client4.split('.').slice(0, 3).join('.')}.0/24`;
  }

  nfipsAlive(): boolean {
    return this.nf.proc.exitCode === null && this.nf.proc.signalCode === null;
  }

  async ipt(ns: string, args: string[]): Promise<void> {
    const r = await this.t.exec(ns, 'iptables', ['-w', ...args], { allowFail: true });
    if (r.code !== 0) throw new Error(`iptables ${args.join(' ')} in ${ns}: ${r.stderr.trim()}`);
  }

  /** Counting rules (no target) in the raw table of the gateway (what arrives from the attacker) and of the server (what reaches it). */
  async installCounters(attacks: { spec: AttackSpec; attacker: string | null }[]): Promise<void> {
    for (const { spec, attacker } of attacks) {
      const match = attacker ? ['-s', attacker] : ['-p', 'tcp', '--dport', String(REAL_TRAFFIC_PORTS.http)];
      const syn = attacker ? ['-s', attacker, '-p', 'tcp', '--syn'] : ['-p', 'tcp', '--syn', '--dport', String(REAL_TRAFFIC_PORTS.http)];
      await this.ipt(this.t.gateway, ['-t', 'raw', '-A', 'PREROUTING', '-i', this.t.gwClientIf, ...match, '-m', 'comment', '--comment', `lab-${spec.name}-all`]);
      await this.ipt(this.t.gateway, ['-t', 'raw', '-A', 'PREROUTING', '-i', this.t.gwClientIf, ...syn, '-m', 'comment', '--comment', `lab-${spec.name}-syn`]);
      await this.ipt(this.t.server, ['-t', 'raw', '-A', 'PREROUTING', ...match, '-m', 'comment', '--comment', `lab-${spec.name}-all`]);
    }
  }

  async counters(ns: string): Promise<Map<string, number>> {
    const r = await this.t.exec(ns, 'iptables', ['-w', '-t', 'raw', '-L', 'PREROUTING', '-v', '-n', '-x'], { allowFail: true });
    const m = new Map<string, number>();
    for (const row of parseIptablesCounters(r.stdout)) if (row.comment) m.set(row.comment, row.packets);
    return m;
  }

  async ipsetsFor(ip: string): Promise<string[]> {
    const r = await this.t.exec(this.t.gateway, 'ipset', ['save'], { allowFail: true });
    return ipsetsHolding(parseIpsetSave(r.stdout), ip);
  }

  /** Sleeps ms while following the log; throws when nfips has exited. */
  async follow(ms: number, each?: () => void): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      this.tail.poll();
      each?.();
      if (!this.nfipsAlive()) throw new Error(`nfips exited (${this.nf.proc.exitCode ?? this.nf.proc.signalCode}) during the run; its output:\n${this.nf.output().slice(-3000)}`);
      await sleep(Math.min(250, Math.max(0, end - Date.now())));
    }
    this.tail.poll();
  }

  private spawnTool(spec: AttackSpec, ctx: AttackContext, output: { text: string }): ChildProcess {
    const p = this.t.spawn(this.t.client, spec.tool, spec.args(ctx), { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.work });
    this.attackProcs.push(p);
    const add = (d: Buffer) => {
      output.text += d.toString();
      if (output.text.length > 4_000_000) output.text = output.text.slice(-2_000_000);
    };
    p.stdout!.on('data', add);
    p.stderr!.on('data', add);
    p.once('error', (e) => (output.text += `\n[spawn error] ${e.message}\n`));
    return p;
  }

  async runAttack(spec: AttackSpec, attacker: string | null, seconds: number): Promise<{ window: Omit<AttackWindow, 'windowEnd'>; ipsets: string[] | null; tool: ToolRun }> {
    const t = this.t;
    const wordlist = path.join(this.work, 'passwords.txt');
    if (spec.name === 'hydra-ssh' && !existsSync(wordlist)) {
      const r = mulberry32(this.o.seed + 99);
      const chars = 'abcdefghijklmnopqrstuvwxyz0123456789!';
      const words = Array.from({ length: 20000 }, () => Array.from({ length: 6 + Math.floor(r() * 8) }, () => chars[Math.floor(r() * chars.length)]).join(''));
      writeFileSync(wordlist, `${words.join('\n')}\n`);
    }
    const ctx: AttackContext = {
      server: t.addr.server4,
      attacker: attacker ?? '',
      clientIf: `${t.prefix}c0`,
      httpPort: REAL_TRAFFIC_PORTS.http,
      sshPort: REAL_TRAFFIC_PORTS.ssh,
      wordlist,
      seconds,
    };
    // Tools that cannot bind an address leave from the route's source address.
    const hostRoute = `${t.addr.server4}/32`;
    if (spec.routeSrc && attacker) {
      const r = await t.exec(t.client, 'ip', ['route', 'replace', hostRoute, 'via', t.addr.gwClient4, 'src', attacker], { allowFail: true });
      if (r.code !== 0) throw new Error(`cannot route ${spec.name} from ${attacker}: ${r.stderr}`);
    }
    if (spec.spoofed) {
      const file = path.join(this.work, 'spoof.nft');
      // Random sources stay inside the client /24: rewritten statelessly before they leave the client namespace.
      writeFileSync(
        file,
        `table ip nfipslab {\n  chain spoof {\n    type filter hook output priority raw; policy accept;\n` +
          `    ip daddr ${t.addr.server4} ip saddr != ${this.subnet} ip saddr set numgen random mod 253 map { ${spoofMap(t.addr.client4)} }\n  }\n}\n`,
      );
      const r = await t.exec(t.client, 'nft', ['-f', file], { allowFail: true });
      if (r.code !== 0) throw new Error(`nft in the client namespace failed: ${r.stderr}`);
    }
    const gwBefore = await this.counters(t.gateway);
    const srvBefore = await this.counters(t.server);
    const output = { text: '' };
    const exits: (number | string)[] = [];
    let runs = 0;
    let ipsets: string[] | null = null;
    let checking = false;
    const start = Date.now();
    const end = start + seconds * 1000;
    let proc: ChildProcess | null = null;
    let procExited: Promise<void> = Promise.resolve();
    const launch = () => {
      runs++;
      const p = this.spawnTool(spec, ctx, output);
      proc = p;
      procExited = new Promise<void>((resolve) => {
        p.once('close', (code, sig) => {
          exits.push(code ?? sig ?? 'error');
          resolve();
        });
        p.once('error', () => resolve());
      });
    };
    launch();
    try {
      while (Date.now() < end) {
        const running = proc !== null && (proc as ChildProcess).exitCode === null && (proc as ChildProcess).signalCode === null;
        if (!running && spec.repeat && end - Date.now() > 1000) {
          await procExited;
          await sleep(200);
          launch();
        }
        await this.follow(Math.min(250, end - Date.now()), () => {
          if (ipsets !== null || checking || !attacker) return;
          if (this.tail.events.some((r) => r.event_type === 'block' && r.src_ip === attacker && Date.parse(r.timestamp) >= start)) {
            checking = true;
            void this.ipsetsFor(attacker).then((s) => {
              ipsets = s;
              checking = false;
            });
          }
        });
      }
    } finally {
      const p = proc as ChildProcess | null;
      if (p && p.exitCode === null && p.signalCode === null) {
        // SIGINT lets the tools print their summaries; hydra's task processes are
        // followed by pid and killed if they outlive it.
        await stopAll([p], 'SIGINT', 3000);
        await procExited;
      }
      if (spec.routeSrc && attacker) await t.exec(t.client, 'ip', ['route', 'del', hostRoute], { allowFail: true });
      if (spec.spoofed) await t.exec(t.client, 'nft', ['delete', 'table', 'ip', 'nfipslab'], { allowFail: true });
    }
    const stopped = Date.now();
    if (attacker && ipsets === null && this.tail.events.some((r) => r.event_type === 'block' && r.src_ip === attacker && Date.parse(r.timestamp) >= start)) ipsets = await this.ipsetsFor(attacker);
    const gwAfter = await this.counters(t.gateway);
    const srvAfter = await this.counters(t.server);
    const delta = (a: Map<string, number>, b: Map<string, number>, k: string) => (a.get(k) ?? 0) - (b.get(k) ?? 0);
    const secs = (stopped - start) / 1000;
    const sentPackets = delta(gwAfter, gwBefore, `lab-${spec.name}-all`);
    const sentSyn = delta(gwAfter, gwBefore, `lab-${spec.name}-syn`);
    const tool: ToolRun = {
      runs,
      exits,
      sentPackets,
      sentSyn,
      reachedServer: delta(srvAfter, srvBefore, `lab-${spec.name}-all`),
      sentPps: Math.round(sentPackets / secs),
      synPerS: Math.round((sentSyn / secs) * 10) / 10,
      note: spec.note ? spec.note(output.text) : {},
      outputTail: output.text.slice(-1500),
    };
    return {
      window: { name: spec.name, label: spec.label, attacker, slow: spec.slow === true, spoofed: spec.spoofed === true, start, end: stopped },
      ipsets,
      tool,
    };
  }

  /** At least pauseSeconds, then until nfips' episodes have closed (when its stats say), at most maxPauseSeconds. */
  async pause(): Promise<number> {
    const start = Date.now();
    await this.follow(this.o.pauseSeconds * 1000);
    while (Date.now() - start < this.o.maxPauseSeconds * 1000) {
      const closed = this.tail.episodesClosed();
      const lastAlert = [...this.tail.events].reverse().find((r) => r.event_type === 'alert');
      const quietAlerts = !lastAlert || Date.now() - Date.parse(lastAlert.timestamp) > 5000;
      if (closed !== false && quietAlerts) break;
      await this.follow(1000);
    }
    return Math.round((Date.now() - start) / 1000);
  }

  dispose(): void {
    for (const p of this.attackProcs) killTree(p, 'SIGKILL');
    this.unguard();
    rmSync(this.work, { recursive: true, force: true });
  }
}

function toolRows(records: AttackRecord[]): string[][] {
  return records.map((r) => {
    const n = r.tool.note;
    const extra = Object.entries(n)
      .filter(([, v]) => v !== null && !(Array.isArray(v) && v.length === 0))
      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('; ') : String(v)}`)
      .join(', ');
    return [
      r.label,
      String(r.seconds),
      String(r.tool.runs),
      String(r.tool.sentPps),
      String(r.tool.synPerS),
      String(r.tool.reachedServer),
      String(r.queueMaxPps),
      r.ipsets === null ? '-' : r.ipsets.length ? r.ipsets.join('; ') : 'none',
      extra || '-',
    ];
  });
}

const TOOL_HEADER = ['attack', 'ran s', 'runs', 'pkts/s at gw', 'SYN/s at gw', 'pkts reached server', 'max queue pps', 'ipset entry', 'tool says'];

export function renderMarkdown(rep: EvalReport): string {
  const nc = rep.clients;
  const lines = [
    `# nfips detection benchmark (${rep.started})`,
    '',
    `- nfips: ${rep.commit}; \`nfips run ${rep.nfipsArgs.join(' ')}\``,
    `- options: normal ${rep.options.normalMinutes} min, attacks ${rep.options.attackSeconds} s (slow ${rep.options.slowSeconds} s), pause ${rep.options.pauseSeconds}-${rep.options.maxPauseSeconds} s, mode ${rep.options.mode}, seed ${rep.options.seed}`,
    `- normal clients: ${nc.join(', ')}; finished ${rep.finished}`,
    `- nfips' own event log of the run is kept beside this file (\`.nfips.jsonl\`)`,
    '',
    '## Attacks',
    '',
    markdownTable(TABLE_HEADER, rep.attacks.map((r) => attackRow(r, nc))),
    '',
    `Targets: alert within ${TARGETS.alertS} s naming the attacker (slow scan, slowloris: ${TARGETS.slowAlertS} s); block within ${TARGETS.blockS} s (${TARGETS.slowBlockS} s); random-source flood: an alert with distributed true and no real client blocked. "!" marks a normal client.`,
    '',
    '## Normal traffic',
    '',
    rep.normal ? normalLine(rep.normal, nc) : 'normal phase: not measured',
    '',
    `Blocks of normal clients during the attack phase: ${rep.attackPhase.normalClientBlocks.length === 0 ? '0 (PASS)' : `${rep.attackPhase.normalClientBlocks.length} (MISS): ${rep.attackPhase.normalClientBlocks.map((b) => `${b.ip} at ${b.at} (${b.reason})`).join('; ')}`}`,
    '',
    '## How the tools behaved',
    '',
    markdownTable(TOOL_HEADER, toolRows(rep.attacks)),
    '',
    '## Normal traffic made',
    '',
    rep.traffic ? trafficLine(rep.traffic) : 'no summary',
  ];
  if (rep.notes.length) lines.push('', '## Notes', '', ...rep.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

export function trafficLine(s: RealTrafficSummary): string {
  const k = (name: string, c: { ok: number; failed: number; aborted: number }) => `${name} ${c.ok} ok/${c.failed} failed`;
  return `${s.seconds} s: ` + [
    `${k('HTTP files', s.http)} (${s.http.keepAlive} on kept-alive connections, ${(s.http.bytes / 1e6).toFixed(0)} MB)`,
    `${k('bulk', s.bulk)}`,
    `${k('DNS queries', s.dns)}`,
    `${k('SSH sessions', s.ssh)}`,
    `${k('scp', s.scp)}`,
    `ping ${s.ping.ok}/${s.ping.sent} answered`,
  ].join(', ') + (s.errors.length ? `; failures seen: ${s.errors.slice(0, 5).join(' | ')}` : '');
}

async function main(): Promise<number> {
  let o: EvalOptions;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      if (e.message) process.stderr.write(`nfips eval: ${e.message}\n`);
      process.stderr.write(`${USAGE}\n`);
      return e.message ? 2 : 0;
    }
    throw e;
  }
  const attacks = o.only.length ? ATTACKS.filter((a) => o.only.includes(a.name)) : ATTACKS;
  const why = await netnsUnavailableReason();
  if (why) {
    process.stderr.write(`nfips eval: ${why}\n`);
    return 1;
  }
  const missing = missingTool(attacks);
  if (missing) {
    process.stderr.write(`nfips eval: ${missing}\n`);
    return 3;
  }
  if (!existsSync(path.join(PACKAGE_ROOT, 'build', 'Release', 'nfips_nfq.node'))) {
    process.stderr.write('nfips eval: the native addon is not built (run "make build")\n');
    return 1;
  }
  const outBase = (o.out ?? path.join(PACKAGE_ROOT, 'bench', 'out', `eval-${stamp()}.md`)).replace(/\.(md|json)$/, '');
  const attackTotal = attacks.reduce((s, a) => s + (a.slow ? o.slowSeconds : o.attackSeconds), 0);
  const blockTtl = o.blockTtl ?? Math.max(600, Math.ceil(attackTotal + attacks.length * o.maxPauseSeconds + 120));
  const nfipsArgs = ['--mode', o.mode, '--queues', '0-1', '--stats-interval', '1', '--block-ttl', String(blockTtl)];
  const started = new Date();
  const estimate = o.normalMinutes * 60 + attackTotal + attacks.length * o.pauseSeconds;
  say(`nfips eval: ${o.normalMinutes} min of normal traffic, then ${attacks.length} attack(s) (${o.attackSeconds} s, slow ones ${o.slowSeconds} s) with pauses of ${o.pauseSeconds}-${o.maxPauseSeconds} s: at least ${Math.ceil(estimate / 60)} min`);

  const t = await createTopology(o.prefix);
  const normalClients = [t.addr.client4, ...t.addr.clientExtra4];
  const base = t.addr.client4.split('.').slice(0, 3).join('.');
  const attackers = attacks.map((a, k) => (a.spoofed ? null : `${base}.${20 + k}`));
  const realClients = [...normalClients, ...attackers.filter((x): x is string => x !== null)];
  let nf: InlineNfips | null = null;
  let h: Harness | null = null;
  let traffic: RealTraffic | null = null;
  let exitCode = 0;
  const report: EvalReport = {
    format: 'nfips-eval',
    version: 1,
    started: started.toISOString(),
    finished: '',
    commit: gitCommit(),
    options: o,
    nfipsArgs,
    clients: normalClients,
    targets: TARGETS,
    normal: null,
    attacks: [],
    attackPhase: { normalClientBlocks: [] },
    traffic: null,
    nfips: { exit: null, crashed: false },
    notes: [],
  };
  try {
    for (const a of attackers) if (a) await t.exec(t.client, 'ip', ['addr', 'add', `${a}/24`, 'dev', `${t.prefix}c0`]);
    nf = startInlineNfips(t.gateway, nfipsArgs);
    try {
      await nf.waitFor('ready', 30_000);
    } catch (e) {
      process.stderr.write(`nfips eval: nfips did not start: ${(e as Error).message}\n`);
      return 1;
    }
    h = new Harness(t, nf, o);
    await h.installCounters(attacks.map((spec, k) => ({ spec, attacker: attackers[k]! })));
    say(`nfips ready on ${t.gateway} (${nfipsArgs.join(' ')}); log ${nf.logFile}`);
    const trafficSeconds = Math.ceil(estimate + attacks.length * o.maxPauseSeconds + 600);
    traffic = await startRealTraffic(t, { seconds: trafficSeconds, seed: o.seed, clients: normalClients });
    const trafficFailed = traffic.done.then(
      () => 'the real traffic ended before the benchmark did',
      (e: Error) => e.message,
    );
    let trafficError: string | null = null;
    void trafficFailed.then((m) => (trafficError = m));
    const checkTraffic = () => {
      if (trafficError) throw new Error(trafficError);
    };

    const normalStart = Date.now();
    say(`normal phase: ${o.normalMinutes} min from ${normalClients.join(', ')} (curl, dig, ssh, scp, ping)`);
    const normalMs = o.normalMinutes * 60_000;
    let nextNote = normalStart + 60_000;
    while (Date.now() - normalStart < normalMs) {
      await h.follow(Math.min(1000, normalMs - (Date.now() - normalStart)), checkTraffic);
      if (Date.now() >= nextNote) {
        nextNote += 60_000;
        const n = analyseNormal(h.tail.events, normalStart, Date.now());
        say(`  ${Math.round((Date.now() - normalStart) / 60_000)} min: ${n.alerts} alert(s), ${n.blocks} block(s)${n.sources.length ? ` naming ${n.sources.join(', ')}` : ''}`);
      }
    }
    const normalEnd = Date.now();
    report.normal = analyseNormal(h.tail.events, normalStart, normalEnd);
    say(normalLine(report.normal, normalClients));

    const phaseStart = Date.now();
    const windows: { w: Omit<AttackWindow, 'windowEnd'>; ipsets: string[] | null; tool: ToolRun }[] = [];
    for (const [k, spec] of attacks.entries()) {
      const attacker = attackers[k]!;
      const secs = spec.slow ? o.slowSeconds : o.attackSeconds;
      say(`attack ${k + 1}/${attacks.length}: ${spec.label} from ${attacker ?? 'random sources in the client /24'} for ${secs} s`);
      const r = await h.runAttack(spec, attacker, secs);
      checkTraffic();
      windows.push({ w: r.window, ipsets: r.ipsets, tool: r.tool });
      const partial = analyseAttack(h.tail.events, { ...r.window, windowEnd: Date.now() }, normalClients, realClients);
      say(`  alert ${partial.alertS ?? '-'} s, block ${partial.blockS ?? '-'} s; ${r.tool.sentPps} pkts/s at the gateway (${r.tool.runs} run(s))`);
      const paused = await h.pause();
      say(`  paused ${paused} s`);
      checkTraffic();
    }
    const phaseEnd = Date.now();
    h.tail.poll();
    windows.forEach(({ w, ipsets, tool }, k) => {
      const windowEnd = windows[k + 1]?.w.start ?? phaseEnd;
      const res = analyseAttack(h!.tail.events, { ...w, windowEnd }, normalClients, realClients);
      const stats = h!.tail.stats.filter((s) => s.t >= w.start && s.t < w.end);
      const byQueueDrop = new Map<number, number[]>();
      for (const s of stats) byQueueDrop.set(s.queue, [...(byQueueDrop.get(s.queue) ?? []), s.kernelDropped]);
      const kernelQueueDropped = [...byQueueDrop.values()].reduce((n, v) => n + (v.length ? v[v.length - 1]! - v[0]! : 0), 0);
      // Each queue's highest rate, summed over the queues.
      const maxByQueue = new Map<number, number>();
      for (const s of stats) maxByQueue.set(s.queue, Math.max(maxByQueue.get(s.queue) ?? 0, s.pps));
      const queueMaxPps = Math.round([...maxByQueue.values()].reduce((a, b) => a + b, 0));
      report.attacks.push({ ...res, startedAt: new Date(w.start).toISOString(), ipsets, tool, queueMaxPps, kernelQueueDropped });
    });
    report.attackPhase.normalClientBlocks = normalBlocksIn(h.tail.events, phaseStart, phaseEnd, normalClients);
  } catch (e) {
    exitCode = 1;
    const msg = (e as Error).message;
    report.notes.push(`harness failure: ${msg}`);
    process.stderr.write(`nfips eval: ${msg}\n`);
    if (nf && nf.proc.exitCode !== null) report.nfips.crashed = true;
  } finally {
    if (traffic) {
      try {
        report.traffic = await traffic.stop();
      } catch (e) {
        report.notes.push(`real traffic: ${(e as Error).message.slice(0, 2000)}`);
      }
    }
    if (nf) {
      report.nfips.exit = await nf.stop();
      h?.tail.poll();
      // nfips' own event log goes beside the report, for a closer look.
      try {
        mkdirSync(path.dirname(outBase), { recursive: true });
        if (existsSync(nf.logFile)) copyFileSync(nf.logFile, `${outBase}.nfips.jsonl`);
      } catch (e) {
        report.notes.push(`could not keep the nfips log: ${(e as Error).message}`);
      }
    }
    h?.dispose();
    // Anything still running in the lab's namespaces was started by this run.
    for (const ns of [t.client, t.server]) {
      const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split('\n').filter((x) => /^\d+$/.test(x.trim()));
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    await t.destroy();
    nf?.cleanup();
  }
  report.finished = new Date().toISOString();

  const nc = normalClients;
  if (report.attacks.length) {
    say('');
    say(textTable(TABLE_HEADER, report.attacks.map((r) => attackRow(r, nc))));
  }
  if (report.normal) say(normalLine(report.normal, nc));
  say(`blocks of normal clients during the attack phase: ${report.attackPhase.normalClientBlocks.length} (${report.attackPhase.normalClientBlocks.length === 0 ? 'PASS' : 'MISS'})`);
  if (report.attacks.length) {
    say('');
    say(textTable(TOOL_HEADER, toolRows(report.attacks)));
  }
  if (report.traffic) say(`\nnormal traffic: ${trafficLine(report.traffic)}`);
  mkdirSync(path.dirname(outBase), { recursive: true });
  writeFileSync(`${outBase}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`${outBase}.md`, renderMarkdown(report));
  say(`\nwritten: ${outBase}.md, ${outBase}.json (nfips' event log: ${outBase}.nfips.jsonl)`);
  return exitCode;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`nfips eval: ${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}
