// Per-source detection through the real data path (decode, sessions,
// session evidence, step counter, tracker): what attacks look like from
// their own source, what normal clients never do, and who is never named.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildFlagModel, compileFlagModel, flagClass, formatSequence, SYM_NULL, SYM_ODD, SYM_SYN, SYM_SYNACK, symbolOf } from '../../src/flow/flag-model';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG } from '../../src/packet/decoded';
import { buildPacket } from '../../src/packet/build';
import { exchange, runPackets, Timed } from '../helpers/packets';

const SERVER = '10.0.2.2';
const SERVER2 = '10.0.2.3';
const CLIENTS = ['10.0.1.2', '10.0.1.3', '10.0.1.4'];
const ATTACKER = '10.0.1.66';

/** Minutes of ordinary clients: web exchanges, DNS answered at once, pings answered. */
function normal(seconds: number, seed = 1): Timed[] {
  const out: Timed[] = [];
  let port = 30000 + seed * 1000;
  for (let s = 0; s < seconds; s++) {
    for (const [k, c] of CLIENTS.entries()) {
      for (let j = 0; j < 3; j++) exchange(c, SERVER, port++, 8080, s + 0.1 * j + 0.03 * k, out);
      const sp = 40000 + ((s * 7 + k) % 20000);
      out.push({ src: c, dst: SERVER, proto: 17, sport: sp, dport: 53, payloadLen: 40, t: s + 0.5 + 0.01 * k });
      out.push({ src: SERVER, dst: c, proto: 17, sport: 53, dport: sp, payloadLen: 120, t: s + 0.502 + 0.01 * k });
      if (s % 2 === 0) {
        out.push({ src: c, dst: SERVER, proto: 1, icmpType: 8, payloadLen: 56, t: s + 0.7 });
        out.push({ src: SERVER, dst: c, proto: 1, icmpType: 0, payloadLen: 56, t: s + 0.7005 });
      }
    }
  }
  return out;
}

// What these clients do, learnt once: thresholds come from it, as from a trained model.
const NORMAL = runPackets(normal(120, 9), { behaviour: null }).behaviour;
const run = (pk: Timed[], o: Parameters<typeof runPackets>[1] = {}) => runPackets(pk, { behaviour: NORMAL, ...o });

const named = (r: ReturnType<typeof runPackets>) => [...new Set(r.findings.map((f) => f.ip))];
const measures = (r: ReturnType<typeof runPackets>, ip: string) => [...new Set(r.findings.filter((f) => f.ip === ip).flatMap((f) => f.exceeded.map((x) => x.measure)))].sort();
const firstAt = (r: ReturnType<typeof runPackets>, ip: string) => Math.min(...r.findings.filter((f) => f.ip === ip).map((f) => f.step)) - 1_700_000_000;

