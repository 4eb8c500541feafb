// Client side of the capture tests, run in the client namespace: one UDP
// socket per datagram (so each has its own port) waiting for its echo, TCP
// echo exchanges from given source addresses, then an optional UDP flood.
// Argument: a JSON TrafficPlan. Output: one JSON line, what was sent.
import { createSocket, Socket } from 'node:dgram';
import { connect } from 'node:net';

export interface TrafficPlan {
  udp: { src: string; dst: string; port: number; len: number }[];
  tcp: { src: string; dst: string; port: number }[];
  flood?: { dst: string; port: number; count: number };
}

export interface SentUdp {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  len: number;
  /** The echo came back. */
  echoed: boolean;
}

export interface SentTcp {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  echoed: boolean;
}

export interface SentReport {
  udp: SentUdp[];
  tcp: SentTcp[];
  flooded: number;
}

function udpExchange(u: TrafficPlan['udp'][number]): Promise<SentUdp> {
  return new Promise((resolve, reject) => {
    const s = createSocket(u.dst.includes(':') ? 'udp6' : 'udp4');
    s.on('error', reject);
    s.bind(0, u.src, () => {
      const sent: SentUdp = { src: u.src, sport: s.address().port, dst: u.dst, dport: u.port, len: u.len, echoed: false };
      const timer = setTimeout(() => (s.close(), resolve(sent)), 5000);
      s.once('message', () => {
        clearTimeout(timer);
        sent.echoed = true;
        s.close();
        resolve(sent);
      });
      s.send(Buffer.alloc(u.len, 0x61), u.port, u.dst);
    });
  });
}

function tcpExchange(c: TrafficPlan['tcp'][number]): Promise<SentTcp> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: c.dst, port: c.port, localAddress: c.src });
    const sent: SentTcp = { src: c.src, sport: 0, dst: c.dst, dport: c.port, echoed: false };
    const timer = setTimeout(() => (s.destroy(), resolve(sent)), 3000);
    s.on('error', (e) => (clearTimeout(timer), reject(e)));
    s.on('connect', () => {
      sent.sport = s.localPort ?? 0;
      s.write('x'.repeat(50));
    });
    s.on('data', () => {
      clearTimeout(timer);
      sent.echoed = true;
      s.end();
    });
    s.on('close', () => resolve(sent));
  });
}

async function flood(f: NonNullable<TrafficPlan['flood']>): Promise<number> {
  const s: Socket = createSocket(f.dst.includes(':') ? 'udp6' : 'udp4');
  const payload = Buffer.alloc(22);
  let sent = 0;
  // In rounds, so the socket's send queue never grows without bound.
  while (sent < f.count) {
    const round = Math.min(500, f.count - sent);
    await Promise.all(Array.from({ length: round }, () => new Promise<void>((res) => s.send(payload, f.port, f.dst, () => res()))));
    sent += round;
  }
  s.close();
  return sent;
}

async function main(): Promise<void> {
  const plan = JSON.parse(process.argv[2]) as TrafficPlan;
  const udp = await Promise.all(plan.udp.map(udpExchange));
  const tcp = await Promise.all(plan.tcp.map(tcpExchange));
  const flooded = plan.flood ? await flood(plan.flood) : 0;
  process.stdout.write(JSON.stringify({ udp, tcp, flooded } satisfies SentReport) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
