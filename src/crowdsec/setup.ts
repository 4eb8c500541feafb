// Starts the CrowdSec link for `nfips run` (one call from run, one close):
// the bouncer's pull loop and, with machine credentials, the publisher.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { BlockManager } from '../blocks/manager';
import { PACKAGE_ROOT } from '../config/paths';
import type { EventLog } from '../log/event-log';
import { LapiClient } from './lapi-client';
import { CrowdSecLink } from './link';
import { CrowdSecOptions, CrowdSecSecrets } from '../config/crowdsec-options';
import { Publisher } from './publisher';

export interface CrowdSec {
  link: CrowdSecLink;
  status(): Record<string, unknown>;
  close(): Promise<void>;
}

/** Per request: a Local API that answers slower than this is treated as down. */
export const LAPI_TIMEOUT_MS = 10_000;

/**
 * "nfips/0.1.0": the Local API (1.4.6) reads a machine's version from the
 * part after the slash and refuses the login of an agent without one.
 */
function userAgent(): string {
  try {
    const v = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version?: unknown }).version;
    return `nfips/${typeof v === 'string' ? v : '0'}`;
  } catch {
    return 'nfips/0';
  }
}

export function startCrowdSec(o: CrowdSecOptions, secrets: CrowdSecSecrets, blocks: BlockManager, log: Pick<EventLog, 'event'>, stateDir: string): CrowdSec {
  const client = new LapiClient({ url: o.url, timeoutMs: LAPI_TIMEOUT_MS, userAgent: userAgent() });
  const intervalMs = o.intervalSeconds * 1000;
  const publisher = o.machineId !== null && secrets.password !== null ? new Publisher({ client, machineId: o.machineId, password: secrets.password, stateDir, log, intervalMs, refusalChecker: () => blocks.refusalChecker() }) : null;
  const link = new CrowdSecLink({ client, url: o.url, apiKey: secrets.apiKey, intervalMs, blocks, log, publisher });
  if (publisher) {
    // Anomaly blocks only: blocks of origin crowdsec are never published back.
    blocks.onPlaced((b, f, meta) => {
      link.placed(b);
      publisher.enqueue(b, f, meta);
    });
  }
  // Starts the publisher too, once its first pull has settled.
  link.start();
  return {
    link,
    status: () => link.status(),
    async close() {
      blocks.onPlaced(null);
      publisher?.halt();
      await link.close();
      await publisher?.close();
    },
  };
}
