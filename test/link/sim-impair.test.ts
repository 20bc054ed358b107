import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Link } from '../../src/link/link.js';
import {
  impair,
  withDelay,
  withDuplication,
  withLoss,
  withMtu,
  withRateLimit,
  withReordering,
  type ImpairSpec,
} from '../../src/link/sim/impair.js';
import { Rng } from '../../src/link/sim/rng.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { Simulator } from '../../src/link/sim/simulator.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** k-sigma half-width of a binomial count. */
const bound = (n: number, p: number, k = 5) => k * Math.sqrt(n * p * (1 - p));

/** Frame i: 4-byte big-endian index, then random bytes; length in [lenMin, lenMax]. */
function makeFrames(rng: Rng, n: number, lenMin = 64, lenMax = 1514): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const f = new Uint8Array(lenMin + rng.int(lenMax - lenMin + 1));
    new DataView(f.buffer).setUint32(0, i);
    for (let j = 4; j < f.length; j++) f[j] = rng.int(256);
    frames.push(f);
  }
  return frames;
}

interface Arrival {
  t: number;
  idx: number;
}

/**
 * Records arrivals and checks every delivered frame byte for byte against what was sent (by
 * digest), duplicates included. `mismatches` must stay 0.
 */
function receiver(link: Link, sim: Simulator, sent: Uint8Array[]) {
  const digests = sent.map(sha);
  const r = { arrivals: [] as Arrival[], mismatches: 0 };
  link.setReceiver((frames) => {
    for (const f of frames) {
      const idx = new DataView(f.buffer, f.byteOffset, f.byteLength).getUint32(0);
      if (idx >= sent.length || sha(f) !== digests[idx]) r.mismatches++;
      r.arrivals.push({ t: sim.now, idx });
    }
  });
  return r;
}

/** Sends frame i at time start + i * intervalMs (one frame per send call). */
function sendPaced(sim: Simulator, link: Link, frames: Uint8Array[], intervalMs: number, start = sim.now) {
  frames.forEach((f, i) => sim.schedule(start + i * intervalMs, () => link.send([f])));
}

const indices = (a: Arrival[]) => a.map((x) => x.idx);
const isIncreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);
const N = 20_000;
const stddev = (xs: number[]) => {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / xs.length);
};

