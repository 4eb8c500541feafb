import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateRules, ruleSetToJson } from '../../lab/support/rule-gen';
import { parseRuleText } from '../../src/rules/load';
import { anyRule, FLOW_ESTABLISHED, FLOW_NEW, Rule } from '../../src/rules/types';
import { parsePrefix } from '../../src/rules/address';

const strip = (r: Rule & { inIndex?: number; outIndex?: number }): Rule => {
  const { inIndex: _i, outIndex: _o, ...rest } = r;
  void _i;
  void _o;
  return JSON.parse(JSON.stringify(rest)) as Rule;
};

describe('rule set -> JSON -> loader', () => {
  it('round-trips generated rule sets', () => {
    for (const seed of [1, 2, 3]) {
      const rules = generateRules(500, seed);
      const back = parseRuleText(JSON.stringify(ruleSetToJson({ lock: false, default: 'accept', rules })), 'gen.json');
      assert.deepEqual(back.rules.map(strip), rules.map(strip));
    }
  });

  it('round-trips every field', () => {
    const r: Rule = {
      ...anyRule('all', 'reject'),
      description: 'd',
      protocol: 6,
      source: { negate: true, prefixes: [parsePrefix('10.0.0.0/8')!, parsePrefix('2001:db8::/32')!] },
      destination: { negate: false, prefixes: [parsePrefix('192.0.2.7')!] },
      sport: [{ lo: 1, hi: 1023 }],
      dport: [{ lo: 23, hi: 23 }, { lo: 2323, hi: 2323 }],
      tcpFlags: { mask: 0x12, set: 0x02 },
      in: 'lan0',
      out: 'wan0',
      hook: 2,
      family: 4,
      state: FLOW_NEW | FLOW_ESTABLISHED,
      enabled: false,
      log: false,
      severity: 4,
      sid: 99,
    };
    const icmp: Rule = { ...anyRule('icmp', 'alert'), protocol: 58, icmpType: 128, icmpCode: 0, hook: 1, state: FLOW_NEW };
    const json = ruleSetToJson({ lock: true, default: 'drop', rules: [r, icmp] });
    assert.equal((json.rules as { tcpFlags?: string }[])[0].tcpFlags, 'SYN,!ACK');
    const back = parseRuleText(JSON.stringify(json), 'x.json');
    assert.equal(back.lock, true);
    assert.deepEqual(back.rules.map(strip), [r, icmp].map(strip));
  });
});
