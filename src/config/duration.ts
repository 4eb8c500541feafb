// Durations on the command line: "24h", "90m", "1h30m", "45s", "2d", or a
// number of seconds.
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds in `text`; throws naming the flag and what was expected. */
export function parseDuration(flag: string, text: string): number {
  const t = String(text).trim();
  const fail = (): never => {
    throw new Error(`invalid --${flag} "${t}": expected a positive duration such as 24h, 90m, 1h30m, 45s, 2d or a number of seconds`);
  };
  if (/^\d+(\.\d+)?$/.test(t)) {
    const v = Number(t);
    if (!(v > 0)) fail();
    return v;
  }
  if (!/^(\d+(\.\d+)?[smhd])+$/.test(t)) fail();
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)([smhd])/g)) total += Number(m[1]) * UNIT_SECONDS[m[2]];
  if (!(total > 0)) fail();
  return total;
}

/** "1d 2h 3m 4s" style, for messages. */
export function formatDuration(seconds: number): string {
  let s = Math.round(seconds);
  const parts: string[] = [];
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)}${u}`);
      s %= n;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join(' ');
}
