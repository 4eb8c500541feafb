// The benchmark's arithmetic and tables.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs, spoofMap } from '../eval/eval';
import {
  analyseAttack,
  analyseNormal,
  attackRow,
  AttackWindow,
  compareIp,
  LogRecord,
  markdownTable,
  namesOf,
  normalBlocksIn,
  perHour,
  shortList,
  TABLE_HEADER,
  textTable,
} from '../eval/report';

const T0 = Date.parse('2026-11-30T10:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const alert = (s: number, src: string | undefined, responsible: string[], distributed = false): LogRecord => ({
  event_type: 'alert',
  timestamp: at(s),
  ...(src ? { src_ip: src } : {}),
  alert: { action: 'blocked', signature: 'nfips anomaly: x' },
  anomaly: { responsible: responsible.map((ip) => ({ ip, share: 0.5 })), distributed },
});
const block = (s: number, src: string, action = 'added'): LogRecord => ({ event_type: 'block', action, timestamp: at(s), src_ip: src, block: { key: src, net: src, reason: 'r' } });
const NORMAL = ['10.77.1.2', '10.77.1.3'];
const ATTACKER = '10.77.1.20';
const win = (over: Partial<AttackWindow> = {}): AttackWindow => ({
  name: 'syn-flood',
  label: 'hping3 -S --flood -p 80',
  attacker: ATTACKER,
  slow: false,
  spoofed: false,
  start: T0 + 100_000,
  end: T0 + 130_000,
  windowEnd: T0 + 200_000,
  ...over,
});

test('per hour', () => {
  assert.equal(perHour(2, 60), 120);
  assert.equal(perHour(1, 1800), 2);
  assert.equal(perHour(0, 1800), 0);
  assert.equal(perHour(0, 0), 0);
  assert.equal(perHour(3, 0), Infinity);
});

test('names: src_ip, responsible sources, block nets; deduplicated', () => {
  assert.deepEqual(namesOf(alert(0, '10.77.1.20', ['10.77.1.20', '10.77.1.3'])), ['10.77.1.20', '10.77.1.3']);
  assert.deepEqual(namesOf(alert(0, undefined, [], true)), []);
  assert.deepEqual(namesOf(block(0, '10.77.1.20')), ['10.77.1.20']);
  assert.deepEqual(namesOf({ event_type: 'stats', timestamp: at(0) }), []);
});

test('an attack alerted and blocked in time, with a bystander named', () => {
  const ev = [
    alert(90, '10.77.1.2', ['10.77.1.2']), // before the attack: not its
    alert(102.3, '10.77.1.3', ['10.77.1.3', ATTACKER]),
    block(104.06, ATTACKER),
    block(105, '10.77.1.3'),
    alert(250, ATTACKER, [ATTACKER]), // after the window
  ];
  const r = analyseAttack(ev, win(), NORMAL, [...NORMAL, ATTACKER]);
  assert.equal(r.alertS, 2.3);
  assert.equal(r.blockS, 4.1);
  assert.equal(r.named, true);
  assert.deepEqual(r.extraNames, ['10.77.1.3']);
  assert.deepEqual(r.blockedNormal, ['10.77.1.3']);
  assert.equal(r.alerts, 1);
  assert.equal(r.blocks, 2);
  assert.equal(r.alertVerdict, 'PASS');
  assert.equal(r.blockVerdict, 'PASS');
  assert.equal(r.seconds, 30);
  assert.deepEqual(attackRow(r, NORMAL), ['hping3 -S --flood -p 80', ATTACKER, '2.3', '4.1', 'yes', '10.77.1.3!', 'PASS (<=5s)', 'PASS (<=10s)']);
});

test('late, missing and restored events are misses', () => {
  const ev = [alert(106, ATTACKER, [ATTACKER]), block(103, ATTACKER, 'restored'), block(111, ATTACKER)];
  const r = analyseAttack(ev, win(), NORMAL, []);
  assert.equal(r.alertS, 6);
  assert.equal(r.alertVerdict, 'MISS');
  assert.equal(r.blockS, 11, 'a restored block (from a state file) is not this attack\'s');
  assert.equal(r.blockVerdict, 'MISS');
  const none = analyseAttack([], win(), NORMAL, []);
  assert.equal(none.alertS, null);
  assert.equal(none.blockS, null);
  assert.equal(none.named, false);
  assert.deepEqual(attackRow(none, NORMAL).slice(2, 5), ['-', '-', 'no']);
});

test('slow attacks get 60 s', () => {
  const ev = [alert(150, ATTACKER, [ATTACKER]), block(159.9, ATTACKER)];
  const r = analyseAttack(ev, win({ slow: true, end: T0 + 175_000 }), NORMAL, []);
  assert.equal(r.alertVerdict, 'PASS');
  assert.equal(r.blockVerdict, 'PASS');
  assert.equal(analyseAttack([alert(161, ATTACKER, [ATTACKER])], win({ slow: true }), NORMAL, []).alertVerdict, 'MISS');
});

