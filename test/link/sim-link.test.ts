import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newLinkCounters, type Link } from '../../src/link/link.js';
import { Rng } from '../../src/link/sim/rng.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { Simulator } from '../../src/link/sim/simulator.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function randomFrame(rng: Rng, len: number): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 0; i < len; i++) f[i] = rng.int(256);
  return f;
}

function collect(link: Link, sim: Simulator) {
  const got: { t: number; batch: Uint8Array[] }[] = [];
  // Copy: the views are only valid during the call.
  link.setReceiver((frames) => got.push({ t: sim.now, batch: frames.map((f) => new Uint8Array(f)) }));
  return got;
}

describe('sim link pair', () => {
  it('delivers exact bytes in order, as batches, asynchronously at the same virtual time', () => {
    const sim = new Simulator(1000);
    const [a, b] = createSimPair(sim, { name: 's0' });
    expect([a.name, b.name, a.layer, a.mtu]).toEqual(['s0.a', 's0.b', 'ethernet', 1500]);
    const gotB = collect(b, sim);
    const gotA = collect(a, sim);
    const rng = new Rng(1);
    const batch1 = [randomFrame(rng, 60), randomFrame(rng, 1514), randomFrame(rng, 14)];
    const batch2 = [randomFrame(rng, 100)];
    a.send(batch1);
    a.send(batch2);
    b.send([randomFrame(rng, 64)]);
    expect(gotB).toHaveLength(0); // never inside send
    sim.runUntilIdle();
    expect(gotB.map((g) => g.t)).toEqual([1000, 1000]);
    expect(gotB.map((g) => g.batch.map(sha))).toEqual([batch1.map(sha), batch2.map(sha)]);
    expect(gotA).toHaveLength(1);
    expect(a.counters).toEqual({ ...newLinkCounters(), framesOut: 4, bytesOut: 60 + 1514 + 14 + 100, framesIn: 1, bytesIn: 64 });
    expect(b.counters).toEqual({ ...newLinkCounters(), framesIn: 4, bytesIn: 60 + 1514 + 14 + 100, framesOut: 1, bytesOut: 64 });
  });

  it('copies sent frames: the sender may reuse its memory (also for Buffer, whose slice is a view)', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 's1' });
    const got = collect(b, sim);
    const buf = Buffer.alloc(100, 0xab);
    const u8 = new Uint8Array(100).fill(0xcd);
    a.send([buf, u8.subarray(10, 50)]);
    buf.fill(0);
    u8.fill(0);
    sim.runUntilIdle();
    expect(Buffer.from(got[0]!.batch[0]!).equals(Buffer.alloc(100, 0xab))).toBe(true);
    expect(Buffer.from(got[0]!.batch[1]!).equals(Buffer.alloc(40, 0xcd))).toBe(true);
  });

  it('drops and counts frames above mtu + 14 (Ethernet) or mtu (IP)', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 's2', mtu: 1000 });
    const got = collect(b, sim);
    a.send([new Uint8Array(1014).fill(1), new Uint8Array(1015).fill(2), new Uint8Array(9000)]);
    const [c, d] = createSimPair(sim, { name: 's3', mtu: 1280, layer: 'ip' });
    const gotIp = collect(d, sim);
    c.send([new Uint8Array(1280).fill(3), new Uint8Array(1281)]);
    sim.runUntilIdle();
    expect(got.flatMap((g) => g.batch).map(sha)).toEqual([sha(new Uint8Array(1014).fill(1))]);
    expect(a.counters.dropsOut).toBe(2);
    expect(a.counters.framesOut).toBe(1);
    expect(gotIp.flatMap((g) => g.batch).map(sha)).toEqual([sha(new Uint8Array(1280).fill(3))]);
    expect(c.counters.dropsOut).toBe(1);
    expect(() => createSimPair(sim, { name: 'bad', mtu: 10 })).toThrow(RangeError);
  });

  it('is never re-entrant: a receiver that answers at once does not recurse into itself', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 's4' });
    let depth = 0;
    let maxDepth = 0;
    let exchanges = 0;
    const echo = (self: Link) => (frames: readonly Uint8Array[]) => {
      depth++;
      maxDepth = Math.max(maxDepth, depth);
      exchanges++;
      if (exchanges < 10_000) self.send(frames);
      depth--;
    };
    a.setReceiver(echo(a));
    b.setReceiver(echo(b));
    a.send([new Uint8Array([1, 2, 3])]);
    sim.runUntilIdle();
    expect(exchanges).toBe(10_000);
    expect(maxDepth).toBe(1);
  });

  it('close() stops delivery: frames in flight to a closed end and sends after close are dropped and counted', async () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 's5' });
    const got = collect(b, sim);
    const gotA = collect(a, sim);
    a.send([new Uint8Array(60)]);
    sim.runUntilIdle();
    a.send([new Uint8Array(61), new Uint8Array(62)]); // in flight when b closes
    await b.close();
    sim.runUntilIdle();
    b.send([new Uint8Array(63)]);
    a.send([new Uint8Array(64)]);
    sim.runUntilIdle();
    expect(got.flatMap((g) => g.batch).map((f) => f.length)).toEqual([60]);
    expect(gotA).toHaveLength(0);
    expect(b.counters.dropsIn).toBe(3);
    expect(b.counters.dropsOut).toBe(1);
    expect(b.counters.framesIn).toBe(1);
  });

  it('frames arriving before a receiver is installed are dropped and counted', () => {
    const sim = new Simulator();
    const [a, b] = createSimPair(sim, { name: 's6' });
    a.send([new Uint8Array(60)]);
    sim.runUntilIdle();
    expect(b.counters.dropsIn).toBe(1);
    expect(b.counters.framesIn).toBe(0);
  });
});
