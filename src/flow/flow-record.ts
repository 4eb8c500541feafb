// Sessions as plain objects, built off the data path: Suricata EVE `flow`
// records for sessions that ended (EndedSessions), and rows of the live
// table for `nfips sessions` (eBPF_TrafficAnalyzer's columns). src is the
// client by the server guess, and toserver counts src -> dest.
import { formatAddress } from '../rules/address';
import { protocolName } from '../rules/protocols';
import { PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG } from '../packet/decoded';
import { EndedSessions, EndReason } from './ended-sessions';
import { F_ESTABLISHED, F_SERVER_IS_A, GUESS_SHIFT, SESSION_KEY_WORDS as KEY_WORDS, SERVER_GUESS_NAMES } from './session-table';
import { SessionSnapshot } from './session-snapshot';

/** Suricata's flow.reason words; a TCP close is told apart from a timeout. */
const REASONS = ['tcp_close', 'timeout', 'forced', 'shutdown'] as const;

/** What a well-known server port most likely carries (a guess: nothing is parsed). */
const APP_BY_PORT: ReadonlyMap<number, string> = new Map([
  [20, 'ftp-data'], [21, 'ftp'], [22, 'ssh'], [23, 'telnet'], [25, 'smtp'], [53, 'dns'], [67, 'dhcp'], [68, 'dhcp'],
  [69, 'tftp'], [80, 'http'], [88, 'krb5'], [110, 'pop3'], [123, 'ntp'], [137, 'nbns'], [143, 'imap'], [161, 'snmp'],
  [389, 'ldap'], [443, 'tls'], [445, 'smb'], [465, 'smtp'], [502, 'modbus'], [514, 'syslog'], [587, 'smtp'],
  [853, 'tls'], [993, 'tls'], [995, 'tls'], [1883, 'mqtt'], [3389, 'rdp'], [5060, 'sip'], [8080, 'http'], [8443, 'tls'],
]);

export interface FlowTcp {
  tcp_flags: string;
  tcp_flags_ts: string;
  tcp_flags_tc: string;
  syn?: true;
  fin?: true;
  rst?: true;
  psh?: true;
  ack?: true;
  urg?: true;
  ecn?: true;
  cwr?: true;
}

/** A `flow` event's fields (the log adds timestamp and event_type). */
export interface FlowRecord {
  queue: number;
  flow_id: number;
  src_ip: string;
  src_port?: number;
  dest_ip: string;
  dest_port?: number;
  proto: string;
  app_proto?: string;
  flow: {
    pkts_toserver: number;
    pkts_toclient: number;
    bytes_toserver: number;
    bytes_toclient: number;
    start: string;
    end: string;
    age: number;
    state: 'new' | 'established' | 'closed';
    reason: (typeof REASONS)[number];
    alerted: false;
    /** How the server side was told (nfips's own field). */
    server_guess: (typeof SERVER_GUESS_NAMES)[number];
  };
  tcp?: FlowTcp;
}

/** One live session, as `nfips sessions` prints it. */
export interface SessionRow {
  queue: number;
  server_ip: string;
  server_port: number;
  client_ip: string;
  client_port: number;
  protocol: string;
  packets_to_server: number;
  bytes_to_server: number;
  packets_to_client: number;
  bytes_to_client: number;
  first_seen: string;
  last_seen: string;
  server_guess: (typeof SERVER_GUESS_NAMES)[number];
  state: 'new' | 'established' | 'closed';
}

export const SESSION_COLUMNS = ['server_ip', 'server_port', 'client_ip', 'client_port', 'protocol', 'packets_to_server', 'bytes_to_server', 'packets_to_client', 'bytes_to_client', 'first_seen', 'last_seen', 'server_guess', 'state', 'queue'] as const;

const hex = (n: number) => n.toString(16).padStart(2, '0');

