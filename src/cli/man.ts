// nfips.1, generated from the command line's own help (`make man`), so the
// man page cannot drift from the flags: every command and subcommand that
// `nfips --help` lists gets a section holding its --help text.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../config/paths';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

/** `nfips ARGS --help` (as wide as yargs makes it when not on a terminal). */
export function helpOf(args: readonly string[]): string {
  const r = spawnSync(process.execPath, [NFIPS, ...args, '--help'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`nfips ${args.join(' ')} --help failed: ${r.stderr}`);
  return r.stdout;
}

/** The command paths a help text lists under "Commands:" (e.g. ["rules", "check"]). */
export function commandsIn(help: string): string[][] {
  const lines = help.split('\n');
  const at = lines.findIndex((l) => l.trim() === 'Commands:');
  if (at < 0) return [];
  const out: string[][] = [];
  for (const l of lines.slice(at + 1)) {
    if (l.trim() === '') break;
    // Commands are indented by two spaces; wrapped descriptions by more.
    const m = /^ {2}nfips\s+(.*?)(?:\s{2,}|$)/.exec(l);
    if (!m) continue;
    const words = (m[1] ?? '').split(/\s+/).filter((w) => w !== '' && !/^[<[]/.test(w));
    if (words.length) out.push(words);
  }
  return out;
}

/** Every command path, depth first: ["run"], ["rules"], ["rules", "check"]... */
export function allCommands(): { path: string[]; help: string }[] {
  const out: { path: string[]; help: string }[] = [];
  const walk = (prefix: string[], help: string) => {
    for (const cmd of commandsIn(help)) {
      // Subcommand lines repeat the parent's words: "nfips rules check <file>".
      const full = cmd.slice(0, prefix.length).join(' ') === prefix.join(' ') && cmd.length > prefix.length ? cmd : [...prefix, ...cmd];
      if (full.length > 3 || out.some((c) => c.path.join(' ') === full.join(' '))) continue;
      if (full.join(' ') === 'completion') {
        // yargs' built-in prints the script even for --help.
        out.push({ path: full, help: 'nfips completion\n\nPrints a bash or zsh completion script that asks nfips itself for completions:\n  nfips completion > /etc/bash_completion.d/nfips\n  nfips completion >> ~/.bashrc' });
        continue;
      }
      const h = helpOf(full);
      // A help that is not the command's own (yargs shows the parent's for an unknown one): stop there.
      if (!h.startsWith(`nfips ${full.join(' ')}`)) throw new Error(`nfips ${full.join(' ')} --help shows another command's help`);
      out.push({ path: full, help: h });
      walk(full, h);
    }
  };
  walk([], helpOf([]));
  return out;
}

/** Text as roff shows it verbatim: backslashes escaped, no line read as a request. */
function roffText(text: string): string {
  return text
    .split('\n')
    .map((l) => l.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1'))
    .join('\n');
}

export function manPage(now = new Date()): string {
  const version = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  // Reproducible builds set SOURCE_DATE_EPOCH.
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  const date = (Number.isFinite(epoch) && epoch > 0 ? new Date(epoch * 1000) : now).toISOString().slice(0, 10);
  const top = helpOf([]);
  const parts = [
    `.TH NFIPS 1 "${date}" "nfips ${version}" "User Commands"`,
    '.SH NAME',
    'nfips \\- inline intrusion prevention for Linux gateways over NFQUEUE',
    '.SH SYNOPSIS',
    '.B nfips',
    '\\fIcommand\\fR [\\fIoptions\\fR]',
    '.SH DESCRIPTION',
    'nfips hands every packet the gateway forwards (and, if asked, every packet addressed to it) to a JSON rule set through NFQUEUE, drops or passes it back with a mark, and blocks sources whose own behaviour is far outside normal traffic. This page is generated from the command line help; the README has the full documentation.',
    '.PP',
    '.nf',
    roffText(top.trimEnd()),
    '.fi',
    '.SH COMMANDS',
  ];
  for (const c of allCommands()) {
    parts.push(`.SS "nfips ${c.path.join(' ')}"`, '.nf', roffText(c.help.trimEnd()), '.fi');
  }
  parts.push(
    '.SH FILES',
    '.TP',
    '.I /etc/nfips/rules.json',
    'the rule file of the service',
    '.TP',
    '.I /etc/default/nfips',
    'extra flags of the service (NFIPS_ARGS)',
    '.TP',
    '.I /var/log/nfips/nfips.json',
    'the JSON event log',
    '.TP',
    '.I /var/lib/nfips/blocks.json',
    'blocks saved across restarts',
    '.TP',
    '.I /run/nfips/nfips.sock',
    'the control socket',
    '.SH EXIT STATUS',
    '0 after a clean stop; 1 when something failed at run time; 2 for bad flags or a bad file (nothing installed).',
    '.SH SEE ALSO',
    '.BR iptables (8),',
    '.BR ipset (8)',
  );
  return `${parts.join('\n')}\n`;
}

if (require.main === module) process.stdout.write(manPage());
