// HOST:PORT flags (--metrics-listen), checked where they are parsed so the
// message names the flag. Apart from the metrics module: the CLI needs no prom-client.

export interface ListenAddress {
  host: string;
  port: number;
}

/** "127.0.0.1:9808", "[::1]:9808", "localhost:9808". Throws naming the flag. */
export function parseListenAddress(text: string, flag = '--metrics-listen'): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`invalid ${flag} "${text}": expected HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:9808 or [::1]:9808`);
  return { host: (m[1] ?? m[2]) as string, port };
}

export function formatListenAddress(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
