// From per-source findings to episodes, alerts and (prevent mode) blocks.
// A source's episode opens with its first finding and raises one alert;
// another kind of attack in the same episode (a ping flood beside a SYN
// flood) raises a follow-up, more of the same (a scan that also fails many
// connections) does not; the episode closes after QUIET_SECONDS without
// findings. All blocks of one
// episode are one offence (see blocks/table). All-source findings that no
// source explains (a spoofed flood) raise one "distributed" alert per
// episode and never block anyone.
import { EventFields, Level } from '../log/event-log';
import { AGGREGATE_ABOUT, MEASURES, MeasureName } from './envelope';
import { AggregateFinding, Exceeded, SourceFinding } from './source-tracker';
import { PROTO_BIT_ICMP, PROTO_BIT_TCP, PROTO_BIT_UDP } from '../features/source-table';
import { Suppressions } from './suppress';

export type Emit = (eventType: string, fields: EventFields, level?: Level) => void;

export interface SourceResponse {
  action: 'allowed' | 'blocked';
  blocks: unknown[];
}

export type RespondToSource = (f: SourceFinding, meta: { signatureId: number; signature: string; episode: number; episodeOpened: number }) => SourceResponse;

/** Seconds without a finding that close a source's episode. */
export const QUIET_SECONDS = 30;
/** While an episode lasts, prevent mode acts again this often (a block that expired or was lifted by hand). */
export const RESPOND_AGAIN_SECONDS = 10;

interface Episode {
  id: number;
  /** Epoch ms. */
  opened: number;
  openedStep: number;
  lastStep: number;
  lastRespondStep: number;
  /** Protocol families alerted on. */
  kinds: Set<string>;
  /** Measures (and services) acted on. */
  acted: Set<string>;
  findings: number;
  peak: number;
}

const DISTRIBUTED = 'distributed';

/** The distributed form of an all-source measure: 100 above the per-source signature, or the attempts' own. */
function distributedSignature(m: AggregateFinding['measure']): { signatureId: number; signature: string; about: string } {
  if (m === 'tcp_attempts' || m === 'udp_attempts') return AGGREGATE_ABOUT[m];
  const d = MEASURES.find((x) => x.name === m)!;
  return { signatureId: d.signatureId + 100, signature: d.signature, about: d.about };
}
const SIG = new Map(MEASURES.map((m) => [m.name, m]));
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Shared by the judges of one run, so episode ids never repeat within it. */
export class EpisodeIds {
  #next = 1;
  next(): number {
    return this.#next++;
  }
}

export interface SourceJudgeCounts {
  findings: number;
  alerts: number;
  episodes: number;
  open: number;
  distributed_alerts: number;
  /** Findings (and distributed floods) whose every measure was on the suppression list: no alert, no block. */
  suppressed: number;
}

function measureKey(x: Exceeded): string {
  return x.service ? `${x.measure} ${x.service}` : x.measure;
}

function evidenceOf(x: Exceeded): Record<string, unknown> {
  const t = x.threshold;
  return {
    measure: x.measure,
    ...(x.service ? { service: x.service } : {}),
    scale: x.scale,
    value: r3(x.value),
    threshold: r3(t.value),
    learnt: t.learnt,
    margin: t.margin,
    floor: t.floor,
    about: SIG.get(x.measure)?.about,
  };
}

/**
 * The kind of attack a measure points to: one alert per kind per episode.
 * Failed attempts, unanswered datagrams and failed destinations of one
 * protocol are one kind (a flood or a scan over it); echo floods, odd flag
 * sequences, stalled sessions and a burst to one service each are their own.
 */
function kindOf(x: Exceeded, f: SourceFinding): string {
  switch (x.measure) {
    case 'tcp_failed':
      return 'failures tcp';
    case 'udp_failed':
    case 'udp_unanswered':
      return 'failures udp';
    case 'failed_ports':
    case 'failed_hosts': {
      const p = f.evProtos;
      return p === PROTO_BIT_TCP ? 'failures tcp' : p === PROTO_BIT_UDP ? 'failures udp' : p === PROTO_BIT_ICMP ? 'failures icmp' : 'failures several';
    }
    case 'echo_requests':
      return 'echo';
    case 'odd_sessions':
      return 'odd';
    case 'stalled_sessions':
      return 'stalled';
    case 'service_sessions':
      return `burst ${x.service ?? ''}`;
  }
}

