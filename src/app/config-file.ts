// `--config FILE`: every `nfips run` flag in one YAML or JSON file, keys named
// like the long flags (state-dir, log-file...). Flags on the command line
// override it. Validated like the rule files: a JSON Schema (ajv), every
// problem with the file, the JSON path and what was expected; syntax errors
// with line and column. Relative paths in it are relative to the file, since
// a service's working directory is /, not where the file is.
import path from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { RunFlags } from './run-options';
import { describeSchemaErrors, JsonFileError, JsonProblem, parseJsonBounded, strictAjv } from '../config/json-file';
import { readFileBounded } from '../config/safe-file';

export const MAX_CONFIG_BYTES = 1 << 20;

type FlagKind = 'string' | 'integer' | 'boolean' | 'list' | 'path' | 'string-or-integer';

interface FlagSpec {
  kind: FlagKind;
  choices?: readonly string[];
}

/**
 * Every `run` flag a config file may hold, by its long name. A flag added to
 * `run` belongs here too (test/unit/config-file.test.ts compares this table
 * with `nfips run --help`).
 */
export const CONFIG_FLAGS: Readonly<Record<string, FlagSpec>> = {
  rules: { kind: 'path' },
  'rules-format': { kind: 'string', choices: ['auto', 'native', '2columns'] },
  queues: { kind: 'string-or-integer' },
  hook: { kind: 'string', choices: ['forward', 'input', 'both'] },
  table: { kind: 'string', choices: ['mangle', 'filter'] },
  mark: { kind: 'string' },
  'reject-mark': { kind: 'string' },
  'fail-closed': { kind: 'boolean' },
  exclude: { kind: 'list' },
  ipv6: { kind: 'boolean' },
  iptables: { kind: 'string' },
  ip6tables: { kind: 'string' },
  'log-rate': { kind: 'integer' },
  'control-socket': { kind: 'path' },
  'watch-rules': { kind: 'boolean' },
  'verdict-mode': { kind: 'string', choices: ['repeat', 'accept'] },
  'log-file': { kind: 'path' },
  'log-level': { kind: 'string', choices: ['error', 'warn', 'info', 'debug'] },
  'stats-interval': { kind: 'integer' },
  'copy-range': { kind: 'integer' },
  'queue-maxlen': { kind: 'integer' },
  'batch-size': { kind: 'integer' },
  'rcvbuf-mb': { kind: 'integer' },
  mode: { kind: 'string', choices: ['prevent', 'detect', 'off'] },
  model: { kind: 'path' },
  'window-seconds': { kind: 'integer' },
  'step-seconds': { kind: 'integer' },
  'scoring-threads': { kind: 'integer' },
  'record-features': { kind: 'path' },
  allow: { kind: 'list' },
  'block-ttl': { kind: 'integer' },
  'block-max-ttl': { kind: 'integer' },
  'max-blocks': { kind: 'integer' },
  'state-dir': { kind: 'path' },
  learn: { kind: 'string-or-integer' },
  malformed: { kind: 'string', choices: ['drop', 'policy'] },
  'rules-mode': { kind: 'string', choices: ['enforce', 'log'] },
  suppress: { kind: 'path' },
  ipset: { kind: 'string' },
  'metrics-listen': { kind: 'string' },
  'flow-log': { kind: 'string', choices: ['on', 'off'] },
  'flow-log-rate': { kind: 'integer' },
  'crowdsec-url': { kind: 'string' },
  'crowdsec-bouncer-key-file': { kind: 'path' },
  'crowdsec-interval': { kind: 'string-or-integer' },
  'crowdsec-machine-id': { kind: 'string' },
  'crowdsec-password-file': { kind: 'path' },
  'crowdsec-max-decisions': { kind: 'integer' },
  // nfips watch only (run refuses them, and watch refuses run's queue flags)
  iface: { kind: 'list' },
  nflog: { kind: 'list' },
  filter: { kind: 'string' },
  workers: { kind: 'integer' },
  snaplen: { kind: 'integer' },
  'capture-buffer-mb': { kind: 'integer' },
  promisc: { kind: 'boolean' },
  block: { kind: 'boolean' },
  direction: { kind: 'string', choices: ['both', 'in'] },
};

function schemaFor(spec: FlagSpec): Record<string, unknown> {
  switch (spec.kind) {
    case 'string':
      return spec.choices ? { type: 'string', enum: [...spec.choices] } : { type: 'string' };
    case 'path':
      return { type: 'string' };
    case 'integer':
      return { type: 'integer' };
    case 'boolean':
      return { type: 'boolean' };
    case 'list':
      return { type: 'array', items: { type: 'string' } };
    case 'string-or-integer':
      // Integers are made strings before validation (queues: 0, learn: 3600).
      return { type: 'string' };
  }
}

