import { describe, expect, it } from 'vitest';
import { TcpConnection } from '../../src/tcp/connection.js';
import { TcpState } from '../../src/tcp/types.js';
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpSegment } from '../../src/wire/tcp-segment.js';
import { seqAdd } from '../../src/wire/seq.js';
import { EnginePair, digestOf } from '../support/engine-pair.js';

function run(p: EnginePair, untilMs = 600_000): void {
  p.sim.runUntilIdle({ maxTimeMs: untilMs, maxEvents: 20_000_000 });
}

const fastClose = { timeWaitMs: 2000 };

/** Two engines 20 ms apart, both closing at t=200 ms: the FINs cross (CLOSING on both sides at 230). */
function simultaneousClose(seed: string): EnginePair {
  const p = new EnginePair({ seed, config: fastClose, closeWhenDone: false, impAtoB: { delayMs: 20 }, impBtoA: { delayMs: 20 } });
  p.start();
  p.sim.runUntil(200);
  p.a.run((c, now) => c.close(now));
  p.b!.run((c, now) => c.close(now));
  return p;
}

describe('TCP engine over a segment pipe', () => {
  it('RFC 9293: three-way handshake negotiates MSS, window scale, SACK and timestamps', () => {
    const p = new EnginePair({ seed: 'hs', config: { ...fastClose, mss: 1460, receiveBufferSize: 1 << 20 }, keepLog: true, closeWhenDone: false });
    p.start();
    p.sim.runUntil(100);
    expect(p.a.conn.state).toBe(TcpState.Established);
    expect(p.b!.conn.state).toBe(TcpState.Established);
    const syn = p.ab.log[0].seg;
    expect(syn.flags).toBe(TCP_SYN);
    expect(syn.options).toMatchObject({ mss: 1460, wscale: 5, sackPermitted: true });
    expect(syn.options.ts?.ecr).toBe(0);
    const synAck = p.ba.log[0].seg;
    expect(synAck.flags).toBe(TCP_SYN | TCP_ACK);
    expect(synAck.ack).toBe(seqAdd(syn.seq, 1));
    expect(synAck.options.ts?.ecr).toBe(syn.options.ts?.val);
    expect(p.a.conn.windowScales).toEqual({ snd: 5, rcv: 5 });
    expect(p.a.conn.timestampsEnabled && p.a.conn.sackEnabledNegotiated).toBe(true);
    expect(p.a.conn.mss).toBe(1460 - 12);
  });

  it('RFC 9293: options off on one side are off for both', () => {
    const p = new EnginePair({ seed: 'hs2', config: fastClose, configB: { timestamps: false, sack: false, windowScaling: false } });
    p.start();
    p.sim.runUntil(100);
    expect(p.a.conn.timestampsEnabled).toBe(false);
    expect(p.a.conn.sackEnabledNegotiated).toBe(false);
    expect(p.a.conn.windowScales).toEqual({ snd: 0, rcv: 0 });
    expect(p.a.conn.mss).toBe(1460);
  });

  it('RFC 9293: transfers 3 MB each way at once and closes gracefully (digests equal)', () => {
    const p = new EnginePair({ seed: 'bulk', config: fastClose, bytesAtoB: 3_000_000, bytesBtoA: 3_000_000, impAtoB: { delayMs: 5 }, impBtoA: { delayMs: 5 } });
    p.start();
    run(p);
    expect(p.appB.receivedBytes).toBe(3_000_000);
    expect(p.appA.receivedBytes).toBe(3_000_000);
    expect(digestOf(p.appB.received)).toBe(digestOf(p.appA.source.hash));
    expect(digestOf(p.appA.received)).toBe(digestOf(p.appB.source.hash));
    expect(p.appA.closed && p.appB.closed).toBe(true);
    expect(p.appA.error).toBeUndefined();
    expect(p.appB.error).toBeUndefined();
    expect(p.a.conn.state).toBe(TcpState.Closed);
    expect(p.a.conn.stats.retransmittedSegments).toBe(0);
    expect(p.a.conn.nextDeadline()).toBeUndefined();
  });

  it('RFC 6675/5681: recovers from 5 % loss with reordering and duplication, streams exact', () => {
    const imp = { loss: 0.05, reorder: 0.05, duplicate: 0.02, delayMs: 10, jitterMs: 2 };
    const p = new EnginePair({ seed: 'lossy', config: fastClose, bytesAtoB: 1_000_000, bytesBtoA: 500_000, impAtoB: imp, impBtoA: imp });
    p.start();
    run(p);
    expect(digestOf(p.appB.received)).toBe(digestOf(p.appA.source.hash));
    expect(digestOf(p.appA.received)).toBe(digestOf(p.appB.source.hash));
    expect(p.a.conn.stats.retransmittedSegments).toBeGreaterThan(0);
    expect(p.a.conn.stats.fastRetransmits).toBeGreaterThan(0);
    expect(p.appA.closed && p.appB.closed).toBe(true);
  });

  it('RFC 6582: NewReno without SACK recovers from loss, streams exact', () => {
    const imp = { loss: 0.03, delayMs: 10 };
    const p = new EnginePair({ seed: 'newreno', config: { ...fastClose, sack: false, congestionControl: 'newreno' }, bytesAtoB: 800_000, impAtoB: imp, impBtoA: imp });
    p.start();
    run(p);
    expect(digestOf(p.appB.received)).toBe(digestOf(p.appA.source.hash));
    expect(p.a.conn.stats.fastRetransmits).toBeGreaterThan(0);
  });

  it('RFC 9293: simultaneous close passes through CLOSING to TIME_WAIT on both sides', () => {
    const p = simultaneousClose('simclose');
    p.sim.runUntil(230); // both FINs crossed: each side ACKed the other's FIN, ACKs in flight
    expect(p.a.conn.state).toBe(TcpState.Closing);
    expect(p.b!.conn.state).toBe(TcpState.Closing);
    p.sim.runUntil(250);
    expect(p.a.conn.state).toBe(TcpState.TimeWait);
    expect(p.b!.conn.state).toBe(TcpState.TimeWait);
    expect(p.appA.events.some((e) => e.type === 'time-wait')).toBe(true);
    run(p);
    expect(p.a.conn.state).toBe(TcpState.Closed);
    expect(p.b!.conn.state).toBe(TcpState.Closed);
  });

  it('RFC 1337: an RST in TIME_WAIT (the peer closed and answers a late ACK) is ignored: no reset, the TIME_WAIT ends by its timer', () => {
    const p = simultaneousClose('tw-rst');
    p.sim.runUntil(300);
    expect(p.a.conn.state).toBe(TcpState.TimeWait);
    const c = p.a.conn;
    const rst: TcpSegment = { srcPort: p.b!.conn.localPort, dstPort: c.localPort, seq: c.rcvNxt, ack: 0, flags: TCP_RST, window: 0, urgent: 0, options: {}, payload: new Uint8Array(0) };
    p.a.input(rst);
    expect(c.state).toBe(TcpState.TimeWait);
    expect(p.appA.events.filter((e) => e.type === 'closed')).toEqual([]);
    run(p);
    expect(c.state).toBe(TcpState.Closed);
    expect(p.appA.events.filter((e) => e.type === 'closed')).toEqual([{ type: 'closed' }]);
  });

  it('RFC 9293: abort sends RST and the peer reports ECONNRESET', () => {
    const p = new EnginePair({ seed: 'rst', config: fastClose, closeWhenDone: false, bytesAtoB: 100_000 });
    p.start();
    p.sim.runUntil(50);
    p.a.run((c, now) => c.abort(now));
    run(p);
    expect(p.appB.error).toBe('ECONNRESET');
    expect(p.b!.conn.state).toBe(TcpState.Closed);
  });

  it('RFC 9293: a SYN to a closed port is answered by RST and the client reports ECONNREFUSED', () => {
    const syn: TcpSegment = { srcPort: 1, dstPort: 2, seq: 1000, ack: 0, flags: TCP_SYN, window: 100, urgent: 0, options: {}, payload: new Uint8Array(0) };
    const rst = TcpConnection.resetFor(syn)!;
    expect(rst.flags).toBe(TCP_RST | TCP_ACK);
    expect(rst.ack).toBe(1001);
    const c = TcpConnection.connect({ localPort: 1, remotePort: 2, iss: 999, now: 0 });
    const out = c.takeOutput()[0];
    c.input({ ...TcpConnection.resetFor(out)!, srcPort: 2, dstPort: 1 }, 1);
    expect(c.state).toBe(TcpState.Closed);
    expect(c.takeEvents()).toContainEqual({ type: 'closed', error: 'ECONNREFUSED' });
  });

  it('RFC 5961: an in-window RST with the wrong sequence number gets a challenge ACK, not a reset', () => {
    const p = new EnginePair({ seed: '5961', config: fastClose, closeWhenDone: false });
    p.start();
    p.sim.runUntil(50);
    const b = p.b!.conn;
    const before = b.stats.challengeAcks;
    const bogus: TcpSegment = { srcPort: 40000, dstPort: 80, seq: seqAdd(b.rcvNxt, 10), ack: 0, flags: TCP_RST, window: 0, urgent: 0, options: {}, payload: new Uint8Array(0) };
    p.b!.input(bogus);
    expect(b.state).toBe(TcpState.Established);
    expect(b.stats.challengeAcks).toBe(before + 1);
    // An in-window SYN also gets a challenge ACK (rate-limited: advance time first).
    p.sim.runUntil(2000);
    p.b!.input({ ...bogus, flags: TCP_SYN });
    expect(b.state).toBe(TcpState.Established);
    expect(b.stats.challengeAcks).toBe(before + 2);
    // The exact sequence number resets.
    p.b!.input({ ...bogus, seq: b.rcvNxt });
    expect(b.state).toBe(TcpState.Closed);
  });

  it('RFC 7323: PAWS drops a segment with an old timestamp', () => {
    const p = new EnginePair({ seed: 'paws', config: fastClose, closeWhenDone: false });
    p.start();
    p.sim.runUntil(50);
    const b = p.b!.conn;
    const old: TcpSegment = { srcPort: 40000, dstPort: 80, seq: b.rcvNxt, ack: b.sndNxt, flags: TCP_ACK, window: 1000, urgent: 0, options: { ts: { val: 1, ecr: 0 } }, payload: new Uint8Array([1, 2, 3]) };
    // Make sure TS.Recent is far from 1 (it is a random offset).
    p.b!.input(old);
    expect(b.stats.pawsDrops + (b.readable === 3 ? 1 : 0)).toBe(1);
  });

  it('RFC 9293 3.8.6.1: a zero window is probed until the reader resumes, stream exact', () => {
    const p = new EnginePair({ seed: 'zwp', config: { ...fastClose, receiveBufferSize: 16384 }, bytesAtoB: 200_000, impAtoB: { delayMs: 5 }, impBtoA: { delayMs: 5 } });
    p.appB.paused = true;
    p.start();
    p.sim.runUntil(5000);
    expect(p.b!.conn.readable).toBe(16384);
    expect(p.a.conn.sndWnd).toBe(0);
    expect(p.a.conn.stats.windowProbes).toBeGreaterThan(0);
    p.appB.paused = false;
    p.drain(p.b!, p.appB);
    run(p);
    expect(digestOf(p.appB.received)).toBe(digestOf(p.appA.source.hash));
  });

  it('RFC 1122 4.2.3.6: keepalive probes an idle peer and declares it dead after the probe count', () => {
    const ka = { enabled: true, idleMs: 1000, intervalMs: 500, probes: 3 };
    const p = new EnginePair({ seed: 'ka', config: { ...fastClose, keepalive: ka }, closeWhenDone: false });
    p.start();
    p.sim.runUntil(3000);
    expect(p.a.conn.stats.keepaliveProbes).toBeGreaterThan(0);
    expect(p.a.conn.state).toBe(TcpState.Established); // answered probes keep it alive
    p.ba.imp = { loss: 1 };
    p.ab.imp = { loss: 1 };
    run(p, 60_000);
    expect(p.appA.error).toBe('ETIMEDOUT');
    expect(p.appA.events).toContainEqual({ type: 'timeout', reason: 'keepalive' });
  });

  it('RFC 6298: retransmissions back off and the connection times out when the path dies', () => {
    const p = new EnginePair({ seed: 'rto', config: { ...fastClose, maxRetransmissions: 5 }, closeWhenDone: false });
    p.start();
    p.sim.runUntil(30);
    p.ab.imp = { loss: 1 };
    p.a.run((c, now) => c.write(new Uint8Array(5000), now));
    const rtoBefore = p.a.conn.rtoMs;
    p.sim.runUntil(30 + rtoBefore + 1);
    expect(p.a.conn.retransmitCount).toBe(1);
    expect(p.a.conn.rtoMs).toBe(Math.min(2 * rtoBefore, 120_000));
    run(p, 600_000);
    expect(p.appA.error).toBe('ETIMEDOUT');
    expect(p.a.conn.stats.timeouts).toBe(6);
  });
});
