import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import { metaBuffer, metaColumns } from '../../src/batch/layout';
import { buildPacket, PacketSpec } from '../../src/packet/build';
import { createDecodedBatch, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/packet/decoded';
import { decodePacket } from '../../src/packet/decode';
import { BatchPipeline, SWEEP_SLOTS } from '../../src/pipeline/batch-pipeline';
import { parseRuleText } from '../../src/rules/load';
import { compileRuleSet } from '../../src/verdict/rule-snapshot';
import { ENGINE_COUNTERS, ruleCounterBytes } from '../../src/verdict/engine';
import { ENDED_GRACE_SECONDS, SessionTable } from '../../src/flow/session-table';
import { EV_TCP_FAILED, SessionEvidence } from '../../src/flow/session-evidence';
import { FLOW_ESTABLISHED, FLOW_NEW } from '../../src/rules/types';
import { EndedSessions } from '../../src/flow/ended-sessions';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatSessions } from '../../src/cli/status-text';
import { execFileSync } from 'node:child_process';
import { PcapWriter } from '../../src/pcap/writer';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { MAX_QUEUES, resolveRunOptions } from '../../src/app/run-options';
import { mergeConfig, readConfigFile } from '../../src/app/config-file';
import { csvField, drainFlowRecords, FLOW_ID_QUEUES, FLOW_ID_SPAN, flowIdBase, FlowRecord, SESSION_COLUMNS, sessionRowsOf, sessionsCsv } from '../../src/flow/flow-record';
import { copyLiveSessions, SessionSnapshot, snapshotBytes } from '../../src/flow/session-snapshot';

const B = 8;

/** What a queue thread copies and the main thread then makes rows of (supervisor.sessions). */
function sessionRows(t: SessionTable, queue: number, now: number, limit = t.capacity) {
  const snap = new SessionSnapshot(new ArrayBuffer(snapshotBytes(limit)), limit);
  const n = copyLiveSessions(t, now, snap);
  return { ...n, rows: sessionRowsOf(snap, n.copied, queue) };
}
const T0 = 1_700_000_000;
const counterOf = (c: Float64Array, name: (typeof ENGINE_COUNTERS)[number]) => c[ENGINE_COUNTERS.indexOf(name)];

/** An inline pipeline without feature windows, fed one packet per call at a chosen time. */
function setup(opts: { perSecond?: number; stateRules?: boolean; flowCapacity?: number; counters?: Float64Array } = {}) {
  const text = opts.stateRules ? { default: 'accept', rules: [{ action: 'accept', state: 'established' }] } : { default: 'accept', rules: [] };
  const rules = compileRuleSet(parseRuleText(JSON.stringify(text), 't.json'), { ifindex: () => undefined });
  const meta = metaColumns(metaBuffer(B), B);
  const buf = new Uint8Array(B * 2048);
  const counters = opts.counters ?? new Float64Array(ENGINE_COUNTERS.length);
  const records: FlowRecord[] = [];
  let idle = T0;
  const pipe = new BatchPipeline({
    capacity: B,
    meta,
    rules,
    rulesVersion: 0,
    ruleCounters: new ArrayBuffer(ruleCounterBytes(rules.ruleCount)),
    engine: { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 100, flowCapacity: opts.flowCapacity ?? 1024 },
    counters,
    windows: null,
    onRuleEvents: null,
    idleClock: () => idle,
    flows: { perSecond: opts.perSecond ?? 1000, queue: 3, idBase: flowIdBase(3) },
    onFlows: (r) => records.push(...r),
  });
  /** Sends one packet at time t (seconds); returns its IP length. */
  const send = (spec: PacketSpec, t: number): number => {
    const p = buildPacket(spec);
    buf.set(p, 0);
    meta.offset[0] = 0;
    meta.capLen[0] = p.length;
    meta.origLen[0] = p.length;
    meta.tsSec[0] = Math.floor(t);
    meta.tsNsec[0] = Math.round((t - Math.floor(t)) * 1e9);
    pipe.decide(1, buf);
    pipe.afterVerdicts(1, buf);
    return p.length;
  };
  /** An empty receive at time t (the idle sweep runs). */
  const tick = (t: number) => {
    idle = t;
    pipe.afterVerdicts(0, buf);
  };
  return { pipe, send, tick, records, counters };
}

