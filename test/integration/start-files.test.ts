// `nfips run` with unsafe or absurd files: it must stop at once with exit 2,
// a message naming the flag or file, and nothing installed. A FIFO at
// blocks.json used to hang the start; a rules file nested 200,000 deep gave
// "Maximum call stack size exceeded".
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { startInlineNfips } from '../../lab/netns/inline-nfips';
import { nsExec } from '../../lab/netns/topology';
import { requireIntegration } from '../helpers/env';

const NS = `wt11bsf${process.pid}`;

test('unsafe or absurd files at start: exit 2 naming the flag or file, nothing installed', { timeout: 120_000 }, async (t: TestContext) => {
  await requireIntegration();
  execFileSync('ip', ['netns', 'add', NS]);
  const dir = mkdtempSync(path.join(tmpdir(), 'wt11b-start-'));
  try {
    const rules = path.join(dir, 'rules.json');
    writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [] }));
    const deep = path.join(dir, 'deep.json');
    writeFileSync(deep, `{"default": "accept", "rules": ${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    const fifoState = path.join(dir, 'fifo-state');
    mkdirSync(fifoState);
    execFileSync('mkfifo', [path.join(fifoState, 'blocks.json')]);
    const linkState = path.join(dir, 'link-state');
    mkdirSync(linkState);
    writeFileSync(path.join(dir, 'elsewhere.json'), '{}');
    symlinkSync(path.join(dir, 'elsewhere.json'), path.join(linkState, 'blocks.json'));
    const logLink = path.join(dir, 'log-link.json');
    symlinkSync(path.join(dir, 'elsewhere.json'), logLink);
    const shared = path.join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const cases: { what: string; args: string[]; message: RegExp; logFile?: string }[] = [
      { what: 'FIFO at blocks.json', args: ['--rules', rules, '--state-dir', fifoState], message: /fifo-state\/blocks\.json: at \(root\): state file .* is a FIFO, not a regular file/ },
      { what: 'symlink at blocks.json', args: ['--rules', rules, '--state-dir', linkState], message: /link-state\/blocks\.json: at \(root\): state file .* is a symbolic link/ },
      { what: 'symlinked --log-file', args: ['--rules', rules], logFile: logLink, message: /--log-file .*log-link\.json is a symbolic link/ },
      { what: '--record-features in a directory anyone may write to', args: ['--rules', rules, '--mode', 'off', '--record-features', path.join(shared, 'w.jsonl')], message: /--record-features .*shared\/w\.jsonl: its directory .* is writable by every user/ },
      { what: 'rules nested 200,000 deep', args: ['--rules', deep], message: /deep\.json: at \/rules(\/0){63}: nested deeper than 64 levels/ },
    ];
    for (const c of cases) {
      const started = Date.now();
      const nf = startInlineNfips(NS, ['--queues', '0', '--stats-interval', '0', ...c.args], { logFile: c.logFile });
      const timer = setTimeout(() => nf.proc.kill('SIGKILL'), 20_000);
      const code = nf.proc.exitCode ?? (await once(nf.proc, 'exit'))[0];
      clearTimeout(timer);
      t.diagnostic(`${c.what}: exit ${String(code)} after ${Date.now() - started} ms: ${nf.output().trim().split('\n').slice(0, 2).join(' | ').slice(0, 300)}`);
      assert.equal(code, 2, `${c.what}: exit code; output:\n${nf.output()}`);
      assert.match(nf.output(), c.message, c.what);
      for (const table of ['mangle', 'filter']) {
        assert.doesNotMatch((await nsExec(NS, 'iptables', ['-w', '-t', table, '-S'])).stdout, /NFIPS/, `${c.what}: nothing installed`);
      }
      nf.cleanup();
    }
  } finally {
    execFileSync('ip', ['netns', 'del', NS]);
    rmSync(dir, { recursive: true, force: true });
  }
});
