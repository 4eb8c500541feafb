// Interface names in rules become ifindexes, read from sysfs of the current
// network namespace when a rule set is activated.
import { readdirSync, readFileSync } from 'node:fs';

export function ifindexOf(name: string): number | undefined {
  try {
    const n = Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** ifindex -> name for every interface present now. */
export function interfaceNames(): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const name of readdirSync('/sys/class/net')) {
      const idx = ifindexOf(name);
      if (idx !== undefined) out.set(idx, name);
    }
  } catch {
    /* no sysfs: names stay unknown */
  }
  return out;
}
