// Typed face of the parts of the untyped `cap` package (0.2.x) nfips uses.

export interface CapAddress {
  addr?: string;
  netmask?: string;
  broadaddr?: string;
  dstaddr?: string;
}

export interface CapDevice {
  name: string;
  description?: string;
  addresses: CapAddress[];
  flags?: string;
}

export interface CapHandle {
  /**
   * Opens the device and starts capturing. Returns 'ETHERNET', 'NULL',
   * 'RAW', 'LINKTYPE_LINUX_SLL', 'IEEE802_11_RADIO' or 'Unknown linktype N'.
   * Each packet is copied into `buffer` (cut to its length) before the event.
   */
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): boolean;
  /** nbytes: bytes copied into the buffer; truncated: the capture was longer than the buffer. */
  on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): this;
  removeAllListeners(event?: 'packet'): this;
}

export interface CapModule {
  Cap: {
    new (): CapHandle;
    deviceList(): CapDevice[];
    findDevice(ip?: string): string | undefined;
  };
}

let cached: CapModule | undefined;

/** Loads `cap` on first use, so nothing else pays for (or fails on) its native part. */
export function loadCap(): CapModule {
  if (cached) return cached;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require('cap') as CapModule;
  } catch (err) {
    throw new Error(`live capture needs the "cap" package and its native build (npm rebuild cap; libpcap-dev): ${(err as Error).message}`);
  }
  return cached;
}
