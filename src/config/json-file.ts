// Shared by the files nfips reads and writes (rules, model, block state,
// config, suppression list, learning state): problems reported as file + JSON
// pointer + what was expected, a strict ajv, and an atomic write (temp file,
// fsync, rename) so a crash never leaves half a file.
import Ajv, { ErrorObject } from 'ajv';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** One problem in a file nfips reads (rules, model, state, config, suppression list). */
export interface JsonProblem {
  /** JSON pointer into the file, e.g. /scaler/std/3; '' is the document. */
  path: string;
  /** What was expected there, or what is wrong. */
  message: string;
  /** The value found at path, when showing it helps. */
  value?: unknown;
}

/**
 * The one way file problems read: a header naming the file and the count,
 * then a line per problem with its JSON pointer, what was expected and the
 * value found, then what to do about it, if anything.
 */
export function formatJsonProblems(what: string, file: string, problems: readonly JsonProblem[], hint?: string): string {
  const n = problems.length;
  const lines = problems.map((p) => `  ${file}: at ${p.path === '' ? '(root)' : p.path}: ${p.message}${p.value === undefined ? '' : ` (got ${previewJson(p.value, 200)})`}`);
  return [`invalid ${what} ${file}: ${n} problem${n === 1 ? '' : 's'}`, ...lines, ...(hint === undefined ? [] : [`(${hint})`])].join('\n');
}

/** A file that cannot be used as it is; subclasses only name the kind of file. */
export class JsonFileError extends Error {
  /** Where the first problem is; the message lists them all. */
  readonly jsonPath: string;

  constructor(
    /** The kind of file, as the message names it: "rules file", "model file". */
    readonly what: string,
    readonly file: string,
    readonly problems: readonly JsonProblem[],
    hint?: string,
  ) {
    super(formatJsonProblems(what, file, problems, hint));
    this.name = new.target.name;
    this.jsonPath = problems[0]?.path ?? '';
  }
}

