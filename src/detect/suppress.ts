// Anomaly suppression list: anomalies an operator knows and accepts (the
// monitoring host's ping sweeps, a backup's burst of sessions). A suppressed
// anomaly neither alerts nor blocks; it is only counted. Independent of the
// rule file; parsed from a plain object so a config file can embed it (its
// problems are then located under the config's own JSON path): a list under
// /detection/suppress of a config document is parseSuppressions({ suppress:
// list }, file, '/detection').
//
//   { "suppress": [
//       { "signature_id": 9100104, "source": "10.0.5.0/24", "comment": "monitoring" },
//       { "source": ["192.0.2.7", "fd00::7"] },
//       { "signature_id": 9100210 } ] }
import Ajv from 'ajv';
import { describeSchemaErrors, JsonFileError, JsonProblem, parseJsonBounded } from '../config/json-file';
import { readFileBounded } from '../config/safe-file';
import { parsePrefix } from '../rules/address';
import { prefixContains } from '../rules/linear';
import { ruleWording } from '../rules/schema';
import { Prefix } from '../rules/types';

export interface Suppression {
  /** null: any signature. */
  signatureId: number | null;
  /** null: any source (and anomalies without one). */
  sources: Prefix[] | null;
  comment?: string;
}

export class SuppressionError extends JsonFileError {
  constructor(where: string, problems: JsonProblem[]) {
    super('anomaly suppression list', where, problems);
  }
}

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['suppress'],
  properties: {
    suppress: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          signature_id: { type: 'integer', minimum: 1, maximum: 4294967295 },
          source: { oneOf: [{ type: 'string' }, { type: 'array', minItems: 1, items: { type: 'string' } }] },
          comment: { type: 'string' },
        },
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: true, strict: true }).compile(SCHEMA);
const EXPECTED: Record<string, string> = {
  source: 'expected an IPv4/IPv6 address or CIDR, or a non-empty array of them',
  signature_id: 'expected a signature_id as the alerts carry it (a whole number, e.g. 9100104)',
};

interface EntryJson {
  signature_id?: number;
  source?: string | string[];
  comment?: string;
}

export class Suppressions {
  readonly entries: readonly Suppression[];
  /** Anomalies suppressed since start. */
  suppressed = 0;

  constructor(entries: readonly Suppression[] = []) {
    this.entries = entries;
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /**
   * Whether an anomaly with this signature, from this source (null: none
   * named, as for distributed floods), is suppressed. Called per finding,
   * never per packet.
   */
  matches(signatureId: number, source: string | null): boolean {
    if (this.entries.length === 0) return false;
    const addr = source === null ? null : parsePrefix(source);
    const words = addr ? Uint32Array.from(addr.words) : null;
    return this.entries.some((e) => {
      if (e.signatureId !== null && e.signatureId !== signatureId) return false;
      if (e.sources === null) return true;
      return addr !== null && words !== null && e.sources.some((p) => prefixContains(p, addr.family, words, 0));
    });
  }

  /** Counts and answers in one step, for the judges. */
  check(signatureId: number, source: string | null): boolean {
    if (!this.matches(signatureId, source)) return false;
    this.suppressed++;
    return true;
  }
}

/**
 * Validates a suppression list given as parsed JSON (or YAML). `where` names
 * it in errors (a file); `base` is its JSON pointer inside a larger document.
 */
export function parseSuppressions(doc: unknown, where: string, base = ''): Suppressions {
  if (!validate(doc)) {
    const problems = describeSchemaErrors(validate.errors ?? [], doc, ruleWording(EXPECTED)).map((p) => ({ ...p, path: `${base}${p.path}` }));
    throw new SuppressionError(where, problems);
  }
  const problems: JsonProblem[] = [];
  const entries = (doc as { suppress: EntryJson[] }).suppress.map((e, k): Suppression => {
    const at = `${base}/suppress/${k}`;
    if (e.signature_id === undefined && e.source === undefined) problems.push({ path: at, message: 'expected "signature_id", "source" or both: an entry with neither would suppress every anomaly', value: e });
    let sources: Prefix[] | null = null;
    if (e.source !== undefined) {
      const list = Array.isArray(e.source) ? e.source : [e.source];
      sources = [];
      list.forEach((s, j) => {
        const p = parsePrefix(s);
        if (p) sources!.push(p);
        else problems.push({ path: Array.isArray(e.source) ? `${at}/source/${j}` : `${at}/source`, message: 'expected an IPv4/IPv6 address or CIDR (no "!", no "*")', value: s });
      });
    }
    return { signatureId: e.signature_id ?? null, sources, ...(e.comment === undefined ? {} : { comment: e.comment }) };
  });
  if (problems.length) throw new SuppressionError(where, problems);
  return new Suppressions(entries);
}

/** Far above any real list. */
export const MAX_SUPPRESS_BYTES = 4 << 20;

export function readSuppressionFile(file: string): Suppressions {
  let text: string;
  try {
    text = readFileBounded(file, '--suppress file', { maxBytes: MAX_SUPPRESS_BYTES });
  } catch (e) {
    throw new SuppressionError(file, [{ path: '', message: `cannot read file: ${(e as Error).message}` }]);
  }
  const parsed = parseJsonBounded(text);
  if ('problem' in parsed) throw new SuppressionError(file, [parsed.problem]);
  return parseSuppressions(parsed.doc, file);
}

