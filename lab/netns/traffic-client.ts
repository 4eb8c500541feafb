// Normal client traffic for training and checking the anomaly detector, run
// inside the client namespace:
//   ip netns exec NS node traffic-client.js '<json TrafficClientConfig>'
// HTTP of varied sizes, DNS-like UDP, interactive TCP, paced bulk downloads
// and pings, in phases of varying intensity and number of active sources.
// Prints one JSON TrafficSummary line on stdout at exit (also on SIGTERM).
import { ChildProcess, spawn } from 'node:child_process';
import { createSocket, Socket as UdpSocket } from 'node:dgram';
import { Agent, ClientRequest, get as httpGet } from 'node:http';
import { connect, isIPv4, isIPv6, Socket } from 'node:net';
import { mulberry32 } from '../support/mulberry32';

export type LevelName = 'idle' | 'quiet' | 'low' | 'medium' | 'busy';
export const LEVEL_NAMES: readonly LevelName[] = ['idle', 'quiet', 'low', 'medium', 'busy'];

export interface LevelSpec {
  /** How many times the level appears in each shuffled round of phases; 0 leaves it out. */
  weight: number;
  /** HTTP requests per second, all active sources together. */
  httpPerS: number;
  /** DNS-like UDP queries per second, all active sources together. */
  udpPerS: number;
  /** How many of the long interactive sessions type during the phase (the others stay open, silent). */
  echoSessions: number;
  bulkPerMin: number;
  pingPerMin: number;
}

export const DEFAULT_LEVELS: Readonly<Record<LevelName, Readonly<LevelSpec>>> = {
  idle: { weight: 1, httpPerS: 0.1, udpPerS: 0.3, echoSessions: 0, bulkPerMin: 0, pingPerMin: 0.5 },
  quiet: { weight: 2, httpPerS: 0.5, udpPerS: 1, echoSessions: 1, bulkPerMin: 0, pingPerMin: 0.5 },
  low: { weight: 3, httpPerS: 2, udpPerS: 5, echoSessions: 1, bulkPerMin: 0.5, pingPerMin: 1 },
  medium: { weight: 3, httpPerS: 6, udpPerS: 15, echoSessions: 2, bulkPerMin: 1, pingPerMin: 1 },
  busy: { weight: 2, httpPerS: 15, udpPerS: 40, echoSessions: 2, bulkPerMin: 2, pingPerMin: 2 },
};

export interface TrafficClientConfig {
  server: string;
  /** Local addresses to send from; all of the same family as server. */
  sources: string[];
  httpPort: number;
  udpPort: number;
  echoPort: number;
  seconds: number;
  seed: number;
  levels?: Partial<Record<LevelName, Partial<LevelSpec>>>;
  /** Phase length range; default 15-45 s, shortened for runs under 3 min so they still vary. */
  phaseSeconds?: [number, number];
}

export interface PhaseSummary {
  level: LevelName;
  clients: number;
  seconds: number;
}

export interface TrafficSummary {
  seed: number;
  /** How long traffic ran. */
  seconds: number;
  stoppedBy: 'time' | 'signal' | 'error';
  /** Requests cut by the stop are aborted, not failed; skipped = not started because too many were in flight. */
  http: { ok: number; failed: number; aborted: number; skipped: number; bytes: number; newConnection: number; keepAlive: number };
  bulk: { started: number; ok: number; failed: number; aborted: number; bytes: number };
  udp: { sent: number; answered: number; lost: number; failed: number };
  echo: { sessions: number; sent: number; echoed: number; reconnects: number };
  ping: { run: number; ok: number; failed: number; replies: number };
  phases: PhaseSummary[];
  /** Sources with at least one answered exchange. */
  sourcesUsed: string[];
  error?: string;
}


