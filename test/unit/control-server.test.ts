// The control socket: one request per connection, a cap on clients served
// at once, and an absolute deadline per connection that a client sending a
// byte at a time cannot push back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { controlRequest } from '../../src/control/client';
import { CLIENT_DEADLINE_MS, ControlServer, MAX_CLIENTS } from '../../src/control/server';

const dir = mkdtempSync(path.join(tmpdir(), 'nfips-ctl-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function connect(file: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(file);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function closed(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (buf += c));
    s.on('error', () => undefined);
    s.once('close', () => resolve(buf));
  });
}

test('answers one request per connection; the socket is 0600', async () => {
  const file = path.join(dir, 'a.sock');
  const server = await ControlServer.listen(file, async (req) => ({ echo: req.cmd }));
  try {
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(await controlRequest(file, { cmd: 'status' }), { echo: 'status' });
    await assert.rejects(controlRequest(file, { cmd: 'nope' } as unknown as { cmd: 'status' }), /unknown command "nope"/);
  } finally {
    await server.close();
  }
});

test(`at most ${MAX_CLIENTS} clients at once: the next is told so and closed, the slots free up`, { timeout: 10_000 }, async () => {
  const file = path.join(dir, 'b.sock');
  const server = await ControlServer.listen(file, async () => 'ok');
  const held: Socket[] = [];
  try {
    for (let i = 0; i < MAX_CLIENTS; i++) held.push(await connect(file));
    const extra = await connect(file);
    const answer = await closed(extra);
    assert.match(answer, /too many control connections \(16\)/);
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await controlRequest(file, { cmd: 'status' }), 'ok', 'served again once the others left');
  } finally {
    for (const s of held) s.destroy();
    await server.close();
  }
});

test('a client dribbling a byte at a time is cut at the absolute deadline, not kept alive', { timeout: CLIENT_DEADLINE_MS + 10_000 }, async () => {
  const file = path.join(dir, 'c.sock');
  const server = await ControlServer.listen(file, async () => 'ok');
  try {
    const s = await connect(file);
    const done = closed(s);
    const started = Date.now();
    // Well under any idle timeout, forever: only an absolute deadline ends this.
    const drip = setInterval(() => s.writable && s.write(' '), 500);
    await done;
    clearInterval(drip);
    const took = Date.now() - started;
    assert.ok(took >= CLIENT_DEADLINE_MS - 200 && took < CLIENT_DEADLINE_MS + 2000, `closed after ${took} ms (deadline ${CLIENT_DEADLINE_MS} ms)`);
  } finally {
    await server.close();
  }
});

test('a request longer than 4096 bytes is refused and nothing more is read', async () => {
  const file = path.join(dir, 'd.sock');
  let calls = 0;
  const server = await ControlServer.listen(file, async () => {
    calls++;
    return 'ok';
  });
  try {
    const s = await connect(file);
    const done = closed(s);
    s.write(`{"cmd":"status","pad":"${'x'.repeat(5000)}"}\n`);
    assert.match(await done, /request too long \(more than 4096 bytes\)/);
    assert.equal(calls, 0);
  } finally {
    await server.close();
  }
});

test('a directory others can write (not sticky) is refused; a sticky one like /tmp is fine', async () => {
  const open = path.join(dir, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  await assert.rejects(ControlServer.listen(path.join(open, 'c.sock'), async () => ({})), /its directory .*open is writable by others \(mode 777\)/);
  chmodSync(open, 0o1777);
  const s = await ControlServer.listen(path.join(open, 'c.sock'), async () => ({}));
  assert.equal(statSync(path.join(open, 'c.sock')).mode & 0o777, 0o600);
  await s.close();
});

test("a directory owned by another unprivileged user is refused: its owner could swap the socket", async (t) => {
  if (process.geteuid?.() !== 0) {
    assert.fail('needs root to hand a directory to another user (run the unit tests as root, as make test does)');
  }
  const theirs = path.join(dir, 'theirs');
  mkdirSync(theirs, { mode: 0o755 });
  chownSync(theirs, 65534, 65534);
  await assert.rejects(ControlServer.listen(path.join(theirs, 'c.sock'), async () => ({})), /belongs to uid 65534, who could replace the socket/);
  t.diagnostic('refused as expected');
});
