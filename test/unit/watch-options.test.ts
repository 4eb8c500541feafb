// nfips watch: its flags, what they mean for the chain, and how status reads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveRunOptions } from '../../src/app/run-options';
import { captureSourceFor, doubleCaptureWarning, installsChain, planFor, queueNumbers } from '../../src/app/run-config';
import { formatStatus, StatusView } from '../../src/cli/status-text';
import { summaryLine } from '../../src/stats/summary';
import { captureRuleWarnings } from '../../src/app/rule-warnings';
import { parseRuleText } from '../../src/rules/load';

const problems = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('expected an error');
};

describe('nfips watch options', () => {
  it('defaults: detect, rules only logged, no chain, one worker', () => {
    const o = resolveRunOptions({ iface: ['eth1'] }, 'watch');
    assert.equal(o.mode, 'detect');
    assert.equal(o.rulesMode, 'log');
    assert.deepEqual(o.capture, { ifaces: ['eth1'], nflogGroups: [], filter: '', workers: 1, snaplen: 2048, bufferMb: 32, promisc: true, direction: 'both', block: false });
    assert.equal(installsChain(o), false);
    assert.deepEqual(queueNumbers(o), [0]);
    assert.deepEqual(captureSourceFor(o).devices, ['eth1']);
  });

  it('--block means prevent, and installs a chain of block DROPs only, in filter', () => {
    const o = resolveRunOptions({ iface: ['eth1', 'eth2'], workers: '3', block: true }, 'watch');
    assert.equal(o.mode, 'prevent');
    assert.equal(installsChain(o), true);
    assert.deepEqual(queueNumbers(o), [0, 1, 2]);
    assert.deepEqual(captureSourceFor(o).devices, ['eth1', 'eth2']);
    assert.deepEqual(captureSourceFor(resolveRunOptions({ iface: ['eth1'], nflog: ['5'] }, 'watch')).devices, ['eth1', 'nflog:5']);
    const plan = planFor(o);
    for (const fp of plan.families) {
      assert.equal(fp.tables.length, 1);
      const t = fp.tables[0];
      assert.equal(t.table, 'filter');
      assert.ok(t.body.length > 0);
      for (const spec of t.body) assert.deepEqual(spec.slice(-2), ['-j', 'DROP'], spec.join(' '));
      assert.ok(!t.restore.includes('NFQUEUE'));
      assert.deepEqual(t.jumps.map((j) => j.parent), ['FORWARD']);
    }
  });

  it('--mode off with --block, and --mode prevent, are refused with the way to block', () => {
    assert.match(problems(() => resolveRunOptions({ iface: ['eth1'], mode: 'off', block: true }, 'watch')), /--block with --mode off/);
    assert.equal(resolveRunOptions({ iface: ['eth1'], mode: 'off' }, 'watch').mode, 'off');
    assert.match(problems(() => resolveRunOptions({ iface: ['eth1'], mode: 'prevent' }, 'watch')), /--mode prevent for nfips watch: .*--block/);
  });

  it('needs something to capture, and names each bad value', () => {
    assert.match(problems(() => resolveRunOptions({}, 'watch')), /needs what to capture: --iface IF .* --nflog GROUP/);
    const m = problems(() => resolveRunOptions({ iface: ['eth1', 'eth1', 'bad name'], nflog: ['70000', 'x'], workers: '0', snaplen: '10', captureBufferMb: 'lots' }, 'watch'));
    assert.match(m, /invalid --iface "bad name"/);
    assert.match(m, /names an interface twice/);
    assert.match(m, /invalid --nflog "70000"/);
    assert.match(m, /invalid --nflog "x"/);
    assert.match(m, /invalid --workers "0"/);
    assert.match(m, /invalid --snaplen "10"/);
    assert.match(m, /invalid --capture-buffer-mb "lots"/);
  });

  it('NFLOG cannot be split over workers', () => {
    assert.match(problems(() => resolveRunOptions({ nflog: ['5'], workers: '2' }, 'watch')), /--workers 2 with --nflog/);
    assert.match(problems(() => resolveRunOptions({ iface: ['eth1'], nflog: ['5'], workers: '2' }, 'watch')), /--workers 2 with --nflog/);
  });

  it("refuses run's queue flags, and run refuses watch's", () => {
    const m = problems(() => resolveRunOptions({ iface: ['eth1'], queues: '0-3', rulesMode: 'enforce', crowdsecUrl: 'http://x' }, 'watch'));
    assert.match(m, /invalid --queues for nfips watch/);
    assert.match(m, /invalid --rules-mode for nfips watch/);
    assert.match(m, /invalid --crowdsec-url for nfips watch/);
    assert.match(problems(() => resolveRunOptions({ iface: ['eth1'] })), /invalid --iface for nfips run: it applies to nfips watch/);
    assert.equal(resolveRunOptions({}).capture, null);
  });
});

