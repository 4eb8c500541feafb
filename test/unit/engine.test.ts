import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildPacket } from '../../src/packet/build';
import { TCP_ACK, TCP_SYN } from '../../src/packet/decoded';
import { Field, metaColumns, NF_ACCEPT, NF_DROP, NF_REPEAT } from '../../src/batch/layout';
import { parseRuleText } from '../../src/rules/load';
import { RuleSet } from '../../src/rules/types';
import { ENGINE_COUNTERS, ruleCounterBytes, VerdictEngine, VerdictMode } from '../../src/verdict/engine';
import { MalformedPolicy } from '../../src/verdict/hidden-guard';
import { compileRuleSet } from '../../src/verdict/rule-snapshot';
import { fragment4, withExtensions } from '../helpers/evasive-packets';

const B = 8;
const rules = (doc: unknown) => parseRuleText(JSON.stringify(doc), 't.json');

function setup(rs: RuleSet, mode: VerdictMode = 'repeat', malformed?: MalformedPolicy) {
  const meta = metaColumns(new ArrayBuffer(Field.Count * B * 4), B);
  const counters = new Float64Array(ENGINE_COUNTERS.length);
  const ruleCounters = new ArrayBuffer(ruleCounterBytes(rs.rules.length));
  const ifaces: Record<string, number> = { lan0: 3, wan0: 4 };
  const compile = (x: RuleSet) => compileRuleSet(x, { ifindex: (n) => ifaces[n], malformed });
  const engine = new VerdictEngine(B, meta, compile(rs), 0, ruleCounters, { mode, mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 2, flowCapacity: 1024, malformed }, counters);
  const buf = new Uint8Array(B * 256);
  const run = (packets: Buffer[], extra: { mark?: number[]; in?: number[]; hook?: number[] } = {}, now = 1000) => {
    packets.forEach((p, i) => {
      // A 256-byte copy range, as nfips' default.
      buf.set(p.subarray(0, 256), i * 256);
      meta.offset[i] = i * 256;
      meta.capLen[i] = Math.min(p.length, 256);
      meta.origLen[i] = p.length;
      meta.mark[i] = extra.mark?.[i] ?? 0;
      meta.inIfindex[i] = extra.in?.[i] ?? 3;
      meta.hook[i] = extra.hook?.[i] ?? 2;
      meta.tsSec[i] = now;
    });
    engine.process(packets.length, buf);
    return Array.from(meta.verdict.subarray(0, packets.length));
  };
  const counter = (name: (typeof ENGINE_COUNTERS)[number]) => counters[ENGINE_COUNTERS.indexOf(name)];
  return { engine, meta, run, counter, compile, ruleCounters: new Float64Array(ruleCounters) };
}

const telnet = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40000, dport: 23, tcpFlags: TCP_SYN });
const web = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40001, dport: 80, tcpFlags: TCP_ACK });
const webReply = buildPacket({ src: '192.0.2.7', dst: '10.0.0.5', proto: 6, sport: 80, dport: 40001, tcpFlags: TCP_ACK });
const dns6 = buildPacket({ src: 'fd00::5', dst: '2001:db8::53', proto: 17, sport: 5000, dport: 53 });
const ping = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 1, icmpType: 8 });

