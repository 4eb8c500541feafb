// The batch contract: how a batch of packets and their verdicts are laid
// out in memory, shared by the native queue (native/nfq_socket.h, which must
// stay in step), pcap and live capture readers, and the verdict engine.

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
export const NF_REPEAT = 4;
export type NfVerdict = typeof NF_DROP | typeof NF_ACCEPT | typeof NF_REPEAT;

/** Offset columns hold this when the packet has no such part (e.g. no source MAC). */
export const NO_OFFSET = 0xffffffff;

/** Column order in the metadata buffer: each field is a Uint32 column of batchSize entries. */
export const enum Field {
  Id = 0,
  Mark,
  Hook,
  HwProto,
  InIfindex,
  OutIfindex,
  OrigLen,
  CapLen,
  /** Byte offset of the L3 header in the packet buffer. */
  Offset,
  HwAddrOffset,
  TsSec,
  TsNsec,
  /** Written by the decide stage. */
  Verdict,
  VerdictMark,
  Count,
}

/** Column views over one metadata buffer; created once per buffer. */
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

/** A metadata buffer for batches of up to batchSize packets, outside the native queue. */
export function metaBuffer(batchSize: number): ArrayBuffer {
  return new ArrayBuffer(Field.Count * batchSize * 4);
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
