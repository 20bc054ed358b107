/**
 * Update, query and invalidate requirements R57-R66 on the target core (CoreBench).
 */
import { describe, expect, it } from 'vitest';
import { CoreBench, PEER_MAC, benchNeighbor, benchTcp, seqBytes, sha } from '../support/chimney-sim.js';
import { Status } from '../../src/chimney/status.js';
import { TCP_CACHED_FLAG, TcpEventType, UploadReason, type RefBlock, type TcpCached } from '../../src/chimney/state.js';
import type { TargetMessage } from '../../src/ipc/messages.js';
import { TCP_ACK, TCP_PSH } from '../../src/wire/tcp-segment.js';
import { mac } from '../../src/wire/addresses.js';

type Msg<K extends TargetMessage['type']> = Extract<TargetMessage, { type: K }>;

function only<K extends TargetMessage['type']>(msgs: TargetMessage[], type: K): Array<Msg<K>> {
  return msgs.filter((m) => m.type === type) as Array<Msg<K>>;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function cachedOf(b: CoreBench, over: Partial<TcpCached>): TcpCached {
  return { ...b.core.connections()[0].cached, ...over };
}

function update(b: CoreBench, blocks: RefBlock[]): Msg<'UpdateOffloadComplete'> {
  const opId = b.opId();
  b.host({ type: 'UpdateOffload', opId, blocks });
  const done = only(b.all, 'UpdateOffloadComplete').filter((m) => m.opId === opId);
  expect(done).toHaveLength(1);
  return done[0];
}

function query(b: CoreBench, blocks: RefBlock[]): Msg<'QueryOffloadComplete'> {
  const opId = b.opId();
  b.host({ type: 'QueryOffload', opId, blocks });
  const done = only(b.all, 'QueryOffloadComplete').filter((m) => m.opId === opId);
  expect(done).toHaveLength(1);
  return done[0];
}

function send(b: CoreBench, ctx: number, requestId: number, seq: number, n: number): void {
  b.host({ type: 'TcpSend', ctx, buffers: [{ requestId, bytes: seqBytes(seq, n) }] });
}

describe('update, query, invalidate requirements (spec 2.2-2.4, R57-R66)', () => {
  it('R57: updates change CACHED values only: TTL/TOS, next-hop MAC and path MTU take effect, CONST and DELEGATED do not move', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    const before = query(b, [{ blockId: 1, ctx: b.ctx, layer: 'tcp', children: [] }]).results[0].tcp!;
    const newMac = mac('02:00:00:00:00:99');
    const done = update(b, [{ blockId: 1, ctx: b.neighborCtx, layer: 'neighbor', cached: { dlDestinationAddress: newMac, hostReachabilityDelta: 0 }, children: [
      { blockId: 2, ctx: b.pathCtx, layer: 'path', cached: { pathMtu: 576 }, children: [
        { blockId: 3, ctx: b.ctx, layer: 'tcp', cached: cachedOf(b, { ttlOrHopLimit: 9, tosOrTrafficClass: 0x10 }), children: [] }] }] }]);
    expect(done.results.map((r) => r.status)).toEqual([Status.SUCCESS, Status.SUCCESS, Status.SUCCESS]);
    send(b, b.ctx, 1, 1000, 1000);
    const w = b.takeWire();
    // R74: 576 - 20 - 20 = 536 bytes per segment.
    expect(w.map((x) => [x.seg.seq, x.seg.payload.length, x.ttl, x.tos, hex(x.dstMac)])).toEqual([
      [1000, 536, 9, 0x10, hex(newMac)], [1536, 464, 9, 0x10, hex(newMac)],
    ]);
    const after = query(b, [{ blockId: 1, ctx: b.ctx, layer: 'tcp', children: [] }]).results[0].tcp!;
    expect(after.const).toEqual(before.const);
    expect([after.delegated!.rcvNxt, after.delegated!.sndUna, after.delegated!.sndMax]).toEqual([5000, 1000, 2000]);
  });

  it('R58: an update rooted at a new neighbor relinks the path; frames then use that neighbor, and the old one can go', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    const n1 = b.neighborCtx;
    const n2mac = mac('02:00:00:00:00:77');
    const opId = b.opId();
    b.host({ type: 'InitiateOffload', opId, blocks: [{ blockId: 50, role: 'new', layer: 'neighbor', handle: 9, state: benchNeighbor({ dst: n2mac }), children: [] }] });
    const n2 = only(b.all, 'InitiateOffloadComplete').find((m) => m.opId === opId)!.results[0].ctx!;
    expect(update(b, [{ blockId: 1, ctx: n2, layer: 'neighbor', children: [{ blockId: 2, ctx: b.pathCtx, layer: 'path', children: [] }] }]).results.map((r) => r.status)).toEqual([Status.SUCCESS, Status.SUCCESS]);
    send(b, b.ctx, 1, 1000, 10);
    expect(b.takeWire().map((x) => hex(x.dstMac))).toEqual([hex(n2mac)]);
    b.host({ type: 'TerminateOffload', opId: 70, blocks: [{ blockId: 1, ctx: n1, layer: 'neighbor', children: [] }, { blockId: 2, ctx: n2, layer: 'neighbor', children: [] }] });
    const done = only(b.all, 'TerminateOffloadComplete').find((m) => m.opId === 70)!;
    expect(done.results.map((r) => [r.blockId, r.status])).toEqual([[1, Status.SUCCESS], [2, Status.FAILURE]]);
  });

  it('R59: UPDATE_RCV_WND with a new InitialRcvWnd advertises the new window at once', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ initialRcvWnd: 20_000, rcvWnd: 20_000 }));
    b.takeWire();
    update(b, [{ blockId: 1, ctx: b.ctx, layer: 'tcp', cached: cachedOf(b, { initialRcvWnd: 60_000, flags: TCP_CACHED_FLAG.UPDATE_RCV_WND }), children: [] }]);
    const w = b.takeWire();
    expect(w.map((x) => [x.seg.ack, x.seg.window, x.seg.payload.length])).toEqual([[5000, 60_000, 0]]);
    const d = query(b, [{ blockId: 1, ctx: b.ctx, layer: 'tcp', children: [] }]).results[0].tcp!.delegated!;
    expect(d.rcvWnd).toBe(60_000);
  });

  it('R60: KEEP_ALIVE_RESTART restarts the keepalive timer from zero', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ cachedFlags: TCP_CACHED_FLAG.KEEP_ALIVE_ENABLED, kaTimeout: 10_000, kaInterval: 1000, kaProbeCount: 3, kaTimeoutDelta: 3000 }));
    b.advance(2000);
    const q1 = query(b, [{ blockId: 1, ctx: b.ctx, layer: 'tcp', children: [] }]).results[0].tcp!.delegated!;
    expect(q1.kaTimeoutDelta).toBe(1000);
    update(b, [{ blockId: 1, ctx: b.ctx, layer: 'tcp', cached: cachedOf(b, { flags: TCP_CACHED_FLAG.KEEP_ALIVE_ENABLED | TCP_CACHED_FLAG.KEEP_ALIVE_RESTART }), children: [] }]);
    const q2 = query(b, [{ blockId: 1, ctx: b.ctx, layer: 'tcp', children: [] }]).results[0].tcp!.delegated!;
    expect(q2.kaTimeoutDelta).toBe(10_000);
    b.advance(9_999);
    expect(b.takeWire()).toEqual([]);
    b.advance(1);
    expect(b.takeWire().map((x) => [x.seg.seq, x.seg.payload.length])).toEqual([[999, 0]]); // a keepalive probe
  });

  it('R61/R63: an update that fails (unknown object, path MTU beyond the target) is FAILURE and the connection carries on', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    const done = update(b, [{ blockId: 1, ctx: 4242, layer: 'tcp', cached: cachedOf(b, {}), children: [] }, { blockId: 2, ctx: b.pathCtx, layer: 'path', cached: { pathMtu: 9000 }, children: [] }]);
    expect(done.results.map((r) => [r.blockId, r.status])).toEqual([[1, Status.FAILURE], [2, Status.FAILURE]]);
    send(b, b.ctx, 1, 1000, 1460);
    expect(b.takeWire().map((x) => [x.seg.seq, x.seg.payload.length, sha(x.seg.payload)])).toEqual([[1000, 1460, sha(seqBytes(1000, 1460))]]);
  });

  it('R62/R63: a query returns current values, SendBacklogSize and ReceiveBacklogSize; overlapping queries both complete', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ chain: [seqBytes(1000, 300)] }));
    b.peer({ seq: 5000, ack: 1100, payload: seqBytes(5000, 120), flags: TCP_ACK | TCP_PSH });
    const ind = only(b.take(), 'TcpReceiveIndicate')[0];
    b.host({ type: 'IndicateReply', indicationId: ind.indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
    b.host({ type: 'QueryOffload', opId: 81, blocks: [{ blockId: 1, ctx: b.neighborCtx, layer: 'neighbor', children: [{ blockId: 2, ctx: b.pathCtx, layer: 'path', children: [{ blockId: 3, ctx: b.ctx, layer: 'tcp', children: [] }] }] }] });
    b.host({ type: 'QueryOffload', opId: 82, blocks: [{ blockId: 3, ctx: b.ctx, layer: 'tcp', children: [] }] });
    const qs = only(b.take(), 'QueryOffloadComplete');
    expect(qs.map((q) => [q.opId, q.results.map((r) => r.status)])).toEqual([[81, [0, 0, 0]], [82, [0]]]);
    const d = qs[0].results[2].tcp!.delegated!;
    expect([d.rcvNxt, d.sndUna, d.sndMax]).toEqual([5120, 1100, 1300]);
    expect(d.receiveBacklogSize).toBe(120);
    expect(d.sendBacklogSize).toBeGreaterThan(0);
    expect(d.sendBacklogSize).not.toBe(0xffffffff);
    expect(qs[0].results[1].path!.cached).toEqual({ pathMtu: 1500 });
    expect(hex(qs[0].results[0].neighbor!.cached!.dlDestinationAddress)).toBe(hex(PEER_MAC));
    expect(qs[1].results[0].tcp!.delegated).toEqual(d);
  });

  it('R62: under CUBIC (fractional cwnd) the query answer and the backlog indications still carry whole numbers (the codec accepts them)', () => {
    const b = new CoreBench({ congestionControl: 'cubic' });
    const st = benchTcp({ chain: [seqBytes(1000, 20_000)], cwnd: 10 * 1460 });
    st.delegated.ssthresh = 2 * 1460; // congestion avoidance, where CUBIC's window grows by fractions
    b.initiate(st);
    for (let una = 2460; una < 21000 + 1460; una += 1460) {
      b.peer({ seq: 5000, ack: Math.min(una, 21000) });
      b.advance(5);
    }
    b.host({ type: 'QueryOffload', opId: 83, blocks: [{ blockId: 3, ctx: b.ctx, layer: 'tcp', children: [] }] });
    const d = only(b.take(), 'QueryOffloadComplete')[0].results[0].tcp!.delegated!;
    expect(Number.isInteger(d.sendBacklogSize)).toBe(true);
    expect(d.sndUna).toBe(21000);
  });

  it('R64/R65: after invalidating the neighbor nothing more is sent (new data or retransmission) and each connection is asked for with InvalidState', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ chain: [seqBytes(1000, 100)], rtTimeoutDelta: 100 }));
    const first = b.ctx;
    const opId = b.opId();
    b.host({ type: 'InitiateOffload', opId, blocks: [{ blockId: 60, role: 'linker', layer: 'neighbor', ctx: b.neighborCtx, children: [{ blockId: 61, role: 'linker', layer: 'path', ctx: b.pathCtx, children: [{ blockId: 62, role: 'new', layer: 'tcp', handle: 8, state: benchTcp({ localPort: 40001 }), children: [] }] }] }] });
    const second = only(b.all, 'InitiateOffloadComplete').find((m) => m.opId === opId)!.results[2].ctx!;
    b.take();
    b.takeWire();
    b.host({ type: 'InvalidateOffload', opId: 90, blocks: [{ blockId: 1, ctx: b.neighborCtx, layer: 'neighbor', children: [] }] });
    const msgs = b.take();
    expect(only(msgs, 'InvalidateOffloadComplete').map((m) => m.results.map((r) => r.status))).toEqual([[Status.SUCCESS]]);
    expect(only(msgs, 'TcpEvent').map((e) => [e.handle, e.eventType, e.info]).sort()).toEqual([[3, TcpEventType.Retrieve, UploadReason.InvalidState], [8, TcpEventType.Retrieve, UploadReason.InvalidState]]);
    send(b, second, 1, 1000, 10);
    b.advance(10_000);
    expect(b.takeWire()).toEqual([]);
    // Kept until terminated: a query still answers, the terminate returns the state.
    expect(query(b, [{ blockId: 1, ctx: first, layer: 'tcp', children: [] }]).results[0].status).toBe(Status.SUCCESS);
    const done = (b.terminate(), only(b.all, 'TerminateOffloadComplete').at(-1)!);
    expect(done.results.find((r) => r.blockId === 92)!.status).toBe(Status.SUCCESS);
  });

  it('R66: an invalidate ignores any state attached to its blocks', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.host({ type: 'InvalidateOffload', opId: 91, blocks: [{ blockId: 1, ctx: b.ctx, layer: 'tcp', cached: cachedOf(b, { ttlOrHopLimit: 1 }), children: [] }] });
    expect(b.core.connections()[0].cached.ttlOrHopLimit).toBe(64);
    expect(only(b.take(), 'InvalidateOffloadComplete')[0].results.map((r) => r.status)).toEqual([Status.SUCCESS]);
  });
});