describe('VerdictEngine', () => {
  it('applies first match, then the default, with the repeat mark, and counts per rule', () => {
    const s = setup(rules({ default: 'accept', rules: [{ id: 'd23', action: 'drop', protocol: 'tcp', dport: 23 }, { action: 'accept', protocol: 'tcp', dport: 23 }] }));
    assert.deepEqual(s.run([telnet, web, dns6, ping], { mark: [0, 0xf0, 0, 0x2] }), [NF_DROP, NF_REPEAT, NF_REPEAT, NF_REPEAT]);
    assert.equal(s.meta.verdictMark[1], 0xf1, 'keeps the other mark bits');
    assert.equal(s.meta.verdictMark[3], 0x3);
    assert.equal(s.counter('dropped'), 1);
    assert.equal(s.counter('accepted'), 3);
    assert.equal(s.counter('defaultAccepted'), 3);
    // [packets r0, packets r1, bytes r0, bytes r1, default packets, default bytes]
    assert.deepEqual(Array.from(s.ruleCounters), [1, 0, telnet.length, 0, 3, web.length + dns6.length + ping.length]);
    const ev = s.engine.events.drain();
    assert.equal(ev.length, 1);
    assert.deepEqual({ ...ev[0] }, { rule_index: 0, action: 'drop', proto: 'tcp', src_ip: '10.0.0.5', src_port: 40000, dest_ip: '192.0.2.7', dest_port: 23, in_ifindex: 3, out_ifindex: 0, length: telnet.length, suppressed: 0 });
  });

  it('ICMP and ICMPv6 events carry icmp_type and icmp_code and no ports; GRE none of them', () => {
    const s = setup(rules({ default: 'drop', rules: [] }));
    const unreach6 = buildPacket({ src: 'fd00::5', dst: '2001:db8::1', proto: 58, icmpType: 1, icmpCode: 4 });
    const gre = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 47 });
    // Two events a second per rule here: GRE comes a second later.
    s.run([ping, unreach6]);
    s.run([gre], {}, 1001);
    const ev = s.engine.events.drain().map((e) => ({ ...e }));
    assert.deepEqual(ev.map(({ proto, src_port, dest_port, icmp_type, icmp_code }) => ({ proto, src_port, dest_port, icmp_type, icmp_code })), [
      { proto: 'icmp', src_port: undefined, dest_port: undefined, icmp_type: 8, icmp_code: 0 },
      { proto: 'icmpv6', src_port: undefined, dest_port: undefined, icmp_type: 1, icmp_code: 4 },
      { proto: 'gre', src_port: undefined, dest_port: undefined, icmp_type: undefined, icmp_code: undefined },
    ]);
    assert.ok(ev.every((e) => !('src_port' in e) && !('dest_port' in e)), 'no port fields at all');
  });

  it('rejects with the repeat and reject bits so the chain REJECT rule catches it', () => {
    const s = setup(rules({ rules: [{ action: 'reject', protocol: 'tcp', dport: 23 }] }));
    assert.deepEqual(s.run([telnet]), [NF_REPEAT]);
    assert.equal(s.meta.verdictMark[0], 0x3);
    assert.equal(s.counter('rejected'), 1);
  });

  it('rejects in accept mode as in repeat mode, while what it accepts leaves with NF_ACCEPT and its mark as it came', () => {
    const s = setup(rules({ rules: [{ action: 'reject', protocol: 'tcp', dport: 23 }] }), 'accept');
    assert.deepEqual(s.run([telnet, web], { mark: [0x40, 0x40] }), [NF_REPEAT, NF_ACCEPT]);
    assert.deepEqual(Array.from(s.meta.verdictMark.subarray(0, 2)), [0x43, 0x40], 'only the rejected packet gets the bits');
    assert.equal(s.counter('rejected'), 1);
    assert.equal(s.counter('accepted'), 1);
  });

  it('alert logs and goes on to the next rule', () => {
    const s = setup(rules({ default: 'drop', rules: [{ id: 'a', action: 'alert', protocol: 'tcp' }, { id: 'b', action: 'alert', dport: 80 }, { action: 'accept', dport: 80 }] }));
    assert.deepEqual(s.run([web, telnet]), [NF_REPEAT, NF_DROP]);
    assert.equal(s.counter('alerts'), 3);
    const ev = s.engine.events.drain();
    assert.deepEqual(ev.map((e) => `${e.action}:${e.rule_index}`), ['alert:0', 'alert:1', 'alert:0', 'drop:-1']);
  });

  it('matches interfaces, hook, family, tcpFlags, icmp type and flow state', () => {
    const s = setup(
      rules({
        default: 'drop',
        rules: [
          { action: 'accept', in: 'wan0', protocol: 'tcp', dport: 80 },
          { action: 'drop', in: 'lan0', hook: 'input' },
          { action: 'accept', family: 'ipv6' },
          { action: 'accept', protocol: 'tcp', tcpFlags: 'SYN,!ACK' },
          { action: 'accept', protocol: 'icmp', icmpType: 8 },
          { action: 'accept', state: 'established' },
          { action: 'accept', in: 'nosuch0' },
        ],
      }),
    );
    assert.deepEqual(s.run([web], { in: [4] }), [NF_REPEAT], 'in wan0');
    assert.deepEqual(s.run([dns6], { hook: [1] }), [NF_DROP], 'input hook on lan0 dropped first');
    assert.deepEqual(s.run([dns6]), [NF_REPEAT], 'ipv6 family');
    assert.deepEqual(s.run([telnet, ping]), [NF_REPEAT, NF_REPEAT], 'SYN and echo request');
    assert.deepEqual(s.run([web]), [NF_DROP], 'first packet of a flow is new');
    assert.deepEqual(s.run([webReply]), [NF_REPEAT], 'the reply makes it established');
    assert.deepEqual(s.run([web]), [NF_REPEAT], 'and it stays established');
  });

  it('learns flows only from accepted packets', () => {
    // Only replies to flows we accepted may come in; everything else is dropped.
    const s = setup(rules({ default: 'drop', rules: [{ action: 'accept', state: 'established' }, { action: 'accept', in: 'lan0' }] }));
    const spoofedReply = buildPacket({ src: '192.0.2.7', dst: '10.0.0.5', proto: 6, sport: 6666, dport: 22, tcpFlags: TCP_ACK });
    const synFromOutside = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 22, dport: 6666, tcpFlags: TCP_SYN });
    assert.deepEqual(s.run([spoofedReply], { in: [4] }), [NF_DROP], 'dropped on wan0, and not remembered');
    assert.deepEqual(s.run([synFromOutside], { in: [4] }), [NF_DROP], 'so this is not taken for its reply');
    assert.deepEqual(s.run([web, webReply], { in: [3, 4] }), [NF_REPEAT, NF_REPEAT], 'an accepted request lets its reply in, even within one batch');
  });

  it('uses plain NF_ACCEPT without touching the mark in accept mode', () => {
    const s = setup(rules({ rules: [] }), 'accept');
    assert.deepEqual(s.run([web], { mark: [0x40] }), [NF_ACCEPT]);
    assert.equal(s.meta.verdictMark[0], 0x40);
  });

  it('drops everything under lock, and gives malformed packets the default', () => {
    const s = setup(rules({ lock: true, rules: [{ action: 'accept' }] }));
    assert.deepEqual(s.run([web, ping]), [NF_DROP, NF_DROP]);
    assert.equal(s.counter('lockDrops'), 2);
    assert.equal(s.engine.events.count, 0, 'lockdown drops are counted, not logged one by one');
    const rs = rules({ default: 'drop', rules: [{ action: 'accept' }] });
    s.engine.setRules(s.compile(rs), 1, new ArrayBuffer(ruleCounterBytes(1)));
    assert.deepEqual(s.run([Buffer.from([0x45, 0, 0]), web]), [NF_DROP, NF_REPEAT], 'no usable IP header: the default, not the accept-all rule');
    assert.equal(s.counter('malformed'), 1);
    s.engine.setRules(s.compile(rules({ default: 'accept', rules: [{ action: 'accept', protocol: 'tcp', dport: 80 }, { action: 'drop', source: '10.0.0.5' }] })), 2, new ArrayBuffer(ruleCounterBytes(2)));
    const badTcp = Buffer.from(web);
    badTcp[20 + 12] = 0x10; // data offset 4 words: not a TCP header
    assert.deepEqual(s.run([badTcp]), [NF_DROP], 'a malformed TCP header skips the port rule but not the address rule');
    assert.equal(s.counter('malformed'), 2);
  });

  it('rate-limits events per rule and reports what it held back', () => {
    const s = setup(rules({ rules: [{ action: 'drop', dport: 23 }] }));
    s.run([telnet, telnet, telnet, telnet, telnet], {}, 1000);
    assert.equal(s.engine.events.drain().length, 2, 'burst of eventsPerSecond');
    s.run([telnet], {}, 1001);
    const ev = s.engine.events.drain();
    assert.equal(ev.length, 1);
    assert.equal(ev[0].suppressed, 3);
  });
});

