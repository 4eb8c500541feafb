// The signals `nfips run` answers: SIGINT/SIGTERM stop, SIGHUP reloads the
// rules, SIGUSR1 reopens the log file (logrotate). They are caught from the
// first moment of a start, before there is anything to stop: one arriving
// while queues are bound or iptables is being changed must roll back, not
// kill the process with the jumps in place. Repeats while stopping are ignored.

export interface SignalHooks {
  /** The stop signal that arrived so far, if any. */
  signalled(): string | null;
  onStop(fn: (reason: string) => void): void;
  onReload(fn: () => void): void;
  onReopen(fn: () => void): void;
}

/** Hooks whose handlers are set later; with `handle` false (tests) no signal is caught. */
export function catchSignals(handle: boolean): SignalHooks {
  let signalled: string | null = null;
  let onStop: ((reason: string) => void) | null = null;
  let onReload: (() => void) | null = null;
  let onReopen: (() => void) | null = null;
  if (handle) {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.on(sig, () => {
        signalled ??= sig;
        onStop?.(sig);
      });
    }
    process.on('SIGHUP', () => onReload?.());
    process.on('SIGUSR1', () => onReopen?.());
  }
  return {
    signalled: () => signalled,
    onStop: (fn) => (onStop = fn),
    onReload: (fn) => (onReload = fn),
    onReopen: (fn) => (onReopen = fn),
  };
}
