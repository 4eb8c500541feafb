// The compiled rule set the main thread hands to queue threads: one block of
// shared memory (posting it copies no rule), interfaces resolved once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { buildPacket } from '../../src/packet/build';
import { TCP_SYN } from '../../src/packet/decoded';
import { Field, metaColumns, NF_DROP, NF_REPEAT } from '../../src/batch/layout';
import { parseRuleText } from '../../src/rules/load';
import { intoSharedMemory } from '../../src/rules/shared-arrays';
import { ENGINE_COUNTERS, ruleCounterBytes, VerdictEngine } from '../../src/verdict/engine';
import { compileRuleSet, RuleSnapshot } from '../../src/verdict/rule-snapshot';

const rules = (doc: unknown) => parseRuleText(JSON.stringify(doc), 't.json');

function typedArrays(x: unknown, out: ArrayBufferView[] = []): ArrayBufferView[] {
  if (ArrayBuffer.isView(x)) out.push(x);
  else if (x !== null && typeof x === 'object') for (const v of Object.values(x)) typedArrays(v, out);
  return out;
}

/** What an engine on this snapshot decides for each packet (inIfindex 3). */
function verdicts(snapshot: RuleSnapshot, packets: Buffer[], inIfindex = 3): number[] {
  const B = packets.length;
  const meta = metaColumns(new ArrayBuffer(Field.Count * B * 4), B);
  const engine = new VerdictEngine(B, meta, snapshot, 0, new ArrayBuffer(ruleCounterBytes(snapshot.ruleCount)), { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 10, flowCapacity: 64 }, new Float64Array(ENGINE_COUNTERS.length));
  const buf = new Uint8Array(B * 256);
  packets.forEach((p, i) => {
    buf.set(p, i * 256);
    meta.offset[i] = i * 256;
    meta.capLen[i] = p.length;
    meta.origLen[i] = p.length;
    meta.inIfindex[i] = inIfindex;
    meta.hook[i] = 2;
  });
  engine.process(B, buf);
  return Array.from(meta.verdict.subarray(0, B));
}

const telnet = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40000, dport: 23, tcpFlags: TCP_SYN });
const web = buildPacket({ src: '10.0.0.5', dst: '192.0.2.7', proto: 6, sport: 40001, dport: 80, tcpFlags: TCP_SYN });
const fromNet = buildPacket({ src: '198.51.100.9', dst: '192.0.2.7', proto: 17, sport: 5000, dport: 53 });

describe('compileRuleSet', () => {
  const doc = { default: 'accept', rules: [{ action: 'drop', protocol: 'tcp', dport: 23 }, { action: 'drop', source: '198.51.100.0/24' }, { action: 'reject', in: 'lan0', protocol: 'tcp', dport: 80 }] };

  it('puts every array in one SharedArrayBuffer, and a posted copy reads the same memory', () => {
    const snap = compileRuleSet(rules(doc), { ifindex: (n) => (n === 'lan0' ? 3 : undefined) });
    const arrays = typedArrays(snap);
    assert.ok(arrays.length > 20, `${arrays.length} arrays`);
    const buffers = new Set(arrays.map((a) => a.buffer));
    assert.equal(buffers.size, 1);
    assert.ok([...buffers][0] instanceof SharedArrayBuffer);

    const { port1, port2 } = new MessageChannel();
    port1.postMessage(snap);
    const posted = receiveMessageOnPort(port2)?.message as RuleSnapshot;
    port1.close();
    assert.deepEqual(verdicts(posted, [telnet, web, fromNet]), verdicts(snap, [telnet, web, fromNet]));
    assert.deepEqual(verdicts(posted, [telnet, web, fromNet]), [NF_DROP, NF_REPEAT, NF_DROP]);
    // Not a copy: a change to the sender's memory shows in the receiver's (rule 0 turned into an accept).
    snap.actions[0] = 0;
    assert.equal(verdicts(posted, [telnet])[0], NF_REPEAT);
  });

  it('resolves each interface name once; a missing interface never matches, even a packet with no interface', () => {
    const asked: string[] = [];
    const rs = rules({ default: 'accept', rules: [{ action: 'drop', in: 'lan0' }, { action: 'drop', in: 'lan0', protocol: 'udp' }, { action: 'drop', in: 'wan9' }] });
    const snap = compileRuleSet(rs, {
      ifindex: (n) => {
        asked.push(n);
        return n === 'lan0' ? 3 : undefined;
      },
    });
    assert.deepEqual(asked.sort(), ['lan0', 'wan9']);
    assert.deepEqual(snap.unresolvedInterfaces, ['wan9'], 'what the warnings name');
    assert.deepEqual(verdicts(snap, [web], 3), [NF_DROP], 'lan0 is ifindex 3');
    assert.deepEqual(verdicts(snap, [web], 0), [NF_REPEAT], 'wan9 does not exist: its rule matches nothing');
    assert.deepEqual(verdicts(snap, [web], 7), [NF_REPEAT]);
  });

  it('reports how long it took', () => {
    const snap = compileRuleSet(rules(doc), { ifindex: () => undefined });
    assert.equal(typeof snap.compileMs, 'number');
    assert.ok(Number.isFinite(snap.compileMs) && snap.compileMs >= 0);
  });
});

describe('intoSharedMemory', () => {
  it('keeps values and shape, shares an array met twice once, and refuses what it cannot share', () => {
    const a = Int32Array.of(1, -2, 3);
    const out = intoSharedMemory({ a, b: [a, Float64Array.of(0.5)], n: 4, s: 'x', z: null });
    assert.deepEqual(Array.from(out.a), [1, -2, 3]);
    assert.equal(out.b[0], out.a);
    assert.ok(out.a.buffer instanceof SharedArrayBuffer);
    assert.equal(out.b[1].buffer, out.a.buffer);
    assert.equal(out.b[1][0], 0.5);
    assert.equal(out.b[1].byteOffset % 8, 0, 'Float64 views stay aligned');
    assert.deepEqual([out.n, out.s, out.z], [4, 'x', null]);
    assert.notEqual(out.a, a, 'a copy, not the original');
    assert.throws(() => intoSharedMemory({ m: new Map() }), /cannot share/);
  });
});
