// Runs a throw-away engine over synthetic packets before a queue is bound,
// so the first real packets meet optimised code instead of the interpreter
// (cold batches took milliseconds; warm ones take microseconds).
import { buildPacket, PacketSpec } from '../packet/build';
import { TCP_ACK, TCP_SYN } from '../packet/decoded';
import { metaBuffer, metaColumns, NO_OFFSET } from '../batch/layout';
import { RuleSnapshot } from '../verdict/rule-snapshot';
import { ENGINE_COUNTERS, EngineOptions, ruleCounterBytes } from '../verdict/engine';
import { WindowAggregator } from '../features/window';
import { BatchPipeline, FeatureSettings } from './batch-pipeline';

const SPECS: PacketSpec[] = [
  { src: '198.51.100.1', dst: '203.0.113.1', proto: 6, sport: 40000, dport: 443, tcpFlags: TCP_SYN },
  { src: '203.0.113.1', dst: '198.51.100.1', proto: 6, sport: 443, dport: 40000, tcpFlags: TCP_ACK, payloadLen: 100 },
  { src: '198.51.100.2', dst: '203.0.113.1', proto: 17, sport: 5353, dport: 53, payloadLen: 40 },
  { src: '198.51.100.3', dst: '203.0.113.1', proto: 1, icmpType: 8 },
  { src: '2001:db8::1', dst: '2001:db8::2', proto: 6, sport: 40001, dport: 80, tcpFlags: TCP_ACK },
  { src: '2001:db8::1', dst: '2001:db8::2', proto: 17, sport: 4000, dport: 4001 },
  { src: '2001:db8::1', dst: '2001:db8::2', proto: 58, icmpType: 128 },
  { src: '198.51.100.4', dst: '203.0.113.1', proto: 47 },
  // A fragment inside the TCP header: keeps the hidden-header check warm.
  { src: '198.51.100.5', dst: '203.0.113.1', proto: 6, fragOffset: 1, moreFragments: true, payloadLen: 8 },
];
const SLOT = 256;

export function warmUp(batchSize: number, rules: RuleSnapshot, opts: EngineOptions, features: FeatureSettings | null = null, rounds = 3000): void {
  const n = Math.min(batchSize, 64);
  const meta = metaColumns(metaBuffer(n), n);
  const buf = new Uint8Array(n * SLOT);
  for (let i = 0; i < n; i++) {
    const p = buildPacket(SPECS[i % SPECS.length]);
    buf.set(p, i * SLOT);
    meta.offset[i] = i * SLOT;
    meta.capLen[i] = p.length;
    meta.origLen[i] = p.length;
  }
  // One truncated packet keeps the malformed path warm too.
  meta.capLen[n - 1] = 10;
  // The feature path too, windows included (a step every 100 rounds).
  const pipe = new BatchPipeline({
    capacity: n,
    meta,
    rules,
    rulesVersion: 0,
    ruleCounters: new ArrayBuffer(ruleCounterBytes(rules.ruleCount)),
    engine: opts,
    counters: new Float64Array(ENGINE_COUNTERS.length),
    windows: features ? new WindowAggregator({ queue: 0, ...features }, () => undefined) : null,
    flags: features?.flags ?? null,
    onRuleEvents: () => undefined,
  });
  meta.hwAddrOffset.fill(NO_OFFSET);
  for (let r = 0; r < rounds; r++) {
    // Vary the batch size the way real traffic does: mostly 1, sometimes more.
    const k = r % 4 === 0 ? n : 1 + (r % 3);
    meta.tsSec.fill(Math.floor(r / 100) * (features?.stepSeconds ?? 1), 0, k);
    // Now and then in two parts, as a batch that grows while open is decided.
    if (r % 5 === 1 && k > 1) {
      pipe.decide(1, buf);
      pipe.decide(k, buf, 1);
    } else {
      pipe.decide(k, buf);
    }
    pipe.afterVerdicts(k, buf);
  }
}
