// --metrics-listen parsing, the endpoint's start errors, and the Grafana
// dashboard shipped in packaging/: every expression must name metrics nfips
// really exports (a renamed metric would leave a panel silently empty).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { parseListenAddress } from '../../src/config/listen-address';
import { resolveRunOptions } from '../../src/app/run-options';
import { Metrics, MetricsServer, NFIPS_METRICS } from '../../src/stats/metrics';
import { PACKAGE_ROOT } from '../helpers/env';
import { parseExposition } from '../helpers/exposition';

test('--metrics-listen takes HOST:PORT and names the flag otherwise', () => {
  assert.deepEqual(parseListenAddress('127.0.0.1:9808'), { host: '127.0.0.1', port: 9808 });
  assert.deepEqual(parseListenAddress('[::1]:9808'), { host: '::1', port: 9808 });
  assert.deepEqual(parseListenAddress('localhost:1'), { host: 'localhost', port: 1 });
  for (const bad of ['9808', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '::1:9808', 'a b:80', '127.0.0.1:80x']) {
    assert.throws(() => parseListenAddress(bad), /invalid --metrics-listen .*expected HOST:PORT/, bad);
  }
  assert.equal(resolveRunOptions({}).metricsListen, null, 'off by default');
  assert.throws(() => resolveRunOptions({ metricsListen: 'x' }), /invalid --metrics-listen "x"/);
});

function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: p }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

test('the endpoint serves the exposition format, and a port in use is an error naming the flag', async () => {
  const first = await MetricsServer.listen({ host: '127.0.0.1', port: 0 });
  try {
    const port = (first.server.address() as { port: number }).port;
    await assert.rejects(MetricsServer.listen({ host: '127.0.0.1', port }), /cannot listen on --metrics-listen 127\.0\.0\.1:\d+: the port is in use by another program \(EADDRINUSE\)/);
    const r = await get(port, '/metrics');
    assert.equal(r.status, 200);
    const samples = parseExposition(r.body);
    // Before nfips runs: only the process metrics and nfips_up 0.
    assert.equal(samples.find((s) => s.name === 'nfips_up')?.value, 0);
    assert.ok(samples.some((s) => s.name === 'process_resident_memory_bytes' && s.value > 0));
    assert.equal((await get(port, '/')).status, 404);
  } finally {
    await first.close();
  }
});

test('NFIPS_METRICS lists exactly the nfips_ metrics registered', async () => {
  const names = (await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name);
  assert.deepEqual(names.filter((n) => n.startsWith('nfips_')).sort(), [...NFIPS_METRICS].sort());
});

test('every expression of the Grafana dashboard names metrics nfips exports', async () => {
  const file = path.join(PACKAGE_ROOT, 'packaging', 'nfips-grafana.json');
  const dash = JSON.parse(readFileSync(file, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[]; templating: { list: { type: string; query?: unknown }[] } };
  const json = await new Metrics().registry.getMetricsAsJSON();
  const exported = new Set<string>();
  for (const m of json) {
    exported.add(m.name);
    // Histograms and summaries are exposed as these series.
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(m.name + s);
    if (String(m.type) === 'summary') for (const s of ['_sum', '_count']) exported.add(m.name + s);
  }
  const exprs = dash.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
  exprs.push(...dash.templating.list.filter((v) => v.type === 'query').map((v) => ({ panel: 'templating', expr: JSON.stringify(v.query) })));
  assert.ok(dash.panels.length >= 10, 'panels for the main metrics');
  const used = new Set<string>();
  for (const { panel, expr } of exprs) {
    const names = expr.match(/\b(?:nfips|process|nodejs)_[a-z0-9_]+/g) ?? [];
    assert.ok(names.length > 0, `${panel}: ${expr} names no metric`);
    for (const n of names) {
      assert.ok(exported.has(n), `${panel}: ${n} is not exported by nfips`);
      used.add(n.replace(/_(bucket|sum|count)$/, ''));
    }
  }
  // The main groups each have a panel.
  for (const n of ['nfips_queue_received_packets_total', 'nfips_queue_verdicts_total', 'nfips_kernel_queue_depth', 'nfips_uninspected_packets_total', 'nfips_rule_packets_total', 'nfips_classifier_windows_total', 'nfips_blocks_active', 'nfips_block_kernel_dropped_packets_total', 'nfips_rule_reloads_total', 'process_resident_memory_bytes']) {
    assert.ok(used.has(n), `no panel shows ${n}`);
  }
});

test('two scrapes at once read the same counters, not their sum', async () => {
  const m = new Metrics();
  m.attach({
    queues: () => [],
    kernelQueues: () => [],
    unverdicted: () => null,
    ruleStats: () => ({ version: 1, file: 'r.json', sha256: '', rules: [], default: { action: 'accept', packets: 0, bytes: 0 } }) as never,
    detector: () => null,
    blocks: () => ({ active: 0, counts: {} }),
    // Slow, like the iptables listing behind it: both scrapes wait on it together.
    blockDrops: () => new Promise((resolve) => setTimeout(() => resolve({ sets: { 'nfips-src4': { packets: 100, bytes: 1000 } } }), 50)),
  });
  const [a, b] = await Promise.all([m.registry.metrics(), m.registry.metrics()]);
  for (const text of [a, b]) assert.match(text, /nfips_block_kernel_dropped_packets_total\{[^}]*\} 100\n/);
});
