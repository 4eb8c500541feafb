// A flag that takes one value, given twice, is named in an error (exit 2);
// it used to crash nfips with "paths[0] must be of type string".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { nfipsIsolated } from '../helpers/isolated-cli';
import { repeatedFlags } from '../../src/cli/repeated-flags';
import { PACKAGE_ROOT } from '../../src/config/paths';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

describe('repeated flags', () => {
  it('names each single-value flag given more than once, once, and leaves list flags alone', () => {
    const argv = { _: ['run'], $0: 'nfips', rules: ['a', 'b'], 'state-dir': ['x', 'y'], stateDir: ['x', 'y'], exclude: ['10.0.0.0/8', '192.0.2.0/24'], queues: '0-1' };
    const r = repeatedFlags(argv);
    assert.equal(r.length, 2);
    assert.match(r[0]!, /^--rules given 2 times \("a", "b"\)/);
    assert.match(r[1]!, /^--state-dir given 2 times/);
  });

  it('nfips run: exit 2 naming the flag, for string and number flags', () => {
    for (const [flag, a, b] of [['--rules', '/a.json', '/b.json'], ['--log-file', '/tmp/a', '/tmp/b'], ['--stats-interval', '1', '2']] as const) {
      const r = nfipsIsolated(['run', flag, a, flag, b, '--control-socket', '']);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`nfips: ${flag} given 2 times`));
      assert.doesNotMatch(r.stderr, /must be of type string|is not a function/);
    }
  });

  it('list flags stay repeatable', () => {
    const r = spawnSync(process.execPath, [NFIPS, 'iptables', 'print', '--exclude', '192.0.2.0/24', '--exclude', '198.51.100.0/24', '--no-ipv6'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /198\.51\.100\.0\/24/);
  });
});
