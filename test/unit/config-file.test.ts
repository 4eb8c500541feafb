// --config FILE: every run flag in YAML or JSON, flags override it, and
// every mistake located (file, JSON path, what was expected; line and
// column for syntax).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { nfipsIsolated } from '../helpers/isolated-cli';
import { CONFIG_FLAGS, locateProblems, mergeConfig, readConfigFile } from '../../src/app/config-file';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { resolveRunOptions } from '../../src/app/run-options';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const dir = mkdtempSync(path.join(tmpdir(), 'nfips-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

function nfips(...args: string[]) {
  // `run` in its own network namespace: see test/helpers/isolated-cli.ts.
  const r = args[0] === 'run' ? nfipsIsolated(args) : spawnSync(process.execPath, [NFIPS, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('config file', () => {
  it('reads YAML with the long flag names; relative paths are relative to the file; flags override it', () => {
    const f = file('nfips.yaml', [
      '# a comment',
      'rules: rules.json',
      'queues: 2',
      'hook: both',
      'state-dir: ./state',
      'control-socket: ""',
      'stats-interval: 30',
      'fail-closed: true',
      'exclude: [192.0.2.0/24, "2001:db8::/32"]',
      'learn: 3600',
      '',
    ].join('\n'));
    const c = readConfigFile(f);
    const o = resolveRunOptions(mergeConfig(c, {}).flags);
    assert.equal(o.rules, path.join(dir, 'rules.json'));
    assert.deepEqual(o.queues, { first: 2, last: 2 });
    assert.equal(o.hook, 'both');
    assert.equal(o.stateDir, path.join(dir, 'state'));
    assert.equal(o.controlSocket, '');
    assert.equal(o.statsInterval, 30);
    assert.equal(o.failClosed, true);
    assert.deepEqual(o.exclude, ['192.0.2.0/24', '2001:db8::/32']);
    assert.equal(o.learnSeconds, 3600);
    assert.equal(o.configFile, null, 'no --config given to resolveRunOptions');
    assert.equal(resolveRunOptions({ ...mergeConfig(c, {}).flags, config: f }).configFile, f, 'recorded for the start event');
    const over = resolveRunOptions(mergeConfig(c, { queues: '0-1', statsInterval: '5', exclude: ['198.51.100.0/24'] }).flags);
    assert.deepEqual(over.queues, { first: 0, last: 1 });
    assert.equal(over.statsInterval, 5);
    assert.deepEqual(over.exclude, ['198.51.100.0/24'], 'a list given on the command line replaces the file\'s');
    assert.equal(over.hook, 'both', 'what the command line does not set stays the file\'s');
  });

  it('reads JSON too', () => {
    const o = resolveRunOptions(mergeConfig(readConfigFile(file('nfips.json', '{"queues": "0-3", "mode": "off"}')), {}).flags);
    assert.deepEqual(o.queues, { first: 0, last: 3 });
    assert.equal(o.mode, 'off');
  });

  it('locates every problem: unknown key, wrong type, bad choice', () => {
    const f = file('bad.yaml', 'queues: 0-1\nstats-interval: abc\nhook: sideways\nstate_dir: /x\nexclude: 10.0.0.0/8\n');
    assert.throws(() => readConfigFile(f), (e: Error) => {
      assert.match(e.message, /^invalid --config file .*bad\.yaml: 4 problems/);
      assert.match(e.message, /bad\.yaml: at \/state_dir: unknown field: not a flag of "nfips run"/);
      assert.match(e.message, /bad\.yaml: at \/stats-interval: expected an integer \(got "abc"\)/);
      assert.match(e.message, /bad\.yaml: at \/hook: expected one of "forward", "input", "both" \(got "sideways"\)/);
      assert.match(e.message, /bad\.yaml: at \/exclude: expected an array/);
      return true;
    });
  });

  it('gives line and column for YAML and JSON syntax errors, and refuses a key given twice', () => {
    assert.throws(() => readConfigFile(file('syntax.yaml', 'queues: 0-1\nexclude: [10.0.0.0/8,\n  hook: : x\n')), /syntax\.yaml: at \(root\): not valid YAML at line 3, column \d+/);
    assert.throws(() => readConfigFile(file('twice.yaml', 'queues: 0-1\nmode: off\nqueues: 2\n')), /twice\.yaml: at \(root\): not valid YAML at line 3, column 1: Map keys must be unique/);
    assert.throws(() => readConfigFile(file('twice.json', '{"queues": "0",\n "queues": "5"}')), /twice\.json: at \(root\): a key given twice at line 2, column 2: Map keys must be unique/);
    assert.throws(() => readConfigFile(file('syntax.json', '{\n  "queues": "0-1"\n  "mode": "off"\n}')), /syntax\.json: at \(root\): not valid JSON at line 3, column 3/);
    assert.throws(() => readConfigFile(file('list.yaml', '- queues\n')), /expected a mapping of flag names to values/);
    assert.throws(() => readConfigFile(path.join(dir, 'missing.yaml')), /invalid --config file .*missing\.yaml: 1 problem\n  .*missing\.yaml: at \(root\): no such file$/);
  });

  it('says where a value the file set came from when its check fails', () => {
    const c = readConfigFile(file('range.yaml', 'queues: 0-40\nstats-interval: 99999999\n'));
    const { flags, origins } = mergeConfig(c, { statsInterval: '5' });
    assert.throws(() => resolveRunOptions(flags), (e: Error) => {
      const msg = locateProblems(e.message, origins);
      assert.match(msg, /invalid --queues "0-40": at most 32 queues .* \(set in .*range\.yaml at \/queues\)/);
      assert.doesNotMatch(msg, /stats-interval/, 'the command line\'s 5 overrode the file\'s bad value');
      return true;
    });
  });

  it('holds every flag of nfips run and nfips watch, and nothing else', () => {
    const flagsOf = (command: string) => {
      const help = nfips(command, '--help').out;
      const flags = [...help.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1] as string).filter((f) => !['help', 'version', 'config'].includes(f));
      assert.ok(flags.length > 25, help);
      for (const f of flags) assert.ok(f in CONFIG_FLAGS, `--${f} of "nfips ${command}" is missing from CONFIG_FLAGS (src/app/config-file.ts)`);
      return flags;
    };
    const all = new Set([...flagsOf('run'), ...flagsOf('watch')]);
    for (const k of Object.keys(CONFIG_FLAGS)) assert.ok(all.has(k), `config key ${k} is not a flag of "nfips run" or "nfips watch"`);
  });

  it('works from the command line, with flags overriding it', () => {
    const f = file('cli.yaml', 'queues: 0-3\nexclude: [192.0.2.0/24]\nipv6: false\n');
    const r = nfips('iptables', 'print', '--config', f);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /--queue-balance 0:3/);
    assert.match(r.out, /-s 192\.0\.2\.0\/24/);
    assert.doesNotMatch(r.out, /ip6tables/);
    const o = nfips('iptables', 'print', '--config', f, '--queues', '4');
    assert.match(o.out, /--queue-num 4|NFQUEUE --queue-num 4/);
    const bad = nfips('run', '--config', file('clibad.yaml', 'queues: [1]\n'));
    assert.equal(bad.code, 2);
    assert.match(bad.err, /^nfips: invalid --config file .*clibad\.yaml: 1 problem\nnfips: .*clibad\.yaml: at \/queues: expected a string/);
  });
});

describe('integer flags', () => {
  it('say what was expected for text that is not a number, instead of NaN', () => {
    assert.throws(() => resolveRunOptions({ statsInterval: 'abc' }), (e: Error) => e.message === 'invalid --stats-interval "abc": expected an integer from 0 to 86400 (a whole number in decimal)');
    const r = nfips('run', '--stats-interval', 'abc', '--control-socket', '');
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid --stats-interval "abc": expected an integer from 0 to 86400/);
    assert.doesNotMatch(r.err, /NaN/);
    assert.equal(resolveRunOptions({ statsInterval: ' 7 ' }).statsInterval, 7);
  });

  it('rules check --config (the unit\'s check before each start) also refuses a bad suppression list it names', () => {
    file('bad-suppress.json', JSON.stringify({ suppress: [{}] }));
    const cfg = file('with-suppress.yaml', `rules: ${path.join(PACKAGE_ROOT, 'rules', 'default.json')}\nsuppress: bad-suppress.json\n`);
    const r = nfips('rules', 'check', '--config', cfg);
    assert.equal(r.code, 2, r.out);
    assert.match(r.err, /invalid anomaly suppression list .*bad-suppress\.json: 1 problem/);
  });
});
