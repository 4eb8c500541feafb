import { test } from 'node:test';
import { parseCounters } from '../../src/iptables/chain-counters';
import { parseKernelQueueStats } from '../../src/stats/kernel-queue';
import assert from 'node:assert/strict';
import {
  markAcceptPackets,
  median,
  parseIperfTcp,
  parseIperfUdp,
  parsePing,
} from '../../bench/iperf';

// Captured from iperf3 3.12, iputils ping and iptables 1.8.9 (nf_tables) on
// the benchmark topology; the iperf3 JSON is re-serialised without whitespace.
const TCP_JSON = `{"start":{"connected":[{"socket":5,"local_host":"10.77.1.2","local_port":34582,"remote_host":"10.77.2.2","remote_port":5201}],"version":"iperf 3.12","system_info":"Linux vm 6.18.44-fc-v769 #1 SMP PREEMPT_DYNAMIC @0 x86_64","timestamp":{"time":"Sun, 22 Nov 2026 05:59:52 GMT","timesecs":1795327192},"connecting_to":{"host":"10.77.2.2","port":5201},"cookie":"jl6ectupxnpn7z4n5ystzovoefuubhzepjpj","tcp_mss_default":1448,"target_bitrate":0,"sock_bufsize":0,"sndbuf_actual":16384,"rcvbuf_actual":131072,"test_start":{"protocol":"TCP","num_streams":1,"blksize":131072,"omit":0,"duration":2,"bytes":0,"blocks":0,"reverse":0,"tos":0,"target_bitrate":0}},"intervals":[{"streams":[{"socket":5,"start":0,"end":1.000429,"seconds":1.0004290342330933,"bytes":2992373760,"bits_per_second":23928723838.319126,"retransmits":162,"snd_cwnd":509696,"snd_wnd":4327424,"rtt":33,"rttvar":9,"pmtu":1500,"omitted":false,"sender":true}],"sum":{"start":0,"end":1.000429,"seconds":1.0004290342330933,"bytes":2992373760,"bits_per_second":23928723838.319126,"retransmits":162,"omitted":false,"sender":true}},{"streams":[{"socket":5,"start":1.000429,"end":2.000082,"seconds":0.9996529817581177,"bytes":2153512960,"bits_per_second":17234084221.607033,"retransmits":45,"snd_cwnd":463360,"snd_wnd":4384768,"rtt":33,"rttvar":14,"pmtu":1500,"omitted":false,"sender":true}],"sum":{"start":1.000429,"end":2.000082,"seconds":0.9996529817581177,"bytes":2153512960,"bits_per_second":17234084221.607033,"retransmits":45,"omitted":false,"sender":true}}],"end":{"streams":[{"sender":{"socket":5,"start":0,"end":2.000082,"seconds":2.000082,"bytes":5145886720,"bits_per_second":20582702989.177444,"retransmits":207,"max_snd_cwnd":509696,"max_snd_wnd":4384768,"max_rtt":33,"min_rtt":33,"mean_rtt":33,"sender":true},"receiver":{"socket":5,"start":0,"end":2.000113,"seconds":2.000082,"bytes":5145886720,"bits_per_second":20582383975.3054,"sender":true}}],"sum_sent":{"start":0,"end":2.000082,"seconds":2.000082,"bytes":5145886720,"bits_per_second":20582702989.177444,"retransmits":207,"sender":true},"sum_received":{"start":0,"end":2.000113,"seconds":2.000113,"bytes":5145886720,"bits_per_second":20582383975.3054,"sender":true},"cpu_utilization_percent":{"host_total":92.63637685497157,"host_user":0.4005874149495006,"host_system":92.23568950552912,"remote_total":66.4634801785681,"remote_user":2.660873051942046,"remote_system":63.80250713327563},"sender_tcp_congestion":"bbr","receiver_tcp_congestion":"bbr"}}`;