test('random-source flood: a distributed alert and no real client blocked', () => {
  const w = win({ attacker: null, spoofed: true, name: 'rand-source-flood', label: 'hping3 -S --flood --rand-source' });
  const real = [...NORMAL, ATTACKER];
  const good = analyseAttack([alert(101.5, undefined, [], true), block(103, '10.77.1.77')], w, NORMAL, real);
  assert.equal(good.alertS, 1.5);
  assert.equal(good.distributed, true);
  assert.equal(good.alertVerdict, 'PASS');
  assert.equal(good.blockVerdict, 'PASS');
  assert.deepEqual(good.extraNames, ['10.77.1.77']);
  assert.equal(attackRow(good, NORMAL)[7], 'PASS (no real client blocked)');
  const bad = analyseAttack([alert(101, '10.77.1.3', ['10.77.1.3']), block(102, '10.77.1.3')], w, NORMAL, real);
  assert.equal(bad.alertVerdict, 'MISS', 'an alert that names one address is not the distributed one');
  assert.deepEqual(bad.blockedReal, ['10.77.1.3']);
  assert.equal(bad.blockVerdict, 'MISS');
  assert.equal(attackRow(bad, NORMAL)[7], 'MISS (blocked 10.77.1.3)');
});

test('normal phase: counts, per hour, sources, verdict', () => {
  const start = T0;
  const end = T0 + 1800_000;
  const quiet = analyseNormal([alert(100, '10.77.1.2', ['10.77.1.2'])], start, end);
  assert.deepEqual(quiet, { seconds: 1800, alerts: 1, blocks: 0, alertsPerHour: 2, blocksPerHour: 0, sources: ['10.77.1.2'], verdict: 'MISS' });
  const hour = analyseNormal([alert(100, '10.77.1.2', ['10.77.1.2'])], start, T0 + 3600_000);
  assert.equal(hour.alertsPerHour, 1);
  assert.equal(hour.verdict, 'PASS', 'one alert an hour is within the target');
  const blocked = analyseNormal([block(5, '10.77.1.3'), alert(1900, '10.77.1.2', [])], start, end);
  assert.equal(blocked.alerts, 0, 'events after the phase are not counted');
  assert.equal(blocked.blocks, 1);
  assert.equal(blocked.verdict, 'MISS');
  assert.deepEqual(analyseNormal([], start, start + 60_000).verdict, 'PASS');
});

test('blocks of normal clients during the attack phase', () => {
  const ev = [block(10, '10.77.1.2'), block(20, ATTACKER), block(30, '10.77.1.3'), block(400, '10.77.1.3')];
  assert.deepEqual(normalBlocksIn(ev, T0 + 15_000, T0 + 300_000, NORMAL), [{ ip: '10.77.1.3', at: at(30), reason: 'r' }]);
});

test('tables: aligned text and escaped markdown', () => {
  const rows = [['ping -f', '0.5'], ['a | b', '-']];
  assert.equal(textTable(['attack', 'alerted s'], rows), 'attack  | alerted s\n--------+----------\nping -f | 0.5\na | b   | -');
  assert.equal(markdownTable(['attack', 'alerted s'], rows), '| attack | alerted s |\n|---|---|\n| ping -f | 0.5 |\n| a \\| b | - |');
  assert.equal(TABLE_HEADER.length, 8);
});

test('short lists and address order', () => {
  assert.equal(shortList([]), '-');
  assert.equal(shortList(['10.77.1.2', '10.77.1.9'], NORMAL), '10.77.1.2!, 10.77.1.9');
  assert.equal(shortList(['a', 'b', 'c', 'd', 'e'], [], 3), 'a, b, c +2 more');
  assert.deepEqual(['10.77.1.20', '10.77.1.3', '10.77.1.100'].sort(compareIp), ['10.77.1.3', '10.77.1.20', '10.77.1.100']);
});

test('command line', () => {
  const d = parseArgs([]);
  assert.equal(d.normalMinutes, 30);
  assert.equal(d.attackSeconds, 30);
  assert.equal(d.slowSeconds, 75);
  assert.equal(d.mode, 'prevent');
  const q = parseArgs(['--normal-minutes', '2', '--attack-seconds=20', '--mode', 'detect', '--only', 'ping-flood', 'slowloris', '--out', '/tmp/x.md']);
  assert.deepEqual([q.normalMinutes, q.attackSeconds, q.slowSeconds, q.mode, q.only, q.out], [2, 20, 60, 'detect', ['ping-flood', 'slowloris'], '/tmp/x.md']);
  assert.throws(() => parseArgs(['--mode', 'off']), /prevent or detect/);
  assert.throws(() => parseArgs(['--only', 'nope']), /unknown attack nope/);
  assert.throws(() => parseArgs(['--attack-seconds', '0']), /number >= 1/);
  assert.throws(() => parseArgs(['--frobnicate']), /unknown flag/);
});

test('the spoofing map covers the client /24 hosts .2-.254', () => {
  const m = spoofMap('10.77.1.2').split(', ');
  assert.equal(m.length, 253);
  assert.equal(m[0], '0 : 10.77.1.2');
  assert.equal(m[252], '252 : 10.77.1.254');
});
