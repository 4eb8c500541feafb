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
