// The benchmark's arithmetic and tables: which nfips events belong to which
// attack, the times to alert and block, the names, the per-hour rates of the
// normal phase and the PASS/MISS against the targets. Pure functions over
// event records, unit-tested in lab/test/report.test.ts.

export type LogRecord = { event_type: string; timestamp: string } & Record<string, unknown>;

/** Targets the report compares against (seconds). */
export const TARGETS = {
  alertS: 5,
  blockS: 10,
  slowAlertS: 60,
  slowBlockS: 60,
  normalAlertsPerHour: 1,
  normalBlocks: 0,
} as const;

export function perHour(count: number, seconds: number): number {
  if (!(seconds > 0)) return count === 0 ? 0 : Infinity;
  return (count * 3600) / seconds;
}

export function timeOf(r: LogRecord): number {
  return Date.parse(r.timestamp);
}

interface Responsible {
  ip?: unknown;
}

function anomalyOf(r: LogRecord): { responsible?: Responsible[]; distributed?: unknown } | null {
  const a = r.anomaly;
  return a && typeof a === 'object' ? (a as { responsible?: Responsible[]; distributed?: unknown }) : null;
}

/** Every source an alert or block names: src_ip and, for anomaly alerts, anomaly.responsible[].ip. */
export function namesOf(r: LogRecord): string[] {
  const out: string[] = [];
  if (typeof r.src_ip === 'string') out.push(r.src_ip);
  const a = anomalyOf(r);
  if (a && Array.isArray(a.responsible)) for (const s of a.responsible) if (typeof s?.ip === 'string') out.push(s.ip);
  const block = r.block as { net?: unknown } | undefined;
  if (r.event_type === 'block' && block && typeof block.net === 'string') out.push(block.net.replace(/\/32$/, ''));
  return [...new Set(out)];
}

export function isDistributed(r: LogRecord): boolean {
  return anomalyOf(r)?.distributed === true;
}

const isAlert = (r: LogRecord) => r.event_type === 'alert';
const isBlock = (r: LogRecord) => r.event_type === 'block' && r.action !== 'restored';
const between = (r: LogRecord, from: number, to: number) => {
  const t = timeOf(r);
  return t >= from && t < to;
};

export type Verdict = 'PASS' | 'MISS';

export interface AttackWindow {
  name: string;
  label: string;
  /** null for the random-source flood. */
  attacker: string | null;
  slow: boolean;
  spoofed: boolean;
  /** ms since the epoch */
  start: number;
  /** when the tool was stopped */
  end: number;
  /** end of the observation window (start of the next attack, or end of the run) */
  windowEnd: number;
}

export interface AttackResult {
  name: string;
  label: string;
  attacker: string | null;
  slow: boolean;
  spoofed: boolean;
  seconds: number;
  /** s from the attack's start to the first alert naming the attacker (spoofed: the first distributed alert). */
  alertS: number | null;
  /** s from the start to the first block of the attacker (spoofed: null). */
  blockS: number | null;
  named: boolean;
  distributed: boolean;
  /** Sources named in alerts and blocks of the window other than the attacker. */
  extraNames: string[];
  /** Normal clients among them that were blocked. */
  blockedNormal: string[];
  /** Spoofed flood: real client addresses (normal clients and attackers) blocked in the window. */
  blockedReal: string[];
  alerts: number;
  blocks: number;
  alertVerdict: Verdict;
  blockVerdict: Verdict;
}

export function analyseAttack(events: LogRecord[], w: AttackWindow, normalClients: string[], realClients: string[]): AttackResult {
  const inWin = events.filter((r) => between(r, w.start, w.windowEnd));
  const alerts = inWin.filter(isAlert);
  const blocks = inWin.filter(isBlock);
  const secs = (r: LogRecord | undefined) => (r ? Math.round((timeOf(r) - w.start) / 100) / 10 : null);
  const firstAlert = w.spoofed ? alerts.find(isDistributed) : alerts.find((r) => w.attacker !== null && namesOf(r).includes(w.attacker));
  const firstBlock = w.attacker === null ? undefined : blocks.find((r) => r.src_ip === w.attacker);
  const names = new Set<string>();
  for (const r of [...alerts, ...blocks]) for (const n of namesOf(r)) names.add(n);
  if (w.attacker) names.delete(w.attacker);
  const blockedSrc = new Set(blocks.map((r) => String(r.src_ip)));
  const blockedNormal = normalClients.filter((c) => blockedSrc.has(c));
  const blockedReal = realClients.filter((c) => blockedSrc.has(c));
  const alertLimit = w.slow ? TARGETS.slowAlertS : TARGETS.alertS;
  const blockLimit = w.slow ? TARGETS.slowBlockS : TARGETS.blockS;
  const alertS = secs(firstAlert);
  const blockS = secs(firstBlock);
  const alertVerdict: Verdict = alertS !== null && alertS <= alertLimit ? 'PASS' : 'MISS';
  let blockVerdict: Verdict;
  if (w.spoofed) blockVerdict = blockedReal.length === 0 ? 'PASS' : 'MISS';
  else blockVerdict = blockS !== null && blockS <= blockLimit ? 'PASS' : 'MISS';
  return {
    name: w.name,
    label: w.label,
    attacker: w.attacker,
    slow: w.slow,
    spoofed: w.spoofed,
    seconds: Math.round((w.end - w.start) / 100) / 10,
    alertS,
    blockS,
    named: w.attacker !== null && alerts.some((r) => namesOf(r).includes(w.attacker!)),
    distributed: alerts.some(isDistributed),
    extraNames: [...names].sort(compareIp),
    blockedNormal,
    blockedReal,
    alerts: alerts.length,
    blocks: blocks.length,
    alertVerdict,
    blockVerdict,
  };
}

