// The publisher's queue file (<state-dir>/crowdsec-queue.json): alerts not
// yet sent, checked field by field on load with the project's file helpers.
// A file that is not a queue at all is rejected whole; one bad alert in a
// good file is dropped alone (reported with its JSON pointer), so a damaged
// entry does not cost the others. Pure but for the read.
import { makeTarget } from '../blocks/block';
import { JsonFileError, JsonProblem, parseJsonBounded } from '../config/json-file';
import { readFileBounded } from '../config/safe-file';
import type { PendingAlert } from './alert';
import { OWN_KEEP_MAX, OwnDeletionRecord, OwnMemory } from './decision-set';

export const QUEUE_FORMAT = 'nfips-crowdsec-queue';
/** 1,000 alerts of a few hundred bytes each: far below this. */
const MAX_QUEUE_BYTES = 16 << 20;

export interface QueueDoc {
  format: string;
  version: number;
  pending: PendingAlert[];
  /** Always empty: written for nfips versions before own decisions were told by scenario, which require it. */
  published?: [];
  /**
   * This gateway's own decisions as last seen (decision-set.ts OwnMemory):
   * after a restart an expired one named in `deleted` must not pass for an
   * operator's deletion. Absent in files of earlier versions.
   */
  own?: OwnMemory;
}

/** What a load kept, and the alerts it dropped (one problem list per dropped alert). */
export interface QueueLoad {
  doc: QueueDoc;
  dropped: { path: string; problems: JsonProblem[] }[];
}

export class QueueFileError extends JsonFileError {}

/**
 * null when there is no file; throws QueueFileError (or the read's error)
 * when the file is not a queue (not JSON, wrong format or version, no list
 * of alerts). A "published" list written by earlier versions is ignored:
 * own decisions are recognised by their scenario now (alert.ts isOwnDecision).
 */
export function readQueueFile(file: string): QueueLoad | null {
  let text: string;
  try {
    text = readFileBounded(file, 'crowdsec queue file', { maxBytes: MAX_QUEUE_BYTES });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const parsed = parseJsonBounded(text);
  if ('problem' in parsed) throw new QueueFileError('crowdsec queue file', file, [parsed.problem]);
  const problems = checkQueueShape(parsed.doc);
  if (problems.length) throw new QueueFileError('crowdsec queue file', file, problems);
  const pending: PendingAlert[] = [];
  const dropped: QueueLoad['dropped'] = [];
  for (const [i, p] of ((parsed.doc as { pending: unknown[] }).pending).entries()) {
    const bad = checkPending(p, `/pending/${i}`);
    if (bad.length) dropped.push({ path: `/pending/${i}`, problems: bad });
    else pending.push(p as PendingAlert);
  }
  const own = readOwn((parsed.doc as { own?: unknown }).own, dropped);
  return { doc: { format: QUEUE_FORMAT, version: 1, pending, ...(own ? { own } : {}) }, dropped };
}

/** The "own" slot: a bad entry is dropped alone (reported in `dropped`); a slot that is not the expected object is dropped whole. */
function readOwn(v: unknown, dropped: QueueLoad['dropped']): OwnMemory | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v) || !Array.isArray(v.live) || !Array.isArray(v.gone)) {
    dropped.push({ path: '/own', problems: [{ path: '/own', message: 'expected {"live": [...], "gone": [...]}', value: v }] });
    return undefined;
  }
  const live: OwnMemory['live'] = [];
  for (const [i, o] of v.live.slice(-OWN_KEEP_MAX).entries()) {
    const bad = checkOwn(o, `/own/live/${i}`);
    if (bad.length) dropped.push({ path: `/own/live/${i}`, problems: bad });
    else live.push(o as OwnMemory['live'][number]);
  }
  const gone: number[] = [];
  for (const [i, id] of v.gone.slice(-OWN_KEEP_MAX).entries()) {
    if (isInt(id) && (id as number) > 0) gone.push(id as number);
    else dropped.push({ path: `/own/gone/${i}`, problems: [{ path: `/own/gone/${i}`, message: 'expected a decision id', value: id }] });
  }
  const out: OwnMemory = { live, gone };
  if (typeof v.machine === 'string') out.machine = v.machine;
  else if (v.machine !== undefined) {
    // Whose decisions these are cannot be told: none of it is used.
    dropped.push({ path: '/own/machine', problems: [{ path: '/own/machine', message: 'expected a machine id', value: v.machine }] });
    return undefined;
  }
  if (Array.isArray(v.deletions)) {
    out.deletions = [];
    for (const [i, d] of v.deletions.slice(-OWN_KEEP_MAX).entries()) {
      const bad = checkDeletion(d, `/own/deletions/${i}`);
      if (bad.length) dropped.push({ path: `/own/deletions/${i}`, problems: bad });
      else out.deletions.push(d as OwnDeletionRecord);
    }
  } else if (v.deletions !== undefined) dropped.push({ path: '/own/deletions', problems: [{ path: '/own/deletions', message: 'expected a list of deletions', value: v.deletions }] });
  if (Array.isArray(v.deleting)) {
    out.deleting = [];
    for (const [i, id] of v.deleting.slice(-OWN_KEEP_MAX).entries()) {
      if (isInt(id) && (id as number) > 0) out.deleting.push(id as number);
      else dropped.push({ path: `/own/deleting/${i}`, problems: [{ path: `/own/deleting/${i}`, message: 'expected a decision id', value: id }] });
    }
  } else if (v.deleting !== undefined) dropped.push({ path: '/own/deleting', problems: [{ path: '/own/deleting', message: 'expected a list of decision ids', value: v.deleting }] });
  return out;
}

