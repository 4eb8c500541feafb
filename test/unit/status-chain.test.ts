// `nfips status` when nfips' chain is gone (issue 12: another instance
// removed it, and status only said "counters unreadable: ... incompatible,
// use 'nft' tool"): say plainly that the chain is missing and what that means.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStatus, StatusView } from '../../src/cli/status-text';

const NFT_ERROR = "`iptables -w -t mangle -L NFIPS -v -n -x` failed with exit code 1: iptables v1.8.9 (nf_tables): chain `NFIPS' in table `mangle' is incompatible, use 'nft' tool.";

test('status says the chain is missing, first, and not iptables\' complaint about reading it', () => {
  const s: StatusView = {
    pid: 42,
    uptime_s: 60,
    mode: 'prevent',
    rules: { version: 1, file: '/etc/nfips/rules.json', sha256: 'abcdef', count: 3, lock: false, default: 'accept' },
    iptables: {
      table: 'mangle',
      intact: false,
      damage: [
        { kind: 'chain_missing', detail: 'ipv4 mangle: chain NFIPS missing' },
        { kind: 'jump_missing', detail: 'ipv4 mangle: jump from FORWARD to NFIPS missing' },
      ],
      errors: [],
      repairs: 0,
      last_repair: null,
      last_failure: null,
      check_interval_s: 2,
    },
    unverdicted: { error: NFT_ERROR },
    queues: [],
    blocks: { active: 1, kernel_dropped: { error: NFT_ERROR }, blocks: [] },
  };
  const lines = formatStatus(s).split('\n');
  assert.match(lines[1] ?? '', /^iptables: CHAIN MISSING, packets are NOT being inspected: ipv4 mangle: chain NFIPS missing/);
  const text = lines.join('\n');
  assert.match(text, /unverdicted: unknown, the chain is missing/);
  assert.match(text, /blocks: 1 active, NOT enforced: the chain holding the block rules is missing/);
  assert.doesNotMatch(text, /incompatible|nft' tool/);
});

test("status shows the CrowdSec link's rarer counters only when they are not zero", () => {
  const base: StatusView = {
    pid: 42,
    uptime_s: 60,
    mode: 'prevent',
    rules: { version: 1, file: '/etc/nfips/rules.json', sha256: 'abcdef', count: 3, lock: false, default: 'accept' },
    iptables: { table: 'mangle', intact: true, damage: [], errors: [], repairs: 0, last_repair: null, last_failure: null, check_interval_s: 2 },
    unverdicted: null,
    queues: [],
    blocks: { active: 0, kernel_dropped: { packets: 0 }, blocks: [] },
  };
  const link = { url: 'http://10.0.0.1:8080', state: 'connected', last_pull: '2026-11-30T21:00:00.000Z', last_error: null, decisions_known: 4, decisions_applied: 5, decisions_removed: 1, refused: 0, publisher: { pending: 0, published: 3, state: 'ok', rejected: 0, dropped: 0 } };
  const quiet = formatStatus({ ...base, crowdsec: link });
  assert.match(quiet, /crowdsec: http:\/\/10\.0\.0\.1:8080 connected, last pull .*; decisions: 4 known, 5 applied, 1 lifted, 0 refused; publishing: 3 sent, 0 pending$/m);
  const busy = formatStatus({ ...base, crowdsec: { ...link, decisions_reapplied: 2, apply_failures: 1, own_lifted: 3, own_lift_failures: 1, own_lifts_pending: 1, publisher: { ...link.publisher, rejected: 2, dropped: 2 } } });
  assert.match(busy, /5 applied, 2 reapplied, 1 lifted, 0 refused, 1 pull failed to apply; own decisions deleted by an operator: 3 blocks lifted, 1 failed lift, 1 lift waiting; publishing: 3 sent, 0 pending, 2 dropped \(2 rejected by the Local API\)/);
});
