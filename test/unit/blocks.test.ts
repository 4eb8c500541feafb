import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Allowlist } from '../../src/blocks/allowlist';
import { covers, makeTarget, targetKey } from '../../src/blocks/block';
import { entryOf, parseSave, remainingSeconds, restoreScript } from '../../src/blocks/ipset';
import { evidenceTargets } from '../../src/blocks/scope';
import type { Exceeded } from '../../src/detect/source-tracker';
import { PROTO_BIT_ICMP, PROTO_BIT_TCP, PROTO_BIT_UDP, TARGET_MANY, TARGET_NONE } from '../../src/features/source-table';
import { readBlockState, StateFileError, writeBlockState } from '../../src/blocks/state-file';
import { BlockTable } from '../../src/blocks/table';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const policy = { ttlSeconds: 600, maxTtlSeconds: 3600, maxBlocks: 3 };

describe('block targets', () => {
  it('canonicalise and reject what does not make sense', () => {
    assert.equal(makeTarget('10.0.0.6/32').net, '10.0.0.6');
    assert.equal(makeTarget('10.0.0.77/24').net, '10.0.0.0/24');
    assert.equal(makeTarget('2001:DB8:0:0::1').net, '2001:db8::1');
    assert.equal(targetKey(makeTarget('10.0.0.6', 'service', 'tcp', 8080)), '10.0.0.6 tcp:8080');
    assert.equal(targetKey(makeTarget('10.0.0.6', 'protocol', 'icmp')), '10.0.0.6 icmp');
    assert.throws(() => makeTarget('10.0.0'), /not an IPv4 or IPv6 address/);
    assert.throws(() => makeTarget('10.0.0.6', 'service', 'icmp', 1), /needs a protocol: one of tcp, udp/);
    assert.throws(() => makeTarget('10.0.0.6', 'service', 'tcp'), /destination port from 1 to 65535/);
    assert.throws(() => makeTarget('10.0.0.6', 'protocol', 'tcp', 80), /takes no port/);
    assert.throws(() => makeTarget('10.0.0.6', 'source', 'tcp'), /takes no protocol/);
  });

  it('a wider block covers a narrower one, never the other way', () => {
    const src = makeTarget('10.0.0.0/24');
    const tcp = makeTarget('10.0.0.6', 'protocol', 'tcp');
    const svc = makeTarget('10.0.0.6', 'service', 'tcp', 22);
    assert.ok(covers(src, tcp) && covers(src, svc) && covers(tcp, svc));
    assert.ok(!covers(tcp, src) && !covers(svc, tcp));
    assert.ok(!covers(makeTarget('10.0.0.6', 'protocol', 'udp'), svc));
    assert.ok(!covers(makeTarget('10.0.0.6', 'service', 'tcp', 23), svc));
    assert.ok(!covers(makeTarget('10.0.1.0/24'), tcp));
  });
});

const ex = (measure: Exceeded['measure'], service?: string): Exceeded => ({ measure, scale: 'second', value: 100, threshold: { value: 10, learnt: 1, margin: 3, floor: 10 }, ...(service ? { service } : {}) });
const svc = (proto: number, port: number) => (proto << 16) | port;

describe('evidence block scope', () => {
  const keys = (f: Parameters<typeof evidenceTargets>[0]) => evidenceTargets(f).map(targetKey);
  const base = { ip: '10.0.0.6', evProtos: 0, evTcp: TARGET_NONE, evUdp: TARGET_NONE };
  it('one service when all the evidence of its protocol went to one port, else the protocol', () => {
    assert.deepEqual(keys({ ...base, exceeded: [ex('tcp_failed')], evProtos: PROTO_BIT_TCP, evTcp: svc(6, 8080) }), ['10.0.0.6 tcp:8080'], 'SYN flood at one port');
    assert.deepEqual(keys({ ...base, exceeded: [ex('tcp_failed')], evProtos: PROTO_BIT_TCP, evTcp: TARGET_MANY }), ['10.0.0.6 tcp'], 'SYN scan');
    assert.deepEqual(keys({ ...base, exceeded: [ex('udp_unanswered')], evUdp: svc(17, 9) }), ['10.0.0.6 udp:9']);
    assert.deepEqual(keys({ ...base, exceeded: [ex('service_sessions', 'tcp/22')] }), ['10.0.0.6 tcp:22'], 'brute force');
    assert.deepEqual(keys({ ...base, exceeded: [ex('echo_requests')] }), ['10.0.0.6 icmp']);
    assert.deepEqual(keys({ ...base, ip: 'fd00::6', exceeded: [ex('odd_sessions')], evTcp: svc(6, 80) }), ['fd00::6 tcp'], 'probes are about ports: the protocol');
  });
  it('a scan over several protocols blocks the source; wider targets absorb narrower ones', () => {
    assert.deepEqual(keys({ ...base, exceeded: [ex('failed_ports')], evProtos: PROTO_BIT_TCP | PROTO_BIT_UDP }), ['10.0.0.6']);
    assert.deepEqual(keys({ ...base, exceeded: [ex('failed_hosts')], evProtos: PROTO_BIT_ICMP }), ['10.0.0.6 icmp']);
    assert.deepEqual(keys({ ...base, exceeded: [ex('tcp_failed'), ex('failed_ports'), ex('echo_requests')], evProtos: PROTO_BIT_TCP, evTcp: svc(6, 80) }), ['10.0.0.6 tcp', '10.0.0.6 icmp']);
  });
});

