// The normal-traffic recipe: peers in the server namespace and
// traffic-client.js in the client namespace. The anomaly detector's default
// model is trained on this traffic, and tests play it to check that it
// raises no alert.
import { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ended, guardChildren, stopAll, summaryOf } from '../procs';
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
    await stopAll(peers);
    unguard();
    throw e;
  }
  all.push(client);
  // The peers outlive the client only as long as it takes to stop them.
  const { exited, done } = summaryOf<TrafficSummary>(client, 'traffic client', async () => {
    await stopAll(all);
    unguard();
  });

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
