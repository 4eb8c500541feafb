// The trained model file: its shape, its validation and its atomic save. A
// model is only meaningful for the exact feature vector it was trained on,
// so a mismatch is refused with the way out (retrain) in the message.
import { describeJsonSyntaxError, describeSchemaErrors, JsonFileError, JsonProblem, parseJsonBounded, strictAjv, writeFileAtomic } from '../config/json-file';
import { readFileBounded } from '../config/safe-file';
import { FEATURE_COUNT, FEATURE_NAMES, FEATURE_SET_VERSION, FEATURES, FeatureTransform } from '../features/feature-set';
import type { Scaler } from './scale';
import { SOURCE_ENVELOPE_SCHEMA, SourceEnvelope } from './envelope';
import { FLAG_MODEL_SCHEMA, FlagModel } from '../flow/flag-model';

export const MODEL_FORMAT = 'nfips-model';
/** 2: adds the per-source envelope (`sources`) and the TCP flag-sequence model (`flags`). */
export const MODEL_VERSION = 2;

export interface KCandidate {
  k: number;
  /** Mean silhouette, -1..1. */
  silhouette: number;
}

export interface TrainingMeta {
  /** Windows handed to training, before any filtering. */
  windows: number;
  /** Dropped for having fewer than minPackets packets. */
  thinWindows: number;
  /** Used to fit scaler, centroids and radii. */
  trainWindows: number;
  /** Used only to calibrate the threshold. */
  heldOutWindows: number;
  heldOutFalseAlarmRate: number;
  margin: number;
  /** ISO 8601: start of the first and end of the last window. */
  from: string;
  to: string;
  spanSeconds: number;
  source: string;
  command: string;
  /** ISO 8601, when the model was trained. */
  date: string;
  seed: number;
  kSelection: { method: string; candidates: KCandidate[] };
}

export interface Model {
  format: typeof MODEL_FORMAT;
  version: typeof MODEL_VERSION;
  featureSetVersion: number;
  features: string[];
  transforms: FeatureTransform[];
  scaler: Scaler;
  k: number;
  /** k × features, in scaled space. */
  centroids: number[][];
  radii: number[];
  threshold: number;
  falseAlarmRate: number;
  minPackets: number;
  windowSeconds: number;
  stepSeconds: number;
  queues: number;
  training: TrainingMeta;
  /** What single sources do in normal traffic: blocks need a source far outside it. */
  sources: SourceEnvelope;
  /** TCP flag sequences of normal sessions. */
  flags: FlagModel;
}

export class ModelError extends JsonFileError {
  constructor(file: string, problems: JsonProblem[]) {
    super('model file', file, problems);
  }
}

const finiteNumber = { type: 'number' } as const;
const numberArray = { type: 'array', items: finiteNumber } as const;
const positiveArray = { type: 'array', items: { type: 'number', exclusiveMinimum: 0 } } as const;
const positive = { type: 'number', exclusiveMinimum: 0 } as const;
const count = { type: 'integer', minimum: 0 } as const;
const isoDate = { type: 'string', format: 'nfips-iso-date' } as const;