class Rng {
  private readonly next: () => number;
  // Each stream (and phase) gets its own generator, so what one draws does not
  // depend on how network timing interleaved the others.
  constructor(seed: number, ...stream: number[]) {
    let h = seed >>> 0;
    for (const x of stream) h = Math.imul(h ^ (x + 0x9e3779b9), 0x85ebca6b) >>> 0;
    this.next = mulberry32(h);
    this.next();
  }
  uniform(a: number, b: number): number {
    return a + (b - a) * this.next();
  }
  logUniform(a: number, b: number): number {
    return Math.exp(this.uniform(Math.log(a), Math.log(b)));
  }
  int(a: number, b: number): number {
    return a + Math.floor(this.next() * (b - a + 1));
  }
  /** Gap of a Poisson process with this rate per second. */
  exp(rate: number): number {
    return -Math.log(1 - this.next()) / rate;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
}

const STREAM = { phases: 1, http: 2, udp: 3, bulk: 4, ping: 5, echo: 6 } as const;
const HTTP_MIN = 200;
const HTTP_MAX = 2_000_000;
const HTTP_KEEPALIVE_SHARE = 0.25;
const HTTP_MAX_IN_FLIGHT = 64;
const IDLE_TIMEOUT_MS = 10_000;
const UDP_TIMEOUT_MS = 2000;
const BULK_MAX_IN_FLIGHT = 2;
/** Bulk bodies are cut to what the pace moves in this long, so one download does not outlive several phases. */
const BULK_MAX_SECONDS = 90;
const END_GRACE_MS = 3000;

interface Phase {
  index: number;
  level: LevelName;
  spec: LevelSpec;
  seconds: number;
  sources: string[];
}

export function resolveLevels(over: TrafficClientConfig['levels'] = {}): Record<LevelName, LevelSpec> {
  const out = {} as Record<LevelName, LevelSpec>;
  for (const name of Object.keys(over)) {
    if (!(LEVEL_NAMES as readonly string[]).includes(name)) throw new Error(`unknown level ${name}`);
  }
  for (const name of LEVEL_NAMES) {
    const spec = { ...DEFAULT_LEVELS[name], ...over[name] };
    for (const [k, v] of Object.entries(spec)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`level ${name}: ${k} must be a number >= 0`);
    }
    if (!Number.isInteger(spec.weight)) throw new Error(`level ${name}: weight must be an integer`);
    out[name] = spec;
  }
  if (LEVEL_NAMES.every((n) => out[n].weight === 0)) throw new Error('every level has weight 0');
  return out;
}

/** The whole phase schedule, fixed by the seed. */
export function planPhases(cfg: TrafficClientConfig): Phase[] {
  const levels = resolveLevels(cfg.levels);
  const shrink = Math.min(1, cfg.seconds / 180);
  const [pMin, pMax] = cfg.phaseSeconds ?? [Math.max(3, 15 * shrink), Math.max(5, 45 * shrink)];
  const rng = new Rng(cfg.seed, STREAM.phases);
  // Shuffled rounds rather than independent draws: every level shows up in
  // every round, so even a 10-minute training run covers them all.
  const deck: LevelName[] = [];
  const phases: Phase[] = [];
  for (let at = 0; at < cfg.seconds; ) {
    if (deck.length === 0) deck.push(...rng.shuffle(LEVEL_NAMES.flatMap((n) => Array<LevelName>(levels[n].weight).fill(n))));
    const level = deck.shift() as LevelName;
    const seconds = Math.min(rng.uniform(pMin, pMax), cfg.seconds - at);
    const sources = rng.shuffle(cfg.sources).slice(0, rng.int(1, cfg.sources.length));
    phases.push({ index: phases.length, level, spec: levels[level], seconds, sources });
    at += seconds;
  }
  return phases;
}

function dnsLikeQuery(rng: Rng, len: number): Buffer {
  // header (12) + label + "\x03com\x00" + qtype/qclass (4) = len
  const label = len - 22;
  const b = Buffer.alloc(len);
  b.writeUInt16BE(rng.int(0, 0xffff), 0);
  b.writeUInt16BE(0x0100, 2);
  b.writeUInt16BE(1, 4);
  b[12] = label;
  for (let i = 0; i < label; i++) b[13 + i] = 0x61 + rng.int(0, 25);
  b.write('\x03com\x00', 13 + label, 'latin1');
  b.writeUInt16BE(1, len - 4);
  b.writeUInt16BE(1, len - 2);
  return b;
}

interface EchoSession {
  index: number;
  src: string;
  rng: Rng;
  sock: Socket | null;
  connected: boolean;
  pending: number;
  partial: string;
}

