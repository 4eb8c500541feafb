// Flow records and `nfips sessions` through the real kernel path: an HTTP
// download, a refused connection and a UDP exchange go through an inline
// nfips; each flow record must carry the packets and bytes the gateway
// forwarded each way. The reference is the kernel's own count: a counting
// rule per direction in the gateway's filter FORWARD (no target), which
// sees the same packets nfips does (GSO ones included) with their IP
// lengths, as nfips counts them.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, TestContext } from 'node:test';
import { parse } from 'csv-parse/sync';
import { InlineNfips, LogRecord, startInlineNfips } from '../../lab/netns/inline-nfips';
import { createTopology, Topology } from '../../lab/netns/topology';
import { startPeers } from '../../lab/netns/peers';
import { PACKAGE_ROOT, requireIntegration } from '../helpers/env';
import { SESSION_COLUMNS } from '../../src/flow/flow-record';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

const HTTP_PORT = 80;
const ECHO_PORT = 9;
const UDP_PORT = 9999;
const CLOSED_PORT = 2324;
/** Client ports of each exchange: the counting rules and the records are told apart by them. */
const CURL_PORT = 40101;
const REFUSED_PORT = 40102;
const UDP_CLIENT_PORT = 40103;
const HOLD_PORT = 40104;
const DOWNLOAD = 300_000;
/** UDP payload sizes sent (and echoed). */
const UDP_SIZES = [100, 200, 300];

type Dir = { packets: number; bytes: number };

/** A counting rule for one direction of one exchange, in the gateway. */
function countRule(t: Topology, proto: string, clientPort: number, serverPort: number, toServer: boolean): string[] {
  const [s, d, sp, dp] = toServer ? [t.addr.client4, t.addr.server4, clientPort, serverPort] : [t.addr.server4, t.addr.client4, serverPort, clientPort];
  return ['-p', proto, '-s', s, '-d', d, '--sport', String(sp), '--dport', String(dp), '-m', 'comment', '--comment', `flowtest-${proto}-${clientPort}-${toServer ? 'ts' : 'tc'}`];
}

async function counted(t: Topology): Promise<Map<string, Dir>> {
  const out = (await t.exec(t.gateway, 'iptables', ['-w', '-t', 'filter', '-L', 'FORWARD', '-v', '-x', '-n'])).stdout;
  const m = new Map<string, Dir>();
  for (const line of out.split('\n')) {
    const c = /^\s*(\d+)\s+(\d+)\s.*\/\* (flowtest-\S+) \*\//.exec(line);
    if (c) m.set(c[3], { packets: Number(c[1]), bytes: Number(c[2]) });
  }
  return m;
}

/** The flow record of one exchange, by its client port. */
const flowOf = (proto: string, clientPort: number) => (r: LogRecord) => r.proto === proto && r.src_port === clientPort;

