// Link-layer framing shared by the pcap reader and live capture: finds the
// IP header inside a captured frame so both feed the same batch columns as
// the inline path (which receives bare IP packets from NFQUEUE).

import { MetaColumns, NO_OFFSET } from '../batch/layout';

export { NO_OFFSET };

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;

export const LINKTYPE_NULL = 0;
export const LINKTYPE_EN10MB = 1;
/** DLT_RAW as libpcap's headers define it on most platforms, and on OpenBSD. */
export const LINKTYPE_RAW_DLT12 = 12;
export const LINKTYPE_RAW_DLT14 = 14;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

const NAMES: ReadonlyMap<number, string> = new Map([
  [LINKTYPE_NULL, 'NULL'],
  [LINKTYPE_EN10MB, 'EN10MB'],
  [LINKTYPE_RAW_DLT12, 'RAW'],
  [LINKTYPE_RAW_DLT14, 'RAW'],
  [LINKTYPE_RAW, 'RAW'],
  [LINKTYPE_LOOP, 'LOOP'],
  [LINKTYPE_LINUX_SLL, 'LINUX_SLL'],
  [LINKTYPE_IPV4, 'IPV4'],
  [LINKTYPE_IPV6, 'IPV6'],
  [LINKTYPE_LINUX_SLL2, 'LINUX_SLL2'],
]);

export function isSupportedLinkType(linkType: number): boolean {
  return NAMES.has(linkType);
}

export function supportedLinkTypes(): string {
  return [...NAMES].map(([n, name]) => `${name} (${n})`).join(', ');
}

export const enum LinkStatus {
  Ip = 0,
  /** A well-formed frame carrying something other than IPv4/IPv6. */
  NotIp = 1,
  /** The capture ends inside the link header (or right after it). */
  Short = 2,
}

/** Where the IP packet sits in a frame; filled by parseLink, reused per packet. */
export interface LinkInfo {
  /** Bytes of link header before the IP header. */
  headerLen: number;
  /** Ethertype of the IP packet (after VLAN tags), as NFQUEUE reports hw_protocol. */
  ethertype: number;
  /** Offset of the source MAC from the frame start, or -1. */
  macOffset: number;
}

export function createLinkInfo(): LinkInfo {
  return { headerLen: 0, ethertype: 0, macOffset: -1 };
}

function isVlanTag(t: number): boolean {
  return t === 0x8100 || t === 0x88a8 || t === 0x9100;
}

function ipEthertype(t: number): boolean {
  return t === ETHERTYPE_IPV4 || t === ETHERTYPE_IPV6;
}

/** Follows 802.1Q/802.1ad tags from the ethertype at `at`; returns the payload offset or -1. */
function skipVlans(b: Uint8Array, at: number, end: number, out: LinkInfo): number {
  let p = at;
  if (p + 2 > end) return -1;
  let t = (b[p] << 8) | b[p + 1];
  while (isVlanTag(t)) {
    p += 4;
    if (p + 2 > end) return -1;
    t = (b[p] << 8) | b[p + 1];
  }
  out.ethertype = t;
  return p + 2;
}

function byVersion(b: Uint8Array, p: number, out: LinkInfo): LinkStatus {
  const v = b[p] >> 4;
  if (v === 4) out.ethertype = ETHERTYPE_IPV4;
  else if (v === 6) out.ethertype = ETHERTYPE_IPV6;
  else return LinkStatus.NotIp;
  return LinkStatus.Ip;
}

/**
 * Parses the link header of the frame at b[start .. start+capLen). Never
 * throws; the caller must have checked isSupportedLinkType.
 */