class TrafficClient {
  private readonly phases: Phase[];
  private readonly levels: Record<LevelName, LevelSpec>;
  private readonly summary: TrafficSummary;
  private readonly agents = new Map<string, Agent>();
  /** In-flight requests, each with what counts it as aborted at teardown. */
  private readonly requests = new Map<ClientRequest, () => void>();
  private readonly bulkRequests = new Map<ClientRequest, () => void>();
  private readonly udpSockets = new Set<UdpSocket>();
  private readonly pings = new Set<ChildProcess>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly echo: EchoSession[] = [];
  private readonly used = new Set<string>();
  private phase: Phase | null = null;
  private phaseStarted = 0;
  private readonly started = Date.now();
  /** No new work starts. */
  private winding = false;
  /** Everything is torn down; late callbacks count nothing. */
  private closed = false;
  private onFinish: (s: TrafficSummary) => void = () => undefined;

  constructor(private readonly cfg: TrafficClientConfig) {
    this.phases = planPhases(cfg);
    this.levels = resolveLevels(cfg.levels);
    this.summary = {
      seed: cfg.seed,
      seconds: 0,
      stoppedBy: 'time',
      http: { ok: 0, failed: 0, aborted: 0, skipped: 0, bytes: 0, newConnection: 0, keepAlive: 0 },
      bulk: { started: 0, ok: 0, failed: 0, aborted: 0, bytes: 0 },
      udp: { sent: 0, answered: 0, lost: 0, failed: 0 },
      echo: { sessions: 0, sent: 0, echoed: 0, reconnects: 0 },
      ping: { run: 0, ok: 0, failed: 0, replies: 0 },
      phases: [],
      sourcesUsed: [],
    };
  }

  run(): Promise<TrafficSummary> {
    return new Promise((resolve) => {
      this.onFinish = resolve;
      // One query from every source first, so all clients are known from the
      // start as on a real network, not "new" when a phase first picks them.
      const warmRng = new Rng(this.cfg.seed, STREAM.udp, 0xffff);
      for (const src of this.cfg.sources) this.udpQuery(src, 40, warmRng);
      const echoRng = new Rng(this.cfg.seed, STREAM.echo);
      const sessions = Math.max(...LEVEL_NAMES.filter((n) => this.levels[n].weight > 0).map((n) => this.levels[n].echoSessions));
      for (let i = 0; i < sessions; i++) {
        const s: EchoSession = { index: i, src: this.cfg.sources[i % this.cfg.sources.length], rng: new Rng(this.cfg.seed, STREAM.echo, i + 1), sock: null, connected: false, pending: 0, partial: '' };
        this.echo.push(s);
        this.after(echoRng.uniform(0, 500), () => this.echoConnect(s));
      }
      this.summary.echo.sessions = sessions;
      this.startPhase(0);
    });
  }

