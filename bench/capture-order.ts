// Cross-device order of a capture (issue 14 review): the gateway namespace
// sends pairs of UDP datagrams, one out of its client-side veth then one out
// of its server-side veth --gap-ms later, while one capture holds both
// devices. Reports how many pairs came out with the later frame first, and
// how often a delivered timestamp went back. Not a test: the integration test
// (capture-source.test.ts) asserts the order at a 5 ms gap; this measures it
// at the reviewer's 1 ms. `node dist/bench/capture-order.js [--pairs 300] [--gap-ms 1]`.
//
// The same file is the capture side when started with --child (inside the
// gateway namespace).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { metaColumns } from '../src/batch/layout';
import { loadAddon, NATIVE_COUNTERS } from '../src/queue/native';
import { createTopology } from '../lab/netns/topology';
import { alternatePayload, sendAlternately } from '../lab/netns/alternate-sender';
import { benchArgs } from './args';

const PORT = 7444;

/** Capture side: prints "ready", then, once the stop file appears, each frame's payload length and timestamp (ns) in delivered order. */
function child(devices: string[], stopFile: string): void {
  const counters = new Float64Array(NATIVE_COUNTERS.length);
  const cap = new (loadAddon().Capture)({ devices, filter: `udp dst port ${PORT}`, snaplen: 256, bufferBytes: 4 << 20, batchSize: 256, promisc: false, counters });
  const m = metaColumns(cap.meta, cap.batchSize);
  const packets = new Uint8Array(cap.packets);
  const seen: [number, string][] = [];
  const flag = new Int32Array(1);
  process.stdout.write('ready\n');
  cap.run(
    (n) => {
      if (existsSync(stopFile)) Atomics.store(flag, 0, 1);
      for (let i = 0; i < n; i++) {
        const ip = m.offset[i];
        const len = ((packets[ip + 2] << 8) | packets[ip + 3]) - 28;
        seen.push([len, (BigInt(m.tsSec[i]) * 1_000_000_000n + BigInt(m.tsNsec[i])).toString()]);
      }
    },
    flag,
    50,
    () => undefined,
  );
  cap.close();
  process.stdout.write(JSON.stringify(seen) + '\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') return child(JSON.parse(args[1]) as string[], args[2]);
  const { pairs, 'gap-ms': gapMs } = benchArgs(args, { pairs: 300, 'gap-ms': 1 });
  const topo = await createTopology('capord');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-capord-'));
  const stopFile = path.join(dir, 'stop');
  try {
    const a = topo.addr;
    await topo.exec(topo.client, 'ping', ['-c', '1', '-W', '5', a.server4]);
    const cap = topo.spawn(topo.gateway, process.execPath, [__filename, '--child', JSON.stringify([topo.gwClientIf, topo.gwServerIf]), stopFile]);
    cap.stderr?.pipe(process.stderr);
    const lines = createInterface({ input: cap.stdout! })[Symbol.asyncIterator]();
    await lines.next();
    await sendAlternately(topo, topo.gateway, a.client4, a.server4, PORT, pairs, gapMs);
    await new Promise((res) => setTimeout(res, 300));
    writeFileSync(stopFile, '');
    const r = await lines.next();
    const seen = JSON.parse(r.value as string) as [number, string][];
    const place = new Map(seen.map(([len], k) => [len, k]));
    let inverted = 0;
    let missing = 0;
    for (let p = 0; p < pairs; p++) {
      const first = place.get(alternatePayload(2 * p + 1));
      const second = place.get(alternatePayload(2 * p + 2));
      if (first === undefined || second === undefined) missing++;
      else if (second < first) inverted++;
    }
    let tsBack = 0;
    for (let k = 1; k < seen.length; k++) if (BigInt(seen[k][1]) < BigInt(seen[k - 1][1])) tsBack++;
    const result = { command: `node dist/bench/capture-order.js --pairs ${pairs} --gap-ms ${gapMs}`, pairs, gapMs, frames: seen.length, invertedPairs: inverted, missingPairs: missing, timestampsGoingBack: tsBack };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
