// Parsers of the lab's tool output, on text captured from the tools on Debian 12.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ipsetsHolding,
  ipv4InNet,
  parseCurlWrite,
  parseDig,
  parseHydra,
  parseIpsetSave,
  parseIptablesCounters,
  parseNmapDone,
  parsePingSummary,
  parseSlowhttptest,
} from '../parse';
import { ppidFromStat } from '../procs';

test('ping summary: plain, with errors, flood mode, absent', () => {
  assert.deepEqual(parsePingSummary('--- 10.77.2.2 ping statistics ---\n60 packets transmitted, 60 received, 0% packet loss, time 59085ms\n'), { transmitted: 60, received: 60 });
  assert.deepEqual(parsePingSummary('5 packets transmitted, 3 received, +2 errors, 40% packet loss, time 4005ms'), { transmitted: 5, received: 3 });
  assert.deepEqual(parsePingSummary('7574 packets transmitted, 6683 received, 11.7639% packet loss, time 14985ms\nrtt min/avg/max/mdev = 0.020/0.050/3.122/0.057 ms, ipg/ewma 1.978/0.052 ms'), { transmitted: 7574, received: 6683 });
  assert.equal(parsePingSummary('PING 10.77.2.2 (10.77.2.2) from 10.77.1.2 : 56(84) bytes of data.'), null);
});

const DIG_TWO = `
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @10.77.2.2 -p 53 -b 10.77.1.2 +tries=1 +time=2 www.lab.test A api.lab.test AAAA
; (1 server found)
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 622
;; flags: qr aa rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1

;; ANSWER SECTION:
www.lab.test.		0	IN	A	10.77.2.2

;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: REFUSED, id: 2736
;; flags: qr rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 1
`;

test('dig: one status per answered query, and the queries that got nothing', () => {
  assert.deepEqual(parseDig(DIG_TWO), { statuses: ['NOERROR', 'REFUSED'], timeouts: 0 });
  const none = ';; communications error to 10.77.2.2#53: timed out\n\n; <<>> DiG 9.18.49 <<>> x.lab.test\n; (1 server found)\n;; global options: +cmd\n;; no servers could be reached\n';
  assert.deepEqual(parseDig(none), { statuses: [], timeouts: 1 });
  assert.deepEqual(parseDig(';; communications error to 127.0.0.1#5354: connection refused\n;; no servers could be reached'), { statuses: [], timeouts: 1 });
});

test('curl -w lines: one per URL, connects 0 on a kept-alive connection', () => {
  assert.deepEqual(parseCurlWrite('200 1024 1\n200 20480 0\n404 335 0\n'), [
    { code: 200, bytes: 1024, connects: 1 },
    { code: 200, bytes: 20480, connects: 0 },
    { code: 404, bytes: 335, connects: 0 },
  ]);
  // A failed connection: curl writes 000 and its error on stderr.
  assert.deepEqual(parseCurlWrite('000 0 0\ncurl: (7) Failed to connect'), [{ code: 0, bytes: 0, connects: 0 }]);
  assert.deepEqual(parseCurlWrite(''), []);
});

const IPSET_SAVE = `create nfips-svc4 hash:net,port family inet hashsize 1024 maxelem 65536 timeout 600 counters bucketsize 12 initval 0x18c05005
add nfips-svc4 10.77.1.23,tcp:22 timeout 589 packets 0 bytes 0
create nfips-src4 hash:net family inet hashsize 1024 maxelem 65536 timeout 600 counters bucketsize 12 initval 0x2c5ac9bf
add nfips-src4 10.77.1.0/28 timeout 599 packets 0 bytes 0
create nfips-icmp4 hash:net family inet hashsize 1024 maxelem 65536 timeout 600 counters
add nfips-icmp4 10.77.1.20 timeout 585 packets 7000 bytes 588000
create other hash:ip family inet
add other 10.77.1.20
`;

test('ipset save: entries, their address part, and the nfips sets that hold an address', () => {
  const e = parseIpsetSave(IPSET_SAVE);
  assert.equal(e.length, 4);
  assert.deepEqual(e[0], { set: 'nfips-svc4', member: '10.77.1.23,tcp:22', net: '10.77.1.23', timeout: 589 });
  assert.deepEqual(e[3], { set: 'other', member: '10.77.1.20', net: '10.77.1.20', timeout: null });
  assert.deepEqual(ipsetsHolding(e, '10.77.1.20'), ['nfips-icmp4 10.77.1.20']);
  assert.deepEqual(ipsetsHolding(e, '10.77.1.23'), ['nfips-svc4 10.77.1.23,tcp:22']);
  assert.deepEqual(ipsetsHolding(e, '10.77.1.5'), ['nfips-src4 10.77.1.0/28'], 'a network entry covers its addresses');
  assert.deepEqual(ipsetsHolding(e, '10.77.1.99'), []);
});

