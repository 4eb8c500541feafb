// What `nfips run` needs from the kernel, checked before anything else so a
// user without it is told which privilege is missing, instead of a later
// "invalid --state-dir ... EACCES" or "Operation not permitted".
import { readFileSync } from 'node:fs';

/** NFQUEUE binding, iptables, ipset and the netlink buffer size all need it (netlink sockets need no CAP_NET_RAW). */
export const CAP_NET_ADMIN = 12;

/** The effective capability set from /proc/self/status, or null if it cannot be read. */
export function effectiveCapabilities(status?: string): bigint | null {
  let text = status;
  try {
    text ??= readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
  const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(text);
  return m ? BigInt(`0x${m[1]}`) : null;
}

export function hasCapability(cap: number, status?: string): boolean | null {
  const eff = effectiveCapabilities(status);
  return eff === null ? null : (eff & (1n << BigInt(cap))) !== 0n;
}

/** Why this process cannot run nfips, or null when it has what it needs (or cannot tell). */
export function missingPrivilege(status?: string): string | null {
  if (hasCapability(CAP_NET_ADMIN, status) !== false) return null;
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  return `nfips run needs CAP_NET_ADMIN (NFQUEUE, iptables and ipset), which this process (uid ${uid}) lacks: run it as root (sudo nfips run ...), or as the service user with AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW as the systemd unit does`;
}

/**
 * The kernel answers EPERM both to a process without CAP_NET_ADMIN and to a
 * bind of a queue another socket holds. With the capability, it is the latter.
 */
export function explainBindError(message: string, status?: string): string {
  if (!/Operation not permitted|EPERM/.test(message) || hasCapability(CAP_NET_ADMIN, status) !== true) return message;
  const q = /NFQUEUE (\d+)/.exec(message)?.[1];
  const which = q === undefined ? 'a queue of --queues' : `queue ${q}`;
  return `${which} is in use by another program (another nfips, suricata, ...); stop it, or give this nfips other --queues (kernel: ${message})`;
}
