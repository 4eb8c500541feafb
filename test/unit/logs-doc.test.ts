// docs/LOGS.md's example lines must be what nfips writes: the drop example
// is rebuilt from rules/default.json through the code that logs drops.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { logRuleEvents } from '../../src/app/rule-event-log';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { readRuleFile } from '../../src/rules/load';

test('the LOGS.md drop example has the signature, signature id and fields nfips produces for it', () => {
  const doc = readFileSync(path.join(PACKAGE_ROOT, 'docs', 'LOGS.md'), 'utf8');
  const line = doc.split('\n').find((l) => l.startsWith('{"event_type":"drop"'));
  assert.ok(line, 'a drop example in docs/LOGS.md');
  const example = JSON.parse(line) as Record<string, unknown>;
  const rules = readRuleFile(path.join(PACKAGE_ROOT, 'rules', 'default.json'), 'auto');
  const index = rules.rules.findIndex((r) => r.id === example.rule_id);
  assert.ok(index >= 0, `rule ${String(example.rule_id)} is in rules/default.json (the demo's rules)`);
  const logged: Record<string, unknown>[] = [];
  logRuleEvents({ event: (type, fields) => logged.push({ event_type: type, ...fields }) }, Number(example.queue), rules, [
    { rule_index: index, action: 'drop', proto: 'tcp', src_ip: String(example.src_ip), src_port: Number(example.src_port), dest_ip: String(example.dest_ip), dest_port: Number(example.dest_port), in_ifindex: 0, out_ifindex: 0, length: Number(example.length), suppressed: 0 },
  ]);
  const real = JSON.parse(JSON.stringify(logged[0])) as Record<string, unknown>;
  assert.deepEqual(example.alert, real.alert);
  assert.equal(example.rule_description, real.rule_description);
  // Every field nfips writes is in the example (interfaces are named by the host; winston adds level, message, timestamp).
  for (const k of Object.keys(real)) assert.ok(k in example, `the example lacks ${k}`);
});
