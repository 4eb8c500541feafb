// Normal traffic made by real programs between the client and the server
// namespace of a topology (lab/netns/topology.ts):
//   server: python3 -m http.server over a temp dir of generated files (1 KB to
//           20 MB), dnsmasq answering *.lab.test, an sshd of its own (host key,
//           client key and config in a temp dir);
//   clients: lab/real-client.js in the client namespace driving curl, dig,
//           ssh, scp and ping from each client address.
// startRealTraffic() has the shape of startNormalTraffic(): { done, stop() }.
// Everything it starts is killed on stop, on error and on process exit, and
// its temp dir is removed.
import { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Topology } from './netns/topology';
import { guardChildren, run, sleep, stopAll, summaryOf, tailOf } from './procs';
import { DEFAULT_RATES, RealClientConfig, RealRates, RealTrafficSummary, ServedFile } from './real-client';

export type { RealRates, RealTrafficSummary } from './real-client';

export const REAL_CLIENT = path.join(__dirname, 'real-client.js');
export const PYTHON = '/usr/bin/python3';
export const SSHD = '/usr/sbin/sshd';
export const DNSMASQ = '/usr/sbin/dnsmasq';
export const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
export const DNS_DOMAIN = 'lab.test';

export interface RealTrafficPorts {
  http: number;
  dns: number;
  ssh: number;
}

export const REAL_TRAFFIC_PORTS: Readonly<RealTrafficPorts> = { http: 80, dns: 53, ssh: 22 };

/** Sizes of the files the HTTP server serves: 1 KB to 20 MB. */
export const FILE_SIZES: readonly number[] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1024, 2048, 5120, 20480].map((k) => k * 1024);

export interface RealTrafficOptions {
  seconds: number;
  seed?: number;
  /** Client addresses (on the client namespace's interface) to send from. */
  clients: string[];
  rates?: Partial<RealRates>;
  ports?: Partial<RealTrafficPorts>;
}

export interface RealTraffic {
  readonly clients: readonly string[];
  readonly ports: Readonly<RealTrafficPorts>;
  /** Where the servers' files live (removed at the end). */
  readonly dir: string;
  /** The password file the sshd sees (hydra guesses against it); the user is root. */
  readonly sshUser: string;
  /** Settles when the client driver has exited and the servers are gone; rejects when the driver failed. */
  readonly done: Promise<RealTrafficSummary>;
  /** Ends the traffic early and resolves with the summary so far. */
  stop(): Promise<RealTrafficSummary>;
  /** What the servers printed last (for diagnosis). */
  serverOutput(): Record<string, string>;
}

const STOP_KILL_MS = 15_000;

