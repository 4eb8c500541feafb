// Starts the CrowdSec link for `nfips run` (one call from run, one close):
// the bouncer's pull loop and, with machine credentials, the publisher.
import type { BlockManager } from '../blocks/manager';
import type { EventLog } from '../log/event-log';
import { LapiClient } from './lapi-client';
import { CrowdSecLink } from './link';
import { CrowdSecOptions, CrowdSecSecrets } from './options';

export interface CrowdSec {
  link: CrowdSecLink;
  status(): Record<string, unknown>;
  close(): Promise<void>;
}

/** Per request: a Local API that answers slower than this is treated as down. */
export const LAPI_TIMEOUT_MS = 10_000;

export function startCrowdSec(o: CrowdSecOptions, secrets: CrowdSecSecrets, blocks: BlockManager, log: Pick<EventLog, 'event'>): CrowdSec {
  const client = new LapiClient({ url: o.url, timeoutMs: LAPI_TIMEOUT_MS, userAgent: 'nfips-bouncer' });
  const link = new CrowdSecLink({ client, url: o.url, apiKey: secrets.apiKey, intervalMs: o.intervalSeconds * 1000, blocks, log, publisher: null });
  link.start();
  return {
    link,
    status: () => link.status(),
    close: () => link.close(),
  };
}
