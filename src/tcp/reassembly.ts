/**
 * Out-of-order receive queue with a memory bound. Held data is kept as a sorted array of disjoint,
 * non-adjacent blocks (maximal contiguous runs, which are exactly the SACK blocks of RFC 2018); each
 * block keeps its bytes as a doubly linked list of copied chunks, so merging blocks and appending to
 * them is O(1) and never copies held data.
 * Sequence numbers are mod 2^32; all held data lies within one receive window (< 2^31) so seqLt
 * orders it consistently.
 */
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from '../wire/seq.js';

interface Chunk {
  data: Uint8Array;
  prev: Chunk | undefined;
  next: Chunk | undefined;
}

interface Block {
  left: number;
  /** Exclusive end: left + total chunk length (mod 2^32). */
  right: number;
  head: Chunk;
  tail: Chunk;
  chunks: number;
}

function chunk(data: Uint8Array): Chunk {
  return { data, prev: undefined, next: undefined };
}

/** Recently received sequence numbers kept for SACK block ordering (RFC 2018 section 4). */
const MAX_RECENT = 8;

export class ReassemblyQueue {
  private readonly maxBytes: number;
  private blocks: Block[] = [];
  private heldBytes = 0;
  private chunkCount = 0;
  private fin: number | undefined;
  /** Start sequences of recently received segments, most recent first. */
  private recent: number[] = [];

  constructor(maxBytes: number) {
    this.maxBytes = Math.max(0, maxBytes);
  }

  /** Payload bytes held. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Number of stored chunks (pieces of received segments). */
  get segmentCount(): number {
    return this.chunkCount;
  }

  get finSeq(): number | undefined {
    return this.fin;
  }

  /**
   * Insert out-of-order data starting at seq. The bytes are copied (the caller's buffer is reused).
   * Overlaps with held data keep the existing bytes. Data before rcvNxt is trimmed away (the caller
   * should already have consumed it) and data at or beyond a recorded FIN is refused. When the
   * queue would exceed maxBytes, the data farthest from rcvNxt is dropped first, possibly the new
   * data. Returns false when the new data is not fully held afterwards.
   */
  insert(seq: number, data: Uint8Array, rcvNxt: number): boolean {
    let s = seq;
    let e = seqAdd(seq, data.length);
    let off = 0;
    if (data.length === 0) return true;
    if (seqLt(s, rcvNxt)) {
      if (seqLe(e, rcvNxt)) return true;
      off = seqDiff(rcvNxt, s);
      s = rcvNxt;
    }
    if (this.fin !== undefined) {
      if (seqGe(s, this.fin)) return false;
      if (seqGt(e, this.fin)) e = this.fin;
    }
    const fullyOffered = seqAdd(seq, data.length) === e;
    const piece = (a: number, b: number): Chunk => {
      const from = off + seqDiff(a, s);
      this.heldBytes += seqDiff(b, a);
      this.chunkCount++;
      // new Uint8Array(view) copies; Buffer#slice would not.
      return chunk(new Uint8Array(data.subarray(from, from + seqDiff(b, a))));
    };

    const blocks = this.blocks;
    // First block that ends at or after s (adjacent blocks merge).
    const i = this.lowerBoundRight(s);
    let j = i;
    while (j < blocks.length && seqLe(blocks[j]!.left, e)) j++;
    if (i === j) {
      const c = piece(s, e);
      blocks.splice(i, 0, { left: s, right: e, head: c, tail: c, chunks: 1 });
    } else {
      const target = blocks[i]!;
      if (seqLt(s, target.left)) {
        const c = piece(s, target.left);
        c.next = target.head;
        target.head.prev = c;
        target.head = c;
        target.chunks++;
        target.left = s;
      }
      for (let k = i + 1; k < j; k++) {
        const next = blocks[k]!;
        append(target, piece(target.right, next.left));
        target.tail.next = next.head;
        next.head.prev = target.tail;
        target.tail = next.tail;
        target.chunks += next.chunks;
        target.right = next.right;
      }
      if (seqGt(e, target.right)) {
        append(target, piece(target.right, e));
        target.right = e;
      }
      if (j - i > 1) blocks.splice(i + 1, j - i - 1);
    }

    if (this.heldBytes > this.maxBytes) this.trimTail(this.heldBytes - this.maxBytes);
    this.noteRecent(s);
    const last = blocks[blocks.length - 1];
    // Trimming only cuts the tail, so [s, e) is intact iff the highest held byte is at or past e.
    return fullyOffered && last !== undefined && seqGe(last.right, e);
  }

  /**
   * Remove and return the in-order run starting at rcvNxt as chunks in order (data before rcvNxt is
   * trimmed away). Empty array when nothing is contiguous with rcvNxt.
   */
  takeContiguous(rcvNxt: number): Uint8Array[] {
    const blocks = this.blocks;
    let stale = 0;
    while (stale < blocks.length && seqLe(blocks[stale]!.right, rcvNxt)) {
      this.forget(blocks[stale]!);
      stale++;
    }
    if (stale > 0) blocks.splice(0, stale);
    const first = blocks[0];
    if (first === undefined || seqGt(first.left, rcvNxt)) {
      this.pruneRecent(rcvNxt);
      return [];
    }
    blocks.shift();
    this.forget(first);
    let skip = seqDiff(rcvNxt, first.left);
    const out: Uint8Array[] = [];
    for (let c: Chunk | undefined = first.head; c !== undefined; c = c.next) {
      const d = c.data;
      if (skip >= d.length) {
        skip -= d.length;
        continue;
      }
      out.push(skip > 0 ? d.subarray(skip) : d);
      skip = 0;
    }
    this.pruneRecent(first.right);
    return out;
  }

