// Unix control socket of a running nfips. Mode 0600: only its owner (root or
// the service user) may reload rules or read counters.
import { existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, Server, Socket } from 'node:net';
import path from 'node:path';
import { CONTROL_COMMANDS, ControlRequest, ControlResponse } from './protocol';

/** Gets the request with a known `cmd`; checks its other fields itself. */
export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

const MAX_REQUEST_BYTES = 4096;
/**
 * From connect to the last byte of the answer, whatever the client does: a
 * timer that restarted on every byte let a client dribbling one byte at a
 * time hold its connection forever. Long enough for the slowest command
 * (a rules reload waits for every queue thread, up to 5 s).
 */
export const CLIENT_DEADLINE_MS = 15_000;
/** Connections served at once; more are answered with an error and closed. The CLI uses one. */
export const MAX_CLIENTS = 16;

/** True when something answers on the socket path (another nfips). */
function inUse(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(file);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private constructor(
    private readonly server: Server,
    readonly file: string,
    private readonly clients: Set<Socket>,
  ) {}

  static async listen(file: string, handler: ControlHandler): Promise<ControlServer> {
    const dir = path.dirname(file);
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    // Whoever may write the directory may swap the socket for a link or
    // their own listener: only a directory others cannot write (or a
    // sticky one like /tmp, where they cannot touch our entry) will do.
    const ds = lstatSync(dir);
    if (!ds.isDirectory()) throw new Error(`control socket ${file}: ${dir} is not a directory`);
    const me = process.geteuid?.() ?? 0;
    if (ds.uid !== me && ds.uid !== 0) throw new Error(`control socket ${file}: its directory ${dir} belongs to uid ${ds.uid}, who could replace the socket; use a directory of nfips' user or root`);
    if ((ds.mode & 0o022) !== 0 && (ds.mode & 0o1000) === 0) {
      throw new Error(`control socket ${file}: its directory ${dir} is writable by others (mode ${(ds.mode & 0o7777).toString(8)}); use a directory only nfips' user can write`);
    }
    if (existsSync(file)) {
      if (await inUse(file)) throw new Error(`control socket ${file} is in use: is another nfips running?`);
      unlinkSync(file); // left behind by a crash
    }
    const clients = new Set<Socket>();
    const server = createServer((sock) => {
      if (clients.size >= MAX_CLIENTS) {
        sock.on('error', () => undefined);
        reply(sock, { ok: false, error: `too many control connections (${MAX_CLIENTS}); try again` });
        sock.destroySoon();
        return;
      }
      // A silent or slow client must neither hold a slot forever nor block shutdown.
      clients.add(sock);
      const deadline = setTimeout(() => sock.destroy(), CLIENT_DEADLINE_MS);
      sock.once('close', () => {
        clearTimeout(deadline);
        clients.delete(sock);
      });
      serve(sock, handler);
    });
    await new Promise<void>((resolve, reject) => {
      // umask so the socket is never reachable by others, even briefly.
      const old = process.umask(0o177);
      server.once('error', (e) => {
        process.umask(old);
        reject(e);
      });
      server.listen(file, () => {
        process.umask(old);
        resolve();
      });
    });
    // The umask made it 0600; a chmod by path could follow a link put there meanwhile.
    const st = lstatSync(file);
    if (!st.isSocket() || (st.mode & 0o077) !== 0) {
      server.close();
      throw new Error(`control socket ${file}: not the socket nfips just created (mode ${(st.mode & 0o7777).toString(8)})`);
    }
    return new ControlServer(server, file, clients);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.clients) c.destroy();
    await closed;
    try {
      unlinkSync(this.file);
    } catch {
      /* already gone */
    }
  }
}

/** One request per connection: the first line is answered, the rest ignored. */
function serve(sock: Socket, handler: ControlHandler): void {
  let buf = '';
  let done = false;
  sock.setEncoding('utf8');
  sock.on('error', () => undefined);
  sock.on('data', (chunk: string) => {
    if (done) return;
    buf += chunk;
    const nl = buf.indexOf('\n');
    if ((nl < 0 ? buf.length : nl) > MAX_REQUEST_BYTES) {
      done = true;
      buf = '';
      reply(sock, { ok: false, error: `request too long (more than ${MAX_REQUEST_BYTES} bytes)` });
      return;
    }
    if (nl < 0) return;
    done = true;
    const line = buf.slice(0, nl);
    buf = '';
    void answer(line, handler).then((r) => reply(sock, r));
  });
}

async function answer(line: string, handler: ControlHandler): Promise<ControlResponse> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: 'request is not JSON' };
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) return { ok: false, error: 'request is not a JSON object' };
  const cmd = (req as { cmd?: unknown }).cmd;
  if (typeof cmd !== 'string' || !(CONTROL_COMMANDS as readonly string[]).includes(cmd)) {
    return { ok: false, error: `unknown command ${JSON.stringify(cmd)}; known: ${CONTROL_COMMANDS.join(', ')}` };
  }
  try {
    return { ok: true, result: await handler(req as ControlRequest) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

function reply(sock: Socket, r: ControlResponse): void {
  if (sock.destroyed) return;
  sock.end(`${JSON.stringify(r)}\n`);
}