describe('allowlist', () => {
  it('refuses networks overlapping --allow, --exclude, own addresses and reserved ones', () => {
    const a = new Allowlist(['192.0.2.0/24'], ['198.51.100.7'], () => ['10.77.1.1', 'fe80::1%eth0']);
    const why = (net: string) => a.conflict(makeTarget(net).prefix);
    assert.match(why('192.0.2.9') ?? '', /\(allow\)/);
    assert.match(why('198.51.100.0/24') ?? '', /\(exclude\)/, 'a network containing an excluded host');
    assert.match(why('10.77.0.0/16') ?? '', /10\.77\.1\.1 \(own address\)/);
    assert.match(why('127.0.0.1') ?? '', /reserved/);
    assert.match(why('ff02::1') ?? '', /reserved/);
    assert.equal(why('10.77.1.6'), null);
    assert.equal(why('2001:db8::6'), null);
  });
});

describe('block table', () => {
  it('adds, dedupes, respects coverage for anomalies, caps the count', () => {
    const t = new BlockTable(policy);
    const a = t.add(makeTarget('10.0.0.6', 'protocol', 'tcp'), { origin: 'anomaly', reason: 'syn' }, T0);
    assert.equal(a.kind, 'added');
    assert.equal(t.add(makeTarget('10.0.0.6', 'protocol', 'tcp'), { origin: 'anomaly', reason: 'syn' }, T0 + 1).kind, 'covered');
    const c = t.add(makeTarget('10.0.0.6', 'service', 'tcp', 80), { origin: 'anomaly', reason: 'syn' }, T0 + 2);
    assert.equal(c.kind, 'covered');
    assert.equal(c.kind === 'covered' && c.by.key, '10.0.0.6 tcp');
    // A manual block of the same key replaces (new TTL); that is the operator's call.
    const m = t.add(makeTarget('10.0.0.6', 'protocol', 'tcp'), { origin: 'manual', reason: 'op', ttlSeconds: 60 }, T0 + 3);
    assert.ok(m.kind === 'added' && m.replaced && m.block.ttlSeconds === 60);
    t.add(makeTarget('10.0.0.7'), { origin: 'anomaly', reason: 'x' }, T0);
    t.add(makeTarget('10.0.0.8'), { origin: 'anomaly', reason: 'x' }, T0);
    const full = t.add(makeTarget('10.0.0.9'), { origin: 'anomaly', reason: 'x' }, T0);
    assert.equal(full.kind, 'refused');
    assert.match(full.kind === 'refused' ? full.reason : '', /full \(3 blocks, --max-blocks\)/);
    assert.equal(t.size, 3);
  });

  it('repeat offenders get twice the time each offence, up to the cap; offences are forgotten after the cap', () => {
    const t = new BlockTable(policy);
    const ttls: number[] = [];
    let now = T0;
    for (let i = 0; i < 5; i++) {
      const r = t.add(makeTarget('10.0.0.6'), { origin: 'anomaly', reason: 'x' }, now);
      assert.equal(r.kind, 'added');
      if (r.kind === 'added') {
        ttls.push(r.block.ttlSeconds);
        assert.equal(r.block.offence, i + 1);
        now = r.block.expiresAt;
      }
      assert.equal(t.expire(now).length, 1);
    }
    assert.deepEqual(ttls, [600, 1200, 2400, 3600, 3600]);
    now += 3600 * 1000 + 1;
    const fresh = t.add(makeTarget('10.0.0.6'), { origin: 'anomaly', reason: 'x' }, now);
    assert.ok(fresh.kind === 'added' && fresh.block.offence === 1 && fresh.block.ttlSeconds === 600);
  });

  it('blocks from one episode are one offence; the next episode doubles', () => {
    const t = new BlockTable(policy);
    const ep1 = { origin: 'anomaly' as const, reason: 'x', episodeOpened: T0 };
    const a = t.add(makeTarget('10.0.0.6', 'protocol', 'tcp'), ep1, T0);
    const b = t.add(makeTarget('10.0.0.6', 'protocol', 'icmp'), ep1, T0 + 500);
    assert.ok(a.kind === 'added' && b.kind === 'added');
    assert.deepEqual([a.block.offence, a.block.ttlSeconds, b.block.offence, b.block.ttlSeconds], [1, 600, 1, 600], 'a SYN flood and a ping flood of one attack');
    t.expire(T0 + 700_000);
    const c = t.add(makeTarget('10.0.0.6', 'protocol', 'tcp'), { ...ep1, episodeOpened: T0 + 800_000 }, T0 + 800_000);
    assert.ok(c.kind === 'added' && c.block.offence === 2 && c.block.ttlSeconds === 1200);
    assert.equal(t.offences()[0]?.lastEpisode, T0 + 800_000);
  });

  it('expires blocks at their time and restores saved ones with their remaining time', () => {
    const t = new BlockTable(policy);
    const r = t.add(makeTarget('10.0.0.6'), { origin: 'anomaly', reason: 'x' }, T0);
    t.add(makeTarget('10.0.0.7'), { origin: 'manual', reason: 'x', ttlSeconds: 30 }, T0);
    assert.equal(t.nextExpiry(), T0 + 30_000);
    assert.deepEqual(t.expire(T0 + 29_999).length, 0);
    assert.deepEqual(t.expire(T0 + 30_000).map((b) => b.key), ['10.0.0.7']);
    const u = new BlockTable(policy);
    const later = T0 + 100_000;
    const res = u.restore(t.list(), t.offences(), later);
    assert.deepEqual(res.restored.map((b) => b.key), ['10.0.0.6']);
    assert.equal(u.get('10.0.0.6')?.expiresAt, r.kind === 'added' ? r.block.expiresAt : -1, 'the expiry is kept, not renewed');
    assert.equal(remainingSeconds(u.get('10.0.0.6')!, later), 500);
    const gone = new BlockTable(policy).restore(t.list(), [], T0 + 700_000);
    assert.deepEqual([gone.restored.length, gone.expired.length], [0, 1]);
    // The offence history came along: the next block is a second offence.
    u.expire(T0 + 600_000);
    const again = u.add(makeTarget('10.0.0.6'), { origin: 'anomaly', reason: 'x' }, T0 + 600_000);
    assert.ok(again.kind === 'added' && again.block.offence === 2 && again.block.ttlSeconds === 1200);
  });
});