test('flow records and nfips sessions on the real kernel path', { timeout: 120_000 }, async (t: TestContext) => {
  await requireIntegration('curl', 'python3', 'iptables');
  const topo = await createTopology('nffl');
  const servers = await startPeers(topo, topo.server, [['http', HTTP_PORT], ['tcp-echo', ECHO_PORT], ['udp-echo', UDP_PORT]]);
  let n: InlineNfips | null = null;
  try {
    n = startInlineNfips(topo.gateway, ['--mode', 'off', '--queues', '0-1', '--no-watch-rules', '--flow-log', 'on']);
    await n.waitFor('ready', 20_000);
    const nf = n;
    const rules: [string, number, number][] = [['tcp', CURL_PORT, HTTP_PORT], ['tcp', REFUSED_PORT, CLOSED_PORT], ['udp', UDP_CLIENT_PORT, UDP_PORT]];
    for (const [proto, cp, sp] of rules) for (const ts of [true, false]) await topo.exec(topo.gateway, 'iptables', ['-w', '-t', 'filter', '-A', 'FORWARD', ...countRule(topo, proto, cp, sp, ts)]);

    await t.test('an HTTP download: one closed record with the packets and bytes the gateway forwarded each way', async () => {
      const r = await topo.exec(topo.client, 'curl', ['-s', '-S', '-o', '/dev/null', '--local-port', String(CURL_PORT), '-w', '%{http_code} %{size_download} %{size_header} %{size_request}', '--max-time', '10', `http://${topo.addr.server4}:${HTTP_PORT}/bytes/${DOWNLOAD}`]);
      const [code, body, header, request] = r.stdout.trim().split(' ').map(Number);
      assert.equal(code, 200);
      assert.equal(body, DOWNLOAD);
      const rec = await nf.waitFor('flow', 10_000, flowOf('TCP', CURL_PORT));
      // Let the last ACK through, then read the kernel's counts.
      await new Promise((res) => setTimeout(res, 300));
      const k = await counted(topo);
      const ts = k.get(`flowtest-tcp-${CURL_PORT}-ts`)!;
      const tc = k.get(`flowtest-tcp-${CURL_PORT}-tc`)!;
      const f = rec.flow as Record<string, number | string>;
      assert.equal(rec.src_ip, topo.addr.client4);
      assert.equal(rec.dest_ip, topo.addr.server4);
      assert.equal(rec.dest_port, HTTP_PORT);
      assert.equal(rec.app_proto, 'http');
      assert.equal(f.state, 'closed');
      assert.equal(f.reason, 'tcp_close');
      // The record is made at the second FIN: only the ACK that answers it (one packet, one direction) can come after.
      const lateTs = ts.packets - Number(f.pkts_toserver);
      const lateTc = tc.packets - Number(f.pkts_toclient);
      assert.ok(lateTs >= 0 && lateTc >= 0 && lateTs + lateTc <= 1, `record ${JSON.stringify(f)} vs kernel ${JSON.stringify({ ts, tc })}`);
      const ackBytes = (ts.bytes - Number(f.bytes_toserver)) + (tc.bytes - Number(f.bytes_toclient));
      assert.ok(lateTs + lateTc === 0 ? ackBytes === 0 : ackBytes === 40 || ackBytes === 52, `bytes after the record: ${ackBytes}`);
      // At least what the applications sent, plus one IPv4 + TCP header (at least 40 bytes) per packet. Not an
      // upper bound: a segment retransmitted on a busy machine is forwarded, and counted, twice; the kernel's
      // counts above are the exact check.
      const payloadTc = body + header;
      assert.ok(Number(f.bytes_toclient) >= payloadTc + 40 * Number(f.pkts_toclient), `to the client: ${f.bytes_toclient} bytes in ${f.pkts_toclient} packets for ${payloadTc} bytes of HTTP`);
      assert.ok(Number(f.bytes_toserver) >= request + 40 * Number(f.pkts_toserver), `to the server: ${f.bytes_toserver} bytes in ${f.pkts_toserver} packets for a ${request}-byte request`);
      const tcp = rec.tcp as Record<string, unknown>;
      assert.equal(tcp.syn, true);
      assert.equal(tcp.fin, true);
      assert.equal(tcp.ack, true);
      assert.equal(nf.events('flow').filter(flowOf('TCP', CURL_PORT)).length, 1, 'reported once');
    });

    await t.test('a connection to a closed port: SYN and RST, one closed record', async () => {
      const script = `import socket\ns=socket.socket()\ns.bind(('${topo.addr.client4}',${REFUSED_PORT}))\ns.settimeout(3)\ntry:\n  s.connect(('${topo.addr.server4}',${CLOSED_PORT})); print('open')\nexcept ConnectionRefusedError: print('refused')`;
      assert.equal((await topo.exec(topo.client, 'python3', ['-c', script])).stdout.trim(), 'refused');
      const rec = await nf.waitFor('flow', 10_000, flowOf('TCP', REFUSED_PORT));
      const k = await counted(topo);
      const f = rec.flow as Record<string, number | string>;
      assert.deepEqual([f.pkts_toserver, f.bytes_toserver, f.pkts_toclient, f.bytes_toclient], [k.get(`flowtest-tcp-${REFUSED_PORT}-ts`)!.packets, k.get(`flowtest-tcp-${REFUSED_PORT}-ts`)!.bytes, k.get(`flowtest-tcp-${REFUSED_PORT}-tc`)!.packets, k.get(`flowtest-tcp-${REFUSED_PORT}-tc`)!.bytes]);
      assert.deepEqual([f.pkts_toserver, f.pkts_toclient], [1, 1]);
      assert.equal(f.state, 'closed');
      assert.equal((rec.tcp as Record<string, unknown>).rst, true);
      assert.equal((rec.tcp as Record<string, unknown>).tcp_flags_ts, '02');
    });

    await t.test('a UDP exchange and an open connection in "nfips sessions --csv"; the UDP record on stop', async () => {
      const udp = `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('${topo.addr.client4}',${UDP_CLIENT_PORT}))\ns.settimeout(3)\nfor n in ${JSON.stringify(UDP_SIZES)}:\n  s.sendto(b'u'*n, ('${topo.addr.server4}',${UDP_PORT}))\n  assert len(s.recv(2048)) == n\nprint('ok')`;
      assert.equal((await topo.exec(topo.client, 'python3', ['-c', udp])).stdout.trim(), 'ok');
      // A connection held open while the table is read.
      const hold = topo.spawn(topo.client, 'python3', ['-c', `import socket,time\ns=socket.create_connection(('${topo.addr.server4}',${ECHO_PORT}), source_address=('${topo.addr.client4}',${HOLD_PORT}))\ns.sendall(b'x'*10)\ns.recv(10)\nprint('open', flush=True)\ntime.sleep(8)`]);
      try {
        await new Promise<void>((resolve, reject) => {
          hold.stdout?.on('data', (b: Buffer) => b.toString().includes('open') && resolve());
          hold.once('exit', (c) => reject(new Error(`holding connection ended (${c})`)));
        });
        const csv = (await topo.exec(topo.gateway, process.execPath, [NFIPS, 'sessions', '--csv', '--control-socket', nf.controlSocket])).stdout;
        const rows = parse(csv, { columns: true }) as Record<string, string>[];
        assert.deepEqual(Object.keys(rows[0] ?? {}), [...SESSION_COLUMNS]);
        const held = rows.find((r) => r.client_port === String(HOLD_PORT));
        assert.ok(held, `the open connection is listed:\n${csv}`);
        assert.deepEqual([held.server_ip, held.server_port, held.client_ip, held.protocol, held.state, held.server_guess], [topo.addr.server4, String(ECHO_PORT), topo.addr.client4, 'tcp', 'established', 'handshake']);
        assert.ok(Number(held.packets_to_server) >= 3 && Number(held.packets_to_client) >= 2);
        const u = rows.find((r) => r.client_port === String(UDP_CLIENT_PORT));
        const sent = UDP_SIZES.reduce((s, x) => s + 28 + x, 0);
        assert.deepEqual([u?.packets_to_server, u?.bytes_to_server, u?.packets_to_client, u?.bytes_to_client], ['3', String(sent), '3', String(sent)]);
        const json = JSON.parse((await topo.exec(topo.gateway, process.execPath, [NFIPS, 'sessions', '--json', '--control-socket', nf.controlSocket])).stdout) as Record<string, unknown>[];
        assert.ok(json.some((r) => r.client_port === HOLD_PORT && r.server_port === ECHO_PORT));
        const one = await topo.exec(topo.gateway, process.execPath, [NFIPS, 'sessions', '--json', '--limit', '1', '--control-socket', nf.controlSocket]);
        assert.equal((JSON.parse(one.stdout) as unknown[]).length, 1);
        const told = /^nfips sessions: 1 of (\d+) live sessions listed \(--limit 1\)\n$/.exec(one.stderr);
        assert.ok(told && Number(told[1]) >= 2, `the live count is told beside the rows: ${one.stderr}`);
      } finally {
        hold.kill();
      }
      const k = await counted(topo);
      assert.equal(await nf.stop(), 0);
      const rec = nf.events('flow').find(flowOf('UDP', UDP_CLIENT_PORT));
      assert.ok(rec, 'the UDP session is reported when nfips stops');
      const f = rec.flow as Record<string, number | string>;
      assert.equal(f.reason, 'shutdown');
      assert.equal(rec.app_proto, 'failed');
      assert.deepEqual([f.pkts_toserver, f.bytes_toserver, f.pkts_toclient, f.bytes_toclient], [k.get(`flowtest-udp-${UDP_CLIENT_PORT}-ts`)!.packets, k.get(`flowtest-udp-${UDP_CLIENT_PORT}-ts`)!.bytes, k.get(`flowtest-udp-${UDP_CLIENT_PORT}-tc`)!.packets, k.get(`flowtest-udp-${UDP_CLIENT_PORT}-tc`)!.bytes]);
      const ids = nf.events('flow').map((r) => r.flow_id);
      assert.equal(new Set(ids).size, ids.length, 'flow ids are unique');
    });
  } finally {
    await n?.stop();
    n?.cleanup();
    for (const s of servers) s.kill();
    await topo.destroy();
  }
});
