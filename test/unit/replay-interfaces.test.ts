// nfips replay and interfaces: a capture carries none, so in/out rules never
// match unless --iface-in/--iface-out state them, and replay says so.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { writeSyntheticPcap } from '../../lab/support/synthetic-pcap';

const run = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const dir = mkdtempSync(path.join(tmpdir(), 'nfips-replay-if-'));
const file = (n: string) => path.join(dir, n);

type Line = Record<string, unknown> & { event_type: string };
async function replay(extra: string[]): Promise<{ lines: Line[]; err: string }> {
  const r = await run(process.execPath, [NFIPS, 'replay', '--pcap', file('c.pcap'), '--rules', file('r.json'), '--rules-only', ...extra], { maxBuffer: 64 << 20 });
  return { lines: r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line), err: r.stderr };
}

describe('nfips replay --iface-in/--iface-out', () => {
  writeSyntheticPcap(file('c.pcap'), { seconds: 20, seed: 7 });
  // An office file: what comes in on lan0 and goes out on wan0 passes, the rest is dropped.
  writeFileSync(file('r.json'), JSON.stringify({ default: 'drop', rules: [{ id: 'lan-out', action: 'accept', in: 'lan0', out: 'wan0', log: true }] }));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('without them, warns that the in/out rule never matches here', async () => {
    const { lines, err } = await replay([]);
    const s = lines.find((l) => l.event_type === 'replay_summary') as Line & { verdicts: { accepted: number; dropped: number }; warnings: string[] };
    assert.equal(s.verdicts.accepted, 0);
    assert.ok(s.verdicts.dropped > 0);
    assert.match(err, /nfips replay: warning: rule #0 "lan-out" needs in interface lan0, which a capture does not carry: never matched here; give --iface-in lan0/);
    assert.match(err, /needs out interface wan0.*give --iface-out wan0/);
  });

  it('with them, the rule matches and its events name the interfaces', async () => {
    const { lines, err } = await replay(['--iface-in', 'lan0', '--iface-out', 'wan0']);
    const s = lines.find((l) => l.event_type === 'replay_summary') as Line & { verdicts: { accepted: number; dropped: number } };
    assert.equal(s.verdicts.dropped, 0);
    assert.ok(s.verdicts.accepted > 0);
    assert.doesNotMatch(err, /interface/);
    const accept = lines.find((l) => l.event_type === 'accept');
    assert.ok(accept, 'log: true makes the accepts visible');
    assert.equal(accept.in_iface, 'lan0');
    assert.equal(accept.out_iface, 'wan0');
  });

  it('a stated interface that is not the rule\'s still does not match', async () => {
    const { lines } = await replay(['--iface-in', 'lan1', '--iface-out', 'wan0']);
    const s = lines.find((l) => l.event_type === 'replay_summary') as Line & { verdicts: { accepted: number } };
    assert.equal(s.verdicts.accepted, 0);
  });

  it('refuses a bad interface name', async () => {
    await assert.rejects(replay(['--iface-in', 'a/b']), /invalid --iface-in "a\/b": expected an interface name/);
  });
});
