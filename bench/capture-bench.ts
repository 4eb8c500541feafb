// Capture benchmark (issue 14's target, not a test): 64-byte UDP frames at
// about 100 kpps from client to server through the gateway namespace, one
// capture thread on the gateway's client-side veth running the whole
// pipeline (decode, rules/default.json, sessions, feature windows with the
// default model's flag part), at the capture's default settings. Reports
// what iperf3 sent, what reached the interface, what the capture saw and
// what it dropped. `make bench-capture`; writes bench/out/capture-bench.json.
// --idle-second-device adds the gateway's idle loopback to the same capture:
// two devices are merged in timestamp order, which must not cost batches or
// drops (writes capture-bench-2dev.json).
//
// The same file is the capture side when started with --child (inside the
// gateway namespace).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { EventLog } from '../src/log/event-log';
import { PACKAGE_ROOT } from '../src/config/paths';
import { loadModel } from '../src/detect/model';
import { shareFlagModel } from '../src/flow/flag-model';
import { readRuleFile } from '../src/rules/load';
import { QueueCounters, QueueSupervisor } from '../src/queue/supervisor';
import { createTopology, Topology } from '../lab/netns/topology';
import { resolveRunOptions } from '../src/app/run-options';
import { captureSourceFor } from '../src/app/run-config';
import { parseIperfUdp } from './iperf';
import { benchArgs } from './args';

const IPERF_PORT = 5201;
/** UDP payload making a 64-byte Ethernet frame: 14 + 20 + 8 + 22. */
const PAYLOAD = 22;

interface ChildConfig {
  devices: string[];
}

/** What `nfips watch --iface DEV` passes, from its own option defaults. */
function watchDefaults(devices: string[]) {
  const o = resolveRunOptions({ iface: devices }, 'watch');
  return { capture: captureSourceFor(o), flowsPerSecond: o.flowLog ? o.flowLogRate : null };
}

async function child(cfg: ChildConfig): Promise<void> {
  const errors: string[] = [];
  const log: EventLog = { event: (type, fields) => void (type.includes('error') || type.includes('warning') ? errors.push(`${type} ${JSON.stringify(fields)}`) : 0), reopen: () => undefined, close: async () => undefined };
  const model = loadModel(path.join(PACKAGE_ROOT, 'models', 'default.json'));
  let steps = 0;
  const sup = await QueueSupervisor.start({
    capture: watchDefaults(cfg.devices).capture,
    engine: { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 10, flowCapacity: 1 << 16, malformed: 'policy', rulesMode: 'log', flowsPerSecond: watchDefaults(cfg.devices).flowsPerSecond },
    features: { windowSeconds: model.windowSeconds, stepSeconds: model.stepSeconds, maxSourcesPerStep: 256, flags: shareFlagModel(model.flags) },
    rules: readRuleFile(path.join(PACKAGE_ROOT, 'rules', 'default.json')),
    log,
    onStep: () => steps++,
  });
  const snap = (): QueueCounters => sup.snapshot()[0];
  process.stdout.write(JSON.stringify({ ready: true, counters: snap() }) + '\n');
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === 'snapshot') process.stdout.write(JSON.stringify({ counters: snap(), steps, errors }) + '\n');
    if (line.trim() === 'stop') break;
  }
  await sup.stop();
  process.exit(0);
}

interface Snapshot {
  counters: QueueCounters;
  steps?: number;
  errors?: string[];
}

async function rxPackets(t: Topology, ns: string, dev: string): Promise<number> {
  const r = await t.exec(ns, 'ip', ['-j', '-s', 'link', 'show', 'dev', dev]);
  const [l] = JSON.parse(r.stdout) as { stats64: { rx: { packets: number } } }[];
  return l.stats64.rx.packets;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') return child(JSON.parse(args[1]) as ChildConfig);
  const { pps, seconds, 'idle-second-device': twoDevices } = benchArgs(args, { pps: 100_000, seconds: 10 }, ['idle-second-device']);
  const topo = await createTopology('capbn');
  try {
    const a = topo.addr;
    const devices = twoDevices ? [topo.gwClientIf, 'lo'] : [topo.gwClientIf];
    const cap = topo.spawn(topo.gateway, process.execPath, [__filename, '--child', JSON.stringify({ devices } satisfies ChildConfig)]);
    cap.stderr?.pipe(process.stderr);
    const lines = createInterface({ input: cap.stdout! })[Symbol.asyncIterator]();
    const next = async (): Promise<Snapshot> => {
      const r = await lines.next();
      if (r.done) throw new Error('capture side exited');
      return JSON.parse(r.value as string) as Snapshot;
    };
    const before = await next();
    const srv = topo.spawn(topo.server, 'iperf3', ['-s', '-1', '-B', a.server4, '-p', String(IPERF_PORT)]);
    await new Promise((res) => setTimeout(res, 500));
    const rx0 = await rxPackets(topo, topo.gateway, topo.gwClientIf);
    const bitrate = Math.round(pps * PAYLOAD * 8);
    const r = await topo.exec(topo.client, 'iperf3', ['-c', a.server4, '-p', String(IPERF_PORT), '-u', '-l', String(PAYLOAD), '-b', String(bitrate), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
    const udp = parseIperfUdp(r.stdout);
    // The capture thread gets the last blocks within the pcap timeout.
    await new Promise((res) => setTimeout(res, 500));
    const rx1 = await rxPackets(topo, topo.gateway, topo.gwClientIf);
    cap.stdin?.write('snapshot\n');
    const after = await next();
    cap.stdin?.write('stop\n');
    srv.kill();
    const c = after.counters;
    const b = before.counters;
    const seen = c.received - b.received;
    const result = {
      command: `node dist/bench/capture-bench.js --pps ${pps} --seconds ${seconds}${twoDevices ? ' --idle-second-device' : ''}`,
      settings: { ...watchDefaults(devices).capture, flowsPerSecond: watchDefaults(devices).flowsPerSecond, rules: 'rules/default.json', rulesMode: 'log', features: 'model default.json windows' },
      iperf3: { sentPackets: udp.sentPackets, sentPps: Math.round(udp.sentPps), receiverPackets: udp.receiverPackets, lostPackets: udp.lostPackets },
      interfaceRxPackets: rx1 - rx0,
      capture: {
        received: seen,
        receivedOfSent: Number((seen / udp.sentPackets).toFixed(4)),
        captureDrops: c.captureDrops - b.captureDrops,
        captureIfDrops: c.captureIfDrops - b.captureIfDrops,
        captureSkipped: c.captureSkipped - b.captureSkipped,
        batches: c.batches - b.batches,
        avgBatch: Number((seen / Math.max(1, c.batches - b.batches)).toFixed(1)),
        maxBatch: c.maxBatch,
        jsErrors: c.jsErrors,
        featureSteps: after.steps,
      },
      errors: after.errors,
    };
    const out = path.join(PACKAGE_ROOT, 'bench', 'out');
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, twoDevices ? 'capture-bench-2dev.json' : 'capture-bench.json'), JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    await topo.destroy();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
