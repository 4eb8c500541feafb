// Live capture on a real interface: `lo` of a throw-away network namespace,
// captured by a child process running inside it while another one sends UDP.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const DIST = path.join(PACKAGE_ROOT, 'dist', 'src');
const PORT = 47123;

interface Seen {
  family: number;
  dport: number;
  capLen: number;
  origLen: number;
  ipLen: number;
  hwProto: number;
  macFromIp: number;
  tsSec: number;
  tsNsec: number;
  status: number;
}

interface CaptureReport {
  linkType: number;
  stats: { packets: number; delivered: number; cutBySnaplen: number; batches: number; dropped: number | null };
  seen: Seen[];
}

// Captures on lo until told to stop on stdin, then prints what it saw.
const CAPTURER = `
const { LiveCapture } = require(${JSON.stringify(path.join(DIST, 'capture', 'live.js'))});
const { decodeBatch } = require(${JSON.stringify(path.join(DIST, 'packet', 'decode.js'))});
const { createDecodedBatch } = require(${JSON.stringify(path.join(DIST, 'packet', 'decoded.js'))});
const c = new LiveCapture('lo', { filter: 'udp port ${PORT}', snaplen: 128, batchSize: 8 });
const d = createDecodedBatch(8);
const seen = [];
c.onBatch((n, packets, m) => {
  decodeBatch(packets, m.offset, m.capLen, n, d);
  for (let i = 0; i < n; i++) {
    seen.push({ family: d.family[i], dport: d.dport[i], capLen: m.capLen[i], origLen: m.origLen[i], ipLen: d.ipLen[i],
      hwProto: m.hwProto[i], macFromIp: m.offset[i] - m.hwAddrOffset[i], tsSec: m.tsSec[i], tsNsec: m.tsNsec[i], status: d.status[i] });
  }
});
process.stdout.write('ready\\n');
process.stdin.once('data', () => {
  setTimeout(() => {
    c.stop();
    process.stdout.write(JSON.stringify({ linkType: c.linkType, stats: c.stats, seen }) + '\\n');
    process.exit(0);
  }, 300);
});
`;

const SENDER = `
const dgram = require('node:dgram');
(async () => {
  for (const [type, host] of [['udp4', '127.0.0.1'], ['udp6', '::1']]) {
    const s = dgram.createSocket(type);
    for (let i = 0; i < 10; i++) {
      await new Promise((res, rej) => s.send(Buffer.alloc(i === 9 ? 1000 : 20 + i), ${PORT}, host, (e) => (e ? rej(e) : res())));
    }
    s.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
`;

/** Fails (never skips) when the cap package did not build: it needs libpcap's headers when npm ci compiles it. */
function requireCap(): void {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('cap');
  } catch (err) {
    throw new Error(`the cap package does not load (${(err as Error).message}): apt-get install libpcap-dev, then npm ci (or make deps build)`);
  }
}

test('live capture on lo in a network namespace', { timeout: 60_000 }, async () => {
  await requireIntegration();
  requireCap();
  const ns = `nfips-cap-test-${process.pid}`;
  await execFileP('ip', ['netns', 'add', ns]);
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', CAPTURER], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    await execFileP('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (out.includes('ready\n')) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
      void exited.then((code) => {
        clearInterval(poll);
        reject(new Error(`capturer exited (${code}) before it was ready: ${err}`));
      });
    });
    const before = Date.now() / 1000;
    await execFileP('ip', ['netns', 'exec', ns, process.execPath, '-e', SENDER]);
    child.stdin.write('stop\n');
    assert.equal(await exited, 0, err);
    const report = JSON.parse(out.split('\n')[1]) as CaptureReport;
    const after = Date.now() / 1000;

    assert.equal(report.linkType, 1, 'lo captures as Ethernet');
    assert.equal(report.stats.dropped, null);
    assert.equal(report.seen.length, 20, JSON.stringify(report.stats));
    assert.equal(report.stats.delivered, 20);
    assert.equal(report.stats.cutBySnaplen, 2);
    assert.deepEqual(report.seen.map((s) => s.family), [...Array(10).fill(4), ...Array(10).fill(6)]);
    for (const [i, s] of report.seen.entries()) {
      assert.equal(s.dport, PORT);
      assert.equal(s.status, 0);
      assert.equal(s.hwProto, s.family === 4 ? 0x0800 : 0x86dd);
      assert.equal(s.macFromIp, 8, 'source MAC sits 8 bytes before the IP header');
      const ts = s.tsSec + s.tsNsec / 1e9;
      assert.ok(ts >= before - 0.5 && ts <= after + 0.5, `timestamp ${ts} outside [${before}, ${after}]`);
      const hdr = (s.family === 4 ? 20 : 40) + 8;
      const payload = i % 10 === 9 ? 1000 : 20 + (i % 10);
      assert.equal(s.origLen, hdr + payload);
      assert.equal(s.ipLen, hdr + payload);
      assert.equal(s.capLen, Math.min(hdr + payload, 128 - 14));
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await execFileP('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
});

test('live capture errors name the cause', async (t: TestContext) => {
  // Root, to also try an unprivileged capture.
  await requireIntegration();
  requireCap();
  const { LiveCapture } = await import('../../src/capture/live');
  assert.throws(() => new LiveCapture('nfips-nope0'), /cannot capture on "nfips-nope0": no such interface \(available: .*\blo\b/);

  const script = `
    const { LiveCapture } = require(${JSON.stringify(path.join(DIST, 'capture', 'live.js'))});
    try { new LiveCapture('lo').stop(); console.log('opened'); } catch (e) { console.log(e.message); }
  `;
  const r = await execFileP(process.execPath, ['-e', script], { uid: 65534, gid: 65534, cwd: '/' }).catch((e: Error) => e);
  if (r instanceof Error) {
    t.diagnostic(`unprivileged run not possible here: ${r.message}`);
    return;
  }
  assert.match(r.stdout, /capturing on "lo" needs root or CAP_NET_RAW/);
});
