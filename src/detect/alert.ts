// The alert record of an anomaly: Suricata EVE's alert shape (so tools for
// eve.json can read it) plus an `anomaly` object with nfips' details.
import { BlameCounter, FEATURES } from '../features/feature-set';
import { FeatureWindow } from '../features/window';
import { Attribution, Deviation } from './attribution';
import { EpisodeState } from './episodes';

/** Stable signature ids, one per kind of excess. */
export const ANOMALY_SIGNATURES: Record<BlameCounter, { id: number; name: string }> = {
  packets: { id: 9100001, name: 'packet volume' },
  bytes: { id: 9100002, name: 'byte volume or size mix' },
  syn: { id: 9100003, name: 'TCP SYN excess (flood or scan)' },
  icmpEcho: { id: 9100004, name: 'ICMP echo excess' },
  udp: { id: 9100005, name: 'UDP excess' },
  newSessions: { id: 9100006, name: 'new session excess' },
};

export interface AnomalyScore {
  score: number;
  threshold: number;
  cluster: number;
  deviations: Deviation[];
}

const DOC = new Map(FEATURES.map((f) => [f.name, f.doc]));
const r3 = (x: number) => Math.round(x * 1000) / 1000;

export function anomalyAlert(
  w: FeatureWindow,
  s: AnomalyScore,
  a: Attribution,
  episode: EpisodeState,
  newSources: readonly string[],
  followUp: boolean,
): Record<string, unknown> {
  const sig = ANOMALY_SIGNATURES[a.blame];
  const lead = a.responsible[0];
  return {
    ...(lead ? { src_ip: lead.ip } : {}),
    ...(lead?.protocols.length === 1 && lead.protocols[0] !== 'other' ? { proto: lead.protocols[0].toUpperCase() } : {}),
    ...(lead?.service ? { dest_port: lead.service.port } : {}),
    alert: {
      action: 'allowed',
      signature_id: sig.id,
      signature: `nfips anomaly: ${sig.name}`,
      category: 'Anomalous traffic',
      severity: 2,
    },
    anomaly: {
      kind: 'traffic',
      queue: w.queue,
      score: r3(s.score),
      threshold: r3(s.threshold),
      window_start: new Date(w.start * 1000).toISOString(),
      window_end: new Date(w.end * 1000).toISOString(),
      packets: w.packets,
      // Only the excesses: they are what made the window anomalous.
      deviations: s.deviations.filter((d) => d.z > 0).map((d) => ({ feature: d.feature, value: r3(d.value), z: r3(d.z), about: DOC.get(d.feature) })),
      blame: a.blame,
      responsible: a.responsible,
      // No source holds half of it: spread over many (perhaps spoofed) addresses.
      distributed: a.responsible.length === 0,
      new_sources: newSources,
      episode: { id: episode.id, opened: new Date(episode.openedAt * 1000).toISOString(), follow_up: followUp },
    },
  };
}

export function anomalyEnd(queue: number, e: EpisodeState, end: number): Record<string, unknown> {
  return {
    anomaly: {
      kind: 'traffic',
      queue,
      episode: { id: e.id, opened: new Date(e.openedAt * 1000).toISOString(), last_above: new Date(e.lastAbove * 1000).toISOString(), closed: new Date(end * 1000).toISOString() },
      peak_score: r3(e.peakScore),
      windows_above: e.windowsAbove,
      sources: [...e.named],
    },
  };
}
