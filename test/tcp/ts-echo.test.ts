/**
 * RFC 7323 TS.Recent for a retransmission of the last acknowledged segment (its ACK was lost): the
 * ACK echoes the retransmission's TSval, as Linux does, not the stale TS.Recent. Echoing the stale
 * one made a Linux sender take the whole retransmission timeout as an RTT sample and back off to
 * ~10 s (issue 5 interop under 2 % loss).
 */
import { describe, expect, it } from 'vitest';
import { TcpConnection } from '../../src/tcp/connection.js';
import { TCP_ACK, TCP_SYN, type TcpSegment } from '../../src/wire/tcp-segment.js';

const PEER_ISS = 5000;
const D = PEER_ISS + 1;

function seg(p: Partial<TcpSegment>): TcpSegment {
  return { srcPort: 80, dstPort: 40000, seq: 0, ack: 1001, flags: TCP_ACK, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0), ...p };
}

function established(): TcpConnection {
  const c = TcpConnection.connect({ config: { timestamps: true, sack: true, windowScaling: false, mss: 1000, delayedAckMs: 0 }, localPort: 40000, remotePort: 80, iss: 1000, now: 0 });
  c.takeOutput();
  c.input(seg({ seq: PEER_ISS, flags: TCP_SYN | TCP_ACK, options: { mss: 1000, sackPermitted: true, ts: { val: 1, ecr: 0 } } }), 10);
  c.takeOutput();
  return c;
}

const data = (seq: number, val: number, len = 1000): TcpSegment => seg({ seq, payload: new Uint8Array(len), options: { ts: { val, ecr: 1 } } });

describe('TS.Recent and retransmitted duplicates', () => {
  it('RFC 7323 4.3 (as Linux applies it): the retransmission of the last acknowledged segment updates TS.Recent; its ACK echoes the new TSval', () => {
    const c = established();
    c.input(data(D, 100), 20);
    expect(c.takeOutput().at(-1)?.options.ts?.ecr).toBe(100);
    c.input(data(D, 5000), 5000); // the same segment again, 5 s later (our ACK was lost)
    const ack = c.takeOutput().at(-1)!;
    expect(ack.ack).toBe(D + 1000);
    expect(ack.options.ts?.ecr).toBe(5000);
  });

  it('RFC 7323 4.3: an older duplicate (not covering our last ACK) leaves TS.Recent alone', () => {
    const c = established();
    c.input(data(D, 100), 20);
    c.input(data(D + 1000, 200), 30);
    c.takeOutput();
    c.input(data(D, 5000), 5000); // ends below Last.ACK.sent (D + 2000)
    expect(c.takeOutput().at(-1)?.options.ts?.ecr).toBe(200);
  });
});
