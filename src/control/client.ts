// Asks a running nfips over its control socket.
import { createConnection } from 'node:net';
import { ControlRequest, ControlResponse } from './protocol';

export function controlRequest(file: string, req: ControlRequest, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(file);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer on ${file} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (c: string) => (buf += c));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? ` (is nfips running with --control-socket ${file}?)` : '';
      // The code stays on the error: `blocks` tells "not running" from other failures by it.
      reject(Object.assign(new Error(`cannot reach nfips at ${file}: ${e.message}${hint}`), { code: e.code }));
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(buf) as ControlResponse;
        if (r.ok) resolve(r.result);
        else reject(new Error(r.error));
      } catch {
        reject(new Error(`garbled answer from nfips: ${buf.slice(0, 200)}`));
      }
    });
  });
}

/** Whether an error from controlRequest means nobody listens on the socket (nfips is not running). */
export function notRunning(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}