describe('block state file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-blocks-'));
  it('round-trips blocks and offences, writing atomically', () => {
    const t = new BlockTable(policy);
    t.add(makeTarget('10.0.0.6', 'service', 'udp', 53), { origin: 'anomaly', reason: 'udp', signatureId: 9100005, episode: 2, queue: 1 }, T0);
    t.add(makeTarget('fd00::/64'), { origin: 'manual', reason: 'op', ttlSeconds: 90 }, T0);
    const file = path.join(dir, 'sub', 'blocks.json');
    writeBlockState(file, { blocks: t.list(), offences: t.offences() }, T0);
    assert.deepEqual(readdirSync(path.dirname(file)), ['blocks.json'], 'no temp file left behind');
    const back = readBlockState(file);
    assert.deepEqual(back.blocks, t.list());
    assert.deepEqual(back.offences, t.offences());
    assert.deepEqual(readBlockState(path.join(dir, 'absent.json')), { blocks: [], offences: [] });
  });

  it('a damaged file is refused with the file, the JSON path and what was expected', () => {
    const file = path.join(dir, 'bad.json');
    const good = JSON.parse(readFileSync(path.join(dir, 'sub', 'blocks.json'), 'utf8')) as { blocks: Record<string, unknown>[] };
    const cases: [unknown, RegExp][] = [
      [{ ...good, blocks: [{ ...good.blocks[0], scope: 'everything' }] }, /bad\.json: at \/blocks\/0\/scope: expected one of "source", "protocol", "service" \(got "everything"\)/],
      [{ ...good, blocks: [{ ...good.blocks[0], expires_at: 'tomorrow' }] }, /at \/blocks\/0\/expires_at: expected an ISO 8601 date-time/],
      [{ ...good, blocks: [{ ...good.blocks[0], net: '10.0.0.300' }] }, /at \/blocks\/0: "10\.0\.0\.300" is not an IPv4 or IPv6 address/],
      [{ ...good, blocks: [{ ...good.blocks[0], port: undefined }] }, /at \/blocks\/0: a service block needs a destination port/],
      [{ ...good, version: 9 }, /at \/version: expected 1 \(got 9\)/],
    ];
    for (const [doc, re] of cases) {
      writeFileSync(file, JSON.stringify(doc));
      assert.throws(() => readBlockState(file), (e: Error) => e instanceof StateFileError && /^invalid block state file .*bad\.json: \d+ problems?\n/.test(e.message) && re.test(e.message) && /move it away/.test(e.message), String(re));
    }
    writeFileSync(file, '{"format": "nfips-blocks", ');
    assert.throws(() => readBlockState(file), /bad\.json: at \(root\): not valid JSON/);
  });
});

