// Command-line options shared by the benches: numbers that must be
// positive, and flags; node's util.parseArgs reads them.
import { parseArgs } from 'node:util';

/**
 * Reads `--name value` numbers (each default given) and `--flag` booleans
 * from argv; an unknown option, or a number that is not positive, is an
 * error naming it.
 */
export function benchArgs<N extends string, F extends string = never>(argv: string[], numbers: Record<N, number>, flags: readonly F[] = []): Record<N, number> & Record<F, boolean> {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const name of Object.keys(numbers)) options[name] = { type: 'string' };
  for (const name of flags) options[name] = { type: 'boolean' };
  const { values } = parseArgs({ args: argv, options, strict: true });
  const out: Record<string, number | boolean> = {};
  for (const [name, def] of Object.entries(numbers) as [string, number][]) {
    const raw = values[name];
    const v = raw === undefined ? def : Number(raw);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number, got ${String(raw)}`);
    out[name] = v;
  }
  for (const name of flags) out[name] = values[name] === true;
  return out as Record<N, number> & Record<F, boolean>;
}
