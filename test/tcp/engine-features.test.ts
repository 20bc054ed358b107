/**
 * Feature-level checks of the engine, one RFC rule per test, driven segment by segment or over the
 * seeded pipe with a wire log.
 */
import { describe, expect, it } from 'vitest';
import { TcpConnection } from '../../src/tcp/connection.js';
import { TcpState } from '../../src/tcp/types.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, type TcpSegment } from '../../src/wire/tcp-segment.js';
import { seqAdd } from '../../src/wire/seq.js';
import { EnginePair, digestOf } from '../support/engine-pair.js';

const base = { timeWaitMs: 2000 };

function seg(p: Partial<TcpSegment>): TcpSegment {
  return { srcPort: 80, dstPort: 40000, seq: 0, ack: 0, flags: TCP_ACK, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0), ...p };
}

/** A connection established by hand (no options) so a test can feed exact segments. */
function established(cfg: Parameters<typeof TcpConnection.connect>[0]['config'] = {}): { c: TcpConnection; peerSeq: number } {
  const c = TcpConnection.connect({ config: { timestamps: false, sack: false, windowScaling: false, ...cfg }, localPort: 40000, remotePort: 80, iss: 1000, now: 0 });
  c.takeOutput();
  const peerIss = 5000;
  c.input(seg({ seq: peerIss, ack: 1001, flags: TCP_SYN | TCP_ACK, options: { mss: 1000 } }), 10);
  c.takeOutput();
  c.takeEvents();
  return { c, peerSeq: peerIss + 1 };
}

