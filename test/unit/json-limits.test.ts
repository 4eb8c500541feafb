// JSON inputs (rules, block state, models) are bounded in nesting and size,
// and a file beyond the bounds gets an error with the file, the JSON path and
// what was expected, not "Maximum call stack size exceeded".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatJsonProblems, jsonTooDeep, MAX_JSON_DEPTH, parseJsonBounded, previewJson } from '../../src/config/json-file';
import { readRuleFile } from '../../src/rules/load';
import { readBlockState } from '../../src/blocks/state-file';
import { loadModel } from '../../src/detect/model';
import { PACKAGE_ROOT } from '../../src/config/paths';

const dir = mkdtempSync(path.join(tmpdir(), 'wt11b-json-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const DEEP = 200_000;
const nest = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

test('the nesting scan locates the first container too deep, as a JSON pointer', () => {
  assert.equal(jsonTooDeep('{"a":[1,{"b/c":[[[]]]}]}', 3), '/a/1/b~1c');
  assert.equal(jsonTooDeep('{"a":[1,{"b/c":[[[]]]}]}', 6), null);
  assert.equal(jsonTooDeep('{"x\\"y":{"a":[1,2,[3]]}}', 3), '/x"y/a/2');
  assert.equal(jsonTooDeep('["[[[[", {"k": "]]]]"}]', 2), null, 'brackets inside strings do not count');
  assert.equal(jsonTooDeep(nest(DEEP))?.split('/').length, MAX_JSON_DEPTH + 1);
  const r = parseJsonBounded(nest(DEEP));
  assert.ok('problem' in r && /nested deeper than 64 levels of arrays and objects \(expected at most 64\)/.test(r.problem.message));
  assert.deepEqual(parseJsonBounded('{"a": [1]}'), { doc: { a: [1] } });
  assert.ok('problem' in parseJsonBounded('{"a": '));
});

test('a deeply nested value in an error message is shown short, never a stack overflow', () => {
  let deep: unknown = 1;
  for (let i = 0; i < DEEP; i++) deep = [deep];
  assert.equal(previewJson(deep), '[...]');
  assert.equal(formatJsonProblems('model file', 'f.json', [{ path: '/x', message: 'expected a number', value: deep }]), 'invalid model file f.json: 1 problem\n  f.json: at /x: expected a number (got [...])');
});

test('a rules file nested 200,000 deep: located error naming the file', () => {
  const f = path.join(dir, 'deep-rules.json');
  writeFileSync(f, `{"default": "accept", "rules": ${nest(DEEP)}}`);
  assert.throws(() => readRuleFile(f), (e: Error) => {
    assert.match(e.message, /^invalid rules file .*deep-rules\.json: 1 problem\n/);
    assert.match(e.message, /deep-rules\.json: at \/rules(\/0){63}: nested deeper than 64 levels/);
    return true;
  });
});

test('a block state file nested 200,000 deep: located error naming the file', () => {
  const d = path.join(dir, 'state');
  mkdirSync(d);
  writeFileSync(path.join(d, 'blocks.json'), `{"format":"nfips-blocks","version":1,"saved_at":"2026-01-01T00:00:00Z","offences":[],"blocks":${nest(DEEP)}}`);
  assert.throws(() => readBlockState(path.join(d, 'blocks.json')), /blocks\.json: at \/blocks(\/0){63}: nested deeper than 64 levels/);
});

test('a model file nested 200,000 deep, or too big: located error naming the file', () => {
  const model = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'models', 'default.json'), 'utf8')) as Record<string, unknown>;
  const f = path.join(dir, 'deep-model.json');
  writeFileSync(f, JSON.stringify({ ...model, scaler: 'X' }).replace('"X"', nest(DEEP)));
  assert.throws(() => loadModel(f), /deep-model\.json: at \/scaler(\/0){63}: nested deeper than 64 levels/);
  const big = path.join(dir, 'big-model.json');
  writeFileSync(big, `{"pad": "${'x'.repeat(17 << 20)}"}`);
  assert.throws(() => loadModel(big), /big-model\.json: at \(root\): cannot read file: model file .*big-model\.json is more than 16777216 bytes/);
  assert.equal(loadModel(path.join(PACKAGE_ROOT, 'models', 'default.json')).windowSeconds, model.windowSeconds);
});
