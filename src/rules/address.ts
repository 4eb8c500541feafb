// Address text -> Prefix, at the boundary (rule files, CLI flags). ipaddr.js
// does the parsing; the hot path only ever sees the resulting words.
import ipaddr from 'ipaddr.js';
import { Prefix } from './types';

function wordsOf(bytes: number[]): [number, number, number, number] {
  const w: [number, number, number, number] = [0, 0, 0, 0];
  for (let k = 0; k < bytes.length; k += 4) {
    w[k / 4] = ((bytes[k] << 24) | (bytes[k + 1] << 16) | (bytes[k + 2] << 8) | bytes[k + 3]) >>> 0;
  }
  return w;
}

/**
 * IPv6 text with a dotted IPv4 tail in plain hex groups: ipaddr.js reads
 * "::1.2.3.4" as "::ffff:1.2.3.4", a different address. The WHATWG URL
 * parser (RFC 4291 2.2) reads it right; invalid text throws.
 */
function embeddedV4(addr: string): string {
  if (!addr.includes(':') || !addr.includes('.')) return addr;
  return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
}

/** Parses "192.0.2.0/24", "2001:db8::/32" or a bare address. Returns null if invalid. */
export function parsePrefix(text: string): Prefix | null {
  try {
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    let bits: number;
    if (text.includes('/')) {
      if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(text)) return null;
      const [a, b] = text.split('/');
      [addr, bits] = ipaddr.parseCIDR(`${embeddedV4(a)}/${b}`);
    } else {
      if (!ipaddr.isValid(text)) return null;
      addr = ipaddr.parse(embeddedV4(text));
      bits = addr.kind() === 'ipv4' ? 32 : 128;
    }
    // ipaddr.js also accepts shorthand like "10.1" for IPv4; operators mean dotted quads.
    if (addr.kind() === 'ipv4' && !/^\d{1,3}(\.\d{1,3}){3}(\/\d+)?$/.test(text)) return null;
    const family = addr.kind() === 'ipv4' ? 4 : 6;
    const words = wordsOf(addr.toByteArray());
    return normalise({ family, words, bits });
  } catch {
    return null;
  }
}

/** Clears host bits so matching is a plain masked compare. */
function normalise(p: Prefix): Prefix {
  const words: [number, number, number, number] = [0, 0, 0, 0];
  for (let k = 0; k < 4; k++) words[k] = (p.words[k] & wordMask(p.bits, k)) >>> 0;
  return { family: p.family, words, bits: p.bits };
}

/** Mask of word k (0..3) for a prefix of the given length. */
export function wordMask(bits: number, k: number): number {
  const b = bits - k * 32;
  if (b <= 0) return 0;
  if (b >= 32) return 0xffffffff;
  return (0xffffffff << (32 - b)) >>> 0;
}

export function formatPrefix(p: Prefix): string {
  if (p.family === 4) {
    const w = p.words[0];
    const s = `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`;
    return p.bits === 32 ? s : `${s}/${p.bits}`;
  }
  const bytes: number[] = [];
  for (const w of p.words) bytes.push(w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255);
  const s = ipaddr.fromByteArray(bytes).toString();
  return p.bits === 128 ? s : `${s}/${p.bits}`;
}

/** Formats the address at words[base..base+3] of the given family (4 or 6). */
export function formatAddress(family: number, words: Uint32Array, base: number): string {
  if (family !== 6) return formatPrefix({ family: 4, words: [words[base], 0, 0, 0], bits: 32 });
  return formatPrefix({ family: 6, words: [words[base], words[base + 1], words[base + 2], words[base + 3]], bits: 128 });
}
