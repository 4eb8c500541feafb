// From per-source findings to episodes, alerts and responses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EpisodeIds, QUIET_SECONDS, RESPOND_AGAIN_SECONDS, SourceJudge } from '../../src/detect/source-judge';
import { AggregateFinding, Exceeded, SourceFinding } from '../../src/detect/source-tracker';
import { PROTO_BIT_TCP, TARGET_NONE } from '../../src/features/source-table';

const th = { value: 20, learnt: 2, margin: 3, floor: 20 };
const ex = (measure: Exceeded['measure'], value = 100, service?: string): Exceeded => ({ measure, scale: 'second', value, threshold: th, ...(service ? { service } : {}) });
const finding = (step: number, exceeded: Exceeded[], ip = '10.0.1.66'): SourceFinding => ({ ip, family: 4, step, exceeded, evProtos: PROTO_BIT_TCP, evTcp: (6 << 16) | 80, evUdp: TARGET_NONE });

function judge(respond = true) {
  const events: { type: string; f: Record<string, unknown> }[] = [];
  const calls: { measures: string[]; episode: number; opened: number }[] = [];
  let now = 1_000_000;
  const j = new SourceJudge(
    (type, f) => void events.push({ type, f }),
    1,
    new EpisodeIds(),
    respond
      ? (f, meta) => {
          calls.push({ measures: f.exceeded.map((x) => x.measure), episode: meta.episode, opened: meta.episodeOpened });
          return { action: 'blocked', blocks: [{ key: f.ip }] };
        }
      : undefined,
    () => (now += 1000),
  );
  return { j, events, calls };
}

describe('SourceJudge', () => {
  it('one alert per kind of attack per episode; all its responses carry the episode; it ends after the quiet time', () => {
    const { j, events, calls } = judge();
    j.onFinding(finding(100, [ex('tcp_failed')]));
    j.onFinding(finding(101, [ex('tcp_failed'), ex('failed_ports', 40)]));
    j.onFinding(finding(102, [ex('tcp_failed')]));
    j.onFinding(finding(103, [ex('echo_requests', 5000)]));
    assert.deepEqual(events.map((e) => [e.type, (e.f.alert as { signature_id: number }).signature_id, (e.f.anomaly as { episode: { follow_up: boolean } }).episode.follow_up]), [
      ['alert', 9100101, false],
      ['alert', 9100104, true],
    ], 'failed ports are the same kind of attack as failed connections; an echo flood is another');
    assert.deepEqual(calls.map((c) => c.measures), [['tcp_failed'], ['tcp_failed', 'failed_ports'], ['echo_requests']], 'acted on each new measure, not on repeats');
    assert.equal(new Set(calls.map((c) => c.opened)).size, 1, 'one episode: one offence');
    const alert = events[0].f as { src_ip: string; proto: string; dest_port: number; alert: { action: string }; anomaly: { evidence: { measure: string; threshold: number; learnt: number; margin: number; floor: number; about: string }[]; blocks: unknown[] } };
    assert.deepEqual([alert.src_ip, alert.proto, alert.dest_port, alert.alert.action], ['10.0.1.66', 'TCP', 80, 'blocked']);
    assert.deepEqual(alert.anomaly.evidence[0], { measure: 'tcp_failed', scale: 'second', value: 100, threshold: 20, learnt: 2, margin: 3, floor: 20, about: alert.anomaly.evidence[0].about });
    j.onStepFinal(103 + QUIET_SECONDS - 1);
    assert.equal(events.length, 2);
    j.onStepFinal(103 + QUIET_SECONDS);
    assert.deepEqual(events.map((e) => e.type), ['alert', 'alert', 'anomaly_end']);
    j.onFinding(finding(200, [ex('tcp_failed')]));
    assert.equal(events.length, 4, 'a new episode alerts again');
    assert.notEqual(calls[calls.length - 1].opened, calls[0].opened);
  });

  it('acts again every RESPOND_AGAIN_SECONDS while the findings go on (a block that expired or was lifted)', () => {
    const { j, calls } = judge();
    for (let k = 0; k <= 2 * RESPOND_AGAIN_SECONDS; k++) j.onFinding(finding(100 + k, [ex('tcp_failed')]));
    assert.equal(calls.length, 3);
  });

  it('detect mode: alerts say "allowed" and nothing is acted on', () => {
    const { j, events } = judge(false);
    j.onFinding(finding(100, [ex('stalled_sessions', 50)]));
    assert.equal((events[0].f.alert as { action: string }).action, 'allowed');
  });

  it('a flood no source explains: one distributed alert, nobody named, nothing blocked', () => {
    const { j, events, calls } = judge();
    const agg = (step: number, measure: AggregateFinding['measure'], distributed = true): AggregateFinding => ({ step, measure, total: 50_000, threshold: { value: 500, learnt: 0, margin: 3, floor: 500 }, top: [{ ip: '1.2.3.4', value: 2, share: 0 }], distributed });
    j.onAggregate(agg(100, 'tcp_failed'));
    j.onAggregate(agg(101, 'tcp_failed'));
    j.onAggregate(agg(102, 'odd_sessions'));
    j.onAggregate(agg(103, 'tcp_failed', false));
    assert.equal(events.length, 1);
    const a = events[0].f as { src_ip?: string; anomaly: { distributed: boolean; responsible: unknown[] } };
    assert.equal(a.src_ip, undefined);
    assert.deepEqual([a.anomaly.distributed, a.anomaly.responsible], [true, []]);
    assert.equal(calls.length, 0);
    j.onStepFinal(102 + QUIET_SECONDS);
    assert.deepEqual(events.map((e) => e.type), ['alert', 'anomaly_end']);
  });
});
