import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FEATURE_COUNT, FEATURE_NAMES, FEATURE_SET_VERSION, FEATURES } from '../../src/features/feature-set';
import { loadModel, Model, ModelError, parseModel, saveModel } from '../../src/detect/model';
import { learnEnvelope } from '../../src/detect/envelope';
import { buildFlagModel } from '../../src/flow/flag-model';
import { quietBehaviour } from '../helpers/behaviour';

const dir = mkdtempSync(path.join(tmpdir(), 'nfips-model-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function validModel(): Model {
  const f = FEATURE_COUNT;
  return {
    format: 'nfips-model',
    version: 2,
    featureSetVersion: FEATURE_SET_VERSION,
    features: [...FEATURE_NAMES],
    transforms: FEATURES.map((d) => d.transform),
    scaler: {
      mean: Array.from({ length: f }, (_, j) => j * 0.5),
      std: Array.from({ length: f }, (_, j) => 1 + j / 10),
      floor: Array.from({ length: f }, () => -2.25),
    },
    k: 2,
    centroids: [Array.from({ length: f }, (_, j) => (3 - j) / 7), Array.from({ length: f }, (_, j) => j / 3)],
    radii: [1.25, 0.8],
    threshold: 1.9,
    falseAlarmRate: 0.001,
    minPackets: 100,
    windowSeconds: 60,
    stepSeconds: 1,
    queues: 2,
    training: {
      windows: 5000,
      thinWindows: 12,
      trainWindows: 3700,
      heldOutWindows: 1288,
      heldOutFalseAlarmRate: 0,
      margin: 1.5,
      from: '2024-05-01T10:00:00.000Z',
      to: '2024-05-01T11:23:20.000Z',
      spanSeconds: 5000,
      source: 'unit test',
      command: 'nfips train --test',
      date: '2024-05-02T08:00:00.000Z',
      seed: 1,
      kSelection: { method: 'max mean silhouette', candidates: [{ k: 2, silhouette: 0.61 }, { k: 3, silhouette: 0.4 }] },
    },
    sources: learnEnvelope(quietBehaviour()),
    flags: buildFlagModel(new Map([[0, 50]]), 50),
  };
}

/** Parses the JSON of a valid model after mutate has broken it; returns the ModelError. */
function errorFor(mutate: (doc: Record<string, unknown> & Model) => void, file = 'm.json'): ModelError {
  const doc = validModel() as Record<string, unknown> & Model;
  mutate(doc);
  try {
    parseModel(JSON.stringify(doc), file);
  } catch (e) {
    assert.ok(e instanceof ModelError, `expected a ModelError, got ${String(e)}`);
    return e;
  }
  assert.fail('the broken model was accepted');
}

function expectProblem(e: ModelError, jsonPath: string, expectation: string | RegExp): void {
  assert.equal(e.file, 'm.json');
  assert.equal(e.jsonPath, jsonPath);
  const shown = jsonPath === '' ? '(root)' : jsonPath;
  if (typeof expectation === 'string') {
    assert.ok(e.message.includes(`m.json: at ${shown}: ${expectation}`), e.message);
  } else {
    assert.match(e.message, new RegExp(`^invalid model file m\\.json: \\d+ problems?\\n(.*\\n)*  m\\.json: at ${shown.replace(/[()]/g, '\\$&')}: `));
    assert.match(e.message, expectation);
  }
}

describe('model file', () => {
  it('round-trips through saveModel and loadModel, atomically and as 2-space JSON', () => {
    const file = path.join(dir, 'round.json');
    writeFileSync(file, 'an older model');
    const m = validModel();
    saveModel(file, m);
    assert.deepEqual(loadModel(file), m);
    const text = readFileSync(file, 'utf8');
    assert.ok(text.startsWith('{\n  "format": "nfips-model",\n'), text.slice(0, 40));
    assert.ok(text.endsWith('}\n'));
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('round')), ['round.json'], 'no temporary file left behind');
  });

  it('keeps floating point values exact', () => {
    const file = path.join(dir, 'exact.json');
    const m = validModel();
    m.scaler.mean[4] = 0.1 + 0.2;
    m.threshold = Math.PI / 3;
    saveModel(file, m);
    const back = loadModel(file);
    assert.equal(back.scaler.mean[4], 0.1 + 0.2);
    assert.equal(back.threshold, Math.PI / 3);
  });

  it('refuses to save an invalid model and leaves no file', () => {
    const file = path.join(dir, 'nan.json');
    const m = validModel();
    m.scaler.mean[2] = NaN;
    assert.throws(() => saveModel(file, m), (e: unknown) => {
      assert.ok(e instanceof ModelError);
      assert.equal(e.file, file);
      assert.equal(e.jsonPath, '/scaler/mean/2');
      assert.match(e.message, /at \/scaler\/mean\/2: expected a (finite )?number \(got NaN\)/);
      return true;
    });
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('nan')), []);
  });

  it('refuses Infinity built in memory', () => {
    const m = validModel();
    m.centroids[1][5] = Infinity;
    assert.throws(() => saveModel(path.join(dir, 'inf.json'), m), /at \/centroids\/1\/5: expected a (finite )?number \(got Infinity\)/);
  });
});

