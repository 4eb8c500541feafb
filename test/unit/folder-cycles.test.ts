// No two folders of src/ import each other, directly or through others: the
// layers read bottom-up (packet, rules, verdict, queue ... app, cli).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { describeCycle, folderCycles, folderGraph } from '../helpers/folder-graph';

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'nfips-folders-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), text);
  }
  return root;
}

test('a cycle of folders is found and named with the files that make it', () => {
  const root = tree({
    'a/x.ts': "import { y } from '../b/y';\nexport const x = y;\n",
    'b/y.ts': "export { z as y } from '../c/z';\n",
    'c/z.ts': "import type { X } from '../a/x';\nexport const z = 1;\n",
    'd/w.ts': "import { x } from '../a/x';\nconst q = require('../c/z');\n",
    'top.ts': "import '../outside';\n",
  });
  try {
    const g = folderGraph(root);
    const cycles = folderCycles(g);
    assert.deepEqual(cycles, [['a', 'b', 'c', 'a']]);
    assert.equal(describeCycle(g, cycles[0] as string[]), 'a -> b (a/x.ts) -> c (b/y.ts) -> a (c/z.ts)');
    assert.deepEqual([...(g.get('d')?.keys() ?? [])].sort(), ['a', 'c']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('folders that only import downwards have no cycle', () => {
  const root = tree({ 'a/x.ts': "import { y } from '../b/y';\n", 'b/y.ts': "import { z } from './z';\n", 'b/z.ts': '' });
  try {
    assert.deepEqual(folderCycles(folderGraph(root)), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('no import cycle between the folders of src/', () => {
  const g = folderGraph(path.join(PACKAGE_ROOT, 'src'));
  assert.ok(g.size >= 10, `folders with imports: ${[...g.keys()].join(' ')}`);
  const cycles = folderCycles(g);
  assert.deepEqual(cycles.map((c) => describeCycle(g, c)), []);
});
