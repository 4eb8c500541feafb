// A window onto a capture file read sequentially in chunks: the bytes at
// pos..end of buf are valid, and records are parsed in place from there.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export class FileWindow {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  end = 0;
  /** Byte order of the numbers read with u16/u32. */
  le = true;
  /** File size at open, for progress. */
  readonly size: number;
  private fd: number;
  /** File offset of buf[end]. */
  private filePos = 0;

  constructor(file: string, chunk: number) {
    this.buf = new Uint8Array(chunk);
    this.view = new DataView(this.buf.buffer);
    this.fd = openSync(file, 'r');
    try {
      this.size = fstatSync(this.fd).size;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Bytes of the file consumed so far. */
  get consumed(): number {
    return Math.min(this.size, this.filePos - (this.end - this.pos));
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /**
   * Makes buf[pos .. pos+k) valid. Returns the bytes available when the
   * file ends first (then fewer than k).
   */
  ensure(k: number): number {
    if (this.end - this.pos >= k) return k;
    if (k > this.buf.length) {
      const bigger = new Uint8Array(Math.max(k, this.buf.length * 2));
      bigger.set(this.buf.subarray(this.pos, this.end));
      this.end -= this.pos;
      this.pos = 0;
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    } else if (this.pos > 0) {
      this.buf.copyWithin(0, this.pos, this.end);
      this.end -= this.pos;
      this.pos = 0;
    }
    while (this.end - this.pos < k && this.fd >= 0) {
      const got = readSync(this.fd, this.buf, this.end, this.buf.length - this.end, this.filePos);
      if (got <= 0) break;
      this.end += got;
      this.filePos += got;
    }
    return Math.min(k, this.end - this.pos);
  }

  /** Skips k bytes, most of which may not be in the buffer. False if the file ends first. */
  skip(k: number): boolean {
    const inBuf = this.end - this.pos;
    if (k <= inBuf) {
      this.pos += k;
      return true;
    }
    this.filePos += k - inBuf;
    this.pos = this.end = 0;
    return this.filePos <= this.size;
  }

  u16(o: number): number {
    return this.view.getUint16(o, this.le);
  }

  u32(o: number): number {
    return this.view.getUint32(o, this.le);
  }
}

export function hex(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, '0')}`;
}
