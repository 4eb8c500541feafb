// Who is responsible for an anomalous window: the sources that contribute
// most to the per-source counter behind the feature that deviates most
// (SYNs for a SYN-rate anomaly, echo requests for ICMP, ...). Ranking by
// that counter rather than by packets keeps a server answering a flood
// from being named instead of the client sending it.
import { BlameCounter, FEATURES } from '../features/feature-set';
import { FeatureWindow, WindowSource } from '../features/window';

export interface Deviation {
  feature: string;
  value: number;
  z: number;
}

export interface ResponsibleSource {
  ip: string;
  mac?: string;
  /** Share of the window's total of the blamed counter. */
  share: number;
  packets: number;
  /** The blamed counter's value for this source. */
  count: number;
}

export interface Attribution {
  blame: BlameCounter;
  /** The feature the blame was taken from. */
  feature: string;
  responsible: ResponsibleSource[];
}

/**
 * Sources with at least this share of the blamed counter are named. With
 * none (a spoofed, random-source flood), nobody is: naming the top random
 * address would blame a bystander and raise a new alert every window.
 */
export const MIN_SHARE = 0.1;
export const MAX_RESPONSIBLE = 5;

const BLAME_OF = new Map(FEATURES.map((f) => [f.name, f.blame]));

export function attribute(w: FeatureWindow, deviations: readonly Deviation[]): Attribution {
  const lead = deviations.find((d) => d.z > 0);
  const feature = lead?.feature ?? 'packets';
  let blame: BlameCounter = BLAME_OF.get(feature) ?? 'packets';
  if (!(w.totals[blame] > 0)) blame = 'packets';
  const total = w.totals[blame];
  const ranked = w.sources
    .filter((s) => s[blame] > 0)
    .sort((a, b) => b[blame] - a[blame] || b.packets - a.packets);
  const pick = ranked.filter((s) => s[blame] / total >= MIN_SHARE).slice(0, MAX_RESPONSIBLE);
  return { blame, feature, responsible: pick.map((s) => toResponsible(s, blame, total)) };
}

function toResponsible(s: WindowSource, blame: BlameCounter, total: number): ResponsibleSource {
  const r: ResponsibleSource = { ip: s.ip, share: total > 0 ? round(s[blame] / total) : 0, packets: s.packets, count: s[blame] };
  if (s.mac) r.mac = s.mac;
  return r;
}

const round = (x: number) => Math.round(x * 1000) / 1000;
