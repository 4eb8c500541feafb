// Typed face of the native addon (native/addon.cc). The counter order
// mirrors native/nfq_socket.h then native/pcap_capture.h; keep them in step. The batch layout itself
// is the batch contract's (src/batch/layout.ts).
import path from 'node:path';
import { PACKAGE_ROOT } from '../config/paths';
import { Field, NO_OFFSET, NfVerdict } from '../batch/layout';

export const NATIVE_COUNTERS = [
  'received',
  'batches',
  'verdictAccept',
  'verdictRepeat',
  'verdictDrop',
  'failVerdicts',
  'recvErrors',
  'enobufs',
  'sendErrors',
  'parseErrors',
  'jsErrors',
  'maxBatch',
  'truncatedMsgs',
  // Capture threads only (0 for a queue): libpcap's pcap_stats, summed over
  // the thread's devices and read at least once a second.
  /** Packets the kernel dropped because the capture buffer was full (ps_drop). */
  'captureDrops',
  /** Packets the interface itself dropped (ps_ifdrop). */
  'captureIfDrops',
  /** Frames neither IPv4 nor IPv6, or cut before their IP header: not decoded. */
  'captureSkipped',
] as const;
export type NativeCounterName = (typeof NATIVE_COUNTERS)[number];

export interface QueueOptions {
  queue: number;
  copyRange: number;
  maxLen: number;
  rcvBuf: number;
  batchSize: number;
  gso: boolean;
  failOpen: boolean;
  failVerdict: NfVerdict;
  markValue: number;
  markMask: number;
  /** Float64Array of at least NATIVE_COUNTERS.length, written by native code. */
  counters: Float64Array;
  /** Tests only: bytes of each receive slot offered to the kernel (0 or absent: all), to get messages cut short. */
  recvBytes?: number;
  /**
   * Benchmarks only: a Float64Array of at least STAGE_TIMES.length where
   * run() adds up where batches spend their time; room after that holds
   * the first batches' own times, STAGE_SAMPLE_FIELDS values each (none
   * for a run() call's first batch or the first after a receive timeout,
   * which have no turn to time).
   */
  stageTimes?: Float64Array;
}

/** The stageTimes layout (native/addon.cc Stage): counts, then nanoseconds summed over the timed batches. */
export const STAGE_TIMES = [
  'batches',
  'packets',
  /** Receives that added to a batch still open (packets queued while it was decided). */
  'extra',
  /** From recvmmsg's return to the batch parsed into the columns. */
  'recvNs',
  /** The decide call: N-API call into JavaScript and the decide stage. */
  'decideNs',
  /** Sending the verdicts (sendto). */
  'sendNs',
  /** The afterVerdicts call. */
  'afterNs',
  /** From the end of one batch to waiting for the next (flag check, handle scope). */
  'turnNs',
] as const;
export type StageTimeName = (typeof STAGE_TIMES)[number];
/** Each per-batch sample after the totals: these stages, in ns. */
export const STAGE_SAMPLE_FIELDS = ['recvNs', 'decideNs', 'sendNs', 'afterNs', 'turnNs'] as const;

export interface NativeQueue {
  readonly packets: ArrayBuffer;
  readonly meta: ArrayBuffer;
  readonly batchSize: number;
  /**
   * The queue thread's loop: blocks in recvmmsg, calls decide(n, 0) inline
   * and sends the verdicts; while packets keep coming and the batch has
   * room, adds them to it (decide(n, from) for packets from..n-1) and sends
   * theirs; then calls afterVerdicts(n) for the whole batch. Until flag[0]
   * != 0, a callback throws (rethrown here), or the queue closes. The
   * receive timeout bounds how long a raised flag waits; a timeout calls
   * both with 0.
   */
  run(decide: (n: number, from: number) => void, flag: Int32Array, timeoutMs: number, afterVerdicts?: (n: number) => void): void;
  close(): void;
  warnings(): string[];
}

/** A passive capture (native/pcap_capture.h): libpcap devices read into the batch layout. */
export interface CaptureOptions {
  /** Interface names (or "any"), or nflog:GROUP for packets an iptables NFLOG rule copies. */
  devices: string[];
  /** Bytes kept of each frame, link header included (64..262144). */
  snaplen: number;
  /** libpcap's kernel buffer per device (pcap_set_buffer_size, an int: at most 2 GiB - 1, else a RangeError); a full buffer drops and counts captureDrops. */
  bufferBytes: number;
  /** BPF expression ('' for none), compiled for each device (Ethernet ones only when filterNonEthernet is given). */
  filter: string;
  /** The expression for devices of other link types ("any", tun, ppp...), where `vlan` does not compile. */
  filterNonEthernet?: string;
  batchSize: number;
  promisc: boolean;
  /**
   * 'in': only frames the interfaces received (pcap_setdirection PCAP_D_IN;
   * on "any" the frames the host sent are dropped too), so a forwarding box
   * sees each forwarded packet once. 'both' (the default): a single
   * interface of a router sees both directions of what it forwards. Not
   * applied to nflog devices.
   */
  direction?: 'both' | 'in';
  /** Float64Array of at least NATIVE_COUNTERS.length, written by native code. */
  counters: Float64Array;
}

/**
 * The Queue's shape on a capture: run() waits for frames, calls
 * decide(n, 0) then afterVerdicts(n); the verdict columns are only read by
 * the engine's events (nothing is answered or dropped). Frames of several
 * devices come in timestamp order. A device that fails makes run() throw
 * an Error with code ERR_CAPTURE_DEVICE (src/queue/loop.ts isSourceLost)
 * and closes the capture.
 */
export type NativeCapture = NativeQueue;

interface Addon {
  Queue: new (opts: QueueOptions) => NativeQueue;
  Capture: new (opts: CaptureOptions) => NativeCapture;
  layout: { fieldCount: number; counterCount: number; noOffset: number; verdictUnset: number; stageCount: number };
}

let cached: Addon | undefined;

export function loadAddon(): Addon {
  if (cached) return cached;
  const file = path.join(PACKAGE_ROOT, 'build', 'Release', 'nfips_nfq.node');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = require(file) as Addon;
  if (addon.layout.fieldCount !== Field.Count || addon.layout.counterCount !== NATIVE_COUNTERS.length || addon.layout.noOffset !== NO_OFFSET || addon.layout.stageCount !== STAGE_TIMES.length) {
    throw new Error(`native addon layout mismatch (${file}): rebuild with "npm run build:native"`);
  }
  cached = addon;
  return addon;
}
