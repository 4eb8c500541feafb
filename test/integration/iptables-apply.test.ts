// Installs the nfips chain for real, inside a throwaway network namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ChainWatchdog } from '../../src/iptables/watchdog';
import { FailOpenMonitor } from '../../src/stats/fail-open';
import { IptablesPlan, JumpRule, QueueTable, bodyLines, buildPlan, defaultPlanOptions, queueTable, ruleLine } from '../../src/iptables/plan';
import { inspectTable } from '../../src/iptables/chain-check';
import { Family, IptablesBinaries } from '../../src/exec/tools';
import { install, iptablesAvailable, remove } from '../../src/iptables/apply';
import { readCounters } from '../../src/iptables/chain-counters';
import { renderPlanText } from '../../src/iptables/commands';
import { requireIntegration } from '../helpers/env';

const execFileP = promisify(execFile);
const NS = `nfipsipt${process.pid}`;

async function sh(file: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await execFileP(file, args, { timeout: 30_000 });
    return { ok: true, out: r.stdout };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return { ok: false, out: (err.stderr ?? '').trim() || err.message };
  }
}

async function ipt(family: Family, ...args: string[]): Promise<string> {
  const r = await sh('ip', ['netns', 'exec', NS, family === 'ipv4' ? 'iptables' : 'ip6tables', '-w', ...args]);
  assert.ok(r.ok, `${family} iptables ${args.join(' ')}: ${r.out}`);
  return r.out;
}

const lines = (s: string): string[] => s.split('\n').map((l) => l.trim()).filter((l) => l !== '');
const TABLES: readonly QueueTable[] = ['mangle', 'filter'];
const chainRules = async (f: Family, chain: string, table: QueueTable = 'filter'): Promise<string[]> => lines(await ipt(f, '-t', table, '-S', chain)).filter((l) => l.startsWith('-A '));
const hasChain = async (f: Family, table: QueueTable = 'filter'): Promise<boolean> => lines(await ipt(f, '-t', table, '-S')).includes('-N NFIPS');

async function setupReason(): Promise<string | null> {
  const r = await sh('ip', ['netns', 'add', NS]);
  if (!r.ok) return `cannot create network namespace ${NS}: ${r.out}`;
  const why = await iptablesAvailable({ iptables: 'iptables', ip6tables: 'ip6tables', netns: NS });
  return why === null ? null : `iptables unusable in namespace: ${why}`;
}

function planFor(over: Partial<Parameters<typeof buildPlan>[0]> = {}): IptablesPlan {
  return buildPlan({ ...defaultPlanOptions(), hook: 'both', queues: { first: 0, last: 3 }, exclude: ['10.9.0.0/16', 'fd09::/32'], ...over });
}

/** Every table's chain as planned; each hook chain with exactly one nfips jump at position 1, the operator's filter ACCEPT below it. */
async function assertInstalled(plan: IptablesPlan): Promise<void> {
  for (const fp of plan.families) {
    const f = fp.family;
    for (const table of TABLES) {
      const tp = fp.tables.find((x) => x.table === table);
      if (!tp) {
        assert.ok(!(await hasChain(f, table)), `${f} ${table}: no NFIPS chain expected`);
        continue;
      }
      assert.ok(await hasChain(f, table), `${f} ${table}: chain NFIPS missing`);
      assert.deepEqual(await chainRules(f, 'NFIPS', table), bodyLines(tp, fp.chain), `${f} ${table}: NFIPS rules`);
      for (const parent of ['FORWARD', 'INPUT'] as const) {
        const jump: JumpRule | undefined = tp.jumps.find((j) => j.parent === parent);
        const operator = table === 'filter' && parent === 'FORWARD' ? ['-A FORWARD -j ACCEPT'] : [];
        assert.deepEqual(await chainRules(f, parent, table), [...(jump ? [ruleLine('-A', parent, jump.spec)] : []), ...operator], `${f} ${table}: ${parent}`);
      }
    }
  }
}

async function setNames(): Promise<string[]> {
  const r = await sh('ip', ['netns', 'exec', NS, 'ipset', 'list', '-n']);
  assert.ok(r.ok, r.out);
  return lines(r.out).filter((l) => l.startsWith('nfips-')).sort();
}

async function assertClean(families: Family[]): Promise<void> {
  for (const f of families) {
    for (const table of TABLES) {
      assert.ok(!(await hasChain(f, table)), `${f} ${table}: chain NFIPS still there`);
      const all = lines(await ipt(f, '-t', table, '-S'));
      assert.deepEqual(all.filter((l) => l.includes('NFIPS')), [], `${f} ${table}: nfips leftovers`);
    }
    assert.deepEqual(await chainRules(f, 'FORWARD'), ['-A FORWARD -j ACCEPT'], `${f}: operator rule must survive`);
  }
}

