/**
 * Classic pcap writing (libpcap 2.4, microsecond timestamps, little-endian like tcpdump on x86)
 * to a byte sink: a file (buffered, through one descriptor) or memory. Timestamps are given in ms
 * by the caller: the virtual clock in simulation, the wall clock on real links.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export const PCAP_MAGIC = 0xa1b2c3d4;
export const PCAP_SNAPLEN = 262144;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;

export type LinkLayer = 'ethernet' | 'ip';

export function linktypeForLayer(layer: LinkLayer): number {
  return layer === 'ethernet' ? LINKTYPE_ETHERNET : LINKTYPE_RAW;
}

/**
 * Receives the file's bytes in order. A chunk is valid only during the call (the writer reuses
 * its header scratch and passes the caller's frame views): a sink that keeps bytes copies them.
 */
export type PcapSink = (chunk: Uint8Array) => void;

export interface PcapSinkObject {
  write: PcapSink;
  flush?(): void;
  close?(): void;
}

export interface PcapWriterOptions {
  /** Bytes of each frame kept (longer frames are truncated, original length recorded). */
  snaplen?: number;
}

export class PcapWriter {
  readonly linktype: number;
  readonly snaplen: number;
  /** Records written. */
  records = 0;
  private readonly sink: PcapSinkObject;
  private readonly header = new Uint8Array(RECORD_HEADER_LEN);
  private readonly headerView = new DataView(this.header.buffer);

  /** `link` is a Link (or just its layer): Ethernet -> linktype 1, IP -> linktype 101. */
  constructor(sink: PcapSink | PcapSinkObject, link: { readonly layer: LinkLayer } | LinkLayer, opts: PcapWriterOptions = {}) {
    this.sink = typeof sink === 'function' ? { write: sink } : sink;
    this.linktype = linktypeForLayer(typeof link === 'string' ? link : link.layer);
    this.snaplen = opts.snaplen ?? PCAP_SNAPLEN;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1) throw new RangeError(`PcapWriter: bad snaplen ${this.snaplen}`);
    const g = new Uint8Array(GLOBAL_HEADER_LEN);
    const v = new DataView(g.buffer);
    v.setUint32(0, PCAP_MAGIC, true);
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setInt32(8, 0, true); // thiszone: timestamps are UTC
    v.setUint32(12, 0, true); // sigfigs
    v.setUint32(16, this.snaplen, true);
    v.setUint32(20, this.linktype, true);
    this.sink.write(g);
  }

  /** Append one frame seen at `timeMs` (ms since the Unix epoch, or virtual ms since 0). */
  write(frame: Uint8Array, timeMs: number): void {
    // Round once in microseconds so that sec/usec never disagree (no usec == 1_000_000).
    const us = Math.max(0, Math.round(timeMs * 1000));
    const sec = Math.floor(us / 1_000_000);
    const caplen = Math.min(frame.length, this.snaplen);
    const v = this.headerView;
    v.setUint32(0, sec >>> 0, true);
    v.setUint32(4, us - sec * 1_000_000, true);
    v.setUint32(8, caplen, true);
    v.setUint32(12, frame.length, true);
    this.sink.write(this.header);
    this.sink.write(caplen === frame.length ? frame : frame.subarray(0, caplen));
    this.records++;
  }

  flush(): void {
    this.sink.flush?.();
  }

  close(): void {
    this.sink.close?.();
  }
}

// ---------------------------------------------------------------- sinks

export interface MemorySink extends PcapSinkObject {
  readonly chunks: readonly Uint8Array[];
  /** Everything written so far, concatenated. */
  bytes(): Uint8Array;
}

export function memorySink(): MemorySink {
  const chunks: Uint8Array[] = [];
  return {
    chunks,
    write(chunk) {
      chunks.push(new Uint8Array(chunk));
    },
    bytes() {
      let n = 0;
      for (const c of chunks) n += c.length;
      const out = new Uint8Array(n);
      let off = 0;
      for (const c of chunks) {
        out.set(c, off);
        off += c.length;
      }
      return out;
    },
  };
}

export interface PcapFileSink extends PcapSinkObject {
  readonly path: string;
  /** Bytes handed to the OS so far. */
  readonly bytesWritten: number;
  /** Chunks ignored because they arrived after close(). */
  readonly droppedAfterClose: number;
  flush(): void;
  close(): void;
}

export interface PcapFileSinkOptions {
  /** Write buffer size. Default 256 KiB. */
  bufferBytes?: number;
}

/**
 * Writes to `path` (created or truncated) through one descriptor, buffering small chunks. Writes
 * are synchronous so that flush() and close() leave a complete file behind without awaiting.
 */
export function pcapFileSink(path: string, opts: PcapFileSinkOptions = {}): PcapFileSink {
  const buf = new Uint8Array(opts.bufferBytes ?? 256 * 1024);
  let used = 0;
  let fd: number | undefined = openSync(path, 'w');
  let bytesWritten = 0;
  let droppedAfterClose = 0;

  const writeAll = (data: Uint8Array): void => {
    let off = 0;
    while (off < data.length) off += writeSync(fd!, data, off, data.length - off);
    bytesWritten += data.length;
  };
  const flush = (): void => {
    if (fd === undefined || used === 0) return;
    writeAll(buf.subarray(0, used));
    used = 0;
  };

  return {
    path,
    get bytesWritten() {
      return bytesWritten;
    },
    get droppedAfterClose() {
      return droppedAfterClose;
    },
    write(chunk) {
      if (fd === undefined) {
        droppedAfterClose++;
        return;
      }
      if (chunk.length > buf.length - used) flush();
      if (chunk.length >= buf.length) {
        writeAll(chunk);
      } else {
        buf.set(chunk, used);
        used += chunk.length;
      }
    },
    flush,
    close() {
      if (fd === undefined) return;
      try {
        flush();
      } finally {
        closeSync(fd);
        fd = undefined;
      }
    },
  };
}
