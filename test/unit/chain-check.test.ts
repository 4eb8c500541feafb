// What the chain watchdog finds wrong in `iptables -S -v` / `ipset list -t`
// output, and the repair transaction it builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Block, makeTarget, targetKey } from '../../src/blocks/block';
import { blocksIn, inspectSets, inspectTable, parseCountedRules, parseSetHeaders, setRepairScript, tableRepairPayload } from '../../src/iptables/chain-check';
import { buildPlan, defaultPlanOptions, FamilyPlan, ruleLine, TablePlan } from '../../src/iptables/plan';

const plan = buildPlan({ ...defaultPlanOptions(), families: ['ipv4'], hook: 'forward' });
const fp = plan.families[0] as FamilyPlan;
const filter = fp.tables.find((t) => t.table === 'filter') as TablePlan;
const mangle = fp.tables.find((t) => t.table === 'mangle') as TablePlan;

/** What `iptables -t mangle -v -S` prints for the installed plan (counters before -j, as iptables puts them). */
function listing(tp: TablePlan, opts: { forward?: string[]; input?: string[]; chain?: string[] | null; queued?: number } = {}): string {
  const counted = (line: string, n = 0) => line.replace(/ -j /, ` -c ${n} ${n * 60} -j `);
  const chain = opts.chain === undefined ? tp.body.map((spec) => ruleLine('-A', 'NFIPS', spec)) : opts.chain;
  const forward = opts.forward ?? tp.jumps.filter((j) => j.parent === 'FORWARD').map((j) => ruleLine('-A', 'FORWARD', j.spec));
  return [
    '-P PREROUTING ACCEPT -c 0 0',
    '-P FORWARD ACCEPT -c 0 0',
    ...(chain === null ? [] : ['-N NFIPS']),
    ...forward.map((l) => counted(l)),
    ...(opts.input ?? []).map((l) => counted(l)),
    ...(chain ?? []).map((l) => counted(l, / NFQUEUE /.test(l) ? (opts.queued ?? 0) : 1)),
    '',
  ].join('\n');
}

test('counters come out of -v -S lines; the rest is what -S prints', () => {
  const [r] = parseCountedRules('-A NFIPS -m comment --comment nfips -c 12 3400 -j NFQUEUE --queue-num 0 --queue-bypass\n');
  assert.deepEqual(r?.spec, ['-m', 'comment', '--comment', 'nfips', '-j', 'NFQUEUE', '--queue-num', '0', '--queue-bypass']);
  assert.deepEqual([r?.packets, r?.bytes], [12, 3400]);
});

test('the installed plan has no damage, and the NFQUEUE counter is read', () => {
  const m = inspectTable(fp, mangle, listing(mangle, { queued: 4242 }));
  assert.deepEqual(m, { damage: [], queued: 4242 });
  assert.deepEqual(inspectTable(fp, filter, listing(filter)), { damage: [], queued: null });
});

test('iptables -F FORWARD: the jump is missing', () => {
  const m = inspectTable(fp, mangle, listing(mangle, { forward: [] }));
  assert.deepEqual(m.damage.map((d) => [d.kind, d.parent, d.detail]), [['jump_missing', 'FORWARD', 'ipv4 mangle: jump from FORWARD to NFIPS missing']]);
  assert.equal(tableRepairPayload(fp, mangle, listing(mangle, { forward: [] }), m.damage), '*mangle\n-I FORWARD 1 -m comment --comment nfips -j NFIPS\nCOMMIT\n');
});

test('a rule inserted above the jump (docker, a config manager): moved back to the top in one transaction', () => {
  const save = listing(mangle, { forward: ['-A FORWARD -j DOCKER-USER', '-A FORWARD -m comment --comment nfips -j NFIPS'] });
  const m = inspectTable(fp, mangle, save);
  assert.deepEqual(m.damage.map((d) => d.kind), ['jump_not_first']);
  assert.match(m.damage[0]?.detail ?? '', /is rule 2, below "-A FORWARD -j DOCKER-USER"/);
  assert.equal(tableRepairPayload(fp, mangle, save, m.damage), '*mangle\n-D FORWARD -m comment --comment nfips -j NFIPS\n-I FORWARD 1 -m comment --comment nfips -j NFIPS\nCOMMIT\n');
});

test('duplicate or foreign jumps are replaced by the one planned', () => {
  const save = listing(mangle, { forward: ['-A FORWARD -m comment --comment nfips -j NFIPS', '-A FORWARD -j NFIPS'] });
  const m = inspectTable(fp, mangle, save);
  assert.deepEqual(m.damage.map((d) => d.kind), ['jump_wrong']);
  assert.equal(tableRepairPayload(fp, mangle, save, m.damage), '*mangle\n-D FORWARD -m comment --comment nfips -j NFIPS\n-D FORWARD -j NFIPS\n-I FORWARD 1 -m comment --comment nfips -j NFIPS\nCOMMIT\n');
});

test('a jump from a hook nfips does not use (an old dump of another configuration) is removed', () => {
  const save = listing(mangle, { input: ['-A INPUT ! -i lo -m comment --comment nfips -j NFIPS'] });
  const m = inspectTable(fp, mangle, save);
  assert.deepEqual(m.damage.map((d) => [d.kind, d.parent]), [['jump_unexpected', 'INPUT']]);
  assert.equal(tableRepairPayload(fp, mangle, save, m.damage), '*mangle\n-D INPUT ! -i lo -m comment --comment nfips -j NFIPS\nCOMMIT\n');
});

