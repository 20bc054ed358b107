/**
 * Receive path and delivery-algorithm requirements R89-R110 at the core level (CoreBench): the
 * delivery algorithm itself is unit-tested in test/chimney/delivery.test.ts; these check the same
 * rules through host messages and the wire.
 */
import { describe, expect, it } from 'vitest';
import { CoreBench, benchTcp, seqBytes, sha } from '../support/chimney-sim.js';
import { Status } from '../../src/chimney/status.js';
import { TcpEventType } from '../../src/chimney/state.js';
import type { TargetMessage } from '../../src/ipc/messages.js';
import { TCP_ACK, TCP_FIN, TCP_PSH } from '../../src/wire/tcp-segment.js';

type Msg<K extends TargetMessage['type']> = Extract<TargetMessage, { type: K }>;

function only<K extends TargetMessage['type']>(msgs: TargetMessage[], type: K): Array<Msg<K>> {
  return msgs.filter((m) => m.type === type) as Array<Msg<K>>;
}

function recv(msgs: TargetMessage[]): Array<[number, number, number, string]> {
  return only(msgs, 'TcpReceiveComplete').flatMap((m) => m.entries.map((e) => [e.requestId, e.status, e.bytesTransferred, sha(e.bytes)] as [number, number, number, string]));
}

function data(b: CoreBench, seq: number, n: number, push = false): void {
  b.peer({ seq, ack: 1000, payload: seqBytes(seq, n), flags: TCP_ACK | (push ? TCP_PSH : 0) });
}

function post(b: CoreBench, requestId: number, capacity: number, noPush = false): void {
  b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId, capacity, noPush }] });
}

function bench(over: Parameters<typeof benchTcp>[0] = {}): CoreBench {
  const b = new CoreBench();
  b.initiate(benchTcp(over));
  b.take();
  b.takeWire();
  return b;
}

