// How fast nfips applies a large CrowdSec decision stream: 10,000 decisions
// (IPv4 hosts, IPv4 ranges, IPv6 hosts) are put into a real Local API,
// then one nfips' first (startup) pull applies them all to its kernel sets.
// Baseline in the same run: one `ipset add` process per entry, the way a
// naive bouncer would do it, timed on a sample and scaled. Target (issue 15):
// 10,000 decisions in at most 2 s. Run as root: node dist/bench/crowdsec-bench.js [--decisions N]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/config/paths';
import { parseSave } from '../src/blocks/ipset';
import { startInlineNfips } from '../lab/netns/inline-nfips';
import { nsExec, PROCESS_TAG } from '../lab/netns/topology';
import { startLapi } from '../test/helpers/crowdsec-lapi';

const NS = `nfcsbench${PROCESS_TAG}`;
const TARGET_MS = 2000;
const BASELINE_SAMPLE = 500;

function argNumber(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/** n distinct networks: 80% IPv4 hosts in 100.64/10, 10% IPv4 /24 ranges in 100.96/11, 10% IPv6 hosts. */
function values(n: number): { value: string; scope: 'Ip' | 'Range' }[] {
  const out: { value: string; scope: 'Ip' | 'Range' }[] = [];
  for (let i = 0; i < n; i++) {
    const k = i % 10;
    if (k < 8) out.push({ value: `100.${64 + ((i >> 16) & 31)}.${(i >> 8) & 255}.${i & 255}`, scope: 'Ip' });
    else if (k === 8) out.push({ value: `100.${96 + ((i / 10) >> 8)}.${(i / 10) & 255}.0/24`, scope: 'Range' });
    else out.push({ value: `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`, scope: 'Ip' });
  }
  return out;
}

async function main(): Promise<void> {
  const n = argNumber('--decisions', 10_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-csbench-'));
  execFileSync('ip', ['netns', 'add', NS]);
  await nsExec(NS, 'ip', ['link', 'set', 'lo', 'up']);
  const lapi = await startLapi(NS, '127.0.0.1', 8080);
  try {
    const key = await lapi.addBouncer('bench');
    const pwFile = await lapi.addMachine('bench-feeder');
    const password = execFileSync('cat', [pwFile]).toString().trim();
    // The decisions go in as one alert from a machine, the way a log processor sends them.
    const login = JSON.parse((await nsExec(NS, 'curl', ['-s', '-A', 'bench/1', '-X', 'POST', '-d', JSON.stringify({ machine_id: 'bench-feeder', password, scenarios: [] }), `${lapi.url}/v1/watchers/login`])).stdout) as { token: string };
    const now = new Date().toISOString();
    const decisions = values(n).map((v) => ({ duration: '4h', origin: 'bench', scenario: 'bench/load', scope: v.scope, type: 'ban', value: v.value, simulated: false }));
    const alert = [{ scenario: 'bench/load', scenario_hash: '', scenario_version: '', message: 'bench', events_count: 1, events: [{ timestamp: now, meta: [] }], start_at: now, stop_at: now, capacity: 0, leakspeed: '0', simulated: false, source: { scope: 'Ip', value: '100.64.0.0', ip: '100.64.0.0' }, meta: [], decisions }];
    const body = path.join(dir, 'alert.json');
    writeFileSync(body, JSON.stringify(alert));
    const feed = await nsExec(NS, 'curl', ['-s', '-m', '600', '-A', 'bench/1', '-H', `Authorization: Bearer ${login.token}`, '-X', 'POST', '--data-binary', `@${body}`, `${lapi.url}/v1/alerts`], { timeoutMs: 620_000 });
    if (!feed.stdout.startsWith('[')) throw new Error(`the Local API refused the decisions: ${feed.stdout}`);

    // Baseline, same run, same namespace: one ipset process per entry.
    await nsExec(NS, 'ipset', ['create', 'benchbase', 'hash:net', 'family', 'inet', 'timeout', '0', 'maxelem', '65536']);
    const b0 = performance.now();
    for (let i = 0; i < BASELINE_SAMPLE; i++) await nsExec(NS, 'ipset', ['add', 'benchbase', `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, 'timeout', '3600']);
    const perProcessMs = (performance.now() - b0) / BASELINE_SAMPLE;
    await nsExec(NS, 'ipset', ['destroy', 'benchbase']);

    const rules = path.join(dir, 'rules.json');
    writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [] }));
    const nf = startInlineNfips(NS, ['--rules', rules, '--queues', '0', '--mode', 'off', '--stats-interval', '0', '--crowdsec-url', lapi.url, '--crowdsec-bouncer-key-file', key]);
    try {
      const pull = await nf.waitFor('crowdsec_pull', 120_000, (r) => r.startup === true);
      const inKernel = parseSave((await nsExec(NS, 'ipset', ['save'])).stdout).filter((e) => e.set.startsWith('nfips-')).length;
      const applyMs = Number(pull.apply_ms);
      const naiveMs = perProcessMs * n;
      const result = {
        decisions: n,
        added: pull.added,
        in_kernel_sets: inKernel,
        fetch_ms: pull.fetch_ms,
        apply_ms: applyMs,
        target_ms: TARGET_MS,
        within_target: applyMs <= TARGET_MS,
        baseline_ipset_process_per_entry_ms: Number(perProcessMs.toFixed(3)),
        baseline_scaled_ms: Math.round(naiveMs),
        speedup_vs_baseline: Number((naiveMs / Math.max(applyMs, 1)).toFixed(1)),
      };
      const outDir = path.join(PACKAGE_ROOT, 'bench', 'out');
      mkdirSync(outDir, { recursive: true });
      writeFileSync(path.join(outDir, 'crowdsec-bench.json'), `${JSON.stringify(result, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      process.stdout.write(`${n} decisions: fetched in ${String(pull.fetch_ms)} ms, applied in ${applyMs} ms (target ${TARGET_MS} ms: ${result.within_target ? 'met' : 'MISSED'}); ${inKernel} entries in the kernel sets; one ipset process per entry would take ~${result.baseline_scaled_ms} ms (${result.speedup_vs_baseline}x)\n`);
      if (inKernel !== n || !result.within_target) process.exitCode = 1;
    } finally {
      await nf.stop();
      nf.cleanup();
    }
  } finally {
    await lapi.destroy();
    execFileSync('ip', ['netns', 'del', NS]);
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e: unknown) => {
  process.stderr.write(`crowdsec-bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