export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(Object.entries(CONFIG_FLAGS).map(([k, v]) => [k, schemaFor(v)])),
};

const validate = strictAjv().compile(CONFIG_SCHEMA);

export class ConfigFileError extends JsonFileError {
  constructor(file: string, problems: JsonProblem[]) {
    super('--config file', file, problems);
  }
}

function camel(key: string): string {
  return key.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function fail(file: string, problems: JsonProblem[]): never {
  throw new ConfigFileError(file, problems);
}

/** YAML (or JSON, which YAML reads too, but a .json file gets JSON's own errors) to a plain value. */
function parse(file: string, text: string): unknown {
  if (file.endsWith('.json')) {
    const r = parseJsonBounded(text);
    if ('problem' in r) fail(file, [r.problem]);
    // JSON.parse keeps the last of two equal keys; a key given twice is refused here as in YAML.
    const dup = parseDocument(text, { uniqueKeys: true }).errors.find((e) => e.code === 'DUPLICATE_KEY');
    if (dup) {
      const at = dup.linePos?.[0];
      fail(file, [{ path: '', message: `a key given twice${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${(dup.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}` }]);
    }
    return r.doc;
  }
  // uniqueKeys: a key given twice is a mistake, as a flag given twice is.
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    fail(file, doc.errors.map((e) => {
      const at = e.linePos?.[0];
      // prettyErrors appends the place and a snippet to the message: keep our own wording of the place.
      const what = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      return { path: '', message: `not valid YAML${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${what}` };
    }));
  }
  // An empty file is an empty configuration.
  if (doc.contents === null) return {};
  if (!isMap(doc.contents)) fail(file, [{ path: '', message: 'expected a mapping of flag names to values, e.g. "state-dir: /var/lib/nfips"' }]);
  return doc.toJS({ maxAliasCount: 100 }) as unknown;
}

/** Where each flag came from, for error messages: flag name to "FILE at /key". */
export type ConfigOrigins = ReadonlyMap<string, string>;

export interface ConfigFile {
  flags: RunFlags;
  origins: ConfigOrigins;
}

/** Reads, validates and converts a config file to run flags (camelCase, like yargs gives them). */
export function readConfigFile(file: string): ConfigFile {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileBounded(abs, '--config file', { maxBytes: MAX_CONFIG_BYTES });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    fail(abs, [{ path: '', message: err.code === 'ENOENT' ? 'no such file' : `cannot read file: ${err.message}` }]);
  }
  const doc = parse(abs, text);
  if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) {
    const d = doc as Record<string, unknown>;
    for (const [k, spec] of Object.entries(CONFIG_FLAGS)) if (spec.kind === 'string-or-integer' && Number.isInteger(d[k])) d[k] = String(d[k]);
  }
  if (!validate(doc)) fail(abs, describeSchemaErrors(validate.errors ?? [], doc).map((p) => (p.message === 'unknown field' ? { ...p, message: 'unknown field: not a flag of "nfips run" (keys are the long flag names, e.g. state-dir)' } : p)));
  const flags: Record<string, unknown> = {};
  const origins = new Map<string, string>();
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const spec = CONFIG_FLAGS[key]!;
    let v: unknown = value;
    if (spec.kind === 'path' && typeof value === 'string' && value !== '') v = path.resolve(path.dirname(abs), value);
    flags[camel(key)] = v;
    origins.set(key, `${abs} at /${key}`);
  }
  return { flags: flags as RunFlags, origins };
}

/**
 * Merges: flags given on the command line win over the file's. `given` holds
 * only what the command line set (no defaults), so an unset flag never hides
 * the file's value.
 */
export function mergeConfig(file: ConfigFile | null, given: RunFlags): { flags: RunFlags; origins: ConfigOrigins } {
  if (!file) return { flags: given, origins: new Map() };
  const origins = new Map(file.origins);
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    origins.delete(k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`));
  }
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as RunFlags;
  return { flags: { ...file.flags, ...defined }, origins };
}

/** Adds where a value came from to each "invalid --flag ..." line about a flag the file set. */
export function locateProblems(message: string, origins: ConfigOrigins): string {
  if (origins.size === 0) return message;
  return message
    .split('\n')
    .map((line) => {
      const m = /^invalid --([a-z0-9-]+)/.exec(line);
      const where = m ? origins.get(m[1]!) : undefined;
      return where ? `${line} (set in ${where})` : line;
    })
    .join('\n');
}
