import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { Allowlist } from '../../src/blocks/allowlist';
import { makeTarget } from '../../src/blocks/block';
import { BlockManager, view } from '../../src/blocks/manager';
import { readBlockState } from '../../src/blocks/state-file';
import { Decision, mapDecision, parseStreamAnswer, StreamAnswer } from '../../src/crowdsec/decision';
import { DecisionSet } from '../../src/crowdsec/decision-set';
import { readQueueFile } from '../../src/crowdsec/queue-file';
import { formatGoDuration, parseGoDuration } from '../../src/crowdsec/go-duration';
import { retryDelay } from '../../src/crowdsec/link';
import { readCrowdSecSecrets, resolveCrowdSecOptions } from '../../src/config/crowdsec-options';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function decision(id: number, value: string, remainingMs: number, over: Partial<Decision> = {}): Decision {
  return { id, origin: 'cscli', scenario: "manual 'ban' from 'm1'", scope: value.includes('/') ? 'Range' : 'Ip', type: 'ban', value, remainingMs, ...over };
}
const answer = (n: Decision[], d: Decision[] = []): StreamAnswer => ({ new: n, deleted: d });

describe('Go durations', () => {
  it('parses what the Local API writes, fractions and negatives included', () => {
    assert.equal(parseGoDuration('3h59m58.1s'), (3 * 3600 + 59 * 60 + 58.1) * 1000);
    assert.equal(parseGoDuration('29m59.225636955s'), (29 * 60 + 59.225636955) * 1000);
    assert.equal(parseGoDuration('-14.552127ms'), -14.552127);
    assert.equal(parseGoDuration('1h0m0s'), 3_600_000);
    assert.equal(parseGoDuration('500us'), 0.5);
    assert.equal(parseGoDuration('0'), 0);
    for (const bad of ['', '-', '10', '1d', 'h', '1h 2m', '1.2.3s', '5sec']) assert.throws(() => parseGoDuration(bad), /invalid duration/, bad);
  });
  it('writes whole seconds the way Go does, and reads them back', () => {
    assert.equal(formatGoDuration(600), '10m0s');
    assert.equal(formatGoDuration(3661), '1h1m1s');
    assert.equal(formatGoDuration(45), '45s');
    for (const s of [1, 59, 60, 3599, 3600, 86_400, 123_456]) assert.equal(parseGoDuration(formatGoDuration(s)), s * 1000);
  });
});

describe('decision stream answers', () => {
  it('takes null for an empty list (1.4.6) and checks every field', () => {
    assert.deepEqual(parseStreamAnswer({ deleted: null, new: null }), { new: [], deleted: [], malformed: [] });
    const a = parseStreamAnswer({ deleted: null, new: [{ duration: '59m59.2s', id: 1, origin: 'cscli', scenario: 's', scope: 'Ip', type: 'ban', value: '192.0.2.7' }] });
    assert.equal(a.new[0]?.remainingMs, 3_599_200);
    assert.throws(() => parseStreamAnswer([]), /not a JSON object/);
    assert.throws(() => parseStreamAnswer({ new: {}, deleted: null }), /"new" is not a list/);
    assert.deepEqual(parseStreamAnswer({ new: [{ id: '1' }], deleted: null }).malformed, [{ where: 'new[0]', reason: 'new[0].id is not an integer' }]);
    assert.match(parseStreamAnswer({ new: null, deleted: [{ id: 2, duration: 'soon', origin: 'x', scenario: 'x', scope: 'Ip', type: 'ban', value: '1.2.3.4' }] }).malformed?.[0]?.reason ?? '', /deleted\[0\]\.duration: invalid duration/);
  });
  it('maps bans on Ip and Range to source blocks of exactly that network; other kinds are skipped', () => {
    const block = (d: Decision) => {
      const m = mapDecision(d);
      return m.kind === 'block' ? m.target.net : `skip: ${m.reason}`;
    };
    assert.equal(block(decision(1, '192.0.2.7', 1)), '192.0.2.7');
    assert.equal(block(decision(1, '198.51.100.0/24', 1)), '198.51.100.0/24', 'a range stays a range');
    assert.equal(block(decision(1, '2001:db8::/48', 1)), '2001:db8::/48');
    assert.equal(block(decision(1, '2001:DB8::5', 1)), '2001:db8::5');
    assert.match(block(decision(1, '192.0.2.7', 1, { type: 'captcha' })), /skip: type captcha/);
    assert.match(block(decision(1, 'FR', 1, { scope: 'Country' })), /skip: scope Country/);
    assert.match(block(decision(1, '192.0.2.0/24', 1, { scope: 'Ip' })), /skip: an Ip decision with a prefix/);
    assert.match(block(decision(1, 'not-an-ip', 1)), /skip: .*not an IPv4 or IPv6/);
  });
});

describe('decision set', () => {
  it('one block per network, as long as its longest live decision; a delete leaves the others', () => {
    const s = new DecisionSet();
    const c = s.apply(answer([decision(1, '192.0.2.7', 60_000), decision(2, '192.0.2.7', 120_000, { scenario: 'other' }), decision(3, '198.51.100.0/24', 30_000)]), T0, true);
    assert.deepEqual(c.upsert.map((w) => [w.key, w.expiresAt - T0, w.scenario, w.ids.sort()]), [['192.0.2.7', 120_000, 'other', [1, 2]], ['198.51.100.0/24', 30_000, "manual 'ban' from 'm1'", [3]]]);
    const d = s.apply(answer([], [decision(2, '192.0.2.7', -10)]), T0 + 1000, false);
    assert.deepEqual(d.upsert.map((w) => [w.key, w.expiresAt - T0, w.ids]), [['192.0.2.7', 60_000, [1]]], 'the remaining decision shortens the block');
    assert.deepEqual(d.remove, []);
    const e = s.apply(answer([], [decision(1, '192.0.2.7', -10), decision(2, '192.0.2.7', -10)]), T0 + 2000, false);
    assert.deepEqual(e.remove, ['192.0.2.7']);
    const again = s.apply(answer([], [decision(1, '192.0.2.7', -10)]), T0 + 3000, false);
    assert.deepEqual([again.upsert, again.remove], [[], []], 'a deletion repeated by the API changes nothing');
  });
  it('a startup answer is the whole truth: what it does not name is lifted', () => {
    const s = new DecisionSet();
    s.apply(answer([decision(1, '192.0.2.7', 60_000), decision(3, '198.51.100.0/24', 60_000)]), T0, true);
    const c = s.apply(answer([decision(3, '198.51.100.0/24', 50_000), decision(4, '203.0.113.1', 50_000)]), T0 + 10_000, true);
    assert.deepEqual(c.remove, ['192.0.2.7']);
    assert.deepEqual(c.upsert.map((w) => w.key).sort(), ['198.51.100.0/24', '203.0.113.1']);
    assert.equal(s.size, 2);
  });
  it('skips ended, unusable and own decisions', () => {
    const s = new DecisionSet();
    const c = s.apply(answer([decision(1, '192.0.2.7', -5), decision(2, 'FR', 5000, { scope: 'Country' }), decision(3, '192.0.2.8', 5000, { origin: 'nfips', scenario: 'nfips/x' })]), T0, true, (d) => d.origin === 'nfips');
    assert.deepEqual(c.upsert, []);
    assert.equal(c.own, 1);
    assert.deepEqual(c.skipped.map((x) => x.decision.id), [2]);
  });
  it('an own decision deleted before its end asks to lift its anomaly block; one that simply ended does not', () => {
    const s = new DecisionSet();
    const mine = (d: Decision) => d.origin === 'nfips';
    const c = s.apply(answer([decision(3, '192.0.2.8', 600_000, { origin: 'nfips', scenario: 'nfips/x@gw1' }), decision(4, '192.0.2.9', 2000, { origin: 'nfips', scenario: 'nfips/x@gw1' })]), T0, true, mine);
    assert.deepEqual([c.own, c.upsert, c.ownDeleted], [2, [], []]);
    const d = s.apply(answer([], [decision(3, '192.0.2.8', -1000, { origin: 'nfips', scenario: 'nfips/x@gw1' }), decision(4, '192.0.2.9', -1, { origin: 'nfips', scenario: 'nfips/x@gw1' })]), T0 + 2000, false, mine);
    assert.deepEqual(d.ownDeleted, [{ id: 3, net: '192.0.2.8', scenario: 'nfips/x', deletedAt: T0 + 1000 }], 'cscli decisions delete of the 10 min decision 1 s ago; the 2 s one ended');
    assert.deepEqual([d.upsert, d.remove], [[], []], 'own decisions never become CrowdSec blocks');
    const again = s.apply(answer([], [decision(3, '192.0.2.8', -2000, { origin: 'nfips', scenario: 'nfips/x@gw1' })]), T0 + 3000, false, mine);
    assert.deepEqual(again.ownDeleted, [], 'a repeated deletion lifts nothing more');
  });
  it('a startup answer (dedup=false) lifts only for own decisions it names deleted, never for one it leaves out', () => {
    const mine = (d: Decision) => d.origin === 'nfips';
    const own = (id: number, value: string, ms: number, scenario = 'nfips/x@gw1') => decision(id, value, ms, { origin: 'nfips', scenario });
    const s = new DecisionSet();
    s.apply(answer([own(3, '192.0.2.8', 600_000), own(4, '192.0.2.9', 600_000), own(5, '192.0.2.10', 600_000), own(6, '192.0.2.11', 2000)]), T0, true, mine);
    assert.deepEqual(s.ownIdsFor('192.0.2.8'), [3]);
    // Back from an outage: 3 is named deleted, 4 is left out (a deduplicating answer would do that), 5 is still live, 6 ended on its own.
    const c = s.apply(answer([own(5, '192.0.2.10', 590_000)], [own(3, '192.0.2.8', -4000)]), T0 + 10_000, true, mine);
    assert.deepEqual(c.ownDeleted, [{ id: 3, net: '192.0.2.8', scenario: 'nfips/x', deletedAt: T0 + 6000 }]);
    assert.deepEqual([c.upsert, c.remove], [[], []]);
    const again = s.apply(answer([own(5, '192.0.2.10', 580_000)], [own(3, '192.0.2.8', -14_000)]), T0 + 20_000, true, mine);
    assert.deepEqual(again.ownDeleted, [], 'lifted once');
    // The review's case: a SYN scan (10) and a UDP flood (11) on one IP; only 11 comes back after an outage.
    const t = new DecisionSet();
    t.apply(answer([own(10, '203.0.113.5', 600_000, 'nfips/syn-scan@gw1'), own(11, '203.0.113.5', 3_600_000, 'nfips/udp-flood@gw1')]), T0, true, mine);
    const back = t.apply(answer([own(11, '203.0.113.5', 3_500_000, 'nfips/udp-flood@gw1')]), T0 + 100_000, true, mine);
    assert.deepEqual(back.ownDeleted, [], 'missing is not deleted');
    assert.deepEqual(t.ownIdsFor('203.0.113.5', 'nfips/udp-flood'), [11]);
  });
  it('an own decision never seen live is not lifted when named deleted: expired and deleted look alike (next pull, or a startup answer)', () => {
    const mine = (d: Decision) => d.origin === 'nfips';
    const own = (id: number, value: string, ms: number) => decision(id, value, ms, { origin: 'nfips', scenario: 'nfips/failed-tcp-connections@gw1' });
    const s = new DecisionSet();
    s.apply(answer([]), T0, true, mine);
    assert.deepEqual(s.apply(answer([], [own(7, '192.0.2.20', -5000)]), T0 + 10_000, false, mine).ownDeleted, []);
    const r = new DecisionSet();
    assert.deepEqual(r.apply(answer([], [own(8, '192.0.2.21', -3000)]), T0, true, mine).ownDeleted, [], 'a restart without memory: the startup answer names every expired one deleted');
    // One that ran out while known is not a deletion when the stream names it later.
    const e = new DecisionSet();
    e.apply(answer([own(9, '192.0.2.22', 1000)]), T0, true, mine);
    e.apply(answer([]), T0 + 2000, false, mine);
    assert.deepEqual(e.apply(answer([], [own(9, '192.0.2.22', -1000)]), T0 + 2000, false, mine).ownDeleted, []);
  });
  it('own-decision memory survives a restart: an expired one named deleted lifts nothing, one deleted early still lifts', () => {
    const mine = (d: Decision) => d.origin === 'nfips';
    const own = (id: number, value: string, ms: number) => decision(id, value, ms, { origin: 'nfips', scenario: 'nfips/syn-scan@gw1' });
    const s = new DecisionSet();
    s.apply(answer([own(30, '192.0.2.30', 30_000), own(31, '192.0.2.31', 3_600_000)]), T0, true, mine);
    assert.equal(s.ownDirty, true);
    const m = JSON.parse(JSON.stringify(s.ownMemory())) as ReturnType<DecisionSet['ownMemory']>;
    // Restarted 2 min later: 30 ended at T0+30 s on its own, 31 was deleted by an operator at T0+60 s.
    const r = new DecisionSet();
    r.restoreOwn(m, T0 + 120_000);
    const c = r.apply(answer([], [own(30, '192.0.2.30', -90_000), own(31, '192.0.2.31', -60_000)]), T0 + 120_000, true, mine);
    assert.deepEqual(c.ownDeleted, [{ id: 31, net: '192.0.2.31', scenario: 'nfips/syn-scan', deletedAt: T0 + 60_000 }]);
    // Named again in the next answer: handled already.
    assert.deepEqual(r.apply(answer([], [own(31, '192.0.2.31', -70_000)]), T0 + 130_000, false, mine).ownDeleted, []);
  });
  it("forget() (this gateway's own delete) marks the id gone: its echo lifts nothing", () => {
    const mine = (d: Decision) => d.origin === 'nfips';
    const own = (id: number, ms: number) => decision(id, '192.0.2.40', ms, { origin: 'nfips', scenario: 'nfips/syn-scan@gw1' });
    const s = new DecisionSet();
    s.apply(answer([own(40, 3_600_000)]), T0, true, mine);
    s.forget(40);
    assert.deepEqual(s.apply(answer([], [own(40, -1000)]), T0 + 10_000, false, mine).ownDeleted, []);
  });
  it('an end near the known end is an expiry even when the answers took long to come: the fetch time widens the slack', () => {
    const mine = (d: Decision) => d.origin === 'nfips';
    const own = (id: number, ms: number) => decision(id, '192.0.2.41', ms, { origin: 'nfips', scenario: 'nfips/syn-scan@gw1' });
    // Seen with 60 s left (counted at the Local API when asked, T0); named deleted 1 s ago by an answer asked at
    // T0+52 s that took 8 s to come: the Local API may have counted at T0+60 s, right at the end.
    for (const [fetchMs, lifts] of [[8000, false], [0, true]] as const) {
      const s = new DecisionSet();
      s.apply(answer([own(41, 60_000)]), T0, true, mine);
      assert.equal(s.apply(answer([], [own(41, -1000)]), T0 + 52_000, false, mine, fetchMs).ownDeleted.length, lifts ? 1 : 0, `fetch ${fetchMs} ms`);
    }
  });
  it('a deletion is remembered (across a restart too): decisions of its scenario first seen from its answer on are late, until the watch ends', () => {
    const mine = (d: Decision) => d.origin === 'nfips';
    const own = (id: number, ms: number, scenario = 'nfips/syn-scan@gw1') => decision(id, '192.0.2.42', ms, { origin: 'nfips', scenario });
    const s = new DecisionSet();
    s.apply(answer([own(1, 600_000), own(2, 600_000, 'nfips/udp-flood@gw1')]), T0, true, mine);
    // 1 deleted; 3 (same scenario) appears in the same answer, 4 (another scenario) too.
    s.apply(answer([own(3, 3_600_000), own(4, 600_000, 'nfips/udp-flood@gw1')], [own(1, -1000)]), T0 + 10_000, false, mine);
    const [d] = s.deletions(T0 + 10_000);
    assert.deepEqual([d?.net, d?.scenario, d?.deletedAt, d?.liftBefore, d?.since, d?.watching], ['192.0.2.42', 'nfips/syn-scan', T0 + 9000, T0 + 9000, T0 + 10_000, true]);
    assert.deepEqual(s.lateIds(d!), [3]);
    // Restarted 20 min later: the watch is not over until an answer asked after its end has been acted on.
    const r = new DecisionSet();
    r.restoreOwn(JSON.parse(JSON.stringify(s.ownMemory())) as ReturnType<DecisionSet['ownMemory']>, T0 + 20 * 60_000);
    const [rd] = r.deletions(T0 + 20 * 60_000);
    assert.deepEqual(r.lateIds(rd!), [3], 'restored, still watched');
    r.lifted(rd!);
    r.settled(T0 + 5 * 60_000);
    assert.equal(r.deletions(T0 + 5 * 60_000).length, 1, 'an answer asked before the end of the watch keeps it');
    r.settled(T0 + 20 * 60_000);
    assert.deepEqual(r.deletions(T0 + 20 * 60_000), [], 'lifted, and an answer after the watch acted on: forgotten');
  });
  it('restored deletions from the future (a clock stepped back, a damaged file) are taken as now', () => {
    const s = new DecisionSet();
    s.restoreOwn({ live: [{ id: 9, net: '192.0.2.43', scenario: 'nfips/x', until: T0 + 600_000, seenAt: T0 + 3_600_000 }], gone: [], deletions: [{ net: '192.0.2.43', scenario: 'nfips/x', deletedAt: T0 + 3_600_000, liftBefore: T0 + 3_600_000, since: T0 + 3_600_000, watching: true, watchUntil: T0 + 365 * 86_400_000 }] }, T0);
    const [d] = s.deletions(T0);
    assert.deepEqual([d?.deletedAt, d?.liftBefore, d?.since, d?.watchUntil], [T0, T0, T0, T0 + 7 * 86_400_000]);
    assert.equal(s.ownMemory().live[0]?.seenAt, T0, 'a first sighting from the future too');
  });
  it('blocks del on a deletion whose lift waits moves neither the lift bound nor loses the watch; the cap never evicts the record just added', () => {
    const mine = (d: Decision) => d.origin === 'nfips';
    const own = (id: number, ms: number) => decision(id, '192.0.2.44', ms, { origin: 'nfips', scenario: 'nfips/x@gw1' });
    const s = new DecisionSet();
    s.apply(answer([own(1, 3_600_000)]), T0, true, mine);
    s.apply(answer([], [own(1, -1000)]), T0 + 10_000, false, mine);
    s.watch('192.0.2.44', 'nfips/x', T0 + 60_000);
    const [d] = s.deletions(T0 + 60_000);
    assert.deepEqual([d?.deletedAt, d?.liftBefore, d?.since], [T0 + 60_000, T0 + 9000, 0]);
    const full = new DecisionSet();
    const deletions = Array.from({ length: 10_000 }, (_, i) => ({ net: `10.0.${i >> 8}.${i & 255}`, scenario: 'nfips/x', deletedAt: T0, liftBefore: T0, since: T0, watching: true, watchUntil: T0 + 600_000 }));
    full.restoreOwn({ live: [], gone: [], deletions }, T0);
    full.watch('192.0.2.45', 'nfips/x', T0);
    const after = full.deletions(T0);
    assert.equal(after.length, 10_000);
    assert.ok(after.some((x) => x.net === '192.0.2.45'), 'the new record is kept');
    assert.ok(!after.some((x) => x.net === '10.0.0.0'), 'the oldest goes');
  });
  it('decisions that ran out are forgotten at the next answer', () => {
    const s = new DecisionSet();
    s.apply(answer([decision(1, '192.0.2.7', 1000)]), T0, true);
    s.apply(answer([]), T0 + 2000, false);
    assert.equal(s.size, 0);
    assert.deepEqual(s.idsFor('192.0.2.7'), []);
  });
});

