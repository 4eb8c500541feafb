// The passive capture source (the addon's Capture class) on a real kernel:
// probes in the gateway namespace of client <-> gateway <-> server watch the
// client-side veth (whole, and split three ways) and an NFLOG group, while
// the client exchanges UDP and TCP with the server; then a flood against a
// capture with a tiny buffer and a slow decide callback; then frames on two
// devices merged in timestamp order, forwarded packets seen once or twice by
// direction, and a captured interface deleted and re-created under a capture
// thread. One topology serves every check.
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { captureWorkerFilters } from '../../src/capture/split-filter';
import { createTopology, Topology } from '../../lab/netns/topology';
import { startPeers } from '../../lab/netns/peers';
import { alternatePayload, sendAlternately } from '../../lab/netns/alternate-sender';
import { PACKAGE_ROOT, requireEvasionTools, requireIntegration, SCAPY_PYTHON } from '../helpers/env';
import type { ProbeConfig, ProbeProgress, ProbeRecord, ProbeReport } from '../helpers/capture-probe';
import type { SentReport, TrafficPlan } from '../helpers/capture-traffic';
import type { ThreadProbeConfig, ThreadProbeReport } from '../helpers/capture-thread';

const HELPERS = path.join(PACKAGE_ROOT, 'dist', 'test', 'helpers');
const NFLOG_GROUP = 7;
const FLOOD_PORT = 5399;
const SNAPLEN = 256;
const VLAN_SRC = '10.77.10.2';
const VLAN_DST = '10.77.3.2';
const ORDER_PORT = 7444;
/** Gap between the frames sent alternately on two devices: far above scheduling noise, so any inversion is the capture's. */
const ORDER_GAP_MS = 5;
const ORDER_PAIRS = 60;
/** Addresses on the veth pair the device-loss check deletes (inside the gateway namespace only). */
const LOSS_SRC = '10.77.250.1';
const LOSS_DST = '10.77.250.2';
const PINGS = 3;
/** ICMP payload of the direction check's echoes: IP length 20 + 8 + 111. */
const PING_SIZE = 111;
const TAGGED_SENDER = `
import sys
from scapy.all import Ether, Dot1Q, Dot1AD, IP, UDP, Raw, sendp
iface, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
mac = lambda h: ':'.join(h[i:i + 2] for i in range(0, 12, 2))
eth = lambda: Ether(src=mac(src), dst=mac(dst))
ip = lambda: IP(src='${VLAN_SRC}', dst='${VLAN_DST}')
frames = [eth() / Dot1Q(vlan=10) / ip() / UDP(sport=41000 + j, dport=7) / Raw(b'v' * (60 + j)) for j in range(3)]
frames.append(eth() / Dot1AD(vlan=20) / Dot1Q(vlan=10) / ip() / UDP(sport=41010, dport=7) / Raw(b'q' * 70))
sendp(frames, iface=iface, verbose=False)
`;

interface Probe<R> {
  proc: ChildProcess;
  done: Promise<R>;
  /** The last "seen" line of a recording probe. */
  progress: () => ProbeProgress | undefined;
}

/** Starts a capture probe in ns and waits until its devices are open. */
function startProbe(t: Topology, ns: string, cfg: ProbeConfig): Promise<Probe<ProbeReport>>;
function startProbe(t: Topology, ns: string, cfg: ThreadProbeConfig, script: 'capture-thread.js'): Promise<Probe<ThreadProbeReport>>;
function startProbe<R>(t: Topology, ns: string, cfg: ProbeConfig | ThreadProbeConfig, script = 'capture-probe.js'): Promise<Probe<R>> {
  const proc = t.spawn(ns, process.execPath, [path.join(HELPERS, script), JSON.stringify(cfg)]);
  let out = '';
  let err = '';
  let progress: ProbeProgress | undefined;
  proc.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`capture probe on ${cfg.devices.join(',')} not ready within 10 s: ${err}`)), 10_000);
    const done = new Promise<R>((res, rej) => {
      proc.on('exit', (code) => {
        const last = out.trim().split('\n').pop() ?? '';
        try {
          const parsed = JSON.parse(last) as R & { error?: string };
          if (parsed.error) throw new Error(parsed.error);
          res(parsed);
        } catch (e) {
          rej(new Error(`capture probe on ${cfg.devices.join(',')} exited ${code}: ${(e as Error).message} ${err}`));
        }
      });
    });
    proc.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const lines = out.split('\n');
      const seen = lines.slice(0, -1).filter((l) => l.startsWith('seen ')).pop();
      if (seen) progress = JSON.parse(seen.slice(5)) as ProbeProgress;
      if (out.startsWith('ready\n')) {
        clearTimeout(timer);
        resolve({ proc, done, progress: () => progress });
      } else if (out.includes('\n')) {
        clearTimeout(timer);
        done.catch(reject);
      }
    });
    done.catch((e) => (clearTimeout(timer), reject(e)));
  });
}

