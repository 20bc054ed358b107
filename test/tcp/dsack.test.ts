/**
 * D-SACK (RFC 2883): the receiver reports every duplicate segment in the first SACK block of the
 * ACK it sends at once, so the sender can tell a spurious retransmission from a loss (Linux undoes
 * its reaction and widens its reordering window on them). Driven segment by segment.
 */
import { describe, expect, it } from 'vitest';
import { IntervalSet } from '../../src/capture/flow-analysis.js';
import { TcpConnection } from '../../src/tcp/connection.js';
import { TCP_ACK, TCP_FIN, TCP_SYN, type TcpSegment } from '../../src/wire/tcp-segment.js';
import { seqAdd, seqDiff } from '../../src/wire/seq.js';
import { EnginePair, digestOf, type Pipe } from '../support/engine-pair.js';

const PEER_ISS = 5000;
const D = PEER_ISS + 1; // first data byte from the peer

function seg(p: Partial<TcpSegment>): TcpSegment {
  return { srcPort: 80, dstPort: 40000, seq: 0, ack: 1001, flags: TCP_ACK, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0), ...p };
}

function data(seq: number, len: number, tsVal?: number): TcpSegment {
  const payload = new Uint8Array(len).map((_, i) => (seq + i) & 0xff);
  return seg({ seq, payload, options: tsVal === undefined ? {} : { ts: { val: tsVal, ecr: 0 } } });
}

/** Established by hand with SACK permitted (and timestamps when asked), MSS 1000 each way. */
function established(opts: { sack?: boolean; timestamps?: boolean } = {}): TcpConnection {
  const sack = opts.sack ?? true;
  const ts = opts.timestamps ?? false;
  const c = TcpConnection.connect({ config: { timestamps: ts, sack, windowScaling: false, mss: 1000 }, localPort: 40000, remotePort: 80, iss: 1000, now: 0 });
  c.takeOutput();
  c.input(seg({ seq: PEER_ISS, flags: TCP_SYN | TCP_ACK, options: { mss: 1000, sackPermitted: sack || undefined, ts: ts ? { val: 1, ecr: 0 } : undefined } }), 10);
  c.takeOutput();
  c.takeEvents();
  return c;
}

function onlyAck(c: TcpConnection): TcpSegment {
  const out = c.takeOutput();
  expect(out).toHaveLength(1);
  return out[0]!;
}

