// The rule set after validation: plain data (structured-clone safe) so the
// main thread can hand it to every queue thread.

export type RuleAction = 'accept' | 'drop' | 'reject' | 'alert';
export type DefaultPolicy = 'accept' | 'drop';
export type RuleFormat = 'native' | '2columns';

/** An address prefix as 4 big-endian words; IPv4 uses word 0 only. */
export interface Prefix {
  family: 4 | 6;
  words: [number, number, number, number];
  bits: number;
}

export interface AddressMatch {
  negate: boolean;
  prefixes: Prefix[];
}

export interface PortRange {
  lo: number;
  hi: number;
}

/** TCP flags that must be set (mask & flags === set). */
export interface TcpFlagsMatch {
  mask: number;
  set: number;
}

export const FLOW_NEW = 1;
export const FLOW_ESTABLISHED = 2;

export interface Rule {
  id: string;
  description?: string;
  action: RuleAction;
  /** IP protocol number, or null for any. */
  protocol: number | null;
  source: AddressMatch | null;
  destination: AddressMatch | null;
  sport: PortRange[] | null;
  dport: PortRange[] | null;
  tcpFlags: TcpFlagsMatch | null;
  icmpType: number | null;
  icmpCode: number | null;
  /** Interface names; resolved to ifindexes when a rule set is activated. */
  in: string | null;
  out: string | null;
  /** Netfilter hook number (NF_INET_LOCAL_IN = 1, NF_INET_FORWARD = 2), or null. */
  hook: number | null;
  family: 4 | 6 | null;
  /** Bit set of FLOW_NEW / FLOW_ESTABLISHED, or null for any. */
  state: number | null;
  /** false: loaded and counted, but never matches (the compiled matcher never even tries it). */
  enabled: boolean;
  /** Whether drop/reject/accept events are logged for this rule (alerts always are). */
  log: boolean;
  /** alert.severity of the rule's events (1 highest .. 4), or null for nfips' default. */
  severity: number | null;
  /** alert.signature_id of the rule's events, or null to derive it from the rule's position. */
  sid: number | null;
}

export interface RuleSet {
  lock: boolean;
  default: DefaultPolicy;
  rules: Rule[];
  /** Where it came from, for logs. */
  origin: { file: string; format: RuleFormat; sha256: string };
}

/** Whether a rule's events are logged when the file does not say: drops and rejects are, accepts are not. */
export function logsByDefault(action: RuleAction): boolean {
  return action !== 'accept';
}

/** A rule that matches everything; fields are then narrowed by the loaders. */
export function anyRule(id: string, action: RuleAction): Rule {
  return { id, action, protocol: null, source: null, destination: null, sport: null, dport: null, tcpFlags: null, icmpType: null, icmpCode: null, in: null, out: null, hook: null, family: null, state: null, enabled: true, log: logsByDefault(action), severity: null, sid: null };
}
