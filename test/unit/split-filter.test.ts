// The BPF share each capture worker keeps (src/capture/split-filter.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captureWorkerFilters, isNflogDevice, splitExpression, workerFilter } from '../../src/capture/split-filter';

test('one worker keeps the operator filter as it is', () => {
  assert.equal(workerFilter(' tcp port 80 ', 0, 1), 'tcp port 80');
  assert.equal(workerFilter('', 0, 1), '');
  assert.deepEqual(captureWorkerFilters(['eth0'], 'udp', 1), [{ filter: 'udp', filterNonEthernet: 'udp' }]);
});

test('each share tests both families on the XOR of the address words, modulo n', () => {
  const e = splitExpression(2, 3, { vlan: false });
  assert.match(e, /^\(ip and \(\(\(ip\[12:4\] \^ ip\[16:4\]\) \* 2654435761\) >> 16\) % 3 = 2\) or \(ip6 and /);
  // All eight words of both IPv6 addresses, each once.
  for (const o of [8, 12, 16, 20, 24, 28, 32, 36]) assert.equal(e.split(`ip6[${o}:4]`).length, 2, `ip6[${o}:4] once`);
  assert.ok(!e.includes('vlan'));
});

test('the VLAN branches come last: one tag, then a second inside it, each with the same share', () => {
  const plain = splitExpression(1, 4, { vlan: false });
  assert.equal(splitExpression(1, 4), `${plain} or (vlan and (${plain} or (vlan and (${plain}))))`);
});

test('workers differ only in their index, the user filter is parenthesised first, and only Ethernet gets the VLAN branches', () => {
  const fs = captureWorkerFilters(['eth0', 'any'], 'tcp or udp', 3);
  assert.equal(fs.length, 3);
  fs.forEach((f, k) => {
    assert.equal(f.filter, `(tcp or udp) and (${splitExpression(k, 3)})`);
    assert.equal(f.filterNonEthernet, `(tcp or udp) and (${splitExpression(k, 3, { vlan: false })})`);
    assert.ok(!f.filterNonEthernet.includes('vlan'), 'libpcap refuses vlan on LINUX_SLL2 and RAW');
  });
  assert.equal(new Set(fs.map((f) => f.filter)).size, 3);
  assert.equal(workerFilter('', 0, 2), splitExpression(0, 2));
});

test('a user filter with an offset-shifting keyword cannot be split', () => {
  for (const f of ['vlan 10', 'tcp and vlan', 'mpls', 'pppoes and ip', 'geneve', 'vxlan']) {
    assert.throws(() => captureWorkerFilters(['eth0'], f, 2), /cannot be split between 2 workers: its "(vlan|mpls|pppoes|geneve|vxlan)" moves the header offsets/, f);
    assert.deepEqual(captureWorkerFilters(['eth0'], f, 1), [{ filter: f, filterNonEthernet: f }], 'one worker keeps it');
  }
  // Words that only contain one are fine.
  assert.equal(captureWorkerFilters(['eth0'], 'host vlanhost', 2).length, 2);
});

test('bad worker counts and indexes are refused with the flag named', () => {
  assert.throws(() => captureWorkerFilters(['eth0'], '', 0), /--workers must be a positive integer, got 0/);
  assert.throws(() => captureWorkerFilters(['eth0'], '', 1.5), /--workers/);
  assert.throws(() => splitExpression(3, 3), /worker index must be 0\.\.2, got 3/);
  assert.throws(() => splitExpression(0, 0), /worker count/);
});

test('NFLOG devices cannot be split between workers', () => {
  assert.ok(isNflogDevice('nflog:5'));
  assert.ok(isNflogDevice('nflog'));
  assert.ok(!isNflogDevice('nflog0x'));
  assert.ok(!isNflogDevice('eth0'));
  assert.deepEqual(captureWorkerFilters(['nflog:5'], '', 1), [{ filter: '', filterNonEthernet: '' }]);
  assert.throws(() => captureWorkerFilters(['eth0', 'nflog:5'], '', 2), /--workers 2: NFLOG devices \(nflog:5\) cannot be split/);
});