  /** A FIN arrived at finSeq (the sequence number the FIN occupies). Held data beyond it is dropped. */
  setFin(finSeq: number): void {
    this.fin = finSeq;
    const last = this.blocks[this.blocks.length - 1];
    if (last !== undefined && seqGt(last.right, finSeq)) {
      let excess = 0;
      for (let k = this.blocks.length - 1; k >= 0; k--) {
        const b = this.blocks[k]!;
        if (seqLe(b.right, finSeq)) break;
        excess += seqDiff(b.right, seqGt(b.left, finSeq) ? b.left : finSeq);
      }
      this.trimTail(excess);
    }
  }

  /** True when all data before the FIN has been taken, i.e. the FIN itself is next in order. */
  finSeqIfReached(rcvNxt: number): boolean {
    return this.fin !== undefined && this.fin === rcvNxt;
  }

  /**
   * The first held range inside [seq, end): bytes a new segment would duplicate (RFC 2883 reports
   * them as a D-SACK block). Undefined when nothing in that span is held.
   */
  heldOverlap(seq: number, end: number): { left: number; right: number } | undefined {
    if (!seqLt(seq, end)) return undefined;
    const b = this.blocks[this.lowerBoundRight(seqAdd(seq, 1))];
    if (b === undefined || !seqLt(b.left, end)) return undefined;
    return { left: seqMax(b.left, seq), right: seqLt(b.right, end) ? b.right : end };
  }

  /**
   * SACK blocks per RFC 2018 section 4: first the block containing the most recently received
   * segment, then blocks of earlier received segments (most recent first), then any remaining held
   * blocks in sequence order; at most `max`, each a maximal contiguous range [left, right).
   */
  sackBlocks(max: number): { left: number; right: number }[] {
    const out: { left: number; right: number }[] = [];
    if (max <= 0) return out;
    const used = new Set<Block>();
    for (const s of this.recent) {
      if (out.length >= max) return out;
      const b = this.find(s);
      if (b === undefined || used.has(b)) continue;
      used.add(b);
      out.push({ left: b.left, right: b.right });
    }
    for (const b of this.blocks) {
      if (out.length >= max) break;
      if (used.has(b)) continue;
      out.push({ left: b.left, right: b.right });
    }
    return out;
  }

  /**
   * The held data for state export: one entry per contiguous block, in sequence order. The data is
   * a view of (or, for multi-chunk blocks, a copy of) held bytes; held chunks are never mutated.
   */
  segments(): { seq: number; data: Uint8Array }[] {
    return this.blocks.map((b) => {
      if (b.chunks === 1) return { seq: b.left, data: b.head.data };
      const data = new Uint8Array(seqDiff(b.right, b.left));
      let at = 0;
      for (let c: Chunk | undefined = b.head; c !== undefined; c = c.next) {
        data.set(c.data, at);
        at += c.data.length;
      }
      return { seq: b.left, data };
    });
  }

  clear(): void {
    this.blocks = [];
    this.heldBytes = 0;
    this.chunkCount = 0;
    this.fin = undefined;
    this.recent = [];
  }

  /** Index of the first block whose right edge is at or after seq. */
  private lowerBoundRight(seq: number): number {
    let lo = 0;
    let hi = this.blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqLt(this.blocks[mid]!.right, seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The block holding byte seq, if any. */
  private find(seq: number): Block | undefined {
    // First block with right > seq, i.e. right >= seq + 1.
    const b = this.blocks[this.lowerBoundRight(seqAdd(seq, 1))];
    return b !== undefined && seqLe(b.left, seq) ? b : undefined;
  }

  /** Drop `excess` bytes from the far end of the queue. */
  private trimTail(excess: number): void {
    const blocks = this.blocks;
    while (excess > 0 && blocks.length > 0) {
      const last = blocks[blocks.length - 1]!;
      const len = seqDiff(last.right, last.left);
      if (len <= excess) {
        blocks.pop();
        this.forget(last);
        excess -= len;
        continue;
      }
      // len > excess, so the block keeps at least one byte and never runs out of chunks.
      while (excess > 0) {
        const c = last.tail;
        const n = c.data.length;
        if (n <= excess) {
          last.tail = c.prev!;
          last.tail.next = undefined;
          last.chunks--;
          this.chunkCount--;
          excess -= n;
          this.heldBytes -= n;
          last.right = seqAdd(last.right, -n);
        } else {
          // Copy the kept part so the dropped bytes are really released.
          c.data = new Uint8Array(c.data.subarray(0, n - excess));
          this.heldBytes -= excess;
          last.right = seqAdd(last.right, -excess);
          excess = 0;
        }
      }
    }
  }

  private forget(b: Block): void {
    this.heldBytes -= seqDiff(b.right, b.left);
    this.chunkCount -= b.chunks;
  }

  private noteRecent(seq: number): void {
    const b = this.find(seq);
    if (b === undefined) return;
    this.recent = this.recent.filter((r) => this.find(r) !== b);
    this.recent.unshift(seq);
    if (this.recent.length > MAX_RECENT) this.recent.length = MAX_RECENT;
  }

  /** Entries below rcvNxt can never be held again; drop them before they could wrap. */
  private pruneRecent(rcvNxt: number): void {
    if (this.recent.length > 0) this.recent = this.recent.filter((r) => seqGe(r, rcvNxt));
  }
}

function append(b: Block, c: Chunk): void {
  c.prev = b.tail;
  b.tail.next = c;
  b.tail = c;
  b.chunks++;
}