describe('ipset entries', () => {
  it('one set per kind and family; restore script creates sets then adds with remaining time', () => {
    const t = new BlockTable(policy);
    t.add(makeTarget('10.0.0.6', 'service', 'tcp', 8080), { origin: 'anomaly', reason: 'x' }, T0);
    t.add(makeTarget('fd00::6', 'protocol', 'icmp'), { origin: 'anomaly', reason: 'x' }, T0);
    t.add(makeTarget('10.1.0.0/16'), { origin: 'manual', reason: 'x', ttlSeconds: 100 }, T0);
    assert.deepEqual(t.list().map((b) => entryOf('nfips', b)), [
      { set: 'nfips-svc4', member: '10.0.0.6,tcp:8080' },
      { set: 'nfips-icmp6', member: 'fd00::6' },
      { set: 'nfips-src4', member: '10.1.0.0/16' },
    ]);
    const script = restoreScript('nfips', ['ipv4'], t.list(), T0 + 10_000).trim().split('\n');
    assert.equal(script.length, 5 + 2, 'five v4 sets and the two v4 blocks');
    assert.equal(script[0], 'create nfips-src4 hash:net family inet timeout 0 counters maxelem 65536');
    assert.deepEqual(script.slice(5), ['add nfips-svc4 10.0.0.6,tcp:8080 timeout 590', 'add nfips-src4 10.1.0.0/16 timeout 90']);
  });

  it('parses ipset save lines with timeout and counters', () => {
    const text = 'create nfips-src4 hash:net family inet hashsize 1024 maxelem 65536 timeout 0 counters bucketsize 12 initval 0x1\nadd nfips-src4 10.0.0.1 timeout 29 packets 1234 bytes 5678\nadd nfips-svc4 10.0.0.1,tcp:8080 timeout 19 packets 0 bytes 0\n';
    assert.deepEqual(parseSave(text), [
      { set: 'nfips-src4', member: '10.0.0.1', timeout: 29, packets: 1234, bytes: 5678 },
      { set: 'nfips-svc4', member: '10.0.0.1,tcp:8080', timeout: 19, packets: 0, bytes: 0 },
    ]);
  });
});