export interface NormalResult {
  seconds: number;
  alerts: number;
  blocks: number;
  alertsPerHour: number;
  blocksPerHour: number;
  /** Sources named by those alerts and blocks. */
  sources: string[];
  verdict: Verdict;
}

export function analyseNormal(events: LogRecord[], start: number, end: number): NormalResult {
  const inWin = events.filter((r) => between(r, start, end));
  const alerts = inWin.filter(isAlert);
  const blocks = inWin.filter(isBlock);
  const seconds = Math.round((end - start) / 1000);
  const alertsPerHour = perHour(alerts.length, (end - start) / 1000);
  const blocksPerHour = perHour(blocks.length, (end - start) / 1000);
  const sources = [...new Set([...alerts, ...blocks].flatMap(namesOf))].sort(compareIp);
  const verdict: Verdict = blocks.length <= TARGETS.normalBlocks && alertsPerHour <= TARGETS.normalAlertsPerHour ? 'PASS' : 'MISS';
  return { seconds, alerts: alerts.length, blocks: blocks.length, alertsPerHour: round1(alertsPerHour), blocksPerHour: round1(blocksPerHour), sources, verdict };
}

/** Blocks of normal clients between start and end (the attack phase): must be none. */
export function normalBlocksIn(events: LogRecord[], start: number, end: number, normalClients: string[]): { ip: string; at: string; reason: string }[] {
  return events
    .filter((r) => isBlock(r) && between(r, start, end) && normalClients.includes(String(r.src_ip)))
    .map((r) => ({ ip: String(r.src_ip), at: r.timestamp, reason: String((r.block as { reason?: unknown } | undefined)?.reason ?? '') }));
}

export function round1(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 10) / 10 : x;
}

function ipKey(ip: string): number[] {
  const p = ip.split(/[./]/).map(Number);
  return p.every((x) => Number.isFinite(x)) ? p : [Infinity];
}

export function compareIp(a: string, b: string): number {
  const x = ipKey(a);
  const y = ipKey(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A short list for a table cell: "a, b, c +N more", normal clients marked with "!". */
export function shortList(names: string[], normalClients: string[] = [], max = 3): string {
  if (names.length === 0) return '-';
  const shown = names.slice(0, max).map((n) => (normalClients.includes(n) ? `${n}!` : n));
  return names.length > max ? `${shown.join(', ')} +${names.length - max} more` : shown.join(', ');
}

const fmtS = (s: number | null) => (s === null ? '-' : s.toFixed(1));

export const TABLE_HEADER = ['attack', 'attacker', 'alerted s', 'blocked s', 'named', 'extra names', 'alert', 'block'];

/** One row per attack, in TABLE_HEADER's order. */
export function attackRow(r: AttackResult, normalClients: string[]): string[] {
  const limitA = r.slow ? TARGETS.slowAlertS : TARGETS.alertS;
  const limitB = r.slow ? TARGETS.slowBlockS : TARGETS.blockS;
  if (r.spoofed) {
    return [
      r.label,
      'random /24',
      fmtS(r.alertS),
      '-',
      r.distributed ? 'distributed' : 'no',
      shortList(r.extraNames, normalClients),
      `${r.alertVerdict} (distributed)`,
      `${r.blockVerdict} (${r.blockedReal.length === 0 ? 'no real client blocked' : `blocked ${r.blockedReal.join(', ')}`})`,
    ];
  }
  return [
    r.label,
    r.attacker ?? '-',
    fmtS(r.alertS),
    fmtS(r.blockS),
    r.named ? 'yes' : 'no',
    shortList(r.extraNames, normalClients),
    `${r.alertVerdict} (<=${limitA}s)`,
    `${r.blockVerdict} (<=${limitB}s)`,
  ];
}

/** A plain-text table with aligned columns. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...rows.map(line)].join('\n');
}

/** A GitHub markdown table; pipes in cells are escaped. */
export function markdownTable(header: string[], rows: string[][]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  return [`| ${header.map(esc).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

export function normalLine(n: NormalResult, normalClients: string[]): string {
  return (
    `normal phase (${(n.seconds / 60).toFixed(1)} min): ${n.alerts} alert(s) = ${n.alertsPerHour}/h, ${n.blocks} block(s) = ${n.blocksPerHour}/h; ` +
    `sources ${shortList(n.sources, normalClients, 8)}; target 0 blocks and <=${TARGETS.normalAlertsPerHour} alert/h: ${n.verdict}`
  );
}
