// The command line as an operator meets it: exit codes and messages.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { nfipsIsolated } from '../helpers/isolated-cli';
import { PACKAGE_ROOT } from '../../src/config/paths';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const DEFAULT_RULES = path.join(PACKAGE_ROOT, 'rules', 'default.json');
function nfips(...args: string[]) {
  // Commands that could change iptables run in their own network namespace: see test/helpers/isolated-cli.ts.
  const r = args[0] === 'run' || (args[0] === 'iptables' && args[1] !== 'print') ? nfipsIsolated(args) : spawnSync(process.execPath, [NFIPS, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('nfips command line', () => {
  it('iptables print and remove take run\'s chain flags, --reject-mark included', () => {
    const r = nfips('iptables', 'print', '--reject-mark', '0x4/0x4', '--no-ipv6');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /-m mark --mark 0x4\/0x4 .*-j REJECT --reject-with tcp-reset/);
    assert.doesNotMatch(r.out, /0x2\/0x2/);
    const clash = nfips('iptables', 'print', '--reject-mark', '0x1/0x1');
    assert.equal(clash.code, 2);
    assert.match(clash.err, /invalid --reject-mark "0x1\/0x1": its mask shares bits with the default --mark 0x1\/0x1/);
    // remove parses the same flags (it then needs root and iptables; only the parsing is checked here).
    assert.doesNotMatch(nfips('iptables', 'remove', '--reject-mark', '0x4/0x4', '--iptables', '/nonexistent/iptables').err, /Unknown argument/);
  });

  it('refuses bad flags with exit code 2 and says why', () => {
    const bad = nfips('run', '--queues', '5-2', '--hook', 'prerouting', '--mark', '0/0');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /Invalid values:[\s\S]*hook/);
    const range = nfips('run', '--queues', '5-2');
    assert.equal(range.code, 2);
    assert.match(range.err, /nfips: invalid --queues "5-2": 5 is greater than 2/);
    const unknown = nfips('run', '--bogus');
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /Unknown argument: bogus/);
    assert.equal(nfips().code, 2, 'no command');
  });

  it('refuses a missing or invalid rules file before touching anything', () => {
    const missing = nfips('run', '--rules', '/nonexistent/rules.json', '--control-socket', '');
    assert.equal(missing.code, 2);
    assert.match(missing.err, /nfips: invalid rules file \/nonexistent\/rules\.json: 1 problem[\s\S]*cannot read file/);
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-cli-'));
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ rules: [{ action: 'drop', source: '10.0.0.0/33' }] }));
    const bad = nfips('rules', 'check', file);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /\/rules\/0\/source: expected "\*", an IPv4\/IPv6 address or CIDR/);
    const good = nfips('rules', 'check', DEFAULT_RULES);
    assert.equal(good.code, 0);
    assert.match(good.out, /OK \(native format, 3 rules, default accept\)/);
  });

  it('prints exactly what it would install', () => {
    const r = nfips('iptables', 'print', '--queues', '0-3', '--exclude', '192.0.2.0/24', '--fail-closed', '--no-ipv6');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /iptables-restore --noflush -w/);
    assert.match(r.out, /-A NFIPS -s 192\.0\.2\.0\/24 -m comment --comment nfips -j RETURN/);
    assert.match(r.out, /-j NFQUEUE --queue-balance 0:3\n/, 'fail-closed: no --queue-bypass');
    assert.doesNotMatch(r.out, /ip6tables/);
  });

  it('explains a packet, and refuses a bad packet description', () => {
    const rules = DEFAULT_RULES;
    const r = nfips('rules', 'test', rules, '--packet', 'tcp 10.0.0.5:40000 -> 192.0.2.7:23 flags S');
    assert.equal(r.code, 0);
    assert.match(r.out, /verdict: drop by rule #0 "no-telnet"/);
    const bad = nfips('rules', 'test', rules, '--packet', 'tcp nowhere -> 192.0.2.7:23');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /"nowhere" is not an address/);
  });

  it('shows control characters from files and flags as escapes, never raw', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-cli-'));
    const file = path.join(dir, 'forge.json');
    // A description and an id that would start a fake line or recolour the terminal.
    writeFileSync(file, JSON.stringify({ default: 'accept', rules: [{ id: 'a\u001b[31mred', action: 'drop', protocol: 'tcp', dport: 23, description: 'x\nverdict: accept by rule #9 "fake"' }] }));
    const r = nfips('rules', 'test', file, '--packet', 'tcp 10.0.0.5:40000 -> 192.0.2.7:23 flags S');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.split('\n').filter((l) => l.startsWith('verdict:')).length, 1, r.out);
    assert.match(r.out, /"a\\x1b\[31mred" \(x\\nverdict: accept/);
    assert.doesNotMatch(r.out, /\u001b/);
    const bad = nfips('rules', 'check', path.join(dir, 'no\u001b[2Jfile.json'));
    assert.equal(bad.code, 2);
    assert.match(bad.err, /no\\x1b\[2Jfile\.json/);
    assert.doesNotMatch(bad.err, /\u001b/);
  });

  it('says clearly when no nfips is running', () => {
    const r = nfips('status', '--control-socket', '/nonexistent/nfips.sock');
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot reach nfips at \/nonexistent\/nfips\.sock.*is nfips running/);
  });
});
