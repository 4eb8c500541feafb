// The man page is generated from the help and names every command; `make
// install` installs it (and the shell completion).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { manPage } from '../../src/cli/man';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

/** What the completion offers after these words: the commands as yargs itself knows them. */
function completions(...words: string[]): string[] {
  const r = spawnSync(process.execPath, [NFIPS, '--get-yargs-completions', 'nfips', ...words, ''], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l !== '' && !l.startsWith('-'));
}

test('nfips completion prints a bash/zsh script that asks nfips for completions', () => {
  const r = spawnSync(process.execPath, [NFIPS, 'completion'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /complete .*-F _nfips_yargs_completions nfips/);
  assert.match(r.stdout, /nfips --get-yargs-completions/);
  assert.deepEqual(completions('blocks'), ['list', 'add', 'del', 'flush']);
  assert.ok(completions().includes('run') && completions().includes('completion'));
});

test('nfips.1 has a section for every command and subcommand, with its help', { timeout: 120_000 }, () => {
  const page = manPage(new Date('2026-11-30T00:00:00Z'));
  assert.match(page, /^\.TH NFIPS 1 "2026-11-30" "nfips \d+\.\d+\.\d+" "User Commands"\n/);
  const top = completions();
  // The shipped commands, as the completion lists them; the demo is lab code (make demo), not one of them.
  assert.ok(top.includes('run') && top.includes('logs') && !top.includes('demo'), `commands: ${top.join(' ')}`);
  for (const cmd of top) {
    assert.ok(page.includes(`.SS "nfips ${cmd}"`), `no section for ${cmd}`);
    const section = page.slice(page.indexOf(`.SS "nfips ${cmd}"`)).split(/\n\.SS /)[0] ?? '';
    for (const sub of cmd === 'completion' ? [] : completions(cmd)) {
      // A subcommand has its own section; a positional's choice (iptables print) is in the command's.
      assert.ok(page.includes(`.SS "nfips ${cmd} ${sub}"`) || section.includes(`"${sub}"`), `nothing about ${cmd} ${sub}`);
    }
  }
  // Flags come from the help itself.
  assert.match(page, /--metrics-listen/);
  assert.match(page, /\.SS "nfips blocks flush"/);
  assert.doesNotMatch(page, /^\.(?!TH|SH|SS|TP|PP|nf|fi|B |BR|I )/m, 'no help line is read as a roff request');
});

test('make man writes it and make install installs it with the completion script', () => {
  const mk = readFileSync(path.join(PACKAGE_ROOT, 'Makefile'), 'utf8');
  assert.match(mk, /^man: build \$\(MAN\)$/m);
  assert.match(mk, /^install: build \$\(MAN\)$/m);
  assert.match(mk, /install -m 0644 \$\(MAN\) \$\(DESTDIR\)\$\(PREFIX\)\/share\/man\/man1\/nfips\.1/);
  assert.match(mk, /node bin\/nfips completion > \$\(DESTDIR\)\$\(PREFIX\)\/share\/bash-completion\/completions\/nfips/);
});