describe('D-SACK receiver (RFC 2883)', () => {
  it('RFC 2883 4.1.1: a duplicate below the cumulative ACK is acknowledged at once, its range the first SACK block', () => {
    const c = established();
    c.input(data(D, 1000), 20);
    c.input(data(D + 1000, 1000), 21);
    c.takeOutput();
    // The peer retransmits the first segment (its ACK was lost or it timed out too early).
    c.input(data(D, 1000), 30);
    const a = onlyAck(c);
    expect(a.ack).toBe(D + 2000);
    expect(a.options.sack).toEqual([{ left: D, right: D + 1000 }]);
    expect(c.stats.dsacksSent).toBe(1);
    expect(c.readable).toBe(2000);
  });

  it('RFC 2883 4: each duplicate is reported once; the next ACK carries no D-SACK block', () => {
    const c = established({ timestamps: false });
    c.input(data(D, 1000), 20);
    c.takeOutput();
    c.input(data(D, 1000), 30);
    expect(onlyAck(c).options.sack).toEqual([{ left: D, right: D + 1000 }]);
    // New in-order data after it: whatever ACK it gets has no SACK option at all.
    c.input(data(D + 1000, 1000), 40);
    c.input(data(D + 2000, 1000), 41);
    const acks = c.takeOutput();
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) expect(a.options.sack).toBeUndefined();
    // A second copy of the same duplicate is reported again (it is a new duplicate).
    c.input(data(D, 1000), 50);
    expect(onlyAck(c).options.sack).toEqual([{ left: D, right: D + 1000 }]);
    expect(c.stats.dsacksSent).toBe(2);
  });

  it('RFC 2883 4.1.2: a duplicate of held out-of-order data: D-SACK block first, then the block containing it, then the others', () => {
    const c = established();
    // Holes at D and D+2000; held: [D+1000, D+2000) and [D+3000, D+5000).
    c.input(data(D + 1000, 1000), 20);
    c.input(data(D + 3000, 1000), 21);
    c.input(data(D + 4000, 1000), 22);
    c.takeOutput();
    // A spurious retransmission of the SACKed segment at D+3000.
    c.input(data(D + 3000, 1000), 30);
    const a = onlyAck(c);
    expect(a.ack).toBe(D);
    expect(a.options.sack).toEqual([
      { left: D + 3000, right: D + 4000 },
      { left: D + 3000, right: D + 5000 },
      { left: D + 1000, right: D + 2000 },
    ]);
    // Held data was not changed by the duplicate: filling both holes gives the exact stream.
    c.input(data(D, 1000), 40);
    c.input(data(D + 2000, 1000), 41);
    const bytes = c.read(10_000, 42);
    expect(bytes).toEqual(new Uint8Array(5000).map((_, i) => (D + i) & 0xff));
  });

  it('RFC 2883 4.1.3: a partial duplicate reports only the duplicate part and the new part is taken', () => {
    const c = established();
    c.input(data(D, 1000), 20);
    c.takeOutput();
    // Repacketized retransmission: 500 old bytes and 500 new ones.
    c.input(data(D + 500, 1000), 30);
    const a = onlyAck(c);
    expect(a.ack).toBe(D + 1500);
    expect(a.options.sack).toEqual([{ left: D + 500, right: D + 1000 }]);
    expect(c.read(10_000, 31)).toEqual(new Uint8Array(1500).map((_, i) => (D + i) & 0xff));
  });

  it('RFC 2883 4.1.2: an in-order segment that also covers held data reports the held part as duplicate', () => {
    const c = established();
    c.input(data(D + 1000, 1000), 20);
    c.takeOutput();
    // The sender retransmits [D, D+2000) as one segment: [D+1000, D+2000) was held already.
    c.input(data(D, 2000), 30);
    const a = onlyAck(c);
    expect(a.ack).toBe(D + 2000);
    expect(a.options.sack).toEqual([{ left: D + 1000, right: D + 2000 }]);
  });

  it('RFC 2883 4 / RFC 7323: with timestamps at most 3 blocks fit; the D-SACK block takes the first and the oldest SACK block goes', () => {
    const c = established({ timestamps: true });
    // Four held blocks, received in this order: D+1000, D+3000, D+5000, D+7000.
    for (const [i, off] of [1000, 3000, 5000, 7000].entries()) c.input(data(D + off, 500, 100 + i), 20 + i);
    c.takeOutput();
    c.input(data(D + 3000, 500, 200), 30);
    const a = onlyAck(c);
    expect(a.options.sack).toEqual([
      { left: D + 3000, right: D + 3500 },
      { left: D + 3000, right: D + 3500 },
      { left: D + 7000, right: D + 7500 },
    ]);
    expect(a.options.ts?.ecr).toBe(1); // the hole is still open: TS.Recent stays the SYN's (RFC 7323 4.3)
  });

  it('RFC 2883 4: a D-SACK rides on the first data segment sent after the duplicate, whose payload shrinks to fit the block', () => {
    const c = established();
    c.input(data(D, 1000), 20);
    c.takeOutput();
    c.write(new Uint8Array(40_000).fill(7), 25); // more than the initial window: some stays queued
    const sent = c.takeOutput();
    expect(sent.length).toBeGreaterThan(0);
    // A partly duplicate segment that also acknowledges our first segment: new data goes out at once.
    c.input(seg({ seq: D + 500, ack: 1001 + 1000, payload: new Uint8Array(1000).map((_, i) => (D + 500 + i) & 0xff) }), 30);
    const out = c.takeOutput();
    expect(out.length).toBeGreaterThan(0);
    expect(out[0]!.payload.length).toBe(1000 - (4 + 8));
    expect(out[0]!.ack).toBe(D + 1500);
    expect(out[0]!.options.sack).toEqual([{ left: D + 500, right: D + 1000 }]);
    for (const s of out.slice(1)) {
      expect(s.options.sack).toBeUndefined();
      expect(s.payload.length).toBe(1000);
    }
    expect(c.stats.dsacksSent).toBe(1);
  });

  it('RFC 2883 (negotiation): without SACK permitted no D-SACK block is sent; the duplicate is still acknowledged at once', () => {
    const c = established({ sack: false });
    c.input(data(D, 1000), 20);
    c.takeOutput();
    c.input(data(D, 1000), 30);
    const a = onlyAck(c);
    expect(a.ack).toBe(D + 1000);
    expect(a.options.sack).toBeUndefined();
    expect(c.stats.dsacksSent).toBe(0);
  });

  it('RFC 2883 / RFC 7323 5: a PAWS-rejected old duplicate is reported as a D-SACK', () => {
    const c = established({ timestamps: true });
    c.input(data(D, 1000, 100), 20);
    c.input(data(D + 1000, 1000, 101), 21);
    c.takeOutput();
    c.input(data(D, 1000, 50), 30); // an old copy, older timestamp
    const a = onlyAck(c);
    expect(c.stats.pawsDrops).toBe(1);
    expect(a.options.sack).toEqual([{ left: D, right: D + 1000 }]);
    expect(seqAdd(a.ack, 0)).toBe(D + 2000);
  });
});