function writeRandomFile(file: string, size: number): void {
  const fd = openSync(file, 'w');
  try {
    let left = size;
    while (left > 0) {
      const n = Math.min(left, 1 << 20);
      writeSync(fd, randomBytes(n));
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
}

function sizeName(size: number): string {
  return size >= 1 << 20 ? `${size >> 20}M` : `${size >> 10}K`;
}

/** Polls until check() is true; throws with what() after timeoutMs. */
async function until(check: () => Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(200);
  }
  throw new Error(`${what()} (waited ${timeoutMs / 1000} s)`);
}

export async function startRealTraffic(t: Topology, opts: RealTrafficOptions): Promise<RealTraffic> {
  if (opts.clients.length === 0) throw new Error('startRealTraffic: no client address');
  const ports = { ...REAL_TRAFFIC_PORTS, ...opts.ports };
  const server = t.addr.server4;
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lab-'));
  const www = path.join(dir, 'www');
  const sshDir = path.join(dir, 'ssh');
  const upload = path.join(dir, 'upload');
  const local = path.join(dir, 'client');
  for (const d of [www, sshDir, upload, local]) mkdirSync(d);
  // sshd wants its privilege separation directory; created only if missing, removed after if we made it.
  const madeRunSshd = !existsSync('/run/sshd');
  if (madeRunSshd) mkdirSync('/run/sshd', { mode: 0o755, recursive: true });
  const all: ChildProcess[] = [];
  const tails: Record<string, () => string> = {};
  const cleanupDirs = () => {
    rmSync(dir, { recursive: true, force: true });
    if (madeRunSshd) {
      try {
        rmdirSync('/run/sshd');
      } catch {
        /* something else uses it now */
      }
    }
  };
  const unguard = guardChildren(all, cleanupDirs);

  const fail = async (e: unknown): Promise<never> => {
    await stopAll(all);
    unguard();
    cleanupDirs();
    throw e;
  };

  let files: ServedFile[];
  let config: RealClientConfig;
  try {
    files = FILE_SIZES.map((size) => ({ name: `f-${sizeName(size)}.bin`, size }));
    for (const f of files) writeRandomFile(path.join(www, f.name), f.size);
    const uploadFile = path.join(local, 'upload.bin');
    const uploadBytes = 3 << 20;
    writeRandomFile(uploadFile, uploadBytes);
    const download = files.find((f) => f.size === 5 << 20)!;

    // SSH: host key, client key, authorized_keys, config; all in the temp dir.
    const hostKey = path.join(sshDir, 'host_ed25519');
    const clientKey = path.join(sshDir, 'client_ed25519');
    for (const k of [hostKey, clientKey]) {
      const r = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'nfips-lab', '-f', k]);
      if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
    }
    const authorized = path.join(sshDir, 'authorized_keys');
    writeFileSync(authorized, readFileSync(`${clientKey}.pub`));
    chmodSync(authorized, 0o600);
    // The sshd reads a shadow file of its own (bind-mounted over /etc/shadow in a
    // private mount namespace): root gets "*", an unlocked account with no
    // password, so key logins work whatever the host's root entry says and no
    // password guess can ever succeed, whatever the host's root password is.
    const shadow = path.join(sshDir, 'shadow');
    writeFileSync(shadow, 'root:*:19000:0:99999:7:::\n', { mode: 0o600 });
    const sshdConfig = path.join(sshDir, 'sshd_config');
    writeFileSync(
      sshdConfig,
      [
        `Port ${ports.ssh}`,
        `ListenAddress ${server}`,
        `HostKey ${hostKey}`,
        'PidFile none',
        'StrictModes no',
        'UsePAM no',
        'UseDNS no',
        'PermitRootLogin yes',
        'PubkeyAuthentication yes',
        `AuthorizedKeysFile ${authorized}`,
        'PasswordAuthentication yes',
        'KbdInteractiveAuthentication no',
        'PrintMotd no',
        'PrintLastLog no',
        `Subsystem sftp ${SFTP_SERVER}`,
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );

    const spawnServer = (name: string, cmd: string, args: string[]) => {
      const p = t.spawn(t.server, cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      all.push(p);
      tails[name] = tailOf(p);
      p.once('error', () => undefined);
      return p;
    };
    const http = spawnServer('http', PYTHON, ['-m', 'http.server', String(ports.http), '--bind', server, '--directory', www, '--protocol', 'HTTP/1.1']);
    const dns = spawnServer('dns', DNSMASQ, [
      '--no-daemon',
      '--no-resolv',
      '--no-hosts',
      '--conf-file=/dev/null',
      '--pid-file=',
      '--log-facility=-',
      `--listen-address=${server}`,
      '--bind-interfaces',
      `--port=${ports.dns}`,
      // Both families, so AAAA questions are answered here too, not refused.
      `--address=/${DNS_DOMAIN}/${server}`,
      `--address=/${DNS_DOMAIN}/${t.addr.server6}`,
    ]);
    const sshd = spawnServer('ssh', 'unshare', [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$1" /etc/shadow && exec "$2" -D -e -f "$3"',
      'sh',
      shadow,
      SSHD,
      sshdConfig,
    ]);
    const alive = (p: ChildProcess, name: string) => {
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`${name} exited (${p.exitCode ?? p.signalCode}): ${tails[name]?.().trim()}`);
    };
    const listening = async (proto: 'tcp' | 'udp', port: number) => {
      const r = await t.exec(t.server, 'ss', [proto === 'tcp' ? '-ltnH' : '-lunH', `sport = :${port}`], { allowFail: true });
      return r.stdout.trim() !== '';
    };
    for (const [p, name, proto, port] of [
      [http, 'http', 'tcp', ports.http],
      [dns, 'dns', 'udp', ports.dns],
      [sshd, 'ssh', 'tcp', ports.ssh],
    ] as const) {
      await until(
        async () => {
          alive(p, name);
          return listening(proto, port);
        },
        10_000,
        () => `${name} server did not listen on ${proto}/${port}: ${tails[name]?.().trim()}`,
      );
    }
    const digCheck = await t.exec(t.server, 'dig', [`@${server}`, '-p', String(ports.dns), '+short', '+tries=2', '+time=2', `www.${DNS_DOMAIN}`], { allowFail: true });
    if (digCheck.stdout.trim() !== server) throw new Error(`dnsmasq does not answer www.${DNS_DOMAIN}: ${digCheck.stdout}${digCheck.stderr}`);

    config = {
      server,
      clients: opts.clients,
      seconds: opts.seconds,
      seed: opts.seed ?? 1,
      httpPort: ports.http,
      files: files.filter((f) => f.size < 20 << 20),
      bulkFile: files[files.length - 1]!,
      bulkRate: '2M',
      dnsPort: ports.dns,
      dnsDomain: DNS_DOMAIN,
      ssh: {
        port: ports.ssh,
        user: 'root',
        key: clientKey,
        uploadFile,
        uploadBytes,
        remoteDir: upload,
        downloadPath: path.join(www, download.name),
        downloadBytes: download.size,
        localDir: local,
      },
      rates: { ...DEFAULT_RATES, ...opts.rates },
    };
  } catch (e) {
    return fail(e);
  }

  let client: ChildProcess;
  try {
    client = t.spawn(t.client, process.execPath, [REAL_CLIENT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    return fail(e);
  }
  all.push(client);
  const { exited, done } = summaryOf<RealTrafficSummary>(client, 'real traffic client', async () => {
    await stopAll(all);
    unguard();
    cleanupDirs();
  });

  return {
    clients: opts.clients,
    ports,
    dir,
    sshUser: 'root',
    done,
    serverOutput: () => Object.fromEntries(Object.entries(tails).map(([k, f]) => [k, f()])),
    async stop() {
      if (client.exitCode === null && client.signalCode === null && client.pid !== undefined) {
        client.kill('SIGTERM');
        const k = setTimeout(() => client.kill('SIGKILL'), STOP_KILL_MS);
        await exited;
        clearTimeout(k);
      }
      return done;
    },
  };
}
