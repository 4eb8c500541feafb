// The fail-open accounting: NFQUEUE rule counter minus what nfips received,
// across chain rewrites, with a rate-limited event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailOpenMonitor } from '../../src/stats/fail-open';

interface Logged {
  type: string;
  fields: Record<string, unknown>;
  level: string | undefined;
}

function setup(failClosed = false) {
  const state = { now: 1_000_000, received: 0, waiting: 0 };
  const events: Logged[] = [];
  const m = new FailOpenMonitor({
    failClosed,
    log: { event: (type, fields = {}, level) => events.push({ type, fields, level }) },
    received: () => state.received,
    waiting: () => state.waiting,
    clock: () => state.now,
    eventIntervalMs: 10_000,
  });
  const step = (v4: number | null, received: number, waiting = 0, v6?: number | null) => {
    state.now += 2000;
    state.received = received;
    state.waiting = waiting;
    m.observe(v6 === undefined ? { ipv4: v4 } : { ipv4: v4, ipv6: v6 });
  };
  return { m, events, step };
}

test('every queued packet received or waiting: nothing failed, no event', () => {
  const { m, events, step } = setup();
  step(1000, 1000);
  step(5000, 4900, 100);
  assert.deepEqual(events, []);
  assert.equal(m.status().packets, 0);
  assert.equal(m.status().queue_rule_packets, 5000);
});

test('overflow: a warn event at once with the counts, then at most one per interval with what came meanwhile', () => {
  const { m, events, step } = setup();
  step(1000, 1000);
  step(11_000, 9000); // 2000 of 10,000 failed open
  assert.equal(events.length, 1);
  assert.equal(events[0]?.type, 'fail_open');
  assert.equal(events[0]?.level, 'warn');
  assert.equal(events[0]?.fields.packets, 2000);
  assert.equal(events[0]?.fields.queue_rule_packets, 10_000);
  assert.equal(events[0]?.fields.share, 0.2);
  assert.match(String(events[0]?.fields.meaning), /passed uninspected/);
  step(21_000, 18_000); // +1000, within 10 s of the event: held back
  step(31_000, 27_000); // +1000
  step(41_000, 37_000); // nothing new
  assert.equal(events.length, 1, 'rate-limited');
  step(51_000, 47_000); // 8 s after the event: still held
  step(61_000, 57_000); // 10 s: out
  assert.equal(events.length, 2);
  assert.equal(events[1]?.fields.packets, 2000, 'the held-back counts are summed');
  assert.equal(events[1]?.fields.total, 4000);
  const s = m.status();
  assert.deepEqual([s.packets, s.queue_rule_packets, s.share, s.meaning], [4000, 61_000, 0.0656, 'passed uninspected']);
  step(71_000, 67_000);
  step(81_000, 77_000);
  step(91_000, 87_000);
  assert.equal(events.length, 2, 'no event while nothing fails');
});

test('a reading that dips (packets in flight) is not counted twice when it recovers', () => {
  const { m, events, step } = setup();
  step(10_000, 9000); // 1000
  step(12_000, 11_500); // estimate 500: a dip, nothing new
  step(14_000, 12_900); // estimate 1100: 100 new
  assert.equal(m.status().packets, 1100);
  assert.equal(events[0]?.fields.packets, 1000);
});

test('a chain rewritten by a repair (counter back to 0) or missing (null) keeps what was counted', () => {
  const { m, events, step } = setup();
  step(5000, 5000);
  step(null, 5000); // chain gone: nothing queued meanwhile
  step(300, 5300); // new chain counts from 0
  assert.equal(m.queued, 5300);
  step(200, 5500); // reset again, 200 new, all received
  assert.equal(m.queued, 5500);
  // A rewrite the watchdog made, whose new counter overtook the old one by the next reading.
  m.chainRewritten('ipv4');
  step(400, 5900);
  assert.equal(m.queued, 5900);
  assert.deepEqual(events, [], 'no phantom failures from the resets');
});

test('families add up', () => {
  const { m, step } = setup();
  step(100, 300, 0, 200);
  assert.equal(m.queued, 300);
  assert.equal(m.status().packets, 0);
});

test('fail-closed: the same count is reported as dropped', () => {
  const { m, events, step } = setup(true);
  step(1000, 1000);
  step(2000, 1500);
  assert.equal(events[0]?.type, 'fail_closed');
  assert.match(String(events[0]?.fields.meaning), /dropped/);
  assert.equal(m.status().meaning, 'dropped');
});

test('status: the share over the last minute', () => {
  const { m, step } = setup();
  step(0, 0);
  for (let i = 1; i <= 40; i++) step(i * 1000, i <= 30 ? i * 1000 : 30_000 + (i - 30) * 500);
  const r = m.status().recent;
  // The last 60 s are 30 checks: 20 with nothing failing, 10 with half failing.
  assert.equal(r.seconds, 60);
  assert.equal(r.packets, 5000);
  assert.equal(r.queue_rule_packets, 30_000);
});
