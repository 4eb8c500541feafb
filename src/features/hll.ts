// HyperLogLog distinct counters (Flajolet et al. 2007, with the linear
// counting correction for small sets), used for the window's distinct
// connections, sources and ports: fixed memory whatever the load, and two
// sketches merge by taking the larger register, so per-second sketches
// combine into a sliding window.

/** 2^10 registers: about 3% standard error in 1 KiB. */
export const HLL_BITS = 10;
export const HLL_REGISTERS = 1 << HLL_BITS;
const ALPHA = 0.7213 / (1 + 1.079 / HLL_REGISTERS);

/** Adds a 32-bit hash to the registers at regs[base..base+HLL_REGISTERS). */
export function hllAdd(regs: Uint8Array, base: number, hash: number): void {
  const idx = hash >>> (32 - HLL_BITS);
  // Rank of the first 1 bit in the remaining 22 bits; the sentinel bit caps it.
  const rank = Math.clz32((hash << HLL_BITS) | (1 << (HLL_BITS - 1))) + 1;
  const j = base + idx;
  if (regs[j] < rank) regs[j] = rank;
}

/** out = max(out, regs[base..]), register by register. */
export function hllMergeInto(out: Uint8Array, regs: Uint8Array, base: number): void {
  for (let j = 0; j < HLL_REGISTERS; j++) {
    const r = regs[base + j];
    if (r > out[j]) out[j] = r;
  }
}

/** Estimated number of distinct hashes added to regs[base..]. */
export function hllEstimate(regs: Uint8Array, base = 0): number {
  let sum = 0;
  let zeros = 0;
  for (let j = 0; j < HLL_REGISTERS; j++) {
    const r = regs[base + j];
    sum += 2 ** -r;
    if (r === 0) zeros++;
  }
  const raw = (ALPHA * HLL_REGISTERS * HLL_REGISTERS) / sum;
  if (raw <= 2.5 * HLL_REGISTERS && zeros > 0) return HLL_REGISTERS * Math.log(HLL_REGISTERS / zeros);
  return raw;
}