export function parseLink(linkType: number, b: Uint8Array, start: number, capLen: number, out: LinkInfo): LinkStatus {
  const end = start + capLen;
  out.macOffset = -1;
  out.ethertype = 0;
  out.headerLen = 0;
  let l3: number;
  switch (linkType) {
    case LINKTYPE_EN10MB: {
      l3 = skipVlans(b, start + 12, end, out);
      if (l3 < 0) return LinkStatus.Short;
      out.macOffset = 6;
      break;
    }
    case LINKTYPE_LINUX_SLL: {
      if (capLen < 16) return LinkStatus.Short;
      // libpcap re-inserts offloaded VLAN tags after the protocol field.
      l3 = skipVlans(b, start + 14, end, out);
      if (l3 < 0) return LinkStatus.Short;
      if (((b[start + 4] << 8) | b[start + 5]) === 6) out.macOffset = 6;
      break;
    }
    case LINKTYPE_LINUX_SLL2: {
      if (capLen < 20) return LinkStatus.Short;
      out.ethertype = (b[start] << 8) | b[start + 1];
      l3 = start + 20;
      while (isVlanTag(out.ethertype)) {
        if (l3 + 4 > end) return LinkStatus.Short;
        out.ethertype = (b[l3 + 2] << 8) | b[l3 + 3];
        l3 += 4;
      }
      if (b[start + 11] === 6) out.macOffset = 12;
      break;
    }
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      if (capLen < 5) return LinkStatus.Short;
      // NULL stores the family in the capturing host's byte order, LOOP in
      // network order; a family always fits in one byte, so take whichever
      // end is non-zero. AF_INET6 differs between BSDs and Linux.
      const fam = b[start] !== 0 ? b[start] : b[start + 3];
      if (fam === 2) out.ethertype = ETHERTYPE_IPV4;
      else if (fam === 10 || fam === 24 || fam === 28 || fam === 30) out.ethertype = ETHERTYPE_IPV6;
      else return LinkStatus.NotIp;
      l3 = start + 4;
      break;
    }
    case LINKTYPE_IPV4:
      if (capLen < 1) return LinkStatus.Short;
      out.ethertype = ETHERTYPE_IPV4;
      l3 = start;
      break;
    case LINKTYPE_IPV6:
      if (capLen < 1) return LinkStatus.Short;
      out.ethertype = ETHERTYPE_IPV6;
      l3 = start;
      break;
    default:
      // RAW in its three numberings.
      if (capLen < 1) return LinkStatus.Short;
      out.headerLen = 0;
      return byVersion(b, start, out);
  }
  if (!ipEthertype(out.ethertype)) return LinkStatus.NotIp;
  if (l3 >= end) return LinkStatus.Short;
  out.headerLen = l3 - start;
  return LinkStatus.Ip;
}

/**
 * IP-level length announced by the IP header at b[p], or 0 when it cannot
 * tell (IPv4 total length 0 is what TSO super-packets carry).
 */
/**
 * Writes packet i's batch columns for a captured frame whose link header
 * (parsed into link) starts at byte `base` of the packet buffer, and clears
 * the columns only NFQUEUE fills (id, mark, hook, interfaces, verdicts).
 * Shared by the pcap reader and live capture, so both look to the
 * pipeline exactly like a queue's batch.
 */
export function fillCapturedColumns(m: MetaColumns, i: number, base: number, link: LinkInfo, capLen: number, origLen: number, tsSec: number, tsNsec: number): void {
  m.offset[i] = base + link.headerLen;
  m.capLen[i] = capLen;
  m.origLen[i] = origLen;
  m.hwAddrOffset[i] = link.macOffset < 0 ? NO_OFFSET : base + link.macOffset;
  m.hwProto[i] = link.ethertype;
  m.tsSec[i] = tsSec;
  m.tsNsec[i] = tsNsec;
  m.id[i] = 0;
  m.mark[i] = 0;
  m.hook[i] = 0;
  m.inIfindex[i] = 0;
  m.outIfindex[i] = 0;
  m.verdict[i] = 0;
  m.verdictMark[i] = 0;
}

export function ipLengthField(b: Uint8Array, p: number, have: number): number {
  if (have < 1) return 0;
  const v = b[p] >> 4;
  if (v === 4 && have >= 4) return (b[p + 2] << 8) | b[p + 3];
  if (v === 6 && have >= 6) return ((b[p + 4] << 8) | b[p + 5]) + 40;
  return 0;
}
