import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/link/sim/rng.js';

const draw = (r: Rng, n: number) => Array.from({ length: n }, () => r.nextU32());

/** Pearson chi-square statistic of counts against a uniform expectation. */
function chiSquare(counts: number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const e = total / counts.length;
  return counts.reduce((acc, c) => acc + ((c - e) * (c - e)) / e, 0);
}

describe('Rng', () => {
  it('same seed gives the same stream; different seeds give different streams', () => {
    expect(draw(new Rng(42), 100)).toEqual(draw(new Rng(42), 100));
    expect(draw(new Rng('scenario-a'), 100)).toEqual(draw(new Rng('scenario-a'), 100));
    const streams = [0, 1, 2, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1].map((s) => draw(new Rng(s), 4).join(','));
    streams.push(draw(new Rng('0'), 4).join(','), draw(new Rng(''), 4).join(','));
    expect(new Set(streams).size).toBe(streams.length);
  });

  it('keeps its output for a given seed (recorded seeds of failing runs must stay reproducible)', () => {
    // Pinned values: if this fails the generator changed and every recorded seed means something else.
    expect(draw(new Rng(1), 4)).toEqual(PINNED_SEED_1);
    expect(draw(new Rng('chimney').fork('loss'), 2)).toEqual(PINNED_CHIMNEY_LOSS);
  });

  it('float() is in [0, 1) and int(n) is unbiased (chi-square, 100k draws)', () => {
    const r = new Rng(2024);
    let min = 1;
    let max = 0;
    let sum = 0;
    for (let i = 0; i < 100_000; i++) {
      const f = r.float();
      min = Math.min(min, f);
      max = Math.max(max, f);
      sum += f;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    expect(sum / 100_000).toBeCloseTo(0.5, 2);
    for (const n of [2, 7, 10, 1000]) {
      const counts = new Array(n).fill(0);
      const draws = n * 200;
      for (let i = 0; i < draws; i++) counts[r.int(n)]++;
      // Critical value at p = 0.0001 is below dof + 5*sqrt(2*dof) + 10 for these dof.
      const dof = n - 1;
      expect(chiSquare(counts)).toBeLessThan(dof + 5 * Math.sqrt(2 * dof) + 10);
    }
    // Each of the 32 output bits is fair.
    const ones = new Array(32).fill(0);
    for (let i = 0; i < 50_000; i++) {
      const x = r.nextU32();
      for (let b = 0; b < 32; b++) ones[b] += (x >>> b) & 1;
    }
    for (const o of ones) expect(Math.abs(o - 25_000)).toBeLessThan(5 * Math.sqrt(12_500));
  });

  it('int() covers its edges and rejects bad n', () => {
    const r = new Rng(3);
    for (let i = 0; i < 100; i++) expect(r.int(1)).toBe(0);
    const big = Array.from({ length: 1000 }, () => r.int(2 ** 32));
    expect(big.some((x) => x >= 2 ** 31)).toBe(true);
    expect(big.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)).toBe(true);
    for (const bad of [0, -1, 1.5, 2 ** 32 + 1, NaN]) expect(() => r.int(bad)).toThrow(RangeError);
    expect(() => new Rng(-1)).toThrow(RangeError);
    expect(() => new Rng(0.5)).toThrow(RangeError);
  });

  it('chance(p) hits p within statistical bounds and always consumes one draw', () => {
    const r = new Rng(11);
    let hits = 0;
    for (let i = 0; i < 20_000; i++) if (r.chance(0.1)) hits++;
    expect(Math.abs(hits - 2000)).toBeLessThan(5 * Math.sqrt(20_000 * 0.1 * 0.9));
    const a = new Rng(5);
    const b = new Rng(5);
    expect(a.chance(0)).toBe(false);
    expect(b.chance(1)).toBe(true);
    expect(a.nextU32()).toBe(b.nextU32());
  });

  it('fork(label) is independent of the parent\'s draws, does not advance it, and differs per label', () => {
    const fresh = new Rng(9);
    const used = new Rng(9);
    draw(used, 1234);
    expect(draw(fresh.fork('loss'), 50)).toEqual(draw(used.fork('loss'), 50));

    const p1 = new Rng(9);
    const p2 = new Rng(9);
    p1.fork('x');
    p1.fork('y');
    expect(draw(p1, 20)).toEqual(draw(p2, 20));

    const labels = ['loss', 'dup', 'reorder', 'loss2', 'a', 'b'].map((l) => draw(new Rng(9).fork(l), 4).join());
    labels.push(draw(new Rng(9), 4).join(), draw(new Rng(10).fork('loss'), 4).join());
    labels.push(draw(new Rng(9).fork('loss').fork('loss'), 4).join());
    expect(new Set(labels).size).toBe(labels.length);
    expect(new Rng(9).fork('a.b').fork('loss').path).toBe('9/a.b/loss');
  });

  it('adjacent seeds and forks are uncorrelated (first outputs look uniform)', () => {
    const counts = new Array(16).fill(0);
    for (let s = 0; s < 16_000; s++) counts[new Rng(s).nextU32() >>> 28]++;
    expect(chiSquare(counts)).toBeLessThan(15 + 5 * Math.sqrt(30) + 10);
    const forkCounts = new Array(16).fill(0);
    const root = new Rng(1);
    for (let i = 0; i < 16_000; i++) forkCounts[root.fork(`c${i}`).nextU32() >>> 28]++;
    expect(chiSquare(forkCounts)).toBeLessThan(15 + 5 * Math.sqrt(30) + 10);
  });
});

const PINNED_SEED_1 = [991561523, 1996949603, 3445293747, 2871018690];
const PINNED_CHIMNEY_LOSS = [2722264923, 2738302470];