describe('source response (decisions only; the kernel side is in test/integration/prevent.test.ts)', () => {
  it('blocks what the source was caught at, in the narrowest scope, and never an allowlisted one', async () => {
    const { BlockManager } = await import('../../src/blocks/manager');
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-resp-'));
    const events: [string, Record<string, unknown>][] = [];
    const m = new BlockManager({
      policy,
      allowlist: new Allowlist(['10.0.0.9'], [], () => []),
      saved: { blocks: [], offences: [] },
      stateFile: path.join(dir, 'blocks.json'),
      setPrefix: 'nfips',
      families: ['ipv4'],
      // Decisions are synchronous; `true` stands in for ipset so no kernel state is touched here.
      bins: { iptables: 'iptables', ip6tables: 'ip6tables', ipset: 'true' },
      log: { event: (type, fields = {}) => void events.push([type, fields]) },
      clock: () => T0,
    });
    const meta = { signatureId: 9100101, signature: 'failed TCP connections', episode: 1, episodeOpened: T0 };
    const flood = { ip: '10.0.0.6', exceeded: [ex('tcp_failed'), ex('echo_requests')], evProtos: PROTO_BIT_TCP, evTcp: svc(6, 80), evUdp: TARGET_NONE };
    const r = m.respondToSource(flood, meta);
    assert.equal(r.action, 'blocked');
    assert.deepEqual(r.blocks.map((b) => [b.key, b.outcome, b.ttl_seconds]), [['10.0.0.6 tcp:80', 'added', 600], ['10.0.0.6 icmp', 'added', 600]], 'one episode, one offence: both 600 s');
    const again = m.respondToSource(flood, meta);
    assert.deepEqual(again.blocks.map((b) => b.outcome), ['already blocked', 'already blocked']);
    assert.equal(again.action, 'blocked');
    const refused = m.respondToSource({ ...flood, ip: '10.0.0.9' }, meta);
    assert.equal(refused.action, 'allowed');
    assert.match(refused.blocks[0]?.reason ?? '', /allowlisted: 10\.0\.0\.9 overlaps 10\.0\.0\.9 \(allow\)/);
    // A block event means the kernel holds the entry, so it comes after ipset has answered.
    assert.deepEqual(events.map(([type, f]) => `${type} ${String(f.src_ip)}`), ['block_refused 10.0.0.9', 'block_refused 10.0.0.9']);
    assert.deepEqual(readBlockState(path.join(dir, 'blocks.json')).blocks.map((b) => b.key), ['10.0.0.6 tcp:80', '10.0.0.6 icmp'], 'saved at once');
    await m.close();
    assert.deepEqual(events.map(([type, f]) => `${type} ${String(f.src_ip)}`), ['block_refused 10.0.0.9', 'block_refused 10.0.0.9', 'block 10.0.0.6', 'block 10.0.0.6']);
  });
  it('a source caught again while its block is being lifted is blocked anew, not told "already blocked" by the block about to go', async () => {
    const { BlockManager } = await import('../../src/blocks/manager');
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lift-'));
    // An ipset whose delete takes a while (a long chain of kernel changes before it), and that records its calls.
    const calls = path.join(dir, 'calls');
    const fake = path.join(dir, 'ipset');
    writeFileSync(fake, `#!/bin/sh\ncat >/dev/null\necho "$1 $3" >> ${calls}\nif [ "$1" = del ]; then sleep 0.4; fi\n`);
    chmodSync(fake, 0o755);
    const events: [string, Record<string, unknown>][] = [];
    const m = new BlockManager({ policy, allowlist: new Allowlist([], [], () => []), saved: { blocks: [], offences: [] }, stateFile: path.join(dir, 'blocks.json'), setPrefix: 'nfips', families: ['ipv4'], bins: { iptables: 'iptables', ip6tables: 'ip6tables', ipset: fake }, log: { event: (type, fields = {}) => void events.push([type, fields]) } });
    const meta = { signatureId: 9100101, signature: 'failed TCP connections', episode: 1, episodeOpened: 1 };
    const flood = { ip: '10.0.0.6', exceeded: [ex('tcp_failed')], evProtos: PROTO_BIT_TCP, evTcp: svc(6, 80), evUdp: TARGET_NONE };
    assert.equal(m.respondToSource(flood, meta).blocks[0]?.outcome, 'added');
    const lifting = m.remove('10.0.0.6 tcp:80', 'manual');
    // Caught again while the delete waits: a new block, queued after the delete.
    const again = m.respondToSource(flood, { ...meta, episode: 2, episodeOpened: 2 });
    assert.equal(again.blocks[0]?.outcome, 'added', JSON.stringify(again));
    await lifting;
    assert.deepEqual(m.inForce().map((b) => b.key), ['10.0.0.6 tcp:80'], 'the new block stands');
    await m.close();
    assert.deepEqual(readFileSync(calls, 'utf8').trim().split('\n'), ['add 10.0.0.6,tcp:80', 'del 10.0.0.6,tcp:80', 'add 10.0.0.6,tcp:80'], 'the kernel holds it again at the end');
    assert.ok(!events.some(([t]) => t === 'unblock'), 'no unblock: the source is still blocked');
  });
});
