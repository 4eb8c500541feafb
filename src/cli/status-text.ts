// `nfips status` and `nfips blocks list` for a person at a terminal; --json
// gives the full objects.
import type { SessionRow } from '../flow/flow-record';
import { BlockView } from '../blocks/manager';
import { escapeControl } from '../log/escape';

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

interface StatusWorker {
  queue: number;
  received: number;
  /** Packets a drop or reject would have stopped (rules only log in watch). */
  dryRunPassed: number;
  capture: { drops: number; if_drops: number; skipped: number };
  classifier: StatusQueue['classifier'];
}

export interface StatusView {
  pid: number;
  uptime_s: number;
  mode: string;
  rules_mode?: string;
  rules: { version: number; file: string; sha256: string; count: number; lock: boolean; default: string };
  iptables?: {
    table: string;
    /** false: nfips watch --block's chain, block DROPs only. */
    queueing?: boolean;
    intact: boolean;
    damage: { detail: string; kind: string }[];
    errors: string[];
    repairs: number;
    last_repair: { at: string; damage: { detail: string }[] } | null;
    last_failure: { at: string; error: string } | null;
    check_interval_s: number;
  };
  /** null in nfips watch: nothing is queued. */
  unverdicted: { packets: number; meaning: string; queue_rule_packets: number; share?: number; recent?: { packets: number; queue_rule_packets: number; share: number; seconds: number } } | { error: string } | null;
  /** nfips run: one entry per queue. */
  queues?: StatusQueue[];
  /** nfips watch: what is captured, and one entry per capture thread. */
  capture?: { ifaces: string[]; nflog_groups: number[]; filter: string | null; block: boolean };
  workers?: StatusWorker[];
  /** null in nfips watch without --block. */
  blocks: { active: number; kernel_dropped: { packets?: number; bytes?: number; error?: string } | null; blocks: BlockView[] } | null;
  detection?: { sources: { alerts: number; open: number; distributed_alerts: number; tracked: number; suppressed?: number } } | null;
  crowdsec?: CrowdSecStatus | null;
  flows?: { log: boolean; rate_per_queue: number; logged: number; suppressed: number; evictions: number; overflows: number };
  learning?: { state: string; learnt_s?: number; duration_s?: number; percent?: number; training?: { phase: string; done: number; total: number }; error?: string; finished_at?: string; model?: string } | null;
}

/** src/crowdsec/link.ts status(). */
interface CrowdSecStatus {
  url: string;
  state: string;
  last_pull: string | null;
  last_error: string | null;
  decisions_known: number;
  decisions_applied: number;
  decisions_removed: number;
  decisions_reapplied?: number;
  refused: number;
  apply_failures?: number;
  own_lifted?: number;
  own_lift_failures?: number;
  own_lifts_pending?: number;
  publisher: { pending: number; published: number; state: string; rejected?: number; dropped?: number } | null;
}

function crowdsecLine(c: CrowdSecStatus): string {
  const err = c.state === 'connected' || !c.last_error ? '' : ` (${c.last_error})`;
  // Counters that are mostly zero are shown only when they are not.
  const some = (n: number | undefined, one: string, many: string): string => (n ? `, ${n} ${n === 1 ? one : many}` : '');
  const p = c.publisher;
  // `dropped` counts the alerts the Local API rejected too.
  const rejected = p?.rejected ? ` (${p.rejected} rejected by the Local API)` : '';
  const pub = p ? `; publishing: ${p.published} sent, ${p.pending} pending${some(p.dropped, 'dropped', 'dropped')}${rejected}` : '; not publishing (no machine credentials)';
  const own = c.own_lifted || c.own_lift_failures || c.own_lifts_pending ? `; own decisions deleted by an operator: ${c.own_lifted ?? 0} blocks lifted${some(c.own_lift_failures, 'failed lift', 'failed lifts')}${some(c.own_lifts_pending, 'lift waiting', 'lifts waiting')}` : '';
  return `crowdsec: ${c.url} ${c.state}${err}, last pull ${c.last_pull ?? 'never'}; decisions: ${c.decisions_known} known, ${c.decisions_applied} applied${some(c.decisions_reapplied, 'reapplied', 'reapplied')}, ${c.decisions_removed} lifted, ${c.refused} refused${some(c.apply_failures, 'pull failed to apply', 'pulls failed to apply')}${own}${pub}`;
}

