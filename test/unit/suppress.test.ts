// Anomaly suppression list: validated with located errors, loadable from a
// plain object, and a suppressed anomaly neither alerts nor blocks.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { isolatedArgv } from '../helpers/isolated-cli';
import { rejection } from '../helpers/rejection';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { writeSyntheticPcap } from '../../lab/support/synthetic-pcap';
import { parseSuppressions, readSuppressionFile, SuppressionError } from '../../src/detect/suppress';
import { runReplay } from '../../src/app/replay';

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'nfips-suppress-'));
const file = (n: string) => path.join(dir, n);
const ATTACKER = '10.0.9.66';
const ECHO_FLOOD = 9100104;

const problems = (doc: unknown, base?: string): string => rejection(() => parseSuppressions(doc, 'nfips.yaml', base), SuppressionError);

describe('suppression list', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('matches by signature, by source network, or both', () => {
    const s = parseSuppressions({ suppress: [{ signature_id: ECHO_FLOOD, source: '10.0.5.0/24', comment: 'monitoring' }, { source: ['192.0.2.7', 'fd00::/8'] }, { signature_id: 9100210 }] }, 'x');
    assert.equal(s.matches(ECHO_FLOOD, '10.0.5.9'), true);
    assert.equal(s.matches(ECHO_FLOOD, '10.0.6.9'), false, 'other source');
    assert.equal(s.matches(9100101, '10.0.5.9'), false, 'other signature');
    assert.equal(s.matches(9100101, '192.0.2.7'), true);
    assert.equal(s.matches(9100101, 'fd00::1'), true);
    assert.equal(s.matches(9100210, null), true, 'a signature-only entry covers anomalies without a source');
    assert.equal(s.matches(ECHO_FLOOD, null), false, 'a source entry never matches an anomaly without one');
  });

  const bad: [string, unknown, RegExp][] = [
    ['not an object', [], /nfips\.yaml: at \(root\): expected an object/],
    ['unknown field', { suppress: [{ signature: 1 }] }, /nfips\.yaml: at \/suppress\/0\/signature: unknown field/],
    ['entry with neither', { suppress: [{ comment: 'all' }] }, /\/suppress\/0: expected "signature_id", "source" or both/],
    ['bad network', { suppress: [{ source: ['10.0.0.0/8', '10.0.0.0/40'] }] }, /\/suppress\/0\/source\/1: expected an IPv4\/IPv6 address or CIDR.*\(got "10\.0\.0\.0\/40"\)/],
    ['negated network', { suppress: [{ source: '!10.0.0.0/8' }] }, /\/suppress\/0\/source: expected an IPv4\/IPv6 address or CIDR \(no "!", no "\*"\)/],
    ['signature not a number', { suppress: [{ signature_id: '9100104' }] }, /\/suppress\/0\/signature_id: expected a signature_id as the alerts carry it/],
  ];
  for (const [name, doc, re] of bad) it(`rejects: ${name}`, () => assert.match(problems(doc), re));

  it('locates problems under the path of a larger document it is embedded in', () => {
    assert.match(problems({ suppress: [{ source: 'nope' }] }, '/detection'), /nfips\.yaml: at \/detection\/suppress\/0\/source: expected/);
  });

  it('reads a file, with JSON errors located', () => {
    writeFileSync(file('bad.json'), '{ "suppress": [ }');
    assert.throws(() => readSuppressionFile(file('bad.json')), /invalid anomaly suppression list .*bad\.json: 1 problem\n.*not valid JSON/);
    assert.throws(() => readSuppressionFile(file('missing.json')), /missing\.json: at \(root\): cannot read file/);
  });

  it('a suppressed anomaly does not alert and is counted (replay of an echo flood)', () => {
    writeSyntheticPcap(file('ping.pcap'), { seconds: 200, seed: 3, flood: { from: ATTACKER, kind: 'ping', at: 120, seconds: 10, pps: 2000 } });
    const replay = (suppress: string | null) => {
      const events: [string, Record<string, unknown>][] = [];
      const s = runReplay({ pcap: file('ping.pcap'), rules: path.join(PACKAGE_ROOT, 'rules', 'default.json'), rulesFormat: 'auto', model: path.join(PACKAGE_ROOT, 'models', 'default.json'), suppress }, { event: (t, f) => void events.push([t, f as Record<string, unknown>]) });
      return { s, alerts: events.filter(([t, f]) => t === 'alert' && (f.alert as { signature_id: number }).signature_id === ECHO_FLOOD) };
    };
    const plain = replay(null);
    assert.ok(plain.alerts.length >= 1, 'the flood alerts without a list');
    assert.equal(plain.s.suppressed, 0);
    writeFileSync(file('other.json'), JSON.stringify({ suppress: [{ signature_id: ECHO_FLOOD, source: '10.0.5.0/24' }] }));
    assert.equal(replay(file('other.json')).alerts.length, plain.alerts.length, 'another source: still alerts');
    writeFileSync(file('mine.json'), JSON.stringify({ suppress: [{ signature_id: ECHO_FLOOD, source: '10.0.9.0/24' }] }));
    const quiet = replay(file('mine.json'));
    assert.equal(quiet.alerts.length, 0);
    assert.ok(quiet.s.suppressed >= 1);
  });

  it('nfips run refuses a bad list before installing anything (exit 2)', async () => {
    writeFileSync(file('neither.json'), JSON.stringify({ suppress: [{}] }));
    const r = await run(...isolatedArgv(['run', '--suppress', file('neither.json'), '--control-socket', '', '--state-dir', dir, '--log-file', file('log.json')])).catch((e: { code: number; stderr: string }) => e);
    assert.equal((r as { code: number }).code, 2);
    assert.match((r as { stderr: string }).stderr, /nfips: invalid anomaly suppression list .*neither\.json: 1 problem\nnfips: .*\/suppress\/0: expected "signature_id", "source" or both/);
  });
});
