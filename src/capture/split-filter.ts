// Splitting one capture between worker threads: each worker's BPF filter
// keeps a share of the traffic chosen by a hash both directions of a flow
// agree on (XOR of the source and destination address words), so every
// session stays on one worker, as with NFQUEUE's --queue-balance. libpcap
// (1.10) compiles `^`, `*`, `>>` and `%` into classic BPF ALU ops the kernel
// runs; the filter is applied by the kernel, so each worker only ever copies
// its own share.

/** XOR of the IPv4 source and destination addresses (IP header bytes 12..19). */
const V4_HASH = '(ip[12:4] ^ ip[16:4])';
/** XOR of the eight 32-bit words of the IPv6 source and destination (bytes 8..39). */
const V6_HASH = `(${[8, 12, 16, 20, 24, 28, 32, 36].map((o) => `ip6[${o}:4]`).join(' ^ ')})`;

/**
 * Worker k's test on a hash: the hash times 2^32/phi (Fibonacci hashing,
 * wrapping at 32 bits like the BPF ALU), top 16 bits, modulo n. Hosts of one
 * subnet differ in their low address bits only; a plain modulo of the XOR
 * would put most of them on the same few workers.
 */
function share(hash: string, k: number, n: number): string {
  return `((${hash} * 2654435761) >> 16) % ${n} = ${k}`;
}

export interface SplitOptions {
  /**
   * Also split tagged frames (true by default): 802.1Q and QinQ, one or two
   * tags. libpcap's `vlan` keyword moves the offsets of everything after it,
   * so these branches come last, the double-tagged one inside the single.
   * Only Ethernet devices can have them: pcap_compile refuses `vlan` on
   * other link types (LINUX_SLL2 of "any", RAW of tun/wg/ppp).
   */
  vlan?: boolean;
}

/** Worker k of n's share, as a BPF expression over IPv4 and IPv6 (and, on Ethernet, once- or twice-tagged) frames. */
export function splitExpression(k: number, n: number, opts: SplitOptions = {}): string {
  if (!Number.isInteger(n) || n < 1) throw new Error(`capture split: the worker count must be a positive integer, got ${n}`);
  if (!Number.isInteger(k) || k < 0 || k >= n) throw new Error(`capture split: worker index must be 0..${n - 1}, got ${k}`);
  const both = `(ip and ${share(V4_HASH, k, n)}) or (ip6 and ${share(V6_HASH, k, n)})`;
  // After the first `vlan` the share reads past one tag; after the second, past two.
  return opts.vlan === false ? both : `${both} or (vlan and (${both} or (vlan and (${both}))))`;
}

/** Keywords that move the offsets later tests read (libpcap's pcap-filter(7)): a share after them would read the wrong bytes. */
const OFFSET_SHIFTING = /\b(vlan|mpls|pppoes|geneve|vxlan)\b/;

/**
 * The operator's filter combined with worker k of n's share: `(USER) and
 * (SPLIT)`, the user's filter alone for one worker. A user filter that
 * itself uses an offset-shifting keyword is refused when split.
 */
export function workerFilter(userFilter: string, k: number, n: number, opts: SplitOptions = {}): string {
  const user = userFilter.trim();
  if (n === 1 && k === 0) return user;
  const shifting = OFFSET_SHIFTING.exec(user);
  if (shifting) {
    throw new Error(`--filter "${user}" cannot be split between ${n} workers: its "${shifting[1]}" moves the header offsets each worker's share reads; use --workers 1 with it`);
  }
  const split = splitExpression(k, n, opts);
  return user === '' ? split : `(${user}) and (${split})`;
}

/** One capture thread's filters: libpcap compiles `filter` on Ethernet devices and `filterNonEthernet` on the others. */
export interface WorkerFilters {
  filter: string;
  filterNonEthernet: string;
}

const NFLOG_DEVICE = /^nflog(:\d+)?$/;

export function isNflogDevice(device: string): boolean {
  return NFLOG_DEVICE.test(device);
}

/**
 * The filter of each of `workers` capture threads over the same devices.
 * NFLOG records cannot be split: the BPF filter sees the NFLOG header, not
 * an Ethernet or IP one, and iptables has no way to balance NFLOG groups
 * between listeners; several workers with an nflog device are refused.
 */
export function captureWorkerFilters(devices: readonly string[], userFilter: string, workers: number): WorkerFilters[] {
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`--workers must be a positive integer, got ${workers}`);
  if (workers > 1) {
    const nflog = devices.filter(isNflogDevice);
    if (nflog.length > 0) {
      throw new Error(`--workers ${workers}: NFLOG devices (${nflog.join(', ')}) cannot be split between workers; use --workers 1 with --nflog`);
    }
  }
  return Array.from({ length: workers }, (_, k) => ({ filter: workerFilter(userFilter, k, workers), filterNonEthernet: workerFilter(userFilter, k, workers, { vlan: false }) }));
}