/** EVE's tcp object: flags of both directions as hex, and each flag seen as true. */
export function tcpObject(ts: number, tc: number): FlowTcp {
  const all = ts | tc;
  const o: FlowTcp = { tcp_flags: hex(all), tcp_flags_ts: hex(ts), tcp_flags_tc: hex(tc) };
  if (all & TCP_SYN) o.syn = true;
  if (all & TCP_FIN) o.fin = true;
  if (all & TCP_RST) o.rst = true;
  if (all & TCP_PSH) o.psh = true;
  if (all & TCP_ACK) o.ack = true;
  if (all & TCP_URG) o.urg = true;
  if (all & TCP_ECE) o.ecn = true;
  if (all & TCP_CWR) o.cwr = true;
  return o;
}

/** The service a port most likely carries; "failed" (EVE's word) for TCP/UDP without a guess, undefined for other protocols. */
export function appProtoGuess(proto: number, serverPort: number): string | undefined {
  if (proto !== PROTO_TCP && proto !== PROTO_UDP) return undefined;
  return APP_BY_PORT.get(serverPort) ?? 'failed';
}

const iso = (seconds: number) => new Date(Math.round(seconds * 1000)).toISOString();

/** Protocol names by number, looked up once: records are made by the thousand a second. */
const PROTO_NAMES: readonly string[] = Array.from({ length: 256 }, (_, n) => protocolName(n));
const PROTO_UPPER: readonly string[] = PROTO_NAMES.map((n) => n.toUpperCase());

/** IPv4 written directly (the general formatter parses through ipaddr.js, many times slower). */
function address(family: number, words: Uint32Array, at: number): string {
  if (family !== 6) {
    const w = words[at];
    return `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`;
  }
  return formatAddress(family, words, at);
}

/** Queue numbers apart that flow ids tell apart: at least MAX_QUEUES (run-options.ts), whose range is contiguous. */
export const FLOW_ID_QUEUES = 32;
/** Ids per queue: 2^48, over eight years at a million records a second. */
export const FLOW_ID_SPAN = 2 ** 48;

/**
 * First flow_id of a queue: the queue (mod FLOW_ID_QUEUES) in the bits above
 * FLOW_ID_SPAN. The pipeline adds its flows-logged counter, which lives in
 * the queue's shared counters and goes on across thread restarts, so ids
 * never repeat within a run and stay below 2^53.
 */
export function flowIdBase(queue: number): number {
  return (queue % FLOW_ID_QUEUES) * FLOW_ID_SPAN;
}

/** Endpoint views of one session's columns (keys at `at`, flags f): src is the client, dst the server. */
interface Sides {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  /** The server is endpoint A of the key: A->B counters are the to-client ones. */
  serverIsA: boolean;
}

/**
 * src/dst as EVE has them: src is the client. That is the initiator unless
 * the server guess says the initiator is the server (a session picked up
 * mid-stream, its first packet a reply); either way to-server counts
 * src -> dst.
 */
function sides(keys: Uint32Array, at: number, f: number): Sides {
  const family = keys[at] >>> 8;
  const serverIsA = (f & F_SERVER_IS_A) !== 0;
  const a = address(family, keys, at + 1);
  const b = address(family, keys, at + 5);
  const pa = keys[at + 9] >>> 16;
  const pb = keys[at + 9] & 0xffff;
  return serverIsA ? { src: b, srcPort: pb, dst: a, dstPort: pa, serverIsA } : { src: a, srcPort: pa, dst: b, dstPort: pb, serverIsA };
}

/**
 * The EVE records of every session in `e`, then empties it. nextId gives
 * each its flow_id.
 */
