// Go's time.Duration text, as the CrowdSec Local API writes a decision's
// time left ("3h59m58.1s", "-14.55ms" once it has run out). Pure.

const UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Milliseconds (may be negative or fractional); throws on text Go would refuse. */
export function parseGoDuration(text: string): number {
  let i = 0;
  let sign = 1;
  if (text[0] === '-' || text[0] === '+') {
    sign = text[0] === '-' ? -1 : 1;
    i = 1;
  }
  if (text.slice(i) === '0') return 0;
  if (i === text.length) throw new Error(`invalid duration ${JSON.stringify(text)}`);
  let ms = 0;
  while (i < text.length) {
    PART.lastIndex = i;
    const m = PART.exec(text);
    if (!m) throw new Error(`invalid duration ${JSON.stringify(text)}: expected a number and one of h, m, s, ms, us, ns at ${i}`);
    ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    i = PART.lastIndex;
  }
  return sign * ms;
}

/** Whole seconds as Go writes them ("1h0m0s", "10m0s", "45s"); what an alert's decision carries. */
export function formatGoDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${m}m${r}s`;
  if (m > 0) return `${m}m${r}s`;
  return `${r}s`;
}