describe('per-source detection', () => {
  it('ordinary clients are never named: everything they start is answered', () => {
    const r = run(normal(90));
    assert.deepEqual(named(r), []);
    assert.deepEqual(r.aggregates, []);
    assert.ok(r.behaviour.sourceSteps >= 3 * 85, 'each client counted as a source every second');
  });

  it('a SYN scan of closed ports: failed connections and many failed ports, the scanner only', () => {
    const pk = normal(30);
    for (let p = 1; p <= 300; p++) {
      const t = 10 + p * 0.01;
      pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport: 45000, dport: p, tcpFlags: TCP_SYN, t });
      pk.push({ src: SERVER, dst: ATTACKER, proto: 6, sport: p, dport: 45000, tcpFlags: TCP_RST | TCP_ACK, t: t + 0.0002 });
    }
    const r = run(pk);
    assert.deepEqual(named(r), [ATTACKER], 'the server that sent the RSTs is never named');
    assert.deepEqual(measures(r, ATTACKER), ['failed_ports', 'tcp_failed']);
    assert.ok(firstAt(r, ATTACKER) <= 11, 'found in the second it started');
    const f = r.findings.find((x) => x.ip === ATTACKER)!;
    assert.ok(f.evTcp < 0, 'many ports: no single service to narrow the block to');
  });

  it('a slow scan (5 ports a second) is found by its distinct failed ports within the window', () => {
    const pk = normal(60);
    for (let p = 1; p <= 250; p++) {
      const t = 5 + p * 0.2;
      pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport: 45000, dport: 1000 + p, tcpFlags: TCP_SYN, t });
      pk.push({ src: SERVER, dst: ATTACKER, proto: 6, sport: 1000 + p, dport: 45000, tcpFlags: TCP_RST | TCP_ACK, t: t + 0.0002 });
    }
    const r = run(pk);
    assert.deepEqual(named(r), [ATTACKER]);
    const first = r.findings.find((f) => f.ip === ATTACKER)!;
    assert.deepEqual(first.exceeded.map((x) => x.measure), ['failed_ports'], 'first by its failed ports; later its failures add up too');
    const at = firstAt(r, ATTACKER);
    assert.ok(at >= 8 && at <= 15, `30 distinct ports take about 6 s at 5 a second: found at ${at} s`);
  });

  it('a SYN flood at an open port: handshakes the attacker abandons (RST after SYN-ACK), narrowed to the service', () => {
    const pk = normal(20);
    for (let k = 0; k < 2000; k++) {
      const t = 5 + k * 0.001;
      const sport = 1024 + k;
      pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport, dport: 8080, tcpFlags: TCP_SYN, t });
      pk.push({ src: SERVER, dst: ATTACKER, proto: 6, sport: 8080, dport: sport, tcpFlags: TCP_SYN | TCP_ACK, t: t + 0.0001 });
      pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport, dport: 8080, tcpFlags: TCP_RST, t: t + 0.0002 });
    }
    const r = run(pk);
    assert.deepEqual(named(r), [ATTACKER]);
    assert.deepEqual(measures(r, ATTACKER), ['tcp_failed']);
    const f = r.findings.find((x) => x.ip === ATTACKER)!;
    assert.equal(f.evTcp, (6 << 16) | 8080);
    assert.equal(firstAt(r, ATTACKER), 5);
  });

  it('SYNs nobody answers fail after 2 s (and so do the ones a full table evicts)', () => {
    // Normal traffic goes on (steps close on time, as the live queue's idle poll makes them).
    const pk = normal(12);
    for (let k = 0; k < 3000; k++) pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport: 1024 + (k % 60000), dport: 8080, tcpFlags: TCP_SYN, t: 3 + k * 0.0005 });
    const r = run(pk);
    assert.deepEqual(named(r), [ATTACKER]);
    const at = firstAt(r, ATTACKER);
    assert.ok(at >= 4 && at <= 6, `failed once unanswered for 2 s: ${at}`);
    const total = r.steps.reduce((n, s) => n + Array.from({ length: s.sources.n }, (_, i) => s.sources.ev[i * 6]).reduce((a, b) => a + b, 0) + s.othersEv[0], 0);
    assert.equal(total, 3000, 'every attempt failed exactly once');
  });

  it('UDP floods: new flows nobody answers fail after 2 s; one flow nobody answers counts its datagrams after 2 s; DNS answered at once is neither', () => {
    const pk = normal(20);
    for (let k = 0; k < 3000; k++) pk.push({ src: ATTACKER, dst: SERVER, proto: 17, sport: 1024 + k, dport: 9, payloadLen: 10, t: 6 + k * 0.0003 });
    const one = '10.0.1.67';
    for (let k = 0; k < 30000; k++) pk.push({ src: one, dst: SERVER, proto: 17, sport: 4444, dport: 9, payloadLen: 10, t: 6 + k * 0.0001 });
    const r = run(pk);
    assert.deepEqual(named(r).sort(), [ATTACKER, one].sort());
    assert.ok(measures(r, ATTACKER).includes('udp_failed'));
    assert.equal(firstAt(r, ATTACKER), 8);
    assert.equal(r.findings.find((x) => x.ip === ATTACKER)!.evUdp, (17 << 16) | 9);
    assert.deepEqual(measures(r, one), ['udp_unanswered']);
    assert.equal(firstAt(r, one), 8, 'a single flow is judged once it has gone unanswered for 2 s');
  });

  it('a UDP scan answered by ICMP port unreachables fails at once; forged or mismatched unreachables count for nothing', () => {
    const pk = normal(20);
    for (let p = 1; p <= 40; p++) {
      const t = 5 + p * 0.02;
      const probe = { src: ATTACKER, dst: SERVER, proto: 17, sport: 47000, dport: p, payloadLen: 0 };
      pk.push({ ...probe, t });
      // The quote: the probe's IP header and its first 8 bytes.
      pk.push({ src: SERVER, dst: ATTACKER, proto: 1, icmpType: 3, icmpCode: 3, payload: buildPacket(probe).subarray(0, 28), t: t + 0.0002 });
    }
    // Unreachables quoting attempts that never happened, or in the wrong direction, framing a client.
    for (let p = 1; p <= 40; p++) {
      const fake = { src: CLIENTS[0], dst: SERVER, proto: 17, sport: 5000 + p, dport: 53, payloadLen: 0 };
      pk.push({ src: SERVER, dst: CLIENTS[0], proto: 1, icmpType: 3, icmpCode: 3, payload: buildPacket(fake).subarray(0, 28), t: 6 + p * 0.01 });
      const reversed = { src: SERVER, dst: CLIENTS[1], proto: 17, sport: 53, dport: 40000 + ((5 * 7 + 1) % 20000), payloadLen: 0 };
      pk.push({ src: CLIENTS[1], dst: SERVER, proto: 1, icmpType: 3, icmpCode: 3, payload: buildPacket(reversed).subarray(0, 28), t: 6 + p * 0.01 });
    }
    const r = run(pk);
    assert.deepEqual(named(r), [ATTACKER]);
    assert.ok(measures(r, ATTACKER).includes('failed_ports'));
    assert.equal(firstAt(r, ATTACKER), 5, 'refused in the second it was probed, not 2 s later');
  });

  it('a ping flood: echo requests, even answered ones', () => {
    const pk = normal(20);
    for (let k = 0; k < 2000; k++) {
      pk.push({ src: ATTACKER, dst: SERVER, proto: 1, icmpType: 8, payloadLen: 56, t: 4 + k * 0.0005 });
      pk.push({ src: SERVER, dst: ATTACKER, proto: 1, icmpType: 0, payloadLen: 56, t: 4 + k * 0.0005 + 0.0001 });
    }
    const r = run(pk);
    assert.deepEqual(named(r), [ATTACKER]);
    assert.deepEqual(measures(r, ATTACKER), ['echo_requests']);
  });

  it('a horizontal scan spread over two queues is added up per source', () => {
    const pk: Timed[] = [];
    for (let h = 0; h < 40; h++) {
      const dst = `10.0.3.${h + 1}`;
      pk.push({ src: ATTACKER, dst, proto: 6, sport: 45000, dport: 22, tcpFlags: TCP_SYN, t: 2 + h * 0.02 });
      pk.push({ src: dst, dst: ATTACKER, proto: 6, sport: 22, dport: 45000, tcpFlags: TCP_RST | TCP_ACK, t: 2 + h * 0.02 + 0.0001 });
    }
    // NFQUEUE balances on addresses: each host's exchange on its own queue.
    const r = run(pk, { queues: (p) => (Number((p.dst === ATTACKER ? p.src : p.dst).split('.')[3]) % 2) });
    assert.deepEqual(named(r), [ATTACKER]);
    assert.ok(measures(r, ATTACKER).includes('failed_hosts'), `40 hosts over two queues: ${measures(r, ATTACKER).join(', ')}`);
  });

  it('slowloris: many sessions the server never answers with data are stalled', () => {
    const pk = normal(40);
    for (let k = 0; k < 40; k++) {
      const sport = 50000 + k;
      const t = 2 + k * 0.01;
      pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport, dport: 8080, tcpFlags: TCP_SYN, t });
      pk.push({ src: SERVER, dst: ATTACKER, proto: 6, sport: 8080, dport: sport, tcpFlags: TCP_SYN | TCP_ACK, t: t + 0.0001 });
      pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport, dport: 8080, tcpFlags: TCP_ACK, t: t + 0.0002 });
      for (let j = 0; j < 4; j++) {
        pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport, dport: 8080, tcpFlags: TCP_PSH | TCP_ACK, payloadLen: 20, t: t + 0.001 + j * 8 });
        pk.push({ src: SERVER, dst: ATTACKER, proto: 6, sport: 8080, dport: sport, tcpFlags: TCP_ACK, t: t + 0.0012 + j * 8 });
      }
    }
    const r = run(pk);
    assert.deepEqual(named(r), [ATTACKER]);
    assert.deepEqual(measures(r, ATTACKER), ['service_sessions', 'stalled_sessions'], '40 sessions in 0.4 s are also a burst');
    const stalled = Math.min(...r.findings.filter((f) => f.exceeded.some((x) => x.measure === 'stalled_sessions')).map((f) => f.step)) - 1_700_000_000;
    assert.ok(stalled >= 7 && stalled <= 9, `stalled once 5 s old: ${stalled}`);
  });

  it('a SYN flood from random spoofed sources: real hosts among them reset the SYN-ACKs, yet only the distributed alert comes; a real flooder beside it is named', () => {
    const pk = normal(20);
    const spoofed = [...CLIENTS, ...Array.from({ length: 197 }, (_, k) => `10.0.7.${k + 2}`)];
    for (let k = 0; k < 20000; k++) {
      const t = 4 + k * 0.0001;
      const src = spoofed[k % spoofed.length];
      const sport = 1024 + (k % 50000);
      pk.push({ src, dst: SERVER, proto: 6, sport, dport: 8080, tcpFlags: TCP_SYN, t });
      pk.push({ src: SERVER, dst: src, proto: 6, sport: 8080, dport: sport, tcpFlags: TCP_SYN | TCP_ACK, t: t + 0.00002 });
      // The real hosts' kernels reset handshakes they never began.
      if (CLIENTS.includes(src)) pk.push({ src, dst: SERVER, proto: 6, sport, dport: 8080, tcpFlags: TCP_RST, t: t + 0.00004 });
    }
    for (let k = 0; k < 3000; k++) {
      const t = 4 + k * 0.0005;
      pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport: 2000 + k, dport: 8080, tcpFlags: TCP_SYN, t });
      pk.push({ src: SERVER, dst: ATTACKER, proto: 6, sport: 8080, dport: 2000 + k, tcpFlags: TCP_SYN | TCP_ACK, t: t + 0.00002 });
      pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport: 2000 + k, dport: 8080, tcpFlags: TCP_RST, t: t + 0.00004 });
    }
    const r = run(pk);
    assert.deepEqual(named(r), [ATTACKER], 'the hosts whose addresses were spoofed are not named');
    assert.ok(r.aggregates.some((a) => a.distributed && a.measure === 'tcp_failed'), 'the flood itself is seen, spread over many addresses');
  });

  it('who only received is never named: backscatter of spoofed SYNs, a server refusing, sessions picked up mid-stream', () => {
    const pk: Timed[] = [];
    // SYN-ACKs to a client that never sent the SYNs (someone spoofed it); it resets them, as its kernel does.
    for (let k = 0; k < 2000; k++) {
      pk.push({ src: SERVER, dst: CLIENTS[0], proto: 6, sport: 8080, dport: 2000 + k, tcpFlags: TCP_SYN | TCP_ACK, t: 2 + k * 0.001 });
      pk.push({ src: CLIENTS[0], dst: SERVER, proto: 6, sport: 2000 + k, dport: 8080, tcpFlags: TCP_RST, t: 2 + k * 0.001 + 0.0001 });
    }
    // A server that sends data on sessions nfips only sees from the middle (as after a restart).
    for (let k = 0; k < 500; k++) pk.push({ src: SERVER2, dst: CLIENTS[1], proto: 6, sport: 443, dport: 3000 + k, tcpFlags: TCP_ACK | TCP_PSH, payloadLen: 1400, t: 2 + k * 0.002 });
    // UDP answers to queries nfips never saw.
    for (let k = 0; k < 2000; k++) pk.push({ src: SERVER, dst: CLIENTS[2], proto: 17, sport: 53, dport: 5000 + k, payloadLen: 100, t: 2 + k * 0.001 });
    const r = run(pk);
    assert.deepEqual(named(r), []);
  });
});

