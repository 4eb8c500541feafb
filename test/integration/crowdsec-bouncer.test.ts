// nfips as a CrowdSec bouncer against a real Local API (crowdsec 1.4.6 from
// Debian, started by hand inside the namespace): decisions made with cscli
// before and during the run reach the kernel sets with their time left
// (ranges as ranges, IPv6 too), deletions lift them, reserved networks are
// refused, a CrowdSec block cannot be deleted locally without machine
// credentials, and a Local API killed and restarted costs no block and
// doubles none. A bad URL or key file stops the start with nothing installed.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { parseSave } from '../../src/blocks/ipset';
import { InlineNfips, startInlineNfips } from '../../lab/netns/inline-nfips';
import { nsExec } from '../../lab/netns/topology';
import { startLapi } from '../helpers/crowdsec-lapi';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const NS = `nfcs${process.pid}`;

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | null | undefined | false>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('cscli decisions reach nfips and its kernel sets; faults of the Local API cost nothing', { timeout: 240_000 }, async () => {
  await requireIntegration('crowdsec', 'cscli');
  execFileSync('ip', ['netns', 'add', NS]);
  await nsExec(NS, 'ip', ['link', 'set', 'lo', 'up']);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-csb-'));
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [] }));
  const lapi = await startLapi(NS, '127.0.0.1', 8080);
  let nf: InlineNfips | null = null;
  const kernel = async () => parseSave((await nsExec(NS, 'ipset', ['save'])).stdout).filter((e) => e.set.startsWith('nfips-'));
  const member = async (m: string) => (await kernel()).find((e) => e.member === m);
  const cli = async (...a: string[]) => {
    try {
      const r = await execFileP(process.execPath, [NFIPS, ...a, '--control-socket', nf?.controlSocket ?? '']);
      return { code: 0, out: r.stdout, err: r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, out: x.stdout, err: x.stderr };
    }
  };
  try {
    const keyFile = await lapi.addBouncer('gw1');
    await lapi.cscli(['decisions', 'add', '--ip', '192.0.2.7', '--duration', '1h']);
    await lapi.cscli(['decisions', 'add', '--range', '198.51.100.0/24', '--duration', '2h', '--reason', 'scanner range']);
    await lapi.cscli(['decisions', 'add', '--ip', '2001:db8::5', '--duration', '30m']);
    await lapi.cscli(['decisions', 'add', '--ip', '127.0.0.5', '--duration', '1h']);
    await lapi.cscli(['decisions', 'add', '--ip', '169.254.3.3', '--duration', '1h']);

    // Start errors: nothing installed, exit 2.
    for (const [args, message] of [
      [['--crowdsec-url', 'htp:/nowhere', '--crowdsec-bouncer-key-file', keyFile], /invalid --crowdsec-url/],
      [['--crowdsec-url', lapi.url, '--crowdsec-bouncer-key-file', path.join(dir, 'missing.key')], /invalid --crowdsec-bouncer-key-file .*missing\.key/],
    ] as const) {
      const bad = startInlineNfips(NS, ['--rules', rules, '--queues', '0', '--mode', 'off', '--stats-interval', '0', ...args]);
      const code = bad.proc.exitCode ?? (await new Promise<number | null>((r) => bad.proc.once('exit', (c) => r(c))));
      assert.equal(code, 2, bad.output());
      assert.match(bad.output(), message);
      bad.cleanup();
      assert.deepEqual(await kernel(), [], 'no sets');
      assert.doesNotMatch((await nsExec(NS, 'iptables', ['-t', 'mangle', '-S'])).stdout, /NFIPS/, 'no chain');
    }

    nf = startInlineNfips(NS, ['--rules', rules, '--queues', '0', '--mode', 'off', '--stats-interval', '0', '--crowdsec-url', lapi.url, '--crowdsec-bouncer-key-file', keyFile, '--crowdsec-interval', '1s']);
    const first = await nf.waitFor('crowdsec_pull', 20_000, (r) => r.startup === true);
    assert.deepEqual([first.new, first.added, first.refused], [5, 3, 2]);
    const e1 = await member('192.0.2.7');
    assert.ok(e1 && e1.set === 'nfips-src4' && e1.timeout > 3500 && e1.timeout <= 3600, `192.0.2.7 with about 1 h left: ${JSON.stringify(e1)}`);
    const range = await member('198.51.100.0/24');
    assert.ok(range && range.timeout > 7100, `the range stays a range: ${JSON.stringify(range)}`);
    assert.equal((await member('2001:db8::5'))?.set, 'nfips-src6');
    assert.equal(await member('127.0.0.5'), undefined);
    const refused = nf.events('block_refused').map((r) => `${String(r.target)} ${String(r.reason)}`);
    assert.equal(refused.length, 2);
    assert.match(refused.join('\n'), /127\.0\.0\.5 allowlisted: .* \(reserved\)/);
    assert.match(refused.join('\n'), /169\.254\.3\.3 allowlisted: .* \(reserved\)/);

    const list = JSON.parse((await cli('blocks', 'list', '--json')).out) as { key: string; origin: string; scenario?: string }[];
    assert.deepEqual(list.map((b) => [b.key, b.origin]).sort(), [['192.0.2.7', 'crowdsec'], ['198.51.100.0/24', 'crowdsec'], ['2001:db8::5', 'crowdsec']]);
    assert.equal(list.find((b) => b.key === '198.51.100.0/24')?.scenario, 'scanner range');

    // While running: an add and a delete arrive within the interval.
    await lapi.cscli(['decisions', 'add', '--ip', '203.0.113.9', '--duration', '10m']);
    await until('203.0.113.9 in the kernel set', 10_000, () => member('203.0.113.9'));
    await lapi.cscli(['decisions', 'delete', '--ip', '192.0.2.7']);
    await until('192.0.2.7 lifted', 10_000, async () => (await member('192.0.2.7')) === undefined);
    assert.ok(nf.events('unblock').some((r) => r.src_ip === '192.0.2.7' && r.reason === 'crowdsec decision deleted'));

    // No machine credentials: the decision is not nfips' to delete.
    const del = await cli('blocks', 'del', '198.51.100.0/24');
    assert.notEqual(del.code, 0);
    assert.match(del.err, /198\.51\.100\.0\/24 is a CrowdSec decision \(scanner range\); deleting it at the Local API needs --crowdsec-machine-id/);
    assert.ok(await member('198.51.100.0/24'), 'still blocked');

    const status = JSON.parse((await cli('status', '--json')).out) as { crowdsec: { state: string; decisions_known: number; publisher: unknown } };
    assert.deepEqual([status.crowdsec.state, status.crowdsec.decisions_known, status.crowdsec.publisher], ['connected', 5, null]);
    assert.match((await cli('status')).out, /crowdsec: http:\/\/127\.0\.0\.1:8080 connected, last pull \S+; decisions: 5 known/);

    // Two decisions on one IP: 1.4.6 streams only the longest unless asked with dedup=false; deleting
    // the longest must leave the block to the shorter one, not lift it.
    await lapi.cscli(['decisions', 'add', '--ip', '192.0.2.77', '--duration', '1h', '--reason', 'short']);
    await lapi.cscli(['decisions', 'add', '--ip', '192.0.2.77', '--duration', '2h', '--reason', 'long']);
    const longer = await until('192.0.2.77 blocked for 2 h', 10_000, async () => {
      const m = await member('192.0.2.77');
      return m && m.timeout > 7100 ? m : null;
    });
    assert.ok(longer);
    assert.equal(JSON.parse((await cli('status', '--json')).out).crowdsec.decisions_known, 7, 'both decisions on 192.0.2.77 are known');
    const listed = JSON.parse(await lapi.cscli(['decisions', 'list', '--ip', '192.0.2.77', '-o', 'json'])) as { decisions: { id: number; duration: string; scenario: string }[] }[];
    const long = listed.flatMap((a) => a.decisions).find((d) => d.scenario === 'long');
    assert.ok(long, JSON.stringify(listed));
    await lapi.cscli(['decisions', 'delete', '--id', String(long.id)]);
    await until('192.0.2.77 shortened to the 1 h decision', 10_000, async () => {
      const m = await member('192.0.2.77');
      assert.ok(m, '192.0.2.77 must stay blocked by its shorter decision');
      return m.timeout <= 3600;
    });
    assert.ok(((await member('192.0.2.77'))?.timeout ?? 0) > 3400);

    // Outage: logged once, blocks stay; back: logged once, a full resync, nothing lost or doubled.
    const before = (await kernel()).map((e) => e.member).sort();
    await lapi.kill();
    await nf.waitFor('crowdsec_unreachable', 10_000);
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal(nf.events('crowdsec_unreachable').length, 1, 'once per outage');
    assert.deepEqual((await kernel()).map((e) => e.member).sort(), before, 'local blocks stay in force');
    assert.equal(JSON.parse((await cli('status', '--json')).out).crowdsec.state, 'unreachable');
    await lapi.start();
    const back = await nf.waitFor('crowdsec_restored', 40_000);
    assert.equal(back.resynchronised, true);
    const resync = nf.events('crowdsec_pull').filter((r) => r.startup === true);
    assert.equal(resync.length, 2);
    assert.deepEqual([resync[1]?.added, resync[1]?.removed], [0, 0], 'the resync changed nothing');
    assert.deepEqual((await kernel()).map((e) => e.member).sort(), before);
    assert.equal(JSON.parse((await cli('blocks', 'list', '--json')).out).length, before.length);
    await lapi.cscli(['decisions', 'add', '--ip', '203.0.113.10', '--duration', '5m']);
    await until('a decision after the outage', 10_000, () => member('203.0.113.10'));
    assert.equal(await nf.stop(), 0);
  } finally {
    if (nf) {
      await nf.stop();
      nf.cleanup();
    }
    await lapi.destroy();
    execFileSync('ip', ['netns', 'del', NS]);
    rmSync(dir, { recursive: true, force: true });
  }
});
