// A newline or terminal escape in a rule id, description, block reason or
// other outside text must not forge a line on the console, in the journal or
// in `nfips logs`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { escapeControl, escapeJsonLine } from '../../src/log/escape';
import { formatRecord } from '../../src/log/pretty';
import { formatBlocks, formatStatus, StatusView } from '../../src/cli/status-text';
import { PACKAGE_ROOT } from '../../src/config/paths';

const run = promisify(execFile);
const FORGED = 'x\n2026-11-22 09:44:27Z BLOCK  10.0.0.1 (manual)\x1b[2J\u202e\u2028';

test('control characters, DEL, C1, line separators and bidi controls become escapes', () => {
  assert.equal(escapeControl('a\nb\r\tc\x1b[31m\x7f\x9b\u2028\u2029\u202e\u2066'), 'a\\nb\\r\\tc\\x1b[31m\\x7f\\x9b\\u2028\\u2029\\u202e\\u2066');
  assert.equal(escapeControl('plain text, ünïcode and \\n as two characters'), 'plain text, ünïcode and \\n as two characters');
  const json = JSON.stringify({ reason: 'a\u2028b\x9bc\nd' });
  assert.equal(escapeJsonLine(json), '{"reason":"a\\u2028b\\u009bc\\nd"}');
  assert.deepEqual(JSON.parse(escapeJsonLine(json)), JSON.parse(json), 'still the same JSON value');
});

test('nfips logs lines: a forged line in a rule id or block reason stays on its own line', () => {
  const drop = formatRecord({ timestamp: '2026-11-22T09:44:27.100Z', event_type: 'drop', rule_id: FORGED, proto: 'tcp', src_ip: '10.77.1.2', src_port: 1, dest_ip: '10.77.2.2', dest_port: 23 });
  const block = formatRecord({ timestamp: '2026-11-22T09:44:27.100Z', event_type: 'block', action: 'added', src_ip: '10.0.0.9', block: { key: '10.0.0.9', origin: 'manual', reason: FORGED } });
  const other = formatRecord({ timestamp: '2026-11-22T09:44:27.100Z', event_type: 'rules_reload_failed', error: FORGED });
  for (const line of [drop, block, other]) {
    assert.equal(line.split('\n').length, 1, line);
    assert.doesNotMatch(line, /[\x00-\x1f\x7f-\x9f\u2028\u202e]/);
    assert.match(line, /x\\n2026-11-22 09:44:27Z BLOCK/);
  }
});

test('status and blocks list: a block reason cannot add a line', () => {
  const b = { key: '10.0.0.9', net: '10.0.0.9', scope: 'source', origin: 'manual', reason: FORGED, created_at: '', expires_at: '', ttl_seconds: 60, offence: 1, remaining_s: 59 } as const;
  assert.equal(formatBlocks([b]).trimEnd().split('\n').length, 2, 'header and one row');
  const s: StatusView = {
    pid: 1,
    uptime_s: 1,
    mode: 'prevent',
    rules: { version: 1, file: `/etc/nfips/${FORGED}`, sha256: 'abc', count: 1, lock: false, default: 'accept' },
    unverdicted: { packets: 0, meaning: 'passed uninspected', queue_rule_packets: 0 },
    queues: [],
    blocks: { active: 1, kernel_dropped: null, blocks: [b] },
  };
  const text = formatStatus(s);
  assert.doesNotMatch(text, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u202e]/);
  assert.ok(!text.split('\n').some((l) => l.startsWith('2026-11-22')), text);
});

test('nfips logs (a real run of the command): readable and --json output both escaped', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wt11b-esc-'));
  try {
    const file = path.join(dir, 'nfips.json');
    writeFileSync(file, `${JSON.stringify({ timestamp: '2026-11-22T09:44:27.100Z', event_type: 'drop', rule_id: FORGED, proto: 'tcp' })}\n`);
    const text = (await run(process.execPath, [path.join(PACKAGE_ROOT, 'bin', 'nfips'), 'logs', '--file', file])).stdout;
    assert.equal(text.trimEnd().split('\n').length, 1, text);
    const json = (await run(process.execPath, [path.join(PACKAGE_ROOT, 'bin', 'nfips'), 'logs', '--json', '--file', file])).stdout;
    assert.doesNotMatch(json, /[\u2028\u202e\x9b]/);
    assert.equal((JSON.parse(json) as { rule_id: string }).rule_id, FORGED);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('console lines (the journal under systemd): one event is one line', async () => {
  const mod = path.join(PACKAGE_ROOT, 'dist', 'src', 'log', 'event-log.js');
  const script = `const { createEventLog } = require(${JSON.stringify(mod)});
const log = createEventLog({ console: true, level: 'info' });
log.event('drop', { rule_id: ${JSON.stringify(FORGED)}, description: 'd\\r\\x1b]0;title\\x07' });
log.close();`;
  const out = (await run(process.execPath, ['-e', script])).stdout;
  assert.equal(out.trimEnd().split('\n').length, 1, out);
  assert.match(out, /\[drop\] rule_id=x\\n2026-11-22 09:44:27Z BLOCK .*description=d\\r\\x1b\]0;title\\x07/);
});
