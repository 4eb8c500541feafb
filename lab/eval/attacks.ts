// The attacks the benchmark plays, each a real tool run in the client
// namespace from an address of its own toward the server only.
import { parseHydra, parseNmapDone, parseSlowhttptest } from '../parse';

export interface AttackContext {
  server: string;
  attacker: string;
  /** The client namespace's interface (nmap -e). */
  clientIf: string;
  httpPort: number;
  sshPort: number;
  /** Password list for hydra. */
  wordlist: string;
  seconds: number;
}

export interface AttackSpec {
  name: string;
  label: string;
  /** The binary (checked at start) and its Debian package. */
  tool: string;
  pkg: string;
  args(c: AttackContext): string[];
  /** Needs 60 s targets and a longer run. */
  slow?: boolean;
  /** Random sources (rewritten into the client /24 in the client namespace); no attacker address. */
  spoofed?: boolean;
  /** The tool cannot bind a source address: the route to the server gets `src ATTACKER` while it runs. */
  routeSrc?: boolean;
  /** Started again when it ends before its time is up (a scan that finished sweeps again, as over the next host). */
  repeat?: boolean;
  /** What the gateway counts as its rate: every packet or TCP SYNs (new connections). */
  rate: 'packets' | 'syn';
  /** Tool-specific figures from what it printed. */
  note?: (output: string) => Record<string, unknown>;
}

const nmap = (scan: string[], ports: string[]) => (c: AttackContext) => [...scan, '-n', '-Pn', '-T4', '-S', c.attacker, '-e', c.clientIf, ...ports, c.server];
const nmapNote = (out: string) => ({ nmapDoneS: parseNmapDone(out) });

export const ATTACKS: AttackSpec[] = [
  { name: 'ping-flood', label: 'ping -f', tool: 'ping', pkg: 'iputils-ping', rate: 'packets', args: (c) => ['-f', '-q', '-I', c.attacker, c.server] },
  { name: 'syn-flood', label: 'hping3 -S --flood -p 80', tool: 'hping3', pkg: 'hping3', rate: 'syn', args: (c) => ['-S', '--flood', '-q', '-a', c.attacker, '-p', String(c.httpPort), c.server] },
  { name: 'udp-flood', label: 'hping3 --udp --flood', tool: 'hping3', pkg: 'hping3', rate: 'packets', args: (c) => ['--udp', '--flood', '-q', '-a', c.attacker, '-p', '9', c.server] },
  {
    name: 'rand-source-flood',
    label: 'hping3 -S --flood --rand-source',
    tool: 'hping3',
    pkg: 'hping3',
    rate: 'syn',
    spoofed: true,
    args: (c) => ['-S', '--flood', '-q', '--rand-source', '-p', String(c.httpPort), c.server],
  },
  { name: 'nmap-sS', label: 'nmap -sS', tool: 'nmap', pkg: 'nmap', rate: 'syn', repeat: true, note: nmapNote, args: nmap(['-sS'], ['-p', '1-65535']) },
  { name: 'nmap-sX', label: 'nmap -sX', tool: 'nmap', pkg: 'nmap', rate: 'packets', repeat: true, note: nmapNote, args: nmap(['-sX'], ['-p', '1-65535']) },
  { name: 'nmap-sF', label: 'nmap -sF', tool: 'nmap', pkg: 'nmap', rate: 'packets', repeat: true, note: nmapNote, args: nmap(['-sF'], ['-p', '1-65535']) },
  { name: 'nmap-sN', label: 'nmap -sN', tool: 'nmap', pkg: 'nmap', rate: 'packets', repeat: true, note: nmapNote, args: nmap(['-sN'], ['-p', '1-65535']) },
  { name: 'nmap-sU', label: 'nmap -sU', tool: 'nmap', pkg: 'nmap', rate: 'packets', repeat: true, note: nmapNote, args: nmap(['-sU'], ['--top-ports', '1000']) },
  {
    name: 'slow-scan',
    label: 'nmap -sS --scan-delay 200ms -p 1-300',
    tool: 'nmap',
    pkg: 'nmap',
    rate: 'syn',
    slow: true,
    repeat: true,
    note: nmapNote,
    args: nmap(['-sS', '--scan-delay', '200ms'], ['-p', '1-300']),
  },
  {
    name: 'hydra-ssh',
    label: 'hydra ssh -t 16',
    tool: 'hydra',
    pkg: 'hydra',
    rate: 'syn',
    routeSrc: true,
    repeat: true,
    note: (out) => {
      const h = parseHydra(out);
      return { attempts: (out.match(/\[ATTEMPT\]/g) ?? []).length, triesPerMin: h.triesPerMin, found: h.found, errors: h.errors };
    },
    // -I: no wait on a restore file; -V: one line per attempt (counted).
    args: (c) => ['-I', '-V', '-t', '16', '-l', 'root', '-P', c.wordlist, '-s', String(c.sshPort), `ssh://${c.server}`],
  },
  {
    name: 'slowloris',
    label: 'slowhttptest -H (slowloris)',
    tool: 'slowhttptest',
    pkg: 'slowhttptest',
    rate: 'syn',
    slow: true,
    routeSrc: true,
    note: (out) => ({ ...parseSlowhttptest(out) }),
    // Its defaults otherwise: 50 connections at 50/s, a header line every 10 s.
    args: (c) => ['-H', '-u', `http://${c.server}:${c.httpPort}/`, '-l', String(Math.ceil(c.seconds) + 5)],
  },
];

/** Binaries the lab needs besides the attack tools, with their Debian packages. */
export const SUPPORT_TOOLS: { tool: string; pkg: string }[] = [
  { tool: 'curl', pkg: 'curl' },
  { tool: 'dig', pkg: 'bind9-dnsutils' },
  { tool: '/usr/sbin/dnsmasq', pkg: 'dnsmasq-base' },
  { tool: '/usr/sbin/sshd', pkg: 'openssh-server' },
  { tool: '/usr/lib/openssh/sftp-server', pkg: 'openssh-sftp-server' },
  { tool: 'ssh', pkg: 'openssh-client' },
  { tool: 'scp', pkg: 'openssh-client' },
  { tool: 'ssh-keygen', pkg: 'openssh-client' },
  { tool: '/usr/bin/python3', pkg: 'python3' },
  { tool: 'ping', pkg: 'iputils-ping' },
  { tool: 'nft', pkg: 'nftables' },
  { tool: 'ipset', pkg: 'ipset' },
  { tool: 'iptables', pkg: 'iptables' },
  { tool: 'unshare', pkg: 'util-linux' },
  { tool: 'ss', pkg: 'iproute2' },
];
