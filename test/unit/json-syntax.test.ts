// JSON syntax errors in the files nfips reads say line and column (an
// editor's terms), not V8's character position.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readBlockState } from '../../src/blocks/state-file';
import { describeJsonSyntaxError, firstJsonError, lineColumn, parseJsonBounded } from '../../src/config/json-file';
import { parseModel } from '../../src/detect/model';
import { parseRuleText } from '../../src/rules/load';

// A comma missing at the end of line 3: the error is at line 4, column 3.
const BROKEN = '{\n  "default": "accept",\n  "lock": false\n  "rules": []\n}\n';

describe('JSON syntax errors', () => {
  it('errors V8 gives no position for (an unquoted value, a trailing comma, a comment) still get line and column', () => {
    const cases: [string, number, number][] = [
      ['{\n  "mode": prevent\n}', 2, 11],
      ['[1, 2,]', 1, 7],
      ['{"a": 1, // note\n"b": 2}', 1, 10],
      ['{\n  "rules": [{"id": "x", "action": "drop", "enabled": tru}]\n}', 2, 54],
    ];
    for (const [text, line, column] of cases) {
      const r = parseJsonBounded(text);
      assert.ok('problem' in r, text);
      assert.match(r.problem.message, new RegExp(`^not valid JSON at line ${line}, column ${column}: `), text);
    }
    for (const valid of ['{}', '[[[]]]', '{"a": [], "b": [1, [2, {}]], "c": "\\u00e9\\n"}', '-0.5e3', '"x"']) assert.equal(firstJsonError(valid), null, valid);
  });

  it('counts lines and columns from 1', () => {
    assert.deepEqual(lineColumn('ab\ncd', 0), { line: 1, column: 1 });
    assert.deepEqual(lineColumn('ab\ncd', 4), { line: 2, column: 2 });
    assert.match(describeJsonSyntaxError('{"a":', 'Unexpected end of JSON input'), /^not valid JSON at line 1, column 6: Unexpected end of JSON input$/);
  });

  it('rules, model and state files give line and column, not a position', () => {
    assert.throws(() => parseRuleText(BROKEN, 'rules.json'), (e: Error) => /rules\.json.*not valid JSON at line 4, column 3/s.test(e.message) && !/position/.test(e.message));
    assert.throws(() => parseModel(BROKEN, 'model.json'), (e: Error) => /not valid JSON at line 4, column 3/.test(e.message) && !/position/.test(e.message));
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-json-'));
    try {
      const file = path.join(dir, 'blocks.json');
      writeFileSync(file, BROKEN);
      assert.throws(() => readBlockState(file), (e: Error) => /blocks\.json: at \(root\): not valid JSON at line 4, column 3/.test(e.message) && !/position/.test(e.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
