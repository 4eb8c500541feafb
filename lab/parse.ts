// Parsers for what the lab's real programs print. Pure functions, unit-tested
// in lab/test/parse.test.ts against output captured from the tools on Debian 12.

export interface PingSummary {
  transmitted: number;
  received: number;
}

/** iputils ping's closing line: "5 packets transmitted, 4 received, +1 errors, 20% packet loss, time 4005ms". */
export function parsePingSummary(text: string): PingSummary | null {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  return m ? { transmitted: Number(m[1]), received: Number(m[2]) } : null;
}

export interface DigResult {
  /** One status per answered query, in order (NOERROR, NXDOMAIN, REFUSED, SERVFAIL...). */
  statuses: string[];
  /** Queries dig gave up on (";; no servers could be reached", after a time-out or a refusal). */
  timeouts: number;
}

/** dig's default output, one or more queries per run. */
export function parseDig(text: string): DigResult {
  const statuses = [...text.matchAll(/->>HEADER<<- opcode: \w+, status: ([A-Z]+)/g)].map((m) => m[1]!);
  const timeouts = [...text.matchAll(/no servers could be reached/g)].length;
  return { statuses, timeouts };
}

export interface CurlTransfer {
  code: number;
  bytes: number;
  /** 0 when the transfer reused a kept-alive connection. */
  connects: number;
}

/** Lines written by curl -w '%{http_code} %{size_download} %{num_connects}\n' (one per URL). */
export function parseCurlWrite(text: string): CurlTransfer[] {
  const out: CurlTransfer[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d{3}) (\d+) (\d+)$/.exec(line.trim());
    if (m) out.push({ code: Number(m[1]), bytes: Number(m[2]), connects: Number(m[3]) });
  }
  return out;
}

export interface IpsetEntry {
  set: string;
  member: string;
  /** The address or network part of the member (before ",proto:port"). */
  net: string;
  timeout: number | null;
}

/** `ipset save` lines "add SET MEMBER [timeout N] [packets N bytes N]". */
export function parseIpsetSave(text: string): IpsetEntry[] {
  const out: IpsetEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] !== 'add' || f.length < 3) continue;
    const t = f.indexOf('timeout');
    out.push({ set: f[1]!, member: f[2]!, net: f[2]!.split(',')[0]!, timeout: t > 0 ? Number(f[t + 1]) : null });
  }
  return out;
}

function ipv4ToInt(ip: string): number | null {
  const p = ip.split('.');
  if (p.length !== 4) return null;
  let n = 0;
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return null;
    n = n * 256 + Number(x);
  }
  return n;
}

/** Whether an IPv4 address lies in a network written as an address or ADDR/LEN. */
export function ipv4InNet(ip: string, net: string): boolean {
  const [base, lenText] = net.split('/');
  const a = ipv4ToInt(ip);
  const b = ipv4ToInt(base!);
  if (a === null || b === null) return false;
  const len = lenText === undefined ? 32 : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > 32) return false;
  if (len === 0) return true;
  return a >>> (32 - len) === b >>> (32 - len);
}

/** The sets of the nfips-* family that hold ip (as an address, a network or the address part of a service entry). */
export function ipsetsHolding(entries: IpsetEntry[], ip: string, prefix = 'nfips-'): string[] {
  return [...new Set(entries.filter((e) => e.set.startsWith(prefix) && ipv4InNet(ip, e.net)).map((e) => `${e.set} ${e.member}`))];
}

export interface CounterRow {
  packets: number;
  bytes: number;
  comment: string | null;
}

/** `iptables -L CHAIN -v -n -x` rows; the comment is the text in the rule's comment match. */
export function parseIptablesCounters(text: string): CounterRow[] {
  const out: CounterRow[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s/.exec(line);
    if (!m) continue;
    const c = /\/\* (.*?) \*\//.exec(line);
    out.push({ packets: Number(m[1]), bytes: Number(m[2]), comment: c ? c[1]! : null });
  }
  return out;
}

export interface HydraStatus {
  /** From the last "[STATUS] N tries/min, M tries in ..." line. */
  triesPerMin: number | null;
  tries: number | null;
  found: number | null;
  errors: string[];
}

export function parseHydra(text: string): HydraStatus {
  const st = [...text.matchAll(/\[STATUS\] ([\d.]+) tries\/min, (\d+) tries in/g)].pop();
  const done = /(\d+) valid passwords? found/.exec(text);
  const errors = [...new Set([...text.matchAll(/\[ERROR\] ([^\n]*)/g)].map((m) => m[1]!.trim()))].slice(0, 5);
  return { triesPerMin: st ? Number(st[1]) : null, tries: st ? Number(st[2]) : null, found: done ? Number(done[1]) : null, errors };
}

export interface SlowhttptestStatus {
  connected: number | null;
  pending: number | null;
  closed: number | null;
  error: number | null;
  serviceAvailable: string | null;
  /** The largest "connected" seen in any status block. */
  maxConnected: number | null;
}

/** slowhttptest's periodic status blocks; values from the last block. */
export function parseSlowhttptest(text: string): SlowhttptestStatus {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
  const last = (key: string): number | null => {
    const all = [...clean.matchAll(new RegExp(`${key}:\\s+(\\d+)`, 'g'))];
    return all.length ? Number(all[all.length - 1]![1]) : null;
  };
  const connected = [...clean.matchAll(/connected:\s+(\d+)/g)].map((m) => Number(m[1]));
  const avail = [...clean.matchAll(/service available:\s+(\w+)/g)].pop();
  return {
    connected: last('connected'),
    pending: last('pending'),
    closed: last('closed'),
    error: last('error'),
    serviceAvailable: avail ? avail[1]! : null,
    maxConnected: connected.length ? Math.max(...connected) : null,
  };
}

/** "Nmap done: 1 IP address (1 host up) scanned in 2.35 seconds" → seconds. */
export function parseNmapDone(text: string): number | null {
  const m = [...text.matchAll(/Nmap done: .* scanned in ([\d.]+) seconds/g)].pop();
  return m ? Number(m[1]) : null;
}
