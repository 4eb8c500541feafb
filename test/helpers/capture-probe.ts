// Runs the addon's Capture class in the process's network namespace (the
// test starts it with `ip netns exec`), decodes every batch and prints what
// it saw once a stop file appears. Argument: a JSON ProbeConfig.
// Output: "ready" once the devices are open, "seen" lines (ProbeProgress)
// while recording, then one JSON ProbeReport line.
import { existsSync } from 'node:fs';
import { metaColumns } from '../../src/batch/layout';
import { decodeBatch } from '../../src/packet/decode';
import { createDecodedBatch } from '../../src/packet/decoded';
import { loadAddon, NATIVE_COUNTERS } from '../../src/queue/native';

export interface ProbeConfig {
  devices: string[];
  filter: string;
  /** The filter for non-Ethernet devices (the supervisor's split), when it differs. */
  filterNonEthernet?: string;
  snaplen: number;
  bufferBytes: number;
  batchSize: number;
  /** Busy time per non-empty batch in decide, to make the capture slow. */
  slowMs: number;
  /** Keep one record per packet (off for floods). */
  record: boolean;
  stopFile: string;
  direction?: 'both' | 'in';
}

/** What a recording probe has seen so far: packets per destination port. */
export interface ProbeProgress {
  records: number;
  dports: Record<number, number>;
}

/** One packet as decoded: addresses as text, lengths and the columns under test. */
export interface ProbeRecord {
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  ipLen: number;
  origLen: number;
  capLen: number;
  hwProto: number;
  inIfindex: number;
  outIfindex: number;
  /** Source MAC as hex, or '' when the column says none. */
  mac: string;
  tsSec: number;
  tsNsec: number;
}

export interface ProbeReport {
  counters: Record<string, number>;
  warnings: string[];
  records: ProbeRecord[];
}

function addr(words: Uint32Array, i: number, family: number): string {
  if (family === 4) {
    const w = words[i * 4];
    return [w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255].join('.');
  }
  const parts: string[] = [];
  for (let k = 0; k < 4; k++) {
    const w = words[i * 4 + k];
    parts.push((w >>> 16).toString(16), (w & 0xffff).toString(16));
  }
  return parts.join(':');
}

function main(): void {
  const cfg = JSON.parse(process.argv[2]) as ProbeConfig;
  const counters = new Float64Array(NATIVE_COUNTERS.length);
  let cap;
  try {
    cap = new (loadAddon().Capture)({ devices: cfg.devices, filter: cfg.filter, filterNonEthernet: cfg.filterNonEthernet, snaplen: cfg.snaplen, bufferBytes: cfg.bufferBytes, batchSize: cfg.batchSize, promisc: false, direction: cfg.direction, counters });
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
    process.exit(2);
  }
  const m = metaColumns(cap.meta, cap.batchSize);
  const packets = new Uint8Array(cap.packets);
  const d = createDecodedBatch(cap.batchSize);
  const records: ProbeRecord[] = [];
  const flag = new Int32Array(1);
  const dports: Record<number, number> = {};
  let reported = 0;
  process.stdout.write('ready\n');
  cap.run(
    (n) => {
      if (existsSync(cfg.stopFile)) Atomics.store(flag, 0, 1);
      if (records.length !== reported) {
        reported = records.length;
        process.stdout.write(`seen ${JSON.stringify({ records: reported, dports } satisfies ProbeProgress)}\n`);
      }
      if (n === 0) return;
      if (cfg.slowMs > 0) {
        const until = performance.now() + cfg.slowMs;
        while (performance.now() < until);
      }
      if (!cfg.record) return;
      decodeBatch(packets, m.offset, m.capLen, n, d);
      for (let i = 0; i < n; i++) {
        const fam = d.family[i];
        const h = m.hwAddrOffset[i];
        records.push({
          proto: d.proto[i],
          src: addr(d.src, i, fam),
          dst: addr(d.dst, i, fam),
          sport: d.sport[i],
          dport: d.dport[i],
          ipLen: d.ipLen[i],
          origLen: m.origLen[i],
          capLen: m.capLen[i],
          hwProto: m.hwProto[i],
          inIfindex: m.inIfindex[i],
          outIfindex: m.outIfindex[i],
          mac: h === 0xffffffff ? '' : Buffer.from(packets.subarray(h, h + 6)).toString('hex'),
          tsSec: m.tsSec[i],
          tsNsec: m.tsNsec[i],
        });
        dports[d.dport[i]] = (dports[d.dport[i]] ?? 0) + 1;
      }
    },
    flag,
    50,
    () => undefined,
  );
  const warnings = cap.warnings();
  cap.close();
  const out: Record<string, number> = {};
  NATIVE_COUNTERS.forEach((k, i) => (out[k] = counters[i]));
  process.stdout.write(JSON.stringify({ counters: out, warnings, records } satisfies ProbeReport) + '\n');
}

main();