describe('engine features', () => {
  it('RFC 9293 3.5: simultaneous open reaches ESTABLISHED on both sides through SYN_RCVD', () => {
    const a = TcpConnection.connect({ config: base, localPort: 1, remotePort: 2, iss: 100, now: 0 });
    const b = TcpConnection.connect({ config: base, localPort: 2, remotePort: 1, iss: 900, now: 0 });
    const synA = a.takeOutput()[0];
    const synB = b.takeOutput()[0];
    a.input(synB, 1);
    b.input(synA, 1);
    expect(a.state).toBe(TcpState.SynRcvd);
    expect(b.state).toBe(TcpState.SynRcvd);
    const synAckA = a.takeOutput()[0];
    const synAckB = b.takeOutput()[0];
    expect(synAckA.flags).toBe(TCP_SYN | TCP_ACK);
    expect(synAckA.seq).toBe(100);
    a.input(synAckB, 2);
    b.input(synAckA, 2);
    expect(a.state).toBe(TcpState.Established);
    expect(b.state).toBe(TcpState.Established);
    expect(a.takeEvents()).toContainEqual({ type: 'connected' });
  });

  it('RFC 5961 5.2: an ACK for data never sent is answered with an ACK and dropped', () => {
    const { c, peerSeq } = established();
    c.write(new Uint8Array(100), 20);
    c.takeOutput();
    c.input(seg({ seq: peerSeq, ack: seqAdd(1001, 5000), payload: new Uint8Array([1, 2, 3]) }), 30);
    expect(c.sndUna).toBe(1001);
    expect(c.readable).toBe(0); // the data of the dropped segment was not accepted
    const out = c.takeOutput();
    expect(out.length).toBe(1);
    expect(out[0].flags).toBe(TCP_ACK);
    expect(out[0].ack).toBe(peerSeq);
  });

  it('RFC 7323 4: the RTT is measured from timestamp echoes (RTTM)', () => {
    const p = new EnginePair({ seed: 'rttm', config: base, bytesAtoB: 200_000, impAtoB: { delayMs: 30 }, impBtoA: { delayMs: 30 } });
    p.start();
    p.sim.runUntil(2000);
    const srtt = p.a.conn.srttMs!;
    expect(srtt).toBeGreaterThan(55);
    expect(srtt).toBeLessThan(110); // 60 ms path plus delayed-ACK and serialisation slack
  });

  it('RFC 5681 4.2 / RFC 1122 4.2.3.2: delayed ACK acknowledges every second full segment, else within the delay', () => {
    const { c, peerSeq } = established({ delayedAckMs: 200 });
    c.input(seg({ seq: peerSeq, ack: 1001, payload: new Uint8Array(1000) }), 20);
    expect(c.takeOutput()).toEqual([]);
    expect(c.nextDeadline()).toBe(220);
    c.input(seg({ seq: peerSeq + 1000, ack: 1001, payload: new Uint8Array(1000) }), 30);
    const acks = c.takeOutput();
    expect(acks.length).toBe(1);
    expect(acks[0].ack).toBe(peerSeq + 2000);
    c.input(seg({ seq: peerSeq + 2000, ack: 1001, payload: new Uint8Array(10) }), 40);
    expect(c.takeOutput()).toEqual([]);
    c.onTimer(240);
    expect(c.takeOutput()[0].ack).toBe(peerSeq + 2010);
  });

  it('RFC 5681 4.2: an out-of-order segment is acknowledged at once, with a SACK block when SACK is on (RFC 2018)', () => {
    const c = TcpConnection.connect({ config: { timestamps: false, windowScaling: false }, localPort: 40000, remotePort: 80, iss: 1000, now: 0 });
    c.takeOutput();
    c.input(seg({ seq: 5000, ack: 1001, flags: TCP_SYN | TCP_ACK, options: { mss: 1000, sackPermitted: true } }), 10);
    c.takeOutput();
    c.input(seg({ seq: 5001 + 1000, ack: 1001, payload: new Uint8Array(500) }), 20);
    const out = c.takeOutput();
    expect(out.length).toBe(1);
    expect(out[0].ack).toBe(5001);
    expect(out[0].options.sack).toEqual([{ left: 6001, right: 6501 }]);
    // Filling the hole is acknowledged at once too, cumulatively.
    c.input(seg({ seq: 5001, ack: 1001, payload: new Uint8Array(1000) }), 21);
    const fill = c.takeOutput();
    expect(fill.length).toBe(1);
    expect(fill[0].ack).toBe(6501);
    expect(fill[0].options.sack).toBeUndefined();
  });

  it('RFC 896: Nagle holds a small segment while data is unacknowledged; with Nagle off it goes at once', () => {
    for (const nagle of [true, false]) {
      const { c } = established({ nagle });
      c.write(new Uint8Array(10), 20);
      expect(c.takeOutput().length).toBe(1);
      c.write(new Uint8Array(10), 21);
      expect(c.takeOutput().length).toBe(nagle ? 0 : 1);
      c.input(seg({ seq: 5001, ack: 1011 }), 30);
      if (nagle) expect(c.takeOutput().map((s) => s.payload.length)).toEqual([10]);
    }
  });

  it('RFC 9293 3.8.6.2.1: the sender does not send a runt into a small window (SWS), the persist timer overrides it', () => {
    const { c } = established({ nagle: false });
    // Peer advertises a large window first (max window 8000), then only 100 bytes.
    c.input(seg({ seq: 5001, ack: 1001, window: 8000 }), 15);
    c.input(seg({ seq: 5001, ack: 1001, window: 100 }), 16);
    c.write(new Uint8Array(3000), 20);
    expect(c.takeOutput()).toEqual([]);
    const deadline = c.nextDeadline()!;
    c.onTimer(deadline);
    const out = c.takeOutput();
    expect(out.map((s) => s.payload.length)).toEqual([100]);
  });

  it('RFC 9293 3.8.6.2.2: the receiver does not open its window by less than an MSS (receiver SWS)', () => {
    const p = new EnginePair({ seed: 'rsws', config: { ...base, receiveBufferSize: 20_000, windowScaling: false }, bytesAtoB: 100_000, keepLog: true, impAtoB: { delayMs: 5 }, impBtoA: { delayMs: 5 } });
    p.appB.readChunk = 100; // a slow reader: 100 bytes per readable event
    p.start();
    p.sim.runUntilIdle({ maxTimeMs: 600_000 });
    expect(digestOf(p.appB.received)).toBe(digestOf(p.appA.source.hash));
    // Every window B advertised is 0 or at least one MSS, except right at the end of the stream.
    const small = p.ba.log.filter(({ seg: s }) => s.window > 0 && s.window < 1000 && !(s.flags & (TCP_SYN | TCP_FIN)));
    expect(small.length).toBe(0);
  });

  it('RFC 9293: data with PSH is flagged on the last segment of each write burst', () => {
    const { c } = established({ nagle: false });
    c.write(new Uint8Array(2500), 20);
    const out = c.takeOutput();
    expect(out.map((s) => s.payload.length)).toEqual([1000, 1000, 500]);
    expect(out.map((s) => (s.flags & TCP_PSH) !== 0)).toEqual([false, false, true]);
  });

  it('RFC 6298 5.7 / Karn: a retransmitted segment gives no RTT sample without timestamps', () => {
    const { c } = established();
    const before = c.srttMs;
    c.write(new Uint8Array(100), 20);
    c.takeOutput();
    c.onTimer(c.nextDeadline()!); // RTO: retransmit
    expect(c.takeOutput().length).toBe(1);
    c.input(seg({ seq: 5001, ack: 1101 }), 5000);
    expect(c.srttMs).toBe(before); // SYN-ACK sample only; the ambiguous one was not taken
  });
});