describe('model validation', () => {
  it('accepts the valid model', () => {
    assert.deepEqual(parseModel(JSON.stringify(validModel()), 'm.json'), validModel());
  });

  it('rejects text that is not JSON', () => {
    assert.throws(() => parseModel('{"format": "nfips-model",', 'm.json'), (e: unknown) => {
      assert.ok(e instanceof ModelError);
      expectProblem(e, '', /not valid JSON/);
      return true;
    });
  });

  it('says when the file cannot be read', () => {
    const file = path.join(dir, 'absent.json');
    assert.throws(() => loadModel(file), (e: unknown) => {
      assert.ok(e instanceof ModelError);
      assert.equal(e.file, file);
      assert.equal(e.jsonPath, '');
      assert.match(e.message, /at \(root\): cannot read file: .*ENOENT/);
      return true;
    });
  });

  it('wants std > 0', () => {
    const e = errorFor((d) => {
      d.scaler.std[3] = 0;
    });
    expectProblem(e, '/scaler/std/3', 'expected a number > 0 (got 0)');
    assert.equal(e.message, 'invalid model file m.json: 1 problem\n  m.json: at /scaler/std/3: expected a number > 0 (got 0)');
  });

  it('wants radii > 0', () => {
    expectProblem(errorFor((d) => { d.radii[1] = -1; }), '/radii/1', 'expected a number > 0 (got -1)');
  });

  it('wants threshold > 0', () => {
    expectProblem(errorFor((d) => { d.threshold = 0; }), '/threshold', 'expected a number > 0 (got 0)');
  });

  it('wants numbers where numbers belong', () => {
    expectProblem(errorFor((d) => { (d.scaler.floor as unknown[])[7] = '1.5'; }), '/scaler/floor/7', 'expected a number (got "1.5")');
    expectProblem(errorFor((d) => { (d.centroids[0] as unknown[])[0] = null; }), '/centroids/0/0', 'expected a number (got null)');
    expectProblem(errorFor((d) => { (d as Record<string, unknown>).k = 'two'; }), '/k', 'expected an integer (got "two")');
  });

  it('checks format, version and dates', () => {
    expectProblem(errorFor((d) => { (d as Record<string, unknown>).format = 'other'; }), '/format', 'expected "nfips-model" (got "other")');
    expectProblem(errorFor((d) => { (d as Record<string, unknown>).version = 3; }), '/version', /newer than this nfips reads \(2\)/);
    expectProblem(errorFor((d) => { (d as Record<string, unknown>).version = 1; }), '/version', /trained by an older nfips \(model format 1.*retrain it: `nfips train`/);
    expectProblem(errorFor((d) => { d.training.date = 'yesterday'; }), '/training/date', 'expected an ISO 8601 date-time');
    expectProblem(errorFor((d) => { d.training.kSelection.candidates[1].silhouette = 1.5; }), '/training/kSelection/candidates/1/silhouette', 'expected a number <= 1 (got 1.5)');
    expectProblem(errorFor((d) => { d.falseAlarmRate = 1; }), '/falseAlarmRate', 'expected a number < 1 (got 1)');
  });

  it('reports missing and unknown fields', () => {
    expectProblem(errorFor((d) => { delete (d as Partial<Model>).threshold; }), '', 'missing required field "threshold"');
    expectProblem(errorFor((d) => { delete (d.scaler as Partial<Model['scaler']>).floor; }), '/scaler', 'missing required field "floor"');
    expectProblem(errorFor((d) => { (d as Record<string, unknown>).thresholds = [1]; }), '/thresholds', 'unknown field');
  });

  it('checks the scaler has one value per feature', () => {
    expectProblem(errorFor((d) => { d.scaler.mean.pop(); }), '/scaler/mean', `expected ${FEATURE_COUNT} numbers (one per feature) (got ${FEATURE_COUNT - 1})`);
    expectProblem(errorFor((d) => { d.scaler.floor.push(0); }), '/scaler/floor', `expected ${FEATURE_COUNT} numbers (one per feature) (got ${FEATURE_COUNT + 1})`);
  });

  it('checks centroids are k × features and radii k', () => {
    expectProblem(errorFor((d) => { d.k = 3; }), '/centroids', 'expected k = 3 centroids (got 2)');
    expectProblem(errorFor((d) => { d.centroids[1].pop(); }), '/centroids/1', `expected ${FEATURE_COUNT} numbers (one per feature) (got ${FEATURE_COUNT - 1})`);
    expectProblem(errorFor((d) => { d.radii.pop(); }), '/radii', 'expected k = 2 radii (got 1)');
  });

  it('checks window and step: whole seconds as run accepts, step within the window', () => {
    expectProblem(errorFor((d) => { d.stepSeconds = 120; }), '/stepSeconds', 'expected at most windowSeconds (60) (got 120)');
    expectProblem(errorFor((d) => { d.windowSeconds = 1e-9; }), '/windowSeconds', 'expected an integer (got 1e-9)');
    expectProblem(errorFor((d) => { d.windowSeconds = 7200; }), '/windowSeconds', 'expected a number <= 3600 (got 7200)');
  });

  it('checks transforms match the feature set', () => {
    assert.equal(FEATURES[0].transform, 'log1p');
    expectProblem(errorFor((d) => { d.transforms[0] = 'linear'; }), '/transforms/0', `expected "log1p" (the transform of ${FEATURE_NAMES[0]} in feature set v${FEATURE_SET_VERSION}) (got "linear")`);
    expectProblem(errorFor((d) => { d.transforms.pop(); }), '/transforms', `expected ${FEATURE_COUNT} transforms (one per feature) (got ${FEATURE_COUNT - 1})`);
    expectProblem(errorFor((d) => { (d.transforms as string[])[2] = 'sqrt'; }), '/transforms/2', 'expected "log1p" or "linear" (got "sqrt")');
  });

  it('refuses a model trained for another feature set version, telling to retrain', () => {
    const e = errorFor((d) => {
      d.featureSetVersion = FEATURE_SET_VERSION + 1;
    });
    expectProblem(e, '/featureSetVersion', `the model was trained for feature set v${FEATURE_SET_VERSION + 1} with features [${FEATURE_NAMES.join(', ')}]`);
    assert.ok(e.message.includes(`but this nfips uses v${FEATURE_SET_VERSION} with features [${FEATURE_NAMES.join(', ')}]`), e.message);
    assert.ok(e.message.includes('retrain the model with `nfips train`'), e.message);
    assert.equal(e.problems.length, 1, 'nothing else is worth checking against a foreign feature set');
  });

  it('says retrain even when a foreign model differs in other fields too', () => {
    const e = errorFor((d) => {
      d.featureSetVersion = FEATURE_SET_VERSION + 1;
      d.scaler.std.push(1);
      (d as Record<string, unknown>).newField = true;
    });
    expectProblem(e, '/featureSetVersion', /retrain the model with `nfips train`/);
    assert.equal(e.problems.length, 1);
  });

  it('refuses a model whose feature list differs, even at the same version', () => {
    const swapped = errorFor((d) => {
      [d.features[0], d.features[1]] = [d.features[1], d.features[0]];
    });
    expectProblem(swapped, '/features/0', `the model was trained for feature set v${FEATURE_SET_VERSION} with features [${FEATURE_NAMES[1]}, ${FEATURE_NAMES[0]}, `);
    assert.ok(swapped.message.includes('nfips train'));

    const shorter = errorFor((d) => {
      d.features.pop();
    });
    expectProblem(shorter, `/features/${FEATURE_COUNT - 1}`, /but this nfips uses v\d+ with features \[.*\]; retrain the model with `nfips train`/);

    const longer = errorFor((d) => {
      d.features.push('extra_feature');
    });
    expectProblem(longer, '/features', /with features \[.*extra_feature\] but this nfips uses/);
  });

  it('lists every problem, one line each, with jsonPath the first', () => {
    const e = errorFor((d) => {
      d.scaler.std[0] = -1;
      d.radii[0] = 0;
    });
    assert.equal(e.problems.length, 2);
    assert.equal(e.jsonPath, '/scaler/std/0');
    assert.deepEqual(e.message.split('\n'), [
      'invalid model file m.json: 2 problems',
      '  m.json: at /scaler/std/0: expected a number > 0 (got -1)',
      '  m.json: at /radii/0: expected a number > 0 (got 0)',
    ]);
  });
});
