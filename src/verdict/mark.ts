// The repeat mark: how nfips tags the packets it has already judged.

export interface MarkSpec {
  value: number;
  mask: number;
}

/** (mark & ~mask) | (value & mask), as unsigned 32-bit. */
export function applyMark(mark: number, spec: MarkSpec): number {
  return ((mark & ~spec.mask) | (spec.value & spec.mask)) >>> 0;
}

/** Parses "VALUE/MASK" or "VALUE" (mask then = 0xffffffff); hex or decimal. */
export function parseMarkSpec(text: string): MarkSpec {
  const m = /^(0x[0-9a-fA-F]{1,8}|\d{1,10})(?:\/(0x[0-9a-fA-F]{1,8}|\d{1,10}))?$/.exec(text.trim());
  if (!m) throw new Error(`invalid mark "${text}": expected VALUE/MASK, e.g. 0x1/0x1`);
  const value = Number(m[1]);
  const mask = m[2] === undefined ? 0xffffffff : Number(m[2]);
  if (value > 0xffffffff || mask > 0xffffffff) throw new Error(`invalid mark "${text}": values must fit in 32 bits`);
  if (mask === 0) throw new Error(`invalid mark "${text}": mask must not be 0`);
  if ((value & ~mask) !== 0) throw new Error(`invalid mark "${text}": value has bits outside the mask`);
  if ((value & mask) === 0) throw new Error(`invalid mark "${text}": value must set at least one bit of the mask, or marked packets cannot be told apart`);
  return { value: value >>> 0, mask: mask >>> 0 };
}

export function formatMarkSpec(s: MarkSpec): string {
  return `0x${s.value.toString(16)}/0x${s.mask.toString(16)}`;
}
