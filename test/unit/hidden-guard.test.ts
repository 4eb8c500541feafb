// Hiding a transport header must never turn a drop into an accept: the same
// packet, seen whole and seen through each hiding trick, over random rule
// sets. couldMatch must hold wherever the whole packet matches.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generatePackets, generateRules, resolved, Rng } from '../../lab/support/rule-gen';
import { buildPacket, PacketSpec } from '../../src/packet/build';
import { decodePacket } from '../../src/packet/decode';
import { createDecodedBatch, Hidden } from '../../src/packet/decoded';
import { Field, metaColumns, NF_DROP, NF_REPEAT } from '../../src/batch/layout';
import { couldMatch, protocolUnknown } from '../../src/rules/could-match';
import { MatchInput, ruleMatches } from '../../src/rules/linear';
import { buildRuleTable, rowCouldMatch, rowMatches } from '../../src/rules/rule-table';
import { anyRule, Rule, RuleSet } from '../../src/rules/types';
import { ENGINE_COUNTERS, ruleCounterBytes, VerdictEngine } from '../../src/verdict/engine';
import { compileGuard, HiddenGuard, UNTRUSTED_ACCEPT } from '../../src/verdict/hidden-guard';
import { compileRuleSet } from '../../src/verdict/rule-snapshot';
import { fragment4, fragment6, withExtensions } from '../helpers/evasive-packets';

/** Every way this suite hides the transport header of a packet, each with the reason the decoder must give. */
function hiddenVariants(spec: PacketSpec): { name: string; bytes: Buffer; cap: number; reason: Hidden }[] {
  const whole = buildPacket(spec);
  const out: { name: string; bytes: Buffer; cap: number; reason: Hidden }[] = [];
  if (whole[0] >> 4 === 4) {
    if (spec.proto === 6) {
      const f = fragment4(whole, [8, 8, whole.length]);
      out.push({ name: 'tiny first fragment', bytes: f[0], cap: f[0].length, reason: Hidden.TinyFragment });
      out.push({ name: 'offset-1 fragment', bytes: f[1], cap: f[1].length, reason: Hidden.FragmentOverlap });
    }
    return out;
  }
  const long = withExtensions(spec, [{ type: 60, bytes: 264 }]);
  out.push({ name: 'transport header past the copy', bytes: long, cap: 256, reason: Hidden.BeyondCopy });
  const longer = withExtensions(spec, [{ type: 0, bytes: 8 }, { type: 60, bytes: 256 }, { type: 43, bytes: 8 }]);
  out.push({ name: 'chain past the copy', bytes: longer, cap: 256, reason: Hidden.BeyondCopy });
  const f = fragment6(whole, [8, whole.length]);
  if (spec.proto === 6 || spec.proto === 132) out.push({ name: 'tiny first fragment', bytes: f[0], cap: f[0].length, reason: Hidden.TinyFragment });
  const chained = fragment6(withExtensions(spec, [{ type: 60, bytes: 64 }]), [56, 200]);
  out.push({ name: 'first fragment ends inside the chain', bytes: chained[0], cap: chained[0].length, reason: Hidden.TinyFragment });
  return out;
}

/** A rule set: the generated blocklist with some accept rules in between, default accept. */
function ruleSet(seed: number): RuleSet {
  const rng = new Rng(seed);
  const rules: Rule[] = generateRules(40, seed).map((r) => Object.assign(anyRule(r.id, r.action), r));
  for (let k = 0; k < 6; k++) {
    const a = anyRule(`acc${k}`, 'accept');
    const pick = rng.int(0, 3);
    if (pick === 0) a.source = rules[rng.int(0, rules.length - 1)].source ?? null;
    else if (pick === 1) Object.assign(a, { protocol: 6, dport: [{ lo: 80, hi: 80 }] });
    else if (pick === 2) Object.assign(a, { protocol: 17 });
    else a.destination = rules[rng.int(0, rules.length - 1)].destination ?? null;
    rules.splice(rng.int(0, rules.length), 0, a);
  }
  return { lock: false, default: 'accept', rules, origin: { file: 'gen', format: 'native', sha256: '' } };
}

