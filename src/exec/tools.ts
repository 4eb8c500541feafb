// The netfilter tools nfips drives and the address family each one serves:
// shared by the chain (iptables/) and the block sets (blocks/).
import { Command } from './run';

export type Family = 'ipv4' | 'ipv6';
export const ALL_FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];

export interface IptablesBinaries {
  iptables: string;
  ip6tables: string;
  /** Run every command as `ip netns exec NETNS <binary> ...`. */
  netns?: string;
  /** Default: "<iptables>-restore", which also fits iptables-legacy / iptables-nft. */
  iptablesRestore?: string;
  ip6tablesRestore?: string;
  /** The ipset binary for the block sets; default "ipset". */
  ipset?: string;
}

export const DEFAULT_BINARIES: Readonly<IptablesBinaries> = Object.freeze({ iptables: 'iptables', ip6tables: 'ip6tables' });

export function binaryFor(family: Family, bins: IptablesBinaries): string {
  return family === 'ipv4' ? bins.iptables : bins.ip6tables;
}

export function restoreBinaryFor(family: Family, bins: IptablesBinaries): string {
  const explicit = family === 'ipv4' ? bins.iptablesRestore : bins.ip6tablesRestore;
  return explicit ?? `${binaryFor(family, bins)}-restore`;
}

export function wrap(bins: IptablesBinaries, binary: string, args: string[], input?: string): Command {
  const cmd: Command = bins.netns === undefined
    ? { file: binary, args }
    : { file: 'ip', args: ['netns', 'exec', bins.netns, binary, ...args] };
  return input === undefined ? cmd : { ...cmd, input };
}

export function ipsetCommand(bins: IptablesBinaries, args: string[], input?: string): Command {
  return wrap(bins, bins.ipset ?? 'ipset', args, input);
}
