import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attribute, MIN_SHARE } from '../../src/detect/attribution';
import { EpisodeTracker, FOLLOW_UP_GAP, MAX_NAMED } from '../../src/detect/episodes';
import { FEATURE_COUNT } from '../../src/features/feature-set';
import { FeatureWindow, WindowSource } from '../../src/features/window';

describe('EpisodeTracker', () => {
  it('one alert per episode: opens on the first anomalous window, closes after the quiet windows', () => {
    const t = new EpisodeTracker(3);
    const kinds: string[] = [];
    const seq = [false, true, true, false, true, false, false, false, false, true];
    seq.forEach((a, k) => kinds.push(t.step(a, 100 + k, a ? 5 : 0, a ? ['10.0.0.6'] : []).kind));
    assert.deepEqual(kinds, ['none', 'open', 'none', 'none', 'none', 'none', 'none', 'close', 'none', 'open']);
  });

  it('tracks peak score and windows above, and gives a new id to the next episode', () => {
    const t = new EpisodeTracker(1);
    const o = t.step(true, 10, 4, ['a']);
    assert.equal(o.kind, 'open');
    t.step(true, 11, 9, ['a']);
    const c = t.step(false, 12, 0, []);
    assert.equal(c.kind, 'close');
    if (c.kind !== 'close') return;
    assert.deepEqual([c.episode.id, c.episode.peakScore, c.episode.windowsAbove, c.episode.openedAt, c.episode.lastAbove], [1, 9, 2, 10, 11]);
    const o2 = t.step(true, 20, 3, ['a']);
    assert.equal(o2.kind === 'open' && o2.episode.id, 2);
  });

  it('a responsible source not named before raises one follow-up, at most one per FOLLOW_UP_GAP windows', () => {
    const t = new EpisodeTracker(5);
    assert.equal(t.step(true, 1, 5, ['a']).kind, 'open');
    for (let k = 2; k < 1 + FOLLOW_UP_GAP; k++) assert.equal(t.step(true, k, 5, ['a', `x${k}`]).kind, 'none', 'too soon after the alert');
    const f = t.step(true, 1 + FOLLOW_UP_GAP, 5, ['a', 'b']);
    assert.deepEqual(f.kind === 'new-sources' && f.newSources, ['b']);
    for (let k = 0; k < 3 * FOLLOW_UP_GAP; k++) assert.equal(t.step(true, 20 + k, 5, ['b', 'a']).kind, 'none', 'known sources raise nothing');
  });

  it('a source rotating every window (spoofed) cannot raise more than one alert per gap, and the named set is capped', () => {
    const t = new EpisodeTracker(5);
    let alerts = 0;
    for (let k = 0; k < 2000; k++) if (t.step(true, k, 5, [`10.0.${k >> 8}.${k & 255}`]).kind !== 'none') alerts++;
    assert.ok(alerts <= 1 + 2000 / FOLLOW_UP_GAP, `${alerts} alerts`);
    assert.ok(t.current!.named.size <= MAX_NAMED);
  });
});

const src = (ip: string, o: Partial<WindowSource>): WindowSource => ({ ip, packets: 0, bytes: 0, syn: 0, icmpEcho: 0, udp: 0, newSessions: 0, protos: 0, target: -1, recent: 0, ...o });
function win(sources: WindowSource[]): FeatureWindow {
  const totals = { packets: 0, bytes: 0, syn: 0, icmpEcho: 0, udp: 0, newSessions: 0 };
  for (const s of sources) for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += s[k];
  return { queue: 0, start: 0, end: 60, packets: totals.packets, values: new Array<number>(FEATURE_COUNT).fill(0), totals, sources };
}

describe('attribute', () => {
  // The server answering a ping flood sends as many packets as the attacker.
  const w = win([
    src('10.77.2.2', { packets: 10000, bytes: 840000 }),
    src('10.77.1.6', { packets: 9990, bytes: 839160, icmpEcho: 9990 }),
    src('10.77.1.2', { packets: 500, bytes: 40000, syn: 20, icmpEcho: 10 }),
  ]);

  it('ranks by the counter behind the leading positive deviation, not by packets', () => {
    // (The server's replies are not in its row: rows count client-to-server packets.)
    const a = attribute(w, [{ feature: 'icmp_echo_per_s', value: 166, z: 12 }, { feature: 'packets_per_s', value: 333, z: 8 }]);
    assert.equal(a.blame, 'icmpEcho');
    assert.deepEqual(a.responsible.map((r) => r.ip), ['10.77.1.6']);
    assert.equal(a.responsible[0].share, 0.999);
  });

  it('skips negative deviations when picking the lead', () => {
    const a = attribute(w, [{ feature: 'mean_ip_len', value: 10, z: -9 }, { feature: 'syn_per_s', value: 0.3, z: 2 }]);
    assert.equal(a.blame, 'syn');
    assert.deepEqual(a.responsible.map((r) => r.ip), ['10.77.1.2']);
  });

  it(`names a source only when it holds at least ${MIN_SHARE * 100}% of the counter, and nobody when it is spread thin`, () => {
    const a = attribute(w, [{ feature: 'packets_per_s', value: 300, z: 5 }]);
    assert.deepEqual(a.responsible.map((r) => r.ip), [], 'two sources of about 49% each: neither explains the window');
    const one = attribute(win([src('10.77.1.6', { packets: 9000 }), src('10.77.1.2', { packets: 1000 })]), [{ feature: 'packets_per_s', value: 300, z: 5 }]);
    assert.deepEqual(one.responsible.map((r) => r.ip), ['10.77.1.6']);
    const spread = win(Array.from({ length: 20 }, (_, k) => src(`10.0.0.${k}`, { packets: 10 })));
    assert.deepEqual(attribute(spread, [{ feature: 'packets', value: 200, z: 3 }]).responsible, []);
  });

  it('falls back to packets when the blamed counter is empty in the window', () => {
    const a = attribute(win([src('10.0.0.1', { packets: 5 })]), [{ feature: 'udp_per_s', value: 0, z: 3 }]);
    assert.equal(a.blame, 'packets');
    assert.equal(a.responsible[0].ip, '10.0.0.1');
  });
});
