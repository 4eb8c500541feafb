// JSON Schema of the native rule file. Structure and types live here; values
// that need parsing (addresses, port ranges) are checked by formats whose
// messages say what was expected.
import Ajv from 'ajv';
import { SchemaWording } from '../config/json-file';
import { TCP_FLAG_NAMES } from '../packet/decoded';
import { parsePrefix } from './address';
import { PROTOCOL_NUMBERS } from './protocols';

/** Linux interface names: up to 15 characters, no slash or whitespace. */
const IFNAME_PATTERN = '^[^/\\s]{1,15}$';
const TCP_FLAG_BITS: Record<string, number> = Object.fromEntries(TCP_FLAG_NAMES);

const addressText = { type: 'string', format: 'nfips-address' } as const;
const addressField = { oneOf: [addressText, { type: 'array', minItems: 1, items: addressText }] } as const;
const portItem = {
  oneOf: [
    { type: 'integer', minimum: 0, maximum: 65535 },
    { type: 'string', format: 'nfips-port' },
  ],
} as const;
const portField = { oneOf: [portItem, { type: 'array', minItems: 1, items: portItem }] } as const;
const stateName = { enum: ['new', 'established'] } as const;
/** A var entry: an address or a port, never a reference or a negation (load.ts decides which kind of set a var is). */
const varItem = {
  oneOf: [
    { type: 'integer', minimum: 0, maximum: 65535 },
    { type: 'string', format: 'nfips-var-item' },
  ],
} as const;

/** Highest sid a rule file may give; nfips' own signature ids start above it (lock, default policy, rule positions, anomalies). */
export const MAX_RULE_SID = 999_997;

export const NATIVE_SCHEMA = {
  $id: 'https://nfips.invalid/schema/rules-native.json',
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  properties: {
    lock: { type: 'boolean' },
    default: { enum: ['accept', 'drop'] },
    vars: { type: 'object', additionalProperties: { type: 'array', minItems: 1, items: varItem } },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['action'],
        properties: {
          id: { type: 'string', minLength: 1, maxLength: 128 },
          description: { type: 'string' },
          action: { enum: ['accept', 'drop', 'reject', 'alert'] },
          protocol: {
            oneOf: [
              { type: 'string', enum: ['any', ...Object.keys(PROTOCOL_NUMBERS)] },
              { type: 'integer', minimum: 0, maximum: 255 },
            ],
          },
          source: addressField,
          destination: addressField,
          sport: portField,
          dport: portField,
          tcpFlags: { type: 'string', format: 'nfips-tcp-flags' },
          icmpType: { type: 'integer', minimum: 0, maximum: 255 },
          icmpCode: { type: 'integer', minimum: 0, maximum: 255 },
          in: { type: 'string', pattern: IFNAME_PATTERN },
          out: { type: 'string', pattern: IFNAME_PATTERN },
          hook: { enum: ['forward', 'input'] },
          family: { enum: ['ipv4', 'ipv6'] },
          state: { oneOf: [stateName, { type: 'array', minItems: 1, uniqueItems: true, items: stateName }] },
          enabled: { type: 'boolean' },
          log: { type: 'boolean' },
          severity: { type: 'integer', minimum: 1, maximum: 4 },
          sid: { type: 'integer', minimum: 1, maximum: MAX_RULE_SID },
        },
      },
    },
  },
} as const;

/** The rules.json of the 2columnS project, as it installs it. */
export const TWOCOLUMNS_SCHEMA = {
  $id: 'https://nfips.invalid/schema/rules-2columns.json',
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  properties: {
    lock: { type: 'string', pattern: '^[Tt][Rr][Uu][Ee]$|^[Ff][Aa][Ll][Ss][Ee]$' },
    default: { type: 'string' },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['source', 'destination', 'port', 'protocol', 'action'],
        properties: {
          source: { type: 'string', format: 'nfips-2columns-address' },
          destination: { type: 'string', format: 'nfips-2columns-address' },
          port: { type: 'integer', minimum: 0, maximum: 65535 },
          protocol: { type: 'integer', minimum: 0, maximum: 255 },
          action: { enum: [0, 1] },
        },
      },
    },
  },
} as const;

const FORMAT_EXPECTED: Record<string, string> = {
  'nfips-address': 'expected "*", an IPv4/IPv6 address or CIDR, or "$NAME" of an address var, optionally with a leading "!"',
  'nfips-port': 'expected a port 0-65535, a range "lo-hi" with lo <= hi, or "$NAME" of a port var',
  'nfips-var-item': 'expected an IPv4/IPv6 address or CIDR, "*", a port 0-65535 or a port range "lo-hi" (vars hold no "!" and no other var)',
  'nfips-tcp-flags': 'expected a comma list of SYN, ACK, FIN, RST, PSH, URG, ECE, CWR, each optionally prefixed with "!" (must be clear)',
  'nfips-2columns-address': 'expected an exact dotted-quad IPv4 address or "*" (2columnS format)',
};

