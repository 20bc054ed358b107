/**
 * Incremental frame parser: bytes in any chunking (a frame split across chunks, many frames in one
 * chunk), frames out in order. Complete frames inside one chunk are passed on as views (no copy);
 * a frame split across chunks is assembled once into its own buffer.
 *
 * A length field that cannot be a frame (less than the type field, or over the limit) means the
 * stream cannot be resynchronised: the parser reports it once and then refuses further input.
 */
import { FRAME_HEADER_BYTES, FRAME_LENGTH_BYTES, FRAME_TYPE_BYTES, formatBytes } from './codec.js';
import { MAX_FRAME_BYTES } from './limits.js';

export interface FrameFault {
  /** The offending length field. */
  length: number;
  /** The frame's type code when the header was complete, else 0. */
  type: number;
  problem: string;
  kind: 'oversize' | 'undersize';
}

export type FrameSink = (type: number, body: Uint8Array) => void;

export class FrameParser {
  private readonly head = new Uint8Array(FRAME_HEADER_BYTES);
  private headFill = 0;
  private body: Uint8Array | undefined;
  private bodyFill = 0;
  private type = 0;
  private faulted: FrameFault | undefined;

  constructor(readonly maxFrameBytes = MAX_FRAME_BYTES) {}

  /** Bytes held of an incomplete frame. */
  get pendingBytes(): number {
    return this.headFill + this.bodyFill;
  }

  get fault(): FrameFault | undefined {
    return this.faulted;
  }

  /**
   * Feed a chunk; `sink` receives each complete frame in order. Returns the fault that stopped
   * parsing (frames before it in the chunk were delivered), or undefined.
   */
  push(chunk: Uint8Array, sink: FrameSink): FrameFault | undefined {
    if (this.faulted !== undefined) return this.faulted;
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      if (this.body !== undefined) {
        const take = Math.min(this.body.length - this.bodyFill, n - off);
        this.body.set(chunk.subarray(off, off + take), this.bodyFill);
        this.bodyFill += take;
        off += take;
        if (this.bodyFill === this.body.length) {
          const body = this.body;
          this.body = undefined;
          this.bodyFill = 0;
          sink(this.type, body);
        }
        continue;
      }
      if (this.headFill === 0 && n - off >= FRAME_HEADER_BYTES) {
        // Fast path: header (and often the whole frame) inside this chunk.
        const length = readU32(chunk, off);
        const type = chunk[off + 4]! | (chunk[off + 5]! << 8);
        const fault = this.check(length, type);
        if (fault !== undefined) return fault;
        const end = off + FRAME_LENGTH_BYTES + length;
        if (end <= n) {
          sink(type, view(chunk, off + FRAME_HEADER_BYTES, end));
          off = end;
          continue;
        }
        this.startBody(type, length);
        off += FRAME_HEADER_BYTES;
        continue;
      }
      // Slow path: gather the header byte by byte across chunks.
      const take = Math.min(FRAME_HEADER_BYTES - this.headFill, n - off);
      this.head.set(chunk.subarray(off, off + take), this.headFill);
      this.headFill += take;
      off += take;
      if (this.headFill >= FRAME_LENGTH_BYTES) {
        const length = readU32(this.head, 0);
        const fault = this.check(length, this.headFill === FRAME_HEADER_BYTES ? this.head[4]! | (this.head[5]! << 8) : 0);
        if (fault !== undefined) return fault;
      }
      if (this.headFill === FRAME_HEADER_BYTES) {
        this.headFill = 0;
        const length = readU32(this.head, 0);
        const type = this.head[4]! | (this.head[5]! << 8);
        if (length === FRAME_TYPE_BYTES) sink(type, new Uint8Array(0));
        else this.startBody(type, length);
      }
    }
    return undefined;
  }

  private startBody(type: number, length: number): void {
    this.type = type;
    this.body = new Uint8Array(length - FRAME_TYPE_BYTES);
    this.bodyFill = 0;
  }

  private check(length: number, type: number): FrameFault | undefined {
    if (length < FRAME_TYPE_BYTES) {
      this.faulted = { length, type, kind: 'undersize', problem: `frame length ${length} is shorter than the ${FRAME_TYPE_BYTES}-byte type field` };
    } else if (length > this.maxFrameBytes) {
      this.faulted = { length, type, kind: 'oversize', problem: `frame length ${length} exceeds the ${formatBytes(this.maxFrameBytes)} limit` };
    }
    return this.faulted;
  }
}

function readU32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

function view(b: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset + start, end - start);
}