function duration(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${d ? `${d}d ` : ''}${d || h ? `${h}h ` : ''}${m}m ${s % 60}s`;
}

/** One string per line. */
function table(head: string[], rows: (string | number)[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => escapeControl(String(r[i])).length)));
  // Keys and reasons come from outside (a manual block's --reason): one row stays one line.
  const cells = rows.map((r) => r.map((c) => escapeControl(String(c))));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i] ?? 0) : c.padStart(w[i] ?? 0))).join('  ');
  return [line(head), ...cells.map(line)];
}

export function formatStatus(s: StatusView): string {
  const out: string[] = [];
  const l = s.learning;
  const learningNow = l && l.state !== 'done';
  out.push(`nfips pid ${s.pid}, up ${duration(s.uptime_s)}, mode ${learningNow ? `learning (then ${s.mode})` : s.mode}`);
  if (s.rules_mode === 'log') out.push('rules: DRY RUN (--rules-mode log): nothing is dropped or rejected by the rules; would-drop/would-reject events say what would have been');
  if (l) {
    if (l.state === 'done') out.push(`learning: done at ${l.finished_at ?? '?'}, running with ${l.model ?? 'the learnt model'}`);
    else {
      const training = l.training ? `, training: ${l.training.phase} ${l.training.done}/${l.training.total}` : '';
      const failed = l.state === 'failed' ? `, last training failed: ${l.error ?? '?'}` : '';
      out.push(`learning: ${duration(l.learnt_s ?? 0)} of ${duration(l.duration_s ?? 0)} learnt (${l.percent ?? 0}%), alerts only until then${training}${failed}`);
    }
  }
  const d = s.detection?.sources;
  if (d) out.push(`per-source detection: ${d.alerts} alerts, ${d.open} sources in an episode now, ${d.distributed_alerts} distributed alerts, ${d.tracked} sources tracked${d.suppressed ? `, ${d.suppressed} suppressed (--suppress)` : ''}`);
  const f = s.flows;
  if (f) out.push(`flows: ${f.log ? `logged ${f.logged}, ${f.suppressed} over --flow-log-rate ${f.rate_per_queue}/s per queue` : 'not logged (--flow-log off)'}; session table: ${f.evictions} live sessions evicted, ${f.overflows} packets found it full`);
  if (s.iptables) out.push(...chainLines(s.iptables));
  out.push(`rules version ${s.rules.version}: ${s.rules.count} rules from ${s.rules.file} (sha256 ${s.rules.sha256.slice(0, 12)}), default ${s.rules.default}${s.rules.lock ? ', LOCKDOWN' : ''}`);
  out.push('');
  if (s.capture && s.workers) {
    const c = s.capture;
    const what = [...c.ifaces.map((i) => `interface ${i}`), ...c.nflog_groups.map((g) => `NFLOG group ${g}`)].join(', ');
    out.push(`watching ${what}${c.filter ? ` (filter: ${c.filter})` : ''}: passive, rules log what they would drop${c.block ? '; anomalous sources are blocked (--block)' : '; nothing is blocked'}`);
    out.push(
      ...table(
        ['worker', 'captured', 'would drop', 'capture drops', 'interface drops', 'skipped', 'windows', 'alerts'],
        s.workers.map((w) => [w.queue, w.received, w.dryRunPassed, w.capture.drops, w.capture.if_drops, w.capture.skipped, w.classifier?.windows ?? '-', w.classifier?.alerts ?? '-']),
      ),
    );
  }
  if (s.queues) out.push(
    ...table(
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
  // With the chain gone its counters cannot be read; iptables' own complaint
  // ("... is incompatible, use 'nft' tool") only hides the real news.
  const chainMissing = s.iptables?.damage.some((d) => d.kind === 'chain_missing') ?? false;
  if (u === null) {
    // watch: nothing is queued, so nothing can pass unverdicted.
  } else if ('error' in u) out.push(chainMissing ? 'unverdicted: unknown, the chain is missing (nothing is sent to the queue)' : `unverdicted: counters unreadable: ${u.error}`);
  else {
    const recent = u.recent && u.recent.seconds > 0 ? `; last ${u.recent.seconds} s: ${u.recent.packets} of ${u.recent.queue_rule_packets} (${percent(u.recent.share)})` : '';
    out.push(`unverdicted: ${u.packets} of ${u.queue_rule_packets} packets sent to the queue ${u.meaning} (${percent(u.share ?? 0)}, fail-${u.meaning === 'dropped' ? 'closed' : 'open'})${recent}`);
  }
  out.push('');
  if (!s.blocks) {
    out.push('blocks: none enforced (nfips watch without --block)');
    return `${out.map(escapeControl).join('\n')}\n`;
  }
  const k = s.blocks.kernel_dropped;
  const dropped = k?.error !== undefined
    ? chainMissing ? 'NOT enforced: the chain holding the block rules is missing' : `kernel counters unreadable: ${k.error}`
    : `${k?.packets ?? 0} packets dropped before the queue`;
  out.push(`blocks: ${s.blocks.active} active, ${dropped}`);
  if (s.crowdsec) out.push(crowdsecLine(s.crowdsec));
  if (s.blocks.blocks.length) out.push(...blockLines(s.blocks.blocks));
  // File names, rule-set details and iptables lines come from outside: every entry of out is one line.
  return `${out.map(escapeControl).join('\n')}\n`;
}

function percent(share: number): string {
  return `${(share * 100).toFixed(share > 0 && share < 0.001 ? 3 : 1)}%`;
}

/** Says first and plainly when nfips is not seeing traffic because its chain or jump is gone. */
function chainLines(c: NonNullable<StatusView['iptables']>): string[] {
  const repaired = c.repairs > 0 && c.last_repair
    ? `; repaired ${c.repairs} time(s) since start, last at ${c.last_repair.at}: ${c.last_repair.damage.map((d) => d.detail).join('; ')}`
    : '';
  const damage = c.damage.filter((d) => d.kind !== 'set_entries');
  if (c.intact) return [`iptables: chain in place (${c.queueing === false ? 'block sets only' : `queueing from ${c.table}`})${repaired}`];
  const out: string[] = [];
  if (damage.length > 0) {
    const what = damage.some((d) => d.kind === 'chain_missing') ? 'CHAIN MISSING' : 'CHAIN DAMAGED';
    out.push(`iptables: ${what}, packets are NOT being inspected: ${damage.map((d) => d.detail).join('; ')}`);
    out.push(`  nfips re-installs it within ${c.check_interval_s} s${c.last_failure ? `; the last attempt failed at ${c.last_failure.at}: ${c.last_failure.error}` : ''}`);
  }
  if (c.errors.length > 0) out.push(`iptables: could not check the chain: ${c.errors.join('; ')}`);
  if (repaired) out.push(`  ${repaired.slice(2)}`);
  return out;
}

function blockLines(list: readonly BlockView[]): string[] {
  return table(
    ['block', 'scope', 'origin', 'left', 'ttl', 'offence', 'packets', 'reason'],
    list.map((b) => [b.key, b.scope, b.origin, `${b.remaining_s}s`, `${b.ttl_seconds}s`, b.offence, b.kernel?.packets ?? '-', b.reason]),
  );
}

export function formatBlocks(list: readonly BlockView[]): string {
  if (list.length === 0) return 'no blocks\n';
  return `${blockLines(list).join('\n')}\n`;
}

/** `nfips sessions` as a table: one live session a line, the server first; total: live sessions in all (rows may be fewer, --limit). */
export function formatSessions(rows: readonly SessionRow[], total = rows.length): string {
  if (rows.length === 0) return total === 0 ? 'no live sessions\n' : `${total} live sessions, none listed\n`;
  const ep = (ip: string, port: number) => (port ? (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`) : ip);
  const lines = table(
    ['server', 'client', 'proto', 'pkts>srv', 'bytes>srv', 'pkts>cli', 'bytes>cli', 'first seen', 'last seen', 'state', 'server by', 'queue'],
    rows.map((r) => [ep(r.server_ip, r.server_port), ep(r.client_ip, r.client_port), r.protocol, r.packets_to_server, r.bytes_to_server, r.packets_to_client, r.bytes_to_client, r.first_seen, r.last_seen, r.state, r.server_guess, r.queue]),
  );
  const shown = total > rows.length ? `${rows.length} of ${total} live sessions (--limit)` : `${rows.length} session${rows.length === 1 ? '' : 's'}`;
  return `${lines.join('\n')}\n${shown}\n`;
}