export const MODEL_SCHEMA = {
  $id: 'https://nfips.invalid/schema/model.json',
  type: 'object',
  additionalProperties: false,
  required: [
    'format', 'version', 'featureSetVersion', 'features', 'transforms', 'scaler', 'k', 'centroids', 'radii',
    'threshold', 'falseAlarmRate', 'minPackets', 'windowSeconds', 'stepSeconds', 'queues', 'training', 'sources', 'flags',
  ],
  properties: {
    format: { enum: [MODEL_FORMAT] },
    version: { enum: [MODEL_VERSION] },
    featureSetVersion: { type: 'integer', minimum: 1 },
    features: { type: 'array', items: { type: 'string' } },
    transforms: { type: 'array', items: { enum: ['log1p', 'linear'] } },
    scaler: {
      type: 'object',
      additionalProperties: false,
      required: ['mean', 'std', 'floor'],
      properties: { mean: numberArray, std: positiveArray, floor: numberArray },
    },
    k: { type: 'integer', minimum: 1 },
    centroids: { type: 'array', minItems: 1, items: numberArray },
    radii: positiveArray,
    threshold: positive,
    falseAlarmRate: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
    minPackets: count,
    // The ranges `nfips run --window-seconds/--step-seconds` accept.
    windowSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
    stepSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
    queues: { type: 'integer', minimum: 1 },
    sources: SOURCE_ENVELOPE_SCHEMA,
    flags: FLAG_MODEL_SCHEMA,
    training: {
      type: 'object',
      additionalProperties: false,
      required: [
        'windows', 'thinWindows', 'trainWindows', 'heldOutWindows', 'heldOutFalseAlarmRate', 'margin', 'from', 'to',
        'spanSeconds', 'source', 'command', 'date', 'seed', 'kSelection',
      ],
      properties: {
        windows: count,
        thinWindows: count,
        trainWindows: count,
        heldOutWindows: count,
        heldOutFalseAlarmRate: { type: 'number', minimum: 0, maximum: 1 },
        margin: positive,
        from: isoDate,
        to: isoDate,
        spanSeconds: { type: 'number', minimum: 0 },
        source: { type: 'string' },
        command: { type: 'string' },
        date: isoDate,
        seed: { type: 'integer' },
        kSelection: {
          type: 'object',
          additionalProperties: false,
          required: ['method', 'candidates'],
          properties: {
            method: { type: 'string' },
            candidates: {
              type: 'array',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['k', 'silhouette'],
                properties: { k: { type: 'integer', minimum: 2 }, silhouette: { type: 'number', minimum: -1, maximum: 1 } },
              },
            },
          },
        },
      },
    },
  },
} as const;

const validateSchema = strictAjv().compile(MODEL_SCHEMA);