/** "$NAME": a var of the file's `vars`, resolved by load.ts. */
export const VAR_REF = /^\$([A-Za-z_][A-Za-z0-9_]{0,63})$/;
export const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

function validAddress(s: string): boolean {
  const t = s.startsWith('!') ? s.slice(1) : s;
  return t === '*' || VAR_REF.test(t) || parsePrefix(t) !== null;
}

export function parsePortText(s: string): { lo: number; hi: number } | null {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  if (!m) return null;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535 || lo > hi) return null;
  return { lo, hi };
}

/** "SYN,!ACK" -> mask/set over the TCP flag bits; null if malformed or contradictory. */
export function parseTcpFlags(text: string): { mask: number; set: number } | null {
  let mask = 0;
  let set = 0;
  for (const raw of text.split(',')) {
    const t = raw.trim().toUpperCase();
    const clear = t.startsWith('!');
    const bit = TCP_FLAG_BITS[clear ? t.slice(1) : t];
    if (bit === undefined || mask & bit) return null;
    mask |= bit;
    if (!clear) set |= bit;
  }
  return { mask, set };
}

const ajv = new Ajv({ allErrors: true, strict: true });
ajv.addFormat('nfips-address', { type: 'string', validate: validAddress });
ajv.addFormat('nfips-port', { type: 'string', validate: (s: string) => VAR_REF.test(s) || parsePortText(s) !== null });
ajv.addFormat('nfips-var-item', { type: 'string', validate: (s: string) => s === '*' || parsePrefix(s) !== null || parsePortText(s) !== null });
ajv.addFormat('nfips-tcp-flags', { type: 'string', validate: (s: string) => parseTcpFlags(s) !== null });
ajv.addFormat('nfips-2columns-address', { type: 'string', validate: (s: string) => s === '*' || (/^\d{1,3}(\.\d{1,3}){3}$/.test(s) && parsePrefix(s) !== null) });

export const validateNative = ajv.compile(NATIVE_SCHEMA);
export const validate2Columns = ajv.compile(TWOCOLUMNS_SCHEMA);

/**
 * How rule-file problems are worded: the rule formats, and one plain sentence
 * for each field whose schema is a oneOf (ajv gives an error per branch and a
 * summary; the field's sentence says it best). `fieldExpected` is by field name.
 */
export function ruleWording(fieldExpected: Readonly<Record<string, string>>): SchemaWording {
  return {
    formats: FORMAT_EXPECTED,
    at: (pointer) => {
      // Under /vars/NAME the field is the user's var name: the item is what matters.
      const field = /^\/vars\/[^/]+\/\d+$/.test(pointer) ? 'vars item' : fieldOf(pointer);
      return Object.hasOwn(fieldExpected, field) ? fieldExpected[field] : undefined;
    },
  };
}

/** Fields whose schema is a oneOf: one plain sentence beats ajv's per-branch errors. */
export const NATIVE_FIELD_EXPECTED: Record<string, string> = {
  protocol: 'expected a protocol name (tcp, udp, icmp, icmpv6, sctp, gre, esp, ...), a number 0-255, or "any"',
  source: 'expected an address/CIDR string or "$NAME" of an address var, or a non-empty array of them',
  destination: 'expected an address/CIDR string or "$NAME" of an address var, or a non-empty array of them',
  dport: 'expected a port 0-65535, a "lo-hi" range string or "$NAME" of a port var, or a non-empty array of them',
  state: 'expected "new", "established", or a non-empty array of them',
  lock: 'expected true or false (a JSON boolean)',
  sport: 'expected a port 0-65535, a "lo-hi" range string or "$NAME" of a port var, or a non-empty array of them',
  'vars item': 'expected an IPv4/IPv6 address or CIDR, "*", a port 0-65535 or a port range "lo-hi"',
};

export const TWOCOLUMNS_FIELD_EXPECTED: Record<string, string> = {
  lock: 'expected "true" or "false" (any case)',
  port: 'expected the destination port 0-65535 (0 means any)',
  protocol: 'expected an IP protocol number 0-255 (250 means any)',
  action: 'expected 0 (accept) or 1 (drop)',
};

/** The field a JSON pointer ends in, looking through array indices. */
function fieldOf(path: string): string {
  return path.split('/').filter((s) => s !== '' && !/^\d+$/.test(s)).pop() ?? '';
}