describe('crowdsec flags', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-cs-'));
  const key = path.join(dir, 'key');
  writeFileSync(key, 'abcdef0123\n');
  it('none without --crowdsec-url; the rest alone is a mistake', () => {
    assert.equal(resolveCrowdSecOptions({}), null);
    assert.throws(() => resolveCrowdSecOptions({ crowdsecBouncerKeyFile: key }), /without --crowdsec-url/);
  });
  it('checks the URL, the interval and which credentials go together', () => {
    const o = resolveCrowdSecOptions({ crowdsecUrl: 'http://10.0.0.1:8080/', crowdsecBouncerKeyFile: key });
    assert.deepEqual(o, { url: 'http://10.0.0.1:8080', bouncerKeyFile: key, intervalSeconds: 10, machineId: null, passwordFile: null, maxDecisions: null });
    assert.equal(resolveCrowdSecOptions({ crowdsecUrl: 'http://h:1', crowdsecBouncerKeyFile: key, crowdsecMaxDecisions: '10000' })?.maxDecisions, 10_000);
    assert.throws(() => resolveCrowdSecOptions({ crowdsecUrl: 'http://h:1', crowdsecBouncerKeyFile: key, crowdsecMaxDecisions: '0' }), /invalid --crowdsec-max-decisions "0"/);
    assert.throws(() => resolveCrowdSecOptions({ crowdsecUrl: 'http://h:1/lapi', crowdsecBouncerKeyFile: key }), /base URL only \(no path/);
    assert.throws(() => resolveCrowdSecOptions({ crowdsecUrl: 'http://:secret@h:1', crowdsecBouncerKeyFile: key }), /base URL only/);
    assert.equal(resolveCrowdSecOptions({ crowdsecUrl: 'http://h:1', crowdsecBouncerKeyFile: key, crowdsecInterval: '2s' })?.intervalSeconds, 2);
    assert.throws(() => resolveCrowdSecOptions({ crowdsecUrl: 'not a url', crowdsecBouncerKeyFile: key }), /invalid --crowdsec-url "not a url"/);
    assert.throws(() => resolveCrowdSecOptions({ crowdsecUrl: 'ftp://h:1', crowdsecBouncerKeyFile: key }), /scheme must be http or https/);
    assert.throws(() => resolveCrowdSecOptions({ crowdsecUrl: 'http://h:1' }), /missing --crowdsec-bouncer-key-file/);
    assert.throws(() => resolveCrowdSecOptions({ crowdsecUrl: 'http://h:1', crowdsecBouncerKeyFile: key, crowdsecInterval: 'soon' }), /invalid --crowdsec-interval/);
    assert.throws(() => resolveCrowdSecOptions({ crowdsecUrl: 'http://h:1', crowdsecBouncerKeyFile: key, crowdsecMachineId: 'm1' }), /go together/);
  });
  it('reads the secrets; a missing or empty file names its flag', () => {
    const o = resolveCrowdSecOptions({ crowdsecUrl: 'http://h:1', crowdsecBouncerKeyFile: key });
    assert.ok(o);
    assert.deepEqual(readCrowdSecSecrets(o), { apiKey: 'abcdef0123', password: null });
    assert.throws(() => readCrowdSecSecrets({ ...o, bouncerKeyFile: path.join(dir, 'nope') }), /invalid --crowdsec-bouncer-key-file .*nope/);
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '\n');
    assert.throws(() => readCrowdSecSecrets({ ...o, machineId: 'm', passwordFile: empty }), /invalid --crowdsec-password-file .*one line/);
  });
});

describe('retry backoff', () => {
  it('doubles from 1 s and stops at the larger of the interval and 30 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map((n) => retryDelay(n, 10_000)), [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(retryDelay(10, 120_000), 120_000);
  });
});

describe('external blocks in the block manager', () => {
  function manager(dir: string, allow: string[] = []) {
    // A stand-in ipset that appends its arguments and stdin to a file.
    const calls = path.join(dir, 'calls');
    const fake = path.join(dir, 'ipset');
    writeFileSync(fake, `#!/bin/sh\necho "ARGS $*" >> ${calls}\ncat >> ${calls}\n`);
    chmodSync(fake, 0o755);
    writeFileSync(calls, '');
    const events: [string, Record<string, unknown>][] = [];
    let now = T0;
    const m = new BlockManager({
      policy: { ttlSeconds: 600, maxTtlSeconds: 86_400, maxBlocks: 100 },
      allowlist: new Allowlist(allow, [], () => ['192.0.2.1']),
      saved: { blocks: [], offences: [] },
      stateFile: path.join(dir, 'blocks.json'),
      setPrefix: 'nfips',
      families: ['ipv4', 'ipv6'],
      bins: { iptables: 'iptables', ip6tables: 'ip6tables', ipset: fake },
      log: { event: (type, fields = {}) => void events.push([type, fields]) },
      clock: () => now,
    });
    return { m, events, calls: () => readFileSync(calls, 'utf8'), tick: (ms: number) => (now += ms) };
  }
  const x = (net: string, ms: number, scenario = 's1') => ({ target: makeTarget(net), expiresAt: T0 + ms, scenario });

  it('applies a batch in one ipset restore, refusing what local blocks may not touch', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-ext-'));
    const { m, events, calls } = manager(dir, ['10.9.0.0/16']);
    const out = await m.applyExternal([x('198.51.100.0/24', 60_000), x('2001:db8::5', 30_000), x('10.9.1.1', 60_000), x('192.0.2.1', 60_000), x('169.254.1.1', 60_000), x('127.0.0.2', 60_000)], []);
    assert.deepEqual(out, { added: 2, updated: 0, removed: 0, kept_local: 0, refused: 4, failed: 0 });
    assert.equal(calls(), 'ARGS -exist restore\nadd nfips-src4 198.51.100.0/24 timeout 60\nadd nfips-src6 2001:db8::5 timeout 30\n');
    assert.deepEqual(events.filter(([t]) => t === 'block_refused').map(([, f]) => String(f.reason).replace(/:.*overlaps /, ' ')), ['allowlisted 10.9.0.0/16 (allow)', 'allowlisted 192.0.2.1 (own address)', 'allowlisted 169.254.0.0/16 (reserved)', 'allowlisted 127.0.0.0/8 (reserved)']);
    const saved = readBlockState(path.join(dir, 'blocks.json')).blocks;
    assert.deepEqual(saved.map((b) => [b.key, b.origin, b.scenario]), [['198.51.100.0/24', 'crowdsec', 's1'], ['2001:db8::5', 'crowdsec', 's1']]);
    await m.close();
  });

  it('lifts only crowdsec blocks, keeps a longer local one, and does not re-apply what is unchanged', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-ext-'));
    const { m, calls } = manager(dir);
    await m.addManual({ net: '203.0.113.5', ttl_seconds: 3600 });
    await m.applyExternal([x('203.0.113.5', 60_000), x('203.0.113.6', 60_000)], []);
    assert.deepEqual(m.inForce().map((b) => [b.key, b.origin]), [['203.0.113.5', 'manual'], ['203.0.113.6', 'crowdsec']]);
    const before = calls();
    const same = await m.applyExternal([x('203.0.113.6', 60_000)], []);
    assert.deepEqual([same.added, same.updated], [0, 0]);
    assert.equal(calls(), before, 'nothing run for an unchanged decision');
    const out = await m.applyExternal([], ['203.0.113.5', '203.0.113.6']);
    assert.equal(out.removed, 1);
    assert.deepEqual(m.inForce().map((b) => b.key), ['203.0.113.5'], 'the manual block stays');
    assert.match(calls(), /ARGS -exist restore\ndel nfips-src4 203\.0\.113\.6\n$/);
    await m.close();
  });
});

describe('publishing anomaly blocks', async () => {
  const { createServer } = await import('node:http');
  const { alertOf, scenarioFor } = await import('../../src/crowdsec/alert');
  const { Publisher, MAX_PENDING } = await import('../../src/crowdsec/publisher');
  const { LapiClient } = await import('../../src/crowdsec/lapi-client');
  const { parseGoDuration: goMs } = await import('../../src/crowdsec/go-duration');

  /** A stand-in Local API on loopback: records what it is sent; its answers are set per test. */
  async function fakeLapi() {
    const seen: { method: string; url: string; auth: string; body: unknown }[] = [];
    const ctl = { loginExpiresInMs: 3_600_000, failAlerts: 0, status401Once: false, down: false, nextToken: 1 };
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', auth: String(req.headers.authorization ?? ''), body: body ? JSON.parse(body) : null });
        const send = (code: number, doc: unknown): undefined => void res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(doc));
        if (ctl.down) return send(503, { message: 'down' });
        if (req.url === '/v1/watchers/login') return send(200, { code: 200, expire: new Date(Date.now() + ctl.loginExpiresInMs).toISOString(), token: `t${ctl.nextToken++}` });
        if (req.url === '/v1/alerts') {
          if (ctl.status401Once) {
            ctl.status401Once = false;
            return send(401, { code: 401, message: 'Token is expired' });
          }
          if (ctl.failAlerts > 0) {
            ctl.failAlerts--;
            return send(500, { message: 'database is locked' });
          }
          return send(201, (JSON.parse(body) as unknown[]).map((_, i) => String(i + 1)));
        }
        if (req.method === 'DELETE') return send(200, { nbDeleted: '1' });
        return send(404, { message: 'no route' });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    return { seen, ctl, url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
  }
  const block = (net: string, key = net) => {
    const t = makeTarget(net);
    const now = Date.now();
    return { ...t, key, origin: 'anomaly' as const, reason: 'nfips: failed TCP connections', createdAt: now, expiresAt: now + 600_000, ttlSeconds: 600, offence: 1 };
  };
  const finding = { exceeded: [{ measure: 'tcp_failed' as const, scale: 'second' as const, value: 812, threshold: { value: 40, learnt: 10, margin: 4, floor: 40 } }] };
  const meta = { signatureId: 9100101, signature: 'failed TCP connections', episode: 3, episodeOpened: Date.now() };
  const events = () => {
    const list: [string, Record<string, unknown>][] = [];
    return { list, log: { event: (type: string, fields: Record<string, unknown> = {}) => void list.push([type, fields]) } };
  };

  it('an alert carries the scenario, the source, the evidence and a ban for the time left', () => {
    assert.equal(scenarioFor('failed TCP connections'), 'nfips/failed-tcp-connections');
    const a = alertOf({ value: '198.51.100.0/24', scenario: 'nfips/x', until: T0 + 600_000, at: T0, key: '198.51.100.0/24 tcp', signature: 'x', signatureId: 1, episode: 2, evidence: ['tcp_failed=812/second (limit 40)'] }, T0 + 1000, 'gw1') as { source: Record<string, string>; decisions: Record<string, unknown>[]; meta: { key: string; value: string }[] };
    assert.deepEqual(a.source, { scope: 'Range', value: '198.51.100.0/24', range: '198.51.100.0/24' });
    assert.deepEqual(a.decisions, [{ duration: '9m59s', origin: 'nfips', scenario: 'nfips/x@gw1', scope: 'Range', type: 'ban', value: '198.51.100.0/24', simulated: false }]);
    assert.ok(a.meta.some((m) => m.key === 'evidence_1' && m.value === 'tcp_failed=812/second (limit 40)'));
    assert.ok(a.meta.some((m) => m.key === 'nfips_block' && m.value === '198.51.100.0/24 tcp'));
  });

  it('logs in, posts the alert with the bearer token, renews the token before it ends, and knows its own decision when it comes back', async () => {
    const api = await fakeLapi();
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-pub-'));
    const ev = events();
    // A token with 30 s left is inside the renewal margin: every push logs in again.
    api.ctl.loginExpiresInMs = 30_000;
    const p = new Publisher({ client: new LapiClient({ url: api.url, timeoutMs: 5000, userAgent: 't' }), machineId: 'gw1', password: 'pw', stateDir: dir, log: ev.log, intervalMs: 1000 });
    p.enqueue(block('203.0.113.9', '203.0.113.9 tcp:80'), finding, meta);
    await p.flush();
    p.enqueue(block('203.0.113.10'), finding, meta);
    await p.flush();
    const logins = api.seen.filter((s) => s.url === '/v1/watchers/login');
    assert.equal(logins.length, 2, 'renewed before its end');
    assert.deepEqual(logins[0]?.body, { machine_id: 'gw1', password: 'pw', scenarios: [] });
    const posts = api.seen.filter((s) => s.url === '/v1/alerts');
    assert.deepEqual(posts.map((s) => s.auth), ['Bearer t1', 'Bearer t2']);
    const d = (posts[0]?.body as { decisions: { duration: string; value: string }[] }[])[0]?.decisions[0];
    assert.equal(d?.value, '203.0.113.9');
    assert.ok(goMs(d?.duration ?? '') > 590_000);
    assert.equal(p.pending, 0);
    assert.equal((posts[0]?.body as { decisions: { scenario: string }[] }[])[0]?.decisions[0]?.scenario, 'nfips/failed-tcp-connections@gw1', 'the decision names the gateway');
    const back = (value: string, origin = 'nfips', machine = 'gw1') => ({ id: 1, origin, scenario: `nfips/failed-tcp-connections@${machine}`, scope: 'Ip', type: 'ban', value, remainingMs: 1000 });
    assert.equal(p.isOwn(back('203.0.113.9')), true);
    assert.equal(p.isOwn(back('203.0.113.11')), true, 'told by origin and scenario, with no record of what was sent');
    assert.equal(p.isOwn(back('203.0.113.9', 'nfips', 'gw2')), false, 'the same attacker and scenario from another gateway is enforced here');
    assert.equal(p.isOwn(back('203.0.113.9', 'cscli')), false);
    // An expired token mid-way: one fresh login, then it goes through.
    api.ctl.loginExpiresInMs = 3_600_000;
    api.ctl.status401Once = true;
    p.enqueue(block('203.0.113.12'), finding, meta);
    await p.flush();
    assert.equal(p.pending, 0);
    await p.deleteDecisions([7]);
    assert.equal(api.seen.at(-1)?.url, '/v1/decisions/7');
    assert.equal(api.seen.at(-1)?.method, 'DELETE');
    await p.close();
    await api.close();
  });

  it('keeps alerts in a persisted queue while the Local API fails, and sends them later (from the next run too)', async () => {
    const api = await fakeLapi();
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-pub-'));
    const ev = events();
    const client = new LapiClient({ url: api.url, timeoutMs: 5000, userAgent: 't' });
    api.ctl.down = true;
    const p = new Publisher({ client, machineId: 'gw1', password: 'pw', stateDir: dir, log: ev.log, intervalMs: 1000 });
    p.enqueue(block('203.0.113.9'), finding, meta);
    p.enqueue(block('203.0.113.10'), finding, meta);
    await p.flush();
    await p.flush();
    assert.equal(p.pending, 2);
    assert.equal(ev.list.filter(([t]) => t === 'crowdsec_push_failed').length, 1, 'once per failure streak');
    await p.close();
    const q = JSON.parse(readFileSync(path.join(dir, 'crowdsec-queue.json'), 'utf8')) as { pending: { value: string }[] };
    assert.deepEqual(q.pending.map((x) => x.value), ['203.0.113.9', '203.0.113.10']);
    api.ctl.down = false;
    const again = new Publisher({ client, machineId: 'gw1', password: 'pw', stateDir: dir, log: ev.log, intervalMs: 1000 });
    assert.equal(again.pending, 2);
    await again.flush();
    assert.equal(again.pending, 0);
    const sent = api.seen.filter((s) => s.url === '/v1/alerts' && s.auth).at(-1)?.body as { source: { value: string } }[];
    assert.deepEqual(sent.map((a) => a.source.value), ['203.0.113.9', '203.0.113.10']);
    await again.close();
    await api.close();
  });

  it('the queue is bounded: the oldest alerts go first', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-pub-'));
    const ev = events();
    // Nothing listens there: every push fails.
    const p = new Publisher({ client: new LapiClient({ url: 'http://127.0.0.1:9', timeoutMs: 1000, userAgent: 't' }), machineId: 'gw1', password: 'pw', stateDir: dir, log: ev.log, intervalMs: 1000 });
    await p.close();
    for (let i = 0; i <= MAX_PENDING; i++) p.enqueue(block(`10.${i >> 8}.${i & 255}.1`), finding, meta);
    assert.equal(p.pending, MAX_PENDING);
    assert.equal(p.status().dropped, 1);
    assert.deepEqual(ev.list.find(([t]) => t === 'crowdsec_push_dropped')?.[1].values, ['10.0.0.1']);
  });
});