describe('VerdictEngine: packets that hide their transport header', () => {
  const telnet6 = { src: 'fd00::5', dst: '2001:db8::7', proto: 6, sport: 40000, dport: 23, tcpFlags: TCP_SYN };
  const hiddenSyn6 = withExtensions(telnet6, [{ type: 60, bytes: 264 }]);
  const tinySyn4 = fragment4(telnet, [8, 16])[0];
  const overlap4 = fragment4(telnet, [8, 16])[1];
  const defaultRules = { default: 'accept', rules: [{ id: 'no-telnet', action: 'drop', protocol: 'tcp', dport: [23, 2323] }, { id: 'no-netbios', action: 'drop', protocol: 'udp', dport: '137-138' }] };

  it('drops a hidden packet a drop rule could have matched, counts it and says why', () => {
    const s = setup(rules(defaultRules));
    assert.deepEqual(s.run([hiddenSyn6, tinySyn4, overlap4, web]), [NF_DROP, NF_DROP, NF_DROP, NF_REPEAT]);
    assert.equal(s.counter('evasionDrops'), 3);
    assert.equal(s.counter('dropped'), 3);
    assert.equal(s.counter('defaultAccepted'), 1, 'the evasion drops are not default-policy decisions');
    assert.deepEqual(Array.from(s.ruleCounters.subarray(0, 2)), [0, 0], 'nor matches of the rule that could have matched');
    const ev = s.engine.events.drain();
    // Two events a second per rule in this setup: the third waits for the next one.
    assert.deepEqual(ev.map((e) => [e.rule_index, e.action, e.reason]), [[0, 'drop', 'beyond-copy-range'], [0, 'drop', 'tiny-first-fragment']]);
    assert.equal(ev[0].dest_ip, '2001:db8::7');
    s.run([overlap4], {}, 1001);
    assert.deepEqual(s.engine.events.drain().map((e) => [e.reason, e.suppressed]), [['fragment-overlap', 1]]);
  });

  it('--malformed policy leaves them to the rules and default, as before', () => {
    const s = setup(rules(defaultRules), 'repeat', 'policy');
    assert.deepEqual(s.run([hiddenSyn6, tinySyn4, overlap4]), [NF_REPEAT, NF_REPEAT, NF_REPEAT]);
    assert.equal(s.counter('evasionDrops'), 0);
  });

  it('the policy is the one compiled into the rule set; an engine asking for another refuses it', () => {
    const s = setup(rules(defaultRules));
    const policySet = s.compile(rules(defaultRules));
    // Compiled for drop (setup passes no policy): the guard drops without the engine being told.
    assert.deepEqual(s.run([tinySyn4]), [NF_DROP]);
    const strict = setup(rules(defaultRules), 'repeat', 'drop');
    const lax = compileRuleSet(rules(defaultRules), { ifindex: () => undefined, malformed: 'policy' });
    assert.throws(() => strict.engine.setRules(lax, 1, new ArrayBuffer(ruleCounterBytes(lax.ruleCount))), /compiled for --malformed policy, engine set to drop/);
    s.engine.setRules(lax, 1, new ArrayBuffer(ruleCounterBytes(lax.ruleCount)));
    assert.deepEqual(s.run([tinySyn4]), [NF_REPEAT], 'a set compiled for policy leaves hidden packets to the rules');
    s.engine.setRules(policySet, 2, new ArrayBuffer(ruleCounterBytes(policySet.ruleCount)));
    assert.deepEqual(s.run([tinySyn4]), [NF_DROP]);
  });

  it('accepts a hidden packet no drop rule could have matched', () => {
    const s = setup(rules({ default: 'accept', rules: [{ action: 'drop', protocol: 'udp', dport: 137 }, { action: 'drop', protocol: 'tcp', dport: 23, destination: '198.51.100.0/24' }, { action: 'drop', protocol: 'icmp', icmpType: 8 }] }));
    assert.deepEqual(s.run([tinySyn4, hiddenSyn6]), [NF_REPEAT, NF_REPEAT], 'TCP to another network; UDP and ICMP rules cannot match TCP');
    assert.equal(s.counter('evasionDrops'), 0);
  });

  it('only drop and reject rules before the accepting rule count', () => {
    const s = setup(rules({ default: 'accept', rules: [{ action: 'accept', source: '10.0.0.0/8' }, { action: 'drop', protocol: 'tcp', dport: 23 }] }));
    assert.deepEqual(s.run([tinySyn4, hiddenSyn6]), [NF_REPEAT, NF_DROP], 'the IPv4 fragment is accepted by address before any port rule');
    const alertOnly = setup(rules({ default: 'accept', rules: [{ action: 'alert', protocol: 'tcp', dport: 23 }] }));
    assert.deepEqual(alertOnly.run([tinySyn4]), [NF_REPEAT]);
    const reject = setup(rules({ default: 'accept', rules: [{ action: 'reject', protocol: 'tcp', dport: 23 }, { action: 'accept' }] }));
    assert.deepEqual(reject.run([tinySyn4]), [NF_DROP], 'a reject rule that could match: dropped (no reset for a header nfips cannot read)');
    const byDefault = setup(rules({ default: 'drop', rules: [{ action: 'accept', protocol: 'tcp', dport: 80 }] }));
    assert.deepEqual(byDefault.run([tinySyn4]), [NF_DROP]);
    assert.equal(byDefault.counter('evasionDrops'), 0, 'the default dropped it; nothing to overrule');
  });

  it('covers ICMP type rules and unknown IPv6 next headers', () => {
    const s = setup(rules({ default: 'accept', rules: [{ action: 'drop', protocol: 'icmpv6', icmpType: 128 }] }));
    const echo6 = withExtensions({ src: 'fd00::5', dst: '2001:db8::7', proto: 58, icmpType: 128 }, [{ type: 0, bytes: 8 }, { type: 60, bytes: 256 }]);
    const unknown = buildPacket({ src: 'fd00::5', dst: '2001:db8::7', proto: 200, payloadLen: 40 });
    assert.deepEqual(s.run([echo6, unknown, hiddenSyn6]), [NF_DROP, NF_DROP, NF_REPEAT], 'a TCP header cannot be an echo request; behind header 200 anything can');
    assert.deepEqual(s.engine.events.drain().map((e) => e.reason), ['beyond-copy-range', 'unknown-next-header']);
  });
});
