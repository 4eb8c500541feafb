// What an operator sees of a running nfips outside its JSON log: the process
// is named nfips (so the `pidof nfips` rotation recipe of docs/LOGS.md finds
// it), and the console carries one summary line per stats interval instead
// of the per-queue dumps, which stay in the JSON log.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, renameSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { startInlineNfips } from '../../lab/netns/inline-nfips';
import { requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const NS = `nfrc${process.pid}`;

test('nfips run is named nfips for ps and pidof, and its console shows summary lines, not stats dumps', { timeout: 90_000 }, async () => {
  await requireIntegration('pidof');
  execFileSync('ip', ['netns', 'add', NS]);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-console-'));
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [] }));
  const nf = startInlineNfips(NS, ['--rules', rules, '--queues', '0', '--mode', 'off', '--stats-interval', '1']);
  try {
    await nf.waitFor('ready', 20_000);
    // `ip netns exec` execs the command: the child is nfips itself.
    const pid = nf.proc.pid!;
    assert.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'nfips');
    const pids = (await execFileP('pidof', ['nfips'])).stdout.trim().split(/\s+/).map(Number);
    assert.ok(pids.includes(pid), `pidof nfips finds ${pid}: ${pids.join(' ')}`);
    // The recipe's signal, to our instance only (others may run on this host).
    renameSync(nf.logFile, `${nf.logFile}.1`);
    await execFileP('kill', ['-USR1', String(pid)]);
    await nf.waitFor('log_reopened', 5000);

    await nf.waitFor('stats', 5000);
    await new Promise((r) => setTimeout(r, 2500));
    const out = nf.output();
    const summaries = out.split('\n').filter((l) => / info  \[summary\] /.test(l));
    assert.ok(summaries.length >= 2, `summary lines on the console:\n${out}`);
    assert.match(summaries[0]!, /\[summary\] packets \d+ \(\d+ pps\): accepted \d+, dropped \d+, rejected \d+, failure verdicts \d+; alerts \d+; blocks 0, \d+ packets dropped by them; uninspected \d+ \([\d.]+%\)$/);
    assert.doesNotMatch(out, /\[(stats|block_stats|rule_stats)\]/, 'no periodic dumps on the console at info level');
    const types = new Set(nf.events().map((r) => r.event_type));
    assert.ok(types.has('stats') && types.has('block_stats') && types.has('rule_stats'), 'the JSON log keeps them');
    assert.ok(!types.has('summary'), 'and has no summary record');
    assert.equal(await nf.stop(), 0);
  } finally {
    await nf.stop();
    nf.cleanup();
    execFileSync('ip', ['netns', 'del', NS]);
    rmSync(dir, { recursive: true, force: true });
  }
});
