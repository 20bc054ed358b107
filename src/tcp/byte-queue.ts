/**
 * A FIFO of bytes kept as a list of immutable chunks. Used for the send buffer (bytes from SND.UNA
 * on) and the receive buffer (in-order bytes not yet read). Chunks are never mutated once queued, so
 * a view handed out by `peek` stays valid after later appends and consumes.
 */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  /** Bytes of chunks[0] already consumed. */
  private headOffset = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  /** Queue `data`; the queue keeps a reference, so pass a buffer nobody will modify. */
  appendOwned(data: Uint8Array): void {
    if (data.length === 0) return;
    this.chunks.push(data);
    this.total += data.length;
  }

  /** Queue a copy of `data` (the caller may reuse its buffer). */
  appendCopy(data: Uint8Array): void {
    if (data.length === 0) return;
    this.appendOwned(data.slice());
  }

  /**
   * `len` bytes starting `offset` bytes after the head. A view when the range lies in one chunk,
   * a fresh copy otherwise.
   */
  peek(offset: number, len: number): Uint8Array {
    if (offset < 0 || len < 0 || offset + len > this.total) {
      throw new RangeError(`ByteQueue.peek(${offset}, ${len}) outside 0..${this.total}`);
    }
    if (len === 0) return new Uint8Array(0);
    let i = 0;
    let pos = offset + this.headOffset;
    while (pos >= this.chunks[i].length) {
      pos -= this.chunks[i].length;
      i++;
    }
    const first = this.chunks[i];
    if (pos + len <= first.length) return first.subarray(pos, pos + len);
    const out = new Uint8Array(len);
    let written = 0;
    while (written < len) {
      const c = this.chunks[i];
      const n = Math.min(c.length - pos, len - written);
      out.set(c.subarray(pos, pos + n), written);
      written += n;
      pos = 0;
      i++;
    }
    return out;
  }

  /** Drop `n` bytes from the head. */
  consume(n: number): void {
    if (n < 0 || n > this.total) throw new RangeError(`ByteQueue.consume(${n}) with ${this.total} queued`);
    this.total -= n;
    let left = n + this.headOffset;
    let drop = 0;
    while (drop < this.chunks.length && left >= this.chunks[drop].length) {
      left -= this.chunks[drop].length;
      drop++;
    }
    if (drop > 0) this.chunks.splice(0, drop);
    this.headOffset = left;
  }

  /** Remove and return up to `max` bytes from the head (a view when possible). */
  shift(max: number): Uint8Array {
    const n = Math.min(max, this.total);
    const out = this.peek(0, n);
    this.consume(n);
    return out;
  }

  /** The queued bytes as views, in order, without removing them. */
  views(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0; i < this.chunks.length; i++) {
      out.push(i === 0 ? this.chunks[0].subarray(this.headOffset) : this.chunks[i]);
    }
    return out.filter((v) => v.length > 0);
  }

  clear(): void {
    this.chunks = [];
    this.headOffset = 0;
    this.total = 0;
  }
}
