import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ReassemblyQueue } from '../../src/tcp/reassembly.js';

const TWO_32 = 2 ** 32;
const add = (a: number, n: number) => (a + n) >>> 0;

/** Deterministic payload: byte at stream offset o (relative to a base) is f(o). */
function bytesAt(offset: number, len: number, tag = 0): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = ((offset + i) * 31 + tag * 7 + 11) & 0xff;
  return b;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(chunks));
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** xorshift32, for reproducible shuffles. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / TWO_32;
  };
}

describe('ReassemblyQueue', () => {
  it('holds out-of-order data and releases it once contiguous with RCV.NXT', () => {
    const q = new ReassemblyQueue(1 << 20);
    expect(q.insert(1100, bytesAt(100, 100), 1000)).toBe(true);
    expect(q.bytes).toBe(100);
    expect(q.segmentCount).toBe(1);
    expect(q.takeContiguous(1000)).toEqual([]);
    expect(q.bytes).toBe(100);
    // The caller delivers [1000,1100) itself, then asks for the rest.
    const out = q.takeContiguous(1100);
    expect(concat(out)).toEqual(bytesAt(100, 100));
    expect(q.bytes).toBe(0);
    expect(q.segmentCount).toBe(0);
    expect(q.takeContiguous(1200)).toEqual([]);
  });

  it('copies the bytes: reusing the caller buffer does not change held data', () => {
    const q = new ReassemblyQueue(1 << 20);
    const buf = Buffer.from(bytesAt(0, 64));
    q.insert(2000, buf.subarray(0, 32), 1000);
    q.insert(2032, buf.subarray(32, 64), 1000);
    buf.fill(0xee);
    expect(concat(q.takeContiguous(2000))).toEqual(bytesAt(0, 64));
  });

  it('overlaps keep the existing bytes; new bytes fill only the gaps', () => {
    const q = new ReassemblyQueue(1 << 20);
    // Existing [100,200) with tag 1 and [300,400) with tag 1; new [150,450) with tag 2.
    q.insert(100, bytesAt(100, 100, 1), 0);
    q.insert(300, bytesAt(300, 100, 1), 0);
    expect(q.insert(150, bytesAt(150, 300, 2), 0)).toBe(true);
    expect(q.bytes).toBe(350);
    expect(q.sackBlocks(4)).toEqual([{ left: 100, right: 450 }]);
    const got = concat(q.takeContiguous(100));
    const want = concat([bytesAt(100, 100, 1), bytesAt(200, 100, 2), bytesAt(300, 100, 1), bytesAt(400, 50, 2)]);
    expect(got).toEqual(want);
  });

  it('new data starting before and ending inside a held block keeps the held bytes', () => {
    const q = new ReassemblyQueue(1 << 20);
    q.insert(200, bytesAt(200, 100, 1), 0);
    q.insert(150, bytesAt(150, 100, 2), 0);
    expect(q.bytes).toBe(150);
    expect(concat(q.takeContiguous(150))).toEqual(concat([bytesAt(150, 50, 2), bytesAt(200, 100, 1)]));
  });

  it('duplicate inserts change nothing', () => {
    const q = new ReassemblyQueue(1 << 20);
    q.insert(500, bytesAt(500, 100, 1), 0);
    const count = q.segmentCount;
    for (let i = 0; i < 5; i++) expect(q.insert(500, bytesAt(500, 100, 9), 0)).toBe(true);
    expect(q.insert(520, bytesAt(520, 10, 9), 0)).toBe(true);
    expect(q.bytes).toBe(100);
    expect(q.segmentCount).toBe(count);
    expect(concat(q.takeContiguous(500))).toEqual(bytesAt(500, 100, 1));
  });

  it('trims data before RCV.NXT on insert and on takeContiguous', () => {
    const q = new ReassemblyQueue(1 << 20);
    expect(q.insert(900, bytesAt(900, 200), 1000)).toBe(true);
    expect(q.bytes).toBe(100);
    expect(q.insert(800, bytesAt(800, 100), 1000)).toBe(true); // entirely old: ignored
    expect(q.bytes).toBe(100);
    q.insert(1200, bytesAt(1200, 100), 1000);
    q.insert(1400, bytesAt(1400, 100), 1000);
    // RCV.NXT moved (e.g. after an in-order segment overlapping our held data) past the first
    // block and into the second: the stale block is dropped, the second is trimmed.
    expect(concat(q.takeContiguous(1250))).toEqual(bytesAt(1250, 50));
    expect(q.bytes).toBe(100);
    expect(q.sackBlocks(4)).toEqual([{ left: 1400, right: 1500 }]);
  });

  it('handles sequence numbers wrapping around 2^32', () => {
    const q = new ReassemblyQueue(1 << 20);
    const base = TWO_32 - 150; // stream offset 0
    const rcvNxt = base;
    // Three pieces: before the wrap, straddling it, after it; inserted out of order.
    expect(q.insert(add(base, 200), bytesAt(200, 100), rcvNxt)).toBe(true); // [50,150) after wrap
    expect(q.insert(add(base, 100), bytesAt(100, 100), rcvNxt)).toBe(true); // straddles 2^32
    expect(q.insert(add(base, 50), bytesAt(50, 50), rcvNxt)).toBe(true);
    expect(q.sackBlocks(4)).toEqual([{ left: add(base, 50), right: add(base, 300) }]);
    expect(q.sackBlocks(1)[0]!.right).toBe(150);
    expect(concat(q.takeContiguous(add(base, 50)))).toEqual(bytesAt(50, 250));
    expect(q.bytes).toBe(0);
  });

  it('memory bound: drops the data farthest from RCV.NXT first, possibly the new data', () => {
    const q = new ReassemblyQueue(300);
    expect(q.insert(100, bytesAt(100, 100), 0)).toBe(true);
    expect(q.insert(300, bytesAt(300, 100), 0)).toBe(true);
    expect(q.insert(500, bytesAt(500, 100), 0)).toBe(true);
    // Farther than everything held: the new data itself is dropped.
    expect(q.insert(700, bytesAt(700, 100), 0)).toBe(false);
    expect(q.bytes).toBe(300);
    expect(q.sackBlocks(4).sort((a, b) => a.left - b.left)).toEqual([
      { left: 100, right: 200 },
      { left: 300, right: 400 },
      { left: 500, right: 600 },
    ]);
    // Nearer data is kept; the tail of the farthest block makes room.
    expect(q.insert(20, bytesAt(20, 50), 0)).toBe(true);
    expect(q.bytes).toBe(300);
    expect(q.sackBlocks(4).sort((a, b) => a.left - b.left)).toEqual([
      { left: 20, right: 70 },
      { left: 100, right: 200 },
      { left: 300, right: 400 },
      { left: 500, right: 550 },
    ]);
    expect(concat(q.takeContiguous(20))).toEqual(bytesAt(20, 50));
    expect(concat(q.takeContiguous(100))).toEqual(bytesAt(100, 100));
    expect(concat(q.takeContiguous(300))).toEqual(bytesAt(300, 100));
    expect(concat(q.takeContiguous(500))).toEqual(bytesAt(500, 50));
    expect(q.bytes).toBe(0);
  });

  it('memory bound: new data partially kept returns false and keeps its near part', () => {
    const q = new ReassemblyQueue(150);
    expect(q.insert(100, bytesAt(100, 100), 0)).toBe(true);
    expect(q.insert(200, bytesAt(200, 100), 0)).toBe(false);
    expect(q.bytes).toBe(150);
    expect(concat(q.takeContiguous(100))).toEqual(bytesAt(100, 150));
  });

  it('maxBytes 0 holds nothing', () => {
    const q = new ReassemblyQueue(0);
    expect(q.insert(100, bytesAt(100, 10), 0)).toBe(false);
    expect(q.bytes).toBe(0);
    expect(q.sackBlocks(4)).toEqual([]);
  });

  it('FIN: records finSeq, reports it reached only at RCV.NXT == finSeq, and bounds the data', () => {
    const q = new ReassemblyQueue(1 << 20);
    q.insert(300, bytesAt(300, 100), 100);
    q.insert(500, bytesAt(500, 100), 100);
    expect(q.finSeq).toBeUndefined();
    expect(q.finSeqIfReached(400)).toBe(false);
    q.setFin(350); // peer's FIN at 350: held data beyond it cannot be valid
    expect(q.finSeq).toBe(350);
    expect(q.bytes).toBe(50);
    expect(q.insert(340, bytesAt(340, 100), 100)).toBe(false); // crosses the FIN
    expect(q.insert(360, bytesAt(360, 10), 100)).toBe(false); // entirely after the FIN
    expect(q.bytes).toBe(50);
    expect(q.finSeqIfReached(300)).toBe(false);
    expect(concat(q.takeContiguous(300))).toEqual(bytesAt(300, 50));
    expect(q.finSeqIfReached(350)).toBe(true);
    q.clear();
    expect(q.finSeq).toBeUndefined();
  });

  it('segments() exports held blocks in order; inserting them into a fresh queue reproduces the state', () => {
    const q = new ReassemblyQueue(1 << 20);
    const base = TWO_32 - 100;
    q.insert(add(base, 300), bytesAt(300, 50), base);
    q.insert(add(base, 50), bytesAt(50, 40), base);
    q.insert(add(base, 90), bytesAt(90, 60), base); // merges with the previous one, across 2^32
    const segs = q.segments();
    expect(segs.map((x) => x.seq)).toEqual([add(base, 50), add(base, 300)]);
    expect(segs[0]!.data).toEqual(bytesAt(50, 100));
    expect(segs[1]!.data).toEqual(bytesAt(300, 50));
    const copy = new ReassemblyQueue(1 << 20);
    for (const x of segs) copy.insert(x.seq, x.data, base);
    expect(copy.bytes).toBe(q.bytes);
    expect(concat(copy.takeContiguous(add(base, 50)))).toEqual(bytesAt(50, 100));
    expect(concat(copy.takeContiguous(add(base, 300)))).toEqual(bytesAt(300, 50));
    // Exported views stay valid after the source queue moves on.
    q.clear();
    expect(segs[1]!.data).toEqual(bytesAt(300, 50));
  });

  it('RFC 2018 section 3 example, case 3 (2nd, 4th, 6th, 8th segments dropped)', () => {
    const q = new ReassemblyQueue(1 << 20);
    const seg = (s: number) => bytesAt(s, 500);
    let rcvNxt = 5500; // the 1st segment (5000) arrived in order
    q.insert(6000, seg(6000), rcvNxt);
    expect(q.sackBlocks(3)).toEqual([{ left: 6000, right: 6500 }]);
    q.insert(7000, seg(7000), rcvNxt);
    expect(q.sackBlocks(3)).toEqual([
      { left: 7000, right: 7500 },
      { left: 6000, right: 6500 },
    ]);
    q.insert(8000, seg(8000), rcvNxt);
    expect(q.sackBlocks(3)).toEqual([
      { left: 8000, right: 8500 },
      { left: 7000, right: 7500 },
      { left: 6000, right: 6500 },
    ]);
    // The 4th segment (6500) arrives: the first block is the one containing it.
    q.insert(6500, seg(6500), rcvNxt);
    expect(q.sackBlocks(3)).toEqual([
      { left: 6000, right: 7500 },
      { left: 8000, right: 8500 },
    ]);
    // The 2nd segment (5500) arrives in order: the caller delivers it and takes the rest.
    rcvNxt = 6000;
    expect(concat(q.takeContiguous(rcvNxt))).toEqual(bytesAt(6000, 1500));
    rcvNxt = 7500;
    expect(q.sackBlocks(3)).toEqual([{ left: 8000, right: 8500 }]);
  });

  it('RFC 2018 section 4: a duplicate segment still moves its block to the front; max limits the count', () => {
    const q = new ReassemblyQueue(1 << 20);
    for (const s of [1000, 2000, 3000, 4000, 5000]) q.insert(s, bytesAt(s, 100), 0);
    expect(q.sackBlocks(3).map((b) => b.left)).toEqual([5000, 4000, 3000]);
    q.insert(2000, bytesAt(2000, 100), 0);
    expect(q.sackBlocks(3).map((b) => b.left)).toEqual([2000, 5000, 4000]);
    // Blocks beyond the remembered ones are still reported, in sequence order.
    expect(q.sackBlocks(10).map((b) => b.left)).toEqual([2000, 5000, 4000, 3000, 1000]);
    expect(q.sackBlocks(1)).toEqual([{ left: 2000, right: 2100 }]);
    expect(q.sackBlocks(0)).toEqual([]);
  });

  it('RFC 2883: heldOverlap names the first held range a new segment duplicates (also across 2^32)', () => {
    const q = new ReassemblyQueue(1 << 20);
    q.insert(1000, bytesAt(1000, 100), 0);
    q.insert(1300, bytesAt(1300, 100), 0);
    expect(q.heldOverlap(900, 1000)).toBeUndefined(); // ends where the block starts
    expect(q.heldOverlap(1100, 1300)).toBeUndefined(); // the gap between the blocks
    expect(q.heldOverlap(950, 1050)).toEqual({ left: 1000, right: 1050 });
    expect(q.heldOverlap(1050, 1350)).toEqual({ left: 1050, right: 1100 }); // the first of two
    expect(q.heldOverlap(1250, 1500)).toEqual({ left: 1300, right: 1400 });
    expect(q.heldOverlap(1000, 1000)).toBeUndefined();
    const w = new ReassemblyQueue(1 << 20);
    const base = TWO_32 - 50;
    w.insert(base, bytesAt(0, 100), add(base, -10));
    expect(w.heldOverlap(add(base, 40), add(base, 200))).toEqual({ left: add(base, 40), right: add(base, 100) });
  });

  it('10k small segments in random order reassemble to the same stream (digest), efficiently', () => {
    const n = 10_000;
    const size = 100;
    const base = TWO_32 - 123_456; // wraps mid-stream
    const stream = bytesAt(0, n * size);
    const order = Array.from({ length: n - 1 }, (_, i) => i + 1);
    const r = rng(42);
    for (let i = order.length - 1; i > 0; i--) {
      const k = Math.floor(r() * (i + 1));
      [order[i], order[k]] = [order[k]!, order[i]!];
    }
    const q = new ReassemblyQueue(n * size);
    const buf = new Uint8Array(size); // reused like a receive buffer
    const t0 = performance.now();
    for (const i of order) {
      buf.set(stream.subarray(i * size, (i + 1) * size));
      expect(q.insert(add(base, i * size), buf, base)).toBe(true);
      const blocks = q.sackBlocks(4);
      if (blocks[0]!.left > add(base, i * size) && blocks[0]!.left - add(base, i * size) < 2 ** 31) {
        throw new Error('first SACK block does not contain the newest segment');
      }
    }
    expect(q.bytes).toBe((n - 1) * size);
    expect(q.segmentCount).toBe(n - 1);
    expect(q.sackBlocks(4)).toEqual([{ left: add(base, size), right: add(base, n * size) }]);
    const out = concat(q.takeContiguous(add(base, size)));
    const ms = performance.now() - t0;
    expect(sha(out)).toBe(sha(stream.subarray(size)));
    expect(q.bytes).toBe(0);
    expect(ms).toBeLessThan(3000);
  });

  it('40k segments with every other one missing (20k blocks), filled in reverse: merging stays linear', () => {
    // Merging used to copy the growing tail block's chunk list: quadratic, ~10 s at this size.
    const n = 40_000;
    const size = 16;
    const stream = bytesAt(0, n * size);
    const q = new ReassemblyQueue(n * size);
    const t0 = performance.now();
    for (let i = 1; i < n; i += 2) q.insert(i * size, stream.subarray(i * size, (i + 1) * size), 0);
    expect(q.sackBlocks(3).map((b) => b.left)).toEqual([(n - 1) * size, (n - 3) * size, (n - 5) * size]);
    for (let i = n - 2; i >= 2; i -= 2) {
      q.insert(i * size, stream.subarray(i * size, (i + 1) * size), 0);
      const first = q.sackBlocks(1)[0]!;
      if (first.left !== (i - 1) * size) throw new Error(`first SACK block ${first.left} after filling ${i}`);
    }
    expect(q.segmentCount).toBe(n - 1);
    expect(q.sackBlocks(4)).toEqual([{ left: size, right: n * size }]);
    const out = concat(q.takeContiguous(size));
    expect(sha(out)).toBe(sha(stream.subarray(size)));
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('matches a byte-map reference model under random overlapping inserts with a memory bound', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const r = rng(seed);
      const maxBytes = 200 + Math.floor(r() * 1500);
      const base = (TWO_32 - 1000 + Math.floor(r() * 2000)) >>> 0;
      const q = new ReassemblyQueue(maxBytes);
      const model = new Map<number, number>(); // offset from base -> byte
      let rcv = 0; // RCV.NXT as an offset from base
      for (let step = 0; step < 300; step++) {
        if (r() < 0.15) {
          // The caller receives in-order data [rcv, rcv+k) itself, then takes what is contiguous.
          const k = Math.floor(r() * 60);
          for (let o = rcv; o < rcv + k; o++) model.delete(o);
          rcv += k;
          for (const o of [...model.keys()]) if (o < rcv) model.delete(o);
          const want: number[] = [];
          while (model.has(rcv)) {
            want.push(model.get(rcv)!);
            model.delete(rcv);
            rcv++;
          }
          const got = concat(q.takeContiguous(add(base, rcv - want.length)));
          expect(Array.from(got)).toEqual(want);
          continue;
        }
        const off = rcv + 1 + Math.floor(r() * 1500);
        const len = 1 + Math.floor(r() * 200);
        const data = bytesAt(off, len, step);
        const kept = q.insert(add(base, off), data, add(base, rcv));
        for (let i = 0; i < len; i++) if (!model.has(off + i)) model.set(off + i, data[i]!);
        const sorted = [...model.keys()].sort((a, b) => a - b);
        while (sorted.length > maxBytes) model.delete(sorted.pop()!);
        let all = true;
        for (let i = 0; i < len; i++) all &&= model.has(off + i);
        expect(kept).toBe(all);
        expect(q.bytes).toBe(model.size);
        // SACK blocks: the maximal runs of the model, first one containing the newest data.
        const runs: { left: number; right: number }[] = [];
        for (const o of [...model.keys()].sort((a, b) => a - b)) {
          const last = runs[runs.length - 1];
          if (last && last.right === o) last.right++;
          else runs.push({ left: o, right: o + 1 });
        }
        const blocks = q.sackBlocks(1000);
        const toOff = (s: number) => (s - base + TWO_32) % TWO_32;
        const asOffsets = blocks.map((b) => ({ left: toOff(b.left), right: toOff(b.right) }));
        expect([...asOffsets].sort((a, b) => a.left - b.left)).toEqual(runs);
        if (model.has(off)) expect(asOffsets[0]!.left <= off && off < asOffsets[0]!.right).toBe(true);
      }
    }
  });
});
