// `nfips train`'s minimum capture length: what the README and the help say
// is what training needs, and a live capture too short for it is refused
// before it starts rather than after minutes of capturing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { minimumCaptureSeconds } from '../../src/detect/train';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

test('the documented minimum capture is the one training needs', () => {
  const one = minimumCaptureSeconds(1, 60, 1);
  const two = minimumCaptureSeconds(1, 60, 2);
  assert.equal(one, 429);
  assert.equal(two, 424);
  const readme = readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
  assert.match(readme, new RegExp(`at least \\*\\*${one} s \\(7 min 9 s\\) of uninterrupted traffic\\*\\* from a pcap or a live capture`));
  assert.match(readme, new RegExp(`${two} s from a recording of a 2-queue run`));
  const help = spawnSync(process.execPath, [NFIPS, 'train', '--help'], { encoding: 'utf8' }).stdout;
  assert.match(help.replace(/\s+/g, ' '), new RegExp(`--seconds .*at least ${one}`));
});

test('train --iface with a --seconds below the minimum is refused before capturing', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-trainmin-'));
  try {
    const started = Date.now();
    const r = spawnSync(process.execPath, [NFIPS, 'train', '--iface', 'lo', '--seconds', '60', '--out', path.join(dir, 'm.json')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /invalid --seconds 60: training needs at least 429 s of uninterrupted traffic \(with 60 s windows every 1 s on 1 queue\), with at least 100 packets in every window/);
    assert.ok(Date.now() - started < 20_000, 'at once, not after capturing');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