describe('engine settings an offload target needs', () => {
  it('chimney R76: the segment containing the end of each write carries PSH, also when writes queue behind the window', () => {
    const { c } = established({ nagle: false });
    c.input(seg({ seq: 5001, ack: 1001, window: 0 }), 15); // window closed: writes queue up
    c.write(new Uint8Array(1500), 20);
    c.write(new Uint8Array(700), 21);
    c.write(new Uint8Array(300), 22);
    expect(c.takeOutput().filter((s) => s.payload.length > 0)).toEqual([]);
    c.input(seg({ seq: 5001, ack: 1001, window: 10000 }), 30);
    const out = c.takeOutput().filter((s) => s.payload.length > 0);
    // 2500 bytes in MSS-sized segments: [0,1000) [1000,2000) [2000,2500); write ends at 1500, 2200, 2500.
    expect(out.map((s) => [s.seq - 1001, s.payload.length, (s.flags & TCP_PSH) !== 0])).toEqual([[0, 1000, false], [1000, 1000, true], [2000, 500, true]]);
  });

  it('TcpAckFrequency: with ackFrequency 1 every full segment is acknowledged at once', () => {
    const { c, peerSeq } = established({ ackFrequency: 1, delayedAckMs: 200 });
    c.input(seg({ seq: peerSeq, ack: 1001, payload: new Uint8Array(1000) }), 20);
    expect(c.takeOutput().map((s) => s.ack)).toEqual([peerSeq + 1000]);
  });

  it('chimney MaxRT: retransmission gives up by total time instead of count; MAX_RT_RESTART restarts the clock', () => {
    const run = (restartAt: number | undefined): number => {
      const { c } = established({ maxRetransmitTimeMs: 2500, maxRetransmissions: 100, onTimeout: 'report' });
      c.write(new Uint8Array(100), 20);
      c.takeOutput();
      for (let i = 0; i < 20; i++) {
        const t = c.nextDeadline()!;
        c.onTimer(t);
        if (restartAt !== undefined && t >= restartAt) {
          c.updateSettings({ resetTotalRetransmitTime: true }, t);
          restartAt = undefined;
        }
        if (c.takeEvents().some((e) => e.type === 'timeout')) return t;
      }
      return -1;
    };
    // RTO 200 ms after the SYN-ACK sample: retransmissions at 220, 620, 1420, 3020, 6220 ms; TotalRT
    // counts from the first (220). Without a restart 3020 - 220 >= 2500 ends it; restarted at 1420,
    // 3020 - 1420 is below the limit and it ends at 6220.
    expect(run(undefined)).toBe(3020);
    expect(run(1420)).toBe(6220);
  });
});
