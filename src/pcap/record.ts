// What the reader and the two file formats share: the packet record a format
// finds (left in the file window, not copied), and the reader state a format
// reports into.
import { FileWindow } from './file-window';

// A sane block or record never comes near this; beyond it the file is corrupt.
export const MAX_RECORD = 64 * 1024 * 1024;

export interface PcapReaderStats {
  /** Packet records read from the file. */
  records: number;
  /** Records handed out as packets. */
  packets: number;
  /** Records carrying something other than IPv4/IPv6 (ARP, LLDP, ...). */
  skippedNonIp: number;
  /** Records whose capture ends inside the link header. */
  skippedShort: number;
  /** pcapng packets on interfaces whose link type is not supported. */
  skippedLinkType: number;
  /** Records longer than any IP packet, cut to MAX_COPY bytes. */
  clipped: number;
  /** The file ends (or turns to garbage) inside a record; everything before it was read. */
  truncated: boolean;
  warnings: string[];
}

/** The packet record found and not yet consumed; its bytes are at data in the window's buf. */
export interface PcapRecord {
  /** Bytes of the whole record or block, header included. */
  len: number;
  data: number;
  cap: number;
  orig: number;
  sec: number;
  nsec: number;
  link: number;
}

export interface ReadContext {
  readonly file: string;
  readonly in: FileWindow;
  readonly stats: PcapReaderStats;
  readonly rec: PcapRecord;
  /** Link type of a classic file, or of the first pcapng interface (-1 before one is seen). */
  linkType: number;
  warn(msg: string): void;
  /** Stops reading: the rest of the file cannot be trusted. */
  stop(msg: string): void;
}

/** One file format's record walk. */
export interface RecordFormat {
  /** Finds the next packet record into ctx.rec: false at the end of the file, or once stopped. */
  next(): boolean;
}