test('iptables install/remove in a network namespace', async (t) => {
  await requireIntegration();
  const reason = await setupReason();
  if (reason !== null) {
    await sh('ip', ['netns', 'del', NS]);
    assert.fail(reason);
  }
  const bins: IptablesBinaries = { iptables: 'iptables', ip6tables: 'ip6tables', netns: NS };
  try {
    for (const f of ['ipv4', 'ipv6'] as const) await ipt(f, '-t', 'filter', '-A', 'FORWARD', '-j', 'ACCEPT');
    const plan = planFor();

    await t.test('install creates the chain and one jump at position 1 (ipv4 and ipv6)', async () => {
      const s = await install(plan, bins);
      assert.deepEqual(s.families.map((f) => [f.family, f.rules, f.jumps.join(','), f.table]), [
        ['ipv4', 12, 'FORWARD,INPUT', 'mangle'],
        ['ipv6', 12, 'FORWARD,INPUT', 'mangle'],
      ]);
      await assertInstalled(plan);
      assert.deepEqual(await setNames(), ['nfips-icmp4', 'nfips-icmp6', 'nfips-src4', 'nfips-src6', 'nfips-svc4', 'nfips-svc6', 'nfips-tcp4', 'nfips-tcp6', 'nfips-udp4', 'nfips-udp6']);
    });

    await t.test('install again: still one jump each, no duplicate rules', async () => {
      const s = await install(plan, bins);
      assert.deepEqual(s.families.map((f) => [f.stale.jumpsRemoved.length, f.stale.chainRemoved, f.stale.setsRemoved.length]), [[4, true, 5], [4, true, 5]]);
      await assertInstalled(plan);
      assert.equal((await setNames()).length, 10, 'block sets recreated, not doubled');
    });

    await t.test('install replaces stale jumps left by a crash, even hand-made ones', async () => {
      await ipt('ipv4', '-t', 'filter', '-I', 'FORWARD', '2', '-j', 'NFIPS');
      await ipt('ipv4', '-t', 'filter', '-I', 'FORWARD', '1', '-m', 'comment', '--comment', 'nfips', '-j', 'NFIPS');
      await ipt('ipv6', '-t', 'filter', '-A', 'INPUT', '-j', 'NFIPS');
      await install(plan, bins);
      await assertInstalled(plan);
    });

    await t.test('counters are readable per rule', async () => {
      for (const fp of plan.families) {
        const c = await readCounters(fp.family, bins, 'NFIPS', 'mangle');
        assert.deepEqual(c.map((r) => r.target), ['ACCEPT', 'RETURN', 'RETURN', 'RETURN', 'DROP', 'DROP', 'DROP', 'DROP', 'DROP', 'NFQUEUE']);
        assert.ok(c.every((r) => r.packets === 0 && r.bytes === 0));
        assert.match(c[0]?.extra ?? '', /mark match 0x2\/0x2/);
        assert.match(c[1]?.extra ?? '', /mark match 0x1\/0x1/);
        assert.equal(c[2]?.source, fp.family === 'ipv4' ? '10.9.0.0/16' : 'fd09::/32');
        assert.match(c[4]?.extra ?? '', /match-set nfips-src[46] src/);
        assert.match(c[8]?.extra ?? '', /match-set nfips-svc[46] src,dst/);
        assert.match(c[9]?.extra ?? '', /NFQUEUE balance 0:3 bypass/);
        const r = await readCounters(fp.family, bins, 'NFIPS', 'filter');
        assert.deepEqual(r.map((x) => x.target), ['REJECT', 'REJECT']);
        assert.match(r[0]?.extra ?? '', /mark match 0x2\/0x2.*reject-with tcp-reset/);
      }
    });

    await t.test('excludes written in any form read back as planned, so the watchdog sees no damage', async () => {
      // Each of these reads back differently from how it was typed.
      const odd = planFor({ exclude: ['10.9.1.2/16', '10.8.0.1', 'FD09:0:0::/32', '::1.2.3.4', '::ffff:10.7.0.0/112', '10.8.0.1/32'] });
      await install(odd, bins);
      await assertInstalled(odd);
      for (const fp of odd.families) {
        for (const tp of fp.tables) {
          const listing = await ipt(fp.family, '-t', tp.table, '-v', '-S');
          assert.deepEqual(inspectTable(fp, tp, listing).damage, [], `${fp.family} ${tp.table}`);
        }
      }
      await install(plan, bins);
    });

    await t.test('a listing that fails once does not count the queued packets twice', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'nfips-ipt-'));
      const flag = path.join(dir, 'fail');
      const wrapper = path.join(dir, 'iptables');
      // Fails while the flag file exists, as a busy xtables lock or an OOM would.
      writeFileSync(wrapper, `#!/bin/sh\n[ -e ${flag} ] && { echo "flaky listing" >&2; exit 4; }\nexec iptables "$@"\n`, { mode: 0o755 });
      const monitor = new FailOpenMonitor({ failClosed: false, log: { event: () => undefined }, received: () => 0, waiting: () => 0 });
      const dog = new ChainWatchdog({ plan, bins: { ...bins, iptables: wrapper }, log: { event: () => undefined }, blocks: () => [], onObservation: (o) => monitor.observe(o.queued) });
      try {
        // Give the IPv4 NFQUEUE rule a count, as traffic would (iptables -R -c
        // sets a rule's counters; ip6tables-nft 1.8.9 ignores -c, so IPv4 only).
        const fp = plan.families.find((f) => f.family === 'ipv4');
        const tp = fp?.tables.find((x) => x.queues);
        assert.ok(fp && tp);
        const body = bodyLines(tp, fp.chain);
        await ipt('ipv4', '-t', tp.table, '-R', fp.chain, String(body.length), '-c', '50', '5000', ...(body.at(-1) ?? '').split(' ').slice(2));
        await dog.check();
        const counted = monitor.queued;
        assert.equal(counted, 50, `the NFQUEUE rule's count: ${JSON.stringify(dog.last?.queued)} ${dog.last?.errors}`);
        writeFileSync(flag, '');
        await dog.check();
        assert.ok((dog.last?.errors ?? []).some((e) => /flaky listing/.test(e)), 'the failed listing is reported');
        rmSync(flag);
        await dog.check();
        assert.equal(monitor.queued, counted, 'the counter is the same one, read again');
      } finally {
        await dog.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    await t.test('changing options (hook forward, one queue, fail-closed, --table filter and back) replaces the old install', async () => {
      const p2 = planFor({ hook: 'forward', queues: { first: 5, last: 5 }, failClosed: true, exclude: [] });
      await install(p2, bins);
      await assertInstalled(p2);
      for (const fp of p2.families) {
        assert.match((await chainRules(fp.family, 'NFIPS', 'mangle')).at(-1) ?? '', /-j NFQUEUE --queue-num 5$/);
        assert.deepEqual(await chainRules(fp.family, 'INPUT', 'mangle'), []);
      }
      const p3 = planFor({ table: 'filter' });
      await install(p3, bins);
      await assertInstalled(p3);
      for (const fp of p3.families) assert.deepEqual(await chainRules(fp.family, 'NFIPS'), bodyLines(queueTable(fp), 'NFIPS'));
      await install(plan, bins);
      await assertInstalled(plan);
    });

    await t.test('remove deletes chain and jumps, keeps the operator rule; removing twice is fine', async () => {
      const s = await remove({}, bins);
      assert.deepEqual(s.families.map((f) => [f.family, f.jumpsRemoved.length, f.chainRemoved, f.rulesRemoved]), [
        ['ipv4', 4, true, 12],
        ['ipv6', 4, true, 12],
      ]);
      await assertClean(['ipv4', 'ipv6']);
      assert.deepEqual(await setNames(), [], 'block sets destroyed');
      const again = await remove({}, bins);
      assert.ok(again.families.every((f) => f.jumpsRemoved.length === 0 && !f.chainRemoved && f.skipped === undefined));
      await assertClean(['ipv4', 'ipv6']);
    });

    await t.test('the printed plan, run by a shell, gives the same rules as install', async () => {
      const r = await sh('sh', ['-c', renderPlanText(plan, bins)]);
      assert.ok(r.ok, r.out);
      await assertInstalled(plan);
      await remove({}, bins);
      await assertClean(['ipv4', 'ipv6']);
    });

    await t.test('rollback: ipv6 failing after ipv4 succeeded leaves nothing, with a clear error', async (st) => {
      const broken: IptablesBinaries = { ...bins, ip6tables: '/nonexistent/ip6tables' };
      await assert.rejects(install(plan, broken), (e: Error) => {
        assert.match(e.message, /install failed \(ipv6\)/);
        assert.match(e.message, /\/nonexistent\/ip6tables -w -t (mangle|filter) -S/);
        assert.match(e.message, /No such file or directory/);
        assert.match(e.message, /rolled back \(ipv4: removed; ipv6: not touched, its iptables cannot run\)/);
        st.diagnostic(`error: ${e.message}`);
        return true;
      });
      await assertClean(['ipv4']);
      assert.ok(!(await hasChain('ipv6')));
    });

    await t.test('rollback: a failing ip6tables-restore removes the ipv4 part too', async () => {
      await install(plan, bins);
      const broken: IptablesBinaries = { ...bins, ip6tablesRestore: '/nonexistent/ip6tables-restore' };
      await assert.rejects(install(plan, broken), /ip6tables-restore --noflush -w` failed .*nonexistent.*rolled back \(ipv4: removed; ipv6: removed\)/);
      await assertClean(['ipv4', 'ipv6']);
    });

    await t.test('iptablesAvailable names the missing binary', async () => {
      const why = await iptablesAvailable({ ...bins, ip6tables: '/nonexistent/ip6tables' });
      assert.match(why ?? '', /^\/nonexistent\/ip6tables \(needed for ipv6\) is not usable/);
      assert.equal(await iptablesAvailable({ ...bins, ip6tables: '/nonexistent/ip6tables' }, ['ipv4']), null);
    });
  } finally {
    const r = await sh('ip', ['netns', 'del', NS]);
    assert.ok(r.ok, `could not delete namespace ${NS}: ${r.out}`);
  }
});
