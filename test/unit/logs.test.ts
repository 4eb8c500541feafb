// `nfips logs`: readable lines, --type, --json, and -f across rotation.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { formatRecord } from '../../src/log/pretty';

const run = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const dir = mkdtempSync(path.join(tmpdir(), 'nfips-logs-'));

const ALERT = {
  timestamp: '2026-11-22T09:44:26.002Z',
  event_type: 'alert',
  level: 'warn',
  message: 'alert',
  src_ip: '10.77.1.6',
  alert: { action: 'allowed', signature_id: 9100004, signature: 'nfips anomaly: ICMP echo excess', category: 'Anomalous traffic', severity: 2 },
  anomaly: { queue: 0, score: 27.97, threshold: 1.47, deviations: [{ feature: 'icmp_echo_per_s', z: 10.2 }], responsible: [{ ip: '10.77.1.6', share: 1 }], distributed: false, episode: { id: 1, follow_up: false } },
};
const DROP = { timestamp: '2026-11-22T09:44:27.100Z', event_type: 'drop', rule_id: 'no-telnet', proto: 'tcp', src_ip: '10.77.1.2', src_port: 40000, dest_ip: '10.77.2.2', dest_port: 23, in_iface: 'g0', suppressed: 3 };
const STATS = { timestamp: '2026-11-22T09:44:30.000Z', event_type: 'stats', queue: 1, received: 100, accepted: 98, dropped: 2, rejected: 0, pps: 10, kernel: { queue_depth: 0, queue_dropped: 0, user_dropped: 0 }, classifier: { scored: 9, skipped: 0, alerts: 1 } };
const START = { timestamp: '2026-11-22T09:44:00.000Z', event_type: 'ready', queues: [0, 1], rules_count: 4 };
const lines = (...r: object[]) => r.map((x) => JSON.stringify(x)).join('\n') + '\n';