async function linkInfo(t: Topology, ns: string, dev: string): Promise<{ ifindex: number; mac: string }> {
  const r = await t.exec(ns, 'ip', ['-j', 'link', 'show', 'dev', dev]);
  const [l] = JSON.parse(r.stdout) as { ifindex: number; address: string }[];
  return { ifindex: l.ifindex, mac: l.address.replace(/:/g, '') };
}

const ipv6Text = (a: string) => {
  // The probe writes all eight groups without compression.
  const [head, tail = ''] = a.split('::');
  const h = head ? head.split(':') : [];
  const tl = tail ? tail.split(':') : [];
  return [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl].map((g) => parseInt(g, 16).toString(16)).join(':');
};
const norm = (a: string) => (a.includes(':') ? ipv6Text(a) : a);

const key = (r: Pick<ProbeRecord, 'proto' | 'src' | 'sport' | 'dst' | 'dport' | 'ipLen'>) => `${r.proto} ${r.src}:${r.sport} > ${r.dst}:${r.dport} len ${r.ipLen}`;
const flowKey = (r: Pick<ProbeRecord, 'proto' | 'src' | 'sport' | 'dst' | 'dport'>) => {
  const a = `${r.src}:${r.sport}`;
  const b = `${r.dst}:${r.dport}`;
  return `${r.proto} ${a < b ? `${a} ${b}` : `${b} ${a}`}`;
};

