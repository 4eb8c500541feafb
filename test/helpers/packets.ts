// Runs described packets through the offline data path (decode, verdicts,
// sessions, session evidence, step counter) and a per-source tracker, as a
// queue thread and the main thread do: what tests of detection need.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EnvelopeStats, Thresholds, learnEnvelope } from '../../src/detect/envelope';
import { FlagModel, shareFlagModel } from '../../src/flow/flag-model';
import { AggregateFinding, SourceFinding, SourceTracker } from '../../src/detect/source-tracker';
import { StepRecord } from '../../src/features/step';
import { OfflinePipeline } from '../../src/offline/pipeline';
import { PacketSpec, buildPacket } from '../../src/packet/build';
import { PcapBatchReader } from '../../src/pcap/reader';
import { PcapWriter } from '../../src/pcap/writer';
import { RuleSet } from '../../src/rules/types';
import { quietBehaviour } from './behaviour';

export type Timed = PacketSpec & { t: number };

export const T0 = 1_700_000_000;
const ACCEPT_ALL: RuleSet = { lock: false, default: 'accept', rules: [], origin: { file: 'test', format: 'native', sha256: '' } };

export interface Run {
  findings: SourceFinding[];
  aggregates: AggregateFinding[];
  steps: StepRecord[];
  behaviour: EnvelopeStats;
}

/**
 * Feeds the packets (t: seconds after T0) in time order. thresholds: from
 * the given behaviour (default: quiet sources, so every threshold is its
 * floor); null judges nothing and only learns.
 */
export function runPackets(pkts: Timed[], o: { behaviour?: EnvelopeStats | null; flags?: FlagModel | null; queues?: (p: Timed) => number; arrivalOrder?: boolean } = {}): Run {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-pk-'));
  const out: Run = { findings: [], aggregates: [], steps: [], behaviour: new EnvelopeStats() };
  const learnt = o.behaviour === null ? null : learnEnvelope(o.behaviour ?? quietBehaviour());
  const tracker = new SourceTracker({
    windowSeconds: 60,
    stepSeconds: 1,
    thresholds: learnt ? new Thresholds(learnt) : null,
    stats: out.behaviour,
    onFinding: (f) => out.findings.push(f),
    onAggregate: (a) => out.aggregates.push(a),
  });
  try {
    // One pipeline per queue, as each queue thread has its own session table.
    const byQueue = new Map<number, Timed[]>();
    for (const p of o.arrivalOrder ? pkts : [...pkts].sort((a, b) => a.t - b.t)) {
      const q = o.queues?.(p) ?? 0;
      byQueue.set(q, [...(byQueue.get(q) ?? []), p]);
    }
    const steps: StepRecord[] = [];
    for (const [q, list] of byQueue) {
      const file = path.join(dir, `q${q}.pcap`);
      const w = new PcapWriter(file, { nanos: true });
      for (const p of list) {
        const abs = T0 + p.t;
        const sec = Math.floor(abs);
        w.write(sec, Math.round((abs - sec) * 1e9), buildPacket(p));
      }
      w.close();
      const reader = new PcapBatchReader(file, 64);
      const pipe = new OfflinePipeline(reader.meta, { rules: ACCEPT_ALL, batchSize: 64, queue: q, features: { windowSeconds: 60, stepSeconds: 1, maxSourcesPerStep: 256, flags: o.flags ? shareFlagModel(o.flags) : null }, onWindow: () => undefined, onStep: (s) => steps.push(s) });
      for (let n = reader.next(); n > 0; n = reader.next()) pipe.process(n, reader.packets);
      // A few idle seconds so unanswered attempts time out and the last steps close.
      const last = list[list.length - 1]?.t ?? 0;
      pipe.windows.advanceTo(T0 + last + 5);
      pipe.finish();
      reader.close();
    }
    // Queues report their steps interleaved in time, as they do live (or as they came, across a clock step).
    if (!o.arrivalOrder) steps.sort((a, b) => a.index - b.index || a.queue - b.queue);
    for (const s of steps) tracker.add(s);
    tracker.flush();
    out.steps = steps;
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A complete HTTP-like exchange of a client with a server (handshake, request, answer, close). */
export function exchange(client: string, server: string, sport: number, dport: number, t: number, out: Timed[]): void {
  const c = (tcpFlags: number, payloadLen = 0) => out.push({ src: client, dst: server, proto: 6, sport, dport, tcpFlags, payloadLen, t: (t += 0.001) });
  const s = (tcpFlags: number, payloadLen = 0) => out.push({ src: server, dst: client, proto: 6, sport: dport, dport: sport, tcpFlags, payloadLen, t: (t += 0.001) });
  c(0x02);
  s(0x12);
  c(0x10);
  c(0x18, 300);
  s(0x10);
  s(0x18, 1400);
  c(0x10);
  c(0x11);
  s(0x11);
  c(0x10);
}