describe('log lines for people', () => {
  it('formats alerts, drops, stats and anything else on one line each', () => {
    assert.equal(formatRecord(ALERT), '2026-11-22 09:44:26Z ALERT  q0 nfips anomaly: ICMP echo excess: score 27.97 > 1.47; icmp_echo_per_s z=10.2; from 10.77.1.6 (100%) [episode 1]');
    assert.equal(formatRecord(DROP), '2026-11-22 09:44:27Z DROP   rule no-telnet tcp 10.77.1.2:40000 -> 10.77.2.2:23 in g0 (+3 suppressed)');
    assert.equal(formatRecord(STATS), '2026-11-22 09:44:30Z STATS  q1 received 100, accepted 98, dropped 2, rejected 0, 10 pps; kernel queue 0, dropped 0/0; windows scored 9, skipped 0, alerts 1');
    assert.equal(formatRecord(START), '2026-11-22 09:44:00Z ready queues=[0,1] rules_count=4');
    assert.match(formatRecord({ ...ALERT, anomaly: { ...ALERT.anomaly, responsible: [], distributed: true } }), /from many sources \(distributed\)/);
    assert.match(formatRecord({ ...ALERT, alert: { ...ALERT.alert, action: 'blocked' } }), /\[episode 1\] BLOCKED$/);
    const source = {
      ...ALERT,
      alert: { action: 'blocked', signature_id: 9100105, signature: 'nfips: improbable TCP flag sequences (stealth scan: NULL, FIN, XMAS...)', category: 'Attack behaviour', severity: 1 },
      anomaly: { kind: 'source', responsible: [{ ip: '10.77.1.6' }], evidence: [{ measure: 'odd_sessions', scale: 'second', value: 997, threshold: 10 }, { measure: 'failed_ports', scale: 'window', value: 40, threshold: 20 }], sequence: { symbols: 'o:ODD r:R' }, episode: { id: 3, follow_up: false } },
    };
    assert.equal(formatRecord(source), '2026-11-22 09:44:26Z ALERT  10.77.1.6 nfips: improbable TCP flag sequences (stealth scan: NULL, FIN, XMAS...): odd_sessions 997/s > 10, failed_ports 40 in the window > 20; sequence o:ODD r:R [episode 3] BLOCKED');
    assert.match(formatRecord({ event_type: 'alert', alert: { action: 'allowed', signature: 'nfips: distributed: x' }, anomaly: { kind: 'distributed', evidence: [], episode: { id: 4 } } }), /ALERT  many sources \(distributed, nobody blocked\) nfips: distributed: x/);
    const block = { key: '10.77.1.6 tcp:8080', origin: 'anomaly', reason: 'nfips anomaly: TCP SYN excess (flood or scan)', ttl_seconds: 600, expires_at: '2026-11-22T09:54:26.000Z', offence: 1 };
    assert.equal(
      formatRecord({ timestamp: '2026-11-22T09:44:26.000Z', event_type: 'block', action: 'added', src_ip: '10.77.1.6', block }),
      '2026-11-22 09:44:26Z BLOCK  10.77.1.6 tcp:8080 (added, anomaly: nfips anomaly: TCP SYN excess (flood or scan)) for 600 s until 2026-11-22T09:54:26.000Z, offence 1',
    );
    assert.equal(formatRecord({ timestamp: '2026-11-22T09:54:26.100Z', event_type: 'unblock', reason: 'expired', block }), '2026-11-22 09:54:26Z UNBLK  10.77.1.6 tcp:8080 (expired)');
  });

  it('nfips logs --type and --json', async () => {
    const f = path.join(dir, 'a.json');
    writeFileSync(f, lines(START, ALERT, DROP, STATS) + '{"torn');
    const all = (await run(process.execPath, [NFIPS, 'logs', '--file', f])).stdout.trim().split('\n');
    assert.equal(all.length, 4, 'every record, the torn line skipped');
    const alerts = (await run(process.execPath, [NFIPS, 'logs', '--file', f, '--type', 'alert'])).stdout.trim().split('\n');
    assert.deepEqual(alerts, [formatRecord(ALERT)]);
    const two = (await run(process.execPath, [NFIPS, 'logs', '--file', f, '--type', 'drop,stats', '--json'])).stdout.trim().split('\n');
    assert.deepEqual(two.map((l) => JSON.parse(l).event_type), ['drop', 'stats']);
    await assert.rejects(run(process.execPath, [NFIPS, 'logs', '--file', path.join(dir, 'none.json')]), (e: { code: number; stderr: string }) => e.code === 2 && /no such log file/.test(e.stderr));
  });

  it('ICMP drops show their type and code instead of ports', () => {
    const icmp = { timestamp: '2026-11-22T09:44:27.100Z', event_type: 'drop', rule_id: 'no-ping', proto: 'ICMP', src_ip: '10.77.1.2', dest_ip: '10.77.2.2', icmp_type: 8, icmp_code: 0, in_iface: 'g0' };
    assert.equal(formatRecord(icmp), '2026-11-22 09:44:27Z DROP   rule no-ping ICMP 10.77.1.2 -> 10.77.2.2 type 8 code 0 in g0');
  });

  it('nfips logs -n N and --since (a duration or an ISO time)', async () => {
    const f = path.join(dir, 'n.json');
    const now = Date.now();
    const at = (msAgo: number, rule: string) => ({ ...DROP, rule_id: rule, timestamp: new Date(now - msAgo).toISOString() });
    writeFileSync(f, lines(at(3 * 3600_000, 'old'), at(2 * 3600_000, 'two-hours'), { ...STATS, timestamp: new Date(now - 3600_000).toISOString() }, at(20 * 60_000, 'twenty-min'), at(5 * 60_000, 'five-min'), at(1000, 'now')));
    const rules = async (...a: string[]) => (await run(process.execPath, [NFIPS, 'logs', '--file', f, ...a])).stdout.trim().split('\n').filter(Boolean).map((l) => /rule (\S+)/.exec(l)?.[1] ?? 'stats');
    assert.deepEqual(await rules('-n', '2'), ['five-min', 'now']);
    assert.deepEqual(await rules('-n', '2', '--type', 'stats,drop', '--since', '90m'), ['five-min', 'now']);
    assert.deepEqual(await rules('--lines', '3', '--type', 'drop'), ['twenty-min', 'five-min', 'now']);
    assert.deepEqual(await rules('-n', '0'), []);
    assert.deepEqual(await rules('--since', '30m'), ['twenty-min', 'five-min', 'now']);
    assert.deepEqual(await rules('--since', '2h30m'), ['two-hours', 'stats', 'twenty-min', 'five-min', 'now']);
    assert.deepEqual(await rules('--since', new Date(now - 10 * 60_000).toISOString()), ['five-min', 'now']);
    for (const [flag, value, message] of [['--since', 'yesterday', /invalid --since "yesterday": expected a duration back from now such as 10m/], ['-n', '-3', /invalid -n\/--lines -3/], ['-n', 'x', /invalid -n\/--lines NaN/]] as const) {
      await assert.rejects(run(process.execPath, [NFIPS, 'logs', '--file', f, flag, value]), (e: { code: number; stderr: string }) => e.code === 2 && message.test(e.stderr), `${flag} ${value}`);
    }
  });

  it('nfips logs -n N -f: the last N records, then every new one', async () => {
    const f = path.join(dir, 'nf.json');
    writeFileSync(f, lines(...['a', 'b', 'c', 'd'].map((id) => ({ ...DROP, rule_id: id }))));
    const p = spawn(process.execPath, [NFIPS, 'logs', '-n', '2', '-f', '--file', f]);
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const ids = () => out.trim().split('\n').filter(Boolean).map((l) => /rule (\S+)/.exec(l)?.[1]);
    try {
      for (let i = 0; i < 100 && ids().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      appendFileSync(f, lines({ ...DROP, rule_id: 'e' }));
      for (let i = 0; i < 100 && ids().length < 3; i++) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(ids(), ['c', 'd', 'e']);
    } finally {
      p.kill('SIGINT');
    }
  });

  it('nfips logs -f keeps printing new records, across a rotation', async () => {
    const f = path.join(dir, 'b.json');
    writeFileSync(f, lines(START));
    const p = spawn(process.execPath, [NFIPS, 'logs', '-f', '--file', f, '--type', 'drop']);
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const waitFor = async (n: number) => {
      for (let i = 0; i < 100 && out.trim().split('\n').filter(Boolean).length < n; i++) await new Promise((r) => setTimeout(r, 50));
    };
    try {
      await new Promise((r) => setTimeout(r, 500));
      appendFileSync(f, lines({ ...DROP, rule_id: 'before-rotation' }));
      await waitFor(1);
      renameSync(f, `${f}.1`); // logrotate's move
      appendFileSync(`${f}.1`, lines({ ...DROP, rule_id: 'late-in-old-file' }));
      writeFileSync(f, lines({ ...DROP, rule_id: 'after-rotation' }));
      await waitFor(3);
      const rules = out.trim().split('\n').map((l) => /rule (\S+)/.exec(l)?.[1]);
      assert.deepEqual(rules, ['before-rotation', 'late-in-old-file', 'after-rotation']);
    } finally {
      p.kill('SIGINT');
    }
  });
});
