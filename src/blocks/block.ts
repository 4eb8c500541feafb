// What a block is: a network, optionally narrowed to a protocol or to one
// service (protocol + destination port), with an expiry. Pure.
import { formatPrefix, parsePrefix, wordMask } from '../rules/address';
import { Prefix } from '../rules/types';

/**
 * source: everything from the network; protocol: one protocol from it;
 * service: one protocol to one destination port.
 */
export type BlockScope = 'source' | 'protocol' | 'service';
export const BLOCK_SCOPES: readonly BlockScope[] = ['source', 'protocol', 'service'];
export type BlockProto = 'tcp' | 'udp' | 'icmp';
export const BLOCK_PROTOS: readonly BlockProto[] = ['tcp', 'udp', 'icmp'];
/** Protocols a service block can name (they have ports). */
export const PORT_PROTOS: readonly BlockProto[] = ['tcp', 'udp'];

export interface BlockTarget {
  /** Canonical network text: "10.0.0.6" for a host, "10.0.0.0/24" otherwise. */
  net: string;
  prefix: Prefix;
  scope: BlockScope;
  /** protocol and service scopes. */
  proto?: BlockProto;
  /** service scope only. */
  port?: number;
}

/** crowdsec: a decision of the CrowdSec Local API (src/crowdsec). */
export type BlockOrigin = 'anomaly' | 'manual' | 'crowdsec';
export const BLOCK_ORIGINS: readonly BlockOrigin[] = ['anomaly', 'manual', 'crowdsec'];

export interface Block extends BlockTarget {
  /** The target as one string; also the dedupe key. */
  key: string;
  origin: BlockOrigin;
  reason: string;
  /** Epoch milliseconds. */
  createdAt: number;
  expiresAt: number;
  ttlSeconds: number;
  /** 1 for a first block of this address, n for its n-th. */
  offence: number;
  /** Anomaly blocks: the alert that caused them. */
  signatureId?: number;
  episode?: number;
  queue?: number;
  /** CrowdSec blocks: the decision's scenario. */
  scenario?: string;
}

/** "10.0.0.6", "10.0.0.6 tcp", "10.0.0.6 tcp:8080": the dedupe key, and what operators read. */
export function targetKey(t: Pick<BlockTarget, 'net' | 'scope' | 'proto' | 'port'>): string {
  if (t.scope === 'source') return t.net;
  if (t.scope === 'protocol') return `${t.net} ${t.proto}`;
  return `${t.net} ${t.proto}:${t.port}`;
}

/**
 * Checks and canonicalises a target given as text (CLI, control socket,
 * state file). Throws with what was expected.
 */
export function makeTarget(net: string, scope: BlockScope = 'source', proto?: string, port?: number): BlockTarget {
  const prefix = parsePrefix(net);
  if (!prefix) throw new Error(`"${net}" is not an IPv4 or IPv6 address or CIDR`);
  if (!BLOCK_SCOPES.includes(scope)) throw new Error(`scope "${scope}" is not one of ${BLOCK_SCOPES.join(', ')}`);
  const canonical = formatPrefix(prefix);
  if (scope === 'source') {
    if (proto !== undefined || port !== undefined) throw new Error('a source block takes no protocol or port');
    return { net: canonical, prefix, scope };
  }
  const allowed = scope === 'service' ? PORT_PROTOS : BLOCK_PROTOS;
  if (proto === undefined || !(allowed as readonly string[]).includes(proto)) throw new Error(`a ${scope} block needs a protocol: one of ${allowed.join(', ')}`);
  if (scope === 'protocol') {
    if (port !== undefined) throw new Error('a protocol block takes no port; use scope service');
    return { net: canonical, prefix, scope, proto: proto as BlockProto };
  }
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error('a service block needs a destination port from 1 to 65535');
  return { net: canonical, prefix, scope, proto: proto as BlockProto, port };
}

/** True when every address of b is in a. */
export function prefixContains(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family || a.bits > b.bits) return false;
  for (let k = 0; k < 4; k++) if (((b.words[k] & wordMask(a.bits, k)) >>> 0) !== a.words[k]) return false;
  return true;
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return prefixContains(a, b) || prefixContains(b, a);
}

/** True when the packets `b` stops are all stopped by `a` already. */
export function covers(a: BlockTarget, b: BlockTarget): boolean {
  if (!prefixContains(a.prefix, b.prefix)) return false;
  if (a.scope === 'source') return true;
  if (b.scope === 'source' || a.proto !== b.proto) return false;
  if (a.scope === 'protocol') return true;
  return b.scope === 'service' && a.port === b.port;
}

/** Accepts "10.0.0.6", "10.0.0.6/32 tcp", "2001:db8::1 tcp:22" in any spelling of the address. */
export function canonicalKey(key: string): string {
  const [net, rest] = key.trim().split(/\s+/, 2);
  const p = parsePrefix(net ?? '');
  if (!p) return key;
  return rest === undefined ? formatPrefix(p) : `${formatPrefix(p)} ${rest}`;
}
