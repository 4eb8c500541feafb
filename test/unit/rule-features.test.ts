// Per-rule enabled/log/severity/sid, vars, and the dry run (--rules-mode log).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildPacket } from '../../src/packet/build';
import { TCP_SYN } from '../../src/packet/decoded';
import { Field, metaColumns, NF_DROP, NF_REPEAT } from '../../src/batch/layout';
import { RuleFileError } from '../../src/rules/errors';
import { rejection } from '../helpers/rejection';
import { parseRuleText } from '../../src/rules/load';
import { RuleSet } from '../../src/rules/types';
import { ENGINE_COUNTERS, ruleCounterBytes, RulesMode, VerdictEngine } from '../../src/verdict/engine';
import { compileRuleSet } from '../../src/verdict/rule-snapshot';
import { DEFAULT_POLICY_SIGNATURE, LOCK_SIGNATURE, logRuleEvents, RULE_SIGNATURE_BASE } from '../../src/app/rule-event-log';

const rules = (doc: unknown) => parseRuleText(JSON.stringify(doc), 't.json');
const problems = (doc: unknown): string => rejection(() => rules(doc), RuleFileError);

const B = 8;
function setup(rs: RuleSet, rulesMode: RulesMode = 'enforce') {
  const meta = metaColumns(new ArrayBuffer(Field.Count * B * 4), B);
  const counters = new Float64Array(ENGINE_COUNTERS.length);
  const engine = new VerdictEngine(B, meta, compileRuleSet(rs, { ifindex: () => undefined }), 0, new ArrayBuffer(ruleCounterBytes(rs.rules.length)), { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 100, flowCapacity: 1024, rulesMode }, counters);
  const buf = new Uint8Array(B * 256);
  const run = (packets: Buffer[]) => {
    packets.forEach((p, i) => {
      buf.set(p.subarray(0, 256), i * 256);
      meta.offset[i] = i * 256;
      meta.capLen[i] = Math.min(p.length, 256);
      meta.origLen[i] = p.length;
      meta.hook[i] = 2;
      meta.tsSec[i] = 1000;
    });
    engine.process(packets.length, buf);
    return Array.from(meta.verdict.subarray(0, packets.length));
  };
  const counter = (name: (typeof ENGINE_COUNTERS)[number]) => counters[ENGINE_COUNTERS.indexOf(name)];
  return { engine, run, counter };
}

const telnet = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40000, dport: 23, tcpFlags: TCP_SYN });
const web = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40001, dport: 80, tcpFlags: TCP_SYN });
const other = buildPacket({ src: '172.16.0.5', dst: '192.0.2.7', proto: 6, sport: 40002, dport: 8080, tcpFlags: TCP_SYN });

/** Events as the log would have them. */
function logged(rs: RuleSet, events: ReturnType<VerdictEngine['events']['drain']>): { type: string; f: Record<string, unknown> }[] {
  const out: { type: string; f: Record<string, unknown> }[] = [];
  logRuleEvents({ event: (type, f) => void out.push({ type, f: f as Record<string, unknown> }) }, 0, rs, events);
  return out;
}

