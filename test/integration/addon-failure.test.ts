// The addon's promise, on the queue thread's own loop (run() through
// src/queue/loop.ts): no packet is left without a verdict, even when the
// JavaScript side throws or forgets to answer, or when the receive buffer
// cuts a packet's message short; and a failure verdict keeps the mark bits
// that are not nfips' own.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { install } from '../../src/iptables/apply';
import { buildPlan } from '../../src/iptables/plan';
import { createTopology, Topology } from '../../lab/netns/topology';
import { requireIntegration } from '../helpers/env';

const HARNESS = path.join(__dirname, '..', 'helpers', 'addon-harness.js');
/** The operator's own mark bit, set before the queue; nfips' repeat bit is 0x1. */
const OPERATOR_BIT = '0x100';

type Counters = Record<string, number>;

const START_MS = 10_000;
const STOP_GRACE_MS = 5_000;

/** Resolves with what `wait` resolves with, or fails after `ms` saying what did not happen. */
async function within<T>(ms: number, what: string, wait: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([wait(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Pings in a burst: this many at once, each BURST_COUNT echoes BURST_INTERVAL s apart. */
const BURST_PINGS = 8;
const BURST_COUNT = 100;
const BURST_INTERVAL = '0.002';

/** What a ping reported: its exit code, echoes sent and replies received. */
interface PingResult {
  code: number;
  sent: number;
  answered: number;
}

async function pingOnce(topo: Topology, args: string[]): Promise<PingResult> {
  const r = await topo.exec(topo.client, 'ping', [...args, topo.addr.server4], { allowFail: true });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { code: r.code, sent: m ? Number(m[1]) : NaN, answered: m ? Number(m[2]) : NaN };
}

/**
 * Runs the harness for `seconds` while the client pings (with `burst`,
 * BURST_PINGS pings at once, fast); the harness's counters, the pings'
 * worst exit code and totals, and the mark counters after the verdicts.
 */
async function harnessRun(topo: Topology, mode: string, seconds: number, recvBytes?: number, pingArgs: string[] = [], burst = false): Promise<{ c: Counters; ping: number; sent: number; answered: number; kept: number; lost: number }> {
  await topo.exec(topo.gateway, 'iptables', ['-w', '-t', 'mangle', '-Z', 'POSTROUTING']);
  const h = topo.spawn(topo.gateway, process.execPath, [HARNESS, mode, '0', String(seconds), ...(recvBytes === undefined ? [] : [String(recvBytes)])]);
  let out = '';
  h.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  h.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((r) => h.once('exit', () => r()));
  try {
    await within(START_MS, 'the harness to bind its queue', async () => {
      while (!out.includes('ready')) {
        if (h.exitCode !== null) throw new Error(`harness exited: ${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  } catch (e) {
    h.kill('SIGKILL');
    throw e;
  }
  const pings = burst
    ? await Promise.all(Array.from({ length: BURST_PINGS }, () => pingOnce(topo, ['-q', '-c', String(BURST_COUNT), '-i', BURST_INTERVAL, '-W', '1', ...pingArgs])))
    : [await pingOnce(topo, ['-c', '5', '-i', '0.2', '-W', '1', ...pingArgs])];
  // The loop ends within its receive timeout of the deadline; close() drains what is left.
  await within(seconds * 1000 + STOP_GRACE_MS, `the harness to stop (${out})`, () => exited).catch((e: unknown) => {
    h.kill('SIGKILL');
    throw e;
  });
  const c = JSON.parse(out.trim().split('\n').pop()!) as Counters;
  const r = await topo.exec(topo.gateway, 'iptables', ['-w', '-t', 'mangle', '-L', 'POSTROUTING', '-v', '-n', '-x']);
  const count = (tag: string) => Number(r.stdout.split('\n').find((l) => l.includes(tag))?.trim().split(/\s+/)[0] ?? NaN);
  const sum = (k: 'sent' | 'answered') => pings.reduce((a, p) => a + p[k], 0);
  return { c, ping: Math.max(...pings.map((p) => p.code)), sent: sum('sent'), answered: sum('answered'), kept: count('kept-operator-bit'), lost: count('lost-operator-bit') };
}

test('addon failure verdicts', { timeout: 180_000 }, async (t: TestContext) => {
  await requireIntegration('ping');
  const topo = await createTopology('nfaf');
  try {
    const plan = buildPlan({ queues: { first: 0, last: 0 }, hook: 'forward', mark: { value: 1, mask: 1 }, failClosed: false, exclude: [], families: ['ipv4'] });
    await install(plan, { iptables: 'iptables', ip6tables: 'ip6tables', netns: topo.gateway });
    // The operator marks every packet with a bit of their own before nfips sees it;
    // after the verdicts, count which packets still carry it.
    const mangle = (args: string[]) => topo.exec(topo.gateway, 'iptables', ['-w', '-t', 'mangle', ...args]);
    await mangle(['-A', 'PREROUTING', '-j', 'MARK', '--set-xmark', `${OPERATOR_BIT}/${OPERATOR_BIT}`]);
    await mangle(['-A', 'POSTROUTING', '-m', 'mark', '--mark', `${OPERATOR_BIT}/${OPERATOR_BIT}`, '-m', 'comment', '--comment', 'kept-operator-bit']);
    await mangle(['-A', 'POSTROUTING', '-m', 'mark', '--mark', `0x0/${OPERATOR_BIT}`, '-m', 'comment', '--comment', 'lost-operator-bit']);

    for (const mode of ['throw', 'unset'] as const) {
      await t.test(`handler that ${mode === 'throw' ? 'throws' : 'leaves verdicts unset'}: every packet gets the failure verdict, marks kept`, async () => {
        // Failure verdict is NF_REPEAT + mark (fail-open), so traffic still flows.
        const { c, ping, kept, lost } = await harnessRun(topo, mode, 3);
        assert.equal(ping, 0, 'ping passes on failure verdicts');
        assert.ok(c.received >= 10, `received ${c.received}`);
        assert.equal(c.failVerdicts, c.received, 'every packet got the failure verdict');
        assert.equal(c.verdictRepeat + c.verdictDrop + c.verdictAccept, 0);
        if (mode === 'throw') {
          assert.equal(c.jsErrors, c.batches, 'each throwing batch counted');
          assert.equal(c.onErrorCalls, c.batches, 'and reported to onError');
        } else {
          assert.equal(c.jsErrors, 0);
        }
        assert.equal(lost, 0, 'no failure verdict cleared the operator bit');
        assert.ok(kept >= c.received, `every forwarded packet kept it (${kept} of ${c.received})`);
      });
    }

    await t.test('a well-behaved handler: verdicts sent, none failed', async () => {
      const { c, lost } = await harnessRun(topo, 'repeat', 2);
      assert.equal(c.verdictRepeat, c.received);
      assert.equal(c.failVerdicts, 0);
      assert.equal(c.truncatedMsgs, 0);
      assert.equal(lost, 0);
    });

    await t.test('a batch held open: packets queued while its first part was decided join it as later parts, each answered once', async () => {
      const { c, ping, sent, answered, lost } = await harnessRun(topo, 'slow', 4, undefined, [], true);
      const verdicts = c.verdictRepeat + c.verdictAccept + c.verdictDrop + c.failVerdicts;
      assert.equal(ping, 0, 'every ping answered');
      assert.equal(answered, sent, `replies ${answered} of ${sent}`);
      assert.ok(c.stage_extra > 0, `later parts were received into open batches (${JSON.stringify(c)})`);
      assert.ok(c.received > c.batches, `more packets than batches (${c.received} in ${c.batches})`);
      assert.equal(verdicts, c.received, 'one verdict each');
      assert.equal(c.failVerdicts, 0);
      assert.equal(c.verdictRepeat, c.received, 'every packet got the rules\' verdict');
      assert.equal(c.afterPackets, c.received, 'afterVerdicts saw every packet once');
      assert.equal(c.events, c.received, 'one logged event per packet');
      assert.equal(lost, 0);
    });

    await t.test('a later part that throws: its packets alone get the failure verdict, the earlier parts their side work, and none of its events', async () => {
      const { c, ping, sent, answered, lost } = await harnessRun(topo, 'throw2', 4, undefined, [], true);
      const verdicts = c.verdictRepeat + c.verdictAccept + c.verdictDrop + c.failVerdicts;
      assert.equal(ping, 0, 'fail-open: every ping answered');
      assert.equal(answered, sent, `replies ${answered} of ${sent}`);
      assert.ok(c.failedParts > 0, `later parts were decided and failed (${JSON.stringify(c)})`);
      assert.equal(verdicts, c.received, 'one verdict each');
      assert.equal(c.failVerdicts, c.failedPackets, 'the failure verdict went to the failed parts\' packets only');
      assert.equal(c.jsErrors, c.failedParts);
      assert.equal(c.onErrorCalls, c.failedParts);
      assert.equal(c.afterForEarlierParts, c.failedParts, 'after each failure, afterVerdicts ran for the parts before it');
      assert.equal(c.afterPackets, c.received - c.failVerdicts, 'every packet with a real verdict got its side work once');
      assert.equal(c.events, c.verdictRepeat, 'events of real verdicts only, none of a failed part');
      assert.equal(lost, 0, 'no failure verdict cleared the operator bit');
    });

    await t.test('messages cut in the payload by the receive buffer reach the handler, shorter, and get its verdict', async () => {
      // 1000-byte pings: the 256 copied bytes plus the attributes are far more than 200.
      const { c, ping, kept, lost } = await harnessRun(topo, 'repeat', 3, 200, ['-s', '1000']);
      assert.equal(ping, 0);
      assert.ok(c.received >= 10, `received ${c.received}`);
      assert.equal(c.truncatedMsgs, c.received, 'every message was cut');
      assert.equal(c.jsPackets, c.received, 'and still handed to JavaScript');
      assert.equal(c.verdictRepeat, c.received);
      assert.equal(c.failVerdicts, 0);
      assert.ok(c.maxCapLen < 200 && c.minCapLen > 20, `with what arrived of the payload (${c.minCapLen}-${c.maxCapLen} bytes)`);
      assert.equal(lost, 0);
      assert.ok(kept >= c.received);
    });

    await t.test('messages cut before the mark: the failure verdict, which then leaves the mark alone', async () => {
      // 36 bytes hold the netlink header and the packet id, not the attributes after it.
      const { c, ping, kept, lost } = await harnessRun(topo, 'repeat', 3, 36);
      assert.equal(ping, 0, 'fail-open: the packets pass');
      assert.ok(c.received >= 10, `received ${c.received}`);
      assert.equal(c.failVerdicts, c.received, 'every packet got a verdict');
      assert.equal(c.jsPackets, 0);
      assert.equal(c.parseErrors, 0);
      assert.equal(lost, 0, 'the unknown mark was not overwritten');
      assert.ok(kept >= c.received);
    });

    await t.test('a cut anywhere: exactly one verdict per packet, no mark lost', async () => {
      for (const bytes of [40, 48, 56, 64, 80, 96, 128]) {
        const { c, ping, lost } = await harnessRun(topo, 'repeat', 2, bytes);
        const verdicts = c.verdictRepeat + c.verdictAccept + c.verdictDrop + c.failVerdicts;
        assert.equal(ping, 0, `${bytes} bytes: ping passes`);
        assert.ok(c.received >= 10, `${bytes} bytes: received ${c.received}`);
        assert.equal(verdicts, c.received, `${bytes} bytes: one verdict each (${JSON.stringify(c)})`);
        assert.equal(lost, 0, `${bytes} bytes: marks kept`);
      }
    });
  } finally {
    await topo.destroy();
  }
});