describe('receive requirements (spec 4, R89-R110)', () => {
  it('R89/R90/R96/R107: requests filled in sequence order and completed at once when full; the surplus is indicated', () => {
    const b = bench();
    b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId: 1, capacity: 100, noPush: false }, { requestId: 2, capacity: 100, noPush: true }] });
    data(b, 5000, 250);
    const msgs = b.take();
    expect(recv(msgs)).toEqual([[1, Status.SUCCESS, 100, sha(seqBytes(5000, 100))], [2, Status.SUCCESS, 100, sha(seqBytes(5100, 100))]]);
    expect(only(msgs, 'TcpReceiveIndicate').map((i) => sha(i.bytes))).toEqual([sha(seqBytes(5200, 50))]);
    expect(msgs.map((m) => m.type)).toEqual(['TcpReceiveComplete', 'TcpReceiveIndicate']);
  });

  it('R91/R93: a partly filled push request completes on PSH at once, else when the push timer (TcpPushTicks) fires, restarted by new data', () => {
    const b = bench();
    post(b, 1, 1000);
    data(b, 5000, 100);
    b.advance(300);
    expect(b.take()).toEqual([]);
    data(b, 5100, 50); // restarts the 500 ms push timer
    b.advance(499);
    expect(b.take()).toEqual([]);
    b.advance(1);
    expect(recv(b.take())).toEqual([[1, Status.SUCCESS, 150, sha(seqBytes(5000, 150))]]);
    post(b, 2, 1000);
    data(b, 5150, 10, true);
    expect(recv(b.take())).toEqual([[2, Status.SUCCESS, 10, sha(seqBytes(5150, 10))]]);
  });

  it('R92: a nonpush request completes only when full, whatever PSH and time say', () => {
    const b = bench();
    post(b, 1, 200, true);
    data(b, 5000, 100, true);
    b.advance(10_000);
    expect(b.take()).toEqual([]);
    data(b, 5100, 100, false);
    expect(recv(b.take())).toEqual([[1, Status.SUCCESS, 200, sha(seqBytes(5000, 200))]]);
  });

  it('R94/R95/R99: no second indication while one is unanswered; data and posts arriving meanwhile are handled after it, in order', () => {
    const b = bench();
    data(b, 5000, 100);
    const i1 = only(b.take(), 'TcpReceiveIndicate');
    expect(i1).toHaveLength(1);
    data(b, 5100, 100);
    post(b, 1, 150);
    data(b, 5200, 100);
    expect(b.take()).toEqual([]);
    b.host({ type: 'IndicateReply', indicationId: i1[0].indicationId, status: Status.SUCCESS, bytesConsumed: 100 });
    const msgs = b.take();
    // The post fills from the first deferred segment, then the next; the rest is indicated.
    expect(recv(msgs)).toEqual([[1, Status.SUCCESS, 150, sha(seqBytes(5100, 150))]]);
    expect(only(msgs, 'TcpReceiveIndicate').map((i) => sha(i.bytes))).toEqual([sha(seqBytes(5250, 50))]);
  });

  it('R97/R101/R103: after a refusal data is held and later data piles up silently; a zero-byte post completes and re-enables the indication', () => {
    const b = bench();
    data(b, 5000, 100);
    const i1 = only(b.take(), 'TcpReceiveIndicate')[0];
    b.host({ type: 'IndicateReply', indicationId: i1.indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
    data(b, 5100, 100);
    b.advance(5000);
    expect(b.take()).toEqual([]);
    post(b, 1, 0);
    const msgs = b.take();
    expect(recv(msgs)).toEqual([[1, Status.SUCCESS, 0, sha(new Uint8Array(0))]]);
    expect(sha(Buffer.concat(only(msgs, 'TcpReceiveIndicate').map((i) => i.bytes)))).toBe(sha(seqBytes(5000, 200)));
  });

  it('R98/R102: after a partial acceptance exactly BytesConsumed bytes count as delivered; a post takes the rest first, the surplus is indicated', () => {
    const b = bench();
    data(b, 5000, 100);
    const i1 = only(b.take(), 'TcpReceiveIndicate')[0];
    b.host({ type: 'IndicateReply', indicationId: i1.indicationId, status: Status.OFFLOAD_DATA_PARTIALLY_ACCEPTED, bytesConsumed: 30 });
    data(b, 5100, 100);
    expect(b.take()).toEqual([]);
    post(b, 1, 120);
    const msgs = b.take();
    expect(recv(msgs)).toEqual([[1, Status.SUCCESS, 120, sha(seqBytes(5030, 120))]]);
    expect(only(msgs, 'TcpReceiveIndicate').map((i) => sha(i.bytes))).toEqual([sha(seqBytes(5150, 50))]);
  });

  it('R100/R105: an accepted indication buffer is the host\'s until receive-return, returned exactly once', () => {
    const b = bench();
    data(b, 5000, 100);
    const i1 = only(b.take(), 'TcpReceiveIndicate')[0];
    b.host({ type: 'IndicateReply', indicationId: i1.indicationId, status: Status.SUCCESS, bytesConsumed: 100 });
    expect(b.core.ledger.isLent(i1.bufferId)).toBe(true);
    data(b, 5100, 100);
    const i2 = only(b.take(), 'TcpReceiveIndicate')[0];
    expect(i2.bufferId).not.toBe(i1.bufferId);
    b.host({ type: 'TcpReceiveReturn', bufferIds: [i1.bufferId] });
    expect(b.take()).toEqual([]);
    expect(b.core.ledger.isLent(i1.bufferId)).toBe(false);
    b.host({ type: 'TcpReceiveReturn', bufferIds: [i1.bufferId] });
    expect(only(b.take(), 'Error').map((e) => e.status)).toEqual([Status.IPC_UNKNOWN_BUFFER]);
  });

  it('R104: indications carry RcvIndicationSize bytes when it is set, everything when it is zero', () => {
    const b = bench({ rcvIndicationSize: 40 });
    data(b, 5000, 100);
    const i1 = only(b.take(), 'TcpReceiveIndicate');
    expect(i1.map((i) => sha(i.bytes))).toEqual([sha(seqBytes(5000, 40))]);
    const c = bench();
    data(c, 5000, 100);
    expect(only(c.take(), 'TcpReceiveIndicate').map((i) => sha(i.bytes))).toEqual([sha(seqBytes(5000, 100))]);
  });

  it('R106/R110: the disconnect indication waits until data before the FIN is consumed; later posts complete INVALID_STATE', () => {
    const b = bench();
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 100), flags: TCP_ACK | TCP_FIN });
    const i1 = only(b.take(), 'TcpReceiveIndicate')[0];
    b.host({ type: 'IndicateReply', indicationId: i1.indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
    expect(only(b.take(), 'TcpEvent')).toEqual([]);
    post(b, 1, 100);
    const msgs = b.take();
    expect(msgs.map((m) => m.type)).toEqual(['TcpReceiveComplete', 'TcpEvent']);
    expect(recv(msgs)).toEqual([[1, Status.SUCCESS, 100, sha(seqBytes(5000, 100))]]);
    expect(only(msgs, 'TcpEvent').map((e) => [e.eventType, e.info])).toEqual([[TcpEventType.Disconnect, 0]]);
    post(b, 2, 100);
    expect(recv(b.take())).toEqual([[2, Status.INVALID_STATE, 0, sha(new Uint8Array(0))]]);
  });

  it('R108: received data is acknowledged at once every second full-sized segment, otherwise after TcpDelayedAckTicks', () => {
    const b = bench();
    post(b, 1, 10_000, true);
    data(b, 5000, 1460);
    expect(b.takeWire()).toEqual([]);
    data(b, 6460, 1460);
    expect(b.takeWire().map((w) => w.seg.ack)).toEqual([7920]);
    data(b, 7920, 100);
    b.advance(39);
    expect(b.takeWire()).toEqual([]);
    b.advance(1);
    expect(b.takeWire().map((w) => w.seg.ack)).toEqual([8020]);
    // Small segments are not full-sized: they wait for the delayed-ACK timer too.
    data(b, 8020, 100);
    data(b, 8120, 100);
    b.advance(39);
    expect(b.takeWire()).toEqual([]);
    b.advance(1);
    expect(b.takeWire().map((w) => w.seg.ack)).toEqual([8220]);
  });

  it('R109: held bytes shrink the advertised window; data beyond it is not acknowledged', () => {
    const b = bench({ initialRcvWnd: 1000, rcvWnd: 1000 });
    data(b, 5000, 600);
    const i1 = only(b.take(), 'TcpReceiveIndicate')[0];
    b.host({ type: 'IndicateReply', indicationId: i1.indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
    data(b, 5600, 100);
    b.advance(40);
    const w = b.takeWire();
    expect(w.at(-1)!.seg.ack).toBe(5700);
    expect(w.at(-1)!.seg.window).toBe(300);
    data(b, 5700, 400); // 100 bytes beyond the window
    b.advance(1000);
    expect(Math.max(...b.wire.map((x) => x.seg.ack))).toBeLessThanOrEqual(6000);
    post(b, 1, 2000, true);
    const held = recv(b.take());
    expect(held).toEqual([]);
    // Everything acknowledged was kept, nothing beyond: the terminate returns exactly that.
    const op = b.terminate();
    const done = only(b.all, 'TerminateOffloadComplete').find((m) => m.opId === op)!;
    const d = done.results.find((r) => r.blockId === 92)!.tcp!.delegated!;
    const completed = only(b.all, 'TcpReceiveComplete').flatMap((m) => m.entries.map((e) => e.bytes));
    const all = Buffer.concat([...completed, ...(d.bufferedBuffers ?? []).map((x) => x.bytes)]);
    expect(sha(all)).toBe(sha(seqBytes(5000, d.rcvNxt - 5000)));
    expect(d.rcvNxt).toBeLessThanOrEqual(6000);
  });
});
