// Small servers run inside the server namespace by the demo, tests and
// traffic recipes: `node peer-server.js <http|tcp-echo|udp-echo> PORT [HOST]`.
// HTTP answers GET /bytes/N with N bytes, anything else with "ok".
import { createServer as createHttp } from 'node:http';
import { createServer as createTcp } from 'node:net';
import { createSocket } from 'node:dgram';

const [kind, portText, host = '::'] = process.argv.slice(2);
const port = Number(portText);
if (!['http', 'tcp-echo', 'udp-echo'].includes(kind) || !Number.isInteger(port)) {
  process.stderr.write('usage: peer-server <http|tcp-echo|udp-echo> PORT [HOST]\n');
  process.exit(2);
}
const ready = () => process.stdout.write(`listening ${kind} ${port}\n`);

if (kind === 'http') {
  const chunk = Buffer.alloc(64 * 1024, 0x78);
  createHttp((req, res) => {
    const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
    if (!m) {
      res.end('ok\n');
      return;
    }
    let left = Math.min(Number(m[1]), 1 << 30);
    res.writeHead(200, { 'content-length': String(left) });
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  }).listen(port, host, ready);
} else if (kind === 'tcp-echo') {
  createTcp((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  }).listen(port, host, ready);
} else {
  const sock = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.bind(port, host, ready);
}
