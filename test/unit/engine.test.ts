import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildPacket } from '../../src/packet/build';
import { metaColumns, NF_ACCEPT, NF_DROP, NF_REPEAT, Field } from '../../src/queue/native';
import { parseRuleText } from '../../src/rules/load';
import { ENGINE_COUNTERS, VerdictEngine } from '../../src/verdict/engine';

const B = 8;
function batch(packets: Buffer[], marks: number[] = []) {
  const meta = metaColumns(new ArrayBuffer(Field.Count * B * 4), B);
  const buf = new Uint8Array(B * 256);
  packets.forEach((p, i) => {
    buf.set(p, i * 256);
    meta.offset[i] = i * 256;
    meta.capLen[i] = p.length;
    meta.origLen[i] = p.length;
    meta.mark[i] = marks[i] ?? 0;
  });
  return { meta, buf };
}
const rules = (doc: unknown) => parseRuleText(JSON.stringify(doc), 't.json');
const counter = (c: Float64Array, name: (typeof ENGINE_COUNTERS)[number]) => c[ENGINE_COUNTERS.indexOf(name)];

const telnet = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40000, dport: 23 });
const web = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40001, dport: 80 });
const dns6 = buildPacket({ src: 'fd00::5', dst: '2001:db8::53', proto: 17, sport: 5000, dport: 53 });
const ping = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 1 });

describe('VerdictEngine', () => {
  it('applies first match, then the default, with the repeat mark', () => {
    const c = new Float64Array(ENGINE_COUNTERS.length);
    const e = new VerdictEngine(B, rules({ default: 'accept', rules: [{ action: 'drop', protocol: 'tcp', dport: 23 }, { action: 'accept', protocol: 'tcp', dport: 23 }] }), 'repeat', { value: 1, mask: 1 }, c);
    const { meta, buf } = batch([telnet, web, dns6, ping], [0, 0xf0, 0, 0x2]);
    e.process(4, buf, meta);
    assert.deepEqual(Array.from(meta.verdict.subarray(0, 4)), [NF_DROP, NF_REPEAT, NF_REPEAT, NF_REPEAT]);
    assert.equal(meta.verdictMark[1], 0xf1, 'keeps the other mark bits');
    assert.equal(meta.verdictMark[3], 0x3);
    assert.equal(counter(c, 'dropped'), 1);
    assert.equal(counter(c, 'accepted'), 3);
    assert.equal(counter(c, 'ruleMatched'), 1);
    assert.equal(counter(c, 'defaultAccepted'), 3);
    assert.deepEqual(Array.from(e.rulePackets()), [1, 0]);
  });

  it('matches CIDRs, negation and IPv6', () => {
    const c = new Float64Array(ENGINE_COUNTERS.length);
    const e = new VerdictEngine(B, rules({ default: 'drop', rules: [{ action: 'accept', destination: '2001:db8::/32' }, { action: 'accept', source: '!10.0.0.0/8' }] }), 'repeat', { value: 1, mask: 1 }, c);
    const other = buildPacket({ src: '172.16.0.1', dst: '192.0.2.7', proto: 6, dport: 80 });
    const { meta, buf } = batch([dns6, web, other]);
    e.process(3, buf, meta);
    assert.deepEqual(Array.from(meta.verdict.subarray(0, 3)), [NF_REPEAT, NF_DROP, NF_REPEAT]);
  });

  it('uses plain NF_ACCEPT without touching the mark in accept mode', () => {
    const c = new Float64Array(ENGINE_COUNTERS.length);
    const e = new VerdictEngine(B, rules({ rules: [] }), 'accept', { value: 1, mask: 1 }, c);
    const { meta, buf } = batch([web], [0x40]);
    e.process(1, buf, meta);
    assert.equal(meta.verdict[0], NF_ACCEPT);
    assert.equal(meta.verdictMark[0], 0x40);
  });

  it('drops everything under lock, and gives malformed packets the default', () => {
    const c = new Float64Array(ENGINE_COUNTERS.length);
    const e = new VerdictEngine(B, rules({ lock: true, rules: [{ action: 'accept' }] }), 'repeat', { value: 1, mask: 1 }, c);
    const { meta, buf } = batch([web, ping]);
    e.process(2, buf, meta);
    assert.deepEqual(Array.from(meta.verdict.subarray(0, 2)), [NF_DROP, NF_DROP]);
    assert.equal(counter(c, 'lockDrops'), 2);

    e.setRules(rules({ default: 'drop', rules: [{ action: 'accept' }] }));
    const junk = Buffer.from([0x45, 0, 0]);
    const b2 = batch([junk, web]);
    e.process(2, b2.buf, b2.meta);
    assert.deepEqual(Array.from(b2.meta.verdict.subarray(0, 2)), [NF_DROP, NF_REPEAT], 'malformed takes the default, not the accept-all rule');
    assert.equal(counter(c, 'malformed'), 1);
  });
});
