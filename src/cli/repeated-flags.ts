// yargs turns a flag given twice into an array. For a flag that takes one
// value that used to reach the code as an array and crash it ("paths[0]
// argument must be of type string", "text.trim is not a function"), which
// is easy under systemd: the unit passes --rules, --log-file, --state-dir
// and --control-socket, and NFIPS_ARGS may pass them again.

/** Flags that take a list and may be given several times (camelCase, as yargs names them). */
export const REPEATABLE_FLAGS: ReadonlySet<string> = new Set(['exclude', 'allow', 'type', 'pcap', 'features', 'iface', 'nflog', '_']);

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * One message per flag that takes one value but was given several, naming
 * the flag and its values; [] when there is none. Aliases and the kebab and
 * camel forms of one flag are reported once.
 */
export function repeatedFlags(argv: Readonly<Record<string, unknown>>, repeatable: ReadonlySet<string> = REPEATABLE_FLAGS): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const [key, value] of Object.entries(argv)) {
    if (!Array.isArray(value) || key === '$0') continue;
    const camel = key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (repeatable.has(camel) || seen.has(camel) || key.length === 1) continue;
    seen.add(camel);
    out.push(`--${kebab(camel)} given ${value.length} times (${value.map((v) => JSON.stringify(v)).join(', ')}): it takes one value; give it once (check the unit's command line, NFIPS_ARGS and the --config file)`);
  }
  return out;
}