describe('the pull loop against a failing Local API', async () => {
  const { createServer } = await import('node:http');
  const { CrowdSecLink } = await import('../../src/crowdsec/link');
  const { LapiClient } = await import('../../src/crowdsec/lapi-client');

  it('garbage, errors and silence are one outage, logged once; back, a full resync lifts and adds without doubling', async () => {
    const wire = (id: number, value: string, duration = '59m') => ({ duration, id, origin: 'cscli', scenario: 'manual', scope: 'Ip', type: 'ban', value });
    let mode: 'ok' | 'garbage' | 'error' | 'silent' = 'ok';
    let current: unknown[] = [wire(1, '192.0.2.1'), wire(2, '192.0.2.2')];
    const asked: string[] = [];
    const server = createServer((req, res) => {
      asked.push(`${mode} ${req.url ?? ''} ${String(req.headers['x-api-key'])}`);
      if (mode === 'silent') return; // never answers
      if (mode === 'garbage') return void res.writeHead(200).end('<html>proxy error</html>');
      if (mode === 'error') return void res.writeHead(500, { 'Content-Type': 'application/json' }).end('{"message":"database is locked"}');
      const startup = (req.url ?? '').includes('startup=true');
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ new: startup ? current : null, deleted: null }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-link-'));
    const fake = path.join(dir, 'ipset');
    const calls = path.join(dir, 'calls');
    writeFileSync(fake, `#!/bin/sh\ncat >> ${calls}\n`);
    chmodSync(fake, 0o755);
    writeFileSync(calls, '');
    const events: [string, Record<string, unknown>][] = [];
    const log = { event: (type: string, fields: Record<string, unknown> = {}) => void events.push([type, fields]) };
    const blocks = new BlockManager({ policy: { ttlSeconds: 600, maxTtlSeconds: 86_400, maxBlocks: 100 }, allowlist: new Allowlist([], [], () => []), saved: { blocks: [], offences: [] }, stateFile: path.join(dir, 'blocks.json'), setPrefix: 'nfips', families: ['ipv4'], bins: { iptables: 'iptables', ip6tables: 'ip6tables', ipset: fake }, log });
    const link = new CrowdSecLink({ client: new LapiClient({ url, timeoutMs: 300, userAgent: 't/1' }), url, apiKey: 'K', intervalMs: 1000, blocks, log, publisher: null });
    const keys = () => blocks.inForce().map((b) => b.key).sort();
    const count = (type: string) => events.filter(([t]) => t === type).length;

    await link.pull();
    assert.deepEqual(keys(), ['192.0.2.1', '192.0.2.2']);
    assert.equal(link.state, 'connected');
    for (const m of ['garbage', 'error', 'silent', 'garbage'] as const) {
      mode = m;
      await link.pull();
      assert.equal(link.state, 'unreachable', m);
    }
    assert.equal(count('crowdsec_unreachable'), 1, 'once per outage');
    assert.match(String(events.find(([t]) => t === 'crowdsec_unreachable')?.[1].error), /not JSON/);
    assert.match(String(link.status().last_error), /not JSON/);
    assert.deepEqual(keys(), ['192.0.2.1', '192.0.2.2'], 'blocks stay in force during the outage');
    // Meanwhile 192.0.2.1 was deleted and 192.0.2.3 added at the Local API.
    current = [wire(2, '192.0.2.2'), wire(3, '192.0.2.3')];
    mode = 'ok';
    await link.pull();
    assert.equal(count('crowdsec_restored'), 1);
    assert.match(asked.at(-1) ?? '', /^ok \/v1\/decisions\/stream\?startup=true&dedup=false K$/, 'a full answer after the outage, every decision per IP');
    assert.deepEqual(keys(), ['192.0.2.2', '192.0.2.3']);
    const pull = events.filter(([t]) => t === 'crowdsec_pull').at(-1)?.[1];
    assert.deepEqual([pull?.added, pull?.removed, pull?.updated], [1, 1, 0], 'nothing doubled');
    assert.equal(readFileSync(calls, 'utf8').split('\n').filter((l) => l.includes('192.0.2.2')).length, 1, '192.0.2.2 went to the kernel once');
    await link.pull();
    assert.match(asked.at(-1) ?? '', /startup=false/);
    await link.close();
    await blocks.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
});

describe('review fixes: what the link trusts and sends', async () => {
  const { createServer } = await import('node:http');
  type Handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, body: string) => void;
  const { CrowdSecLink } = await import('../../src/crowdsec/link');
  const { LapiClient } = await import('../../src/crowdsec/lapi-client');
  const { Publisher } = await import('../../src/crowdsec/publisher');
  const { parseGoDuration: goDuration } = await import('../../src/crowdsec/go-duration');
  const wire = (id: number, value: string, over: Record<string, unknown> = {}) => ({ duration: '59m', id, origin: 'cscli', scenario: 'manual', scope: 'Ip', type: 'ban', value, ...over });

  async function server(handle: Handler) {
    const seen: string[] = [];
    const s = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push(`${req.method ?? ''} ${req.url ?? ''} ${String(req.headers['x-api-key'] ?? req.headers.authorization ?? '')}`);
        handle(req, res, body);
      });
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(s.address() as { port: number }).port}`;
    return {
      url,
      seen,
      close: () => {
        s.closeAllConnections();
        return new Promise<void>((r) => s.close(() => r()));
      },
    };
  }
  const json = (res: import('node:http').ServerResponse, code: number, doc: unknown) => void res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(doc));

  /** A block manager on a fake ipset, a link (and a publisher when asked) on `url`. */
  function rig(url: string, o: { publisher?: boolean; timeoutMs?: number; saved?: ReturnType<typeof readBlockState>; allow?: string[]; maxExternal?: number } = {}) {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-rev-'));
    const fake = path.join(dir, 'ipset');
    writeFileSync(fake, '#!/bin/sh\ncat >/dev/null\n');
    chmodSync(fake, 0o755);
    const events: [string, Record<string, unknown>][] = [];
    const log = { event: (type: string, fields: Record<string, unknown> = {}) => void events.push([type, fields]) };
    const blocks = new BlockManager({ policy: { ttlSeconds: 600, maxTtlSeconds: 86_400, maxBlocks: 100, ...(o.maxExternal === undefined ? {} : { maxExternal: o.maxExternal }) }, allowlist: new Allowlist(o.allow ?? [], [], () => []), saved: o.saved ?? { blocks: [], offences: [] }, stateFile: path.join(dir, 'blocks.json'), setPrefix: 'nfips', families: ['ipv4'], bins: { iptables: 'iptables', ip6tables: 'ip6tables', ipset: fake }, log });
    const client = new LapiClient({ url, timeoutMs: o.timeoutMs ?? 2000, userAgent: 't/1' });
    const publisher = o.publisher ? new Publisher({ client, machineId: 'gw1', password: 'pw', stateDir: dir, log, intervalMs: 1000, refusalChecker: () => blocks.refusalChecker() }) : null;
    const link = new CrowdSecLink({ client, url, apiKey: 'K', intervalMs: 1000, blocks, log, publisher });
    const keys = () => blocks.inForce().map((b) => b.key).sort();
    const close = async () => {
      await link.close();
      await publisher?.close();
      await blocks.close();
    };
    return { dir, events, blocks, link, publisher, keys, close };
  }

  it('parseStreamAnswer: both keys must be there; one unreadable entry is set aside, a non-object is an error', () => {
    assert.throws(() => parseStreamAnswer({ status: 'ok' }), /no "new" key/);
    assert.throws(() => parseStreamAnswer({ new: null }), /no "deleted" key/);
    assert.throws(() => parseStreamAnswer('ok'), /not a JSON object/);
    const a = parseStreamAnswer({ new: [{ id: 'x' }, wire(2, '192.0.2.2')], deleted: [7] });
    assert.deepEqual(a.new.map((d) => d.id), [2]);
    assert.deepEqual(a.deleted, []);
    assert.deepEqual(a.malformed?.map((m) => m.where), ['new[0]', 'deleted[0]']);
  });

  it('a 200 that is not a decision stream is an outage: blocks stay, the state is unreachable', async () => {
    let answer: unknown = { new: [wire(1, '192.0.2.1')], deleted: null };
    const api = await server((_req, res) => json(res, 200, answer));
    const r = rig(api.url);
    await r.link.pull();
    assert.deepEqual(r.keys(), ['192.0.2.1']);
    answer = { status: 'ok' };
    await r.link.pull();
    assert.equal(r.link.state, 'unreachable');
    assert.deepEqual(r.keys(), ['192.0.2.1'], 'not lifted');
    assert.match(String(r.link.status().last_error), /no "new" key/);
    // Back, with one garbled entry among good ones: the good ones apply, the bad one is logged.
    answer = { new: [{ id: 3, value: '192.0.2.3' }, wire(1, '192.0.2.1'), wire(4, '192.0.2.4')], deleted: null };
    await r.link.pull();
    assert.equal(r.link.state, 'connected');
    assert.deepEqual(r.keys(), ['192.0.2.1', '192.0.2.4']);
    const skipped = r.events.filter(([t]) => t === 'crowdsec_decision_skipped');
    assert.deepEqual(skipped.map(([, f]) => f.entry), ['new[0]']);
    await r.close();
    await api.close();
  });

  it('follows no redirect: the bouncer key never reaches another host', async () => {
    const other = await server((_req, res) => json(res, 200, { new: [wire(1, '192.0.2.1')], deleted: null }));
    const api = await server((req, res) => void res.writeHead(302, { Location: `${other.url}${req.url ?? ''}` }).end());
    const r = rig(api.url);
    await r.link.pull();
    assert.equal(api.seen.length, 1);
    assert.deepEqual(other.seen, [], 'the other host was never asked');
    assert.equal(r.link.state, 'unreachable');
    assert.deepEqual(r.keys(), []);
    await r.close();
    await api.close();
    await other.close();
  });
  it('blocks del of a CrowdSec block refuses while its decision ids are unknown, and says which ids a partial delete removed', async () => {
    const now = Date.now();
    const restored = { ...makeTarget('192.0.2.9'), key: '192.0.2.9', origin: 'crowdsec' as const, reason: 'crowdsec: manual', scenario: 'manual', createdAt: now, expiresAt: now + 3_600_000, ttlSeconds: 3600, offence: 1 };
    const api = await server((req, res) => {
      if (req.url === '/v1/watchers/login') return json(res, 200, { token: 't', expire: new Date(Date.now() + 3_600_000).toISOString() });
      if (req.url?.startsWith('/v1/decisions/stream')) return json(res, 200, { new: [wire(5, '192.0.2.9'), wire(6, '192.0.2.9', { scenario: 'other' })], deleted: null });
      if (req.method === 'DELETE') return req.url === '/v1/decisions/6' ? json(res, 500, { message: 'database is locked' }) : json(res, 200, { nbDeleted: '1' });
      json(res, 404, { message: 'no route' });
    });
    const r = rig(api.url, { publisher: true, saved: { blocks: [restored], offences: [] } });
    await assert.rejects(r.link.deleteBlock('192.0.2.9', 'manual'), /id is not known yet.*cscli decisions delete --ip 192\.0\.2\.9/);
    assert.deepEqual(r.keys(), ['192.0.2.9'], 'the block stays');
    assert.equal(api.seen.filter((l) => l.startsWith('DELETE')).length, 0, 'nothing was claimed deleted');
    await r.link.pull();
    await assert.rejects(r.link.deleteBlock('192.0.2.9', 'manual'), /decision 5 deleted, decision 6 not deleted; the block stays/);
    assert.deepEqual(r.keys(), ['192.0.2.9']);
    assert.deepEqual(api.seen.filter((l) => l.startsWith('DELETE')).map((l) => l.split(' ')[1]), ['/v1/decisions/5', '/v1/decisions/6']);
    await r.close();
    await api.close();
  });

  it("blocks del of a decision the Local API no longer has (1.4.x: 500 \"doesn't exist\"; 404) counts it as deleted", async () => {
    const api = await server((req, res) => {
      if (req.url === '/v1/watchers/login') return json(res, 200, { token: 't', expire: new Date(Date.now() + 3_600_000).toISOString() });
      if (req.url?.startsWith('/v1/decisions/stream')) return json(res, 200, { new: [wire(5, '192.0.2.9'), wire(6, '192.0.2.9', { scenario: 'other' })], deleted: null });
      if (req.method === 'DELETE') return req.url === '/v1/decisions/5' ? json(res, 500, { message: "decision with id '5' doesn't exist" }) : json(res, 404, { message: 'not found' });
      json(res, 404, { message: 'no route' });
    });
    const r = rig(api.url, { publisher: true });
    await r.link.pull();
    assert.deepEqual(r.keys(), ['192.0.2.9']);
    await r.link.deleteBlock('192.0.2.9', 'manual');
    assert.deepEqual(r.keys(), [], 'the block is lifted');
    assert.deepEqual(api.seen.filter((l) => l.startsWith('DELETE')).map((l) => l.split(' ')[1]), ['/v1/decisions/5', '/v1/decisions/6']);
    await r.close();
    await api.close();
  });

  it('close() aborts requests to a Local API that never answers (pull, push and delete), and applies nothing after', { timeout: 60_000 }, async () => {
    let hang = false;
    const aborted: string[] = [];
    const api = await server((req, res) => {
      if (hang) return void res.on('close', () => aborted.push(req.url ?? ''));
      if (req.url === '/v1/watchers/login') return json(res, 200, { token: 't', expire: new Date(Date.now() + 3_600_000).toISOString() });
      if (req.url?.startsWith('/v1/decisions/stream')) return json(res, 200, { new: [wire(5, '192.0.2.9')], deleted: null });
      json(res, 404, { message: 'no route' });
    });
    // A request deadline far beyond any test timeout: only the abort can end these requests.
    const r = rig(api.url, { publisher: true, timeoutMs: 3_600_000 });
    await r.link.pull();
    hang = true;
    const pull = r.link.pull();
    const del = r.link.deleteBlock('192.0.2.9', 'manual').catch((e: Error) => e.message);
    const n = api.seen.length;
    while (api.seen.length < n + 2) await new Promise((res) => setTimeout(res, 10));
    await r.link.close();
    await r.publisher?.close();
    await pull;
    assert.match(String(await del), /shutting down/);
    assert.equal(r.link.state, 'connected', 'a stopped pull is not an outage');
    assert.equal(r.events.filter(([t]) => t === 'crowdsec_unreachable').length, 0);
    await r.blocks.close();
    await api.close();
  });

  it('the pull loop survives a throw while applying and retries', { timeout: 60_000 }, async () => {
    const api = await server((_req, res) => json(res, 200, { new: [wire(1, '192.0.2.1')], deleted: null }));
    const events: [string, Record<string, unknown>][] = [];
    const log = { event: (type: string, fields: Record<string, unknown> = {}) => void events.push([type, fields]) };
    let calls = 0;
    let second: () => void = () => undefined;
    const secondCall = new Promise<void>((res) => (second = res));
    const blocks = {
      inForce: () => [],
      get: () => undefined,
      externalRoom: 100,
      ownAddressesKey: () => '',
      applyExternal: () => {
        if (++calls === 1) throw new Error('ipset exploded');
        second();
        return Promise.resolve({ added: 1, updated: 0, removed: 0, refused: 0 });
      },
    } as unknown as BlockManager;
    const link = new CrowdSecLink({ client: new LapiClient({ url: api.url, timeoutMs: 2000, userAgent: 't/1' }), url: api.url, apiKey: 'K', intervalMs: 1000, blocks, log, publisher: null });
    link.start();
    await secondCall;
    assert.equal(calls, 2);
    assert.match(String(events.find(([t]) => t === 'crowdsec_apply_failed')?.[1].error), /ipset exploded/);
    assert.equal(events.filter(([t]) => t === 'crowdsec_unreachable').length, 0, 'the Local API answered: not an outage');
    await link.close();
    await api.close();
  });
  it('a block is known as own from the moment it is queued, before the POST answers (and from the queue file)', async () => {
    const api = await server((_req, res) => json(res, 503, { message: 'down' }));
    const r = rig(api.url, { publisher: true });
    const p = r.publisher;
    assert.ok(p);
    const now = Date.now();
    const b = { ...makeTarget('203.0.113.9'), key: '203.0.113.9 tcp:80', origin: 'anomaly' as const, reason: 'nfips: x', createdAt: now, expiresAt: now + 600_000, ttlSeconds: 600, offence: 1 };
    p.enqueue(b, { exceeded: [] }, { signatureId: 1, signature: 'failed TCP connections', episode: 1, episodeOpened: now });
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(path.join(r.dir, 'crowdsec-queue.json')), false, 'enqueue does not write the file in the caller\'s turn');
    const mine = { id: 9, origin: 'nfips', scenario: 'nfips/failed-tcp-connections@gw1', scope: 'Ip', type: 'ban', value: '203.0.113.9', remainingMs: 500_000 };
    assert.equal(p.isOwn(mine), true, 'before any answer to the POST');
    await r.close();
    const again = new Publisher({ client: new LapiClient({ url: api.url, timeoutMs: 2000, userAgent: 't/1' }), machineId: 'gw1', password: 'pw', stateDir: r.dir, log: { event: () => undefined }, intervalMs: 1000 });
    assert.equal(again.isOwn(mine), true, 'persisted');
    await again.close();
    await api.close();
  });
  it('a live decision whose block left the table comes back at the next pull, not only at a full one', async () => {
    let startupDone = false;
    const api = await server((req, res) => {
      const startup = (req.url ?? '').includes('startup=true');
      if (startup) startupDone = true;
      json(res, 200, { new: startup ? [wire(1, '192.0.2.1')] : null, deleted: null });
    });
    const r = rig(api.url);
    await r.link.pull();
    assert.ok(startupDone);
    assert.deepEqual(r.keys(), ['192.0.2.1']);
    await r.blocks.remove('192.0.2.1', 'manual');
    assert.deepEqual(r.keys(), []);
    await r.link.pull();
    assert.match(api.seen.at(-1) ?? '', /startup=false/);
    assert.deepEqual(r.keys(), ['192.0.2.1'], 're-applied from the decisions known');
    await r.close();
    await api.close();
  });
  it('CrowdSec blocks have their own cap: a full blocklist leaves local blocks their room, and the reverse', async () => {
    const { BlockTable } = await import('../../src/blocks/table');
    const t = new BlockTable({ ttlSeconds: 600, maxTtlSeconds: 86_400, maxBlocks: 2, maxExternal: 3 });
    const now = Date.now();
    const cs = (ip: string) => t.add(makeTarget(ip, 'source'), { origin: 'crowdsec', reason: 'crowdsec: x', ttlSeconds: 60, scenario: 'x' }, now).kind;
    const local = (ip: string) => t.add(makeTarget(ip, 'source'), { origin: 'manual', reason: 'm', ttlSeconds: 60 }, now).kind;
    assert.deepEqual(['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'].map(cs), ['added', 'added', 'added', 'refused']);
    assert.deepEqual(['198.51.100.1', '198.51.100.2', '198.51.100.3'].map(local), ['added', 'added', 'refused']);
    assert.equal(cs('192.0.2.1'), 'added', 'a decision already in force is renewed, not counted twice');
    // A local block replacing a CrowdSec one on the same network moves it to the local pool.
    t.remove('198.51.100.2');
    assert.equal(local('192.0.2.3'), 'added');
    assert.equal(cs('192.0.2.4'), 'added', 'the CrowdSec pool got its place back');
    const refused = t.add(makeTarget('192.0.2.5', 'source'), { origin: 'crowdsec', reason: 'crowdsec: x', ttlSeconds: 60, scenario: 'x' }, now);
    assert.match(refused.kind === 'refused' ? refused.reason : '', /--crowdsec-max-decisions/);
  });
  it('queue file: one bad alert is dropped alone (file and JSON pointer logged), the others are kept and sent', async () => {
    const api = await server((req, res) => {
      if (req.url === '/v1/watchers/login') return json(res, 200, { token: 't', expire: new Date(Date.now() + 3_600_000).toISOString() });
      if (req.url === '/v1/alerts') return json(res, 201, ['1']);
      json(res, 404, { message: 'no route' });
    });
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-q-'));
    const file = path.join(dir, 'crowdsec-queue.json');
    const now = Date.now();
    const alert = (value: string) => ({ value, scenario: 'nfips/x', until: now + 600_000, at: now, key: value, signature: 'x', signatureId: 1, episode: 1, evidence: ['e'] });
    writeFileSync(file, JSON.stringify({ format: 'nfips-crowdsec-queue', version: 1, pending: [alert('203.0.113.1'), alert('not-an-ip'), { ...alert('203.0.113.3'), until: 'soon' }, alert('203.0.113.4')], published: [['203.0.113.1 nfips/x@gw1', 'garbage']] }));
    const events: [string, Record<string, unknown>][] = [];
    const log = { event: (type: string, fields: Record<string, unknown> = {}) => void events.push([type, fields]) };
    const p = new Publisher({ client: new LapiClient({ url: api.url, timeoutMs: 2000, userAgent: 't/1' }), machineId: 'gw1', password: 'pw', stateDir: dir, log, intervalMs: 1000 });
    assert.equal(p.pending, 2, 'the two good alerts are kept');
    assert.equal(events.filter(([t]) => t === 'crowdsec_queue_unreadable').length, 0, 'the file is not set aside');
    const dropped = events.find(([t]) => t === 'crowdsec_queue_entries_dropped')?.[1];
    assert.equal(dropped?.file, file);
    assert.equal(dropped?.count, 2);
    assert.deepEqual((dropped?.entries as { path: string }[]).map((e) => e.path), ['/pending/1', '/pending/2']);
    assert.match(JSON.stringify(dropped?.entries), /\/pending\/1\/value.*\/pending\/2\/until: expected an integer/);
    await p.flush();
    const sent = api.seen.filter((l) => l.startsWith('POST /v1/alerts'));
    assert.equal(sent.length, 1);
    assert.equal(p.pending, 0);
    await p.close();
    await api.close();
  });

  it('own decisions are told by origin and scenario alone: a lost queue file changes nothing', async () => {
    const { isOwnDecision } = await import('../../src/crowdsec/alert');
    const d = (origin: string, scenario: string) => ({ origin, scenario });
    assert.equal(isOwnDecision(d('nfips', 'nfips/port-scan@gw1'), 'gw1'), true);
    assert.equal(isOwnDecision(d('nfips', 'nfips/port-scan@gw2'), 'gw1'), false, 'another gateway');
    assert.equal(isOwnDecision(d('cscli', 'nfips/port-scan@gw1'), 'gw1'), false, 'another origin');
    assert.equal(isOwnDecision(d('nfips', 'nfips/x@a@gw1'), 'gw1'), false, 'machine "a@gw1"');
    assert.equal(isOwnDecision(d('nfips', 'other/x@gw1'), 'gw1'), false);
    // A fresh state directory (the file lost): the gateway's decisions coming back are still its own.
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-q-'));
    const p = new Publisher({ client: new LapiClient({ url: 'http://127.0.0.1:9', timeoutMs: 1000, userAgent: 't/1' }), machineId: 'gw1', password: 'pw', stateDir: dir, log: { event: () => undefined }, intervalMs: 1000 });
    assert.equal(p.isOwn({ id: 1, origin: 'nfips', scenario: 'nfips/failed-tcp-connections@gw1', scope: 'Ip', type: 'ban', value: '203.0.113.9', remainingMs: 60_000 }), true);
    await p.close();
  });

  it('queue file: one that is not a queue is set aside under a timestamped name, the last 3 kept', async () => {
    const { existsSync, readdirSync } = await import('node:fs');
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-q-'));
    const file = path.join(dir, 'crowdsec-queue.json');
    const events: [string, Record<string, unknown>][] = [];
    let clock = T0;
    const mk = () => new Publisher({ client: new LapiClient({ url: 'http://127.0.0.1:9', timeoutMs: 1000, userAgent: 't/1' }), machineId: 'gw1', password: 'pw', stateDir: dir, log: { event: (type: string, fields: Record<string, unknown> = {}) => void events.push([type, fields]) }, intervalMs: 1000, clock: () => clock });
    for (let i = 0; i < 5; i++) {
      writeFileSync(file, JSON.stringify({ format: 'nfips-crowdsec-queue', version: 1, pending: `damaged ${i}` }));
      clock += 1000;
      const p = mk();
      assert.equal(p.pending, 0);
      const e = events.filter(([t]) => t === 'crowdsec_queue_unreadable').at(-1)?.[1];
      assert.equal(e?.path, '/pending');
      assert.ok(existsSync(String(e?.set_aside)), 'set aside');
    }
    const aside = readdirSync(dir).filter((n) => n.startsWith('crowdsec-queue.json.bad')).sort();
    assert.equal(aside.length, 3, 'the newest 3 kept');
    assert.deepEqual(aside.map((n) => readFileSync(path.join(dir, n), 'utf8')), [2, 3, 4].map((i) => JSON.stringify({ format: 'nfips-crowdsec-queue', version: 1, pending: `damaged ${i}` })), 'none overwritten: the last three');
  });

  it('a refused value is not published; the refusal rules are built once per flush pass, not once per alert', async () => {
    const api = await server((req, res) => {
      if (req.url === '/v1/watchers/login') return json(res, 200, { token: 't', expire: new Date(Date.now() + 3_600_000).toISOString() });
      if (req.url === '/v1/alerts') return json(res, 201, ['1']);
      json(res, 404, { message: 'no route' });
    });
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-q-'));
    let interfaceReads = 0;
    const allowlist = new Allowlist([], [], () => {
      interfaceReads++;
      return ['192.0.2.66'];
    });
    const blocks = new BlockManager({ policy: { ttlSeconds: 600, maxTtlSeconds: 86_400, maxBlocks: 100 }, allowlist, saved: { blocks: [], offences: [] }, stateFile: path.join(dir, 'blocks.json'), setPrefix: 'nfips', families: ['ipv4'], bins: { iptables: 'iptables', ip6tables: 'ip6tables', ipset: '/bin/true' }, log: { event: () => undefined } });
    const events: [string, Record<string, unknown>][] = [];
    const p = new Publisher({ client: new LapiClient({ url: api.url, timeoutMs: 2000, userAgent: 't/1' }), machineId: 'gw1', password: 'pw', stateDir: dir, log: { event: (type: string, fields: Record<string, unknown> = {}) => void events.push([type, fields]) }, intervalMs: 1000, refusalChecker: () => blocks.refusalChecker() });
    const now = Date.now();
    const b = (net: string) => ({ ...makeTarget(net), key: net, origin: 'anomaly' as const, reason: 'nfips: x', createdAt: now, expiresAt: now + 600_000, ttlSeconds: 600, offence: 1 });
    for (const net of ['192.0.2.66', '203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4', '203.0.113.5']) p.enqueue(b(net), { exceeded: [] }, { signatureId: 1, signature: 'x', episode: 1, episodeOpened: now });
    interfaceReads = 0;
    await p.flush();
    assert.equal(p.pending, 0);
    assert.match(String(events.find(([t, f]) => t === 'crowdsec_push_dropped' && String(f.reason).includes('own address'))?.[1].values), /192\.0\.2\.66/);
    assert.equal(api.seen.filter((l) => l.startsWith('POST /v1/alerts')).length, 1);
    assert.ok(interfaceReads >= 1 && interfaceReads <= 2, `one interface read per pass over the queue, not per alert (got ${interfaceReads} for 6 alerts)`);
    await p.close();
    await blocks.close();
    await api.close();
  });

  it('a block queued while its entry is being posted is kept as its own entry, with its longer end', async () => {
    let release: () => void = () => undefined;
    let posted: () => void = () => undefined;
    const postSeen = new Promise<void>((r) => (posted = r));
    const bodies: { decisions: { duration: string }[] }[][] = [];
    const api = await server((req, res, body) => {
      if (req.url === '/v1/watchers/login') return json(res, 200, { token: 't', expire: new Date(Date.now() + 3_600_000).toISOString() });
      if (req.url === '/v1/alerts') {
        bodies.push(JSON.parse(body) as { decisions: { duration: string }[] }[]);
        if (bodies.length === 1) {
          release = () => json(res, 201, ['1']);
          return posted();
        }
        return json(res, 201, ['2']);
      }
      json(res, 404, { message: 'no route' });
    });
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-q-'));
    const p = new Publisher({ client: new LapiClient({ url: api.url, timeoutMs: 5000, userAgent: 't/1' }), machineId: 'gw1', password: 'pw', stateDir: dir, log: { event: () => undefined }, intervalMs: 1000 });
    const now = Date.now();
    const b = (key: string, ms: number) => ({ ...makeTarget('203.0.113.9'), key, origin: 'anomaly' as const, reason: 'nfips: x', createdAt: now, expiresAt: now + ms, ttlSeconds: ms / 1000, offence: 1 });
    const m = { signatureId: 1, signature: 'x', episode: 1, episodeOpened: now };
    p.enqueue(b('203.0.113.9 tcp', 600_000), { exceeded: [] }, m);
    const first = p.flush();
    await postSeen;
    // The same source and scenario again, for longer, while the first POST is unanswered.
    p.enqueue(b('203.0.113.9 icmp', 3_600_000), { exceeded: [] }, m);
    release();
    await first;
    assert.equal(bodies.length, 2, 'the later block is posted after the first POST answered, not dropped with it');
    assert.ok(goDuration(bodies[1]?.[0]?.decisions[0]?.duration ?? '') > 3_500_000, 'posted with its own, longer end');
    assert.equal(p.pending, 0);
    await p.close();
    await api.close();
  });

  it('refusals: an allowlisted decision is refused and logged once, never retried when other blocks come and go', async () => {
    let current = [wire(1, '192.0.2.5'), wire(2, '198.51.100.1')];
    let deleted: unknown[] = [];
    // As 1.4.6: a startup answer names every live decision, a later one what changed.
    const api = await server((req, res) => json(res, 200, { new: (req.url ?? '').includes('startup=true') ? current : null, deleted }));
    const r = rig(api.url, { allow: ['192.0.2.0/24'] });
    await r.blocks.addManual({ net: '203.0.113.7', ttl_seconds: 60 });
    await r.link.pull();
    assert.deepEqual(r.keys(), ['198.51.100.1', '203.0.113.7']);
    const refusals = () => r.events.filter(([t]) => t === 'block_refused').length;
    assert.equal(refusals(), 1);
    // Blocks come and go (a manual one lifted, a decision deleted): the table shrinks, the allowlist does not change.
    await r.blocks.remove('203.0.113.7', 'manual');
    await r.link.pull();
    deleted = [wire(2, '198.51.100.1')];
    await r.link.pull();
    assert.deepEqual(r.keys(), []);
    deleted = [];
    await r.link.pull();
    await r.link.pull();
    assert.equal(refusals(), 1, 'logged once, not at every pull');
    assert.equal(r.link.status().refused, 1);
    await r.close();
    await api.close();
  });

  it('refusals: a decision over --crowdsec-max-decisions waits until a CrowdSec block ends, not until any block does', async () => {
    let current = [wire(1, '192.0.2.1'), wire(2, '192.0.2.2')];
    let deleted: unknown[] = [];
    const api = await server((_req, res) => json(res, 200, { new: current, deleted }));
    const r = rig(api.url, { maxExternal: 1 });
    await r.blocks.addManual({ net: '203.0.113.7', ttl_seconds: 600 });
    await r.link.pull();
    assert.deepEqual(r.keys(), ['192.0.2.1', '203.0.113.7']);
    const refusals = () => r.events.filter(([t]) => t === 'block_refused').length;
    assert.equal(refusals(), 1);
    current = [];
    // A local block lifted: more blocks fit, but not more CrowdSec ones.
    await r.blocks.remove('203.0.113.7', 'manual');
    await r.link.pull();
    await r.link.pull();
    assert.equal(refusals(), 1, 'not retried (nor logged again) while the CrowdSec pool is full');
    // The CrowdSec block ends: the waiting decision takes its place at that pull.
    deleted = [wire(1, '192.0.2.1')];
    await r.link.pull();
    assert.deepEqual(r.keys(), ['192.0.2.2']);
    assert.equal(refusals(), 1);
    assert.equal(r.link.status().decisions_reapplied, 1, 'counted apart from decisions applied');
    assert.equal(r.link.status().decisions_applied, 1);
    await r.close();
    await api.close();
  });

  it('blocks del: a block the sweep ended between the lookup and the removal is reported as already expired', async () => {
    const api = await server((_req, res) => json(res, 200, { new: null, deleted: null }));
    const now = Date.now();
    const gone = { ...makeTarget('192.0.2.9'), key: '192.0.2.9', origin: 'manual' as const, reason: 'm', createdAt: now - 60_000, expiresAt: now, ttlSeconds: 60, offence: 0 };
    let present = true;
    const blocks = {
      get: () => (present ? gone : undefined),
      remove: () => {
        // The sweep got there first.
        present = false;
        return Promise.reject(new Error('no block "192.0.2.9"; see "nfips blocks list"'));
      },
    } as unknown as BlockManager;
    const link = new CrowdSecLink({ client: new LapiClient({ url: api.url, timeoutMs: 2000, userAgent: 't/1' }), url: api.url, apiKey: 'K', intervalMs: 1000, blocks, log: { event: () => undefined }, publisher: null });
    const out = await link.deleteBlock('192.0.2.9', 'manual');
    assert.equal(out.key, '192.0.2.9');
    assert.equal((out as { note?: string }).note, 'already expired');
    await link.close();
    await api.close();
  });

  it('a throw while applying a pull is crowdsec_apply_failed, not an outage, and the next pull resynchronises', async () => {
    const api = await server((_req, res) => json(res, 200, { new: [wire(1, '192.0.2.1')], deleted: null }));
    const r = rig(api.url);
    const real = r.blocks.applyExternal.bind(r.blocks);
    let fail = true;
    r.blocks.applyExternal = (...a: Parameters<BlockManager['applyExternal']>) => (fail ? Promise.reject(new Error('ipset exploded')) : real(...a));
    await r.link.pull();
    assert.equal(r.events.filter(([t]) => t === 'crowdsec_unreachable').length, 0);
    assert.match(String(r.events.find(([t]) => t === 'crowdsec_apply_failed')?.[1].error), /ipset exploded/);
    assert.notEqual(r.link.state, 'unreachable');
    fail = false;
    await r.link.pull();
    assert.match(api.seen.at(-1) ?? '', /startup=true/, 'a full answer after a failed apply');
    assert.deepEqual(r.keys(), ['192.0.2.1']);
    assert.equal(r.link.state, 'connected');
    await r.close();
    await api.close();
  });

  it('blocks del of a published anomaly block deletes its decision at the Local API too', async () => {
    const own = (id: number) => wire(id, '203.0.113.9', { origin: 'nfips', scenario: 'nfips/x@gw1' });
    const api = await server((req, res) => {
      if (req.url === '/v1/watchers/login') return json(res, 200, { token: 't', expire: new Date(Date.now() + 3_600_000).toISOString() });
      if (req.url?.startsWith('/v1/decisions/stream')) return json(res, 200, { new: [own(42)], deleted: null });
      if (req.method === 'DELETE') return json(res, 200, { nbDeleted: '1' });
      json(res, 404, { message: 'no route' });
    });
    const r = rig(api.url, { publisher: true });
    await r.blocks.addManual({ net: '198.51.100.1', ttl_seconds: 60 });
    const now = Date.now();
    const anomaly = { ...makeTarget('203.0.113.9'), key: '203.0.113.9', origin: 'anomaly' as const, reason: 'nfips: x', createdAt: now, expiresAt: now + 600_000, ttlSeconds: 600, offence: 1 };
    const get = r.blocks.get.bind(r.blocks);
    const remove = r.blocks.remove.bind(r.blocks);
    let present = true;
    r.blocks.get = (k: string) => (k === anomaly.key ? (present ? anomaly : undefined) : get(k));
    r.blocks.remove = (k: string, why: string) => {
      if (k !== anomaly.key) return remove(k, why);
      present = false;
      return Promise.resolve(view(anomaly, Date.now()));
    };
    await r.link.pull();
    assert.deepEqual(r.keys(), ['198.51.100.1'], 'an own decision is never applied here');
    const out = await r.link.deleteBlock('203.0.113.9', 'manual');
    assert.deepEqual(api.seen.filter((l) => l.startsWith('DELETE')).map((l) => l.split(' ')[1]), ['/v1/decisions/42']);
    assert.match(String((out as { note?: string }).note), /decision 42 deleted at the Local API/);
    assert.equal(present, false, 'lifted here too');
    await r.close();
    await api.close();
  });
});

describe('second review: own decisions deleted, lifts and blocks del', async () => {
  const { createServer } = await import('node:http');
  /** Closed after each test, passed or failed: a server left open would hold the run. */
  const open: (() => Promise<void>)[] = [];
  const once = (f: () => Promise<void>): (() => Promise<void>) => {
    let p: Promise<void> | null = null;
    return () => (p ??= f());
  };
  afterEach(async () => {
    for (const c of open.splice(0).reverse()) await c().catch(() => undefined);
  });
  const { CrowdSecLink } = await import('../../src/crowdsec/link');
  const { LapiClient } = await import('../../src/crowdsec/lapi-client');
  const { Publisher, QUEUE_FILE_NAME } = await import('../../src/crowdsec/publisher');
  const { targetKey } = await import('../../src/blocks/block');
  type Res = import('node:http').ServerResponse;
  const json = (res: Res, code: number, doc: unknown) => void res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(doc));
  const wire = (id: number, value: string, over: Record<string, unknown> = {}) => ({ duration: '59m', id, origin: 'cscli', scenario: 'manual', scope: 'Ip', type: 'ban', value, ...over });
  const own = (id: number, value: string, scenario: string, duration = '59m') => wire(id, value, { origin: 'nfips', scenario: `${scenario}@gw1`, duration });

  /** A Local API whose stream answers, alert and delete results the test sets as it goes. */
  async function lapi() {
    const st = {
      stream: (_startup: boolean): { new: unknown[] | null; deleted: unknown[] | null } | null => ({ new: null, deleted: null }),
      alerts: (_alerts: { source: { value: string } }[]): [number, unknown] => [503, { message: 'down' }],
      del: (_id: number): [number, unknown] => [200, { nbDeleted: '1' }],
      /** While set, answers to POST /v1/alerts wait for it (an alert held in flight). */
      hold: null as Promise<void> | null,
    };
    const seen: string[] = [];
    const posted: string[] = [];
    const srv = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
        if (req.url === '/v1/watchers/login') return json(res, 200, { token: 't', expire: new Date(Date.now() + 3_600_000).toISOString() });
        if (req.url?.startsWith('/v1/decisions/stream')) {
          const a = st.stream(req.url.includes('startup=true'));
          return a ? json(res, 200, a) : json(res, 503, { message: 'down' });
        }
        if (req.url === '/v1/alerts') {
          void Promise.resolve(st.hold).then(() => {
            const alerts = JSON.parse(body) as { source: { value: string } }[];
            const [code, doc] = st.alerts(alerts);
            if (code < 300) posted.push(...alerts.map((a) => a.source.value));
            json(res, code, doc);
          });
          return;
        }
        if (req.method === 'DELETE') {
          const [code, doc] = st.del(Number(req.url?.split('/').at(-1)));
          return json(res, code, doc);
        }
        json(res, 404, { message: 'no route' });
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const close = once(() => {
      srv.closeAllConnections();
      return new Promise<void>((r) => srv.close(() => r()));
    });
    open.push(close);
    return {
      close,
      st,
      seen,
      posted,
      url: `http://127.0.0.1:${(srv.address() as { port: number }).port}`,
      deletes: () => seen.filter((l) => l.startsWith('DELETE')).map((l) => Number(l.split('/').at(-1))),
    };
  }

  /** An anomaly block as the block manager makes it (reason "nfips: <signature>"). */
  function anomaly(net: string, signature: string, createdAt: number, ttlMs = 3_600_000, proto?: 'tcp' | 'udp' | 'icmp', port?: number) {
    const t = makeTarget(net, port !== undefined ? 'service' : proto ? 'protocol' : 'source', proto, port);
    return { ...t, key: targetKey(t), origin: 'anomaly' as const, reason: `nfips: ${signature}`, createdAt, expiresAt: createdAt + ttlMs, ttlSeconds: Math.round(ttlMs / 1000), offence: 1 };
  }

  function rig(url: string, saved: ReturnType<typeof anomaly>[], queueDoc?: unknown, clock?: () => number, ownAddresses: () => string[] = () => []) {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-rev2-'));
    // What an earlier run left in the state directory.
    if (queueDoc !== undefined) writeFileSync(path.join(dir, QUEUE_FILE_NAME), JSON.stringify(queueDoc));
    const fake = path.join(dir, 'ipset');
    writeFileSync(fake, '#!/bin/sh\ncat >/dev/null\n');
    chmodSync(fake, 0o755);
    const events: [string, Record<string, unknown>][] = [];
    const log = { event: (type: string, fields: Record<string, unknown> = {}) => void events.push([type, fields]) };
    const blocks = new BlockManager({ policy: { ttlSeconds: 600, maxTtlSeconds: 86_400, maxBlocks: 100 }, allowlist: new Allowlist([], [], ownAddresses), saved: { blocks: saved, offences: [] }, stateFile: path.join(dir, 'blocks.json'), setPrefix: 'nfips', families: ['ipv4'], bins: { iptables: 'iptables', ip6tables: 'ip6tables', ipset: fake }, log });
    const client = new LapiClient({ url, timeoutMs: 2000, userAgent: 't/1' });
    const publisher = new Publisher({ client, machineId: 'gw1', password: 'pw', stateDir: dir, log, intervalMs: 60_000 });
    const link = new CrowdSecLink({ client, url, apiKey: 'K', intervalMs: 60_000, blocks, log, publisher, ...(clock ? { clock } : {}) });
    const keys = () => blocks.inForce().map((b) => `${b.key} ${b.origin}`).sort();
    const close = once(async () => {
      await link.close();
      await publisher.close();
      await blocks.close();
    });
    open.push(close);
    return { dir, events, blocks, link, publisher, keys, close };
  }
  const finding = { exceeded: [{ measure: 'tcp_failed' as const, scale: 'second' as const, value: 812, threshold: { value: 40, learnt: 10, margin: 4, floor: 40 } }] };
  const meta = (signature: string) => ({ signatureId: 9100101, signature, episode: 1, episodeOpened: 1 });
  /** What makes the block manager place a service block on X (tcp/port). */
  const serviceFinding = (ip: string, port: number) => ({ ip, exceeded: [{ measure: 'service_sessions' as const, service: `tcp/${port}`, scale: 'second' as const, value: 100, threshold: { value: 10, learnt: 1, margin: 3, floor: 10 } }], evProtos: 0, evTcp: 0, evUdp: 0 });

  it('a startup resync never lifts a block whose own decision is left out of the answer (the longest per IP only)', async () => {
    const api = await lapi();
    const X = '203.0.113.5';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 60_000, 600_000, 'tcp'), anomaly(X, 'udp flood', now - 30_000, 3_600_000, 'udp')]);
    api.st.stream = () => ({ new: [own(10, X, 'nfips/syn-scan', '9m'), own(11, X, 'nfips/udp-flood', '59m')], deleted: null });
    await r.link.pull();
    api.st.stream = () => null;
    await r.link.pull();
    assert.equal(r.link.state, 'unreachable');
    // Back: the answer names only 11, as 1.4.6 does without dedup=false.
    api.st.stream = () => ({ new: [own(11, X, 'nfips/udp-flood', '58m')], deleted: null });
    await r.link.pull();
    assert.equal(r.link.state, 'connected');
    assert.deepEqual(r.keys(), [`${X} tcp anomaly`, `${X} udp anomaly`], 'both blocks stay');
    assert.ok(api.seen.filter((l) => l.includes('/v1/decisions/stream')).every((l) => l.includes('dedup=false')), 'every pull asks for all decisions per IP');
    // 10 deleted while 11 lives on X: the other gateways still ban X, so nothing is lifted here either.
    api.st.stream = () => ({ new: null, deleted: [own(10, X, 'nfips/syn-scan', '-3s')] });
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${X} tcp anomaly`, `${X} udp anomaly`], 'no lift while an own decision lives on the network');
    await r.close();
    await api.close();
  });

  it("a deleted own decision lifts only its scenario's blocks placed before the deletion, withdraws its queued alerts, and a shadowed CrowdSec decision follows in the same pull", async () => {
    const api = await lapi();
    const X = '192.0.2.50';
    const Y = '192.0.2.60';
    const now = Date.now();
    const r = rig(api.url, [
      anomaly(X, 'syn scan', now - 120_000, 3_600_000, 'tcp'),
      anomaly(X, 'ping flood', now - 120_000, 3_600_000, 'icmp'),
      // Placed after the deletion (which cannot be before the first pull saw decision 30): the attacker came back.
      anomaly(X, 'syn scan', now + 1000, 3_600_000, 'udp'),
      anomaly(Y, 'syn scan', now - 120_000, 7_200_000),
    ]);
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '58m'), own(31, Y, 'nfips/syn-scan', '1h59m'), wire(20, Y)], deleted: null });
    await r.link.pull();
    assert.deepEqual(r.keys().filter((k) => k.startsWith(Y)), [`${Y} anomaly`], 'the longer anomaly block shadows decision 20');
    // Queued while the Local API refuses alerts: a re-block of the deleted scenario (before the deletion), and another scenario.
    r.publisher.enqueue(anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp'), finding, meta('syn scan'));
    r.publisher.enqueue(anomaly(X, 'ping flood', now - 60_000, 3_600_000, 'icmp'), finding, meta('ping flood'));
    await r.publisher.flush();
    assert.equal(r.publisher.pending, 2);
    // Both seen live before, both deleted long before their end.
    api.st.stream = () => ({ new: null, deleted: [own(30, X, 'nfips/syn-scan', '-5s'), own(31, Y, 'nfips/syn-scan', '-5s')] });
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${X} icmp anomaly`, `${X} udp anomaly`, `${Y} crowdsec`]);
    assert.equal(r.publisher.pending, 1, 'the queued syn scan alert is withdrawn');
    api.st.alerts = (alerts) => [201, alerts.map((_, i) => String(i + 1))];
    await r.publisher.flush();
    assert.deepEqual(api.posted, [X], 'one alert posted');
    const sent = JSON.parse(readFileSync(path.join(r.dir, QUEUE_FILE_NAME), 'utf8')) as { pending: unknown[]; published: unknown };
    assert.deepEqual([sent.pending, sent.published], [[], []], 'published: [] is still written, for an older nfips');
    assert.ok(r.events.some(([t, f]) => t === 'crowdsec_push_withdrawn' && f.scenario === 'nfips/syn-scan'));
    await r.close();
    await api.close();
  });

  it('after a restart, an own decision that expired is not taken for a deletion: a live block of its scenario and its queued alert stay', async () => {
    const api = await lapi();
    const X = '192.0.2.80';
    const now = Date.now();
    const b2 = anomaly(X, 'syn scan', now - 600_000, 7_200_000, 'tcp', 443);
    const alert = { value: X, scenario: 'nfips/syn-scan', until: b2.expiresAt, at: b2.createdAt, key: b2.key, signature: 'syn scan', signatureId: 9100101, episode: 2, evidence: ['x'] };
    // D30 (X tcp:80) was seen live by the previous run and ended on its own 2 min ago.
    const own30 = { id: 30, net: X, scenario: 'nfips/syn-scan', until: now - 120_000, seenAt: now - 900_000 };
    for (const remembered of [{ live: [own30], gone: [] }, undefined]) {
      const r = rig(api.url, [b2], { format: 'nfips-crowdsec-queue', version: 1, pending: [alert], published: [], ...(remembered ? { own: remembered } : {}) });
      api.st.stream = () => ({ new: null, deleted: [own(30, X, 'nfips/syn-scan', '-2m')] });
      await r.link.pull();
      assert.deepEqual(r.keys(), [`${X} tcp:443 anomaly`], remembered ? 'known to have expired' : 'unknown: never lifted on a startup answer');
      assert.equal(r.publisher.pending, 1, 'its alert is not withdrawn');
      assert.ok(!r.events.some(([t]) => t === 'crowdsec_push_withdrawn'));
      await r.close();
    }
    await api.close();
  });

  it('the own-decision memory is written to the queue file and read back; a bad entry is dropped alone', async () => {
    const api = await lapi();
    const X = '192.0.2.81';
    const r = rig(api.url, []);
    api.st.stream = () => ({ new: [own(41, X, 'nfips/syn-scan', '1h')], deleted: null });
    await r.link.pull();
    await r.close();
    const doc = JSON.parse(readFileSync(path.join(r.dir, QUEUE_FILE_NAME), 'utf8')) as { own: { live: { id: number; net: string }[]; gone: unknown[] } };
    assert.deepEqual(doc.own.live.map((o) => [o.id, o.net]), [[41, X]]);
    doc.own.live.push({ id: -1, net: 'nope' });
    writeFileSync(path.join(r.dir, QUEUE_FILE_NAME), JSON.stringify(doc));
    const load = readQueueFile(path.join(r.dir, QUEUE_FILE_NAME));
    assert.deepEqual(load?.doc.own?.live.map((o) => o.id), [41]);
    assert.deepEqual(load?.dropped.map((d) => d.path), ['/own/live/1']);
    await api.close();
  });

  it('4xx split: the batch grows back after a success; refusals in a row become a link failure that keeps the queue', async () => {
    const api = await lapi();
    const now = Date.now();
    const nets = Array.from({ length: 8 }, (_, i) => `192.0.2.${100 + i}`);
    const r = rig(api.url, []);
    const sizes: number[] = [];
    // Only the first alert is bad.
    api.st.alerts = (alerts) => (sizes.push(alerts.length), alerts.some((a) => a.source.value === nets[0]) ? [400, { message: 'bad alert' }] : [201, alerts.map((_, i) => String(i + 1))]);
    for (const n of nets) r.publisher.enqueue(anomaly(n, 'syn scan', now - 1000), finding, meta('syn scan'));
    await r.publisher.flush();
    assert.deepEqual(sizes, [8, 4, 2, 1, 1, 2, 4], 'halved down to the bad alert, then doubled back');
    assert.equal(r.publisher.pending, 0);
    // A server refusing everything: five alerts dropped one by one, then the rest kept and retried later.
    const s = rig(api.url, []);
    api.st.alerts = () => [422, { message: 'no' }];
    for (const n of nets) s.publisher.enqueue(anomaly(n, 'syn scan', now - 1000), finding, meta('syn scan'));
    await s.publisher.flush();
    assert.equal(s.publisher.pending, 3, 'the queue is kept after 5 refusals in a row');
    assert.equal(s.events.filter(([t]) => t === 'crowdsec_push_failed').length, 1, 'logged once');
    await r.close();
    await s.close();
    await api.close();
  });

  const accept = (alerts: unknown[]): [number, unknown] => [201, alerts.map((_, i) => String(i + 1))];
  async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
    for (const end = Date.now() + ms; !ok(); ) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Decision 30 on X seen live; a re-block's alert (placed before the
   * deletion) is in flight, held, when the pull shows 30 deleted. The Local
   * API accepts that POST or answers 503; land() lets it end.
   */
  async function deletedWhilePosting(X: string, accepted: boolean) {
    const api = await lapi();
    const clock = { t: Date.now() };
    const now = clock.t;
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp')], undefined, () => clock.t);
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    r.publisher.enqueue(anomaly(X, 'syn scan', now - 30_000, 3_600_000, 'tcp', 22), finding, meta('syn scan'));
    let release = (): void => undefined;
    api.st.hold = new Promise<void>((res) => (release = res));
    if (accepted) api.st.alerts = accept;
    const held = r.publisher.flush();
    assert.equal(r.publisher.queued(X, 'nfips/syn-scan').sending, true);
    api.st.stream = () => ({ new: null, deleted: [own(30, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    const land = async (): Promise<void> => {
      release();
      await held;
      api.st.hold = null;
    };
    return { api, r, clock, land };
  }

  it('an alert the Local API always refuses, at the head after refusals in a row, goes to the back: the alerts behind it still go', async () => {
    const api = await lapi();
    const now = Date.now();
    const bad = Array.from({ length: 6 }, (_, i) => `192.0.2.${120 + i}`);
    const good = ['192.0.2.130', '192.0.2.131'];
    const r = rig(api.url, []);
    api.st.alerts = (alerts) => (alerts.some((a) => bad.includes(a.source.value)) ? [400, { message: 'bad alert' }] : accept(alerts));
    for (const n of [...bad, ...good]) r.publisher.enqueue(anomaly(n, 'syn scan', now - 1000), finding, meta('syn scan'));
    for (let i = 0; i < 3 && r.publisher.pending; i++) await r.publisher.flush();
    assert.deepEqual(api.posted, good, 'not stuck behind the sixth bad alert');
    assert.equal(r.publisher.pending, 0, 'the sixth dropped alone once a POST went through');
    assert.equal(r.publisher.status().rejected, 6);
    await r.close();
    await api.close();
  });

  it('an alert posted between an operator deletion and the pull that shows it: its decision, in the same answer, is deleted again and the block lifted', async () => {
    const api = await lapi();
    const X = '192.0.2.93';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp')]);
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    // A re-block before the deletion, its alert sent after it.
    api.st.alerts = accept;
    r.publisher.enqueue(anomaly(X, 'syn scan', now - 30_000, 3_600_000, 'tcp', 22), finding, meta('syn scan'));
    await r.publisher.flush();
    assert.deepEqual(api.posted, [X]);
    api.st.stream = () => ({ new: [own(31, X, 'nfips/syn-scan', '59m')], deleted: [own(30, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    assert.deepEqual(api.deletes(), [31], 'the late decision is deleted at the Local API');
    assert.deepEqual(r.keys(), [], 'and the block lifted here');
    assert.ok(r.events.some(([t, f]) => t === 'crowdsec_decision_redeleted' && f.src_ip === X));
    await r.close();
    await api.close();
  });

  it('a lift deferred by another own decision on the network still withdraws the queued alerts at once; the lift follows when that decision goes; the deletion is kept in the queue file', async () => {
    const api = await lapi();
    const X = '192.0.2.94';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp'), anomaly(X, 'udp flood', now - 60_000, 3_600_000, 'udp')]);
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '55m'), own(40, X, 'nfips/udp-flood', '55m')], deleted: null });
    await r.link.pull();
    r.publisher.enqueue(anomaly(X, 'syn scan', now - 30_000, 3_600_000, 'tcp', 22), finding, meta('syn scan'));
    await r.publisher.flush();
    assert.equal(r.publisher.pending, 1, 'queued: the Local API refuses alerts');
    api.st.stream = () => ({ new: null, deleted: [own(30, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${X} tcp anomaly`, `${X} udp anomaly`], 'deferred: decision 40 still bans X everywhere');
    assert.equal(r.publisher.pending, 0, 'withdrawn all the same');
    api.st.stream = () => ({ new: null, deleted: [own(40, X, 'nfips/udp-flood', '-1s')] });
    await r.link.pull();
    assert.deepEqual(r.keys(), [], 'both lifted once no own decision lives on X');
    await r.close();
    const doc = JSON.parse(readFileSync(path.join(r.dir, QUEUE_FILE_NAME), 'utf8')) as { own: { machine: string; deletions: { net: string; scenario: string; liftBefore: number | null }[] } };
    assert.equal(doc.own.machine, 'gw1');
    assert.deepEqual(doc.own.deletions.map((d) => [d.net, d.scenario, d.liftBefore]), [[X, 'nfips/syn-scan', null], [X, 'nfips/udp-flood', null]], 'still watched after a restart');
    assert.deepEqual(r.events.filter(([t]) => t === 'crowdsec_own_decision_deleted').map(([, f]) => [f.src_ip, f.scenario, f.decision]), [[X, 'nfips/syn-scan', 30], [X, 'nfips/udp-flood', 40]]);
    await api.close();
  });

  it('after a restart, queued alerts wait for the first pull: a deletion made while nfips was away withdraws them before they go', { timeout: 20_000 }, async () => {
    const { startCrowdSec } = await import('../../src/crowdsec/setup');
    const api = await lapi();
    const X = '192.0.2.95';
    const Y = '192.0.2.99';
    const now = Date.now();
    const bx = anomaly(X, 'syn scan', now - 600_000, 3_600_000, 'tcp');
    const by = anomaly(Y, 'syn scan', now - 600_000, 3_600_000, 'tcp');
    const alertOfBlock = (b: typeof bx, at: number) => ({ value: b.net, scenario: 'nfips/syn-scan', until: b.expiresAt, at, key: b.key, signature: 'syn scan', signatureId: 9100101, episode: 2, evidence: ['x'] });
    // The previous run saw decision 30 on X live; an operator deleted it 2 min ago, while nfips was stopped.
    const remembered = { machine: 'gw1', live: [{ id: 30, net: X, scenario: 'nfips/syn-scan', until: now + 3_000_000, seenAt: now - 500_000 }], gone: [] };
    const r = rig(api.url, [bx, by], { format: 'nfips-crowdsec-queue', version: 1, pending: [alertOfBlock(bx, now - 300_000), alertOfBlock(by, now - 300_000)], published: [], own: remembered });
    api.st.alerts = accept;
    api.st.stream = () => ({ new: null, deleted: [own(30, X, 'nfips/syn-scan', '-2m')] });
    const cs = startCrowdSec({ url: api.url, bouncerKeyFile: 'unused', intervalSeconds: 60, machineId: 'gw1', passwordFile: 'unused', maxDecisions: null }, { apiKey: 'K', password: 'pw' }, r.blocks, { event: (t, f = {}) => void r.events.push([t, f]) }, r.dir);
    await until('the queue sent', () => api.posted.includes(Y));
    assert.deepEqual(api.posted, [Y], "X's alert was withdrawn before anything was sent");
    const first = (p: string) => api.seen.findIndex((l) => l.includes(p));
    assert.ok(first('/v1/decisions/stream') < first('/v1/alerts'), api.seen.join('\n'));
    assert.deepEqual(r.keys(), [`${Y} tcp anomaly`], 'X lifted');
    await cs.close();
    await r.close();
    await api.close();
  });

  it("a late decision whose delete keeps failing is retried for as long as it lives, past the deletion's watch", async () => {
    const api = await lapi();
    const X = '192.0.2.96';
    let t = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', t - 60_000, 7_200_000, 'tcp')], undefined, () => t);
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '1h50m')], deleted: null });
    await r.link.pull();
    api.st.del = () => [500, { message: 'database is locked' }];
    api.st.stream = () => ({ new: [own(31, X, 'nfips/syn-scan', '1h50m')], deleted: [own(30, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    assert.deepEqual(api.deletes(), [31]);
    assert.deepEqual(r.keys(), [`${X} tcp anomaly`], 'deferred while 31 lives');
    api.st.stream = () => ({ new: null, deleted: null });
    t += 11 * 60_000;
    await r.link.pull();
    assert.deepEqual(api.deletes(), [31, 31], 'tried again after the 10 min watch');
    api.st.del = () => [200, { nbDeleted: '1' }];
    await r.link.pull();
    assert.deepEqual(api.deletes(), [31, 31, 31]);
    assert.deepEqual(r.keys(), [], 'deleted, then lifted');
    await r.close();
    await api.close();
  });

  it('blocks del waits for the POST carrying its alert, not for the rest of the queue', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.97';
    const now = Date.now();
    const b = anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp');
    const others = Array.from({ length: 60 }, (_, i) => `198.51.100.${i + 1}`);
    const r = rig(api.url, [b]);
    api.st.alerts = accept;
    let release = (): void => undefined;
    api.st.hold = new Promise<void>((res) => (release = res));
    r.publisher.enqueue(b, finding, meta('syn scan'));
    for (const n of others) r.publisher.enqueue(anomaly(n, 'syn scan', now - 1000), finding, meta('syn scan'));
    void r.publisher.flush();
    await until('the first POST', () => api.seen.includes('POST /v1/alerts'));
    // Once the link waits, the first POST (X and 49 others) goes through and the next one hangs.
    const posted = r.publisher.posted.bind(r.publisher);
    r.publisher.posted = () => {
      api.st.hold = new Promise<void>(() => undefined);
      release();
      return posted();
    };
    api.st.stream = () => ({ new: [own(60, X, 'nfips/syn-scan', '59m')], deleted: null });
    const out = await r.link.deleteBlock(b.key, 'manual');
    assert.match(String(out.note), /decision 60 deleted/);
    assert.equal(r.publisher.queued(others.at(-1) as string, 'nfips/syn-scan').sending, true, 'the second POST is still in flight');
    await r.close();
    await api.close();
  });

  it('a queued alert merged with a later block keeps the later time: a deletion between the two withdraws neither', async () => {
    const api = await lapi();
    const X = '192.0.2.98';
    const now = Date.now();
    const r = rig(api.url, []);
    r.publisher.enqueue(anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp'), finding, meta('syn scan'));
    r.publisher.enqueue(anomaly(X, 'syn scan', now + 1000, 3_600_000, 'tcp', 22), finding, meta('syn scan'));
    assert.equal(r.publisher.pending, 1, 'one alert');
    assert.equal(r.publisher.withdraw(X, 'nfips/syn-scan', now), 0);
    assert.equal(r.publisher.pending, 1);
    await r.close();
    await api.close();
  });

  it("a decision refused for the gateway's own address is tried again once the gateway gives that address up, and only then", async () => {
    const api = await lapi();
    const X = '192.0.2.200';
    let addresses = [X];
    const r = rig(api.url, [], undefined, undefined, () => addresses);
    api.st.stream = () => ({ new: [wire(7, X)], deleted: null });
    await r.link.pull();
    api.st.stream = () => ({ new: null, deleted: null });
    await r.link.pull();
    const refusals = () => r.events.filter(([t, f]) => t === 'block_refused' && f.src_ip === X).length;
    assert.deepEqual([r.keys(), refusals()], [[], 1], 'refused once, not offered again while the address is ours');
    addresses = ['192.0.2.201'];
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${X} crowdsec`], 'enforced once the address is gone');
    await r.close();
    await api.close();
  });

  it('an alert in flight when the deletion is pulled whose POST then fails is dropped, not sent after the watch', { timeout: 20_000 }, async () => {
    const { api, r, clock, land } = await deletedWhilePosting('192.0.2.150', false);
    assert.deepEqual(r.keys(), [], 'lifted');
    await land();
    assert.equal(r.publisher.pending, 0, 'dropped when its POST failed');
    clock.t += 11 * 60_000;
    api.st.stream = () => ({ new: null, deleted: null });
    await r.link.pull();
    api.st.alerts = accept;
    await r.publisher.flush();
    assert.deepEqual({ posted: api.posted, deletes: api.deletes() }, { posted: [], deletes: [] });
  });

  it('a late decision first seen after a stream outage longer than the watch is still deleted', { timeout: 20_000 }, async () => {
    const X = '192.0.2.152';
    const { api, r, clock, land } = await deletedWhilePosting(X, true);
    // Decision 31 now exists at the Local API; then the stream is down for 11 min.
    await land();
    api.st.stream = () => null;
    await r.link.pull();
    clock.t += 11 * 60_000;
    api.st.stream = () => ({ new: [own(31, X, 'nfips/syn-scan', '48m')], deleted: null });
    await r.link.pull();
    assert.deepEqual(api.posted, [X]);
    assert.deepEqual(api.deletes(), [31]);
  });

  /** Once the publisher's next DELETE has gone through: X's tcp:80 block ends (as the sweep would end it) and X is caught again under that key. */
  function reblockDuringDelete(r: ReturnType<typeof rig>, X: string): void {
    const realDel = r.publisher.deleteDecisions.bind(r.publisher);
    r.publisher.deleteDecisions = async (ids) => {
      const out = await realDel(ids);
      await r.blocks.remove(`${X} tcp:80`, 'expired (stand-in for the sweep)');
      assert.equal(r.blocks.respondToSource(serviceFinding(X, 80), meta('syn scan')).blocks[0]?.outcome, 'added');
      return out;
    };
  }

  it('a block placed again under the key of a pre-deletion block while the lift awaits is not lifted, and its decision is kept', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.151';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp', 80)]);
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    // While the late decision's DELETE is awaited: the old block ends and the attacker is caught again.
    reblockDuringDelete(r, X);
    api.st.stream = () => ({ new: [own(31, X, 'nfips/syn-scan', '59m')], deleted: [own(30, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    assert.deepEqual(api.deletes(), [31]);
    assert.deepEqual(r.keys(), [`${X} tcp:80 anomaly`], 'the new block stays');
    // Its alert's decision comes back: the attacker is back, so it is kept.
    api.st.stream = () => ({ new: [own(32, X, 'nfips/syn-scan', '10m')], deleted: null });
    await r.link.pull();
    assert.deepEqual(api.deletes(), [31]);
    assert.ok(r.events.some(([t, f]) => t === 'crowdsec_decision_kept' && f.src_ip === X));
  });

  it('blocks del: an alert of the scenario that starts posting during the DELETE makes a decision that the next pull deletes', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.153';
    const now = Date.now();
    const b = anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp');
    const b2 = anomaly(X, 'syn scan', now - 30_000, 3_600_000, 'tcp', 22);
    const r = rig(api.url, [b, b2]);
    api.st.stream = () => ({ new: [own(60, X, 'nfips/syn-scan', '59m')], deleted: null });
    await r.link.pull();
    r.publisher.enqueue(b2, finding, meta('syn scan'));
    await r.publisher.flush();
    assert.equal(r.publisher.pending, 1);
    let release = (): void => undefined;
    let sending: Promise<void> = Promise.resolve();
    api.st.del = () => {
      api.st.alerts = accept;
      api.st.hold = new Promise<void>((res) => (release = res));
      sending = r.publisher.flush();
      return [200, { nbDeleted: '1' }];
    };
    await r.link.deleteBlock(b.key, 'manual');
    release();
    await sending;
    assert.deepEqual(api.posted, [X], 'the POST could not be taken back');
    api.st.del = () => [200, { nbDeleted: '1' }];
    api.st.stream = () => ({ new: [own(61, X, 'nfips/syn-scan', '59m')], deleted: [own(60, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    assert.deepEqual(api.deletes(), [60, 61]);
    assert.deepEqual(r.keys(), [`${X} tcp:22 anomaly`], 'the sibling stays here, unshared');
  });

  it('queue file: a bad deletion record is dropped alone; a file of the previous version (own without machine or deletions) loads', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-q-'));
    const file = path.join(dir, QUEUE_FILE_NAME);
    const good = { net: '192.0.2.1', scenario: 'nfips/x', deletedAt: 1, liftBefore: null, since: 2, watching: true, watchUntil: 3 };
    writeFileSync(file, JSON.stringify({ format: 'nfips-crowdsec-queue', version: 1, pending: [], own: { machine: 'gw1', live: [], gone: [], deletions: [good, { ...good, net: '192.0.2.01' }, { ...good, watching: 'yes' }] } }));
    const load = readQueueFile(file);
    assert.deepEqual(load?.doc.own?.deletions, [good]);
    assert.deepEqual(load?.dropped.map((d) => d.path), ['/own/deletions/1', '/own/deletions/2']);
    writeFileSync(file, JSON.stringify({ format: 'nfips-crowdsec-queue', version: 1, pending: [], published: [], own: { live: [], gone: [5] } }));
    assert.deepEqual(readQueueFile(file)?.doc.own, { live: [], gone: [5] });
    writeFileSync(file, JSON.stringify({ format: 'nfips-crowdsec-queue', version: 1, pending: [], own: { machine: 7, live: [], gone: [] } }));
    assert.deepEqual(readQueueFile(file)?.doc.own, undefined, 'a machine id that is not one: the memory is not used');
  });

  /** A at 80 published as 30; 30 deleted 60 s ago; B at 22 placed since (the attacker back), its decision 31 in the answer showing the deletion. */
  async function attackerBack(X: string) {
    const api = await lapi();
    const clock = { t: Date.now() - 300_000 };
    const A = anomaly(X, 'syn scan', clock.t - 120_000, 3_600_000, 'tcp', 80);
    const B = anomaly(X, 'syn scan', clock.t + 270_000, 3_600_000, 'tcp', 22);
    const r = rig(api.url, [A, B], undefined, () => clock.t);
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    clock.t += 300_000;
    api.st.stream = () => ({ new: [own(31, X, 'nfips/syn-scan', '59m')], deleted: [own(30, X, 'nfips/syn-scan', '-60s')] });
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${X} tcp:22 anomaly`, `${X} tcp:80 anomaly`], "A's lift waits on 31");
    api.st.stream = () => ({ new: null, deleted: null });
    return { api, r, clock, A, B };
  }

  it('the attacker back after a deletion: its decision is kept, logged once, and stays after a local flush', { timeout: 20_000 }, async () => {
    const { api, r, clock } = await attackerBack('192.0.2.172');
    for (let i = 0; i < 3; i++) {
      clock.t += 10_000;
      await r.link.pull();
    }
    assert.equal(r.events.filter(([e]) => e === 'crowdsec_decision_kept').length, 1);
    await r.blocks.flush('manual');
    clock.t += 10_000;
    await r.link.pull();
    assert.deepEqual(api.deletes(), [], 'the ban of the attacker who came back stays at the Local API');
  });

  it('blocks del of a pre-deletion block while the lift of an operator deletion waits does not lift the post-deletion block it says stays', { timeout: 20_000 }, async () => {
    const X = '192.0.2.170';
    const { r, A, B } = await attackerBack(X);
    const out = await r.link.deleteBlock(A.key, 'manual');
    assert.match(out.note ?? '', /tcp:22 of the same scenario stays here/);
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${B.key} anomaly`], 'B stays, as blocks del said');
  });

  it('blocks del does not withdraw the alert of a block of the scenario placed while its DELETE runs', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.171';
    const A = anomaly(X, 'syn scan', Date.now() - 60_000, 3_600_000, 'tcp', 80);
    const r = rig(api.url, [A]);
    api.st.stream = () => ({ new: [own(60, X, 'nfips/syn-scan', '59m')], deleted: null });
    await r.link.pull();
    api.st.del = () => {
      r.publisher.enqueue(anomaly(X, 'syn scan', Date.now(), 3_600_000, 'tcp', 22), finding, meta('syn scan'));
      return [200, { nbDeleted: '1' }];
    };
    await r.link.deleteBlock(A.key, 'manual');
    assert.equal(r.publisher.pending, 1, 'the new block is to be shared');
  });

  it("a scheduled pull that sees blocks del's own delete before its answer lifts nothing else", { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.180';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp', 80), anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp', 443)]);
    api.st.stream = () => ({ new: [own(71, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    const realDel = r.publisher.deleteDecisions.bind(r.publisher);
    r.publisher.deleteDecisions = async (ids) => {
      const done = await realDel(ids);
      // The timer's pull, before the DELETE's answer is handled.
      api.st.stream = () => ({ new: null, deleted: [own(71, X, 'nfips/syn-scan', '-1s')] });
      await r.link.pull();
      return done;
    };
    await r.link.deleteBlock(`${X} tcp:443`, 'manual');
    assert.deepEqual(r.keys(), [`${X} tcp:80 anomaly`], 'the sibling stays');
    assert.ok(!r.events.some(([t]) => t === 'crowdsec_own_decision_deleted'));
  });

  it('stopping during one deletion\'s work keeps the others that were not worked on', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const [A, B] = ['192.0.2.181', '192.0.2.182'];
    const now = Date.now();
    const del = (net: string) => ({ net, scenario: 'nfips/syn-scan', deletedAt: now - 600_500, liftBefore: null, since: 0, watching: true, watchUntil: now - 500 });
    const r = rig(api.url, [], { format: 'nfips-crowdsec-queue', version: 1, pending: [], published: [], own: { machine: 'gw1', live: [], gone: [], deletions: [del(A), del(B)] } });
    api.st.stream = () => ({ new: [own(90, A, 'nfips/syn-scan', '50m'), own(91, B, 'nfips/syn-scan', '50m')], deleted: null });
    const realDel = r.publisher.deleteDecisions.bind(r.publisher);
    r.publisher.deleteDecisions = (ids) => {
      void r.link.close();
      return realDel(ids);
    };
    await r.link.pull();
    await r.close();
    assert.ok((r.publisher.rememberedOwn()?.deletions ?? []).some((d) => d.net === B), 'B is still to be worked on');
  });

  it('an alert withdrawn while its batch waits for the login is not posted', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.183';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 120_000, 3_600_000, 'tcp', 80)]);
    api.st.stream = () => ({ new: [own(95, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    api.st.alerts = accept;
    const proto = LapiClient.prototype;
    const realLogin = proto.login;
    let release = (): void => undefined;
    const gate = new Promise<void>((res) => (release = res));
    let waiting = (): void => undefined;
    const loginWaits = new Promise<void>((res) => (waiting = res));
    proto.login = async function (this: InstanceType<typeof LapiClient>, ...a: Parameters<typeof realLogin>) {
      waiting();
      await gate;
      return realLogin.apply(this, a);
    };
    try {
      r.publisher.enqueue(anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp', 22), finding, meta('syn scan'));
      const flushing = r.publisher.flush();
      await loginWaits;
      api.st.stream = () => ({ new: null, deleted: [own(95, X, 'nfips/syn-scan', '-5s')] });
      await r.link.pull();
      release();
      await flushing;
    } finally {
      proto.login = realLogin;
    }
    assert.deepEqual(api.posted, []);
    assert.equal(r.publisher.pending, 0);
  });

  it('blocks del that withdraws a queued alert has it off the disk when it answers', async () => {
    const api = await lapi();
    const X = '192.0.2.184';
    const b = anomaly(X, 'syn scan', Date.now() - 60_000, 3_600_000, 'tcp');
    const r = rig(api.url, [b]);
    r.publisher.enqueue(b, finding, meta('syn scan'));
    await r.publisher.flush();
    await new Promise((res) => setTimeout(res, 300));
    const onDisk = () => (JSON.parse(readFileSync(path.join(r.dir, QUEUE_FILE_NAME), 'utf8')) as { pending: unknown[] }).pending.length;
    assert.equal(onDisk(), 1);
    const out = await r.link.deleteBlock(b.key, 'manual');
    assert.match(String(out.note), /withdrawn/);
    assert.equal(onDisk(), 0);
  });

  it('blocks del of a block that ended and was placed again meanwhile leaves the new one and says so', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.185';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp', 80)]);
    api.st.stream = () => ({ new: [own(72, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    reblockDuringDelete(r, X);
    const out = await r.link.deleteBlock(`${X} tcp:80`, 'manual');
    assert.match(String(out.note), /blocked again since .* that block stays/);
    assert.deepEqual(r.keys(), [`${X} tcp:80 anomaly`]);
  });

  it('a deletion whose scenario has no block left here is done at once, even while another own decision lives on the network', async () => {
    const api = await lapi();
    const X = '192.0.2.186';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'udp flood', now - 60_000, 3_600_000, 'udp')]);
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '55m'), own(40, X, 'nfips/udp-flood', '55m')], deleted: null });
    await r.link.pull();
    api.st.stream = () => ({ new: null, deleted: [own(30, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    assert.equal(r.link.status().own_lifts_pending, 0, 'nothing waits');
    assert.deepEqual(r.keys(), [`${X} udp anomaly`]);
  });

  it('blocks del has its watch on disk when it answers', async () => {
    const api = await lapi();
    const X = '192.0.2.210';
    const b = anomaly(X, 'syn scan', Date.now() - 60_000, 3_600_000, 'tcp');
    const r = rig(api.url, [b]);
    api.st.stream = () => ({ new: [own(80, X, 'nfips/syn-scan', '59m')], deleted: null });
    await r.link.pull();
    await new Promise((res) => setTimeout(res, 300));
    await r.link.deleteBlock(b.key, 'manual');
    const doc = JSON.parse(readFileSync(path.join(r.dir, QUEUE_FILE_NAME), 'utf8')) as { own?: { deletions?: { net: string }[] } };
    assert.ok((doc.own?.deletions ?? []).some((d) => d.net === X));
  });

  it('a late decision whose DELETE landed but whose answer was lost is not taken for an operator deletion later', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.211';
    const r = rig(api.url, [anomaly(X, 'syn scan', Date.now() - 60_000, 3_600_000, 'tcp', 80)]);
    r.blocks.onPlaced((b) => r.link.placed(b));
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    const realDel = r.publisher.deleteDecisions.bind(r.publisher);
    const { DeleteError } = await import('../../src/crowdsec/link');
    let calls = 0;
    r.publisher.deleteDecisions = async (ids) => {
      if (calls++ === 0) {
        // The attacker back while the DELETE is on its way; the DELETE lands, its answer is lost.
        assert.equal(r.blocks.respondToSource(serviceFinding(X, 22), meta('syn scan')).blocks[0]?.outcome, 'added');
        await realDel(ids);
        throw new DeleteError('not deleted: the Local API refused or did not answer (timeout)', []);
      }
      return realDel(ids);
    };
    api.st.stream = () => ({ new: [own(31, X, 'nfips/syn-scan', '59m')], deleted: [own(30, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${X} tcp:22 anomaly`, `${X} tcp:80 anomaly`], 'the lift waits while 31 may live');
    api.st.stream = () => ({ new: null, deleted: [own(31, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${X} tcp:22 anomaly`], 'the block before the deletion lifted; the one placed after it stays');
    assert.equal(r.events.filter(([t]) => t === 'crowdsec_own_decision_deleted').length, 1, 'only the operator\'s');
  });

  it('the attacker back, its block flushed before its decision is first seen: the ban stays', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.212';
    const r = rig(api.url, [anomaly(X, 'syn scan', Date.now() - 60_000, 3_600_000, 'tcp', 80)]);
    r.blocks.onPlaced((b) => r.link.placed(b));
    api.st.stream = () => ({ new: [own(30, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    api.st.stream = () => ({ new: null, deleted: [own(30, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    await new Promise((res) => setTimeout(res, 5));
    assert.equal(r.blocks.respondToSource(serviceFinding(X, 22), meta('syn scan')).blocks[0]?.outcome, 'added');
    await r.blocks.flush('manual');
    api.st.stream = () => ({ new: [own(31, X, 'nfips/syn-scan', '59m')], deleted: null });
    await r.link.pull();
    assert.deepEqual(api.deletes(), [], 'the ban of the attacker who came back stays at the Local API');
  });

  it("own-decision memory written under another machine id is not this gateway's", async () => {
    const api = await lapi();
    const live = [{ id: 30, net: '192.0.2.100', scenario: 'nfips/syn-scan', until: Date.now() + 600_000, seenAt: Date.now() - 1000 }];
    for (const [machine, kept] of [['gw0', false], ['gw1', true]] as const) {
      const r = rig(api.url, [], { format: 'nfips-crowdsec-queue', version: 1, pending: [], published: [], own: { machine, live, gone: [] } });
      assert.equal(r.publisher.rememberedOwn() !== null, kept, machine);
      assert.equal(r.events.some(([t]) => t === 'crowdsec_own_memory_ignored'), !kept);
      await r.close();
    }
    await api.close();
  });

  /** Holds alert POSTs until the link itself waits for the POST in flight (the publisher's posted()), then lets them through. */
  function holdUntilLinkWaits(api: Awaited<ReturnType<typeof lapi>>, pub: InstanceType<typeof Publisher>): void {
    let release = (): void => undefined;
    api.st.hold = new Promise<void>((r) => (release = r));
    const posted = pub.posted.bind(pub);
    pub.posted = () => {
      release();
      return posted();
    };
  }

  it('an operator deletion while the alert of an earlier re-block is being posted: the lift does not wait for it, and the decision that post creates is deleted again', { timeout: 20_000 }, async () => {
    const X = '192.0.2.90';
    const { api, r, land } = await deletedWhilePosting(X, true);
    assert.deepEqual(r.keys(), [], 'lifted while the POST is still held');
    await land();
    assert.deepEqual(api.posted, [X], 'the post could not be taken back');
    api.st.stream = () => ({ new: [own(31, X, 'nfips/syn-scan', '59m')], deleted: null });
    await r.link.pull();
    assert.deepEqual(api.deletes(), [31], 'the decision it created is deleted again');
    assert.ok(r.events.some(([t, f]) => t === 'crowdsec_decision_redeleted' && f.src_ip === X));
  });

  it('blocks del while a retry posts the alert: waits for the post, pulls again, and deletes the decision it created', { timeout: 20_000 }, async () => {
    const api = await lapi();
    const X = '192.0.2.91';
    const now = Date.now();
    const b = anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp');
    const r = rig(api.url, [b]);
    r.publisher.enqueue(b, finding, meta('syn scan'));
    await r.publisher.flush();
    assert.equal(r.publisher.pending, 1, 'queued: the Local API refused it');
    let pulls = 0;
    api.st.stream = () => {
      pulls++;
      if (pulls === 1) {
        // A retry starts posting the alert during the pull.
        api.st.alerts = (alerts) => [201, alerts.map((_, i) => String(i + 1))];
        void r.publisher.flush();
        holdUntilLinkWaits(api, r.publisher);
        return { new: null, deleted: null };
      }
      return { new: [own(60, X, 'nfips/syn-scan', '59m')], deleted: null };
    };
    const out = await r.link.deleteBlock(b.key, 'manual');
    assert.match(String(out.note), /decision 60 deleted/);
    assert.deepEqual(api.deletes(), [60]);
    assert.deepEqual(r.keys(), []);
    await r.close();
    await api.close();
  });

  it("blocks del's own delete: the echo lifts nothing else, and the note names the sibling blocks left unshared", async () => {
    const api = await lapi();
    const X = '192.0.2.92';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp', 80), anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp', 443)]);
    api.st.stream = () => ({ new: [own(70, X, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    const out = await r.link.deleteBlock(`${X} tcp:443`, 'manual');
    assert.match(String(out.note), /decision 70 deleted.*192\.0\.2\.92 tcp:80 of the same scenario stays here but no longer shared/);
    api.st.stream = () => ({ new: null, deleted: [own(70, X, 'nfips/syn-scan', '-1s')] });
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${X} tcp:80 anomaly`], 'the echo of our own delete lifts nothing');
    await r.close();
    await api.close();
  });

  it('lifts of many deletions in one pull read the block table once, not once per deletion', async () => {
    const api = await lapi();
    const now = Date.now();
    const nets = ['192.0.2.110', '192.0.2.111', '192.0.2.112'];
    const r = rig(api.url, nets.map((n) => anomaly(n, 'syn scan', now - 60_000)));
    api.st.stream = () => ({ new: nets.map((n, i) => own(80 + i, n, 'nfips/syn-scan', '55m')), deleted: null });
    await r.link.pull();
    const inForce = r.blocks.inForce.bind(r.blocks);
    let reads = 0;
    r.blocks.inForce = () => (reads++, inForce());
    api.st.stream = () => ({ new: null, deleted: nets.map((n, i) => own(80 + i, n, 'nfips/syn-scan', '-1s')) });
    await r.link.pull();
    assert.equal(reads, 1);
    assert.deepEqual(r.keys(), [], 'all three lifted');
    await r.close();
    await api.close();
  });

  it('blocks del of a CrowdSec block whose kernel delete failed after its decision was deleted: the retry lifts it here', async () => {
    const api = await lapi();
    const X = '198.51.100.17';
    const r = rig(api.url, []);
    api.st.stream = () => ({ new: [wire(5, X, { duration: '3h59m' })], deleted: null });
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${X} crowdsec`]);
    const once = path.join(r.dir, 'del-failed');
    writeFileSync(path.join(r.dir, 'ipset'), `#!/bin/sh\ncat >/dev/null\nif [ "$1" = del ] && [ ! -e ${once} ]; then touch ${once}; echo "cannot del" >&2; exit 1; fi\n`);
    await assert.rejects(r.link.deleteBlock(X, 'manual'), /kernel did not lift/);
    assert.deepEqual(api.deletes(), [5], 'the decision went at the Local API');
    assert.deepEqual(r.keys(), [`${X} crowdsec`], 'the block stays while the kernel holds it');
    // The Local API names the deletion; the decision is known gone.
    api.st.stream = () => ({ new: null, deleted: [wire(5, X, { duration: '-1s' })] });
    await r.link.pull();
    await r.link.deleteBlock(X, 'manual');
    assert.ok(r.events.some(([t, f]) => t === 'unblock' && /no live CrowdSec decision wants it/.test(String(f.reason))), JSON.stringify(r.events.filter(([t]) => t === 'unblock')));
    assert.deepEqual(r.keys(), [], 'lifted at the retry, with nothing left to delete there');
    assert.deepEqual(api.deletes(), [5]);
    await r.close();
    await api.close();
  });

  it('a lift whose remove fails is retried at the next pull', async () => {
    const api = await lapi();
    const Z = '192.0.2.70';
    const r = rig(api.url, [anomaly(Z, 'syn scan', Date.now() - 60_000)]);
    api.st.stream = () => ({ new: [own(40, Z, 'nfips/syn-scan', '55m')], deleted: null });
    await r.link.pull();
    // An ipset that refuses the first delete (the kernel keeps the entry): remove() rejects and the block stays.
    const once = path.join(r.dir, 'del-failed');
    writeFileSync(path.join(r.dir, 'ipset'), `#!/bin/sh\ncat >/dev/null\nif [ "$1" = del ] && [ ! -e ${once} ]; then touch ${once}; echo "cannot del" >&2; exit 1; fi\n`);
    api.st.stream = () => ({ new: null, deleted: [own(40, Z, 'nfips/syn-scan', '-2s')] });
    await r.link.pull();
    assert.deepEqual(r.keys(), [`${Z} anomaly`]);
    assert.ok(r.events.some(([t, f]) => t === 'crowdsec_lift_failed' && /kernel did not lift/.test(String(f.error))));
    assert.ok(!r.events.some(([t]) => t === 'unblock'), 'not reported unblocked');
    // This server does not name the deletion again.
    api.st.stream = () => ({ new: null, deleted: null });
    await r.link.pull();
    assert.deepEqual(r.keys(), [], 'lifted at the retry');
    await r.close();
    await api.close();
  });

  it("blocks del of a published block pulls first, deletes only its scenario's decision, and is refused (block kept) when that delete fails", async () => {
    const api = await lapi();
    const X = '198.51.100.7';
    const now = Date.now();
    const r = rig(api.url, [anomaly(X, 'syn scan', now - 60_000, 3_600_000, 'tcp', 22), anomaly(X, 'ping flood', now - 60_000, 3_600_000, 'icmp')]);
    api.st.stream = () => ({ new: [own(50, X, 'nfips/syn-scan'), own(51, X, 'nfips/ping-flood')], deleted: null });
    r.publisher.enqueue(anomaly(X, 'ping flood', now - 10_000, 3_600_000, 'icmp'), finding, meta('ping flood'));
    await r.publisher.flush();
    // No pull yet: the ids are learnt from one now.
    const out = await r.link.deleteBlock(`${X} tcp:22`, 'manual');
    assert.match(String(out.note), /decision 50 deleted/);
    assert.deepEqual(api.deletes(), [50]);
    assert.deepEqual(r.keys(), [`${X} icmp anomaly`]);
    assert.equal(r.publisher.pending, 1, "the other scenario's queued alert stays");
    api.st.del = () => [503, { message: 'database is locked' }];
    await assert.rejects(r.link.deleteBlock(`${X} icmp`, 'manual'), /could not be deleted there .*decision 51 not; the block stays.*cscli decisions delete --ip 198\.51\.100\.7/);
    assert.deepEqual(r.keys(), [`${X} icmp anomaly`], 'kept: other gateways still block the user');
    assert.equal(r.publisher.pending, 1);
    // The Local API down and no id known: whether it was published cannot be checked.
    api.st.stream = () => null;
    const s = rig(api.url, [anomaly(X, 'ping flood', now - 60_000, 3_600_000, 'icmp')]);
    await assert.rejects(s.link.deleteBlock(`${X} icmp`, 'manual'), /may have been published to the Local API, which does not answer.*the block stays/);
    assert.deepEqual(s.keys(), [`${X} icmp anomaly`]);
    await s.close();
    await r.close();
    await api.close();
  });

  it('a 4xx for one alert drops that alert alone (logged, counted); the others are posted', async () => {
    const api = await lapi();
    api.st.alerts = (alerts) => (alerts.some((a) => a.source.value === '192.0.2.66') ? [400, { message: 'invalid alert' }] : [201, alerts.map((_, i) => String(i + 1))]);
    const r = rig(api.url, []);
    const now = Date.now();
    for (const ip of ['192.0.2.65', '192.0.2.66', '192.0.2.67']) r.publisher.enqueue(anomaly(ip, 'syn scan', now, 600_000), finding, meta('syn scan'));
    for (let i = 0; i < 10 && r.publisher.pending; i++) await r.publisher.flush();
    assert.equal(r.publisher.pending, 0);
    assert.deepEqual(api.posted.sort(), ['192.0.2.65', '192.0.2.67']);
    assert.equal(r.publisher.counts.rejected, 1);
    assert.equal(r.publisher.counts.failed_pushes, 0, 'not a failure of the link');
    assert.match(String(r.events.find(([t]) => t === 'crowdsec_push_dropped')?.[1].reason), /the Local API refused it: .*400 invalid alert/);
    await r.close();
    await api.close();
  });
});

describe('request deadlines and the stop signal', async () => {
  const { createServer } = await import('node:http');
  const { EventEmitter } = await import('node:events');
  const { LapiClient } = await import('../../src/crowdsec/lapi-client');

  it('a Local API that accepts and never answers fails by the deadline; requests leave nothing on the stop signal', { timeout: 30_000 }, async () => {
    let silent = true;
    const server = createServer((_req, res) => {
      if (!silent) res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"new":null,"deleted":null}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new LapiClient({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, timeoutMs: 200, userAgent: 't/1' });
    const stop = new AbortController();
    await assert.rejects(client.stream('K', true, stop.signal), /no answer within 200 ms/);
    silent = false;
    for (let i = 0; i < 5; i++) await client.stream('K', false, stop.signal);
    // AbortSignal.any keeps a WeakRef per request on its sources (Node's internal
    // kDependantSignals set): on the long-lived stop signal that set only grew.
    const dep = Object.getOwnPropertySymbols(stop.signal).find((s) => s.description === 'kDependantSignals');
    const dependants = dep ? ((stop.signal as unknown as Record<symbol, Set<unknown>>)[dep]?.size ?? 0) : 0;
    assert.equal(dependants, 0, 'no per-request references kept by the stop signal');
    assert.equal(EventEmitter.getEventListeners(stop.signal, 'abort').length, 0, 'every listener removed');
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
});

describe('scenario names', async () => {
  const { scenarioFor } = await import('../../src/crowdsec/alert');
  it('the slug of a long signature is capped at 200 characters, with no trailing dash', () => {
    assert.equal(scenarioFor('Port Scan!'), 'nfips/port-scan');
    const long = scenarioFor('a '.repeat(300));
    assert.equal(long.length, 'nfips/'.length + 199);
    assert.match(long, /^nfips\/a(-a)+$/);
  });
});