const C = '10.0.0.5';
const S = '192.0.2.7';
const toS = (sport: number, tcpFlags: number, payloadLen = 0): PacketSpec => ({ src: C, dst: S, proto: 6, sport, dport: 80, tcpFlags, payloadLen });
const toC = (dport: number, tcpFlags: number, payloadLen = 0): PacketSpec => ({ src: S, dst: C, proto: 6, sport: 80, dport, tcpFlags, payloadLen });

/**
 * Feeds a session table one packet per call at a chosen time (seconds), as
 * the pipeline does: classify() for the rules, then record(). Says the
 * state the rules saw, the session's packet count (0: not stored) and slot.
 */
function feeder(t: SessionTable, ended: EndedSessions | null = null) {
  if (ended) t.ended = ended;
  const d = createDecodedBatch(1);
  return (spec: PacketSpec, now: number) => {
    const p = buildPacket(spec);
    decodePacket(p, 0, p.length, 0, d);
    const state = t.classify(d, 0, Float64Array.of(now));
    return { k: t.record(d, 0, Float64Array.of(now), p.length), state, slot: t.lastSlot };
  };
}

describe('flow records', () => {
  it('a TCP exchange closed by FIN both ways: one record, each direction counted, the last ACK adds none', () => {
    const f = setup();
    let ts = 0;
    let tc = 0;
    ts += f.send(toS(40000, TCP_SYN), T0);
    tc += f.send(toC(40000, TCP_SYN | TCP_ACK), T0 + 0.01);
    ts += f.send(toS(40000, TCP_ACK), T0 + 0.02);
    ts += f.send(toS(40000, TCP_ACK | TCP_PSH, 100), T0 + 0.03);
    tc += f.send(toC(40000, TCP_ACK | TCP_PSH, 1000), T0 + 1);
    ts += f.send(toS(40000, TCP_ACK | TCP_FIN), T0 + 2);
    assert.equal(f.records.length, 0, 'one FIN is not the end');
    tc += f.send(toC(40000, TCP_ACK | TCP_FIN), T0 + 2.5);
    assert.equal(f.records.length, 1);
    f.send(toS(40000, TCP_ACK), T0 + 2.6);
    assert.equal(f.records.length, 1, 'the last ACK neither opens nor reports a session');
    const r = f.records[0];
    assert.equal(r.src_ip, C);
    assert.equal(r.src_port, 40000);
    assert.equal(r.dest_ip, S);
    assert.equal(r.dest_port, 80);
    assert.equal(r.proto, 'TCP');
    assert.equal(r.app_proto, 'http');
    assert.equal(r.queue, 3);
    assert.equal(r.flow_id, flowIdBase(3));
    assert.deepEqual({ ...r.flow }, {
      pkts_toserver: 4,
      pkts_toclient: 3,
      bytes_toserver: ts,
      bytes_toclient: tc,
      start: new Date(T0 * 1000).toISOString(),
      end: new Date((T0 + 2.5) * 1000).toISOString(),
      age: 3,
      state: 'closed',
      reason: 'tcp_close',
      alerted: false,
      server_guess: 'handshake',
    });
    assert.deepEqual(r.tcp, { tcp_flags: '1b', tcp_flags_ts: '1b', tcp_flags_tc: '1b', syn: true, fin: true, psh: true, ack: true });
    assert.equal(counterOf(f.counters, 'flowsLogged'), 1);
  });

  it('a refused connection (SYN, then RST) is a closed record with one packet each way', () => {
    const f = setup();
    const syn = f.send(toS(40001, TCP_SYN), T0);
    const rst = f.send(toC(40001, TCP_RST | TCP_ACK), T0 + 0.001);
    assert.equal(f.records.length, 1);
    const r = f.records[0];
    assert.equal(r.src_ip, C);
    assert.deepEqual([r.flow.pkts_toserver, r.flow.pkts_toclient, r.flow.bytes_toserver, r.flow.bytes_toclient], [1, 1, syn, rst]);
    assert.equal(r.flow.state, 'closed');
    assert.equal(r.flow.reason, 'tcp_close');
    assert.equal(r.flow.age, 0);
    assert.deepEqual(r.tcp, { tcp_flags: '16', tcp_flags_ts: '02', tcp_flags_tc: '14', syn: true, rst: true, ack: true });
  });

  it('a new SYN on the 4-tuple of a closed session opens and later reports a new one', () => {
    const f = setup();
    f.send(toS(40002, TCP_SYN), T0);
    f.send(toC(40002, TCP_RST | TCP_ACK), T0);
    f.send(toS(40002, TCP_SYN), T0 + 5);
    f.send(toC(40002, TCP_RST | TCP_ACK), T0 + 5);
    assert.equal(f.records.length, 2);
    assert.equal(f.records[1].flow.start, new Date((T0 + 5) * 1000).toISOString());
    assert.equal(f.records[1].flow.pkts_toserver, 1);
    assert.notEqual(f.records[0].flow_id, f.records[1].flow_id);
  });

  it('works the same when the rules need sessions before the verdicts (state match)', () => {
    const f = setup({ stateRules: true });
    f.send(toS(40003, TCP_SYN), T0);
    f.send(toC(40003, TCP_RST | TCP_ACK), T0);
    assert.equal(f.records.length, 1);
    assert.deepEqual([f.records[0].flow.pkts_toserver, f.records[0].flow.pkts_toclient], [1, 1]);
  });

  it('a UDP exchange idle past the timeout is reported by the sweep, even though its slot is never reused', () => {
    const f = setup();
    const q = f.send({ src: C, dst: S, proto: 17, sport: 5353, dport: 53, payloadLen: 30 }, T0);
    const a = f.send({ src: S, dst: C, proto: 17, sport: 53, dport: 5353, payloadLen: 120 }, T0 + 0.5);
    f.tick(T0 + 60);
    assert.equal(f.records.length, 0, 'not idle yet');
    // The table has 1024 slots: a few sweeps see them all.
    for (let k = 0; k * SWEEP_SLOTS < 1024; k++) f.tick(T0 + 200 + k);
    assert.equal(f.records.length, 1);
    const r = f.records[0];
    assert.equal(r.proto, 'UDP');
    assert.equal(r.app_proto, 'dns');
    assert.equal(r.tcp, undefined);
    assert.deepEqual([r.flow.pkts_toserver, r.flow.pkts_toclient, r.flow.bytes_toserver, r.flow.bytes_toclient], [1, 1, q, a]);
    assert.equal(r.flow.reason, 'timeout');
    assert.equal(r.flow.state, 'established');
    assert.equal(r.flow.end, new Date((T0 + 0.5) * 1000).toISOString());
    for (let k = 0; k < 4; k++) f.tick(T0 + 400 + k);
    assert.equal(f.records.length, 1, 'reported once');
  });

  it('an idle session whose slot is reused first is reported then, once', () => {
    const t = new SessionTable(1024, 10);
    const ended = new EndedSessions(16, 100);
    const rec = feeder(t, ended);
    rec(toS(40004, TCP_SYN), 1);
    rec(toS(40004, TCP_SYN), 30);
    const r = drainFlowRecords(ended, 0, () => 1);
    assert.equal(r.length, 1);
    assert.equal(r[0].flow.reason, 'timeout');
    assert.equal(r[0].flow.state, 'new');
    assert.equal(t.sweepIdle(31, 2048), 0);
  });

  it('under a flood, sessions pushed out of the full table are reported as forced and counted', () => {
    const t = new SessionTable(1);
    const ended = new EndedSessions(1 << 17, 1e9);
    const rec = feeder(t, ended);
    for (let p = 1000; p < 60000; p++) rec({ src: '198.51.100.9', dst: S, proto: 6, sport: p, dport: 22, tcpFlags: TCP_SYN }, 2);
    assert.ok(t.evictions > 0);
    const recs = drainFlowRecords(ended, 0, () => 0);
    assert.equal(recs.filter((r) => r.flow.reason === 'forced').length, t.evictions);
    assert.ok(recs.every((r) => r.flow.reason === 'forced' && r.dest_port === 22 && r.flow.pkts_toserver === 1));
  });

  it('on stop, every open session is reported with reason shutdown', () => {
    const f = setup();
    f.send(toS(40005, TCP_SYN), T0);
    f.send(toC(40005, TCP_SYN | TCP_ACK), T0);
    f.send({ src: C, dst: S, proto: 17, sport: 60000, dport: 9999, payloadLen: 10 }, T0 + 1);
    f.send(toS(40006, TCP_SYN), T0 + 1);
    f.send(toC(40006, TCP_RST | TCP_ACK), T0 + 1);
    assert.equal(f.records.length, 1);
    f.pipe.endAll(T0 + 3);
    assert.equal(f.records.length, 3);
    const byPort = new Map(f.records.map((r) => [r.src_port, r]));
    assert.equal(byPort.get(40005)?.flow.reason, 'shutdown');
    assert.equal(byPort.get(40005)?.flow.state, 'established');
    assert.equal(byPort.get(60000)?.flow.reason, 'shutdown');
    assert.equal(byPort.get(60000)?.app_proto, 'failed');
    f.pipe.endAll(T0 + 4);
    assert.equal(f.records.length, 3, 'nothing reported twice');
    assert.equal(new Set(f.records.map((r) => r.flow_id)).size, 3);
  });

  it('records over the per-second budget are counted, not queued', () => {
    const f = setup({ perSecond: 2 });
    for (let p = 0; p < 5; p++) {
      f.send(toS(41000 + p, TCP_SYN), T0);
      f.send(toC(41000 + p, TCP_RST | TCP_ACK), T0);
    }
    assert.equal(f.records.length, 2);
    assert.equal(counterOf(f.counters, 'flowsSuppressed'), 3);
    f.send(toS(42000, TCP_SYN), T0 + 1);
    f.send(toC(42000, TCP_RST | TCP_ACK), T0 + 1);
    assert.equal(f.records.length, 3, 'the next second has its budget again');
  });

  it('a closed session keeps its slot for the grace period: its last ACK and a retransmitted FIN find it, not a new session', () => {
    const t = new SessionTable(1);
    const ended = new EndedSessions(1 << 16, 1e9);
    const rec = feeder(t, ended);
    const flood = (from: number, now: number) => {
      for (let p = from; p < from + 5000; p++) rec({ src: '198.51.100.9', dst: S, proto: 6, sport: p, dport: 22, tcpFlags: TCP_SYN }, now);
    };
    const first = rec(toS(40000, TCP_SYN), T0);
    rec(toC(40000, TCP_SYN | TCP_ACK), T0);
    rec(toS(40000, TCP_ACK), T0);
    rec(toS(40000, TCP_ACK | TCP_FIN), T0 + 1);
    rec(toC(40000, TCP_ACK | TCP_FIN), T0 + 1);
    assert.ok(t.isEnded(first.slot));
    flood(1000, T0 + 1.5);
    const ack = rec(toS(40000, TCP_ACK), T0 + 1.6);
    assert.equal(ack.slot, first.slot, 'the last ACK finds its own session');
    assert.ok(ack.k > 1);
    assert.equal(ack.state, FLOW_ESTABLISHED, 'rules see the last ACK as established');
    flood(7000, T0 + 3);
    const fin = rec(toC(40000, TCP_ACK | TCP_FIN), T0 + 1.6 + ENDED_GRACE_SECONDS - 0.1);
    assert.equal(fin.slot, first.slot, 'a retransmitted FIN within the grace period too');
    const mine = drainFlowRecords(ended, 0, () => 0).filter((r) => r.src_port === 40000 || r.dest_port === 40000);
    assert.equal(mine.length, 1, 'one record for the connection');
    // Past the grace period the slot goes to another session.
    flood(20000, T0 + 1.6 + 2 * ENDED_GRACE_SECONDS);
    assert.notEqual(t.info(first.slot)?.portA, 40000);
  });

  it('a bare SYN on a closed session\'s 4-tuple is NEW for the rules, as it opens a new session', () => {
    const feed = feeder(new SessionTable(1), new EndedSessions(1 << 10, 1e9));
    const rec = (spec: PacketSpec, now: number) => feed(spec, now).state;
    rec(toS(40010, TCP_SYN), T0);
    rec(toC(40010, TCP_SYN | TCP_ACK), T0);
    assert.equal(rec(toS(40010, TCP_ACK), T0), FLOW_ESTABLISHED);
    rec(toS(40010, TCP_RST), T0 + 0.5);
    assert.equal(rec(toS(40010, TCP_SYN), T0 + 1), FLOW_NEW, 'the reused 4-tuple is a new connection');
    assert.equal(rec(toC(40010, TCP_SYN | TCP_ACK), T0 + 1), FLOW_ESTABLISHED);
  });

  it('a new session takes a free slot before the slot of a closed session', () => {
    const slotOf = (spec: PacketSpec) => feeder(new SessionTable(1))(spec, T0).slot;
    const closed = slotOf(toS(40000, TCP_SYN));
    // A session whose first probe is the closed session's slot.
    let port = 1024;
    while (slotOf({ src: '198.51.100.9', dst: S, proto: 17, sport: port, dport: 53 }) !== closed) port++;
    const t = new SessionTable(1);
    const rec = feeder(t);
    rec(toS(40000, TCP_SYN), T0);
    rec(toC(40000, TCP_RST | TCP_ACK), T0);
    const s = rec({ src: '198.51.100.9', dst: S, proto: 17, sport: port, dport: 53 }, T0 + 60).slot;
    assert.notEqual(s, closed);
    assert.equal(t.info(closed)?.portA, 40000, 'the closed session is still there for late packets');
  });

  it('session evidence for normal traffic through a churning table: refused attempts fail once each, closed exchanges never', () => {
    const t = new SessionTable(1);
    const failures: number[] = [];
    const sink = { failure: (_f: number, w: Uint32Array) => failures.push(w[0]), stalled: () => undefined };
    const ev = new SessionEvidence(t, () => 0);
    const feed = feeder(t);
    let perPacket = 0;
    const rec = (spec: PacketSpec, now: number) => {
      const { k } = feed(spec, now);
      if (k > 0 && ev.onPacket(t.lastSlot, k === 1, t.lastFromInitiator, 6, spec.tcpFlags ?? 0, 0, spec.payloadLen ?? 0, false, now) & EV_TCP_FAILED) perPacket++;
    };
    // 3,000 clients' exchanges over 60 s of a 1,024-slot table (closed slots
    // are reused), each closed by FIN both ways then the last ACK, a
    // retransmitted FIN and its ACK; every 100th attempt refused by a RST.
    let now = T0;
    let refused = 0;
    for (let k = 0; k < 3000; k++) {
      now = T0 + k / 50;
      const c = `10.1.${k >> 8}.${k & 255}`;
      const up = (f: number, len = 0): PacketSpec => ({ src: c, dst: S, proto: 6, sport: 40000, dport: 80, tcpFlags: f, payloadLen: len });
      const down = (f: number, len = 0): PacketSpec => ({ src: S, dst: c, proto: 6, sport: 80, dport: 40000, tcpFlags: f, payloadLen: len });
      rec(up(TCP_SYN), now);
      if (k % 100 === 0) {
        rec(down(TCP_RST | TCP_ACK), now);
        refused++;
      } else {
        rec(down(TCP_SYN | TCP_ACK), now);
        rec(up(TCP_ACK), now);
        rec(up(TCP_ACK | TCP_PSH, 100), now);
        rec(down(TCP_ACK | TCP_PSH, 1000), now);
        rec(up(TCP_ACK | TCP_FIN), now);
        rec(down(TCP_ACK | TCP_FIN), now);
        rec(up(TCP_ACK), now + 0.2);
        rec(down(TCP_ACK | TCP_FIN), now + 1);
        rec(up(TCP_ACK), now + 1);
      }
      if (k % 50 === 0) ev.sweep(now, sink);
    }
    ev.sweep(now + 10, sink);
    assert.equal(t.overflows, 0);
    assert.equal(perPacket + failures.length, refused, `refused attempts: ${perPacket} per packet, ${failures.length} by sweep or reuse`);
  });

  it('flow ids of different queues never meet, and go on across a thread restart (the counters outlive it)', () => {
    assert.ok(MAX_QUEUES <= FLOW_ID_QUEUES);
    const bases = new Set<number>();
    for (let q = 65535 - MAX_QUEUES + 1; q <= 65535; q++) bases.add(flowIdBase(q));
    assert.equal(bases.size, MAX_QUEUES, 'any contiguous range of MAX_QUEUES queues has distinct bases');
    assert.ok(flowIdBase(65535) + FLOW_ID_SPAN - 1 <= Number.MAX_SAFE_INTEGER);
    // One queue, 40 thread starts sharing its counters, each logging 3 records.
    const counters = new Float64Array(ENGINE_COUNTERS.length);
    const ids = new Set<number>();
    for (let start = 0; start < 40; start++) {
      const f = setup({ counters });
      for (let p = 0; p < 3; p++) {
        f.send(toS(41000 + p, TCP_SYN), T0 + start);
        f.send(toC(41000 + p, TCP_RST | TCP_ACK), T0 + start);
      }
      for (const r of f.records) ids.add(r.flow_id);
    }
    assert.equal(ids.size, 120);
    assert.equal(Math.min(...ids), flowIdBase(3));
    assert.equal(Math.max(...ids), flowIdBase(3) + 119);
  });

  it('a record that does not fit between two drains is counted as suppressed, never lost uncounted', () => {
    const ended = new EndedSessions(2, 1e9);
    const rec = feeder(new SessionTable(1), ended);
    for (let p = 0; p < 5; p++) {
      rec(toS(43000 + p, TCP_SYN), T0);
      rec(toC(43000 + p, TCP_RST | TCP_ACK), T0);
    }
    assert.equal(ended.count, 2);
    assert.equal(ended.suppressed, 3);
  });

  it('the pipeline holds the worst case of a batch: every packet pushing a session out and closing its own', () => {
    // A batch of N RSTs into a full table of attempts: each pushes the
    // oldest attempt out (a record) and closes its own session (another).
    const N = 1024;
    const rules = compileRuleSet(parseRuleText(JSON.stringify({ default: 'accept', rules: [] }), 't.json'), { ifindex: () => undefined });
    const meta = metaColumns(metaBuffer(N), N);
    const buf = new Uint8Array(N * 128);
    const counters = new Float64Array(ENGINE_COUNTERS.length);
    const records: FlowRecord[] = [];
    const pipe = new BatchPipeline({
      capacity: N, meta, rules, rulesVersion: 0, ruleCounters: new ArrayBuffer(ruleCounterBytes(rules.ruleCount)),
      engine: { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 100, flowCapacity: 1024 },
      counters, windows: null, onRuleEvents: null, flows: { perSecond: 1e6, queue: 0, idBase: flowIdBase(0) }, onFlows: (r) => records.push(...r),
    });
    const batch = (src: string, firstPort: number, tcpFlags: number, t: number) => {
      for (let i = 0; i < N; i++) {
        const p = buildPacket({ src, dst: S, proto: 6, sport: firstPort + i, dport: 22, tcpFlags });
        buf.set(p, i * 128);
        meta.offset[i] = i * 128;
        meta.capLen[i] = p.length;
        meta.origLen[i] = p.length;
        meta.tsSec[i] = t;
        meta.tsNsec[i] = 0;
      }
      pipe.decide(N, buf);
      pipe.afterVerdicts(N, buf);
    };
    batch('198.51.100.9', 2000, TCP_SYN, T0);
    batch('198.51.100.9', 4000, TCP_SYN, T0);
    const before = records.length;
    const evBefore = pipe.engine.sessions.evictions;
    batch('198.51.100.10', 50000, TCP_RST, T0 + 1);
    const evicted = pipe.engine.sessions.evictions - evBefore;
    assert.ok(evicted > N / 2, `most RSTs pushed an attempt out (${evicted})`);
    const batchRecords = records.slice(before);
    assert.equal(batchRecords.filter((r) => r.flow.reason === 'tcp_close').length, N, 'every RST closed its own session');
    // A few RSTs push out a session an earlier RST of the batch closed (reported already).
    assert.ok(batchRecords.filter((r) => r.flow.reason === 'forced').length > N / 2);
    assert.equal(counterOf(counters, 'flowsLogged'), records.length);
    assert.equal(counterOf(counters, 'flowsSuppressed'), 0);
  });

  it('src/dest are client/server and to-server counts src -> dest, also for a session picked up mid-stream', () => {
    const f = setup();
    // Picked up mid-stream: the first packet seen is the server's (port 443) to the client.
    const s1 = f.send({ src: S, dst: C, proto: 6, sport: 443, dport: 51000, tcpFlags: TCP_ACK | TCP_PSH, payloadLen: 500 }, T0);
    const c1 = f.send({ src: C, dst: S, proto: 6, sport: 51000, dport: 443, tcpFlags: TCP_ACK }, T0 + 0.1);
    const c2 = f.send({ src: C, dst: S, proto: 6, sport: 51000, dport: 443, tcpFlags: TCP_ACK | TCP_RST }, T0 + 0.2);
    // And one opened by its client.
    const c3 = f.send(toS(40020, TCP_SYN), T0);
    const s3 = f.send(toC(40020, TCP_RST | TCP_ACK), T0);
    assert.equal(f.records.length, 2);
    const mid = f.records.find((r) => r.src_port === 51000 || r.dest_port === 51000)!;
    assert.deepEqual([mid.src_ip, mid.src_port, mid.dest_ip, mid.dest_port, mid.app_proto], [C, 51000, S, 443, 'tls']);
    assert.deepEqual([mid.flow.pkts_toserver, mid.flow.bytes_toserver, mid.flow.pkts_toclient, mid.flow.bytes_toclient], [2, c1 + c2, 1, s1]);
    assert.equal(mid.flow.server_guess, 'port_below_1024');
    assert.deepEqual([mid.tcp?.tcp_flags_ts, mid.tcp?.tcp_flags_tc], ['14', '18']);
    const opened = f.records.find((r) => r.src_port === 40020)!;
    assert.deepEqual([opened.src_ip, opened.dest_ip, opened.dest_port], [C, S, 80]);
    assert.deepEqual([opened.flow.pkts_toserver, opened.flow.bytes_toserver, opened.flow.pkts_toclient, opened.flow.bytes_toclient], [1, c3, 1, s3]);
  });
});

