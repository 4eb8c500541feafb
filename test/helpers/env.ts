// Why an integration test cannot run here, or null. Tests skip with this
// reason instead of passing silently.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { netnsUnavailableReason } from '../../lab/netns/topology';

const ROOT = PACKAGE_ROOT;
let cached: Promise<string | null> | undefined;

/** Whether a command is on PATH. */
export function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function probe(): Promise<string | null> {
  const ns = await netnsUnavailableReason();
  if (ns) return ns;
  if (!existsSync('/proc/net/netfilter/nfnetlink_queue')) {
    try {
      execFileSync('modprobe', ['nfnetlink_queue'], { stdio: 'ignore' });
    } catch {
      /* reported below */
    }
    if (!existsSync('/proc/net/netfilter/nfnetlink_queue')) return 'the kernel has no NFQUEUE support (nfnetlink_queue)';
  }
  for (const cmd of ['iptables', 'ip6tables', 'iptables-restore', 'ping', 'curl', 'nc', 'iperf3']) {
    if (!has(cmd)) return `${cmd} is not installed (run "make deps")`;
  }
  if (!existsSync(path.join(ROOT, 'build', 'Release', 'nfips_nfq.node'))) return 'the native addon is not built (run "make build")';
  return null;
}

/**
 * Fails (never skips) when a tool a test needs is missing, naming the
 * Debian package that has it: a missing prerequisite must not pass quietly.
 */
export function requireTools(tools: Readonly<Record<string, string>>): void {
  const missing = Object.entries(tools).filter(([cmd]) => !has(cmd));
  if (missing.length > 0) throw new Error(`missing ${missing.map(([c]) => c).join(', ')}: apt-get install ${[...new Set(missing.map(([, p]) => p))].join(' ')}`);
}

export function integrationSkipReason(): Promise<string | null> {
  cached ??= probe();
  return cached;
}

export { PACKAGE_ROOT };

/** The Python with scapy the evasion tests craft packets with (Debian's, not a pyenv one). */
export const SCAPY_PYTHON = '/usr/bin/python3';

/**
 * Why the evasion tests cannot craft or capture packets here, naming the
 * Debian package to install, or null. These tests fail on it rather than
 * skip: a missing tool must not pass for a passed test.
 */
export function evasionToolsProblem(): string | null {
  try {
    execFileSync(SCAPY_PYTHON, ['-c', 'import scapy.all'], { stdio: 'ignore' });
  } catch {
    return `${SCAPY_PYTHON} cannot import scapy: install the python3-scapy package (make deps)`;
  }
  if (!has('tcpdump')) return 'tcpdump is not installed: install the tcpdump package (make deps)';
  return null;
}