export function drainFlowRecords(e: EndedSessions, queue: number, nextId: () => number): FlowRecord[] {
  const out: FlowRecord[] = [];
  for (let k = 0; k < e.count; k++) {
    const at = k * KEY_WORDS;
    const f = e.flags[k];
    const proto = e.keys[at] & 0xff;
    const s = sides(e.keys, at, f);
    // A->B is "to server" when the server is B.
    const abToServer = !s.serverIsA;
    const pTs = abToServer ? e.packetsAB[k] : e.packetsBA[k];
    const pTc = abToServer ? e.packetsBA[k] : e.packetsAB[k];
    const bTs = abToServer ? e.bytesAB[k] : e.bytesBA[k];
    const bTc = abToServer ? e.bytesBA[k] : e.bytesAB[k];
    const reason = e.reason[k] as EndReason;
    const ports = s.srcPort !== 0 || s.dstPort !== 0;
    const app = ports ? appProtoGuess(proto, s.dstPort) : undefined;
    const rec: FlowRecord = {
      queue,
      flow_id: nextId(),
      src_ip: s.src,
      ...(ports ? { src_port: s.srcPort } : {}),
      dest_ip: s.dst,
      ...(ports ? { dest_port: s.dstPort } : {}),
      proto: PROTO_UPPER[proto],
      ...(app !== undefined ? { app_proto: app } : {}),
      flow: {
        pkts_toserver: pTs,
        pkts_toclient: pTc,
        bytes_toserver: bTs,
        bytes_toclient: bTc,
        start: iso(e.firstSeen[k]),
        end: iso(e.lastSeen[k]),
        // Whole seconds, as EVE gives it.
        age: Math.round(e.lastSeen[k] - e.firstSeen[k]),
        state: reason === EndReason.Closed ? 'closed' : (f & F_ESTABLISHED) !== 0 ? 'established' : 'new',
        reason: REASONS[reason],
        alerted: false,
        server_guess: SERVER_GUESS_NAMES[(f >> GUESS_SHIFT) & 3],
      },
    };
    if (proto === PROTO_TCP) {
      const ts = abToServer ? e.tcpAB[k] : e.tcpBA[k];
      const tc = abToServer ? e.tcpBA[k] : e.tcpAB[k];
      rec.tcp = tcpObject(ts, tc);
    }
    out.push(rec);
  }
  e.count = 0;
  return out;
}

/** Rows of the first `count` sessions of a snapshot (copyLiveSessions), made on the main thread. */
export function sessionRowsOf(snap: SessionSnapshot, count: number, queue: number): SessionRow[] {
  const rows: SessionRow[] = [];
  for (let k = 0; k < count; k++) {
    const f = snap.flags[k];
    const s = sides(snap.keys, k * KEY_WORDS, f);
    const abToServer = !s.serverIsA;
    rows.push({
      queue,
      server_ip: s.dst,
      server_port: s.dstPort,
      client_ip: s.src,
      client_port: s.srcPort,
      protocol: PROTO_NAMES[snap.keys[k * KEY_WORDS] & 0xff],
      packets_to_server: abToServer ? snap.packetsAB[k] : snap.packetsBA[k],
      bytes_to_server: abToServer ? snap.bytesAB[k] : snap.bytesBA[k],
      packets_to_client: abToServer ? snap.packetsBA[k] : snap.packetsAB[k],
      bytes_to_client: abToServer ? snap.bytesBA[k] : snap.bytesAB[k],
      first_seen: iso(snap.firstSeen[k]),
      last_seen: iso(snap.lastSeen[k]),
      server_guess: SERVER_GUESS_NAMES[(f >> GUESS_SHIFT) & 3],
      state: snap.ended[k] === 1 ? 'closed' : (f & F_ESTABLISHED) !== 0 ? 'established' : 'new',
    });
  }
  return rows;
}

/** What `nfips sessions` gets over the control socket. */
export interface SessionsAnswer {
  /** Live sessions in all the queue threads' tables. */
  total: number;
  /** Most rows asked for (per queue thread, and in all). */
  limit: number;
  rows: SessionRow[];
}

/** RFC 4180 quoting: a field with a comma, quote or line break is quoted, quotes doubled. */
export function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The rows as CSV with a header line. */
export function sessionsCsv(rows: readonly SessionRow[]): string {
  const lines = [SESSION_COLUMNS.join(',')];
  for (const r of rows) lines.push(SESSION_COLUMNS.map((c) => csvField(r[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
