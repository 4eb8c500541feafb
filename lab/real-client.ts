// Normal traffic made by real programs, run inside the client namespace by
// lab/real-traffic.ts:
//   ip netns exec NS node real-client.js '<json RealClientConfig>'
// Each client address fetches files with curl (some several per connection,
// kept alive), queries DNS with dig, holds SSH sessions and copies files with
// scp, and pings once a second; one of them now and then runs a
// rate-limited bulk download. Every tool is bound to its client address.
// Prints one JSON RealTrafficSummary line on stdout at exit (also on SIGTERM).
import { ChildProcess, spawn } from 'node:child_process';
import { mulberry32 } from './support/mulberry32';
import { parseCurlWrite, parseDig, parsePingSummary } from './parse';

export interface RealRates {
  /** curl runs per second per client (each fetches 1-4 files; several on one kept-alive connection). */
  httpPerS: number;
  /** dig runs per second per client (each asks 1-3 names). */
  dnsPerS: number;
  /** SSH sessions started per minute per client (5-25 s each). */
  sshPerMin: number;
  /** scp copies per minute per client (upload or download of a few MB). */
  scpPerMin: number;
  /** Rate-limited bulk downloads per minute, all clients together. */
  bulkPerMin: number;
  /** Seconds between pings of each client's ping. */
  pingIntervalS: number;
}

export const DEFAULT_RATES: Readonly<RealRates> = { httpPerS: 0.4, dnsPerS: 1, sshPerMin: 1.5, scpPerMin: 0.5, bulkPerMin: 0.75, pingIntervalS: 1 };

export interface ServedFile {
  name: string;
  size: number;
}

export interface RealClientConfig {
  server: string;
  clients: string[];
  seconds: number;
  seed: number;
  httpPort: number;
  files: ServedFile[];
  bulkFile: ServedFile;
  /** curl --limit-rate value of bulk downloads. */
  bulkRate: string;
  dnsPort: number;
  dnsDomain: string;
  ssh: {
    port: number;
    user: string;
    key: string;
    /** Local file uploaded by scp. */
    uploadFile: string;
    uploadBytes: number;
    /** Directory on the server that uploads go to. */
    remoteDir: string;
    /** File on the server that scp downloads, and its size. */
    downloadPath: string;
    downloadBytes: number;
    /** Local directory downloads are written to. */
    localDir: string;
  };
  rates: RealRates;
}

export interface KindCount {
  ok: number;
  failed: number;
  /** Cut short by the stop: neither success nor failure. */
  aborted: number;
}

export interface RealTrafficSummary {
  seed: number;
  seconds: number;
  stoppedBy: 'time' | 'signal' | 'error';
  /** One per file fetched; keepAlive = fetched over a reused connection. */
  http: KindCount & { runs: number; bytes: number; keepAlive: number };
  bulk: KindCount & { bytes: number };
  /** One per DNS query. */
  dns: KindCount;
  ssh: KindCount;
  scp: KindCount & { bytes: number };
  /** ok = echo replies, failed = requests without a reply. */
  ping: KindCount & { sent: number };
  perClient: Record<string, { ok: number; failed: number }>;
  /** A few distinct failure messages, for diagnosis. */
  errors: string[];
  error?: string;
}

interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  aborted: boolean;
}

export function emptySummary(seed: number, clients: string[]): RealTrafficSummary {
  const c = (): KindCount => ({ ok: 0, failed: 0, aborted: 0 });
  return {
    seed,
    seconds: 0,
    stoppedBy: 'time',
    http: { ...c(), runs: 0, bytes: 0, keepAlive: 0 },
    bulk: { ...c(), bytes: 0 },
    dns: c(),
    ssh: c(),
    scp: { ...c(), bytes: 0 },
    ping: { ...c(), sent: 0 },
    perClient: Object.fromEntries(clients.map((a) => [a, { ok: 0, failed: 0 }])),
    errors: [],
  };
}

const SSH_OPTS = (key: string) => [
  '-F', '/dev/null',
  '-i', key,
  '-o', 'IdentitiesOnly=yes',
  '-o', 'BatchMode=yes',
  '-o', 'StrictHostKeyChecking=no',
  '-o', 'UserKnownHostsFile=/dev/null',
  '-o', 'LogLevel=ERROR',
  '-o', 'ConnectTimeout=10',
];