  private after(ms: number, fn: () => void): void {
    if (this.winding) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, Math.max(0, ms));
    this.timers.add(t);
  }

  private closePhase(): void {
    if (!this.phase) return;
    this.summary.phases.push({ level: this.phase.level, clients: this.phase.sources.length, seconds: Math.round((Date.now() - this.phaseStarted) / 100) / 10 });
    this.phase = null;
  }

  private startPhase(i: number): void {
    this.closePhase();
    const p = this.phases[i];
    if (!p || this.winding) {
      void this.windDown('time');
      return;
    }
    this.phase = p;
    this.phaseStarted = Date.now();
    this.after(p.seconds * 1000, () => this.startPhase(i + 1));
    const { spec } = p;
    this.poisson(p, STREAM.http, spec.httpPerS, (rng) => {
      const keepAlive = rng.chance(HTTP_KEEPALIVE_SHARE);
      const size = Math.round(rng.logUniform(HTTP_MIN, HTTP_MAX));
      const src = rng.pick(p.sources);
      return () => this.http(src, size, keepAlive);
    });
    this.poisson(p, STREAM.udp, spec.udpPerS, (rng) => {
      const src = rng.pick(p.sources);
      const len = rng.int(30, 80);
      return () => this.udpQuery(src, len, rng);
    });
    this.poisson(p, STREAM.bulk, spec.bulkPerMin / 60, (rng) => {
      const src = rng.pick(p.sources);
      const bitsPerS = rng.logUniform(1e6, 20e6);
      const size = Math.round(Math.min(rng.logUniform(5e6, 50e6), (bitsPerS / 8) * BULK_MAX_SECONDS));
      return () => this.bulk(src, size, bitsPerS);
    });
    // A connectivity check early in every run, so even short runs ping.
    const first = i === 0 ? [new Rng(this.cfg.seed, STREAM.ping, 0xffff).uniform(0.5, 2)] : [];
    this.poisson(p, STREAM.ping, spec.pingPerMin / 60, (rng) => {
      const src = rng.pick(p.sources);
      return () => this.ping(src);
    }, first);
  }

  /**
   * Plans a phase's events of one kind up front from (seed, kind, phase), so
   * they do not depend on when earlier events happened to complete.
   */
  private poisson(p: Phase, stream: number, rate: number, draw: (rng: Rng) => () => void, extraAt: number[] = []): void {
    const rng = new Rng(this.cfg.seed, stream, p.index + 1);
    const times: number[] = [...extraAt];
    if (rate > 0) for (let at = rng.exp(rate); at < p.seconds; at += rng.exp(rate)) times.push(at);
    times.sort((a, b) => a - b);
    const events = times.map((at) => ({ at, fire: draw(rng) }));
    const base = Date.now();
    const next = (k: number): void => {
      if (k >= events.length || this.phase !== p) return;
      this.after(base + events[k].at * 1000 - Date.now(), () => {
        if (this.phase !== p) return;
        events[k].fire();
        next(k + 1);
      });
    };
    next(0);
  }

  private agentFor(src: string): Agent {
    let a = this.agents.get(src);
    if (!a) {
      a = new Agent({ keepAlive: true, maxSockets: 2 });
      this.agents.set(src, a);
    }
    return a;
  }

  private http(src: string, size: number, keepAlive: boolean): void {
    if (this.requests.size >= HTTP_MAX_IN_FLIGHT) {
      this.summary.http.skipped++;
      return;
    }
    if (keepAlive) this.summary.http.keepAlive++;
    else this.summary.http.newConnection++;
    const h = this.summary.http;
    this.get(src, size, keepAlive ? this.agentFor(src) : false, this.requests, null, {
      ok: () => h.ok++,
      failed: () => h.failed++,
      aborted: () => h.aborted++,
      bytes: (n) => (h.bytes += n),
    });
  }

  private bulk(src: string, size: number, bitsPerS: number): void {
    if (this.bulkRequests.size >= BULK_MAX_IN_FLIGHT) return;
    const b = this.summary.bulk;
    b.started++;
    this.get(src, size, false, this.bulkRequests, bitsPerS / 8, {
      ok: () => b.ok++,
      failed: () => b.failed++,
      aborted: () => b.aborted++,
      bytes: (n) => (b.bytes += n),
    });
  }

  /** GET /bytes/size; with bytesPerS, the body is read through a token bucket by pausing the stream. */
  private get(src: string, size: number, agent: Agent | false, set: Map<ClientRequest, () => void>, bytesPerS: number | null, count: { ok(): void; failed(): void; aborted(): void; bytes(n: number): void }): void {
    let settled = false;
    let pace: NodeJS.Timeout | undefined;
    const settle = (outcome: 'ok' | 'failed') => {
      if (settled || this.closed) return;
      settled = true;
      set.delete(req);
      if (pace) clearTimeout(pace);
      if (outcome === 'ok') {
        count.ok();
        this.used.add(src);
      } else count.failed();
    };
    const req = httpGet({ host: this.cfg.server, port: this.cfg.httpPort, path: `/bytes/${size}`, localAddress: src, agent, timeout: IDLE_TIMEOUT_MS }, (res) => {
      let got = 0;
      const rate = bytesPerS === null ? 0 : bytesPerS / 1000;
      const burst = 64 * 1024;
      let tokens = burst;
      let last = Date.now();
      res.on('data', (c: Buffer) => {
        got += c.length;
        if (!this.closed) count.bytes(c.length);
        if (rate === 0) return;
        const now = Date.now();
        tokens = Math.min(burst, tokens + (now - last) * rate) - c.length;
        last = now;
        if (tokens < 0) {
          // Paused, the socket is not read and TCP flow control slows the sender.
          res.pause();
          pace = setTimeout(() => res.resume(), -tokens / rate);
        }
      });
      res.on('end', () => settle(res.statusCode === 200 && got === size ? 'ok' : 'failed'));
      res.on('error', () => settle('failed'));
      res.on('close', () => {
        if (!res.complete) settle('failed');
      });
    });
    set.set(req, () => {
      if (!settled) count.aborted();
      settled = true;
      if (pace) clearTimeout(pace);
    });
    req.on('timeout', () => req.destroy(new Error('idle timeout')));
    req.on('error', () => settle('failed'));
    // Not clearing the pace on the request's 'close': the server closes after
    // the last byte while the paused body still holds data to read.
  }

  private udpQuery(src: string, len: number, rng: Rng): void {
    const query = dnsLikeQuery(rng, len);
    const sock = createSocket(isIPv6(this.cfg.server) ? 'udp6' : 'udp4');
    this.udpSockets.add(sock);
    const u = this.summary.udp;
    let timer: NodeJS.Timeout | undefined;
    const done = (outcome: 'answered' | 'lost' | 'failed') => {
      if (!this.udpSockets.delete(sock)) return;
      if (timer) clearTimeout(timer);
      sock.close();
      if (this.closed) return;
      u[outcome]++;
      if (outcome === 'answered') this.used.add(src);
    };
    sock.on('error', () => done('failed'));
    sock.on('message', (m) => {
      if (m.equals(query)) done('answered');
    });
    sock.bind({ address: src, port: 0 }, () => {
      sock.send(query, this.cfg.udpPort, this.cfg.server, (err) => {
        if (err) return done('failed');
        u.sent++;
        timer = setTimeout(() => done('lost'), UDP_TIMEOUT_MS);
      });
    });
  }

  private echoConnect(s: EchoSession): void {
    if (this.winding) return;
    const sock = connect({ host: this.cfg.server, port: this.cfg.echoPort, localAddress: s.src });
    s.sock = sock;
    s.partial = '';
    sock.setEncoding('utf8');
    sock.setTimeout(IDLE_TIMEOUT_MS, () => {
      if (!s.connected) sock.destroy(new Error('connect timeout'));
    });
    sock.on('connect', () => {
      s.connected = true;
      sock.setTimeout(0);
      this.echoTick(s, sock);
    });
    sock.on('data', (d: string) => {
      const lines = (s.partial + d).split('\n');
      s.partial = lines.pop() ?? '';
      if (this.closed) return;
      this.summary.echo.echoed += lines.length;
      s.pending -= lines.length;
      if (lines.length > 0) this.used.add(s.src);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      s.connected = false;
      s.pending = 0;
      if (s.sock !== sock || this.winding) return;
      s.sock = null;
      this.summary.echo.reconnects++;
      this.after(1000, () => this.echoConnect(s));
    });
  }

  private echoTick(s: EchoSession, sock: Socket): void {
    this.after(s.rng.logUniform(50, 1000), () => {
      if (s.sock !== sock || !s.connected) return;
      if (this.phase && s.index < this.phase.spec.echoSessions) {
        const n = s.rng.int(2, 60);
        let line = '';
        for (let i = 0; i < n; i++) line += String.fromCharCode(0x20 + s.rng.int(1, 94));
        sock.write(`${line}\n`);
        this.summary.echo.sent++;
        s.pending++;
      }
      this.echoTick(s, sock);
    });
  }

  private ping(src: string): void {
    if (this.pings.size > 0) return;
    const server = this.cfg.server;
    const p = spawn('ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', '-I', src, server], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.pings.add(p);
    this.summary.ping.run++;
    let out = '';
    p.stdout?.setEncoding('utf8');
    p.stdout?.on('data', (d: string) => (out += d));
    const done = (ok: boolean) => {
      if (!this.pings.delete(p) || this.closed) return;
      const m = /(\d+) (?:packets )?received/.exec(out);
      this.summary.ping.replies += m ? Number(m[1]) : 0;
      if (ok) {
        this.summary.ping.ok++;
        this.used.add(src);
      } else this.summary.ping.failed++;
    };
    p.on('error', () => done(false));
    p.on('close', (code) => done(code === 0));
  }

  private busy(): boolean {
    return this.requests.size > 0 || this.udpSockets.size > 0 || this.pings.size > 0 || this.echo.some((s) => s.connected && s.pending > 0);
  }

  /** Stops starting work; at the planned end, lets short exchanges in flight finish first. */
  async windDown(reason: TrafficSummary['stoppedBy'], error?: string): Promise<void> {
    if (this.closed) return;
    const first = !this.winding;
    this.winding = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (reason === 'time') {
      if (!first) return;
      const until = Date.now() + END_GRACE_MS;
      while (this.busy() && Date.now() < until && !this.closed) await new Promise((r) => setTimeout(r, 50));
      this.close();
      return;
    }
    // A signal during the end grace leaves the run counted as completed.
    if (first || reason === 'error') this.summary.stoppedBy = reason;
    if (error) this.summary.error = error;
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closePhase();
    for (const [r, countAborted] of [...this.requests, ...this.bulkRequests]) {
      countAborted();
      r.destroy();
    }
    this.closed = true;
    for (const s of this.udpSockets) s.close();
    this.udpSockets.clear();
    for (const p of this.pings) p.kill('SIGKILL');
    for (const s of this.echo) s.sock?.destroy();
    for (const a of this.agents.values()) a.destroy();
    this.summary.seconds = Math.round((Date.now() - this.started) / 100) / 10;
    this.summary.sourcesUsed = this.cfg.sources.filter((s) => this.used.has(s));
    this.onFinish(this.summary);
  }

  /** True when exchanges were tried and none at all got an answer. */
  unreachable(): boolean {
    const s = this.summary;
    const ok = s.http.ok + s.bulk.ok + s.udp.answered + s.echo.echoed + s.ping.ok;
    const tried = ok + s.http.failed + s.bulk.failed + s.udp.lost + s.udp.failed + s.ping.failed + s.echo.reconnects;
    return tried > 0 && ok === 0;
  }
}

