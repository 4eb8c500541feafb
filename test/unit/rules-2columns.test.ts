import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildPacket } from '../../src/packet/build';
import { decodePacket } from '../../src/packet/decode';
import { createDecodedBatch } from '../../src/packet/decoded';
import { LinearMatcher, resolveRules } from '../../src/rules/linear';
import { RuleFileError } from '../../src/rules/errors';
import { detectFormat, parseRuleText } from '../../src/rules/load';
import { RuleSet } from '../../src/rules/types';
import { rejection } from '../helpers/rejection';

// Verbatim from the 2columnS project, as it installs it.
const VERBATIM = '{ "lock": "false", "rules": [ { "source": "*", "destination": "*", "port": 22, "protocol": 6, "action": 1 } ], "default": "ACCEPT" }';

/** The 2columnS decision for one packet: rule action, else the default. */
function decide(rs: RuleSet, spec: Parameters<typeof buildPacket>[0]): 'accept' | 'drop' {
  if (rs.lock) return 'drop';
  const d = createDecodedBatch(1);
  const p = buildPacket(spec);
  decodePacket(p, 0, p.length, 0, d);
  const m = new LinearMatcher(resolveRules(rs.rules, () => undefined));
  const r = m.match({ d, inIfindex: new Uint32Array(1), outIfindex: new Uint32Array(1), hook: new Uint32Array([1]), flowState: new Uint8Array(1) }, 0, 0);
  return r >= 0 ? (rs.rules[r].action as 'accept' | 'drop') : rs.default;
}

const ssh = { src: '10.0.0.5', dst: '10.0.0.1', proto: 6, sport: 40000, dport: 22 };
const web = { ...ssh, dport: 80 };

describe('2columnS rule files', () => {
  it('loads the verbatim example unchanged and drops SSH only', () => {
    const rs = parseRuleText(VERBATIM, 'rules.json');
    assert.equal(rs.origin.format, '2columns');
    assert.equal(rs.lock, false);
    assert.equal(rs.default, 'accept');
    assert.equal(decide(rs, ssh), 'drop');
    assert.equal(decide(rs, web), 'accept');
    assert.equal(decide(rs, { ...ssh, proto: 17 }), 'accept', 'protocol 6 only');
  });

  it('is detected by its string lock or numeric action, and can be forced', () => {
    assert.equal(detectFormat(JSON.parse(VERBATIM)), '2columns');
    assert.equal(detectFormat({ rules: [{ source: '*', destination: '*', port: 0, protocol: 250, action: 0 }] }), '2columns');
    assert.equal(detectFormat({ lock: false, rules: [{ action: 'drop' }] }), 'native');
    assert.throws(() => parseRuleText(VERBATIM, 'r.json', 'native'), /\/lock: expected true or false/);
  });

  it('lock is "true"/"false" in any case', () => {
    assert.equal(parseRuleText('{"lock":"TRUE","rules":[],"default":"ACCEPT"}', 'r').lock, true);
    assert.equal(parseRuleText('{"lock":"False","rules":[],"default":"ACCEPT"}', 'r').lock, false);
    const locked = parseRuleText('{"lock":"tRuE","rules":[{"source":"*","destination":"*","port":0,"protocol":250,"action":0}],"default":"ACCEPT"}', 'r');
    assert.equal(decide(locked, web), 'drop');
    assert.throws(() => parseRuleText('{"lock":"yes","rules":[]}', 'r'), /\/lock: expected "true" or "false" \(any case\) \(got "yes"\)/);
  });

  it('default drops only on exactly "DROP"', () => {
    for (const [text, expected] of [['DROP', 'drop'], ['drop', 'accept'], ['Drop', 'accept'], ['ACCEPT', 'accept'], ['whatever', 'accept']] as const) {
      assert.equal(parseRuleText(JSON.stringify({ lock: 'false', rules: [], default: text }), 'r').default, expected, text);
    }
  });

  it('port 0 and protocol 250 mean any; hosts are exact; first match wins', () => {
    const rs = parseRuleText(
      JSON.stringify({
        lock: 'false',
        rules: [
          { source: '10.0.0.5', destination: '*', port: 0, protocol: 250, action: 0 },
          { source: '*', destination: '*', port: 0, protocol: 250, action: 1 },
        ],
        default: 'ACCEPT',
      }),
      'r',
    );
    assert.equal(decide(rs, ssh), 'accept', 'exact source accepted first');
    assert.equal(decide(rs, { ...ssh, src: '10.0.0.6' }), 'drop', 'everything else hits the catch-all drop');
    assert.equal(decide(rs, { src: '10.0.0.6', dst: '10.0.0.1', proto: 1 }), 'drop', 'ICMP too: protocol 250 is any');
    assert.equal(decide(rs, { src: 'fd00::6', dst: 'fd00::1', proto: 6, dport: 22 }), 'accept', 'the 2columnS module never sees IPv6');
  });

  it('rejects what 2columnS cannot mean, with the path', () => {
    const bad = (rule: object) => rejection(() => parseRuleText(JSON.stringify({ lock: 'false', rules: [rule], default: 'ACCEPT' }), 'r.json'), RuleFileError);
    const base = { source: '*', destination: '*', port: 22, protocol: 6, action: 1 };
    assert.match(bad({ ...base, source: '10.0.0.0/8' }), /\/rules\/0\/source: expected an exact dotted-quad IPv4 address or "\*" \(2columnS format\) \(got "10\.0\.0\.0\/8"\)/);
    assert.match(bad({ ...base, port: 70000 }), /\/rules\/0\/port: expected the destination port 0-65535 \(0 means any\)/);
    assert.match(bad({ ...base, action: 2 }), /\/rules\/0\/action: expected 0 \(accept\) or 1 \(drop\)/);
    assert.match(bad({ ...base, protocol: 'tcp' }), /\/rules\/0\/protocol: expected an IP protocol number 0-255/);
    const { port: _port, ...noPort } = base;
    void _port;
    assert.match(bad({ ...noPort, action: 1 }), /\/rules\/0: missing required field "port"/);
  });
});