export class SourceJudge {
  readonly #episodes = new Map<string, Episode>();
  readonly #distributed = new Map<string, Episode>();
  readonly counts: SourceJudgeCounts = { findings: 0, alerts: 0, episodes: 0, open: 0, distributed_alerts: 0, suppressed: 0 };

  constructor(
    private readonly emit: Emit,
    private readonly stepSeconds: number,
    private readonly ids: EpisodeIds,
    private readonly respond?: RespondToSource,
    private readonly clock: () => number = Date.now,
    private readonly suppress: Suppressions = new Suppressions(),
  ) {}

  onFinding(found: SourceFinding): void {
    this.counts.findings++;
    // Suppressed measures are left out before anything else: what remains
    // alerts and blocks as usual; nothing remaining, nothing happens.
    let f = found;
    if (!this.suppress.empty) {
      const kept = found.exceeded.filter((x) => !this.suppress.check(SIG.get(x.measure)!.signatureId, found.ip));
      if (kept.length === 0) {
        this.counts.suppressed++;
        return;
      }
      if (kept.length !== found.exceeded.length) f = { ...found, exceeded: kept };
    }
    let ep = this.#episodes.get(f.ip);
    const lead = f.exceeded[0];
    const ratio = lead.value / lead.threshold.value;
    const opening = !ep;
    if (!ep) {
      ep = { id: this.ids.next(), opened: this.clock(), openedStep: f.step, lastStep: f.step, lastRespondStep: -Infinity, kinds: new Set(), acted: new Set(), findings: 0, peak: 0 };
      this.#episodes.set(f.ip, ep);
      this.counts.episodes++;
      this.counts.open = this.#episodes.size;
    }
    ep.lastStep = f.step;
    ep.findings++;
    ep.peak = Math.max(ep.peak, ratio);
    const episode = ep;
    const fresh = f.exceeded.filter((x) => !episode.kinds.has(kindOf(x, f)));
    const unacted = f.exceeded.filter((x) => !episode.acted.has(measureKey(x)));
    const alerting = fresh.length > 0;
    const again = f.step - ep.lastRespondStep >= RESPOND_AGAIN_SECONDS / this.stepSeconds;
    if (!alerting && unacted.length === 0 && !again) return;
    // What the alert is about: the new behaviour(s) first.
    const about = alerting ? fresh[0] : (unacted[0] ?? lead);
    const sig = SIG.get(about.measure)!;
    let response: SourceResponse | undefined;
    if (this.respond) {
      response = this.respond(f, { signatureId: sig.signatureId, signature: sig.signature, episode: ep.id, episodeOpened: ep.opened });
      ep.lastRespondStep = f.step;
    }
    for (const x of f.exceeded) ep.acted.add(measureKey(x));
    if (!alerting) return;
    for (const x of fresh) ep.kinds.add(kindOf(x, f));
    this.counts.alerts++;
    this.emit('alert', this.#alert(f, ep, about, fresh, !opening, response), 'warn');
  }

  /** One distributed episode at a time, whatever its measures: a spoofed flood is one event. */
  onAggregate(a: AggregateFinding): void {
    if (!a.distributed) return;
    let ep = this.#distributed.get(DISTRIBUTED);
    // No source to name: only entries without one can suppress it.
    if (!ep && this.suppress.check(distributedSignature(a.measure).signatureId, null)) {
      this.counts.suppressed++;
      return;
    }
    if (ep) {
      ep.lastStep = a.step;
      ep.findings++;
      ep.kinds.add(a.measure);
      ep.peak = Math.max(ep.peak, a.total / a.threshold.value);
      return;
    }
    ep = { id: this.ids.next(), opened: this.clock(), openedStep: a.step, lastStep: a.step, lastRespondStep: a.step, kinds: new Set([a.measure]), acted: new Set(), findings: 1, peak: a.total / a.threshold.value };
    this.#distributed.set(DISTRIBUTED, ep);
    this.counts.distributed_alerts++;
    const sig = distributedSignature(a.measure);
    this.emit(
      'alert',
      {
        alert: { action: 'allowed', signature_id: sig.signatureId, signature: `nfips: distributed: ${sig.signature}`, category: 'Attack behaviour', severity: 2 },
        anomaly: {
          kind: 'distributed',
          distributed: true,
          step_start: this.#iso(a.step),
          evidence: [{ measure: a.measure, scale: 'second', value: r3(a.total), threshold: r3(a.threshold.value), learnt: a.threshold.learnt, margin: a.threshold.margin, floor: a.threshold.floor, about: `all sources together: ${sig.about}` }],
          top_sources: a.top,
          responsible: [],
          episode: { id: ep.id, opened: new Date(ep.opened).toISOString(), follow_up: false },
          note: 'no source holds a tenth of it: spread over many (likely spoofed) addresses, so nobody is blocked',
        },
      },
      'warn',
    );
  }

  /** Closes episodes quiet for QUIET_SECONDS at step k. */
  onStepFinal(k: number): void {
    const quiet = QUIET_SECONDS / this.stepSeconds;
    for (const [ip, ep] of this.#episodes) {
      if (k - ep.lastStep < quiet) continue;
      this.#episodes.delete(ip);
      this.emit('anomaly_end', { src_ip: ip, anomaly: { kind: 'source', episode: this.#end(ep, k), kinds: [...ep.kinds] } });
    }
    for (const [key, ep] of this.#distributed) {
      if (k - ep.lastStep < quiet) continue;
      this.#distributed.delete(key);
      this.emit('anomaly_end', { anomaly: { kind: 'distributed', distributed: true, measures: [...ep.kinds], episode: this.#end(ep, k) } });
    }
    this.counts.open = this.#episodes.size;
  }

  episodeOpen(ip: string): boolean {
    return this.#episodes.has(ip);
  }

  #iso(step: number): string {
    return new Date(step * this.stepSeconds * 1000).toISOString();
  }

  #end(ep: Episode, k: number): Record<string, unknown> {
    return { id: ep.id, opened: new Date(ep.opened).toISOString(), last_finding: this.#iso(ep.lastStep + 1), closed: this.#iso(k + 1), findings: ep.findings, peak_ratio: r3(ep.peak) };
  }

  #alert(f: SourceFinding, ep: Episode, about: Exceeded, fresh: Exceeded[], followUp: boolean, response?: SourceResponse): Record<string, unknown> {
    const sig = SIG.get(about.measure as MeasureName)!;
    const proto = about.service?.split('/')[0] ?? protoOf(about.measure);
    const port = about.service ? Number(about.service.split('/')[1]) : singlePort(about.measure, f);
    return {
      src_ip: f.ip,
      ...(proto ? { proto: proto.toUpperCase() } : {}),
      ...(port !== undefined ? { dest_port: port } : {}),
      alert: { action: response?.action ?? 'allowed', signature_id: sig.signatureId, signature: `nfips: ${sig.signature}`, category: 'Attack behaviour', severity: 1 },
      anomaly: {
        kind: 'source',
        responsible: [{ ip: f.ip, ...(f.mac ? { mac: f.mac } : {}) }],
        distributed: false,
        step_start: this.#iso(f.step),
        // What this alert is about, then everything else the source exceeded.
        evidence: [...fresh.map(evidenceOf), ...f.exceeded.filter((x) => !fresh.includes(x)).map(evidenceOf)],
        ...(f.sequence ? { sequence: { symbols: f.sequence.symbols, surprisal: f.sequence.surprisal, legend: 'o: from the side that opened the session, r: the reply; S SYN, SA SYN-ACK, A ACK, D data, F FIN, R RST, NULL no flags, ODD other' } } : {}),
        episode: { id: ep.id, opened: new Date(ep.opened).toISOString(), follow_up: followUp },
        ...(response ? { blocks: response.blocks } : {}),
      },
    };
  }
}

function protoOf(m: MeasureName): string | undefined {
  if (m === 'echo_requests') return 'icmp';
  if (m === 'tcp_failed' || m === 'odd_sessions' || m === 'stalled_sessions') return 'tcp';
  if (m === 'udp_failed' || m === 'udp_unanswered') return 'udp';
  return undefined;
}

function singlePort(m: MeasureName, f: SourceFinding): number | undefined {
  const t = m === 'tcp_failed' || m === 'stalled_sessions' ? f.evTcp : m === 'udp_failed' || m === 'udp_unanswered' ? f.evUdp : -1;
  return t >= 0 ? t & 0xffff : undefined;
}