describe('per-rule enabled, log, severity, sid', () => {
  it('loads them, with defaults when absent', () => {
    const rs = rules({ rules: [{ id: 'a', action: 'drop', enabled: false, log: false, severity: 1, sid: 42 }, { id: 'b', action: 'accept' }, { id: 'c', action: 'drop' }] });
    assert.deepEqual(rs.rules.map((r) => [r.enabled, r.log, r.severity, r.sid]), [[false, false, 1, 42], [true, false, null, null], [true, true, null, null]]);
  });

  const bad: [string, unknown, RegExp][] = [
    ['enabled not boolean', { rules: [{ action: 'drop', enabled: 'no' }] }, /\/rules\/0\/enabled: expected true or false \(a JSON boolean\) \(got "no"\)/],
    ['severity out of range', { rules: [{ action: 'drop', severity: 5 }] }, /\/rules\/0\/severity: expected a number <= 4 \(got 5\)/],
    ['sid in nfips\' own range', { rules: [{ action: 'drop', sid: 1000000 }] }, /\/rules\/0\/sid: expected a number <= 999997 \(got 1000000\)/],
    ['duplicate sid', { rules: [{ action: 'drop', sid: 7 }, { action: 'drop', sid: 7 }] }, /\/rules\/1\/sid: duplicate sid, already used by \/rules\/0.*\(got 7\)/],
  ];
  for (const [name, doc, re] of bad) it(`rejects: ${name}`, () => assert.match(problems(doc), re));

  it('a disabled rule never matches, and later rules decide', () => {
    const rs = rules({ default: 'accept', rules: [{ id: 'off', action: 'drop', dport: 23, enabled: false }, { id: 'on', action: 'reject', dport: 23 }] });
    const s = setup(rs);
    assert.deepEqual(s.run([telnet]), [NF_REPEAT]);
    assert.equal(s.counter('rejected'), 1);
    assert.equal(s.counter('dropped'), 0);
  });

  it('log: false silences drop events, log: true logs accepts; alerts always log', () => {
    const rs = rules({ default: 'accept', rules: [{ id: 'a', action: 'alert', dport: 23, log: false }, { id: 'quiet', action: 'drop', dport: 23, log: false }, { id: 'loud', action: 'accept', dport: 80, log: true }, { id: 'plain', action: 'accept', dport: 8080 }] });
    const s = setup(rs);
    assert.deepEqual(s.run([telnet, web, other]), [NF_DROP, NF_REPEAT, NF_REPEAT]);
    const ev = s.engine.events.drain();
    assert.deepEqual(ev.map((e) => [e.rule_index, e.action]), [[0, 'alert'], [2, 'accept']]);
    const lines = logged(rs, ev);
    assert.equal(lines[1].type, 'accept');
    assert.equal((lines[1].f.alert as { action: string }).action, 'allowed');
  });

  it('events carry the rule\'s sid and severity, else the derived ones', () => {
    const rs = rules({ default: 'drop', rules: [{ id: 's', action: 'drop', dport: 23, sid: 4242, severity: 1 }, { id: 'n', action: 'drop', dport: 80 }] });
    const s = setup(rs);
    s.run([telnet, web, other]);
    const alerts = logged(rs, s.engine.events.drain()).map((l) => l.f.alert as { signature_id: number; severity: number });
    assert.deepEqual(alerts.map((a) => [a.signature_id, a.severity]), [[4242, 1], [RULE_SIGNATURE_BASE + 1, 2], [DEFAULT_POLICY_SIGNATURE, 2]]);
  });
});

