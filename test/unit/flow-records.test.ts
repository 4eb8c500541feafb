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
import { SessionTable } from '../../src/flow/session-table';
import { EndedSessions } from '../../src/flow/ended-sessions';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatSessions } from '../../src/cli/status-text';
import { execFileSync } from 'node:child_process';
import { PcapWriter } from '../../src/pcap/writer';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { resolveRunOptions } from '../../src/app/run-options';
import { mergeConfig, readConfigFile } from '../../src/app/config-file';
import { csvField, drainFlowRecords, flowIdBase, FlowRecord, SESSION_COLUMNS, sessionRows, sessionsCsv } from '../../src/flow/flow-record';

const B = 8;
const T0 = 1_700_000_000;
const counterOf = (c: Float64Array, name: (typeof ENGINE_COUNTERS)[number]) => c[ENGINE_COUNTERS.indexOf(name)];

/** An inline pipeline without feature windows, fed one packet per call at a chosen time. */
function setup(opts: { perSecond?: number; stateRules?: boolean; flowCapacity?: number } = {}) {
  const text = opts.stateRules ? { default: 'accept', rules: [{ action: 'accept', state: 'established' }] } : { default: 'accept', rules: [] };
  const rules = compileRuleSet(parseRuleText(JSON.stringify(text), 't.json'), { ifindex: () => undefined });
  const meta = metaColumns(metaBuffer(B), B);
  const buf = new Uint8Array(B * 2048);
  const counters = new Float64Array(ENGINE_COUNTERS.length);
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
    flows: { perSecond: opts.perSecond ?? 1000, queue: 3, idBase: flowIdBase(3, 0) },
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
    assert.equal(r.flow_id, flowIdBase(3, 0));
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
    t.ended = ended;
    const d = createDecodedBatch(1);
    const rec = (spec: PacketSpec, now: number) => {
      const p = buildPacket(spec);
      decodePacket(p, 0, p.length, 0, d);
      t.record(d, 0, Float64Array.of(now), p.length);
    };
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
    t.ended = ended;
    const d = createDecodedBatch(1);
    const rec = (spec: PacketSpec, now: number) => {
      const p = buildPacket(spec);
      decodePacket(p, 0, p.length, 0, d);
      t.record(d, 0, Float64Array.of(now), p.length);
    };
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
    f.send({ src: C, dst: S, proto: 17, sport: 6000, dport: 9999, payloadLen: 10 }, T0 + 1);
    f.send(toS(40006, TCP_SYN), T0 + 1);
    f.send(toC(40006, TCP_RST | TCP_ACK), T0 + 1);
    assert.equal(f.records.length, 1);
    f.pipe.endAll(T0 + 3);
    assert.equal(f.records.length, 3);
    const byPort = new Map(f.records.map((r) => [r.src_port, r]));
    assert.equal(byPort.get(40005)?.flow.reason, 'shutdown');
    assert.equal(byPort.get(40005)?.flow.state, 'established');
    assert.equal(byPort.get(6000)?.flow.reason, 'shutdown');
    assert.equal(byPort.get(6000)?.app_proto, 'failed');
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

  it('flow ids of different queues and restarts never meet', () => {
    const ids = new Set<number>();
    for (const q of [0, 1, 65535]) for (const r of [0, 1, 31]) ids.add(flowIdBase(q, r));
    assert.equal(ids.size, 9);
    assert.ok(flowIdBase(65535, 31) + 2 ** 32 - 1 <= Number.MAX_SAFE_INTEGER);
    assert.ok(flowIdBase(1, 0) > flowIdBase(0, 31) + 2 ** 32 - 1);
  });
});

describe('nfips sessions rows', () => {
  it('lists live sessions server first, each direction counted, as CSV a CSV reader parses', () => {
    const f = setup();
    const syn = f.send(toS(40010, TCP_SYN), T0);
    const sa = f.send(toC(40010, TCP_SYN | TCP_ACK), T0 + 1);
    f.send({ src: 'fd00::1', dst: 'fd00::2', proto: 17, sport: 5000, dport: 123, payloadLen: 48 }, T0 + 1);
    const rows = sessionRows(f.pipe.engine.sessions, 3, T0 + 2);
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
    assert.equal(sessionRows(f.pipe.engine.sessions, 3, T0 + 500).length, 0, 'idle sessions are not live');
    assert.equal(formatSessions([]), 'no live sessions\n');
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