test('IPv4 network membership', () => {
  assert.ok(ipv4InNet('10.77.1.5', '10.77.1.0/24'));
  assert.ok(ipv4InNet('10.77.1.5', '10.77.1.5'));
  assert.ok(!ipv4InNet('10.77.1.5', '10.77.1.6'));
  assert.ok(!ipv4InNet('10.77.2.5', '10.77.1.0/24'));
  assert.ok(ipv4InNet('200.1.2.3', '0.0.0.0/0'));
  assert.ok(ipv4InNet('255.255.255.255', '255.255.255.0/24'), 'no sign trouble at the top of the range');
  assert.ok(!ipv4InNet('fd77:1::2', '10.77.1.0/24'));
  assert.ok(!ipv4InNet('10.77.1.5', '10.77.1.0/33'));
});

test('iptables -L -v -n -x counters with their comments', () => {
  const text = `Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
    7575   636300            0    --  nfevalg0 *       10.77.1.20           0.0.0.0/0            /* lab-ping-flood-all */
  711127 28445080            6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:80 flags:0x17/0x02 /* lab-rand-source-flood-syn */
       3      180            6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:22
`;
  assert.deepEqual(parseIptablesCounters(text), [
    { packets: 7575, bytes: 636300, comment: 'lab-ping-flood-all' },
    { packets: 711127, bytes: 28445080, comment: 'lab-rand-source-flood-syn' },
    { packets: 3, bytes: 180, comment: null },
  ]);
});

test('hydra: status line, result line, errors', () => {
  const out = `Hydra v9.4 (c) 2022 by van Hauser/THC & David Maciejak
[WARNING] Many SSH configurations limit the number of parallel tasks, it is recommended to reduce the tasks: use -t 4
[DATA] max 16 tasks per 1 server, overall 16 tasks, 20001 login tries (l:1/p:20001), ~1251 tries per task
[DATA] attacking ssh://10.77.2.2:22/
[ATTEMPT] target 10.77.2.2 - login "root" - pass "xqp5qp" - 90 of 20001 [child 10] (0/1)
[STATUS] 364.00 tries/min, 364 tries in 00:01h, 19637 to do in 00:54h, 16 active
[STATUS] 350.50 tries/min, 701 tries in 00:02h, 19300 to do in 00:56h, 16 active
[ERROR] could not connect to target port 22: Socket error: Connection reset by peer
[ERROR] could not connect to target port 22: Socket error: Connection reset by peer
1 of 1 target completed, 0 valid password found
`;
  assert.deepEqual(parseHydra(out), { triesPerMin: 350.5, tries: 701, found: 0, errors: ['could not connect to target port 22: Socket error: Connection reset by peer'] });
  assert.deepEqual(parseHydra('[DATA] attacking ssh://10.77.2.2:22/\n'), { triesPerMin: null, tries: null, found: null, errors: [] });
});

test('slowhttptest: the last status block, colour codes removed', () => {
  const block = (n: number, connected: number, avail: string) =>
    `\x1b[0mMon Nov 30 08:48:${n}:\x1b[0;36m\nslow HTTP test status on ${n}th second:\n\n\x1b[1;32minitializing:\x1b[1;32m        0\n\x1b[1;32mpending:     \x1b[1;32m        0\n\x1b[1;32mconnected:   \x1b[1;32m        ${connected}\n\x1b[1;32merror:       \x1b[1;32m        0\n\x1b[1;32mclosed:      \x1b[1;32m        ${50 - connected}\n\x1b[1;32mservice available:\x1b[1;32m   \x1b[1;32m${avail}\x1b[0m\n`;
  const out = `${block(5, 50, 'YES')}${block(10, 12, 'NO')}Test ended on 59th second\nExit status:\x1b[1;36m Cancelled by user\n`;
  assert.deepEqual(parseSlowhttptest(out), { connected: 12, pending: 0, closed: 38, error: 0, serviceAvailable: 'NO', maxConnected: 50 });
  assert.deepEqual(parseSlowhttptest(''), { connected: null, pending: null, closed: null, error: null, serviceAvailable: null, maxConnected: null });
});

test('nmap: the time of the last finished scan', () => {
  assert.equal(parseNmapDone('Starting Nmap 7.93\nNmap done: 1 IP address (1 host up) scanned in 2.35 seconds\nNmap done: 1 IP address (1 host up) scanned in 12.10 seconds\n'), 12.1);
  assert.equal(parseNmapDone('Starting Nmap 7.93 ( https://nmap.org ) at 2026-11-30 08:46 UTC\n'), null);
});

test('/proc/PID/stat: the parent pid, even when the command name has spaces and parentheses', () => {
  assert.equal(ppidFromStat('1234 (sshd) S 1200 1234 1234 0 -1 4194560'), 1200);
  assert.equal(ppidFromStat('1234 (a b) (c)) R 77 1 1'), 77);
  assert.equal(ppidFromStat('garbage'), null);
});
