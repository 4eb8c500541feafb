// Starts peer-server.js instances in a namespace and waits until each listens.
import { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/app/run-options';
import { Topology } from './topology';

export type PeerKind = 'http' | 'tcp-echo' | 'udp-echo';
export const PEER_SERVER = path.join(PACKAGE_ROOT, 'dist', 'lab', 'netns', 'peer-server.js');

function listening(p: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not start within 5 s`)), 5000);
    p.stdout?.once('data', () => {
      clearTimeout(t);
      resolve();
    });
    p.once('exit', (c) => {
      clearTimeout(t);
      reject(new Error(`${what} exited (${c})`));
    });
  });
}

/** Starts every [kind, port] in ns; on failure stops the ones already running. */
export async function startPeers(t: Topology, ns: string, peers: readonly (readonly [PeerKind, number])[]): Promise<ChildProcess[]> {
  const procs: ChildProcess[] = [];
  try {
    for (const [kind, port] of peers) {
      const p = t.spawn(ns, process.execPath, [PEER_SERVER, kind, String(port)]);
      procs.push(p);
      await listening(p, `${kind} server on port ${port}`);
    }
    return procs;
  } catch (e) {
    for (const p of procs) p.kill();
    throw e;
  }
}
