// Who is responsible for an anomalous window: the sources that contribute
// most to the per-source counter behind the feature that deviates most
// (SYNs for a SYN-rate anomaly, echo requests for ICMP, ...). Ranking by
// that counter rather than by packets keeps a server answering a flood
// from being named instead of the client sending it.
import { BlameCounter, FEATURES } from '../features/feature-set';
import { PROTO_BIT_ICMP, PROTO_BIT_OTHER, PROTO_BIT_TCP, PROTO_BIT_UDP } from '../features/source-table';
import { FeatureWindow, WindowSource } from '../features/window';
import { PROTO_TCP, PROTO_UDP } from '../packet/decoded';

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
  /** What it sent toward servers in the window. */
  protocols: ('tcp' | 'udp' | 'icmp' | 'other')[];
  /** Set when all its TCP/UDP packets went to one destination port. */
  service?: { proto: 'tcp' | 'udp'; port: number };
  /** Packets in the window's newest step. */
  recent: number;
}

const PROTO_NAMES = [
  [PROTO_BIT_TCP, 'tcp'],
  [PROTO_BIT_UDP, 'udp'],
  [PROTO_BIT_ICMP, 'icmp'],
  [PROTO_BIT_OTHER, 'other'],
] as const;

export interface Attribution {
  blame: BlameCounter;
  /** The feature the blame was taken from. */
  feature: string;
  responsible: ResponsibleSource[];
}

/**
 * Sources with at least this share of the blamed counter are named in a
 * traffic alert: a window-level excess is no evidence against a source
 * that is one of several busy ones (these alerts never block; the
 * per-source detector decides that). With none (a spoofed, random-source
 * flood), nobody is named.
 */
export const MIN_SHARE = 0.5;
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
  const protocols = PROTO_NAMES.filter(([bit]) => s.protos & bit).map(([, name]) => name);
  const r: ResponsibleSource = { ip: s.ip, share: total > 0 ? round(s[blame] / total) : 0, packets: s.packets, count: s[blame], protocols, recent: s.recent };
  if (s.mac) r.mac = s.mac;
  if (s.target >= 0) {
    const proto = s.target >>> 16;
    if (proto === PROTO_TCP || proto === PROTO_UDP) r.service = { proto: proto === PROTO_TCP ? 'tcp' : 'udp', port: s.target & 0xffff };
  }
  return r;
}

const round = (x: number) => Math.round(x * 1000) / 1000;
