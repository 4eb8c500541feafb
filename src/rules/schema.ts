// JSON Schema of the native rule file. Structure and types live here; values
// that need parsing (addresses, port ranges) are checked by formats whose
// messages say what was expected.
import Ajv, { ErrorObject } from 'ajv';
import { parsePrefix } from './address';
import { PROTOCOL_NUMBERS } from './protocols';

const addressText = { type: 'string', format: 'nfips-address' } as const;
const portItem = {
  oneOf: [
    { type: 'integer', minimum: 0, maximum: 65535 },
    { type: 'string', format: 'nfips-port' },
  ],
} as const;

export const NATIVE_SCHEMA = {
  $id: 'https://nfips.invalid/schema/rules-native.json',
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  properties: {
    lock: { type: 'boolean' },
    default: { enum: ['accept', 'drop'] },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['action'],
        properties: {
          id: { type: 'string', minLength: 1, maxLength: 128 },
          description: { type: 'string' },
          action: { enum: ['accept', 'drop'] },
          protocol: {
            oneOf: [
              { type: 'string', enum: ['any', ...Object.keys(PROTOCOL_NUMBERS)] },
              { type: 'integer', minimum: 0, maximum: 255 },
            ],
          },
          source: { oneOf: [addressText, { type: 'array', minItems: 1, items: addressText }] },
          destination: { oneOf: [addressText, { type: 'array', minItems: 1, items: addressText }] },
          dport: { oneOf: [portItem, { type: 'array', minItems: 1, items: portItem }] },
        },
      },
    },
  },
} as const;

const FORMAT_EXPECTED: Record<string, string> = {
  'nfips-address': 'expected "*", an IPv4/IPv6 address or CIDR, optionally with a leading "!"',
  'nfips-port': 'expected a port 0-65535 or a range "lo-hi" with lo <= hi',
};

function validAddress(s: string): boolean {
  const t = s.startsWith('!') ? s.slice(1) : s;
  return t === '*' || parsePrefix(t) !== null;
}

export function parsePortText(s: string): { lo: number; hi: number } | null {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  if (!m) return null;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535 || lo > hi) return null;
  return { lo, hi };
}

const ajv = new Ajv({ allErrors: true, strict: true });
ajv.addFormat('nfips-address', { type: 'string', validate: validAddress });
ajv.addFormat('nfips-port', { type: 'string', validate: (s: string) => parsePortText(s) !== null });

export const validateNative = ajv.compile(NATIVE_SCHEMA);

/**
 * Turns ajv's errors into one readable line per problem. oneOf produces an
 * error per branch plus a summary; the summary says it best when no branch
 * gave a format error.
 */
export function describeAjvErrors(errors: ErrorObject[]): { path: string; message: string }[] {
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errors) {
    const list = byPath.get(e.instancePath) ?? [];
    list.push(e);
    byPath.set(e.instancePath, list);
  }
  const out: { path: string; message: string }[] = [];
  for (const [path, list] of byPath) {
    const format = list.find((e) => e.keyword === 'format');
    if (format) {
      out.push({ path, message: FORMAT_EXPECTED[String(format.params.format)] ?? String(format.message) });
      continue;
    }
    const field = fieldOf(path);
    if (field in FIELD_EXPECTED) {
      out.push({ path, message: FIELD_EXPECTED[field] });
      continue;
    }
    for (const e of list) {
      if (e.keyword === 'additionalProperties') {
        out.push({ path: `${path}/${String(e.params.additionalProperty)}`, message: 'unknown field' });
      } else if (e.keyword === 'enum') {
        out.push({ path, message: `expected one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` });
      } else if (e.keyword === 'required') {
        out.push({ path, message: `missing required field "${String(e.params.missingProperty)}"` });
      } else {
        out.push({ path, message: e.message ?? e.keyword });
      }
    }
  }
  return dedupe(out);
}

/** Fields whose schema is a oneOf: one plain sentence beats ajv's per-branch errors. */
const FIELD_EXPECTED: Record<string, string> = {
  protocol: 'expected a protocol name (tcp, udp, icmp, icmpv6, sctp, gre, esp, ...), a number 0-255, or "any"',
  source: 'expected an address/CIDR string or a non-empty array of them',
  destination: 'expected an address/CIDR string or a non-empty array of them',
  dport: 'expected a port 0-65535, a "lo-hi" range string, or a non-empty array of them',
  sport: 'expected a port 0-65535, a "lo-hi" range string, or a non-empty array of them',
};

/** The field a JSON pointer ends in, looking through array indices. */
function fieldOf(path: string): string {
  return path.split('/').filter((s) => s !== '' && !/^\d+$/.test(s)).pop() ?? '';
}

function dedupe<T extends { path: string; message: string }>(list: T[]): T[] {
  const seen = new Set<string>();
  return list.filter((x) => {
    const k = `${x.path}\u0000${x.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