class Client {
  private readonly started = Date.now();
  private stopping = false;
  private stopWake: (() => void)[] = [];
  private readonly inflight = new Set<ChildProcess>();
  private readonly pings: { p: ChildProcess; addr: string; out: () => string; closed: Promise<void> }[] = [];
  readonly summary: RealTrafficSummary;

  constructor(private readonly cfg: RealClientConfig) {
    this.summary = emptySummary(cfg.seed, cfg.clients);
  }

  private rng(...stream: number[]): () => number {
    let h = this.cfg.seed >>> 0;
    for (const s of stream) h = Math.imul(h ^ (s + 0x9e3779b9), 0x85ebca6b) >>> 0;
    return mulberry32(h);
  }

  private wait(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.stopWake = self.stopWake.filter((f) => f !== done);
        resolve();
      }
      this.stopWake.push(done);
    });
  }

  private note(addr: string, ok: boolean, error?: string): void {
    const pc = this.summary.perClient[addr];
    if (pc) ok ? pc.ok++ : pc.failed++;
    if (!ok && error) {
      const e = error.trim().split('\n').filter(Boolean).slice(-1)[0]?.slice(0, 200);
      if (e && !this.summary.errors.includes(e) && this.summary.errors.length < 20) this.summary.errors.push(e);
    }
  }

  private tool(cmd: string, args: string[], timeoutMs: number): Promise<ToolResult> {
    return new Promise((resolve) => {
      if (this.stopping) return resolve({ code: null, signal: null, stdout: '', stderr: '', aborted: true });
      const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      this.inflight.add(p);
      let stdout = '';
      let stderr = '';
      p.stdout!.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-20000)));
      p.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
      const finish = (code: number | null, signal: NodeJS.Signals | null, err?: Error) => {
        clearTimeout(t);
        this.inflight.delete(p);
        resolve({ code, signal, stdout, stderr: err ? `${stderr}${err.message}` : stderr, aborted: this.stopping && code !== 0 });
      };
      p.once('error', (e) => finish(null, null, e));
      p.once('close', (code, signal) => finish(code, signal));
    });
  }

  private url(name: string): string {
    return `http://${this.cfg.server}:${this.cfg.httpPort}/${name}`;
  }

  /** Mostly small files, some medium, now and then a big one. */
  private pickFile(r: () => number): ServedFile {
    const files = [...this.cfg.files].sort((a, b) => a.size - b.size);
    const x = r();
    const small = files.filter((f) => f.size <= 64 * 1024);
    const medium = files.filter((f) => f.size > 64 * 1024 && f.size <= 2 * 1024 * 1024);
    const big = files.filter((f) => f.size > 2 * 1024 * 1024);
    const from = x < 0.75 && small.length ? small : x < 0.97 && medium.length ? medium : big.length ? big : files;
    return from[Math.floor(r() * from.length)]!;
  }

  private async httpLoop(i: number, addr: string): Promise<void> {
    const r = this.rng(1, i);
    let running = 0;
    while (!this.stopping) {
      await this.wait(-Math.log(1 - r()) * (1000 / this.cfg.rates.httpPerS));
      if (this.stopping || running >= 3) continue;
      const n = r() < 0.6 ? 1 : 2 + Math.floor(r() * 3);
      const files = Array.from({ length: n }, () => this.pickFile(r));
      running++;
      void this.fetch(addr, files, []).finally(() => running--);
    }
  }

  private async fetch(addr: string, files: ServedFile[], extra: string[]): Promise<KindCount & { bytes: number }> {
    const args = ['-sS', '--interface', addr, '--max-time', '90', '-w', '%{http_code} %{size_download} %{num_connects}\\n', ...extra];
    for (const f of files) args.push('-o', '/dev/null', this.url(f.name));
    const res = await this.tool('curl', args, 100_000);
    const got = parseCurlWrite(res.stdout);
    const out = { ok: 0, failed: 0, aborted: 0, bytes: 0 };
    const bulk = extra.length > 0;
    if (!bulk) this.summary.http.runs++;
    files.forEach((f, k) => {
      const t = got[k];
      const ok = t !== undefined && t.code === 200 && t.bytes === f.size;
      if (ok) {
        out.ok++;
        out.bytes += t.bytes;
        if (!bulk && k > 0 && t.connects === 0) this.summary.http.keepAlive++;
      } else if (res.aborted) out.aborted++;
      else out.failed++;
      if (!res.aborted || ok) this.note(addr, ok, `curl ${f.name}: ${t ? `HTTP ${t.code}, ${t.bytes} bytes` : ''} ${res.stderr}`);
    });
    const into = bulk ? this.summary.bulk : this.summary.http;
    into.ok += out.ok;
    into.failed += out.failed;
    into.aborted += out.aborted;
    into.bytes += out.bytes;
    return out;
  }

  private async bulkLoop(): Promise<void> {
    const r = this.rng(2);
    if (this.cfg.rates.bulkPerMin <= 0) return;
    while (!this.stopping) {
      await this.wait(-Math.log(1 - r()) * (60_000 / this.cfg.rates.bulkPerMin));
      if (this.stopping) break;
      const addr = this.cfg.clients[Math.floor(r() * this.cfg.clients.length)]!;
      await this.fetch(addr, [this.cfg.bulkFile], ['--limit-rate', this.cfg.bulkRate]);
    }
  }

  private async dnsLoop(i: number, addr: string): Promise<void> {
    const r = this.rng(3, i);
    const names = ['www', 'mail', 'api', 'cdn', 'static', 'intranet', 'git', 'wiki', ...Array.from({ length: 12 }, (_, k) => `host${k + 1}`)];
    let running = 0;
    while (!this.stopping) {
      await this.wait(-Math.log(1 - r()) * (1000 / this.cfg.rates.dnsPerS));
      if (this.stopping || running >= 3) continue;
      const n = 1 + Math.floor(r() * 3);
      const qs: string[] = [];
      for (let k = 0; k < n; k++) qs.push(`${names[Math.floor(r() * names.length)]}.${this.cfg.dnsDomain}`, r() < 0.8 ? 'A' : 'AAAA');
      running++;
      void this.tool('dig', [`@${this.cfg.server}`, '-p', String(this.cfg.dnsPort), '-b', addr, '+tries=1', '+time=2', ...qs], 15_000)
        .then((res) => {
          const d = parseDig(res.stdout);
          const ok = d.statuses.filter((s) => s === 'NOERROR').length;
          const failed = res.aborted ? 0 : n - ok;
          this.summary.dns.ok += ok;
          this.summary.dns.failed += failed;
          this.summary.dns.aborted += n - ok - failed;
          for (let k = 0; k < ok; k++) this.note(addr, true);
          for (let k = 0; k < failed; k++) this.note(addr, false, `dig: ${d.statuses.join(',') || 'no answer'} ${d.timeouts ? 'timed out' : ''} ${res.stderr}`);
        })
        .finally(() => running--);
    }
  }

  private async sshLoop(i: number, addr: string): Promise<void> {
    const r = this.rng(4, i);
    const s = this.cfg.ssh;
    let running = 0;
    await this.wait(r() * 10_000);
    while (!this.stopping) {
      await this.wait(-Math.log(1 - r()) * (60_000 / this.cfg.rates.sshPerMin));
      if (this.stopping || running >= 2) continue;
      const secs = 5 + Math.floor(r() * 21);
      // Half idle sessions, half "typing": a line a second.
      const cmd = r() < 0.5 ? `sleep ${secs}; echo done` : `for i in $(seq ${secs}); do echo line $i; sleep 1; done; echo done`;
      running++;
      void this.tool('ssh', [...SSH_OPTS(s.key), '-b', addr, '-p', String(s.port), `${s.user}@${this.cfg.server}`, cmd], (secs + 40) * 1000)
        .then((res) => {
          const ok = res.code === 0 && /(^|\n)done\n?$/.test(res.stdout);
          if (res.aborted && !ok) this.summary.ssh.aborted++;
          else {
            ok ? this.summary.ssh.ok++ : this.summary.ssh.failed++;
            this.note(addr, ok, `ssh: exit ${res.code ?? res.signal} ${res.stderr}`);
          }
        })
        .finally(() => running--);
    }
  }

  private async scpLoop(i: number, addr: string): Promise<void> {
    const r = this.rng(5, i);
    const s = this.cfg.ssh;
    if (this.cfg.rates.scpPerMin <= 0) return;
    while (!this.stopping) {
      await this.wait(-Math.log(1 - r()) * (60_000 / this.cfg.rates.scpPerMin));
      if (this.stopping) break;
      const up = r() < 0.5;
      const remote = `${s.user}@${this.cfg.server}:`;
      const args = [...SSH_OPTS(s.key), '-q', '-o', `BindAddress=${addr}`, '-P', String(s.port)];
      if (up) args.push(s.uploadFile, `${remote}${s.remoteDir}/up-${addr}`);
      else args.push(`${remote}${s.downloadPath}`, `${s.localDir}/down-${addr}`);
      const res = await this.tool('scp', args, 120_000);
      const ok = res.code === 0;
      if (res.aborted && !ok) this.summary.scp.aborted++;
      else {
        ok ? this.summary.scp.ok++ : this.summary.scp.failed++;
        if (ok) this.summary.scp.bytes += up ? s.uploadBytes : s.downloadBytes;
        this.note(addr, ok, `scp ${up ? 'upload' : 'download'}: exit ${res.code ?? res.signal} ${res.stderr}`);
      }
    }
  }

  private startPing(i: number, addr: string): void {
    const r = this.rng(6, i);
    setTimeout(() => {
      if (this.stopping) return;
      const p = spawn('ping', ['-q', '-n', '-i', String(this.cfg.rates.pingIntervalS), '-W', '2', '-I', addr, this.cfg.server], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
      p.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
      const closed = new Promise<void>((res) => {
        p.once('close', () => res());
        p.once('error', () => res());
      });
      this.pings.push({ p, addr, out: () => out, closed });
    }, r() * 1000);
  }

  async run(): Promise<void> {
    const loops: Promise<void>[] = [];
    this.cfg.clients.forEach((addr, i) => {
      loops.push(this.httpLoop(i, addr), this.dnsLoop(i, addr), this.sshLoop(i, addr), this.scpLoop(i, addr));
      this.startPing(i, addr);
    });
    loops.push(this.bulkLoop());
    const deadline = setTimeout(() => this.stop('time'), this.cfg.seconds * 1000);
    await Promise.all(loops);
    clearTimeout(deadline);
  }

  private stopped: Promise<void> | null = null;

  stop(by: 'time' | 'signal' | 'error'): Promise<void> {
    this.stopped ??= (async () => {
      this.summary.stoppedBy = by;
      this.stopping = true;
      for (const w of [...this.stopWake]) w();
      for (const p of this.inflight) p.kill('SIGTERM');
      // SIGINT makes ping print its summary.
      for (const { p } of this.pings) p.kill('SIGINT');
      const kill = setTimeout(() => {
        for (const p of this.inflight) p.kill('SIGKILL');
        for (const { p } of this.pings) p.kill('SIGKILL');
      }, 3000);
      while (this.inflight.size > 0) await new Promise((r) => setTimeout(r, 20));
      await Promise.all(this.pings.map((x) => x.closed));
      clearTimeout(kill);
      for (const { addr, out } of this.pings) {
        const s = parsePingSummary(out());
        if (!s) {
          this.summary.errors.push(`ping from ${addr}: no summary: ${out().trim().slice(-200)}`);
          continue;
        }
        this.summary.ping.sent += s.transmitted;
        this.summary.ping.ok += s.received;
        // The request in flight at the stop is not a loss.
        const lost = Math.max(0, s.transmitted - s.received - 1);
        this.summary.ping.failed += lost;
        this.summary.ping.aborted += s.transmitted - s.received - lost;
        const pc = this.summary.perClient[addr];
        if (pc) {
          pc.ok += s.received;
          pc.failed += lost;
        }
      }
      this.summary.seconds = Math.round((Date.now() - this.started) / 100) / 10;
    })();
    return this.stopped;
  }
}

function main(): void {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as RealClientConfig;
  const c = new Client(cfg);
  let printed = false;
  const finish = (code: number) => {
    if (printed) return;
    printed = true;
    process.stdout.write(`${JSON.stringify(c.summary)}\n`, () => process.exit(code));
  };
  process.once('SIGTERM', () => void c.stop('signal'));
  process.once('SIGINT', () => void c.stop('signal'));
  c.run()
    .then(() => c.stop(c.summary.stoppedBy))
    .then(() => finish(0))
    .catch((e: Error) => {
      c.summary.error = e.stack ?? e.message;
      void c.stop('error').then(() => finish(1));
    });
}

if (require.main === module) main();
