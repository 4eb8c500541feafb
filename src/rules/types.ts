// The rule set after validation: plain data (structured-clone safe) so the
// main thread can hand it to every queue thread.

export type RuleAction = 'accept' | 'drop';
export type DefaultPolicy = 'accept' | 'drop';

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

export interface Rule {
  id: string;
  description?: string;
  action: RuleAction;
  /** IP protocol number, or null for any. */
  protocol: number | null;
  source: AddressMatch | null;
  destination: AddressMatch | null;
  dport: PortRange[] | null;
}

export interface RuleSet {
  lock: boolean;
  default: DefaultPolicy;
  rules: Rule[];
  /** Where it came from, for logs. */
  origin: { file: string; format: 'native' | '2columns'; sha256: string };
}