describe('impairment wrappers', () => {
  it('withLoss drops about p of the frames, keeps order and bytes, and counts drops in dropsOut', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'l' });
    const frames = makeFrames(new Rng(1), N);
    const la = withLoss(a, sim, new Rng(100), 0.1);
    const r = receiver(b, sim, frames);
    sendPaced(sim, la, frames, 0.1);
    sim.runUntilIdle();
    expect(Math.abs(la.stats.dropped - N * 0.1)).toBeLessThan(bound(N, 0.1));
    expect(la.stats.passed + la.stats.dropped).toBe(N);
    expect(r.arrivals).toHaveLength(la.stats.passed);
    expect(r.mismatches).toBe(0);
    expect(isIncreasing(indices(r.arrivals))).toBe(true);
    expect(la.counters).toBe(a.counters);
    expect(a.counters.dropsOut).toBe(la.stats.dropped);
    expect(b.counters.framesIn).toBe(la.stats.passed);
  });

  it('withDuplication sends about p of the frames twice, each copy byte-identical', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'd' });
    const frames = makeFrames(new Rng(2), N);
    const da = withDuplication(a, sim, new Rng(200), 0.05);
    const r = receiver(b, sim, frames);
    sendPaced(sim, da, frames, 0.1);
    sim.runUntilIdle();
    expect(Math.abs(da.stats.duplicated - N * 0.05)).toBeLessThan(bound(N, 0.05));
    expect(r.arrivals).toHaveLength(N + da.stats.duplicated);
    expect(r.mismatches).toBe(0);
    const seen = new Map<number, number>();
    for (const x of r.arrivals) seen.set(x.idx, (seen.get(x.idx) ?? 0) + 1);
    expect(seen.size).toBe(N);
    expect([...seen.values()].filter((c) => c === 2).length).toBe(da.stats.duplicated);
    expect([...seen.values()].every((c) => c === 1 || c === 2)).toBe(true);
    const idx = indices(r.arrivals);
    expect(idx.every((x, i) => i === 0 || x >= idx[i - 1]!)).toBe(true); // copies back to back
  });

  it('withReordering holds about p of the frames back by extraDelayMs so that later frames overtake them', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'r' });
    const frames = makeFrames(new Rng(3), N);
    const ra = withReordering(a, sim, new Rng(300), { p: 0.1, extraDelayMs: 1 });
    const r = receiver(b, sim, frames);
    const interval = 0.25; // exact in binary: latencies compare exactly
    sendPaced(sim, ra, frames, interval);
    sim.runUntilIdle();
    expect(Math.abs(ra.stats.reordered - N * 0.1)).toBeLessThan(bound(N, 0.1));
    expect(r.mismatches).toBe(0);
    expect(r.arrivals).toHaveLength(N);
    expect(new Set(indices(r.arrivals)).size).toBe(N);
    const held = new Set<number>();
    for (const x of r.arrivals) {
      const latency = x.t - x.idx * interval;
      expect([0, 1]).toContain(latency);
      if (latency === 1) held.add(x.idx);
    }
    expect(held.size).toBe(ra.stats.reordered);
    // Out-of-order arrivals are exactly the held frames (bar the last few, with nobody left to overtake them).
    let max = -1;
    const late = new Set<number>();
    for (const x of r.arrivals) {
      if (x.idx < max) late.add(x.idx);
      max = Math.max(max, x.idx);
    }
    for (const i of late) expect(held.has(i)).toBe(true);
    for (const i of held) if (i < N - 4) expect(late.has(i)).toBe(true);
    expect(late.size).toBeGreaterThan(1500);
  });

  it('withDelay adds delay with jitter but keeps FIFO order by default; allowReorder lets jitter reorder', () => {
    const run = (allowReorder: boolean) => {
      const sim = new Simulator();
      const [a, b] = createSimPair(sim, { name: 'j' });
      const frames = makeFrames(new Rng(4), N, 64, 200);
      const da = withDelay(a, sim, new Rng(400), { delayMs: 10, jitterMs: 5, allowReorder });
      const r = receiver(b, sim, frames);
      sendPaced(sim, da, frames, 0.5);
      sim.runUntilIdle();
      expect(r.mismatches).toBe(0);
      expect(r.arrivals).toHaveLength(N);
      expect(da.stats).toEqual({ delayed: N, held: 0 });
      const lat = r.arrivals.map((x) => x.t - x.idx * 0.5);
      expect(Math.min(...lat)).toBeGreaterThanOrEqual(5);
      expect(Math.max(...lat)).toBeLessThanOrEqual(15);
      return { idx: indices(r.arrivals), meanLatency: lat.reduce((s, x) => s + x, 0) / N, lat };
    };
    const fifo = run(false);
    expect(isIncreasing(fifo.idx)).toBe(true);
    // Jitter really varies the delay (FIFO only raises some latencies a little).
    // Jitter really varies the delay; FIFO raises the mean when frames are closer than the jitter range.
    expect(stddev(fifo.lat)).toBeGreaterThan(1);
    expect(fifo.meanLatency).toBeGreaterThan(10);
    expect(fifo.meanLatency).toBeLessThan(13.5);
    const free = run(true);
    expect(isIncreasing(free.idx)).toBe(false);
    expect(Math.abs(free.meanLatency - 10)).toBeLessThan(0.1); // uniform(-5, 5): sd 2.9, 20k samples
    expect(stddev(free.lat)).toBeCloseTo(10 / Math.sqrt(12), 1);
  });

  it('withDelay without jitter keeps a batch together (one delivery of the whole batch)', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'db' });
    const frames = makeFrames(new Rng(5), 5);
    const da = withDelay(a, sim, new Rng(500), { delayMs: 7 });
    const batches: { t: number; n: number }[] = [];
    b.setReceiver((fs) => batches.push({ t: sim.now, n: fs.length }));
    da.send(frames);
    sim.runUntilIdle();
    expect(batches).toEqual([{ t: 7, n: 5 }]);
  });

  it('withRateLimit delivers each frame after its serialisation time, back to back', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'rt' });
    const frames = makeFrames(new Rng(6), 10, 1250, 1250); // 10 000 bits = 10 ms at 1 Mbit/s
    const ra = withRateLimit(a, sim, { bitsPerSecond: 1_000_000 });
    const r = receiver(b, sim, frames);
    ra.send(frames);
    sim.runUntilIdle();
    expect(r.mismatches).toBe(0);
    expect(indices(r.arrivals)).toEqual([...Array(10).keys()]);
    r.arrivals.forEach((x, i) => expect(x.t).toBeCloseTo((i + 1) * 10, 9));
    expect(ra.stats).toEqual({ sent: 10, dropped: 0, queued: 0, maxQueued: 10 });
    // Spaced slower than the rate: no queueing, each takes exactly its own serialisation time.
    const start = sim.now + 100;
    r.arrivals.length = 0;
    sendPaced(sim, ra, frames, 20, start);
    sim.runUntilIdle();
    r.arrivals.forEach((x, i) => expect(x.t - (start + i * 20)).toBeCloseTo(10, 9));
  });

  it('withRateLimit: the long-run throughput equals the rate for mixed frame sizes', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'rt2' });
    const frames = makeFrames(new Rng(7), N);
    const ra = withRateLimit(a, sim, { bitsPerSecond: 100_000_000, queueFrames: N });
    const r = receiver(b, sim, frames);
    ra.send(frames);
    sim.runUntilIdle();
    const bits = frames.reduce((s, f) => s + f.length * 8, 0);
    expect(r.arrivals).toHaveLength(N);
    expect(r.mismatches).toBe(0);
    expect(r.arrivals[N - 1]!.t).toBeCloseTo((bits / 100_000_000) * 1000, 6);
  });

  it('withRateLimit tail-drops when the queue is full and recovers after it drains', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'q' });
    const frames = makeFrames(new Rng(8), 11, 1250, 1250);
    const ra = withRateLimit(a, sim, { bitsPerSecond: 1_000_000, queueFrames: 4 });
    const r = receiver(b, sim, frames);
    ra.send(frames.slice(0, 10));
    sim.runUntilIdle();
    expect(indices(r.arrivals)).toEqual([0, 1, 2, 3]);
    expect(ra.stats).toEqual({ sent: 4, dropped: 6, queued: 0, maxQueued: 4 });
    expect(a.counters.dropsOut).toBe(6);
    const t = sim.now;
    ra.send([frames[10]!]);
    sim.runUntilIdle();
    expect(indices(r.arrivals)).toEqual([0, 1, 2, 3, 10]);
    expect(r.arrivals[4]!.t).toBeCloseTo(t + 10, 9);
    expect(r.mismatches).toBe(0);
  });

  it('withMtu drops and counts frames above the narrower mtu and reports it', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'm' });
    const ma = withMtu(a, 1000);
    expect(ma.mtu).toBe(1000);
    expect(withMtu(a, 9000).mtu).toBe(1500);
    const frames = [new Uint8Array(1014).fill(7), new Uint8Array(1015), new Uint8Array(60).fill(9)];
    const got: string[] = [];
    b.setReceiver((fs) => fs.forEach((f) => got.push(sha(f))));
    ma.send(frames);
    sim.runUntilIdle();
    expect(got).toEqual([sha(frames[0]!), sha(frames[2]!)]);
    expect(ma.stats).toEqual({ passed: 2, dropped: 1 });
    expect(a.counters.dropsOut).toBe(1);
  });

  it('composes in any order: loss over delay and delay over loss lose the same frames at the same times', () => {
    const run = (lossOutside: boolean) => {
      const sim = new Simulator();
      const [a, b] = createSimPair(sim, { name: 'c' });
      const frames = makeFrames(new Rng(9), 2000);
      const link = lossOutside
        ? withLoss(withDelay(a, sim, new Rng(1), { delayMs: 3 }), sim, new Rng(900), 0.2)
        : withDelay(withLoss(a, sim, new Rng(900), 0.2), sim, new Rng(1), { delayMs: 3 });
      const r = receiver(b, sim, frames);
      sendPaced(sim, link, frames, 1);
      sim.runUntilIdle();
      expect(r.mismatches).toBe(0);
      return r.arrivals;
    };
    const x = run(true);
    const y = run(false);
    expect(x).toEqual(y);
    expect(x.every((a) => a.t === a.idx + 3)).toBe(true);
    expect(x.length).toBeLessThan(1800);
  });

  it('impair() builds the whole chain from a spec; both directions carry exact bytes and stats add up', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'full' });
    const rng = new Rng(10);
    const spec: ImpairSpec = {
      loss: 0.05,
      duplicate: 0.03,
      reorder: 0.05,
      reorderDelayMs: 2,
      delayMs: 5,
      jitterMs: 2,
      rateBps: 50_000_000,
      queueFrames: 20,
      mtu: 1400,
    };
    const ia = impair(a, sim, rng, spec);
    const ib = impair(b, sim, rng, spec);
    expect(ia.mtu).toBe(1400);
    expect(ia.name).toBe('full.a');
    const framesAB = makeFrames(new Rng(11), 5000);
    const framesBA = makeFrames(new Rng(12), 5000);
    const atB = receiver(ib, sim, framesAB);
    const atA = receiver(ia, sim, framesBA);
    sendPaced(sim, ia, framesAB, 0.1);
    sendPaced(sim, ib, framesBA, 0.1);
    sim.runUntilIdle();
    for (const [s, r, sent] of [
      [ia.stats, atB, framesAB],
      [ib.stats, atA, framesBA],
    ] as const) {
      expect(r.mismatches).toBe(0);
      const oversize = sent.filter((f) => f.length > 1414).length;
      expect(s.mtu!.dropped).toBe(oversize);
      expect(s.loss!.passed + s.loss!.dropped).toBe(sent.length - oversize);
      expect(s.duplicate!.passed).toBe(s.loss!.passed);
      expect(s.reorder!.passed + s.reorder!.reordered).toBe(s.loss!.passed + s.duplicate!.duplicated);
      expect(s.rate!.sent + s.rate!.dropped).toBe(s.loss!.passed + s.duplicate!.duplicated);
      expect(s.delay!.delayed).toBe(s.rate!.sent);
      expect(r.arrivals).toHaveLength(s.rate!.sent);
      for (const v of [s.loss!.dropped, s.duplicate!.duplicated, s.reorder!.reordered, s.rate!.dropped]) expect(v).toBeGreaterThan(0);
      expect(isIncreasing(indices(r.arrivals))).toBe(false);
    }
    // One rng for both ends, yet each end draws its own decisions.
    expect(ia.stats.loss!.dropped).not.toBe(ib.stats.loss!.dropped);
  });

  it('adding an impairment does not change the decisions of the others (per-impairment rng forks)', () => {
    const lost = (spec: ImpairSpec) => {
      const sim = new Simulator();
      const [a, b] = createSimPair(sim, { name: 'f' });
      const frames = makeFrames(new Rng(13), 3000);
      const r = receiver(b, sim, frames);
      sendPaced(sim, impair(a, sim, new Rng(77), spec), frames, 1);
      sim.runUntilIdle();
      const got = new Set(indices(r.arrivals));
      return [...frames.keys()].filter((i) => !got.has(i));
    };
    const base = lost({ loss: 0.1 });
    expect(base.length).toBeGreaterThan(200);
    expect(lost({ loss: 0.1, reorder: 0.3, delayMs: 4, jitterMs: 3 })).toEqual(base);
    expect(lost({ loss: 0.1, duplicate: 0.2 })).toEqual(base);
  });

  it('same seed gives the identical delivery sequence; a different seed gives a different one', () => {
    const history = (seed: number) => {
      const sim = new Simulator();
      const [a, b] = createSimPair(sim, { name: 'det' });
      const rng = new Rng(seed);
      const spec: ImpairSpec = { loss: 0.05, duplicate: 0.05, reorder: 0.1, delayMs: 3, jitterMs: 2, jitterReorders: true, rateBps: 10_000_000, queueFrames: 8 };
      const ia = impair(a, sim, rng, spec);
      const ib = impair(b, sim, rng, spec);
      const log: string[] = [];
      const framesAB = makeFrames(new Rng(14), 1000);
      const framesBA = makeFrames(new Rng(15), 1000);
      const ra = receiver(ia, sim, framesBA);
      const rb = receiver(ib, sim, framesAB);
      sendPaced(sim, ia, framesAB, 0.3);
      sendPaced(sim, ib, framesBA, 0.3);
      sim.runUntilIdle();
      for (const x of ra.arrivals) log.push(`a ${x.t} ${x.idx}`);
      for (const x of rb.arrivals) log.push(`b ${x.t} ${x.idx}`);
      expect(ra.mismatches + rb.mismatches).toBe(0);
      return log;
    };
    const h1 = history(123);
    expect(history(123)).toEqual(h1);
    expect(history(124)).not.toEqual(h1);
  });

  it('closing a wrapper stops delivery of what it still holds and closes the link under it', async () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'cl' });
    const frames = makeFrames(new Rng(16), 4);
    const ia = impair(a, sim, new Rng(1), { delayMs: 10, rateBps: 1_000_000, reorder: 0.5 });
    const r = receiver(b, sim, frames);
    ia.send(frames);
    sim.runUntil(5);
    await ia.close();
    sim.runUntilIdle();
    ia.send(frames);
    a.send(frames);
    sim.runUntilIdle();
    expect(r.arrivals).toHaveLength(0);
    expect(a.counters.dropsOut).toBe(8);
  });

  it('wrappers that hold frames copy them: the sender may reuse its memory at once', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 'cp' });
    const rng = new Rng(17);
    const holders: Link[] = [
      withDelay(a, sim, rng, { delayMs: 1 }),
      withRateLimit(a, sim, { bitsPerSecond: 1e6 }),
      withReordering(a, sim, rng, { p: 1, extraDelayMs: 1 }),
    ];
    const got: string[] = [];
    b.setReceiver((fs) => fs.forEach((f) => got.push(sha(f))));
    const want: string[] = [];
    holders.forEach((h, i) => {
      const buf = Buffer.alloc(200, i + 1);
      want.push(sha(buf));
      h.send([buf]);
      buf.fill(0);
    });
    sim.runUntilIdle();
    expect(got.sort()).toEqual(want.sort());
  });

  it('rejects invalid parameters', () => {
    const sim = new Simulator();
    const [a] = createSimPair(sim, { name: 'v' });
    const rng = new Rng(1);
    expect(() => withLoss(a, sim, rng, 1.5)).toThrow(RangeError);
    expect(() => withDuplication(a, sim, rng, -0.1)).toThrow(RangeError);
    expect(() => withReordering(a, sim, rng, { p: 0.1, extraDelayMs: -1 })).toThrow(RangeError);
    expect(() => withDelay(a, sim, rng, { delayMs: NaN })).toThrow(RangeError);
    expect(() => withRateLimit(a, sim, { bitsPerSecond: 0 })).toThrow(RangeError);
    expect(() => withRateLimit(a, sim, { bitsPerSecond: 1e6, queueFrames: 0 })).toThrow(RangeError);
    expect(() => withMtu(a, 20)).toThrow(RangeError);
  });
});
