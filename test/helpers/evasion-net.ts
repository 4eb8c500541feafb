// Namespace plumbing shared by the evasion tests: the rules under test,
// counting rules and a capture at the server, and the check that nfips gave
// every queued packet exactly one verdict.
import { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { controlRequest } from '../../src/control/client';
import { Topology } from '../../lab/netns/topology';

/** The drop rules every evasion test tries to get past, both families. */
export const EVASION_RULES = {
  default: 'accept',
  rules: [
    { id: 'no-telnet', action: 'drop', protocol: 'tcp', dport: 23 },
    { id: 'no-netbios-ns', action: 'drop', protocol: 'udp', dport: 137 },
    { id: 'no-sigtran', action: 'drop', protocol: 'sctp', dport: 2905 },
    { id: 'no-echo6', action: 'drop', protocol: 'icmpv6', icmpType: 128 },
  ],
};

export function writeEvasionRules(dir: string): string {
  const file = path.join(dir, 'evasion-rules.json');
  writeFileSync(file, JSON.stringify(EVASION_RULES));
  return file;
}

export interface ServerCounter {
  /** Unique comment tag of the rule. */
  tag: string;
  family: 4 | 6;
  /** iptables match arguments, e.g. ['-p', 'tcp', '--dport', '23']. */
  match: string[];
}

/**
 * Counting rules in the server's INPUT chain: they see what its stack is
 * given. IPv4 is reassembled before INPUT anyway; for IPv6 a conntrack rule
 * loads the defragmenter in the server namespace so INPUT sees whole
 * datagrams there too.
 */
export async function installServerCounters(t: Topology, counters: ServerCounter[]): Promise<void> {
  await t.exec(t.server, 'ip6tables', ['-w', '-t', 'raw', '-A', 'PREROUTING', '-m', 'conntrack', '--ctstate', 'INVALID', '-m', 'comment', '--comment', 'load-defrag']);
  for (const c of counters) {
    await t.exec(t.server, c.family === 4 ? 'iptables' : 'ip6tables', ['-w', '-A', 'INPUT', ...c.match, '-m', 'comment', '--comment', c.tag]);
  }
}

/** Packets per counter tag. */
export async function readServerCounters(t: Topology): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const bin of ['iptables', 'ip6tables']) {
    const r = await t.exec(t.server, bin, ['-w', '-L', 'INPUT', '-v', '-n', '-x']);
    for (const line of r.stdout.split('\n')) {
      const m = /\/\* (\S+) \*\//.exec(line);
      if (m) out.set(m[1], (out.get(m[1]) ?? 0) + Number(line.trim().split(/\s+/)[0]));
    }
  }
  return out;
}

export async function gatewayMac(t: Topology): Promise<string> {
  const r = await t.exec(t.gateway, 'ip', ['-j', 'link', 'show', 'dev', t.gwClientIf]);
  const mac = (JSON.parse(r.stdout) as { address: string }[])[0]?.address;
  if (!mac) throw new Error(`no MAC address on ${t.gwClientIf}: ${r.stdout}`);
  return mac;
}

export interface Capture {
  stop(): Promise<void>;
}

/** tcpdump on the server's interface into `file`; resolves once it listens. */
export async function startCapture(t: Topology, file: string): Promise<Capture> {
  // -Z root: the file lives in a root-only temporary directory.
  const p: ChildProcess = t.spawn(t.server, 'tcpdump', ['-i', `${t.prefix}s0`, '-U', '-s', '0', '-Z', 'root', '-w', file, 'ip or ip6']);
  let err = '';
  p.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  const until = Date.now() + 10_000;
  while (!err.includes('listening on')) {
    if (p.exitCode !== null || Date.now() > until) throw new Error(`tcpdump did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    async stop() {
      p.kill('SIGINT');
      await exited;
    },
  };
}

export interface VerdictAccount {
  /** Packets the NFQUEUE rules sent to the queues, both families. */
  queued: number;
  received: number;
  /** accepted + dropped + rejected from the engine counters. */
  verdicts: number;
  failVerdicts: number;
  evasionDrops: number;
  dropped: number;
  accepted: number;
}

/** One look at the running nfips: queue rule counter and its own counters, at the same moment. */
export async function verdictAccount(controlSocket: string): Promise<VerdictAccount> {
  const s = (await controlRequest(controlSocket, { cmd: 'status' })) as {
    unverdicted: { queue_rule_packets?: number; error?: string };
    queues: { received: number; accepted: number; dropped: number; rejected: number; failVerdicts: number; evasionDrops?: number }[];
  };
  if (s.unverdicted.queue_rule_packets === undefined) throw new Error(`queue rule counters unreadable: ${s.unverdicted.error}`);
  const sum = (f: (q: (typeof s.queues)[number]) => number) => s.queues.reduce((n, q) => n + f(q), 0);
  return {
    queued: s.unverdicted.queue_rule_packets,
    received: sum((q) => q.received),
    verdicts: sum((q) => q.accepted + q.dropped + q.rejected),
    failVerdicts: sum((q) => q.failVerdicts),
    evasionDrops: sum((q) => q.evasionDrops ?? 0),
    dropped: sum((q) => q.dropped),
    accepted: sum((q) => q.accepted),
  };
}
