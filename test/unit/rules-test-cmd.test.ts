import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explain, formatExplanation } from '../../src/rules/explain';
import { parseRuleText } from '../../src/rules/load';
import { parsePacketText } from '../../src/rules/packet-text';
import { FLOW_ESTABLISHED } from '../../src/rules/types';

describe('packet descriptions', () => {
  it('reads the documented example', () => {
    const p = parsePacketText('tcp 10.0.0.5:40000 -> 192.0.2.7:23 flags S in lan0');
    assert.deepEqual(p.spec, { src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40000, dport: 23, tcpFlags: 0x02 });
    assert.equal(p.in, 'lan0');
    assert.equal(p.hook, 2);
  });

  it('reads IPv6 with ports, flag names, hook, state, icmp', () => {
    const p = parsePacketText('udp [2001:db8::1]:5353 -> [2001:db8::53]:53 out wan0 hook input state established');
    assert.equal(p.spec.src, '2001:db8::1');
    assert.equal(p.spec.dport, 53);
    assert.equal(p.out, 'wan0');
    assert.equal(p.hook, 1);
    assert.equal(p.state, FLOW_ESTABLISHED);
    assert.equal(parsePacketText('tcp 1.2.3.4:1 -> 5.6.7.8:2 flags SYN,ACK').spec.tcpFlags, 0x12);
    assert.equal(parsePacketText('icmpv6 fd00::1 -> fd00::2 type 128').spec.icmpType, 128);
  });

  it('says what is wrong', () => {
    assert.throws(() => parsePacketText('tcp 10.0.0.5 10.0.0.6'), /expected "PROTO SRC\[:PORT\] -> DST\[:PORT\]/);
    assert.throws(() => parsePacketText('tpc 10.0.0.5 -> 10.0.0.6'), /unknown protocol "tpc"/);
    assert.throws(() => parsePacketText('tcp 10.0.0.500 -> 10.0.0.6'), /"10\.0\.0\.500" is not an address/);
    assert.throws(() => parsePacketText('tcp 10.0.0.5:70000 -> 10.0.0.6'), /port 70000 is out of range/);
    assert.throws(() => parsePacketText('tcp 10.0.0.5 -> 10.0.0.6 flags SYN,FOO'), /unknown TCP flag "FOO"/);
    assert.throws(() => parsePacketText('tcp 10.0.0.5 -> 10.0.0.6 colour red'), /unknown word "colour"/);
  });
});

describe('explain', () => {
  const rs = parseRuleText(
    JSON.stringify({
      default: 'accept',
      rules: [
        { id: 'v6-only', action: 'drop', family: 'ipv6' },
        { id: 'watch', action: 'alert', protocol: 'tcp' },
        { id: 'wan-ssh', action: 'drop', protocol: 'tcp', dport: 22, in: 'wan0' },
        { id: 'no-telnet', description: 'clear text', action: 'reject', protocol: 'tcp', dport: 23, tcpFlags: 'SYN,!ACK' },
      ],
    }),
    'r.json',
  );

  it('names the deciding rule, the alerts, and why earlier rules missed', () => {
    const e = explain(rs, parsePacketText('tcp 10.0.0.5:40000 -> 192.0.2.7:23 flags S in lan0'));
    assert.equal(e.verdict, 'reject');
    assert.deepEqual(e.decidedBy, { index: 3, id: 'no-telnet', description: 'clear text' });
    assert.deepEqual(e.alerts, ['watch']);
    assert.deepEqual(e.skipped, [{ index: 0, id: 'v6-only', field: 'family', want: 'ipv6', got: 'ipv4' }, { index: 2, id: 'wan-ssh', field: 'in', want: 'wan0', got: 'lan0' }]);
    assert.match(formatExplanation(e, false), /^verdict: reject by rule #3 "no-telnet" \(clear text\)\nalert: rule "watch"/);
  });

  it('falls through to the default policy', () => {
    const e = explain(rs, parsePacketText('tcp 10.0.0.5:40000 -> 192.0.2.7:23 flags SA in lan0'));
    assert.equal(e.decidedBy, 'default');
    assert.equal(e.skipped.at(-1)?.field, 'tcpFlags');
    assert.match(formatExplanation(e, false), /no rule matched; default policy/);
  });

  it('--verbose shows each non-matching rule\'s field, what it wants and what the packet has, even below 20 rules', () => {
    const e = explain(rs, parsePacketText('tcp 10.0.0.5:40000 -> 192.0.2.7:23 flags SA in lan0'));
    const quiet = formatExplanation(e, false);
    const verbose = formatExplanation(e, true);
    assert.notEqual(verbose, quiet);
    assert.match(quiet, /rule #0 "v6-only" did not match: family$/m);
    assert.match(verbose, /rule #0 "v6-only" did not match: family \(rule: ipv6; packet: ipv4\)$/m);
    assert.match(verbose, /rule #2 "wan-ssh" did not match: in \(rule: wan0; packet: lan0\)$/m);
    assert.match(verbose, /rule #3 "no-telnet" did not match: tcpFlags \(rule: SYN,!ACK; packet: SYN,ACK\)$/m);
    const ports = explain(rs, parsePacketText('tcp 10.0.0.5:40000 -> 192.0.2.7:80 in wan0'));
    assert.match(formatExplanation(ports, true), /rule #2 "wan-ssh" did not match: dport \(rule: 22; packet: 80\)$/m);
    const off = parseRuleText(JSON.stringify({ rules: [{ id: 'off', action: 'drop', enabled: false }] }), 'r.json');
    assert.match(formatExplanation(explain(off, parsePacketText('udp 10.0.0.5 -> 10.0.0.6')), true), /rule #0 "off" did not match: enabled \(the rule is disabled\)/);
  });

  it('says when a rule needs an interface the packet does not name', () => {
    const e = explain(rs, parsePacketText('tcp 10.0.0.5:4 -> 10.0.0.9:22'));
    assert.deepEqual(e.missingInterfaces, [{ index: 2, id: 'wan-ssh', field: 'in', name: 'wan0' }]);
    assert.match(formatExplanation(e, false), /rule #2 "wan-ssh" did not match: in \(the rule needs in interface wan0 and the packet names none; add "in wan0" to --packet\)/);
  });

  it('matches interface names between packet and rules', () => {
    assert.deepEqual(explain(rs, parsePacketText('tcp 10.0.0.5:4 -> 10.0.0.9:22 in wan0')).decidedBy, { index: 2, id: 'wan-ssh' });
    assert.equal(explain(rs, parsePacketText('tcp 10.0.0.5:4 -> 10.0.0.9:22 in lan0')).decidedBy, 'default');
  });
});
