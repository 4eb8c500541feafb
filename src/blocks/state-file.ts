// Blocks saved across restarts: <state-dir>/blocks.json, replaced atomically
// on every change. Times are absolute (expires_at), so a restore keeps the
// remaining time instead of granting a fresh one.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { describeSchemaErrors, JsonFileError, JsonProblem, parseJsonBounded, strictAjv, writeFileAtomic } from '../config/json-file';
import { readFileBounded } from '../config/safe-file';
import { Block, BlockOrigin, BLOCK_ORIGINS, BLOCK_PROTOS, BLOCK_SCOPES, BlockScope, makeTarget, targetKey } from './block';
import { Offences } from './table';

export const STATE_FORMAT = 'nfips-blocks';
export const STATE_VERSION = 1;
export const STATE_FILE_NAME = 'blocks.json';

export interface BlockState {
  blocks: Block[];
  offences: Offences[];
}

/** A block as blocks.json stores it. */
export interface SavedBlock {
  net: string;
  scope: BlockScope;
  proto?: string;
  port?: number;
  origin: BlockOrigin;
  reason: string;
  created_at: string;
  expires_at: string;
  ttl_seconds: number;
  offence: number;
  signature_id?: number;
  episode?: number;
  queue?: number;
  scenario?: string;
}

interface SavedState {
  format: string;
  version: number;
  saved_at: string;
  blocks: SavedBlock[];
  offences: { net: string; count: number; last_ends: string; last_episode?: string }[];
}

const isoDate = { type: 'string', format: 'nfips-iso-date' } as const;
const count = { type: 'integer', minimum: 0 } as const;

const STATE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'version', 'saved_at', 'blocks', 'offences'],
  properties: {
    format: { enum: [STATE_FORMAT] },
    version: { enum: [STATE_VERSION] },
    saved_at: isoDate,
    blocks: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['net', 'scope', 'origin', 'reason', 'created_at', 'expires_at', 'ttl_seconds', 'offence'],
        properties: {
          net: { type: 'string' },
          scope: { enum: BLOCK_SCOPES },
          proto: { enum: BLOCK_PROTOS },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          origin: { enum: BLOCK_ORIGINS },
          reason: { type: 'string' },
          created_at: isoDate,
          expires_at: isoDate,
          ttl_seconds: { type: 'integer', minimum: 1 },
          offence: { type: 'integer', minimum: 1 },
          signature_id: count,
          episode: count,
          queue: count,
          scenario: { type: 'string' },
        },
      },
    },
    offences: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['net', 'count', 'last_ends'],
        properties: { net: { type: 'string' }, count: { type: 'integer', minimum: 1 }, last_ends: isoDate, last_episode: isoDate },
      },
    },
  },
} as const;

const validate = strictAjv().compile(STATE_SCHEMA);

export class StateFileError extends JsonFileError {
  constructor(file: string, problems: JsonProblem[]) {
    super('block state file', file, problems, 'fix the file or move it away to start without the saved blocks');
  }
}

export function stateFilePath(stateDir: string): string {
  return path.join(stateDir, STATE_FILE_NAME);
}

/** 65,536 blocks (the most --max-blocks allows) take about 25 MB. */
export const MAX_STATE_BYTES = 64 << 20;

/** The saved blocks, or none when the file does not exist yet. Throws StateFileError. */
export function readBlockState(file: string): BlockState {
  let text: string;
  try {
    // nfips wrote it: a link or a FIFO in its place was put there by someone else.
    text = readFileBounded(file, 'state file', { maxBytes: MAX_STATE_BYTES, noFollow: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { blocks: [], offences: [] };
    throw new StateFileError(file, [{ path: '', message: (e as Error).message }]);
  }
  const parsed = parseJsonBounded(text);
  if ('problem' in parsed) throw new StateFileError(file, [parsed.problem]);
  const doc = parsed.doc;
  if (!validate(doc)) throw new StateFileError(file, describeSchemaErrors(validate.errors ?? [], doc));
  const s = doc as unknown as SavedState;
  const problems: JsonProblem[] = [];
  const blocks: Block[] = [];
  s.blocks.forEach((b, i) => {
    try {
      const t = makeTarget(b.net, b.scope, b.proto, b.port);
      const block: Block = {
        ...t,
        key: '',
        origin: b.origin,
        reason: b.reason,
        createdAt: Date.parse(b.created_at),
        expiresAt: Date.parse(b.expires_at),
        ttlSeconds: b.ttl_seconds,
        offence: b.offence,
      };
      block.key = targetKey(block);
      if (b.signature_id !== undefined) block.signatureId = b.signature_id;
      if (b.episode !== undefined) block.episode = b.episode;
      if (b.queue !== undefined) block.queue = b.queue;
      if (b.scenario !== undefined) block.scenario = b.scenario;
      blocks.push(block);
    } catch (e) {
      problems.push({ path: `/blocks/${i}`, message: (e as Error).message });
    }
  });
  if (problems.length) throw new StateFileError(file, problems);
  const offences = s.offences.map((o) => {
    const out: Offences = { net: o.net, count: o.count, lastEnds: Date.parse(o.last_ends) };
    if (o.last_episode !== undefined) out.lastEpisode = Date.parse(o.last_episode);
    return out;
  });
  return { blocks, offences };
}

export function writeBlockState(file: string, state: BlockState, now: number): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
  const doc: SavedState = {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    saved_at: new Date(now).toISOString(),
    blocks: state.blocks.map(savedBlock),
    offences: state.offences.map((o) => ({
      net: o.net,
      count: o.count,
      last_ends: new Date(o.lastEnds).toISOString(),
      ...(o.lastEpisode !== undefined ? { last_episode: new Date(o.lastEpisode).toISOString() } : {}),
    })),
  };
  writeFileAtomic(file, `${JSON.stringify(doc, null, 2)}\n`, 0o600);
}

export function savedBlock(b: Block): SavedBlock {
  const out: SavedBlock = {
    net: b.net,
    scope: b.scope,
    origin: b.origin,
    reason: b.reason,
    created_at: new Date(b.createdAt).toISOString(),
    expires_at: new Date(b.expiresAt).toISOString(),
    ttl_seconds: b.ttlSeconds,
    offence: b.offence,
  };
  if (b.proto !== undefined) out.proto = b.proto;
  if (b.port !== undefined) out.port = b.port;
  if (b.signatureId !== undefined) out.signature_id = b.signatureId;
  if (b.episode !== undefined) out.episode = b.episode;
  if (b.queue !== undefined) out.queue = b.queue;
  if (b.scenario !== undefined) out.scenario = b.scenario;
  return out;
}
