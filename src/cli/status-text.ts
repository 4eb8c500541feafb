// `nfips status` and `nfips blocks list` for a person at a terminal; --json
// gives the full objects.
import { BlockView } from '../blocks/manager';

interface StatusQueue {
  queue: number;
  received: number;
  accepted: number;
  dropped: number;
  rejected: number;
  /** Dropped because their transport header was hidden and a drop rule could have matched (absent from older versions). */
  evasionDrops?: number;
  failVerdicts: number;
  kernel: { queueTotal: number; queueDropped: number; userDropped: number } | null;
  classifier: { windows: number; scored: number; skipped: number; thin: number; anomalous: number; alerts: number } | null;
}

export interface StatusView {
  pid: number;
  uptime_s: number;
  mode: string;
  rules: { version: number; file: string; sha256: string; count: number; lock: boolean; default: string };
  unverdicted: { packets: number; meaning: string; queue_rule_packets: number } | { error: string };
  queues: StatusQueue[];
  blocks: { active: number; kernel_dropped: { packets?: number; bytes?: number; error?: string } | null; blocks: BlockView[] };
  detection?: { sources: { alerts: number; open: number; distributed_alerts: number; tracked: number } } | null;
  learning?: { state: string; learnt_s?: number; duration_s?: number; percent?: number; training?: { phase: string; done: number; total: number }; error?: string; finished_at?: string; model?: string } | null;
}

function duration(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${d ? `${d}d ` : ''}${d || h ? `${h}h ` : ''}${m}m ${s % 60}s`;
}

function table(head: string[], rows: (string | number)[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r: (string | number)[]) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i] ?? 0) : String(c).padStart(w[i] ?? 0))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

export function formatStatus(s: StatusView): string {
  const out: string[] = [];
  const l = s.learning;
  const learningNow = l && l.state !== 'done';
  out.push(`nfips pid ${s.pid}, up ${duration(s.uptime_s)}, mode ${learningNow ? `learning (then ${s.mode})` : s.mode}`);
  if (l) {
    if (l.state === 'done') out.push(`learning: done at ${l.finished_at ?? '?'}, running with ${l.model ?? 'the learnt model'}`);
    else {
      const training = l.training ? `, training: ${l.training.phase} ${l.training.done}/${l.training.total}` : '';
      const failed = l.state === 'failed' ? `, last training failed: ${l.error ?? '?'}` : '';
      out.push(`learning: ${duration(l.learnt_s ?? 0)} of ${duration(l.duration_s ?? 0)} learnt (${l.percent ?? 0}%), alerts only until then${training}${failed}`);
    }
  }
  const d = s.detection?.sources;
  if (d) out.push(`per-source detection: ${d.alerts} alerts, ${d.open} sources in an episode now, ${d.distributed_alerts} distributed alerts, ${d.tracked} sources tracked`);
  out.push(`rules version ${s.rules.version}: ${s.rules.count} rules from ${s.rules.file} (sha256 ${s.rules.sha256.slice(0, 12)}), default ${s.rules.default}${s.rules.lock ? ', LOCKDOWN' : ''}`);
  out.push('');
  out.push(
    table(
      ['queue', 'received', 'accepted', 'dropped', 'rejected', 'evasion drops', 'fail verdicts', 'kernel depth', 'kernel drops', 'socket drops', 'windows', 'skipped', 'alerts'],
      s.queues.map((q) => [
        q.queue,
        q.received,
        q.accepted,
        q.dropped,
        q.rejected,
        q.evasionDrops ?? '-',
        q.failVerdicts,
        q.kernel?.queueTotal ?? '-',
        q.kernel?.queueDropped ?? '-',
        q.kernel?.userDropped ?? '-',
        q.classifier?.windows ?? '-',
        q.classifier?.skipped ?? '-',
        q.classifier?.alerts ?? '-',
      ]),
    ),
  );
  const u = s.unverdicted;
  out.push('error' in u ? `unverdicted: counters unreadable: ${u.error}` : `unverdicted: ${u.packets} of ${u.queue_rule_packets} packets sent to the queue ${u.meaning} (fail-${u.meaning === 'dropped' ? 'closed' : 'open'})`);
  out.push('');
  const k = s.blocks.kernel_dropped;
  const dropped = k?.error !== undefined ? `kernel counters unreadable: ${k.error}` : `${k?.packets ?? 0} packets dropped before the queue`;
  out.push(`blocks: ${s.blocks.active} active, ${dropped}`);
  if (s.blocks.blocks.length) out.push(formatBlocks(s.blocks.blocks).trimEnd());
  return `${out.join('\n')}\n`;
}

export function formatBlocks(list: readonly BlockView[]): string {
  if (list.length === 0) return 'no blocks\n';
  return `${table(
    ['block', 'scope', 'origin', 'left', 'ttl', 'offence', 'packets', 'reason'],
    list.map((b) => [b.key, b.scope, b.origin, `${b.remaining_s}s`, `${b.ttl_seconds}s`, b.offence, b.kernel?.packets ?? '-', b.reason]),
  )}\n`;
}