describe('hidden transport headers', () => {
  it('couldMatch holds for every rule the whole packet matches', () => {
    const d = createDecodedBatch(2);
    const one = new Uint32Array(2);
    const m: MatchInput = { d, inIfindex: one, outIfindex: one, hook: Uint32Array.of(2, 2), flowState: new Uint8Array(2) };
    let checked = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const rules = generateRules(60, seed).map((r) => resolved(r));
      for (const spec of generatePackets(rules, 60, seed + 100, 0.6)) {
        const whole = buildPacket({ ...spec, payloadLen: 48 });
        decodePacket(whole, 0, whole.length, 0, d);
        for (const v of hiddenVariants({ ...spec, payloadLen: 48 })) {
          decodePacket(v.bytes, 0, v.cap, 1, d);
          assert.equal(d.hidden[1], v.reason, `${v.name}: decoder's reason`);
          for (const r of rules) {
            if (!ruleMatches(r, m, 0)) continue;
            checked++;
            assert.ok(couldMatch(r, m, 1), `${v.name} of ${JSON.stringify(spec)}: rule ${r.id} matches the whole packet, so it could match this one`);
          }
        }
      }
    }
    assert.ok(checked > 500, `enough matching pairs were checked (${checked})`);
  });

  it('the rule table (the form queue threads get) answers as the rule objects do, hidden or not', () => {
    const d = createDecodedBatch(2);
    const m: MatchInput = { d, inIfindex: Uint32Array.of(2, 0), outIfindex: Uint32Array.of(0, 3), hook: Uint32Array.of(2, 1), flowState: Uint8Array.of(1, 2) };
    let could = 0;
    let pairs = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const rng = new Rng(seed * 7);
      const rules = generateRules(60, seed).map((r) => {
        // Some on an interface (present, or missing: -1), a hook, a family, a state.
        const k = rng.int(0, 9);
        if (k === 0) return resolved({ ...r, in: 'eth2' }, 2, 0);
        if (k === 1) return resolved({ ...r, out: 'gone0' }, 0, -1);
        if (k === 2) return resolved({ ...r, hook: 1 });
        if (k === 3) return resolved({ ...r, family: 6 });
        if (k === 4) return resolved({ ...r, state: 2 });
        return resolved(r);
      });
      const table = buildRuleTable(rules);
      for (const spec of generatePackets(rules, 40, seed + 300, 0.6)) {
        const whole = buildPacket({ ...spec, payloadLen: 48 });
        decodePacket(whole, 0, whole.length, 0, d);
        for (const v of [{ bytes: whole, cap: whole.length }, ...hiddenVariants({ ...spec, payloadLen: 48 }), { bytes: whole, cap: 24 }]) {
          decodePacket(v.bytes, 0, v.cap, 1, d);
          rules.forEach((r, k) => {
            for (const i of [0, 1]) {
              assert.equal(rowMatches(table, k, m, i), ruleMatches(r, m, i), `rule ${k} packet ${i} ${JSON.stringify(spec)}`);
              assert.equal(rowCouldMatch(table, k, m, i), couldMatch(r, m, i), `could: rule ${k} packet ${i} ${JSON.stringify(spec)}`);
              if (couldMatch(r, m, i)) could++;
              pairs++;
            }
          });
        }
      }
    }
    assert.ok(could > pairs * 0.05 && could < pairs * 0.95, `both answers were exercised (${could} of ${pairs})`);
  });

  it('the indexed guard names the same drop rule as a walk over every rule would', () => {
    // The walk is the specification (couldMatch on each drop or reject rule
    // before the accept); the guard answers from matchers over blind copies.
    const d = createDecodedBatch(1);
    const m: MatchInput = { d, inIfindex: Uint32Array.of(2), outIfindex: Uint32Array.of(3), hook: Uint32Array.of(2), flowState: new Uint8Array(1) };
    let named = 0;
    let compared = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const rng = new Rng(seed * 31);
      const rs = ruleSet(seed);
      if (seed % 2 === 0) rs.default = 'drop';
      // Some rules only for an interface, a hook, a family, or a protocol
      // that cannot carry their ports, flags or ICMP types.
      for (const r of rs.rules) {
        const k = rng.int(0, 13);
        if (k === 0) r.in = 'eth2';
        else if (k === 1) r.out = 'eth9';
        else if (k === 2) r.hook = 1;
        else if (k === 3) r.family = 6;
        else if (k === 4 && r.dport) r.protocol = 1;
        else if (k === 5) Object.assign(r, { protocol: null, tcpFlags: { mask: 0x3f, set: 0x29 } });
        else if (k === 6) Object.assign(r, { protocol: null, icmpType: 13 });
        else if (k === 7 && r.action === 'accept') r.protocol = 58;
        else if (k === 8 && r.source) r.source = { ...r.source, negate: true };
        else if (k === 9 && r.dport) r.protocol = null;
      }
      const idx: Record<string, number> = { eth2: 2, eth9: 9 };
      const res = rs.rules.map((r) => resolved(r, r.in === null ? 0 : idx[r.in], r.out === null ? 0 : idx[r.out]));
      const guard = new HiddenGuard();
      guard.setRules(compileGuard(rs, res));
      const walk = (decided: number): number => {
        if (decided >= 0 ? rs.rules[decided].action !== 'accept' : rs.default !== 'accept') return -1;
        // An accept on a protocol the packet only claims cannot be trusted.
        const untrusted = decided >= 0 && protocolUnknown(m, 0) && res[decided].protocol !== null;
        const limit = decided >= 0 && !untrusted ? decided : res.length;
        for (let k = 0; k < limit; k++) if ((res[k].action === 'drop' || res[k].action === 'reject') && couldMatch(res[k], m, 0)) return k;
        return untrusted && rs.default !== 'accept' ? UNTRUSTED_ACCEPT : -1;
      };
      for (const spec of generatePackets(res, 60, seed + 900, 0.7)) {
        const variants = hiddenVariants({ ...spec, payloadLen: 48 });
        if (spec.src.includes(':')) {
          // Later fragments that overlap and claim another protocol, and an unknown next header.
          const [, later] = fragment6(buildPacket({ ...spec, payloadLen: 48 }), [8, 60]);
          for (const claimed of [58, 17, 6]) {
            const f = Buffer.from(later);
            f[40] = claimed;
            variants.push({ name: `overlap claiming ${claimed}`, bytes: f, cap: f.length, reason: Hidden.FragmentOverlap });
          }
          const odd = Buffer.from(buildPacket({ ...spec, payloadLen: 48 }));
          odd[6] = 200;
          variants.push({ name: 'unknown next header', bytes: odd, cap: odd.length, reason: Hidden.UnknownHeader });
        }
        for (const v of variants) {
          decodePacket(v.bytes, 0, v.cap, 0, d);
          assert.equal(d.hidden[0], v.reason, v.name);
          for (const decided of [-1, ...rs.rules.flatMap((r, k) => (r.action === 'accept' ? [k] : []))]) {
            const want = walk(decided);
            assert.equal(guard.overrules(m, 0, decided), want, `${v.name} of ${JSON.stringify(spec)}, accepted by ${decided}`);
            compared++;
            if (want >= 0 || want === UNTRUSTED_ACCEPT) named++;
          }
        }
      }
    }
    assert.ok(compared > 2000 && named > 300, `enough answers compared (${compared}, ${named} naming a rule)`);
  });

  it('an IPv6 fragment that overlaps cannot choose its protocol to dodge a port rule', () => {
    const rs: RuleSet = { lock: false, default: 'accept', rules: [Object.assign(anyRule('telnet', 'drop'), { protocol: 6, dport: [{ lo: 23, hi: 23 }] })], origin: { file: 't', format: 'native', sha256: '' } };
    const guard = new HiddenGuard();
    guard.setRules(compileGuard(rs, rs.rules.map((r) => resolved(r))));
    const d = createDecodedBatch(1);
    const m: MatchInput = { d, inIfindex: new Uint32Array(1), outIfindex: new Uint32Array(1), hook: Uint32Array.of(2), flowState: new Uint8Array(1) };
    const [, second] = fragment6(buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 6, sport: 1000, dport: 23, tcpFlags: 0x02, payloadLen: 48 }), [8, 60]);
    for (const claimed of [6, 17, 58, 59]) {
      const f = Buffer.from(second);
      f[40] = claimed;
      decodePacket(f, 0, f.length, 0, d);
      assert.equal(d.hidden[0], Hidden.FragmentOverlap);
      assert.equal(guard.overrules(m, 0, -1), 0, `next header ${claimed} in a later fragment`);
    }
  });

  it('an accept on the protocol an overlapping fragment claims does not let it pass', () => {
    const accept58 = Object.assign(anyRule('icmpv6', 'accept'), { protocol: 58 });
    const telnet = Object.assign(anyRule('telnet', 'drop'), { protocol: 6, dport: [{ lo: 23, hi: 23 }] });
    const d = createDecodedBatch(1);
    const m: MatchInput = { d, inIfindex: new Uint32Array(1), outIfindex: new Uint32Array(1), hook: Uint32Array.of(2), flowState: new Uint8Array(1) };
    const [, second] = fragment6(buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 6, sport: 1000, dport: 23, tcpFlags: 0x02, payloadLen: 48 }), [8, 60]);
    const f = Buffer.from(second);
    f[40] = 58;
    decodePacket(f, 0, f.length, 0, d);
    for (const [rules, dflt, want] of [[[accept58, telnet], 'accept', 1], [[accept58], 'drop', UNTRUSTED_ACCEPT], [[accept58], 'accept', -1]] as const) {
      const rs: RuleSet = { lock: false, default: dflt, rules: [...rules], origin: { file: 't', format: 'native', sha256: '' } };
      const guard = new HiddenGuard();
      guard.setRules(compileGuard(rs, rs.rules.map((r) => resolved(r))));
      assert.equal(guard.overrules(m, 0, 0), want, `${rules.map((r) => r.id).join(',')} default ${dflt}`);
    }
  });

  it('a packet dropped or rejected whole is never accepted through a hiding trick', () => {
    const B = 8;
    let drops = 0;
    for (let seed = 1; seed <= 15; seed++) {
      const rs = ruleSet(seed);
      const meta = metaColumns(new ArrayBuffer(Field.Count * B * 4), B);
      const engine = new VerdictEngine(B, meta, compileRuleSet(rs, { ifindex: () => undefined }), 0, new ArrayBuffer(ruleCounterBytes(rs.rules.length)), { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 10, flowCapacity: 1024 }, new Float64Array(ENGINE_COUNTERS.length));
      const buf = new Uint8Array(B * 512);
      const verdictOf = (p: Buffer, cap: number): number => {
        buf.set(p.subarray(0, cap), 0);
        meta.offset[0] = 0;
        meta.capLen[0] = cap;
        meta.origLen[0] = p.length;
        meta.hook[0] = 2;
        engine.process(1, buf);
        engine.events.drain();
        return meta.verdict[0];
      };
      for (const spec of generatePackets(rs.rules, 80, seed + 500, 0.6)) {
        const s = { ...spec, payloadLen: 48 };
        const whole = buildPacket(s);
        if (verdictOf(whole, whole.length) === NF_REPEAT && meta.verdictMark[0] !== 3) continue;
        drops++;
        for (const v of hiddenVariants(s)) {
          const got = verdictOf(v.bytes, v.cap);
          const stopped = got === NF_DROP || (got === NF_REPEAT && meta.verdictMark[0] === 3);
          assert.ok(stopped, `${v.name} of ${JSON.stringify(s)} was accepted though the whole packet was not`);
        }
      }
    }
    assert.ok(drops > 100, `enough dropped packets were tried (${drops})`);
  });
});
