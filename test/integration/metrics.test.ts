// --metrics-listen on the real path: nfips inline on a namespace gateway,
// traffic through it, the endpoint scraped with curl from inside the
// gateway namespace, the exposition format parsed, and the counters checked
// to move with what was sent. A bad value or a port in use stops the start
// with exit 2 naming the flag, before anything is installed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test, TestContext } from 'node:test';
import { startInlineNfips } from '../../lab/netns/inline-nfips';
import { startPeers } from '../../lab/netns/peers';
import { createTopology, Topology } from '../../lab/netns/topology';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';
import { parseExposition, Sample, sum } from '../helpers/exposition';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const LISTEN = '127.0.0.1:9808';

async function scrape(t: Topology): Promise<Sample[]> {
  const r = await t.exec(t.gateway, 'curl', ['-sS', '-f', '-m', '10', `http://${LISTEN}/metrics`]);
  return parseExposition(r.stdout);
}

async function nothingInstalled(t: Topology): Promise<void> {
  for (const table of ['mangle', 'filter']) assert.doesNotMatch((await t.exec(t.gateway, 'iptables', ['-w', '-t', table, '-S'])).stdout, /NFIPS/);
  assert.equal((await t.exec(t.gateway, 'ipset', ['list', '-n'])).stdout.trim(), '');
}