test('chain deleted (iptables-restore of a dump without it): chain and jump rebuilt in one transaction', () => {
  const save = listing(mangle, { chain: null, forward: [] });
  const m = inspectTable(fp, mangle, save);
  assert.deepEqual(m.damage.map((d) => d.kind), ['chain_missing', 'jump_missing']);
  assert.equal(m.queued, null);
  assert.equal(tableRepairPayload(fp, mangle, save, m.damage), `${mangle.restore.replace(/COMMIT\n$/, '')}-I FORWARD 1 -m comment --comment nfips -j NFIPS\nCOMMIT\n`);
});

test('a rule missing, reordered or extra in the chain is found and the chain rewritten', () => {
  const body = mangle.body.map((spec) => ruleLine('-A', 'NFIPS', spec));
  const missing = inspectTable(fp, mangle, listing(mangle, { chain: body.slice(0, -1) }));
  assert.deepEqual(missing.damage.map((d) => d.kind), ['chain_rules']);
  assert.match(missing.damage[0]?.detail ?? '', /rule 8 ".*NFQUEUE.*" missing \(7 of 8 present\)/);
  const swapped = [body[1], body[0], ...body.slice(2)] as string[];
  assert.match(inspectTable(fp, mangle, listing(mangle, { chain: swapped })).damage[0]?.detail ?? '', /rule 1 is ".*--mark 0x1\/0x1.*" instead of ".*--mark 0x2\/0x2.*ACCEPT"/);
  const extra = inspectTable(fp, mangle, listing(mangle, { chain: [...body, '-A NFIPS -j ACCEPT'] }));
  assert.match(extra.damage[0]?.detail ?? '', /1 rule\(s\) too many, first "-A NFIPS -j ACCEPT"/);
  const payload = tableRepairPayload(fp, mangle, listing(mangle, { chain: swapped }), extra.damage);
  assert.equal(payload, mangle.restore, 'the chain is flushed and refilled, the intact jump left alone');
});

test('the filter chain that rejects is checked like the queueing one', () => {
  const m = inspectTable(fp, filter, listing(filter, { forward: ['-A FORWARD -j ACCEPT'] }));
  assert.deepEqual(m.damage.map((d) => [d.kind, d.table]), [['jump_missing', 'filter']]);
  assert.equal(tableRepairPayload(fp, filter, listing(filter, { forward: ['-A FORWARD -j ACCEPT'] }), m.damage), '*filter\n-I FORWARD 1 -m mark --mark 0x2/0x2 -m comment --comment nfips -j NFIPS\nCOMMIT\n');
});

const now = Date.parse('2026-11-23T10:00:00Z');
function block(net: string, scope: 'source' | 'protocol' | 'service', leftS: number, proto?: string, port?: number): Block {
  const t = makeTarget(net, scope, proto, port);
  return { ...t, key: targetKey(t), origin: 'manual', reason: 'test', createdAt: now - 1000, expiresAt: now + leftS * 1000, ttlSeconds: leftS + 1, offence: 1 };
}

const IPSET_LIST = `Name: nfips-src4
Type: hash:net
Revision: 7
Header: family inet hashsize 1024 maxelem 65536 timeout 0 counters bucketsize 12 initval 0x1
Size in memory: 456
References: 1
Number of entries: 1

Name: nfips-tcp4
Type: hash:net
Number of entries: 0

Name: nfips-udp4
Type: hash:net
Number of entries: 0

Name: nfips-svc4
Type: hash:net,port
Number of entries: 0

Name: operator-set
Type: hash:ip
Number of entries: 9
`;

test('block sets: a destroyed set, a set short of the table\'s blocks; blocks about to expire do not count', () => {
  const sets = parseSetHeaders(IPSET_LIST);
  assert.deepEqual(sets.get('nfips-svc4'), { name: 'nfips-svc4', type: 'hash:net,port', entries: 0 });
  assert.equal(sets.get('operator-set')?.entries, 9);
  const blocks = [block('10.0.0.6', 'source', 300), block('10.0.0.0/24', 'protocol', 300, 'udp'), block('10.0.0.7', 'protocol', 2, 'tcp'), block('10.0.0.8', 'service', 300, 'tcp', 22), block('fd00::1', 'source', 300)];
  const damage = inspectSets(fp, sets, blocks, now);
  assert.deepEqual(damage.map((d) => [d.kind, d.set]), [['set_entries', 'nfips-udp4'], ['set_missing', 'nfips-icmp4'], ['set_entries', 'nfips-svc4']]);
  assert.equal(damage[0]?.detail, 'ipv4: block set nfips-udp4 holds 0 of 1 blocks');
  const fix = new Set(['nfips-icmp4', 'nfips-svc4']);
  assert.equal(setRepairScript(fp, fix, blocks, now), [
    'create nfips-icmp4 hash:net family inet timeout 0 counters maxelem 65536',
    'create nfips-svc4 hash:net,port family inet timeout 0 counters maxelem 65536',
    'add nfips-svc4 10.0.0.8,tcp:22 timeout 300',
    '',
  ].join('\n'));
  assert.equal(blocksIn(fp, fix, blocks, now), 1);
  assert.deepEqual(inspectSets(fp, sets, [block('10.0.0.6', 'source', 300)], now).map((d) => d.kind), ['set_missing'], 'the set holding its block is fine');
});