test('capture source: columns, symmetric split, NFLOG and buffer overruns', { timeout: 60_000 }, async (t) => {
  await requireIntegration('iptables', 'modprobe');
  // scapy crafts the VLAN-tagged frames.
  requireEvasionTools();
  const topo = await createTopology('cap');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-capture-'));
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) p.kill();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const a = topo.addr;
  procs.push(...(await startPeers(topo, topo.server, [['udp-echo', 7], ['tcp-echo', 9], ['tcp-echo', 80], ['tcp-echo', 81]])));
  // The NFLOG device needs the kernel's nfnetlink_log.
  await topo.exec(topo.gateway, 'modprobe', ['nfnetlink_log'], { allowFail: true });
  await topo.exec(topo.gateway, 'iptables', ['-w', '-A', 'FORWARD', '-p', 'tcp', '--dport', '80', '-j', 'NFLOG', '--nflog-group', String(NFLOG_GROUP)]);

  // Neighbours resolved and link-local addresses settled before any capture
  // starts, so no exchange below waits on discovery.
  await topo.exec(topo.client, 'ping', ['-c', '1', '-W', '5', a.server4]);
  await topo.exec(topo.client, 'ping', ['-6', '-c', '1', '-W', '5', a.server6]);

  const gw = await linkInfo(topo, topo.gateway, topo.gwClientIf);
  const gwOut = await linkInfo(topo, topo.gateway, topo.gwServerIf);
  const client = await linkInfo(topo, topo.client, `${topo.prefix}c0`);

  const stopFile = path.join(dir, 'stop');
  const base: ProbeConfig = { devices: [topo.gwClientIf], filter: `not udp port ${FLOOD_PORT}`, snaplen: SNAPLEN, bufferBytes: 4 << 20, batchSize: 64, slowMs: 0, record: true, stopFile };
  const splitFilters = captureWorkerFilters([topo.gwClientIf], base.filter, 3);
  const [whole, nflog, flood, any, ...split] = await Promise.all([
    startProbe(topo, topo.gateway, base),
    // A filter cannot apply to NFLOG (libpcap refuses them all): it opens with a warning.
    startProbe(topo, topo.gateway, { ...base, devices: [`nflog:${NFLOG_GROUP}`], filter: 'not port 22' }),
    // Tiny buffer, slow consumer: the kernel must drop and pcap_stats say so.
    startProbe(topo, topo.gateway, { ...base, filter: `udp port ${FLOOD_PORT}`, bufferBytes: 64 << 10, batchSize: 16, slowMs: 50, record: false }),
    // "any" (LINUX_SLL2): each frame names its own interface.
    startProbe(topo, topo.gateway, { ...base, devices: ['any'], filter: 'udp port 7' }),
    ...splitFilters.map((f) => startProbe(topo, topo.gateway, { ...base, ...f })),
  ]);
  // Two devices in one capture: their frames must come out in timestamp order.
  const ordered = await startProbe(topo, topo.gateway, { ...base, devices: [topo.gwClientIf, topo.gwServerIf], filter: `udp dst port ${ORDER_PORT}` });
  // Split captures where libpcap refuses `vlan`: "any" (LINUX_SLL2) and a tun device (RAW).
  const tun = `${topo.prefix}t0`;
  await topo.exec(topo.gateway, 'ip', ['tuntap', 'add', 'dev', tun, 'mode', 'tun']);
  await topo.exec(topo.gateway, 'ip', ['link', 'set', tun, 'up']);
  const [anySplit, tunSplit] = await Promise.all(
    [['any'], [tun]].map((devices) => startProbe(topo, topo.gateway, { devices, filter: 'udp or tcp', workers: 2, rules: JSON.stringify({ default: 'accept', rules: [] }), stopFile }, 'capture-thread.js')),
  );
  // Both gateway interfaces: a forwarded packet crosses both, in on one and out on the other.
  const [dirIn, dirBoth] = await Promise.all((['in', 'both'] as const).map((direction) => startProbe(topo, topo.gateway, { ...base, devices: [topo.gwClientIf, topo.gwServerIf], filter: 'icmp', direction })));
  procs.push(ordered.proc, anySplit.proc, tunSplit.proc, dirIn.proc, dirBoth.proc);
  // Two capture threads as nfips runs them, rules in log mode: UDP to the echo port would be dropped.
  const rules = JSON.stringify({ default: 'accept', rules: [{ id: 'no-udp-echo', action: 'drop', protocol: 'udp', dport: 7 }] });
  const threads = await startProbe(topo, topo.gateway, { devices: [topo.gwClientIf], filter: base.filter, workers: 2, rules, stopFile }, 'capture-thread.js');
  procs.push(whole.proc, nflog.proc, flood.proc, any.proc, threads.proc, ...split.map((p) => p.proc));

  const sources4 = [a.client4, ...a.clientExtra4];
  const plan: TrafficPlan = {
    udp: [
      ...sources4.flatMap((src, i) => [0, 1, 2].map((j) => ({ src, dst: a.server4, port: 7, len: 10 + 37 * i + j }))),
      // Longer than the snaplen: the capture keeps SNAPLEN bytes of it.
      { src: a.client4, dst: a.server4, port: 7, len: 1200 },
      { src: a.client6, dst: a.server6, port: 7, len: 33 },
      { src: a.client6, dst: a.server6, port: 7, len: 900 },
    ],
    tcp: [
      ...sources4.map((src) => ({ src, dst: a.server4, port: 9 })),
      { src: a.client6, dst: a.server6, port: 9 },
      ...sources4.slice(0, 3).flatMap((src) => [80, 81].map((port) => ({ src, dst: a.server4, port }))),
    ],
    flood: { dst: a.server4, port: FLOOD_PORT, count: 30_000 },
  };
  const r = await topo.exec(topo.client, process.execPath, [path.join(HELPERS, 'capture-traffic.js'), JSON.stringify(plan)], { timeoutMs: 30_000 });
  const sent = JSON.parse(r.stdout) as SentReport;
  // Tagged frames (the kernel here has no 8021q module for VLAN devices):
  // three with one 802.1Q tag and one QinQ frame. Nothing answers them.
  await topo.exec(topo.client, SCAPY_PYTHON, ['-c', TAGGED_SENDER, `${topo.prefix}c0`, client.mac, gw.mac], { timeoutMs: 30_000 });
  // Out of each gateway interface in turn, ORDER_GAP_MS apart.
  await sendAlternately(topo, topo.gateway, a.client4, a.server4, ORDER_PORT, ORDER_PAIRS, ORDER_GAP_MS);
  await topo.exec(topo.client, 'ping', ['-n', '-q', '-c', String(PINGS), '-i', '0.2', '-s', String(PING_SIZE), a.server4]);
  // The kernel holds NFLOG records until 100 are queued or its 1 s flush
  // timer fires (nfnetlink_log's defaults; iptables 1.8 ignores
  // --nflog-threshold): wait until the NFLOG capture has every packet to
  // port 80 the whole capture saw, and the two-device ones everything sent.
  const until = Date.now() + 10_000;
  const count = (p: Probe<ProbeReport>, port?: number) => (port === undefined ? p.progress()?.records : p.progress()?.dports[port]) ?? 0;
  while (!(count(whole, 80) > 0 && count(nflog, 80) >= count(whole, 80) && count(ordered) >= 2 * ORDER_PAIRS && count(dirBoth) >= 4 * PINGS && count(dirIn) >= 2 * PINGS) && Date.now() < until) {
    await new Promise((res) => setTimeout(res, 50));
  }
  writeFileSync(stopFile, '');
  const [wholeR, nflogR, floodR, anyR, ...splitR] = await Promise.all([whole.done, nflog.done, flood.done, any.done, ...split.map((p) => p.done)]);
  const threadsR = await threads.done;
  const [orderedR, anySplitR, tunSplitR, dirInR, dirBothR] = await Promise.all([ordered.done, anySplit.done, tunSplit.done, dirIn.done, dirBoth.done]);

  await t.test('packets reach the capture with the columns of what was sent', () => {
    assert.ok(sent.udp.every((u) => u.echoed) && sent.tcp.every((c) => c.echoed), `every exchange was answered ${JSON.stringify(sent.udp.filter((u) => !u.echoed))}`);
    const seen = new Map<string, ProbeRecord[]>();
    for (const rec of wholeR.records) seen.set(key(rec), [...(seen.get(key(rec)) ?? []), rec]);
    for (const u of sent.udp) {
      const v6 = u.dst.includes(':');
      const ipLen = u.len + 8 + (v6 ? 40 : 20);
      const out = { proto: 17, src: norm(u.src), sport: u.sport, dst: norm(u.dst), dport: u.dport, ipLen };
      const back = { ...out, src: out.dst, sport: out.dport, dst: out.src, dport: out.sport };
      for (const [dir, want, mac] of [['out', out, client.mac], ['back', back, gw.mac]] as const) {
        const got = seen.get(key(want)) ?? [];
        assert.equal(got.length, 1, `${dir} ${key(want)} seen once`);
        const g = got[0];
        assert.equal(g.origLen, ipLen, 'OrigLen is the IP packet on the wire');
        assert.equal(g.capLen, Math.min(ipLen, SNAPLEN - 14), 'CapLen is what the snaplen kept past the Ethernet header');
        assert.equal(g.hwProto, v6 ? 0x86dd : 0x0800);
        assert.equal(g.inIfindex, gw.ifindex);
        assert.equal(g.mac, mac, 'HwAddrOffset points at the source MAC');
        assert.ok(Math.abs(g.tsSec - Date.now() / 1000) < 60, 'timestamp is wall-clock time');
      }
    }
    for (const c of sent.tcp) {
      const out = { proto: 6, src: norm(c.src), sport: c.sport, dst: norm(c.dst), dport: c.dport };
      const fwd = wholeR.records.filter((x) => x.proto === 6 && x.src === out.src && x.sport === out.sport && x.dst === out.dst && x.dport === out.dport);
      const rev = wholeR.records.filter((x) => x.proto === 6 && x.src === out.dst && x.sport === out.dport && x.dst === out.src && x.dport === out.sport);
      // SYN, ACK, data, FIN at least one way; SYN-ACK, echo, FIN the other.
      assert.ok(fwd.length >= 3 && rev.length >= 3, `TCP ${flowKey(out)}: ${fwd.length} out, ${rev.length} back`);
    }
    assert.equal(wholeR.counters.captureDrops, 0);
    assert.equal(wholeR.counters.received, wholeR.records.length, 'every frame in a batch was an IP packet');
  });

  await t.test('on "any", each frame carries the index of the interface it crossed', () => {
    // A forwarded datagram crosses both gateway interfaces, and so does its echo.
    for (const u of sent.udp.filter((x) => !x.dst.includes(':'))) {
      const out = anyR.records.filter((x) => x.sport === u.sport && x.dport === 7).map((x) => x.inIfindex).sort();
      assert.deepEqual(out, [gw.ifindex, gwOut.ifindex].sort(), `${u.src}:${u.sport} seen on both sides`);
    }
  });

  await t.test('802.1Q and QinQ frames are seen with their tags stripped', () => {
    const tagged = wholeR.records.filter((x) => x.src === VLAN_SRC && x.dst === VLAN_DST);
    assert.deepEqual(tagged.map((x) => [x.sport, x.ipLen, x.origLen, x.hwProto, x.mac]), [
      [41000, 88, 88, 0x0800, client.mac],
      [41001, 89, 89, 0x0800, client.mac],
      [41002, 90, 90, 0x0800, client.mac],
      [41010, 98, 98, 0x0800, client.mac],
    ]);
    // Split: each tagged frame, single or QinQ, on exactly one worker.
    for (const sport of [41000, 41001, 41002, 41010]) assert.equal(splitR.filter((s) => s.records.some((x) => x.src === VLAN_SRC && x.sport === sport)).length, 1, `tagged ${sport} on one worker`);
  });

  await t.test('bad devices, filters and buffer sizes fail with the device and libpcap\'s words', async () => {
    await assert.rejects(startProbe(topo, topo.gateway, { ...base, devices: ['nosuchdev0'] }), /capture nosuchdev0: .*(No such device|doesn't exist)/i);
    await assert.rejects(startProbe(topo, topo.gateway, { ...base, filter: 'udp port' }), new RegExp(`capture ${topo.gwClientIf}: bad filter "udp port": .*syntax error`));
    // pcap_set_buffer_size takes an int: nothing above 2 GiB - 1 may wrap into it.
    for (const bufferBytes of [2 ** 31, 2 ** 32 + 4096]) {
      await assert.rejects(startProbe(topo, topo.gateway, { ...base, bufferBytes }), /Capture: bufferBytes must be an integer 0\.\.2147483647/);
    }
  });

  await t.test('three split captures see every packet once, each flow on one of them', () => {
    // What the plan sent (stray neighbour discovery or ICMP may come while the probes start or stop).
    const ours = new Set([...sent.udp, ...sent.tcp].flatMap((x) => [norm(x.src), norm(x.dst)]));
    const planned = (rec: ProbeRecord) => (rec.proto === 6 || rec.proto === 17) && ours.has(rec.src) && ours.has(rec.dst);
    const all = wholeR.records.filter(planned).map(key).sort();
    const union = splitR.flatMap((s) => s.records.filter(planned).map(key)).sort();
    assert.ok(all.length > 100, `${all.length} packets of the plan captured`);
    assert.deepEqual(union, all, 'the shares add up to the whole capture, no packet twice');
    const owner = new Map<string, number>();
    splitR.forEach((s, k) => {
      for (const rec of s.records) {
        const f = flowKey(rec);
        assert.equal(owner.get(f) ?? k, k, `flow ${f} on one worker`);
        owner.set(f, k);
      }
    });
    splitR.forEach((s, k) => assert.ok(s.records.length > 0, `worker ${k} of 3 got a share`));
  });

  await t.test('capture threads run the rules (log mode) on their share and report capture counters', () => {
    assert.deepEqual(threadsR.counters.map((c) => c.queue), [0, 1]);
    const received = threadsR.counters.reduce((sum, c) => sum + c.received, 0);
    assert.ok(received >= wholeR.records.length - 20 && received <= wholeR.records.length + 20, `threads saw ${received}, the whole capture ${wholeR.records.length}`);
    for (const c of threadsR.counters) {
      assert.ok(c.received > 0, `capture thread ${c.queue} got a share`);
      assert.equal(c.captureDrops, 0);
      assert.equal(c.verdictDrop + c.verdictAccept + c.verdictRepeat, 0, 'nothing is answered');
    }
    const toEcho = sent.udp.filter((u) => u.dport === 7);
    for (const u of toEcho) {
      const ev = threadsR.ruleEvents.filter((e) => e.action === 'would-drop' && e.src_port === u.sport && e.dest_port === 7);
      assert.equal(ev.length, 1, `one would-drop for ${u.src}:${u.sport}`);
      assert.equal(ev[0].in_ifindex, gw.ifindex);
    }
    // The default accepts quietly: the only events are the rule's.
    assert.equal(threadsR.ruleEvents.filter((e) => e.action !== 'would-drop').length, 0);
    assert.deepEqual(threadsR.logged.filter((l) => l.type.includes('error')), []);
  });

  await t.test('a split opens on "any" and on a tun device (no VLAN branch there)', () => {
    for (const [name, r] of [['any', anySplitR], [tun, tunSplitR]] as const) {
      assert.deepEqual(r.counters.map((c) => c.queue), [0, 1], `two capture threads on ${name}`);
      assert.deepEqual(r.logged.filter((l) => l.type.includes('error')), [], `no error on ${name}`);
    }
    // "any" saw the plan's traffic, shared between both threads.
    for (const c of anySplitR.counters) assert.ok(c.received > 0, `thread ${c.queue} on "any" got a share`);
  });

  await t.test('frames from two devices come out in timestamp order', () => {
    const recs = orderedR.records;
    assert.equal(recs.length, 2 * ORDER_PAIRS, 'every datagram seen once');
    // Payload lengths 1, 2, 3... in the order they were sent, alternately out of each interface.
    assert.deepEqual(recs.map((r) => r.ipLen - 28), recs.map((_, i) => alternatePayload(i + 1)), 'delivered in the order sent');
    recs.forEach((r, i) => assert.equal(r.inIfindex, i % 2 ? gwOut.ifindex : gw.ifindex, `frame ${i + 1} on its device`));
    const ts = recs.map((r) => BigInt(r.tsSec) * 1_000_000_000n + BigInt(r.tsNsec));
    for (let i = 1; i < ts.length; i++) assert.ok(ts[i] >= ts[i - 1], `timestamps never go back (frame ${i + 1})`);
  });

  await t.test('direction "in" sees a forwarded packet once, "both" twice', () => {
    const echoes = (r: ProbeReport, src: string, dst: string) => r.records.filter((x) => x.proto === 1 && x.src === src && x.dst === dst && x.ipLen === 28 + PING_SIZE).length;
    for (const [name, r, times] of [['in', dirInR, 1], ['both', dirBothR, 2]] as const) {
      assert.equal(echoes(r, a.client4, a.server4), times * PINGS, `direction ${name}: echo requests`);
      assert.equal(echoes(r, a.server4, a.client4), times * PINGS, `direction ${name}: echo replies`);
      assert.equal(r.counters.captureDrops, 0);
    }
  });

  await t.test('a full capture buffer is reported as captureDrops', () => {
    assert.equal(sent.flooded, plan.flood?.count);
    const c = floodR.counters;
    assert.ok(c.captureDrops > 0, `captureDrops ${c.captureDrops} (received ${c.received} of ${sent.flooded})`);
    assert.ok(c.received < sent.flooded, 'the capture saw fewer than were sent');
  });

  await t.test('NFLOG: only what the rule copies (TCP to port 80), with both interfaces; --filter does not apply there', () => {
    assert.deepEqual(nflogR.warnings, [`--filter does not apply to nflog:${NFLOG_GROUP}: libpcap cannot filter NFLOG records; the iptables NFLOG rule selects them`]);
    const to80 = sent.tcp.filter((c) => c.dport === 80);
    assert.ok(nflogR.records.length >= to80.length * 3, `${nflogR.records.length} NFLOG packets for ${to80.length} connections`);
    for (const rec of nflogR.records) {
      assert.equal(rec.proto, 6);
      assert.equal(rec.dport, 80, `${key(rec)} copied by a --dport 80 rule`);
      assert.equal(rec.inIfindex, gw.ifindex);
      assert.equal(rec.outIfindex, gwOut.ifindex);
      assert.equal(rec.hwProto, 0x0800);
      assert.equal(rec.origLen, rec.ipLen);
    }
    for (const c of to80) assert.ok(nflogR.records.some((x) => x.sport === c.sport && x.src === c.src), `connection from ${c.src}:${c.sport} logged`);
    assert.ok(sent.tcp.some((c) => c.dport === 81 && c.echoed), 'port 81 traffic flowed meanwhile');
  });

  await t.test('a deleted device stops its thread with its name; the restart opens it again once it is back', { timeout: 30_000 }, async () => {
    const [k0, k1] = [`${topo.prefix}k0`, `${topo.prefix}k1`];
    const makePair = async () => {
      await topo.exec(topo.gateway, 'ip', ['link', 'add', k0, 'type', 'veth', 'peer', 'name', k1]);
      for (const dev of [k0, k1]) await topo.exec(topo.gateway, 'ip', ['link', 'set', dev, 'up']);
      await topo.exec(topo.gateway, 'ip', ['addr', 'add', `${LOSS_SRC}/24`, 'dev', k1]);
      // No host answers there: a static neighbour lets the pings go out as IP frames.
      await topo.exec(topo.gateway, 'ip', ['neigh', 'replace', LOSS_DST, 'lladdr', '02:00:00:00:00:02', 'dev', k1]);
    };
    await makePair();
    const lossStop = path.join(dir, 'stop-loss');
    const probe = await startProbe(topo, topo.gateway, { devices: [k0], filter: 'icmp', workers: 1, rules: JSON.stringify({ default: 'accept', rules: [] }), stopFile: lossStop, live: true }, 'capture-thread.js');
    procs.push(probe.proc);
    const lines: string[] = [];
    let wake = () => undefined as void;
    let buf = '';
    probe.proc.stdout?.on('data', (b: Buffer) => {
      buf += b.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      lines.push(...parts);
      wake();
    });
    const waitFor = async (what: string, pred: (line: string) => boolean) => {
      const until = Date.now() + 20_000;
      while (!lines.some(pred)) {
        assert.ok(Date.now() < until, `${what} within 20 s; got ${lines.filter((l) => l.startsWith('event')).join(' | ')}`);
        await new Promise<void>((res) => ((wake = res), setTimeout(res, 200)));
      }
      return lines.find(pred)!;
    };
    const events = () => lines.filter((l) => l.startsWith('event ')).map((l) => JSON.parse(l.slice(6)) as { type: string; fields: Record<string, unknown> });
    await topo.exec(topo.gateway, 'ip', ['link', 'del', k0]);
    await waitFor('the thread restarting', (l) => l.startsWith('event ') && l.includes('"queue_restart"'));
    // While the interface is missing, a restart fails, logged with libpcap's words.
    await waitFor('a failed restart', (l) => l.startsWith('event ') && l.includes('restart_attempt'));
    await makePair();
    const ping = topo.spawn(topo.gateway, 'ping', ['-n', '-q', '-i', '0.2', '-w', '20', '-I', k1, LOSS_DST]);
    procs.push(ping);
    const received = (l: string) => l.startsWith('counters ') && (JSON.parse(l.slice(9)) as { received: number }[])[0].received >= 3;
    await waitFor('pings captured after the interface came back', received);
    ping.kill();
    writeFileSync(lossStop, '');
    const report = await probe.done;
    const errors = events().filter((e) => e.type === 'queue_error');
    const text = errors.map((e) => JSON.stringify(e.fields)).join(' | ');
    assert.ok(errors.some((e) => e.fields.restart_attempt === undefined && String(e.fields.error).startsWith(`capture ${k0}: `)), `the loss names ${k0}: ${text}`);
    assert.ok(errors.some((e) => e.fields.restart_attempt !== undefined && String(e.fields.error).includes(k0)), `a failed reopen names the device: ${text}`);
    assert.ok(report.counters[0].received >= 3, `captured ${report.counters[0].received} after the interface came back`);
  });
});
