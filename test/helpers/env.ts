// What the tests need on this machine. A missing prerequisite fails the
// test that needs it, naming the Debian package that has it (scripts/deps.sh
// installs them all): a test that cannot run must never pass as skipped.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { netnsUnavailableReason } from '../../lab/netns/topology';

const ROOT = PACKAGE_ROOT;

/**
 * Every tool a test runs, with the Debian package that has it. Tests name
 * the tools they use; the keys are what they may name.
 */
export const TOOL_PACKAGES = {
  ip: 'iproute2',
  iptables: 'iptables',
  ip6tables: 'iptables',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  'ip6tables-restore': 'iptables',
  ipset: 'ipset',
  sysctl: 'procps',
  modprobe: 'kmod',
  ping: 'iputils-ping',
  curl: 'curl',
  nc: 'netcat-openbsd',
  iperf3: 'iperf3',
  python3: 'python3',
  hping3: 'hping3',
  nmap: 'nmap',
  tcpdump: 'tcpdump',
  setpriv: 'util-linux',
  unshare: 'util-linux',
  mount: 'mount',
  umount: 'mount',
  // procps has it from Debian 13 on.
  pidof: 'sysvinit-utils',
  'systemd-analyze': 'systemd',
  'systemd-sysusers': 'systemd',
  crowdsec: 'crowdsec',
  cscli: 'crowdsec',
  'crowdsec-firewall-bouncer': 'crowdsec-firewall-bouncer',
} as const;
export type Tool = keyof typeof TOOL_PACKAGES;

/** What every integration test runs through the shared helpers and nfips itself (namespaces, the chains, the block sets). */
const INTEGRATION_TOOLS: readonly Tool[] = ['ip', 'iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore', 'ipset', 'sysctl', 'modprobe'];

/** Whether a command is on PATH. */
export function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the tools are not all here, naming the packages to install, or null. */
export function missingToolsProblem(tools: readonly Tool[]): string | null {
  const missing = [...new Set(tools)].filter((cmd) => !has(cmd));
  if (missing.length === 0) return null;
  return `missing ${missing.join(', ')}: apt-get install ${[...new Set(missing.map((c) => TOOL_PACKAGES[c]))].join(' ')} (or make deps)`;
}

/** Fails (never skips) when a tool the test runs is missing, naming the package that has it. */
export function requireTools(...tools: Tool[]): void {
  const problem = missingToolsProblem(tools);
  if (problem) throw new Error(problem);
}

/** Why this machine cannot run integration tests at all (root, namespaces, NFQUEUE, the addon), or null. */
async function machineProblem(): Promise<string | null> {
  const ns = await netnsUnavailableReason();
  if (ns) return ns;
  if (!existsSync('/proc/net/netfilter/nfnetlink_queue')) {
    try {
      execFileSync('modprobe', ['nfnetlink_queue'], { stdio: 'ignore' });
    } catch {
      /* reported below */
    }
    if (!existsSync('/proc/net/netfilter/nfnetlink_queue')) return 'the kernel has no NFQUEUE support (modprobe nfnetlink_queue failed)';
  }
  if (!existsSync(path.join(ROOT, 'build', 'Release', 'nfips_nfq.node'))) return 'the native addon is not built (run "make build")';
  return null;
}
let machine: Promise<string | null> | undefined;

/**
 * Fails (never skips) when an integration test cannot run here: not root, no
 * namespaces or NFQUEUE, no addon, or a tool missing that the shared helpers
 * or this test (`tools`) run, naming the package to install.
 */
export async function requireIntegration(...tools: Tool[]): Promise<void> {
  machine ??= machineProblem();
  const problem = (await machine) ?? missingToolsProblem([...INTEGRATION_TOOLS, ...tools]);
  if (problem) throw new Error(`integration test cannot run here: ${problem}`);
}

export { PACKAGE_ROOT };

/** The Python with scapy the evasion tests craft packets with (Debian's, not a pyenv one). */
export const SCAPY_PYTHON = '/usr/bin/python3';

/** Fails (never skips) when the evasion tests cannot craft or capture packets here, naming the package to install. */
export function requireEvasionTools(): void {
  requireTools('tcpdump');
  try {
    execFileSync(SCAPY_PYTHON, ['-c', 'import scapy.all'], { stdio: 'ignore' });
  } catch {
    throw new Error(`${SCAPY_PYTHON} cannot import scapy: apt-get install python3-scapy (or make deps)`);
  }
}