/** A value as short JSON for an error message; never throws, even for a value too deep to print. */
export function previewJson(v: unknown, max = 80): string {
  let s: string;
  try {
    s = typeof v === 'number' && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    s = Array.isArray(v) ? '[...]' : typeof v === 'object' && v !== null ? '{...}' : String(v);
  }
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/** Deepest nesting of arrays and objects accepted in a JSON input; nfips' own files nest a handful of levels. */
export const MAX_JSON_DEPTH = 64;

function pointerPart(key: string | number): string {
  return `/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

/**
 * Where `text` first nests deeper than maxDepth arrays and objects, as a JSON
 * pointer to the container that goes too deep, or null. A flat scan, so a
 * file nested 200,000 deep gets a located error instead of exhausting the
 * stack of whatever walks the parsed value next (validation, messages).
 */
export function jsonTooDeep(text: string, maxDepth = MAX_JSON_DEPTH): string | null {
  // Per open container: the array index, or the object key being read.
  const stack: { array: boolean; key: string | number }[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const top = stack.at(-1);
      if (expectKey && top && !top.array) {
        const literal = text.slice(i, j + 1);
        try {
          top.key = JSON.parse(literal) as string;
        } catch {
          top.key = literal.slice(1, -1);
        }
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      if (stack.length >= maxDepth) return stack.map((f) => pointerPart(f.key)).join('');
      stack.push({ array: c === 0x5b, key: c === 0x5b ? 0 : '' });
      expectKey = c === 0x7b;
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      const top = stack.at(-1);
      if (top?.array) top.key = Number(top.key) + 1;
      else if (top) expectKey = true;
    }
  }
  return null;
}

/**
 * Parses a JSON input with nfips' limits: a located problem (JSON pointer and
 * what was expected) for nesting deeper than MAX_JSON_DEPTH or invalid JSON.
 */
export function parseJsonBounded(text: string, maxDepth = MAX_JSON_DEPTH): { doc: unknown } | { problem: JsonProblem } {
  const deep = jsonTooDeep(text, maxDepth);
  if (deep !== null) return { problem: { path: deep, message: `nested deeper than ${maxDepth} levels of arrays and objects (expected at most ${maxDepth})` } };
  try {
    return { doc: JSON.parse(text) as unknown };
  } catch (e) {
    return { problem: { path: '', message: describeJsonSyntaxError(text, (e as Error).message) } };
  }
}

/** 1-based line and column of a character offset, as editors count them. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lastNl = before.lastIndexOf('\n');
  return { line: before.split('\n').length, column: before.length - lastNl };
}

/**
 * V8 says "... in JSON at position 1234", which nobody can find in an
 * editor: the same error at line and column. Input that simply ends too
 * early is placed at its end.
 */
export function describeJsonSyntaxError(text: string, v8Message: string): string {
  const m = /\s*(?:in JSON )?at position (\d+)(?: \(line \d+ column \d+\))?/.exec(v8Message);
  const offset = m ? Number(m[1]) : /end of JSON input/.test(v8Message) ? text.length : firstJsonError(text);
  const what = (m ? v8Message.replace(m[0], '') : v8Message).replace(/^SyntaxError: /, '').trim();
  if (offset === null) return `not valid JSON: ${what}`;
  const { line, column } = lineColumn(text, offset);
  return `not valid JSON at line ${line}, column ${column}: ${what}`;
}

/**
 * Offset of the first character that makes `text` invalid JSON, or null.
 * For V8's messages that give no position ("Unexpected token 'o', ... is not
 * valid JSON": an unquoted value, a single quote, a comment). Iterative, so
 * nesting depth costs no stack; only run on text JSON.parse already refused.
 */
export function firstJsonError(text: string): number | null {
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  // After a value: what may follow inside each open container.
  const stack: ('{' | '[')[] = [];
  const value = (): boolean => {
    ws();
    const c = text[i];
    if (c === '"') return str();
    if (c === '{' || c === '[') return true;
    const lit = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (!lit) return false;
    i += lit[0].length;
    return true;
  };
  const str = (): boolean => {
    i++;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return false;
          i += 6;
          continue;
        }
        if (!e || !'"\\/bfnrt'.includes(e)) return false;
        i += 2;
        continue;
      }
      i++;
    }
    return false;
  };
  for (;;) {
    if (!value()) return Math.min(i, n);
    // Open containers: an empty one may close at once.
    while (text[i] === '{' || text[i] === '[') {
      const open = text[i] as '{' | '[';
      i++;
      ws();
      if (text[i] === (open === '{' ? '}' : ']')) {
        i++;
        break;
      }
      stack.push(open);
      if (open === '{') {
        if (text[i] !== '"' || !str()) return Math.min(i, n);
        ws();
        if (text[i] !== ':') return Math.min(i, n);
        i++;
      }
      if (!value()) return Math.min(i, n);
    }
    // Close what ends here, then expect a comma or the end.
    for (;;) {
      ws();
      const top = stack[stack.length - 1];
      if (top === undefined) {
        return i < n ? i : null;
      }
      if (text[i] === (top === '{' ? '}' : ']')) {
        stack.pop();
        i++;
        continue;
      }
      if (text[i] !== ',') return Math.min(i, n);
      i++;
      if (top === '{') {
        ws();
        if (text[i] !== '"' || !str()) return Math.min(i, n);
        ws();
        if (text[i] !== ':') return Math.min(i, n);
        i++;
      }
      break;
    }
  }
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** allErrors + strict, with the 'nfips-iso-date' format. */
export function strictAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajv.addFormat('nfips-iso-date', { type: 'string', validate: (s: string) => ISO_DATE.test(s) && !Number.isNaN(Date.parse(s)) });
  return ajv;
}

const TYPE_NAMES: Record<string, string> = {
  number: 'a number',
  integer: 'an integer',
  string: 'a string',
  array: 'an array',
  object: 'an object',
  boolean: 'true or false (a JSON boolean)',
};

/** What the files' own string formats expect, for formats shared by several kinds of file. */
const FORMAT_EXPECTED: Record<string, string> = {
  'nfips-iso-date': 'expected an ISO 8601 date-time such as 2024-05-01T12:00:00.000Z',
};

/** What a kind of file says instead of ajv's wording. */
export interface SchemaWording {
  /** Per string format of its schema. */
  formats?: Readonly<Record<string, string>>;
  /** Per JSON pointer: one plain sentence for a field whose oneOf would give an error per branch. */
  at?: (pointer: string) => string | undefined;
}

function expectedOneOf(values: readonly unknown[]): string {
  const shown = values.map((v) => JSON.stringify(v));
  return shown.length <= 2 ? `expected ${shown.join(' or ')}` : `expected one of ${shown.join(', ')}`;
}

/**
 * ajv says "must be > 0"; operators fix files faster from "expected a number
 * > 0 (got 0)". Errors are taken per place: a format error or the file's
 * own sentence for that place says it best, else one line per error.
 */
export function describeSchemaErrors(errors: readonly ErrorObject[], doc: unknown, wording: SchemaWording = {}): JsonProblem[] {
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errors) {
    const list = byPath.get(e.instancePath);
    if (list) list.push(e);
    else byPath.set(e.instancePath, [e]);
  }
  const out: JsonProblem[] = [];
  const seen = new Set<string>();
  const add = (at: string, message: string): void => {
    const key = `${at}\u0000${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    const value = pointerGet(doc, at);
    // The whole document is no useful "got".
    out.push(at === '' || value === undefined ? { path: at, message } : { path: at, message, value });
  };
  for (const [at, list] of byPath) {
    const format = list.find((e) => e.keyword === 'format');
    if (format) {
      const name = String(format.params.format);
      add(at, wording.formats?.[name] ?? FORMAT_EXPECTED[name] ?? `expected a string in the ${name} format`);
      continue;
    }
    const said = wording.at?.(at);
    if (said !== undefined) {
      add(at, said);
      continue;
    }
    for (const e of list) {
      switch (e.keyword) {
        case 'required':
          add(at, `missing required field "${String(e.params.missingProperty)}"`);
          break;
        case 'additionalProperties':
          add(`${at}/${String(e.params.additionalProperty).replace(/~/g, '~0').replace(/\//g, '~1')}`, 'unknown field');
          break;
        case 'type':
          add(at, `expected ${String(e.params.type).split(',').map((t) => TYPE_NAMES[t] ?? t).join(' or ')}`);
          break;
        case 'enum':
          add(at, expectedOneOf(e.params.allowedValues as unknown[]));
          break;
        case 'minimum':
        case 'maximum':
        case 'exclusiveMinimum':
        case 'exclusiveMaximum':
          add(at, `expected a number ${String(e.params.comparison)} ${String(e.params.limit)}`);
          break;
        case 'minItems':
          add(at, `expected at least ${String(e.params.limit)} item(s)`);
          break;
        default:
          add(at, e.message ?? e.keyword);
      }
    }
  }
  return out;
}

/** The value at a JSON pointer (RFC 6901) in `doc`, or undefined. */
export function pointerGet(doc: unknown, pointer: string): unknown {
  let cur = doc;
  for (const raw of pointer.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
}

/** Replaces `file` with `text` in one rename: readers see the old file or the new one, never a mix. */
export function writeFileAtomic(file: string, text: string, mode = 0o644): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', mode);
    writeFileSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, file);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // never created or already renamed
    }
    throw e;
  }
}
