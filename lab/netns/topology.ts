// A client / gateway / server topology in network namespaces, for the demo,
// the integration tests and the benchmark. Traffic stays between the
// addresses created here.
import { execFile, spawn, ChildProcess, SpawnOptions } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface TopologyAddresses {
  client4: string;
  /** Extra client addresses: NFQUEUE --queue-balance hashes on addresses, so several are needed to spread flows. */
  clientExtra4: string[];
  gwClient4: string;
  gwServer4: string;
  server4: string;
  client6: string;
  gwClient6: string;
  gwServer6: string;
  server6: string;
}

export interface Topology {
  /** The caller's prefix plus this process's tag: namespaces are <prefix>c/g/s, interfaces <prefix>c0, g0... */
  readonly prefix: string;
  readonly client: string;
  readonly gateway: string;
  readonly server: string;
  /** Interface names inside the gateway namespace. */
  readonly gwClientIf: string;
  readonly gwServerIf: string;
  readonly addr: TopologyAddresses;
  exec(ns: string, cmd: string, args: string[], opts?: { timeoutMs?: number; allowFail?: boolean }): Promise<ExecResult>;
  spawn(ns: string, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  destroy(): Promise<void>;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const ADDRESSES: TopologyAddresses = {
  client4: '10.77.1.2',
  clientExtra4: ['10.77.1.3', '10.77.1.4', '10.77.1.5', '10.77.1.6'],
  gwClient4: '10.77.1.1',
  gwServer4: '10.77.2.1',
  server4: '10.77.2.2',
  client6: 'fd77:1::2',
  gwClient6: 'fd77:1::1',
  gwServer6: 'fd77:2::1',
  server6: 'fd77:2::2',
};

async function run(cmd: string, args: string[], timeoutMs = 30_000, allowFail = false): Promise<ExecResult> {
  try {
    const r = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    const res = { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? err.message };
    if (allowFail) return res;
    throw new Error(`${cmd} ${args.join(' ')} failed: ${res.stderr.trim() || err.message}`);
  }
}

export function nsExec(ns: string, cmd: string, args: string[], opts: { timeoutMs?: number; allowFail?: boolean } = {}): Promise<ExecResult> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], opts.timeoutMs, opts.allowFail);
}

/** Why namespaces cannot be built here, or null when they can. */
export async function netnsUnavailableReason(): Promise<string | null> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespaces and NFQUEUE need root';
  const probe = `nfipsprobe${process.pid}`;
  const r = await run('ip', ['netns', 'add', probe], 10_000, true);
  if (r.code !== 0) return `cannot create a network namespace: ${r.stderr.trim()}`;
  await run('ip', ['netns', 'del', probe], 10_000, true);
  return null;
}

export async function destroyTopology(prefix: string): Promise<void> {
  for (const role of ['c', 'g', 's']) {
    await run('ip', ['netns', 'del', `${prefix}${role}`], 10_000, true);
  }
}

/**
 * A short tag of this process added to every topology's names: test runs of
 * two checkouts on one host (same test, same prefix) must not tear down each
 * other's namespaces. Base 36 of the pid, 3 characters.
 */
export const PROCESS_TAG = (process.pid % 36 ** 3).toString(36).padStart(3, '0');

/**
 * Builds client <-> gateway <-> server. The gateway forwards IPv4 and IPv6;
 * nothing else is configured in it, so callers install what they test.
 * Names are `prefix` plus PROCESS_TAG (Topology.prefix has both).
 */
export async function createTopology(base: string): Promise<Topology> {
  if (!/^[a-z][a-z0-9]{0,7}$/.test(base)) throw new Error(`topology prefix must be 1-8 lowercase alphanumerics: ${base}`);
  // At most 11 characters, so "<prefix>g0" stays within the 15 of an interface name.
  const prefix = `${base}${PROCESS_TAG}`;
  const client = `${prefix}c`;
  const gateway = `${prefix}g`;
  const server = `${prefix}s`;
  const a = ADDRESSES;
  await destroyTopology(prefix);
  const ip = (args: string[]) => run('ip', args);
  try {
    for (const ns of [client, gateway, server]) {
      await ip(['netns', 'add', ns]);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const gwClientIf = `${prefix}g0`;
    const gwServerIf = `${prefix}g1`;
    await ip(['link', 'add', `${prefix}c0`, 'netns', client, 'type', 'veth', 'peer', 'name', gwClientIf, 'netns', gateway]);
    await ip(['link', 'add', gwServerIf, 'netns', gateway, 'type', 'veth', 'peer', 'name', `${prefix}s0`, 'netns', server]);
    const addrs: [string, string, string[]][] = [
      [client, `${prefix}c0`, [`${a.client4}/24`, ...a.clientExtra4.map((x) => `${x}/24`), `${a.client6}/64`]],
      [gateway, gwClientIf, [`${a.gwClient4}/24`, `${a.gwClient6}/64`]],
      [gateway, gwServerIf, [`${a.gwServer4}/24`, `${a.gwServer6}/64`]],
      [server, `${prefix}s0`, [`${a.server4}/24`, `${a.server6}/64`]],
    ];
    for (const [ns, dev, list] of addrs) {
      for (const cidr of list) {
        // nodad: skip IPv6 duplicate detection so the address is usable at once.
        const extra = cidr.includes(':') ? ['nodad'] : [];
        await ip(['-n', ns, 'addr', 'add', cidr, 'dev', dev, ...extra]);
      }
      await ip(['-n', ns, 'link', 'set', dev, 'up']);
    }
    await ip(['-n', client, 'route', 'add', 'default', 'via', a.gwClient4]);
    await ip(['-n', client, '-6', 'route', 'add', 'default', 'via', a.gwClient6]);
    await ip(['-n', server, 'route', 'add', 'default', 'via', a.gwServer4]);
    await ip(['-n', server, '-6', 'route', 'add', 'default', 'via', a.gwServer6]);
    await nsExec(gateway, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await nsExec(gateway, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    return {
      prefix,
      client,
      gateway,
      server,
      gwClientIf,
      gwServerIf,
      addr: a,
      exec: (ns, cmd, args, opts) => nsExec(ns, cmd, args, opts),
      spawn: (ns, cmd, args, opts) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe', ...opts }),
      destroy: () => destroyTopology(prefix),
    };
  } catch (e) {
    await destroyTopology(prefix);
    throw e;
  }
}
