import { describe, expect, it } from 'vitest';
import { BufferLedger } from '../../src/chimney/buffer-ledger.js';

const bytes = (n: number, tag = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + tag) & 0xff);

describe('BufferLedger', () => {
  it('R105: every lent buffer is returned exactly once; a second return is an error naming the id', () => {
    const l = new BufferLedger({ maxLentBytes: 1000 });
    const a = l.lend(bytes(100), 7);
    const b = l.lend(bytes(50), 7);
    expect(a).not.toBe(b);
    expect(l.lentCount).toBe(2);
    expect(l.lentBytes).toBe(150);

    expect(l.returnBuffers([a])).toEqual({ ok: true });
    expect(l.isLent(a)).toBe(false);
    expect(l.lentBytes).toBe(50);

    expect(l.returnBuffers([a])).toEqual({ ok: false, problem: `buffer ${a} was already returned` });
    expect(l.lentBytes).toBe(50);
    expect(l.returnBuffers([b])).toEqual({ ok: true });
    expect(l.lentCount).toBe(0);
    expect(l.lentBytes).toBe(0);
  });

  it('R105: an unknown id is an error naming it', () => {
    const l = new BufferLedger({ maxLentBytes: 1000 });
    l.lend(bytes(10), 1);
    expect(l.returnBuffers([999])).toEqual({ ok: false, problem: 'buffer 999 is unknown (never lent)' });
    expect(l.returnBuffers([-1])).toEqual({ ok: false, problem: 'buffer -1 is not a valid buffer id' });
    expect(l.returnBuffers([1.5])).toEqual({ ok: false, problem: 'buffer 1.5 is not a valid buffer id' });
  });

  it('R105: validation is all-or-nothing: one bad id in a list returns nothing, and every bad id is named', () => {
    const l = new BufferLedger({ maxLentBytes: 1000 });
    const a = l.lend(bytes(10), 1);
    const b = l.lend(bytes(20), 1);
    const r = l.returnBuffers([a, 4242, b, b]);
    expect(r).toEqual({ ok: false, problem: `buffer 4242 is unknown (never lent); buffer ${b} is listed twice` });
    expect(l.isLent(a)).toBe(true);
    expect(l.isLent(b)).toBe(true);
    expect(l.lentBytes).toBe(30);
    expect(l.returnBuffers([b, a])).toEqual({ ok: true });
    expect(l.lentBytes).toBe(0);
  });

  it('R105: receive-return of an empty list succeeds and changes nothing', () => {
    const l = new BufferLedger({ maxLentBytes: 10 });
    const a = l.lend(bytes(5), 1);
    expect(l.returnBuffers([])).toEqual({ ok: true });
    expect(l.lentBy(1)).toEqual([a]);
  });

  it('R17: ids are never reused while lent, and not reused soon after (monotonic, wrapping to 1 only after 2^32-1)', () => {
    const l = new BufferLedger({ maxLentBytes: 1 << 20 });
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const id = l.lend(bytes(1), 3);
      expect(seen.has(id)).toBe(false);
      seen.add(id);
      if (i % 2 === 0) expect(l.returnBuffers([id]).ok).toBe(true);
    }
    // Near the 2^32 wrap: the counter goes back to 1.
    const w = new BufferLedger({ maxLentBytes: 1 << 20, firstId: 0xfffffffe });
    const x = w.lend(bytes(1), 1);
    const y = w.lend(bytes(1), 1);
    expect([x, y]).toEqual([0xfffffffe, 0xffffffff]);
    const z = w.lend(bytes(1), 1);
    expect(z).toBe(1);
    expect(w.returnBuffers([x]).ok).toBe(true);
    // 2..0xfffffffd were never lent in this ledger, but after the wrap the ledger cannot tell:
    expect(w.returnBuffers([77])).toEqual({ ok: false, problem: 'buffer 77 is not lent (unknown or already returned)' });
    expect(w.returnBuffers([x])).toEqual({ ok: false, problem: `buffer ${x} was already returned` });
  });

  it('memory budget: canLend is false past maxLentBytes and true again after returns; lend never refuses', () => {
    const l = new BufferLedger({ maxLentBytes: 100 });
    expect(l.canLend(100)).toBe(true);
    expect(l.canLend(101)).toBe(false);
    const a = l.lend(bytes(60), 1);
    expect(l.canLend(40)).toBe(true);
    expect(l.canLend(41)).toBe(false);
    // Acknowledged data must never be dropped, so lending past the budget still works...
    const b = l.lend(bytes(60), 2);
    expect(l.lentBytes).toBe(120);
    // ...and the caller sees the budget exceeded for any new work.
    expect(l.canLend(0)).toBe(false);
    expect(l.returnBuffers([a]).ok).toBe(true);
    expect(l.canLend(40)).toBe(true);
    expect(l.returnBuffers([b]).ok).toBe(true);
    expect(l.canLend(100)).toBe(true);
    expect(() => new BufferLedger({ maxLentBytes: -1 })).toThrow(RangeError);
  });

  it('lentBy(owner) lists the owner\'s lent ids in lending order and survives other owners\' returns', () => {
    const l = new BufferLedger({ maxLentBytes: 1000 });
    const a1 = l.lend(bytes(1), 10);
    const b1 = l.lend(bytes(2), 20);
    const a2 = l.lend(bytes(3), 10);
    expect(l.lentBy(10)).toEqual([a1, a2]);
    expect(l.lentBy(20)).toEqual([b1]);
    expect(l.lentBy(30)).toEqual([]);
    expect(l.returnBuffers([b1, a1]).ok).toBe(true);
    expect(l.lentBy(10)).toEqual([a2]);
    expect(l.lentBy(20)).toEqual([]);
  });

  it('R105: a buffer reclaimed by the target (indication refused) cannot be returned by the host', () => {
    const l = new BufferLedger({ maxLentBytes: 1000 });
    const a = l.lend(bytes(40), 1);
    expect(l.reclaim(a)).toBe(true);
    expect(l.lentBytes).toBe(0);
    expect(l.reclaim(a)).toBe(false);
    expect(l.returnBuffers([a])).toEqual({
      ok: false,
      problem: `buffer ${a} is not lent: its indication was refused, so it stayed with the target`,
    });
  });
});
