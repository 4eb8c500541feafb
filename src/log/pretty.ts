// One log record as one line for a person at a terminal (`nfips logs`).
// The JSON lines stay the interface for tools; this is only a view.
import { escapeControl } from './escape';

type Rec = Record<string, unknown>;

const str = (v: unknown): string => (v === undefined || v === null ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
const endpoint = (ip: unknown, port: unknown) => (port === undefined || port === null || port === 0 ? str(ip) : `${str(ip)}:${str(port)}`);
const time = (r: Rec) => {
  const t = typeof r.timestamp === 'string' ? r.timestamp : '';
  return t.replace('T', ' ').replace(/\.\d+Z$/, 'Z') || '-';
};

interface AnomalyFields {
  kind?: 'source' | 'distributed' | 'traffic';
  evidence?: { measure: string; service?: string; scale: string; value: number; threshold: number }[];
  sequence?: { symbols: string };
  queue?: number;
  score?: number;
  threshold?: number;
  deviations?: { feature: string; z: number }[];
  responsible?: { ip: string; share: number }[];
  distributed?: boolean;
  episode?: { id: number; follow_up?: boolean };
  peak_score?: number;
  windows_above?: number;
  sources?: string[];
}

function evidenceLine(r: Rec, a: AnomalyFields): string {
  const per = (x: { scale: string }) => (x.scale === 'second' ? '/s' : ' in the window');
  const ev = (a.evidence ?? []).map((x) => `${x.measure}${x.service ? ` ${x.service}` : ''} ${x.value}${per(x)} > ${x.threshold}`).join(', ');
  const seq = a.sequence ? `; sequence ${a.sequence.symbols}` : '';
  const sig = (r.alert as { signature?: string } | undefined)?.signature ?? 'anomaly';
  const who = a.kind === 'distributed' ? 'many sources (distributed, nobody blocked)' : str(r.src_ip);
  const follow = a.episode?.follow_up ? ', follow-up' : '';
  const action = (r.alert as { action?: string } | undefined)?.action === 'blocked' ? ' BLOCKED' : '';
  return `ALERT  ${who} ${sig}: ${ev}${seq} [episode ${str(a.episode?.id)}${follow}]${action}`;
}

function anomalyLine(r: Rec, a: AnomalyFields): string {
  if (a.kind === 'source' || a.kind === 'distributed') return evidenceLine(r, a);
  const lead = (a.deviations ?? []).slice(0, 3).map((d) => `${d.feature} z=${d.z}`).join(', ');
  const who = a.distributed ? 'many sources (distributed)' : (a.responsible ?? []).map((s) => `${s.ip} (${Math.round(s.share * 100)}%)`).join(', ');
  const sig = (r.alert as { signature?: string } | undefined)?.signature ?? 'anomaly';
  const follow = a.episode?.follow_up ? ', follow-up' : '';
  const action = (r.alert as { action?: string } | undefined)?.action === 'blocked' ? ' BLOCKED' : '';
  return `ALERT  q${str(a.queue)} ${sig}: score ${str(a.score)} > ${str(a.threshold)}; ${lead}; from ${who || '-'} [episode ${str(a.episode?.id)}${follow}]${action}`;
}

export function formatRecord(r: Rec): string {
  const type = str(r.event_type);
  let body: string;
  const anomaly = r.anomaly as AnomalyFields | undefined;
  if (type === 'alert' && anomaly) {
    body = anomalyLine(r, anomaly);
  } else if (type === 'anomaly_end' && anomaly && (anomaly.kind === 'source' || anomaly.kind === 'distributed')) {
    body = `END    ${anomaly.kind === 'source' ? str(r.src_ip) : 'distributed'} episode ${str(anomaly.episode?.id)} over`;
  } else if (type === 'anomaly_end' && anomaly) {
    body = `END    q${str(anomaly.queue)} episode ${str(anomaly.episode?.id)} over: peak score ${str(anomaly.peak_score)}, ${str(anomaly.windows_above)} windows above, sources ${(anomaly.sources ?? []).join(', ') || '-'}`;
  } else if (type === 'drop' || type === 'reject' || type === 'alert' || type === 'accept') {
    const iface = r.in_iface ? ` in ${str(r.in_iface)}` : '';
    const sup = typeof r.suppressed === 'number' && r.suppressed > 0 ? ` (+${r.suppressed} suppressed)` : '';
    // A dry run (--rules-mode log) did not do it: say so.
    const would = String((r.alert as { action?: string } | undefined)?.action ?? '').startsWith('would-');
    const icmp = r.icmp_type !== undefined ? ` type ${str(r.icmp_type)} code ${str(r.icmp_code)}` : '';
    body = `${(would ? `WOULD-${type.toUpperCase()}` : type.toUpperCase()).padEnd(6)} rule ${str(r.rule_id)} ${str(r.proto)} ${endpoint(r.src_ip, r.src_port)} -> ${endpoint(r.dest_ip, r.dest_port)}${icmp}${iface}${sup}`;
  } else if ((type === 'block' || type === 'unblock') && r.block) {
    const b = r.block as { key?: string; origin?: string; ttl_seconds?: number; expires_at?: string; offence?: number; reason?: string };
    body = type === 'block'
      ? `BLOCK  ${str(b.key)} (${str(r.action)}, ${str(b.origin)}: ${str(b.reason)}) for ${str(b.ttl_seconds)} s until ${str(b.expires_at)}, offence ${str(b.offence)}`
      : `UNBLK  ${str(b.key)} (${str(r.reason)})`;
  } else if (type === 'stats' || type === 'stats_final') {
    const k = r.kernel as { queue_depth?: number; queue_dropped?: number; user_dropped?: number } | null | undefined;
    const c = r.classifier as { scored?: number; skipped?: number; alerts?: number } | null | undefined;
    const cls = c ? `; windows scored ${str(c.scored)}, skipped ${str(c.skipped)}, alerts ${str(c.alerts)}` : '';
    const kern = k ? `; kernel queue ${str(k.queue_depth)}, dropped ${str(k.queue_dropped)}/${str(k.user_dropped)}` : '';
    body = `${type === 'stats' ? 'STATS ' : 'FINAL '} q${str(r.queue)} received ${str(r.received)}, accepted ${str(r.accepted)}, dropped ${str(r.dropped)}, rejected ${str(r.rejected)}, ${str(r.pps)} pps${kern}${cls}`;
  } else {
    const skip = new Set(['timestamp', 'event_type', 'level', 'message']);
    const rest = Object.entries(r)
      .filter(([k]) => !skip.has(k))
      .map(([k, v]) => `${k}=${str(v)}`)
      .join(' ');
    body = `${type}${rest ? ` ${rest}` : ''}`;
  }
  // Rule ids, descriptions and block reasons come from outside: one record stays one line.
  return escapeControl(`${time(r)} ${body}`);
}

/** Whether a record passes `--type` (an empty list passes everything). */
export function typeMatches(r: Rec, types: readonly string[]): boolean {
  return types.length === 0 || types.includes(str(r.event_type));
}