describe('what normal clients and servers do is never evidence (review cases)', () => {
  const FLAGS = buildFlagModel(runPackets(normal(60), { behaviour: null }).behaviour.sequences, runPackets(normal(60), { behaviour: null }).behaviour.sessions);
  /** 80 sessions a minute of the given shape from one client: above every floor, were they evidence. */
  function sessions(shape: (c: (f: number, len?: number) => void, sv: (f: number, len?: number) => void) => void, client = CLIENTS[0]): Timed[] {
    const out: Timed[] = [];
    for (let k = 0; k < 80; k++) {
      let t = 2 + k * 0.75;
      const sport = 52000 + k;
      const c = (f: number, len = 0) => out.push({ src: client, dst: SERVER, proto: 6, sport, dport: 2222, tcpFlags: f, payloadLen: len, t: (t += 0.001) });
      const sv = (f: number, len = 0) => out.push({ src: SERVER, dst: client, proto: 6, sport: 2222, dport: sport, tcpFlags: f, payloadLen: len, t: (t += 0.001) });
      shape(c, sv);
    }
    return out;
  }
  const shapes: Record<string, Parameters<typeof sessions>[0]> = {
    'a server that speaks first (SSH, SMTP)': (c, sv) => { c(TCP_SYN); sv(TCP_SYN | TCP_ACK); c(TCP_ACK); sv(TCP_PSH | TCP_ACK, 40); c(TCP_PSH | TCP_ACK, 40); sv(TCP_ACK); c(TCP_FIN | TCP_ACK); sv(TCP_FIN | TCP_ACK); c(TCP_ACK); },
    'a client that closes with a RST': (c, sv) => { c(TCP_SYN); sv(TCP_SYN | TCP_ACK); c(TCP_ACK); c(TCP_PSH | TCP_ACK, 300); sv(TCP_PSH | TCP_ACK, 900); c(TCP_RST | TCP_ACK); },
    'a retransmitted SYN-ACK': (c, sv) => { c(TCP_SYN); sv(TCP_SYN | TCP_ACK); c(TCP_ACK); sv(TCP_SYN | TCP_ACK); c(TCP_ACK); c(TCP_PSH | TCP_ACK, 200); sv(TCP_PSH | TCP_ACK, 500); c(TCP_FIN | TCP_ACK); sv(TCP_FIN | TCP_ACK); },
    'a hostile server sending NULL packets into the client\'s sessions': (c, sv) => { c(TCP_SYN); sv(TCP_SYN | TCP_ACK); c(TCP_ACK); c(TCP_PSH | TCP_ACK, 100); sv(0); sv(TCP_RST); },
    'short sessions closed before the server says anything (graphite, syslog over TCP)': (c, sv) => { c(TCP_SYN); sv(TCP_SYN | TCP_ACK); c(TCP_ACK); c(TCP_PSH | TCP_ACK, 300); sv(TCP_ACK); c(TCP_FIN | TCP_ACK); sv(TCP_FIN | TCP_ACK); c(TCP_ACK); },
  };
  for (const [name, shape] of Object.entries(shapes)) {
    it(`${name}: nobody named`, () => {
      const r = run([...normal(70, 3), ...sessions(shape)], { flags: FLAGS });
      assert.deepEqual(named(r), [], JSON.stringify(r.findings.map((f) => [f.ip, f.exceeded.map((x) => x.measure), f.sequence])));
    });
  }

  it('fragmented answers of a server (DNS over UDP) to many clients: the server is not named', () => {
    const pk = normal(20);
    for (let k = 0; k < 1500; k++) {
      const t = 3 + k * 0.006;
      const client = `10.0.5.${2 + (k % 60)}`;
      pk.push({ src: SERVER, dst: client, proto: 17, sport: 53, dport: 40000 + k, payloadLen: 1400, moreFragments: true, t });
      pk.push({ src: SERVER, dst: client, proto: 17, payloadLen: 300, fragOffset: 176, t: t + 0.0001 });
    }
    assert.deepEqual(named(run(pk)), []);
  });

  it('traceroute: probes answered by routers (time exceeded) are not failures', () => {
    const pk = normal(20);
    for (let p = 0; p < 45; p++) {
      const probe = { src: CLIENTS[0], dst: SERVER, proto: 17, sport: 45000, dport: 33434 + p, payloadLen: 32 };
      const t = 5 + p * 0.01;
      pk.push({ ...probe, t });
      const router = `10.0.9.${1 + Math.floor(p / 3)}`;
      pk.push({ src: router, dst: CLIENTS[0], proto: 1, icmpType: 11, icmpCode: 0, payload: buildPacket(probe).subarray(0, 28), t: t + 0.001 });
    }
    assert.deepEqual(named(run(pk)), []);
  });

  it('a busy resolver (120 answered queries a second to one upstream) is not named', () => {
    const pk = normal(20);
    for (let k = 0; k < 2000; k++) {
      const t = 3 + k / 120;
      pk.push({ src: CLIENTS[1], dst: SERVER2, proto: 17, sport: 10000 + k, dport: 53, payloadLen: 40, t });
      pk.push({ src: SERVER2, dst: CLIENTS[1], proto: 17, sport: 53, dport: 10000 + k, payloadLen: 120, t: t + 0.003 });
    }
    assert.deepEqual(named(run(pk)), []);
  });

  it('a NULL scan from a low source port (nmap -sN -g 53) is still credited to the prober', () => {
    const pk = normal(20);
    for (let p = 1000; p < 1300; p++) pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport: 53, dport: p, tcpFlags: 0, t: 4 + (p - 1000) * 0.005 });
    const r = run(pk, { flags: FLAGS });
    assert.deepEqual(named(r), [ATTACKER]);
    assert.ok(measures(r, ATTACKER).includes('odd_sessions'));
  });

  it('a source that stopped attacking is not found again on what the window remembers', () => {
    const pk = normal(40);
    for (let p = 1; p <= 300; p++) {
      pk.push({ src: CLIENTS[2], dst: SERVER, proto: 6, sport: 45000, dport: p, tcpFlags: TCP_SYN, t: 5 + p * 0.003 });
      pk.push({ src: SERVER, dst: CLIENTS[2], proto: 6, sport: p, dport: 45000, tcpFlags: TCP_RST | TCP_ACK, t: 5 + p * 0.003 + 0.0001 });
    }
    const r = run(pk);
    const steps = [...new Set(r.findings.filter((f) => f.ip === CLIENTS[2]).map((f) => f.step - 1_700_000_000))];
    assert.deepEqual(steps, [5], 'found while scanning (5.0-5.9 s); its normal traffic afterwards is not judged on the scan');
  });

  it('after the clock steps back, detection goes on from the new time', () => {
    const before = normal(10);
    const after = normal(20).map((p) => ({ ...p, t: p.t - 1000 }));
    for (let p = 1; p <= 300; p++) {
      after.push({ src: ATTACKER, dst: SERVER, proto: 6, sport: 45000, dport: p, tcpFlags: TCP_SYN, t: -990 + p * 0.003 });
      after.push({ src: SERVER, dst: ATTACKER, proto: 6, sport: p, dport: 45000, tcpFlags: TCP_RST | TCP_ACK, t: -990 + p * 0.003 + 0.0001 });
    }
    // One queue that sees the jump as it happens: packets in arrival order, not time order.
    const r = runPackets([...before, ...after], { behaviour: NORMAL, arrivalOrder: true });
    assert.deepEqual(named(r), [ATTACKER]);
  });
});