describe('nfips sessions rows', () => {
  it('lists live sessions server first, each direction counted, as CSV a CSV reader parses', () => {
    const f = setup();
    const syn = f.send(toS(40010, TCP_SYN), T0);
    const sa = f.send(toC(40010, TCP_SYN | TCP_ACK), T0 + 1);
    f.send({ src: 'fd00::1', dst: 'fd00::2', proto: 17, sport: 5000, dport: 123, payloadLen: 48 }, T0 + 1);
    const { rows } = sessionRows(f.pipe.engine.sessions, 3, T0 + 2);
    assert.equal(rows.length, 2);
    const tcp = rows.find((r) => r.protocol === 'tcp')!;
    assert.deepEqual(
      { ...tcp },
      { queue: 3, server_ip: S, server_port: 80, client_ip: C, client_port: 40010, protocol: 'tcp', packets_to_server: 1, bytes_to_server: syn, packets_to_client: 1, bytes_to_client: sa, first_seen: new Date(T0 * 1000).toISOString(), last_seen: new Date((T0 + 1) * 1000).toISOString(), server_guess: 'handshake', state: 'established' },
    );
    const parsed = parse(sessionsCsv(rows), { columns: true }) as Record<string, string>[];
    assert.deepEqual(Object.keys(parsed[0]), [...SESSION_COLUMNS]);
    const udp = parsed.find((r) => r.protocol === 'udp')!;
    assert.equal(udp.server_ip, 'fd00::2');
    assert.equal(udp.server_port, '123');
    assert.equal(udp.server_guess, 'port_below_1024');
    const text = formatSessions(rows);
    assert.match(text, /192\.0\.2\.7:80 +10\.0\.0\.5:40010 +tcp/);
    assert.match(text, /\[fd00::2\]:123 +\[fd00::1\]:5000 +udp/);
    assert.match(text, /\n2 sessions\n$/);
    assert.equal(sessionRows(f.pipe.engine.sessions, 3, T0 + 500).total, 0, 'idle sessions are not live');
    assert.equal(formatSessions([]), 'no live sessions\n');
  });

  it('a queue thread copies at most the limit and counts every live session; the text says how many were left out', () => {
    const f = setup();
    for (let p = 0; p < 5; p++) f.send(toS(44000 + p, TCP_SYN), T0 + p);
    f.send(toS(44000, TCP_ACK | TCP_RST), T0 + 5);
    const all = sessionRows(f.pipe.engine.sessions, 3, T0 + 6);
    assert.deepEqual([all.copied, all.total], [5, 5]);
    assert.equal(all.rows.filter((r) => r.state === 'closed').length, 1, 'a closed session waiting for late packets is shown closed');
    const some = sessionRows(f.pipe.engine.sessions, 3, T0 + 6, 2);
    assert.deepEqual([some.copied, some.total, some.rows.length], [2, 5, 2]);
    assert.deepEqual(some.rows, all.rows.slice(0, 2));
    assert.match(formatSessions(some.rows, some.total), /\n2 of 5 live sessions \(--limit\)\n$/);
    assert.equal(formatSessions([], 5), '5 live sessions, none listed\n');
  });

  it('quotes CSV fields that need it', () => {
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('x\ny'), '"x\ny"');
    assert.equal(csvField(12), '12');
    const [row] = parse(`${['a,b', 'say "hi"', 'x\ny'].map(csvField).join(',')}\r\n`) as string[][];
    assert.deepEqual(row, ['a,b', 'say "hi"', 'x\ny']);
  });
});