export function parseConfig(text: string): TrafficClientConfig {
  const c = JSON.parse(text) as Partial<TrafficClientConfig>;
  const family = (a: unknown) => (typeof a === 'string' ? (isIPv4(a) ? 4 : isIPv6(a) ? 6 : 0) : 0);
  const fam = family(c.server);
  if (fam === 0) throw new Error('server must be an IP address');
  if (!Array.isArray(c.sources) || c.sources.length === 0 || !c.sources.every((s) => family(s) === fam)) throw new Error('sources must be a non-empty list of addresses of the server\'s family');
  for (const k of ['httpPort', 'udpPort', 'echoPort'] as const) {
    const p = c[k];
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`${k} must be a port`);
  }
  if (typeof c.seconds !== 'number' || !(c.seconds > 0)) throw new Error('seconds must be > 0');
  if (typeof c.seed !== 'number' || !Number.isFinite(c.seed)) throw new Error('seed must be a number');
  if (c.phaseSeconds !== undefined) {
    const [a, b] = c.phaseSeconds;
    if (!(a > 0 && b >= a)) throw new Error('phaseSeconds must be [min > 0, max >= min]');
  }
  const cfg = c as TrafficClientConfig;
  resolveLevels(cfg.levels);
  return cfg;
}

function main(): void {
  let cfg: TrafficClientConfig;
  try {
    cfg = parseConfig(process.argv[2] ?? '');
  } catch (e) {
    process.stderr.write(`traffic-client: ${(e as Error).message}\nusage: traffic-client '<json config>'\n`);
    process.exit(2);
  }
  const client = new TrafficClient(cfg);
  let exitCode = 0;
  client
    .run()
    .then((summary) => {
      if (summary.stoppedBy === 'error' || client.unreachable()) exitCode = 1;
      process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(exitCode));
    })
    .catch((e: Error) => {
      process.stderr.write(`traffic-client: ${e.stack ?? e.message}\n`);
      process.exit(1);
    });
  const onSignal = () => void client.windDown('signal');
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', (e) => {
    process.stderr.write(`traffic-client: ${e.stack ?? e.message}\n`);
    void client.windDown('error', e.message);
  });
}

if (require.main === module) main();