// 64-byte UDP through the C loop: the receiver lost about a third.
const UDP_JSON = `{"start":{"connected":[{"socket":5,"local_host":"10.77.1.2","local_port":43349,"remote_host":"10.77.2.2","remote_port":5201}],"version":"iperf 3.12","system_info":"Linux vm 6.18.44-fc-v769 #1 SMP PREEMPT_DYNAMIC @0 x86_64","timestamp":{"time":"Sun, 22 Nov 2026 06:07:17 GMT","timesecs":1795327637},"connecting_to":{"host":"10.77.2.2","port":5201},"cookie":"rs5xjsqf2wqlespvqwm6dnpxjesf4zjus53c","target_bitrate":0,"sock_bufsize":0,"sndbuf_actual":212992,"rcvbuf_actual":212992,"test_start":{"protocol":"UDP","num_streams":1,"blksize":64,"omit":0,"duration":1,"bytes":0,"blocks":0,"reverse":0,"tos":0,"target_bitrate":0}},"intervals":[{"streams":[{"socket":5,"start":0,"end":1.011428,"seconds":1.0114279985427856,"bytes":5204480,"bits_per_second":41165401.84767162,"packets":81320,"omitted":false,"sender":true}],"sum":{"start":0,"end":1.011428,"seconds":1.0114279985427856,"bytes":5204480,"bits_per_second":41165401.84767162,"packets":81320,"omitted":false,"sender":true}}],"end":{"streams":[{"udp":{"socket":5,"start":0,"end":1.011428,"seconds":1.011428,"bytes":5204480,"bits_per_second":41165401.7883626,"jitter_ms":1.1090233912427971,"lost_packets":26066,"packets":81320,"lost_percent":32.05361534677816,"out_of_order":0,"sender":true}}],"sum":{"start":0,"end":1.040641,"seconds":1.040641,"bytes":5204480,"bits_per_second":41165401.7883626,"jitter_ms":1.1090233912427971,"lost_packets":26066,"packets":81320,"lost_percent":32.05361534677816,"sender":true},"sum_sent":{"start":0,"end":1.011428,"seconds":1.011428,"bytes":5204480,"bits_per_second":41165401.7883626,"jitter_ms":0,"lost_packets":0,"packets":81320,"lost_percent":0,"sender":true},"sum_received":{"start":0,"end":1.040641,"seconds":1.040641,"bytes":3536256,"bits_per_second":27185213.728845973,"jitter_ms":1.1090233912427971,"lost_packets":26066,"packets":81320,"lost_percent":32.05361534677816,"sender":false},"cpu_utilization_percent":{"host_total":49.5911490209212,"host_user":1.292002683192604,"host_system":48.2991463377286,"remote_total":26.044696591877663,"remote_user":4.467352961242902,"remote_system":21.577439723406567}}}`;

// iperf3 puts failures in the JSON (and may still exit 0).
const ERROR_JSON = `{
	"start":	{
		"connected":	[],
		"version":	"iperf 3.12",
		"system_info":	"Linux vm 6.18.44-fc-v769 #1 SMP PREEMPT_DYNAMIC @0 x86_64"
	},
	"intervals":	[],
	"end":	{
	},
	"error":	"unable to connect to server: Connection refused"
}`;

const PING_OK = `PING 10.77.2.2 (10.77.2.2) 56(84) bytes of data.

--- 10.77.2.2 ping statistics ---
200 packets transmitted, 200 received, 0% packet loss, time 994ms
rtt min/avg/max/mdev = 0.008/0.018/0.052/0.006 ms
`;

const PING_ALL_LOST = `PING 10.77.2.2 (10.77.2.2) 56(84) bytes of data.

--- 10.77.2.2 ping statistics ---
5 packets transmitted, 0 received, 100% packet loss, time 41ms

`;

const FORWARD_LIST = `Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination         
  141382 13006330 NFIPS      0    --  *      *       0.0.0.0/0            0.0.0.0/0           
   60033  5522629 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            mark match 0x1/0x1
`;

const NFIPS_LIST = `Chain NFIPS (1 references)
    pkts      bytes target     prot opt in     out     source               destination         
   60033  5522629 RETURN     0    --  *      *       0.0.0.0/0            0.0.0.0/0            mark match 0x1/0x1
   81349  7483701 NFQUEUE    0    --  *      *       0.0.0.0/0            0.0.0.0/0            NFQUEUE num 0 bypass
`;

const PROC_QUEUE = `    0   8304     0 2   128     0     0    60033  1
`;

test('TCP: receiver throughput and sender retransmits', () => {
  const r = parseIperfTcp(TCP_JSON);
  assert.equal(r.bitsPerSecond, 20582383975.3054);
  assert.equal(r.bytes, 5145886720);
  assert.equal(r.seconds, 2.000113);
  assert.equal(r.retransmits, 207);
});