describe('--flow-log flags', () => {
  it('default on at 2000 a second; off, a rate and a config file key are taken; nonsense is refused naming the flag', () => {
    const d = resolveRunOptions({});
    assert.deepEqual([d.flowLog, d.flowLogRate], [true, 2000]);
    assert.equal(resolveRunOptions({ flowLog: 'off' }).flowLog, false);
    assert.equal(resolveRunOptions({ flowLogRate: '50' }).flowLogRate, 50);
    assert.throws(() => resolveRunOptions({ flowLog: 'yes' }), /invalid --flow-log "yes": expected one of on, off/);
    assert.throws(() => resolveRunOptions({ flowLogRate: '0' }), /invalid --flow-log-rate "0"/);
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-flowcfg-'));
    const file = path.join(dir, 'nfips.json');
    writeFileSync(file, JSON.stringify({ 'flow-log': 'off', 'flow-log-rate': 10 }));
    const o = resolveRunOptions(mergeConfig(readConfigFile(file), {}).flags);
    assert.deepEqual([o.flowLog, o.flowLogRate], [false, 10]);
    writeFileSync(file, JSON.stringify({ 'flow-log': 'sometimes' }));
    assert.throws(() => readConfigFile(file), /flow-log/);
  });
});

describe('nfips replay --flow-log on', () => {
  it('prints a flow line for a refused connection at once and for a UDP exchange at the end of the capture', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-flowpcap-'));
    const pcap = path.join(dir, 'f.pcap');
    const w = new PcapWriter(pcap);
    const pkts: [number, PacketSpec][] = [
      [T0, toS(40020, TCP_SYN)],
      [T0, toC(40020, TCP_RST | TCP_ACK)],
      [T0 + 1, { src: C, dst: S, proto: 17, sport: 5000, dport: 53, payloadLen: 40 }],
      [T0 + 2, { src: S, dst: C, proto: 17, sport: 53, dport: 5000, payloadLen: 90 }],
    ];
    for (const [t, spec] of pkts) w.write(t, 0, buildPacket(spec));
    w.close();
    const out = (extra: string[]) => execFileSync(process.execPath, [path.join(PACKAGE_ROOT, 'bin', 'nfips'), 'replay', '--pcap', pcap, '--rules-only', ...extra], { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const flows = out(['--flow-log', 'on']).filter((l) => l.event_type === 'flow') as unknown as (FlowRecord & { timestamp: string })[];
    const len = pkts.map(([, spec]) => buildPacket(spec).length);
    assert.deepEqual(flows.map((f) => [f.proto, f.flow.reason, f.flow.pkts_toserver, f.flow.pkts_toclient, f.flow.bytes_toserver, f.flow.bytes_toclient]), [
      ['TCP', 'tcp_close', 1, 1, len[0], len[1]],
      ['UDP', 'shutdown', 1, 1, len[2], len[3]],
    ]);
    assert.equal(flows[0].timestamp, new Date(T0 * 1000).toISOString(), 'stamped on the capture clock');
    assert.equal(out([]).filter((l) => l.event_type === 'flow').length, 0, 'off by default in replay');
  });
});
