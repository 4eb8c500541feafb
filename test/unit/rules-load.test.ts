import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRuleText } from '../../src/rules/load';
import { RuleFileError } from '../../src/rules/errors';
import { rejection } from '../helpers/rejection';

const F = 'test.json';
const problems = (doc: unknown): string => rejection(() => parseRuleText(JSON.stringify(doc), F), RuleFileError);

describe('native rule files', () => {
  it('normalises a good file', () => {
    const rs = parseRuleText(
      JSON.stringify({
        lock: false,
        default: 'drop',
        rules: [
          { id: 'a', action: 'drop', protocol: 'tcp', source: '*', destination: ['192.0.2.0/24', '2001:db8::/32'], dport: [23, '2323', '8000-8080'] },
          { action: 'accept', protocol: 17, source: '!10.0.0.0/8' },
        ],
      }),
      F,
    );
    assert.equal(rs.default, 'drop');
    assert.equal(rs.rules[0].protocol, 6);
    assert.equal(rs.rules[0].source, null, '"*" means any');
    assert.equal(rs.rules[0].destination?.prefixes.length, 2);
    assert.deepEqual(rs.rules[0].dport, [{ lo: 23, hi: 23 }, { lo: 2323, hi: 2323 }, { lo: 8000, hi: 8080 }]);
    assert.equal(rs.rules[1].id, 'rule-1', 'generated from the index');
    assert.equal(rs.rules[1].source?.negate, true);
    assert.deepEqual(rs.rules[1].source?.prefixes[0].words, [0x0a000000, 0, 0, 0]);
    assert.equal(rs.origin.format, 'native');
    assert.match(rs.origin.sha256, /^[0-9a-f]{64}$/);
  });

  it('clears host bits of a CIDR', () => {
    const rs = parseRuleText(JSON.stringify({ rules: [{ action: 'drop', source: '10.1.2.3/8' }] }), F);
    assert.deepEqual(rs.rules[0].source?.prefixes[0].words, [0x0a000000, 0, 0, 0]);
  });

  const bad: [string, unknown, RegExp][] = [
    ['bad CIDR', { rules: [{ action: 'drop', source: '10.0.0.0/33' }] }, /test\.json: at \/rules\/0\/source: expected "\*", an IPv4\/IPv6 address or CIDR.*got "10\.0\.0\.0\/33"/],
    ['bad address', { rules: [{ action: 'drop', destination: ['10.0.0.1', '300.1.1.1'] }] }, /\/rules\/0\/destination\/1: expected "\*", an IPv4\/IPv6 address.*got "300\.1\.1\.1"/],
    ['port out of range', { rules: [{ action: 'drop', dport: 70000 }] }, /\/rules\/0\/dport: .*port.*got 70000/],
    ['range lo > hi', { rules: [{ action: 'drop', dport: '90-80' }] }, /\/rules\/0\/dport: expected a port 0-65535, a range "lo-hi" with lo <= hi.*\(got "90-80"\)/],
    ['unknown field', { rules: [{ action: 'drop', prot: 'tcp' }] }, /\/rules\/0\/prot: unknown field/],
    ['unknown action', { rules: [{ action: 'block' }] }, /\/rules\/0\/action: expected one of "accept", "drop", "reject", "alert" \(got "block"\)/],
    ['missing action', { rules: [{ protocol: 'tcp' }] }, /\/rules\/0: missing required field "action"/],
    ['unknown protocol', { rules: [{ action: 'drop', protocol: 'tpc' }] }, /\/rules\/0\/protocol: expected a protocol name.*got "tpc"/],
    ['duplicate ids', { rules: [{ id: 'x', action: 'drop' }, { id: 'x', action: 'accept' }] }, /\/rules\/1\/id: duplicate id, already used by \/rules\/0 \(got "x"\)/],
    ['bad default', { default: 'ACCEPTED', rules: [] }, /\/default: expected "accept" or "drop" \(got "ACCEPTED"\)/],
    ['lock not boolean', { lock: 1, rules: [] }, /\/lock: expected true or false \(a JSON boolean\) \(got 1\)/],
    ['ports on ICMP', { rules: [{ action: 'drop', protocol: 'icmp', dport: 80 }] }, /\/rules\/0\/dport: only tcp, udp, sctp and udplite packets have ports/],
    ['clash with a generated id', { rules: [{ id: 'rule-1', action: 'drop' }, { action: 'drop' }] }, /\/rules\/1: has no id, and the one generated for it is already used by \/rules\/0 \(got "rule-1"\)/],
    ['tcpFlags on a UDP rule', { rules: [{ action: 'drop', protocol: 'udp', tcpFlags: 'SYN' }] }, /\/rules\/0\/tcpFlags: only TCP packets have TCP flags/],
    ['bad tcpFlags', { rules: [{ action: 'drop', tcpFlags: 'SYN,FOO' }] }, /\/rules\/0\/tcpFlags: expected a comma list of SYN, ACK/],
    ['bad state', { rules: [{ action: 'drop', state: 'related' }] }, /\/rules\/0\/state: expected "new", "established"/],
    ['bad hook', { rules: [{ action: 'drop', hook: 'output' }] }, /\/rules\/0\/hook: expected "forward" or "input" \(got "output"\)/],
    ['icmpType out of range', { rules: [{ action: 'drop', protocol: 'icmp', icmpType: 300 }] }, /\/rules\/0\/icmpType: expected a number <= 255 \(got 300\)/],
    ['mixed negation', { rules: [{ action: 'drop', source: ['!10.0.0.0/8', '192.0.2.1'] }] }, /\/rules\/0\/source: mixes negated and plain entries/],
  ];
  for (const [name, doc, re] of bad) {
    it(`rejects: ${name}`, () => assert.match(problems(doc), re));
  }

  it('reports every problem, not just the first', () => {
    const msg = problems({ rules: [{ action: 'nope' }, { action: 'drop', dport: -1 }] });
    assert.match(msg, /2 problems/);
    assert.match(msg, /\/rules\/0\/action/);
    assert.match(msg, /\/rules\/1\/dport/);
  });

  it('rejects text that is not JSON, naming the file', () => {
    assert.throws(() => parseRuleText('{ "rules": [', F), /invalid rules file test\.json.*\n.*not valid JSON/);
  });
});