/** JSON cannot carry NaN or Infinity, but a model built in memory can; catch it before it is written as null. */
function nonFinite(doc: unknown, at: string, out: JsonProblem[]): void {
  if (typeof doc === 'number') {
    if (!Number.isFinite(doc)) out.push({ path: at, message: 'expected a finite number', value: doc });
  } else if (Array.isArray(doc)) {
    doc.forEach((v, i) => nonFinite(v, `${at}/${i}`, out));
  } else if (doc !== null && typeof doc === 'object') {
    for (const [key, v] of Object.entries(doc)) nonFinite(v, `${at}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, out);
  }
}

/**
 * Checked before the schema: a model from another feature set may differ in
 * any field, and "retrain" is the only useful thing to say about it.
 */
function featureSetProblem(doc: unknown): JsonProblem | null {
  if (doc === null || typeof doc !== 'object') return null;
  const { featureSetVersion: version, features } = doc as { featureSetVersion?: unknown; features?: unknown };
  if (typeof version !== 'number' || !Array.isArray(features) || !features.every((x): x is string => typeof x === 'string')) return null;
  const sameFeatures = features.length === FEATURE_COUNT && features.every((name, i) => name === FEATURE_NAMES[i]);
  if (version === FEATURE_SET_VERSION && sameFeatures) return null;
  const firstDiff = FEATURE_NAMES.findIndex((name, i) => features[i] !== name);
  return {
    path: version !== FEATURE_SET_VERSION ? '/featureSetVersion' : `/features${firstDiff >= 0 ? `/${firstDiff}` : ''}`,
    message:
      `the model was trained for feature set v${version} with features [${features.join(', ')}] ` +
      `but this nfips uses v${FEATURE_SET_VERSION} with features [${FEATURE_NAMES.join(', ')}]; ` +
      'retrain the model with `nfips train`',
  };
}

function semanticProblems(m: Model): JsonProblem[] {
  const out: JsonProblem[] = [];
  nonFinite(m, '', out);
  const f = FEATURE_COUNT;
  if (m.transforms.length !== f) {
    out.push({ path: '/transforms', message: `expected ${f} transforms (one per feature)`, value: m.transforms.length });
  } else {
    m.transforms.forEach((t, j) => {
      if (t !== FEATURES[j].transform) {
        out.push({ path: `/transforms/${j}`, message: `expected "${FEATURES[j].transform}" (the transform of ${FEATURES[j].name} in feature set v${FEATURE_SET_VERSION})`, value: t });
      }
    });
  }
  for (const key of ['mean', 'std', 'floor'] as const) {
    const len = m.scaler[key].length;
    if (len !== f) out.push({ path: `/scaler/${key}`, message: `expected ${f} numbers (one per feature)`, value: len });
  }
  if (m.centroids.length !== m.k) out.push({ path: '/centroids', message: `expected k = ${m.k} centroids`, value: m.centroids.length });
  m.centroids.forEach((c, i) => {
    if (c.length !== f) out.push({ path: `/centroids/${i}`, message: `expected ${f} numbers (one per feature)`, value: c.length });
  });
  if (m.radii.length !== m.k) out.push({ path: '/radii', message: `expected k = ${m.k} radii`, value: m.radii.length });
  if (m.stepSeconds > m.windowSeconds) out.push({ path: '/stepSeconds', message: `expected at most windowSeconds (${m.windowSeconds})`, value: m.stepSeconds });
  return out;
}

/** A model from an older nfips: say so and how to get a current one, rather than list every field it lacks. */
function versionProblem(doc: unknown): JsonProblem | null {
  if (doc === null || typeof doc !== 'object') return null;
  const { format, version } = doc as { format?: unknown; version?: unknown };
  if (format !== MODEL_FORMAT || typeof version !== 'number' || version === MODEL_VERSION) return null;
  return {
    path: '/version',
    message:
      version < MODEL_VERSION
        ? `this model was trained by an older nfips (model format ${version}: window classifier only, no per-source envelope or flag-sequence model); ` +
          'retrain it: `nfips train` on a capture or a recording of normal traffic, `nfips run --learn 24h` on the gateway, or `make model` for the shipped one'
        : `this model is format ${version}, newer than this nfips reads (${MODEL_VERSION}); upgrade nfips or retrain the model with this one`,
    value: version,
  };
}

/** Validates a parsed document (or an in-memory model) and returns it typed. */
export function validateModel(doc: unknown, file: string): Model {
  const old = versionProblem(doc);
  if (old) throw new ModelError(file, [old]);
  const foreign = featureSetProblem(doc);
  if (foreign) throw new ModelError(file, [foreign]);
  if (!validateSchema(doc)) throw new ModelError(file, describeSchemaErrors(validateSchema.errors ?? [], doc));
  const m = doc as unknown as Model;
  const problems = semanticProblems(m);
  if (problems.length) throw new ModelError(file, problems);
  return m;
}

export function parseModel(text: string, file: string): Model {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ModelError(file, [{ path: '', message: `${describeJsonSyntaxError(text, (e as Error).message)}; a model file is written by \`nfips train\`` }]);
  }
  return validateModel(doc, file);
}

/** Models are tens of kilobytes; learnt ones with a flag model a few megabytes at most. */
export const MAX_MODEL_BYTES = 16 << 20;

/**
 * Reads, bounds and validates a model file: capped in size and nesting
 * before validation walks it, so a huge or absurdly nested file gets a
 * located error instead of exhausting memory or the stack.
 */
export function loadModel(file: string): Model {
  let text: string;
  try {
    text = readFileBounded(file, 'model file', { maxBytes: MAX_MODEL_BYTES });
  } catch (e) {
    throw new ModelError(file, [{ path: '', message: `cannot read file: ${(e as Error).message}` }]);
  }
  const parsed = parseJsonBounded(text);
  if ('problem' in parsed) throw new ModelError(file, [parsed.problem]);
  return parseModel(text, file);
}

/**
 * Validates, then writes a temporary file in the same directory and renames
 * it over file, so a reader (nfips starting, a tool) never sees half of one.
 */
export function saveModel(file: string, m: Model): void {
  validateModel(m, file);
  writeFileAtomic(file, `${JSON.stringify(m, null, 2)}\n`);
}