describe('TCP flag-sequence model', () => {
  it('classes and symbols', () => {
    assert.equal(flagClass(TCP_SYN, 0), SYM_SYN);
    assert.equal(flagClass(TCP_SYN | TCP_ACK, 0), SYM_SYNACK);
    assert.equal(flagClass(0, 0), SYM_NULL);
    assert.equal(flagClass(TCP_FIN | TCP_PSH | TCP_URG, 0), SYM_ODD, 'XMAS');
    assert.equal(flagClass(TCP_FIN, 0), SYM_ODD, 'FIN without ACK');
    assert.equal(flagClass(TCP_SYN | TCP_FIN, 0), SYM_ODD);
    assert.equal(flagClass(0x40 | TCP_SYN, 0), SYM_SYN, 'ECN bits do not make a SYN odd');
    assert.equal(symbolOf(TCP_SYN | TCP_ACK, 0, false), SYM_SYNACK + 8);
  });

  it('learnt from normal sessions: NULL, FIN and XMAS probes are improbable, the normal handshake is not', () => {
    const learn = runPackets(normal(60), { behaviour: null });
    const m = buildFlagModel(learn.behaviour.sequences, learn.behaviour.sessions);
    assert.ok(m.sessions >= 500 && m.threshold >= 9.2);
    const c = compileFlagModel(m);
    const first = (sym: number) => c.surprisal[((16 * 17 + 16) * 17 + 16) * 16 + sym];
    assert.ok(first(SYM_SYN) < 0.1, `a session opening with a SYN is expected: ${first(SYM_SYN)}`);
    for (const s of [SYM_NULL, SYM_ODD]) assert.ok(first(s) > m.threshold, `${formatSequence(s, 1)}: ${first(s)} > ${m.threshold}`);

    const pk = normal(30, 2);
    const probes = [0, TCP_FIN, TCP_FIN | TCP_PSH | TCP_URG];
    for (let p = 1; p <= 90; p++) {
      const t = 8 + p * 0.01;
      pk.push({ src: ATTACKER, dst: SERVER, proto: 6, sport: 46000, dport: p, tcpFlags: probes[p % 3], t });
      // Closed ports answer RST; open ones say nothing.
      if (p % 2) pk.push({ src: SERVER, dst: ATTACKER, proto: 6, sport: p, dport: 46000, tcpFlags: TCP_RST | TCP_ACK, t: t + 0.0002 });
    }
    const r = run(pk, { flags: m });
    assert.deepEqual(named(r), [ATTACKER]);
    assert.deepEqual(measures(r, ATTACKER), ['odd_sessions']);
    const f = r.findings.find((x) => x.ip === ATTACKER)!;
    assert.match(f.sequence?.symbols ?? '', /^o:(NULL|ODD)/, `the sequence that tripped it is reported: ${f.sequence?.symbols}`);
  });
});
