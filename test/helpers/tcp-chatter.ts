// Keeps one TCP connection busy: sends a line every 100 ms for N seconds and
// counts the echoes. usage: node tcp-chatter.js HOST PORT SECONDS
import { connect } from 'node:net';

const [host, port, seconds] = process.argv.slice(2);
let sent = 0;
let received = '';
const sock = connect(Number(port), host, () => {
  const timer = setInterval(() => {
    sock.write(`line ${sent++}\n`);
  }, 100);
  setTimeout(() => {
    clearInterval(timer);
    setTimeout(() => {
      process.stdout.write(`${JSON.stringify({ sent, received: received.split('\n').filter(Boolean).length })}\n`);
      sock.destroy();
    }, 500);
  }, Number(seconds) * 1000);
});
sock.setEncoding('utf8');
sock.on('data', (d: string) => (received += d));
sock.on('error', (e) => {
  process.stdout.write(`${JSON.stringify({ error: e.message, sent })}\n`);
  process.exit(1);
});