/** A network and an own scenario, as both own entries and deletions carry them. */
function checkNetScenario(o: Record<string, unknown>, at: string, out: JsonProblem[]): void {
  if (typeof o.scenario !== 'string' || !o.scenario.startsWith('nfips/')) out.push({ path: `${at}/scenario`, message: 'expected "nfips/<signature>"', value: o.scenario });
  if (typeof o.net !== 'string') out.push({ path: `${at}/net`, message: 'expected a canonical IP address or CIDR', value: o.net });
  else {
    try {
      if (makeTarget(o.net).net !== o.net) out.push({ path: `${at}/net`, message: 'expected a canonical IP address or CIDR', value: o.net });
    } catch (e) {
      out.push({ path: `${at}/net`, message: (e as Error).message, value: o.net });
    }
  }
}

const isTime = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);

/** One remembered deletion's problems. */
export function checkDeletion(o: unknown, at: string): JsonProblem[] {
  if (!isObj(o)) return [{ path: at, message: 'expected a deletion object', value: o }];
  const out: JsonProblem[] = [];
  checkNetScenario(o, at, out);
  for (const k of ['deletedAt', 'since', 'watchUntil'] as const) if (!isTime(o[k])) out.push({ path: `${at}/${k}`, message: 'expected a time in epoch ms', value: o[k] });
  if (o.liftBefore !== null && !isTime(o.liftBefore)) out.push({ path: `${at}/liftBefore`, message: 'expected a time in epoch ms, or null', value: o.liftBefore });
  if (typeof o.watching !== 'boolean') out.push({ path: `${at}/watching`, message: 'expected true or false', value: o.watching });
  return out;
}

/** One remembered own decision's problems. */
export function checkOwn(o: unknown, at: string): JsonProblem[] {
  if (!isObj(o)) return [{ path: at, message: 'expected an own decision object', value: o }];
  const out: JsonProblem[] = [];
  if (!isInt(o.id) || (o.id as number) <= 0) out.push({ path: `${at}/id`, message: 'expected a decision id', value: o.id });
  checkNetScenario(o, at, out);
  for (const k of ['until', 'seenAt'] as const) if (!isTime(o[k])) out.push({ path: `${at}/${k}`, message: 'expected a time in epoch ms', value: o[k] });
  return out;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v);

/** The envelope only: what makes the file a queue at all. */
export function checkQueueShape(doc: unknown): JsonProblem[] {
  const out: JsonProblem[] = [];
  if (!isObj(doc)) return [{ path: '', message: 'expected an object', value: doc }];
  if (doc.format !== QUEUE_FORMAT) out.push({ path: '/format', message: `expected "${QUEUE_FORMAT}"`, value: doc.format });
  if (doc.version !== 1) out.push({ path: '/version', message: 'expected 1', value: doc.version });
  if (!Array.isArray(doc.pending)) out.push({ path: '/pending', message: 'expected a list of alerts', value: doc.pending });
  return out;
}

/** One queued alert's problems (none: it can be sent). */
export function checkPending(p: unknown, at: string): JsonProblem[] {
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
