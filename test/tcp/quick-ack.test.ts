/**
 * Quick ACKs after a chimney hand-over (config `quickAcksAfterImport`, used by the host after a
 * terminate): the peer may be recovering from cwnd 1 after the R18 renege, so the first data after
 * the import is acknowledged at once instead of after the delayed-ACK timer.
 */
import { describe, expect, it } from 'vitest';
import { TcpConnection } from '../../src/tcp/connection.js';
import { TCP_ACK, TCP_SYN, type TcpSegment } from '../../src/wire/tcp-segment.js';

const PEER_ISS = 5000;
const D = PEER_ISS + 1;

function seg(p: Partial<TcpSegment>): TcpSegment {
  return { srcPort: 80, dstPort: 40000, seq: 0, ack: 1001, flags: TCP_ACK, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0), ...p };
}

function data(seq: number, len: number): TcpSegment {
  return seg({ seq, payload: new Uint8Array(len).fill(seq & 0xff) });
}

/** An established connection exported and imported again, with or without the private part. */
function handedOver(quickAcksAfterImport: number, includePrivate: boolean): TcpConnection {
  const config = { timestamps: false, sack: true, windowScaling: false, mss: 1000, delayedAckMs: 40, ackFrequency: 2 };
  const c = TcpConnection.connect({ config, localPort: 40000, remotePort: 80, iss: 1000, now: 0 });
  c.takeOutput();
  c.input(seg({ seq: PEER_ISS, flags: TCP_SYN | TCP_ACK, options: { mss: 1000, sackPermitted: true } }), 10);
  c.takeOutput();
  const exp = c.export(20, { msPerTick: 1, includePrivate });
  return TcpConnection.import(exp, { config: { ...config, quickAcksAfterImport }, localPort: 40000, remotePort: 80, now: 20, msPerTick: 1 });
}

/** One small in-order segment at a time; returns whether each was acknowledged at once. */
function immediate(c: TcpConnection, n: number): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) {
    c.input(data(D + i * 100, 100), 30 + i * 100); // 100 ms apart: a pending delayed ACK has gone
    out.push(c.takeOutput().some((s) => s.ack === D + (i + 1) * 100));
    c.onTimer(30 + i * 100 + 50);
    c.takeOutput();
  }
  return out;
}

describe('quick ACKs after a hand-over', () => {
  it('RFC 5681 4.2 (delayed ACK) relaxed after a chimney import: the first quickAcksAfterImport data segments are acknowledged at once, then delayed again', () => {
    expect(immediate(handedOver(3, false), 5)).toEqual([true, true, true, false, false]);
  });

  it('no quick ACKs by default (R108 at the target), nor after an exact move with the private part', () => {
    expect(immediate(handedOver(0, false), 3)).toEqual([false, false, false]);
    expect(immediate(handedOver(3, true), 3)).toEqual([false, false, false]);
  });
});
