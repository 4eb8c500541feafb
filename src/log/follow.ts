// Reads a JSON-lines log as `tail -F` would: everything so far, then, with
// follow, new lines as they come, reopening the file when it is rotated
// (new inode) or truncated. Polls: fs.watch misses renames on some systems.
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

export interface LineReader {
  /** Calls onLine for every complete line available now. */
  poll(): void;
  close(): void;
}

export function openLineReader(file: string, onLine: (line: string) => void): LineReader {
  let fd: number | null = null;
  let ino = -1;
  let pos = 0;
  let partial = '';
  const buf = Buffer.alloc(1 << 16);
  const open = () => {
    try {
      fd = openSync(file, 'r');
      ino = fstatSync(fd).ino;
      pos = 0;
      partial = '';
    } catch {
      fd = null; // not there yet (rotated away): try again on the next poll
    }
  };
  const drain = () => {
    if (fd === null) return;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      const text = partial + buf.toString('utf8', 0, n);
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) if (l.trim() !== '') onLine(l);
    }
  };
  open();
  return {
    poll() {
      if (fd === null) open();
      drain();
      let st;
      try {
        st = statSync(file);
      } catch {
        return;
      }
      if (fd !== null && (st.ino !== ino || st.size < pos)) {
        // Rotated or truncated: finish the old file, then start on the new one.
        drain();
        closeSync(fd);
        open();
        drain();
      }
    },
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