/**
 * Replays both pipe logs in time order (a segment is logged when sent, before loss and delay):
 * each D-SACK block B sends (first block below its ACK, or inside its second block) must cover
 * bytes A had sent at least twice by then. Returns the number of D-SACK blocks and the violations.
 */
function dsacksAgainstSends(ab: Pipe, ba: Pipe): { dsacks: number; bad: string[] } {
  const iss = ab.log[0]!.seg.seq;
  const rel = (x: number): number => seqDiff(x, iss);
  const events = [...ab.log.map((e) => ({ ...e, fromA: true })), ...ba.log.map((e) => ({ ...e, fromA: false }))]
    .sort((x, y) => x.t - y.t || Number(y.fromA) - Number(x.fromA)); // same instant: the send first
  const once = new IntervalSet();
  const twice = new IntervalSet();
  let dsacks = 0;
  const bad: string[] = [];
  for (const { seg, fromA } of events) {
    if (fromA) {
      const len = seg.payload.length + (seg.flags & TCP_FIN ? 1 : 0);
      if (len > 0 && !(seg.flags & TCP_SYN)) for (const [a, b] of once.add(rel(seg.seq), rel(seg.seq) + len)) twice.add(a, b);
      continue;
    }
    const blocks = seg.options.sack;
    if (!blocks || blocks.length === 0) continue;
    const [l, r] = [rel(blocks[0]!.left), rel(blocks[0]!.right)];
    const second = blocks[1];
    const inside = second !== undefined && rel(second.left) <= l && r <= rel(second.right);
    if (!(r <= rel(seg.ack)) && !inside) continue;
    dsacks++;
    if (twice.coveredLength(l, r) !== r - l) bad.push(`[${l}, ${r})`);
  }
  return { dsacks, bad };
}

describe('D-SACK between two engines', () => {
  it('RFC 2883 (property, 30 seeds): every D-SACK block reports bytes the peer sent at least twice; streams exact', () => {
    let total = 0;
    for (let i = 0; i < 30; i++) {
      // Loss and reordering but no duplication: a duplicate at B can only be a retransmission.
      const imp = { loss: 0.04, reorder: 0.08, delayMs: 10, jitterMs: 3 };
      const p = new EnginePair({ seed: `dsack-${i}`, config: { timeWaitMs: 2000 }, bytesAtoB: 200_000, bytesBtoA: 20_000, impAtoB: imp, impBtoA: imp, keepLog: true });
      p.start();
      p.sim.runUntilIdle({ maxTimeMs: 600_000, maxEvents: 5_000_000 });
      expect(digestOf(p.appB.received)).toBe(digestOf(p.appA.source.hash));
      expect(digestOf(p.appA.received)).toBe(digestOf(p.appB.source.hash));
      const { dsacks, bad } = dsacksAgainstSends(p.ab, p.ba);
      expect(bad, `seed dsack-${i}`).toEqual([]);
      expect(dsacks).toBe(p.b!.conn.stats.dsacksSent);
      total += dsacks;
    }
    expect(total).toBeGreaterThan(30); // duplicates do happen here: the check above is not vacuous
  });
});
