// What nfips tells the Local API about one of its anomaly blocks: an alert
// (scenario nfips/<signature>, the source, the evidence in its meta) with a
// ban decision (scenario nfips/<signature>@<machine id>) for the time the block has left. CrowdSec decisions know
// only IPs and ranges: a block narrowed to a protocol or service here is a
// ban of the whole source at the other bouncers (its local scope is in the
// meta). Pure.
import type { Decision } from './decision';
import { formatGoDuration } from './go-duration';

/** An anomaly block waiting to be published (as the queue file keeps it). */
export interface PendingAlert {
  /** Canonical network: "10.0.0.6" or "10.0.0.0/24". */
  value: string;
  scenario: string;
  /** Epoch ms the block ends; the decision ends then too. */
  until: number;
  /** Epoch ms the block was placed. */
  at: number;
  /** The local block: "10.0.0.6 tcp:80". */
  key: string;
  signature: string;
  signatureId: number;
  episode: number;
  /** "tcp_failed=812/s (limit 40)", one per measure exceeded. */
  evidence: string[];
}

export const DECISION_ORIGIN = 'nfips';

/** "failed TCP connections" -> "nfips/failed-tcp-connections". */
const SLUG_MAX = 200;

export function scenarioFor(signature: string): string {
  // Capped: a signature can be long, and the Local API stores the scenario in a bounded column.
  const slug = signature.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, SLUG_MAX).replace(/^-+|-+$/g, '');
  return `nfips/${slug || 'anomaly'}`;
}

/**
 * The scenario of the decision itself names the gateway: a bouncer's stream
 * carries no machine id, and the same attacker and scenario published by
 * another gateway must not be mistaken for this one's own (and so left
 * unenforced here).
 */
export function decisionScenario(scenario: string, machineId: string): string {
  return `${scenario}@${machineId}`;
}

/**
 * A decision this machine published, told by the decision alone (origin
 * nfips, scenario nfips/<slug>@<machine id>): no record that a lost or
 * damaged file could take away. The slug has no "@", so machine "gw1" does
 * not claim "nfips/x@a@gw1" (machine "a@gw1"'s).
 */
export function isOwnDecision(d: Pick<Decision, 'origin' | 'scenario'>, machineId: string): boolean {
  const tail = `@${machineId}`;
  if (d.origin !== DECISION_ORIGIN || !d.scenario.endsWith(tail)) return false;
  const head = d.scenario.slice(0, -tail.length);
  return head.startsWith('nfips/') && !head.includes('@');
}

/** "nfips/x@gw1" -> "nfips/x": the scenario an own decision was published under (isOwnDecision: the slug has no "@"). */
export function ownScenarioOf(decisionScenario: string): string {
  const at = decisionScenario.indexOf('@');
  return at < 0 ? decisionScenario : decisionScenario.slice(0, at);
}

/**
 * The scenario an anomaly block is published under, from the reason the
 * block manager gives it ("nfips: <signature>", manager.ts): a block carries
 * no signature field of its own, and the state file keeps the reason.
 */
export function anomalyScenario(b: { origin: string; reason: string }): string | null {
  if (b.origin !== 'anomaly' || !b.reason.startsWith('nfips: ')) return null;
  return scenarioFor(b.reason.slice('nfips: '.length));
}

export function alertOf(p: PendingAlert, now: number, machineId: string): Record<string, unknown> {
  const range = p.value.includes('/');
  const scope = range ? 'Range' : 'Ip';
  const at = new Date(p.at).toISOString();
  const meta = [
    { key: 'signature', value: p.signature },
    { key: 'signature_id', value: String(p.signatureId) },
    { key: 'episode', value: String(p.episode) },
    { key: 'nfips_block', value: p.key },
    ...p.evidence.map((e, i) => ({ key: `evidence_${i + 1}`, value: e })),
  ];
  return {
    scenario: p.scenario,
    scenario_hash: '',
    scenario_version: '',
    message: `nfips blocked ${p.value} (${p.signature}): ${p.evidence.join('; ')}`,
    events_count: 1,
    events: [{ timestamp: at, meta: [{ key: 'source_ip', value: p.value }] }],
    start_at: at,
    stop_at: at,
    capacity: 0,
    leakspeed: '0',
    simulated: false,
    source: { scope, value: p.value, ...(range ? { range: p.value } : { ip: p.value }) },
    meta,
    decisions: [{ duration: formatGoDuration(Math.max(1, (p.until - now) / 1000)), origin: DECISION_ORIGIN, scenario: decisionScenario(p.scenario, machineId), scope, type: 'ban', value: p.value, simulated: false }],
  };
}
