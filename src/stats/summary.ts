// The console's periodic line at info level: one short summary across the
// queues instead of the per-queue key=value dumps, which stay in the JSON log
// (and on the console at debug level).
import type { QueueCounters } from '../queue/supervisor';

export interface SummaryInput {
  queues: readonly QueueCounters[];
  /** Packets received at the previous summary (all queues), and the seconds since. */
  previousReceived: number;
  seconds: number;
  /** Rule alerts plus per-source and traffic alerts. */
  alerts: number;
  /** null: nothing enforces blocks (nfips watch without --block). */
  blocks: { active: number; kernelDropped: number | null } | null;
  uninspected: { packets: number; share: number; meaning: string } | null;
  /** nfips watch: packets are captured, not queued, and nothing is dropped by nfips. */
  capture?: boolean;
}

export function summaryLine(s: SummaryInput): string {
  const sum = (k: keyof QueueCounters) => s.queues.reduce((n, c) => n + c[k], 0);
  const received = sum('received');
  const pps = Math.round(Math.max(0, received - s.previousReceived) / Math.max(s.seconds, 1e-3));
  const b = s.blocks;
  const blocks = b === null ? '' : `; blocks ${b.active}${b.kernelDropped === null ? '' : `, ${b.kernelDropped} packets dropped by them`}`;
  if (s.capture) {
    return `packets ${received} (${pps} pps) captured: rules would drop ${sum('dryRunPassed')}; alerts ${s.alerts}${blocks}; capture lost ${sum('captureDrops') + Math.max(0, ...s.queues.map((c) => c.captureIfDrops))}`;
  }
  const u = s.uninspected;
  const uninspected = u ? `uninspected ${u.packets} (${(u.share * 100).toFixed(u.share > 0 && u.share < 0.001 ? 3 : 1)}%${u.packets > 0 && u.meaning === 'dropped' ? ', dropped' : ''})` : 'uninspected -';
  return `packets ${received} (${pps} pps): accepted ${sum('accepted')}, dropped ${sum('dropped')}, rejected ${sum('rejected')}, failure verdicts ${sum('failVerdicts')}; alerts ${s.alerts}${blocks}; ${uninspected}`;
}
