// A realistic N-rule native rule file for the inline benchmark: generated
// blocklist rules, minus any that would touch the benchmark's own traffic,
// so the measured flows are decided after the matcher has done real work.
import { writeFileSync } from 'node:fs';
import { ADDRESSES } from '../lab/netns/topology';
import { buildPacket, PacketSpec } from '../src/packet/build';
import { decodePacket } from '../src/packet/decode';
import { createDecodedBatch } from '../src/packet/decoded';
import { LinearMatcher, MatchInput, ResolvedRule } from '../src/rules/linear';
import { generateRules, ruleSetToJson } from '../lab/support/rule-gen';

function benchTraffic(): PacketSpec[] {
  const a = ADDRESSES;
  const out: PacketSpec[] = [];
  for (const [c, s] of [[a.client4, a.server4], [a.client6, a.server6]]) {
    for (const proto of [6, 17]) {
      out.push({ src: c, dst: s, proto, sport: 40000, dport: 5201 }, { src: s, dst: c, proto, sport: 5201, dport: 40000 });
    }
    const icmp = c.includes(':') ? 58 : 1;
    out.push({ src: c, dst: s, proto: icmp, icmpType: icmp === 1 ? 8 : 128 }, { src: s, dst: c, proto: icmp, icmpType: icmp === 1 ? 0 : 129 });
  }
  return out;
}

/** Rules that match none of the benchmark's packets. */
export function benchRules(n: number, seed = 7): ResolvedRule[] {
  const specs = benchTraffic();
  const d = createDecodedBatch(specs.length);
  specs.forEach((s, i) => {
    const p = buildPacket(s);
    decodePacket(p, 0, p.length, i, d);
  });
  const m: MatchInput = { d, inIfindex: new Uint32Array(specs.length), outIfindex: new Uint32Array(specs.length), hook: new Uint32Array(specs.length).fill(2), flowState: new Uint8Array(specs.length).fill(2) };
  const kept: ResolvedRule[] = [];
  let extra = 0;
  while (kept.length < n) {
    for (const r of generateRules(n, seed + extra++)) {
      if (kept.length >= n) break;
      const one = new LinearMatcher([r]);
      if (specs.every((_, i) => one.match(m, i, 0) < 0)) kept.push({ ...r, id: `r${kept.length}` });
    }
  }
  return kept;
}

export function writeBenchRulesFile(file: string, n: number): void {
  writeFileSync(file, JSON.stringify(ruleSetToJson({ lock: false, default: 'accept', rules: benchRules(n) })));
}
