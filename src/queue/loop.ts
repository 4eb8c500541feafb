// The queue thread's loop: the thread lives in the native run(), like a C
// NFQUEUE loop, and comes back to JavaScript between runs only when a
// control message is waiting or a batch callback threw.
import { NativeQueue } from './native';

export interface QueueLoop {
  /** Fills the verdict column of packets from..n-1 (n is 0 on a receive timeout); earlier ones are decided and sent. */
  decide(n: number, from: number): void;
  /** Runs once the verdicts of the whole batch, packets 0..n-1, are sent. */
  afterVerdicts(n: number): void;
  /** A callback threw: the batch got the failure verdict, and the loop goes on. */
  onError(err: unknown): void;
  /** Between runs, after the flag is cleared: reads control messages; true stops the loop. */
  between(): boolean;
}

/**
 * Serves the queue until between() says stop. flag is the Int32 the other
 * side raises after posting a control message; pollMs bounds how long a
 * raised flag waits while no packet arrives.
 */
export function serveQueue(q: NativeQueue, flag: Int32Array, pollMs: number, loop: QueueLoop): void {
  const decide = (n: number, from: number) => loop.decide(n, from);
  const after = (n: number) => loop.afterVerdicts(n);
  for (;;) {
    try {
      q.run(decide, flag, pollMs, after);
    } catch (e) {
      if (isSourceLost(e)) throw e;
      loop.onError(e);
    }
    // Clear before reading: a message posted meanwhile raises it again.
    Atomics.store(flag, 0, 0);
    if (loop.between()) return;
  }
}

/** The native source failed for good (a captured device was deleted or went down): the thread must exit and be restarted. */
export function isSourceLost(e: unknown): e is Error {
  return e instanceof Error && (e as NodeJS.ErrnoException).code === 'ERR_CAPTURE_DEVICE';
}