test('UDP: delivered = receiver packets - lost, rates per second', () => {
  const r = parseIperfUdp(UDP_JSON);
  assert.equal(r.sentPackets, 81320);
  assert.equal(r.receiverPackets, 81320);
  assert.equal(r.lostPackets, 26066);
  assert.equal(r.deliveredPackets, 81320 - 26066);
  assert.ok(Math.abs(r.lostPercent - 32.0536) < 1e-3);
  assert.ok(Math.abs(r.deliveredPps - 55254 / 1.040641) < 1e-6);
  assert.ok(Math.abs(r.sentPps - 81320 / 1.011428) < 1e-6);
});

test('UDP parser rejects a TCP result, and TCP parser a UDP one', () => {
  assert.throws(() => parseIperfUdp(TCP_JSON), /not a UDP test/);
  assert.throws(() => parseIperfTcp(UDP_JSON), /not a TCP test/);
});

test('iperf3 errors and non-JSON output become exceptions', () => {
  assert.throws(() => parseIperfTcp(ERROR_JSON), /iperf3: unable to connect to server: Connection refused/);
  assert.throws(() => parseIperfUdp(ERROR_JSON), /Connection refused/);
  assert.throws(() => parseIperfTcp('iperf3: error - the server is busy'), /did not print JSON/);
  assert.throws(() => parseIperfTcp(''), /empty output/);
});

test('ping: counts and RTT in microseconds', () => {
  const r = parsePing(PING_OK);
  assert.equal(r.transmitted, 200);
  assert.equal(r.received, 200);
  assert.equal(r.lossPercent, 0);
  assert.equal(r.rttMinUs, 8);
  assert.equal(r.rttAvgUs, 18);
  assert.equal(r.rttMaxUs, 52);
  assert.equal(r.rttMdevUs, 6);
});

test('ping: median of the per-reply times', () => {
  const lines = [0.05, 0.04, 3.1, 0.06, 0.045].map((t, i) => `64 bytes from 10.77.2.2: icmp_seq=${i + 1} ttl=63 time=${t} ms`).join('\n');
  const r = parsePing(`PING 10.77.2.2 (10.77.2.2) 56(84) bytes of data.\n${lines}\n${PING_OK.split('\n').slice(2).join('\n')}`);
  assert.equal(r.rttMedianUs, 50, 'the 3.1 ms outlier moves the average, not the median');
  assert.equal(parsePing(PING_OK).rttMedianUs, null, 'ping -q prints no per-reply lines');
});

test('ping: total loss has no RTT', () => {
  const r = parsePing(PING_ALL_LOST);
  assert.equal(r.received, 0);
  assert.equal(r.lossPercent, 100);
  assert.equal(r.rttAvgUs, null);
  assert.throws(() => parsePing('ping: connect: Network is unreachable\n'), /no summary/);
});

test('ping: errors and duplicates in the summary line', () => {
  const text = '10 packets transmitted, 8 received, +2 errors, 20% packet loss, time 9ms\nrtt min/avg/max/mdev = 0.100/0.250/0.400/0.050 ms\n';
  const r = parsePing(text);
  assert.equal(r.received, 8);
  assert.equal(r.lossPercent, 20);
  assert.equal(r.rttAvgUs, 250);
});

test('iptables: rule counters and the repeat-mark ACCEPT', () => {
  const fwd = parseCounters(FORWARD_LIST);
  assert.deepEqual(fwd.map((r) => [r.packets, r.target]), [[141382, 'NFIPS'], [60033, 'ACCEPT']]);
  assert.equal(fwd[1].extra, 'mark match 0x1/0x1');
  assert.equal(markAcceptPackets(fwd, '0x1/0x1'), 60033);
  assert.equal(markAcceptPackets(fwd, '0x2/0x2'), null);
  const chain = parseCounters(NFIPS_LIST);
  assert.deepEqual(chain.map((r) => [r.packets, r.bytes, r.target]), [[60033, 5522629, 'RETURN'], [81349, 7483701, 'NFQUEUE']]);
  assert.equal(chain[1].extra, 'NFQUEUE num 0 bypass');
});

test('/proc nfnetlink_queue line (the parser the stats events use too)', () => {
  assert.deepEqual(parseKernelQueueStats(PROC_QUEUE), [{
    queue: 0, portId: 8304, queueTotal: 0, copyMode: 2, copyRange: 128, queueDropped: 0, userDropped: 0, idSequence: 60033,
  }]);
  assert.deepEqual(parseKernelQueueStats(''), []);
});

test('median ignores missing values', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, null, 1, 3, 2]), 2.5);
  assert.equal(median([null, Number.NaN]), null);
  assert.equal(median([]), null);
});
