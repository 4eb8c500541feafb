// Typed face of the native addon (native/addon.cc). The column and counter
// order mirrors native/nfq_socket.h; keep the two in step.
import path from 'node:path';
import { PACKAGE_ROOT } from '../config/paths';

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
export const NF_REPEAT = 4;
export type NfVerdict = typeof NF_DROP | typeof NF_ACCEPT | typeof NF_REPEAT;

export const enum Field {
  Id = 0,
  Mark,
  Hook,
  HwProto,
  InIfindex,
  OutIfindex,
  OrigLen,
  CapLen,
  Offset,
  HwAddrOffset,
  TsSec,
  TsNsec,
  Verdict,
  VerdictMark,
  Count,
}

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
}

export interface NativeQueue {
  readonly packets: ArrayBuffer;
  readonly meta: ArrayBuffer;
  readonly batchSize: number;
  /** Event-loop mode: uv_poll wakes the thread, one JS call per batch. */
  start(onBatch: (n: number) => void, onError: (err: unknown) => void): void;
  /**
   * Dedicated-thread mode: blocks in recvmmsg and calls onBatch inline until
   * flag[0] != 0, onBatch throws (rethrown here), or the queue closes. The
   * receive timeout bounds how long a raised flag waits.
   */
  run(onBatch: (n: number) => void, flag: Int32Array, timeoutMs: number, afterVerdicts?: (n: number) => void): void;
  close(): void;
  warnings(): string[];
}

interface Addon {
  Queue: new (opts: QueueOptions) => NativeQueue;
  layout: { fieldCount: number; counterCount: number; noOffset: number; verdictUnset: number };
}

let cached: Addon | undefined;

export function loadAddon(): Addon {
  if (cached) return cached;
  const file = path.join(PACKAGE_ROOT, 'build', 'Release', 'nfips_nfq.node');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = require(file) as Addon;
  if (addon.layout.fieldCount !== Field.Count || addon.layout.counterCount !== NATIVE_COUNTERS.length) {
    throw new Error(`native addon layout mismatch (${file}): rebuild with "npm run build:native"`);
  }
  cached = addon;
  return addon;
}

/** Column views over the shared metadata buffer; created once per queue. */
export interface MetaColumns {
  id: Uint32Array;
  mark: Uint32Array;
  hook: Uint32Array;
  hwProto: Uint32Array;
  inIfindex: Uint32Array;
  outIfindex: Uint32Array;
  origLen: Uint32Array;
  capLen: Uint32Array;
  offset: Uint32Array;
  hwAddrOffset: Uint32Array;
  tsSec: Uint32Array;
  tsNsec: Uint32Array;
  verdict: Uint32Array;
  verdictMark: Uint32Array;
}

export function metaColumns(meta: ArrayBuffer, batchSize: number): MetaColumns {
  const col = (f: Field) => new Uint32Array(meta, f * batchSize * 4, batchSize);
  return {
    id: col(Field.Id),
    mark: col(Field.Mark),
    hook: col(Field.Hook),
    hwProto: col(Field.HwProto),
    inIfindex: col(Field.InIfindex),
    outIfindex: col(Field.OutIfindex),
    origLen: col(Field.OrigLen),
    capLen: col(Field.CapLen),
    offset: col(Field.Offset),
    hwAddrOffset: col(Field.HwAddrOffset),
    tsSec: col(Field.TsSec),
    tsNsec: col(Field.TsNsec),
    verdict: col(Field.Verdict),
    verdictMark: col(Field.VerdictMark),
  };
}

/** Netfilter hook numbers as the kernel reports them in the packet header. */
export const HOOK_INPUT = 1;
export const HOOK_FORWARD = 2;