describe('nfips watch status and summary', () => {
  const base: StatusView = {
    pid: 7,
    uptime_s: 65,
    mode: 'detect',
    rules_mode: 'log',
    rules: { version: 0, file: '/r.json', sha256: 'a'.repeat(64), count: 3, lock: false, default: 'accept' },
    unverdicted: null,
    capture: { ifaces: ['eth1'], nflog_groups: [5], filter: 'not port 22', block: false },
    workers: [{ queue: 0, received: 1000, dryRunPassed: 12, capture: { drops: 34, if_drops: 0, skipped: 2 }, classifier: null }],
    blocks: null,
  };

  it('shows what is watched, per worker what the capture lost, and that nothing is blocked', () => {
    const text = formatStatus(base);
    assert.match(text, /watching interface eth1, NFLOG group 5 \(filter: not port 22\): passive/);
    assert.match(text, /^0 +1000 +12 +34 +0 +2 /m);
    assert.match(text, /blocks: none enforced \(nfips watch without --block\)/);
    assert.doesNotMatch(text, /unverdicted/);
  });

  it('summary line counts would-drops and capture losses', () => {
    const q = { queue: 0, received: 500, dryRunPassed: 9, captureDrops: 4, captureIfDrops: 1 } as unknown as Parameters<typeof summaryLine>[0]['queues'][number];
    // The interface's own drop counter is the same for every worker on it: counted once.
    const q2 = { ...q, queue: 1, received: 300, dryRunPassed: 1, captureDrops: 2, captureIfDrops: 1 };
    const line = summaryLine({ queues: [q, q2], previousReceived: 0, seconds: 10, alerts: 2, blocks: null, uninspected: null, capture: true });
    assert.equal(line, 'packets 800 (80 pps) captured: rules would drop 10; alerts 2; capture lost 7');
  });
});

describe('rules a capture reads differently', () => {
  it('in, out and hook rules are named, each with what it does under nfips watch', () => {
    const rs = parseRuleText(JSON.stringify({ default: 'accept', rules: [
      { id: 'plain', action: 'drop', protocol: 'tcp', dport: 23 },
      { id: 'from-lan', action: 'drop', in: 'eth1', protocol: 'tcp', dport: 22 },
      { id: 'to-wan', action: 'drop', out: 'eth0', protocol: 'udp', dport: 53 },
      { id: 'local', action: 'drop', hook: 'input', protocol: 'icmp' },
    ] }), 'r.json');
    const w = captureRuleWarnings(rs);
    assert.deepEqual(w.map((x) => [x.kind, x.rules]), [
      ['capture_in_interface', ['#1 "from-lan"']],
      ['capture_out_interface', ['#2 "to-wan"']],
      ['capture_hook', ['#3 "local"']],
    ]);
    assert.deepEqual(captureRuleWarnings(parseRuleText(JSON.stringify({ default: 'accept', rules: [{ id: 'plain', action: 'drop', protocol: 'tcp', dport: 23 }] }), 'p.json')), []);
  });
});

describe('a forwarding box captured on several interfaces', () => {
  it('is warned that it sees routed packets twice, unless --direction in', () => {
    const c = (flags: Parameters<typeof resolveRunOptions>[0]) => resolveRunOptions(flags, 'watch').capture!;
    assert.match(doubleCaptureWarning(c({ iface: ['eth0', 'eth1'] }), true) ?? '', /seen twice.*--direction in/);
    assert.match(doubleCaptureWarning(c({ iface: ['any'] }), true) ?? '', /seen twice/);
    assert.equal(doubleCaptureWarning(c({ iface: ['eth0', 'eth1'], direction: 'in' }), true), null);
    assert.equal(doubleCaptureWarning(c({ iface: ['eth0', 'eth1'] }), false), null, 'a mirror-only box does not forward');
    assert.equal(doubleCaptureWarning(c({ iface: ['eth0'] }), true), null, 'one interface of a router sees each packet once per direction');
    assert.match(problems(() => resolveRunOptions({ iface: ['eth0'], direction: 'out' }, 'watch')), /invalid --direction "out"/);
  });
});