test('--metrics-listen: scraped in a namespace, the counters follow the traffic; bad value or port in use is exit 2 with nothing installed', { timeout: 240_000 }, async (t: TestContext) => {
  await requireIntegration('ping', 'curl', 'nc');
  const topo = await createTopology('nfmx');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-metrics-'));
  const rules = path.join(dir, 'rules.json');
  writeFileSync(rules, JSON.stringify({ default: 'accept', rules: [{ id: 'no-telnet', action: 'drop', protocol: 'tcp', dport: 23 }, { id: 'web', action: 'accept', protocol: 'tcp', dport: 8080 }] }));
  const peers = await startPeers(topo, topo.server, [['http', 8080]]);
  const base = ['--rules', rules, '--queues', '0', '--stats-interval', '0', '--mode', 'detect'];
  let nf = startInlineNfips(topo.gateway, [...base, '--metrics-listen', 'nonsense']);
  try {
    // A value that is not HOST:PORT: refused before anything is done.
    let code = nf.proc.exitCode ?? (await once(nf.proc, 'exit'))[0];
    assert.equal(code, 2, nf.output());
    assert.match(nf.output(), /invalid --metrics-listen "nonsense": expected HOST:PORT/);
    await nothingInstalled(topo);
    nf.cleanup();

    // The port taken by another program: exit 2 naming the flag, nothing installed.
    const squatter = topo.spawn(topo.gateway, 'nc', ['-l', '127.0.0.1', '9808']);
    await new Promise((r) => setTimeout(r, 500));
    nf = startInlineNfips(topo.gateway, [...base, '--metrics-listen', LISTEN]);
    code = nf.proc.exitCode ?? (await once(nf.proc, 'exit'))[0];
    squatter.kill();
    await once(squatter, 'exit').catch(() => undefined);
    assert.equal(code, 2, nf.output());
    assert.match(nf.output(), /cannot listen on --metrics-listen 127\.0\.0\.1:9808: the port is in use/);
    await nothingInstalled(topo);
    nf.cleanup();

    nf = startInlineNfips(topo.gateway, [...base, '--metrics-listen', LISTEN]);
    await nf.waitFor('ready', 20_000);
    const first = await scrape(topo);
    assert.equal(sum(first, 'nfips_up'), 1);
    assert.ok(sum(first, 'process_resident_memory_bytes') > 0, 'prom-client default process metrics are exported');
    assert.ok(first.some((s) => s.name === 'nfips_kernel_queue_depth' && s.labels.queue === '0'), 'kernel queue depth of queue 0');
    const received0 = sum(first, 'nfips_queue_received_packets_total', { queue: '0' });

    // Traffic: pings, web requests (accepted by rule web), telnet attempts (dropped by no-telnet).
    await topo.exec(topo.client, 'ping', ['-c', '5', '-i', '0.2', '-W', '1', topo.addr.server4]);
    for (let i = 0; i < 3; i++) await topo.exec(topo.client, 'curl', ['-s', '-m', '3', '-o', '/dev/null', `http://${topo.addr.server4}:8080/`]);
    for (let i = 0; i < 3; i++) await topo.exec(topo.client, 'nc', ['-z', '-w', '1', topo.addr.server4, '23'], { allowFail: true });
    // A manual block, and pings it stops in the kernel.
    const add = await execFileP(process.execPath, [NFIPS, 'blocks', 'add', topo.addr.clientExtra4[0]!, '--proto', 'icmp', '--ttl', '120', '--control-socket', nf.controlSocket]);
    assert.match(add.stdout, /blocked/);
    await topo.exec(topo.client, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', '-I', topo.addr.clientExtra4[0]!, topo.addr.server4], { allowFail: true });
    // A reload, timed.
    await execFileP(process.execPath, [NFIPS, 'rules', 'reload', '--control-socket', nf.controlSocket]);
    // More telnet after the reload, so the new rule set's counters move too.
    await topo.exec(topo.client, 'nc', ['-z', '-w', '1', topo.addr.server4, '23'], { allowFail: true });

    const after = await scrape(topo);
    const received = sum(after, 'nfips_queue_received_packets_total', { queue: '0' });
    t.diagnostic(`received ${received0} -> ${received}`);
    assert.ok(received >= received0 + 10, `received moved: ${received0} -> ${received}`);
    assert.ok(sum(after, 'nfips_queue_verdicts_total', { queue: '0', verdict: 'drop' }) >= 4, 'drop verdicts counted');
    assert.ok(sum(after, 'nfips_queue_verdicts_total', { queue: '0', verdict: 'repeat' }) >= 10, 'repeat verdicts counted');
    assert.equal(sum(after, 'nfips_queue_verdicts_total', { queue: '0', verdict: 'failure' }), 0);
    assert.ok(sum(after, 'nfips_queue_decisions_total', { queue: '0', decision: 'dropped' }) >= 4);
    assert.ok(after.some((s) => s.name === 'nfips_queue_malformed_packets_total'), 'malformed counter exported');
    assert.ok(sum(after, 'nfips_rule_packets_total', { rule: 'no-telnet' }) >= 1, 'the telnet rule counted the attempt after the reload');
    assert.ok(sum(after, 'nfips_rule_bytes_total', { rule: 'no-telnet' }) >= 40);
    assert.ok(after.some((s) => s.name === 'nfips_rule_packets_total' && s.labels.rule === '(default)'), 'the default policy has its row');
    assert.equal(sum(after, 'nfips_rules_version'), 1);
    assert.equal(sum(after, 'nfips_rule_reloads_total', { result: 'ok' }), 1);
    assert.equal(sum(after, 'nfips_rule_reload_duration_seconds_count'), 1);
    assert.ok(sum(after, 'nfips_rule_reload_duration_seconds_sum') > 0);
    assert.equal(sum(after, 'nfips_blocks_active'), 1);
    assert.equal(sum(after, 'nfips_block_events_total', { event: 'added' }), 1);
    assert.ok(sum(after, 'nfips_block_kernel_dropped_packets_total', { set: 'nfips-icmp4' }) >= 3, 'the kernel dropped the blocked pings');
    assert.ok(sum(after, 'nfips_classifier_windows_total', { queue: '0', outcome: 'all' }) >= 1, 'classifier windows counted (detect mode)');
    assert.ok(after.some((s) => s.name === 'nfips_uninspected_packets_total' && s.labels.meaning === 'passed uninspected'), 'uninspected packets exported');
    assert.ok(after.some((s) => s.name === 'nfips_source_alerts_total'));
    // Only /metrics is served.
    const other = await topo.exec(topo.gateway, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${LISTEN}/`]);
    assert.equal(other.stdout.trim(), '404');

    assert.equal(await nf.stop(), 0);
    const gone = await topo.exec(topo.gateway, 'curl', ['-s', '-m', '2', `http://${LISTEN}/metrics`], { allowFail: true });
    assert.notEqual(gone.code, 0, 'the endpoint closes with nfips');
  } finally {
    await nf.stop();
    nf.cleanup();
    for (const p of peers) p.kill();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
