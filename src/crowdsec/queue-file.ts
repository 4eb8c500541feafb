// The publisher's queue file (<state-dir>/crowdsec-queue.json): alerts not
// yet sent and the decisions published, checked field by field on load with
// the project's file helpers, so a damaged or hand-edited file is reported
// with its JSON pointer instead of being half used. Pure but for the read.
import { makeTarget } from '../blocks/block';
import { JsonFileError, JsonProblem, parseJsonBounded } from '../config/json-file';
import { readFileBounded } from '../config/safe-file';
import type { PendingAlert } from './alert';

export const QUEUE_FORMAT = 'nfips-crowdsec-queue';
/** 1,000 alerts of a few hundred bytes each, and the published list: far below this. */
const MAX_QUEUE_BYTES = 16 << 20;

export interface QueueDoc {
  format: string;
  version: number;
  pending: PendingAlert[];
  /** "value decision-scenario" -> epoch ms its decision ends. */
  published: [string, number][];
}

export class QueueFileError extends JsonFileError {}

/** null when there is no file; throws QueueFileError (or the read's error) otherwise. */
export function readQueueFile(file: string): QueueDoc | null {
  let text: string;
  try {
    text = readFileBounded(file, 'crowdsec queue file', { maxBytes: MAX_QUEUE_BYTES });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const parsed = parseJsonBounded(text);
  if ('problem' in parsed) throw new QueueFileError('crowdsec queue file', file, [parsed.problem]);
  const problems = checkQueueDoc(parsed.doc);
  if (problems.length) throw new QueueFileError('crowdsec queue file', file, problems);
  return parsed.doc as QueueDoc;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v);

export function checkQueueDoc(doc: unknown): JsonProblem[] {
  const out: JsonProblem[] = [];
  if (!isObj(doc)) return [{ path: '', message: 'expected an object', value: doc }];
  if (doc.format !== QUEUE_FORMAT) out.push({ path: '/format', message: `expected "${QUEUE_FORMAT}"`, value: doc.format });
  if (doc.version !== 1) out.push({ path: '/version', message: 'expected 1', value: doc.version });
  if (!Array.isArray(doc.pending)) out.push({ path: '/pending', message: 'expected a list of alerts', value: doc.pending });
  else for (const [i, p] of doc.pending.entries()) out.push(...checkPending(p, `/pending/${i}`));
  if (!Array.isArray(doc.published)) out.push({ path: '/published', message: 'expected a list of ["value scenario", epoch ms]', value: doc.published });
  else {
    for (const [i, e] of doc.published.entries()) {
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || !isInt(e[1])) out.push({ path: `/published/${i}`, message: 'expected ["value scenario", epoch ms]', value: e });
    }
  }
  return out;
}

function checkPending(p: unknown, at: string): JsonProblem[] {
  if (!isObj(p)) return [{ path: at, message: 'expected an alert object', value: p }];
  const out: JsonProblem[] = [];
  for (const k of ['value', 'scenario', 'key', 'signature'] as const) if (typeof p[k] !== 'string' || p[k] === '') out.push({ path: `${at}/${k}`, message: 'expected a non-empty string', value: p[k] });
  for (const k of ['until', 'at', 'signatureId', 'episode'] as const) if (!isInt(p[k]) && !(k.length <= 5 && typeof p[k] === 'number' && Number.isFinite(p[k]))) out.push({ path: `${at}/${k}`, message: 'expected an integer', value: p[k] });
  if (!Array.isArray(p.evidence) || !p.evidence.every((e) => typeof e === 'string')) out.push({ path: `${at}/evidence`, message: 'expected a list of strings', value: p.evidence });
  if (typeof p.value === 'string' && p.value !== '') {
    try {
      if (makeTarget(p.value).net !== p.value) out.push({ path: `${at}/value`, message: 'expected a canonical IP address or CIDR', value: p.value });
    } catch (e) {
      out.push({ path: `${at}/value`, message: (e as Error).message, value: p.value });
    }
  }
  return out;
}
