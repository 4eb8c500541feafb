// Connection probes from the client namespace to the server, told apart by
// how they end: what a drop, a reject and an accept look like from outside.

/** What the probes need of a topology (typed by shape, so this helper does not depend on where the topology lives). */
export interface ProbeTopology {
  client: string;
  addr: { server4: string };
  exec(ns: string, cmd: string, args: string[], opts?: { allowFail?: boolean }): Promise<{ stdout: string }>;
}

async function python(t: ProbeTopology, script: string): Promise<string> {
  return (await t.exec(t.client, 'python3', ['-c', script], { allowFail: true })).stdout.trim();
}

/** connect() outcome within 3 s: "open", "refused" (RST) or "timeout" (dropped). */
export function tcpConnect(t: ProbeTopology, port: number): Promise<string> {
  return python(t, `import socket\ns=socket.socket()\ns.settimeout(3)\ntry:\n  s.connect(('${t.addr.server4}',${port})); print('open')\nexcept ConnectionRefusedError: print('refused')\nexcept socket.timeout: print('timeout')`);
}

/** UDP request/response within 3 s: "reply", "unreachable" (ICMP) or "timeout". */
export function udpProbe(t: ProbeTopology, port: number): Promise<string> {
  return python(t, `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(3)\ns.connect(('${t.addr.server4}',${port}))\ns.send(b'hi')\ntry:\n  s.recv(10); print('reply')\nexcept ConnectionRefusedError: print('unreachable')\nexcept socket.timeout: print('timeout')`);
}
