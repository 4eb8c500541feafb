// The normal-traffic recipe: peers in the server namespace and
// traffic-client.js in the client namespace. The anomaly detector's default
// model is trained on this traffic, and tests play it to check that it
// raises no alert.
import { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { startPeers } from './peers';
import { Topology } from './topology';
import type { LevelName, LevelSpec, TrafficClientConfig, TrafficSummary } from './traffic-client';

export type { LevelName, LevelSpec, PhaseSummary, TrafficSummary } from './traffic-client';

export const TRAFFIC_CLIENT = path.join(__dirname, 'traffic-client.js');

export interface NormalTrafficPorts {
  http: number;
  udp: number;
  echo: number;
}

export const NORMAL_TRAFFIC_PORTS: Readonly<NormalTrafficPorts> = { http: 8080, udp: 5353, echo: 7007 };

export interface NormalTrafficOptions {
  seconds: number;
  seed?: number;
  /**
   * Client addresses to send from. The default leaves clientExtra4[2] and
   * clientExtra4[3] unused; tests attack from clientExtra4[3].
   */
  sources?: string[];
  ports?: Partial<NormalTrafficPorts>;
  levels?: Partial<Record<LevelName, Partial<LevelSpec>>>;
  phaseSeconds?: [number, number];
}

export interface NormalTraffic {
  readonly sources: readonly string[];
  readonly ports: Readonly<NormalTrafficPorts>;
  /** Settles when the client has exited and the peers are gone; rejects when the client failed. */
  readonly done: Promise<TrafficSummary>;
  /** Ends the traffic early (SIGTERM) and resolves with the summary so far. */
  stop(): Promise<TrafficSummary>;
}

const STOP_KILL_MS = 10_000;

function ended(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

async function killAndWait(procs: ChildProcess[]): Promise<void> {
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (ended(p) || p.pid === undefined) return resolve();
          p.once('exit', () => resolve());
          p.kill('SIGTERM');
          const t = setTimeout(() => p.kill('SIGKILL'), 3000);
          p.once('exit', () => clearTimeout(t));
        }),
    ),
  );
}

/**
 * Namespaces do not take their processes with them: if this process exits or
 * is terminated mid-run, kill the children first. A signal is re-raised when
 * nobody else handles it, so its default effect is kept.
 */
function guardChildren(procs: ChildProcess[]): () => void {
  const killAll = () => {
    for (const p of procs) if (!ended(p)) p.kill('SIGKILL');
  };
  const onSignal = (sig: NodeJS.Signals) => {
    killAll();
    unguard();
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const unguard = () => {
    process.removeListener('exit', killAll);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGHUP', onSignal);
  };
  process.once('exit', killAll);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  return unguard;
}

export async function startNormalTraffic(t: Topology, opts: NormalTrafficOptions): Promise<NormalTraffic> {
  const ports = { ...NORMAL_TRAFFIC_PORTS, ...opts.ports };
  const sources = opts.sources ?? [t.addr.client4, t.addr.clientExtra4[0], t.addr.clientExtra4[1]];
  const config: TrafficClientConfig = {
    server: t.addr.server4,
    sources,
    httpPort: ports.http,
    udpPort: ports.udp,
    echoPort: ports.echo,
    seconds: opts.seconds,
    seed: opts.seed ?? 1,
    levels: opts.levels,
    phaseSeconds: opts.phaseSeconds,
  };
  const peers = await startPeers(t, t.server, [
    ['http', ports.http],
    ['udp-echo', ports.udp],
    ['tcp-echo', ports.echo],
  ]);
  const all: ChildProcess[] = [...peers];
  const unguard = guardChildren(all);

  let client: ChildProcess;
  try {
    client = t.spawn(t.client, process.execPath, [TRAFFIC_CLIENT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    await killAndWait(peers);
    unguard();
    throw e;
  }
  all.push(client);
  let out = '';
  let err = '';
  client.stdout?.setEncoding('utf8');
  client.stderr?.setEncoding('utf8');
  client.stdout?.on('data', (d: string) => (out += d));
  client.stderr?.on('data', (d: string) => (err = (err + d).slice(-4000)));

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    client.once('error', (error) => resolve({ code: null, signal: null, error }));
    // 'close', not 'exit': the summary line may still be in the pipe at exit.
    client.once('close', (code, signal) => resolve({ code, signal }));
  });
  const done = exited.then(async ({ code, signal, error }) => {
    // The peers outlive the client only as long as it takes to stop them.
    await killAndWait(all);
    unguard();
    const line = out.trim().split('\n').pop() ?? '';
    let summary: TrafficSummary | null = null;
    try {
      summary = line ? (JSON.parse(line) as TrafficSummary) : null;
    } catch {
      summary = null;
    }
    if (error || code !== 0 || !summary) {
      const why = error ? error.message : `exited with ${code ?? signal}`;
      throw new Error(`traffic client ${why}${summary ? `; summary ${JSON.stringify(summary)}` : ''}${err.trim() ? `; stderr: ${err.trim()}` : ''}`);
    }
    return summary;
  });
  // A caller that only uses stop() must not get an unhandled rejection.
  done.catch(() => undefined);

  return {
    sources,
    ports,
    done,
    async stop() {
      if (!ended(client) && client.pid !== undefined) {
        client.kill('SIGTERM');
        const k = setTimeout(() => client.kill('SIGKILL'), STOP_KILL_MS);
        await exited;
        clearTimeout(k);
      }
      return done;
    },
  };
}