describe('vars', () => {
  const doc = {
    vars: { HOME_NET: ['10.0.0.0/8', 'fd00::/8'], WEB_PORTS: [80, 443, '8000-8100'], DMZ: ['192.0.2.0/24'] },
    rules: [
      { id: 'web', action: 'accept', source: '$HOME_NET', dport: '$WEB_PORTS' },
      { id: 'out', action: 'drop', source: '!$HOME_NET', destination: ['$DMZ', '198.51.100.1'], sport: ['$WEB_PORTS', 22] },
    ],
  };

  it('resolve at load time into plain prefixes and port ranges', () => {
    const rs = rules(doc);
    const plain = rules({ rules: [
      { id: 'web', action: 'accept', source: ['10.0.0.0/8', 'fd00::/8'], dport: [80, 443, '8000-8100'] },
      { id: 'out', action: 'drop', source: ['!10.0.0.0/8', '!fd00::/8'], destination: ['192.0.2.0/24', '198.51.100.1'], sport: [80, 443, '8000-8100', 22] },
    ] });
    assert.deepEqual(rs.rules, plain.rules);
  });

  it('match packets as the expanded rules do', () => {
    const rs = rules({ ...doc, default: 'drop' });
    const s = setup(rs);
    assert.deepEqual(s.run([web, other, telnet]), [NF_REPEAT, NF_DROP, NF_DROP]);
  });

  const bad: [string, unknown, RegExp][] = [
    ['unknown var', { vars: { HOME_NET: ['10.0.0.0/8'] }, rules: [{ action: 'drop', source: ['192.0.2.1', '$HOME'] }] }, /t\.json: at \/rules\/0\/source\/1: unknown var; expected one of the address vars defined under \/vars \(\$HOME_NET\) \(got "\$HOME"\)/],
    ['no vars at all', { rules: [{ action: 'drop', dport: '$WEB' }] }, /\/rules\/0\/dport: unknown var; expected one of the port vars defined under \/vars \(there are none\) \(got "\$WEB"\)/],
    ['port var as an address', { vars: { WEB: [80] }, rules: [{ action: 'drop', destination: '!$WEB' }] }, /\/rules\/0\/destination: \$WEB is a port set; expected an address var here \(got "!\$WEB"\)/],
    ['address var as a port', { vars: { NET: ['10.0.0.0/8'] }, rules: [{ action: 'drop', dport: ['$NET'] }] }, /\/rules\/0\/dport\/0: \$NET is an address set; expected a port var here/],
    ['negated port var', { vars: { WEB: [80] }, rules: [{ action: 'drop', dport: '!$WEB' }] }, /\/rules\/0\/dport: expected a port/],
    ['var mixing addresses and ports', { vars: { X: ['10.0.0.0/8', 80] }, rules: [] }, /\/vars\/X\/1: expected an address or CIDR like the var's first entry.*\(got 80\)/],
    ['bad var entry', { vars: { X: ['10.0.0.0/33'] }, rules: [] }, /\/vars\/X\/0: expected an IPv4\/IPv6 address or CIDR/],
    ['negation inside a var', { vars: { X: ['!10.0.0.0/8'] }, rules: [] }, /\/vars\/X\/0: expected/],
    ['empty var', { vars: { X: [] }, rules: [] }, /\/vars\/X: expected at least 1 item\(s\) \(got \[\]\)/],
    ['var that is not a list', { vars: { X: '10.0.0.0/8' }, rules: [] }, /\/vars\/X: expected an array \(got "10\.0\.0\.0\/8"\)/],
    ['bad var name', { vars: { '9x': [80] }, rules: [] }, /\/vars\/9x: expected a var name/],
    ['negated var mixed with plain entries', { vars: { N: ['10.0.0.0/8'] }, rules: [{ action: 'drop', source: ['!$N', '192.0.2.1'] }] }, /\/rules\/0\/source: mixes negated and plain entries/],
  ];
  for (const [name, d, re] of bad) it(`rejects: ${name}`, () => assert.match(problems(d), re));
});

describe('--rules-mode log (dry run)', () => {
  const rs = rules({ default: 'drop', rules: [{ id: 'no-telnet', action: 'drop', dport: 23, log: false }, { id: 'rej', action: 'reject', dport: 8080 }, { id: 'web', action: 'accept', dport: 80 }] });
  const ping = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 1, icmpType: 8 });

  it('accepts what would be dropped or rejected, counts it as such, logs would-drop/would-reject', () => {
    const s = setup(rs, 'log');
    assert.deepEqual(s.run([telnet, web, other, ping]), [NF_REPEAT, NF_REPEAT, NF_REPEAT, NF_REPEAT]);
    assert.equal(s.counter('dropped'), 2, 'the rule drop and the default drop');
    assert.equal(s.counter('rejected'), 1);
    assert.equal(s.counter('accepted'), 1);
    assert.equal(s.counter('dryRunPassed'), 3);
    const ev = s.engine.events.drain();
    assert.deepEqual(ev.map((e) => [e.rule_index, e.action]), [[0, 'would-drop'], [1, 'would-reject'], [-1, 'would-drop']], 'every would-drop is logged, even of a log: false rule');
    const lines = logged(rs, ev);
    assert.deepEqual(lines.map((l) => [l.type, (l.f.alert as { action: string }).action]), [['drop', 'would-drop'], ['reject', 'would-reject'], ['drop', 'would-drop']]);
  });

  it('enforce mode drops the same packets', () => {
    const s = setup(rs, 'enforce');
    assert.deepEqual(s.run([telnet, web, other, ping]), [NF_DROP, NF_REPEAT, NF_REPEAT, NF_DROP]);
    assert.equal(s.counter('dryRunPassed'), 0);
    assert.deepEqual(s.engine.events.drain().map((e) => e.action), ['reject', 'drop']);
  });

  it('lock drops become would-drops by "lock"', () => {
    const locked = rules({ lock: true, rules: [] });
    const s = setup(locked, 'log');
    assert.deepEqual(s.run([web]), [NF_REPEAT]);
    assert.equal(s.counter('lockDrops'), 1);
    const lines = logged(locked, s.engine.events.drain());
    assert.equal(lines.length, 1);
    assert.equal(lines[0].f.rule_id, 'lock');
    assert.deepEqual(lines[0].f.alert, { action: 'would-drop', signature_id: LOCK_SIGNATURE, signature: 'nfips lock: every packet is dropped', category: 'nfips lock', severity: 2 });
  });
});
