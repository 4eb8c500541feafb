// `rules check` warnings: interfaces this host lacks, rules shadowed by an earlier one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { parseRuleText } from '../../src/rules/load';
import { covers, missingInterfaces, shadowedRules } from '../../src/rules/lint';
import { logRuleWarnings } from '../../src/app/rule-warnings';
import { compileRuleSet } from '../../src/verdict/rule-snapshot';

const rules = (doc: unknown) => parseRuleText(JSON.stringify(doc), 't.json');
/** Whether rule 0 covers rule 1 of these two. */
function pair(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const rs = rules({ rules: [{ action: 'drop', ...a }, { action: 'drop', ...b }] });
  return covers(rs.rules[0], rs.rules[1]);
}

describe('shadowed rules (conservative, field by field)', () => {
  const yes: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['anything covers a narrower rule', {}, { protocol: 'tcp', dport: 23, source: '10.0.0.0/8' }],
    ['wider prefix', { source: '10.0.0.0/8' }, { source: ['10.1.0.0/16', '10.2.3.4'] }],
    ['merged port ranges', { protocol: 'tcp', dport: ['80-89', '90-99'] }, { protocol: 'tcp', dport: '85-95' }],
    ['fewer required flags', { protocol: 'tcp', tcpFlags: 'SYN' }, { protocol: 'tcp', tcpFlags: 'SYN,!ACK' }],
    ['state any', { state: ['new', 'established'] }, { state: 'new' }],
    ['negated covers a disjoint plain list of its family', { source: '!10.0.0.0/8' }, { source: '192.0.2.0/24' }],
    ['negated covers a negated wider list', { source: '!10.1.0.0/16' }, { source: '!10.0.0.0/8' }],
    ['same interface', { in: 'lan0' }, { in: 'lan0', protocol: 'udp' }],
  ];
  for (const [name, a, b] of yes) it(`covers: ${name}`, () => assert.equal(pair(a, b), true));
  const no: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['narrower prefix', { source: '10.1.0.0/16' }, { source: '10.0.0.0/8' }],
    ['a field the later rule leaves open', { protocol: 'tcp' }, {}],
    ['other port', { protocol: 'tcp', dport: 22 }, { protocol: 'tcp', dport: 23 }],
    ['negated list and an address inside it', { source: '!10.0.0.0/8' }, { source: '10.1.2.3' }],
    ['negated list and an address of the other family', { source: '!10.0.0.0/8' }, { source: 'fd00::1' }],
    ['negated list and a narrower negated one', { source: '!10.0.0.0/8' }, { source: '!10.1.0.0/16' }],
    ['plain list never covers a negated one', { source: '0.0.0.0/0' }, { source: '!10.0.0.0/8' }],
    ['more required flags', { protocol: 'tcp', tcpFlags: 'SYN,!ACK' }, { protocol: 'tcp', tcpFlags: 'SYN' }],
    ['other interface', { in: 'lan0' }, { in: 'lan1' }],
    ['state narrower', { state: 'new' }, {}],
  ];
  for (const [name, a, b] of no) it(`does not cover: ${name}`, () => assert.equal(pair(a, b), false));

  it('lists shadowed rules; alert and disabled rules shadow nothing, disabled ones are not reported', () => {
    const rs = rules({ rules: [
      { id: 'watch', action: 'alert' },
      { id: 'off', action: 'drop', enabled: false },
      { id: 'lan', action: 'accept', source: '10.0.0.0/8' },
      { id: 'smb', action: 'drop', source: '10.1.0.0/16', protocol: 'tcp', dport: 445 },
      { id: 'dead', action: 'drop', source: '10.2.0.0/16', enabled: false },
      { id: 'web', action: 'drop', protocol: 'tcp', dport: 80 },
    ] });
    assert.deepEqual(shadowedRules(rs).map((s) => [s.index, s.id, s.by.id]), [[3, 'smb', 'lan']]);
  });
});

describe('missing interfaces', () => {
  const rs = rules({ rules: [{ id: 'a', action: 'accept', in: 'lan0', out: 'wan9' }, { id: 'b', action: 'drop', in: 'wan9' }, { id: 'c', action: 'drop', in: 'gone0', enabled: false }] });
  it('names each missing interface once, with the rules and fields that use it', () => {
    const m = missingInterfaces(rs, (n) => n === 'lan0');
    assert.deepEqual(m, [{ name: 'wan9', rules: [{ index: 0, id: 'a', field: 'out' }, { index: 1, id: 'b', field: 'in' }] }]);
  });
  it('nfips run logs a warning event for each name the compile could not resolve', () => {
    const events: [string, Record<string, unknown>, string | undefined][] = [];
    const unresolved = compileRuleSet(rs, { ifindex: (n) => (n === 'lan0' ? 3 : undefined) }).unresolvedInterfaces;
    assert.deepEqual(unresolved, ['gone0', 'wan9'], 'a disabled rule\'s interface is resolved too, but not warned about');
    logRuleWarnings({ event: (t, f, l) => void events.push([t, f as Record<string, unknown>, l]) }, rs, 3, unresolved);
    assert.equal(events.length, 1);
    assert.equal(events[0][0], 'rules_warning');
    assert.equal(events[0][2], 'warn');
    assert.equal(events[0][1].interface, 'wan9');
    assert.equal(events[0][1].rules_version, 3);
    assert.match(String(events[0][1].warning), /interface wan9 does not exist on this host; rules #0 "a" \(out\), #1 "b" \(in\) never match/);
  });
});

describe('nfips rules check warnings', () => {
  it('warn on stderr and exit 0; the disabled rules are counted', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lint-'));
    const file = path.join(dir, 'r.json');
    writeFileSync(file, JSON.stringify({ rules: [
      { id: 'all-lan', action: 'accept', in: 'nfipsnope0' },
      { id: 'telnet', action: 'drop', in: 'nfipsnope0', protocol: 'tcp', dport: 23 },
      { id: 'off', action: 'drop', enabled: false },
    ] }));
    const r = spawnSync(process.execPath, [path.join(PACKAGE_ROOT, 'bin', 'nfips'), 'rules', 'check', file], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /: OK \(native format, 3 rules \(1 disabled\), default accept\)/);
    assert.match(r.stderr, /nfips: warning: interface nfipsnope0 does not exist on this host; rules #0 "all-lan" \(in\), #1 "telnet" \(in\) never match/);
    assert.match(r.stderr, /nfips: warning: rule #1 "telnet" is shadowed by rule #0 "all-lan".*conservative/);
  });
});
