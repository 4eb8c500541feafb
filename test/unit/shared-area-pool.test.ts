// Rule snapshots compiled into a couple of reused shared-memory areas: a
// steady stream of reloads must not allocate a new area each time, and an
// area a reader may still read must never be rewritten.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { MessageChannel, Worker } from 'node:worker_threads';
import { NF_DROP, NF_REPEAT } from '../../src/batch/layout';
import { buildPacket } from '../../src/packet/build';
import { TCP_SYN } from '../../src/packet/decoded';
import { parseRuleText } from '../../src/rules/load';
import { SharedAreaPool } from '../../src/rules/shared-area-pool';
import { compileRuleSet } from '../../src/verdict/rule-snapshot';
import { FromSwapThread, SwapThreadInit, ToSwapThread } from '../helpers/swap-thread';

/** n port rules, then a default: the test packet to port 23 meets the default. */
const ruleSet = (n: number, dflt: 'accept' | 'drop') =>
  parseRuleText(JSON.stringify({ default: dflt, rules: Array.from({ length: n }, (_, k) => ({ action: 'drop', protocol: 'tcp', dport: 10000 + k })) }), 't.json');

describe('SharedAreaPool', () => {
  it('never hands out an area a reader may still read; a stuck reader costs fresh areas, and the pool stays small', () => {
    const pool = new SharedAreaPool(2);
    const areaOf = new Map<number, SharedArrayBuffer>();
    let stuckAt = -1;
    for (let v = 0; v < 40; v++) {
      // One reader acknowledges each version at once, except between 10 and 20 where it stays on 10.
      const acked = v >= 11 && v <= 20 ? 10 : v - 1;
      if (v === 11) stuckAt = pool.allocations;
      const oldestRead = Math.min(v - 1, acked);
      const sab = pool.take(1000, v, oldestRead);
      for (const [w, held] of areaOf) if (w >= oldestRead) assert.notEqual(sab, held, `version ${v} given the area of ${w}, still read`);
      areaOf.set(v, sab);
      assert.ok(pool.size <= 2, `${pool.size} areas held`);
    }
    assert.ok(pool.allocations - stuckAt >= 9, 'areas allocated while the reader was stuck');
    const settled = pool.allocations;
    pool.take(1000, 40, 39);
    pool.take(1000, 41, 40);
    assert.equal(pool.allocations, settled, 'none once it keeps up again');
  });

  it('replaces a free area that is too small with a larger one, with room to grow', () => {
    const pool = new SharedAreaPool(2);
    pool.take(1000, 0, -1);
    pool.take(1000, 1, 0);
    const big = pool.take(2000, 2, 1);
    assert.ok(big.byteLength > 2000);
    assert.equal(pool.allocations, 3);
    assert.equal(pool.size, 2);
    const small = pool.take(1000, 3, 2);
    assert.notEqual(small, big, 'the area of version 2 is still read');
    assert.equal(pool.allocations, 3, 'the area of version 1 is free and large enough');
  });

  it('a thread built like a queue thread takes 120 reloads of freshly compiled sets from two areas', async () => {
    const pool = new SharedAreaPool();
    const sets = [ruleSet(3000, 'accept'), ruleSet(3000, 'drop'), ruleSet(2990, 'accept')];
    // version v runs sets[v % 3]: what the port-23 SYN gets, and a port-10005 SYN always dropped.
    const want = (v: number) => [v % 3 === 1 ? NF_DROP : NF_REPEAT, NF_DROP];
    const pkts = [23, 10005].map((dport) => buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40000, dport, tcpFlags: TCP_SYN }));
    const packets = new Uint8Array(pkts.length * 256);
    pkts.forEach((p, i) => packets.set(p, i * 256));
    let acked = -1;
    const compile = (v: number) => compileRuleSet(sets[v % 3], { ifindex: () => undefined, area: (bytes) => pool.take(bytes, v, Math.min(v - 1, acked)) });

    const { port1, port2 } = new MessageChannel();
    const init: SwapThreadInit = { control: port2, rules: compile(0), packets, lengths: pkts.map((p) => p.length) };
    const worker = new Worker(path.join(__dirname, '../helpers/swap-thread.js'), { workerData: init, transferList: [port2] });
    const replies: FromSwapThread[] = [];
    let wake: (() => void) | null = null;
    worker.on('message', (m: FromSwapThread) => {
      replies.push(m);
      wake?.();
    });
    const next = async () => {
      while (replies.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return replies.shift() as FromSwapThread;
    };
    try {
      assert.equal((await next()).type, 'ready');
      acked = 0;
      const areas = new Set<ArrayBufferLike>();
      for (let v = 1; v <= 120; v++) {
        const snap = compile(v);
        areas.add(snap.actions.buffer);
        port1.postMessage({ type: 'rules', rules: snap, version: v } satisfies ToSwapThread);
        const m = await next();
        assert.equal(m.type, 'applied');
        if (m.type !== 'applied') return;
        assert.equal(m.version, v);
        assert.deepEqual(m.before, want(v - 1), `version ${v - 1} read intact up to the swap`);
        assert.deepEqual(m.after, want(v), `version ${v} in force after the swap`);
        acked = v;
      }
      assert.ok(pool.allocations <= 2, `${pool.allocations} areas allocated for 121 rule sets`);
      assert.ok(areas.size <= 2, `${areas.size} distinct areas`);
    } finally {
      port1.postMessage({ type: 'stop' } satisfies ToSwapThread);
      port1.close();
      await worker.terminate();
    }
  });
});
