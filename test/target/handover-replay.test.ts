/**
 * The hand-over replay (docs/ipc-protocol.md section 7): the host marks how many RawFrame messages
 * it had processed when it exported a connection (RawFramesSeen); the target replays the frames
 * after the mark, the ones the host holds, from its ring at once instead of waiting a round trip
 * for the host's forward. Issue 5: a hand-over must not delay the connection's ACKs enough for the
 * peer's timers to resend; with the replay it holds them for one host -> target message.
 */
import { describe, expect, it } from 'vitest';
import { RawFrameRing } from '../../src/target/raw-frame-ring.js';
import { parseFrame } from '../../src/wire/frame.js';
import { Collector, payload, sha256, writeAll } from '../support/host-sim.js';
import { OffloadRig } from '../support/offload-rig.js';

const frame = (n: number): Uint8Array => new Uint8Array([n & 0xff, n >> 8]);

describe('RawFrameRing', () => {
  it('numbers frames from 1 like the host counts them; after(mark) is every later frame, oldest first', () => {
    const r = new RawFrameRing(4);
    expect(r.after(0)).toEqual([]);
    for (let i = 1; i <= 3; i++) r.push(frame(i));
    expect(r.sent).toBe(3);
    expect(r.after(0)).toEqual([frame(1), frame(2), frame(3)]);
    expect(r.after(1)).toEqual([frame(2), frame(3)]);
    expect(r.after(3)).toEqual([]);
  });

  it('a mark the ring no longer covers (evicted), or one ahead of what was sent, gives undefined', () => {
    const r = new RawFrameRing(4);
    for (let i = 1; i <= 10; i++) r.push(frame(i));
    expect(r.after(6)).toEqual([frame(7), frame(8), frame(9), frame(10)]);
    expect(r.after(5)).toBeUndefined();
    expect(r.after(11)).toBeUndefined();
    r.reset();
    expect(r.sent).toBe(0);
    expect(r.after(0)).toEqual([]);
  });

  it('refuses a capacity that is not a power of two (numbering wraps at 2^32)', () => {
    expect(() => new RawFrameRing(3000)).toThrow(/power of two/);
  });
});

interface Run {
  replayed: number;
  incomplete: number;
  /** Longest time from a data segment of B reaching the target to A's first ACK covering it (virtual ms). */
  maxAckDelayMs: number;
  holes: number;
  retransmitted: number;
  terminates: number;
}

/** B sends to A (and A a little to B) while A is handed over every ~30 ms; IPC 10-20 ms per message. */
async function cycle(replay: boolean): Promise<Run> {
  const rig = new OffloadRig({ policy: 'manual', seed: 'replay', ipcDelayMs: 20, recordWire: true, replay });
  const { ca, cb } = await rig.pair();
  const ra = new Collector(ca);
  const rb = new Collector(cb);
  const toA = payload(7, 30_000_000);
  const toB = payload(8, 300_000);
  void writeAll(cb, toA);
  void writeAll(ca, toB);
  let flips = 0;
  const flip = (): void => {
    if (ra.ended && rb.ended) return;
    const op = ca.offloaded ? ca.terminateOffload() : ca.offload();
    flips++;
    void op.catch(() => {}).then(() => rig.sim.after(10, flip));
  };
  rig.sim.after(5, flip);
  await rig.run(() => ra.ended && rb.ended, 'both streams', 600_000);
  expect(ra.digest()).toBe(sha256(toA));
  expect(rb.digest()).toBe(sha256(toB));
  expect(flips, `hand-overs in ${rig.sim.now} virtual ms`).toBeGreaterThan(10);
  // Every first arrival of B's data at the target, against A's ACKs leaving it (both in order).
  const arrivals: Array<{ end: number; at: number }> = [];
  let highest: number | undefined;
  rig.wireIn.forEach((f, i) => {
    const p = parseFrame(f);
    if (typeof p === 'string' || !p.tcp || p.tcp.payload.length === 0) return;
    const end = (p.tcp.seq + p.tcp.payload.length) >>> 0;
    if (highest !== undefined && ((end - highest) | 0) <= 0) return; // nothing new
    highest = end;
    arrivals.push({ end, at: rig.wireInAt[i]! });
  });
  let holes = 0;
  let maxAckDelayMs = 0;
  let next = 0;
  rig.wireOut.forEach((f, i) => {
    const p = parseFrame(f);
    if (typeof p === 'string' || !p.tcp) return;
    const tcp = p.tcp;
    holes += (tcp.options.sack ?? []).filter((b) => ((b.left - tcp.ack) | 0) > 0).length;
    while (next < arrivals.length && ((tcp.ack - arrivals[next]!.end) | 0) >= 0) {
      maxAckDelayMs = Math.max(maxAckDelayMs, rig.wireOutAt[i]! - arrivals[next]!.at);
      next++;
    }
  });
  expect(next, 'every segment of B acknowledged on the wire').toBe(arrivals.length);
  return {
    replayed: rig.core.counters.segmentsReplayed, incomplete: rig.core.counters.replayIncomplete, maxAckDelayMs, holes,
    retransmitted: cb.connection.stats.retransmittedSegments + ca.connection.stats.retransmittedSegments, terminates: rig.a.offload!.stats.terminates,
  };
}

describe('hand-over replay through the host stack and the target core (issue 5)', () => {
  it('spec 2.6 / issue 5: the target replays what the host holds; no hole is reported, nothing is resent, and an ACK waits no longer than host-driven (two IPC messages), shorter than with the barrier alone', async () => {
    const withReplay = await cycle(true);
    const barrierOnly = await cycle(false);
    console.info(`hand-over replay: ${JSON.stringify(withReplay)}; barrier only: ${JSON.stringify(barrierOnly)}`);
    expect(withReplay.replayed).toBeGreaterThan(0);
    expect(withReplay.incomplete).toBe(0);
    expect(barrierOnly.replayed).toBe(0);
    for (const r of [withReplay, barrierOnly]) {
      expect(r.holes, 'SACK blocks above the ACK (a reported hole)').toBe(0);
      expect(r.retransmitted).toBe(0);
    }
    // Each IPC message takes 10-20 ms. Host-driven, an ACK waits for two of them (segment up,
    // ACK down). A segment held during an initiate waits, with the replay, for the RawFramesSeen
    // to reach the target (after it went up: at most two); with the barrier only, for the
    // initiate, its completion and the forward (four).
    expect(withReplay.maxAckDelayMs).toBeLessThanOrEqual(2 * 20 + 1);
    expect(barrierOnly.maxAckDelayMs).toBeGreaterThan(withReplay.maxAckDelayMs);
  });
});
