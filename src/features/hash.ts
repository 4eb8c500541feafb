// 32-bit hashing of header words for the sketches. Allocation-free; the
// finaliser spreads low-entropy inputs (consecutive ports, addresses that
// differ in one byte) over all bits, which HyperLogLog relies on.

/** murmur3's fmix32. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Folds one more 32-bit word into a running hash. */
export function mixWord(h: number, w: number): number {
  h = Math.imul(h ^ w, 0x9e3779b1);
  return ((h << 13) | (h >>> 19)) >>> 0;
}

/** Hash of the address at words[base..base+3] of a given family. */
export function hashAddress(words: Uint32Array, base: number, family: number): number {
  let h = mixWord(0x2545f491, family);
  h = mixWord(h, words[base]);
  if (family === 6) {
    h = mixWord(h, words[base + 1]);
    h = mixWord(h, words[base + 2]);
    h = mixWord(h, words[base + 3]);
  }
  return fmix32(h);
}
