// A quieter console: at info level the periodic stats dumps give way to one
// summary line; the JSON log keeps every record (and never the summary).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { QueueCounters } from '../../src/queue/supervisor';
import { summaryLine } from '../../src/stats/summary';

const q = (queue: number, x: Partial<QueueCounters>) => ({ queue, received: 0, accepted: 0, dropped: 0, rejected: 0, failVerdicts: 0, alerts: 0, ...x }) as QueueCounters;

test('the summary line: packets, verdicts, drops, alerts, blocks, uninspected', () => {
  const line = summaryLine({
    queues: [q(0, { received: 1500, accepted: 1400, dropped: 90, rejected: 10, alerts: 2 }), q(1, { received: 500, accepted: 500 })],
    previousReceived: 1000,
    seconds: 10,
    alerts: 5,
    blocks: { active: 2, kernelDropped: 4321 },
    uninspected: { packets: 12, share: 0.006, meaning: 'passed uninspected' },
  });
  assert.equal(line, 'packets 2000 (100 pps): accepted 1900, dropped 90, rejected 10, failure verdicts 0; alerts 5; blocks 2, 4321 packets dropped by them; uninspected 12 (0.6%)');
});

/** Logs a stats record and a summary at the given level, in a child process, as nfips run does. */
function logAt(level: string): { console: string; file: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-summary-'));
  try {
    const file = path.join(dir, 'log.json');
    const script = `
      const { createEventLog } = require(${JSON.stringify(path.join(PACKAGE_ROOT, 'dist', 'src', 'log', 'event-log.js'))});
      const log = createEventLog({ file: ${JSON.stringify(file)}, console: true, level: ${JSON.stringify(level)} });
      log.event('stats', { queue: 0, received: 1234, kernel: { queue_depth: 0 } });
      log.event('block_stats', { active: 1 });
      log.event('summary', { console_only: true, console_text: 'packets 1234 (5 pps)' });
      log.event('ready', { queues: [0] });
      log.close();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    return { console: r.stdout, file: readFileSync(file, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('info: one summary line on the console, the full records in the JSON log', () => {
  const { console: out, file } = logAt('info');
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 2, out);
  assert.match(lines[0]!, /^\S+ info  \[summary\] packets 1234 \(5 pps\)$/);
  assert.match(lines[1]!, /\[ready\] queues=\[0\]/);
  const types = file.trim().split('\n').map((l) => JSON.parse(l).event_type);
  assert.deepEqual(types, ['stats', 'block_stats', 'ready'], 'the JSON log keeps everything, and no summary');
});

test('debug: the full dumps on the console, as before', () => {
  const { console: out } = logAt('debug');
  assert.match(out, /\[stats\] queue=0 received=1234 kernel=\{"queue_depth":0\}/);
  assert.match(out, /\[block_stats\] active=1/);
  assert.doesNotMatch(out, /\[summary\]/);
});
