/**
 * Terminate (upload) requirements R1-R34 on the target core, driven message by message with a
 * scripted peer (CoreBench), including the byte-exact worked example of spec 6.11.
 */
import { describe, expect, it } from 'vitest';
import { CoreBench, benchNeighbor as benchNeighborState, benchTcp, seqBytes, sha } from '../support/chimney-sim.js';
import { Status } from '../../src/chimney/status.js';
import { TCP_CACHED_FLAG, TCP_CONST_FLAG, TcpEventType, UploadReason, type BlockResult } from '../../src/chimney/state.js';
import type { MessageOf, TargetMessage } from '../../src/ipc/messages.js';
import { TcpState as S } from '../../src/tcp/types.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_URG } from '../../src/wire/tcp-segment.js';

type Msg<K extends TargetMessage['type']> = Extract<TargetMessage, { type: K }>;

function only<K extends TargetMessage['type']>(msgs: TargetMessage[], type: K): Array<Msg<K>> {
  return msgs.filter((m) => m.type === type) as Array<Msg<K>>;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

function tcpResult(done: MessageOf<'TerminateOffloadComplete'>, blockId = 92): BlockResult {
  const r = done.results.find((x) => x.blockId === blockId);
  if (!r) throw new Error(`no result for block ${blockId}`);
  return r;
}

function terminated(b: CoreBench, opId: number): MessageOf<'TerminateOffloadComplete'> {
  const done = only(b.all, 'TerminateOffloadComplete').filter((m) => m.opId === opId);
  expect(done).toHaveLength(1);
  return done[0];
}

/** The 6.11 set-up up to (not including) the terminate. */
function workedExample(mode: 'chain' | 'complete'): { b: CoreBench; s4: Uint8Array } {
  const b = new CoreBench({ terminateSendMode: mode });
  const stream = seqBytes(1000, 2000);
  const chain = [stream.subarray(0, 500), stream.subarray(500, 1200), stream.subarray(1200, 2000)];
  const init = b.initiate(benchTcp({ sndUna: 1000, sndNxt: 1800, sndMax: 2200, chain, rcvNxt: 5000, bufferedData: seqBytes(4700, 300), constFlags: TCP_CONST_FLAG.SACK_ENABLED }));
  expect(init.results.map((r) => r.status)).toEqual([Status.SUCCESS, Status.SUCCESS, Status.SUCCESS]);
  // R49: [SndNxt, SndMax) goes out first, then the unsent rest of the chain.
  const first = b.takeWire().filter((w) => w.seg.payload.length > 0);
  expect(first[0].seg.seq).toBe(1800);
  expect(sha(concat(first.map((w) => w.seg.payload)))).toBe(sha(stream.subarray(800)));
  expect(b.take(), 'BufferedData is not indicated before a post (R48)').toEqual([only(b.all, 'InitiateOffloadComplete')[0]]);

  const s4 = seqBytes(3000, 400);
  b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 200, bytes: s4 }] });
  b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId: 300, capacity: 200, noPush: false }] });
  const recv = b.take();
  const rc = only(recv, 'TcpReceiveComplete');
  expect(rc).toHaveLength(1);
  expect(rc[0].entries).toEqual([{ ctx: b.ctx, requestId: 300, status: Status.SUCCESS, bytesTransferred: 200, bytes: seqBytes(4700, 200) }]);
  const ind = only(recv, 'TcpReceiveIndicate');
  expect(ind).toHaveLength(1);
  expect(sha(ind[0].bytes)).toBe(sha(seqBytes(4900, 100)));
  b.host({ type: 'IndicateReply', indicationId: ind[0].indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
  expect(b.take()).toEqual([]);

  // Peer acknowledges up to 2600: S1 and S2 complete, S3 has 400 of 800 acknowledged.
  b.peer({ seq: 5000, ack: 2600 });
  const sc = only(b.take(), 'TcpSendComplete').flatMap((m) => m.entries);
  expect(sc).toEqual([
    { ctx: b.ctx, requestId: 100, status: Status.SUCCESS, bytesTransferred: 500 },
    { ctx: b.ctx, requestId: 101, status: Status.SUCCESS, bytesTransferred: 700 },
  ]);
  // S4 went out after the chain (R49), everything is sent.
  const s4Wire = b.takeWire().filter((w) => w.seg.payload.length > 0);
  expect(s4Wire.map((w) => w.seg.seq)).toEqual([3000]);
  expect(sha(s4Wire[0].seg.payload)).toBe(sha(s4));
  // Out-of-order 5200..5299, SACKed.
  b.peer({ seq: 5200, ack: 2600, payload: seqBytes(5200, 100) });
  const dup = b.takeWire();
  expect(dup.at(-1)!.seg.ack).toBe(5000);
  expect(dup.at(-1)!.seg.options.sack).toEqual([{ left: 5200, right: 5300 }]);
  return { b, s4 };
}

describe('terminate requirements (spec 6, R1-R34)', () => {
  it('R6-R12/R14-R18/R49: spec 6.11 worked example, chain mode, byte-exact', () => {
    const { b } = workedExample('chain');
    const op = b.terminate();
    const msgs = b.take();
    const done = terminated(b, op);
    expect(msgs.at(-1)).toBe(done); // R14: nothing of this connection after the completion
    expect(only(msgs, 'TcpSendComplete'), 'R6: chained requests are not also completed').toEqual([]);
    const r = tcpResult(done);
    expect(r.status).toBe(Status.SUCCESS);
    const d = r.tcp!.delegated!;
    // R7/R8/R10: S3 (400 acked) then S4, head/tail named, first chain byte = SndUna.
    expect(d.sendChain).toEqual([{ bufferId: 102, ackedBytes: 400 }, { bufferId: 200, ackedBytes: 0 }]);
    expect(d.sendDataHead).toBe(102);
    expect(d.sendDataTail).toBe(200);
    expect([d.sndUna, d.sndNxt, d.sndMax, d.rcvNxt]).toEqual([2600, 3400, 3400, 5000]);
    // R15/R16: the 100 refused bytes, ending at RcvNxt; R18: 5200..5299 nowhere.
    expect(d.bufferedBuffers!.map((x) => x.bytes.length)).toEqual([100]);
    expect(sha(d.bufferedBuffers![0].bytes)).toBe(sha(seqBytes(4900, 100)));
    expect(b.wire.every((w) => w.seg.ack === 5000 || (w.seg.flags & TCP_ACK) === 0), 'R18: never acknowledged beyond 5000').toBe(true);
    // Every delivered byte, once, in order (R15): 4700..4899 by completion, 4900..4999 in BufferedData.
    const delivered = concat([...only(b.all, 'TcpReceiveComplete').flatMap((m) => m.entries.map((e) => e.bytes)), ...d.bufferedBuffers!.map((x) => x.bytes)]);
    expect(sha(delivered)).toBe(sha(seqBytes(4700, 300)));
    // R17: the lent buffer stays reserved until the host returns it, exactly once.
    const id = d.bufferedBuffers![0].bufferId;
    expect(b.core.ledger.isLent(id)).toBe(true);
    b.advance(10_000);
    expect(b.core.ledger.isLent(id)).toBe(true);
    b.host({ type: 'TcpReceiveReturn', bufferIds: [id] });
    expect(b.core.ledger.isLent(id)).toBe(false);
    expect(b.take()).toEqual([]);
    b.host({ type: 'TcpReceiveReturn', bufferIds: [id] });
    expect(only(b.take(), 'Error').map((e) => e.status)).toEqual([Status.IPC_UNKNOWN_BUFFER]);
  });

  it('R9/R11/R13: spec 6.11 alternative (a): S3 and S4 completed UPLOAD_IN_PROGRESS with their acked counts, chain null', () => {
    const { b } = workedExample('complete');
    const op = b.terminate();
    const msgs = b.take();
    const done = terminated(b, op);
    const sends = only(msgs, 'TcpSendComplete');
    expect(sends.flatMap((m) => m.entries)).toEqual([
      { ctx: b.ctx, requestId: 102, status: Status.UPLOAD_IN_PROGRESS, bytesTransferred: 400 },
      { ctx: b.ctx, requestId: 200, status: Status.UPLOAD_IN_PROGRESS, bytesTransferred: 0 },
    ]);
    expect(msgs.indexOf(sends.at(-1)!)).toBeLessThan(msgs.indexOf(done)); // R14
    const d = tcpResult(done).tcp!.delegated!;
    expect(d.sendChain ?? []).toEqual([]);
    expect(d.sendDataHead).toBeUndefined();
    expect(d.sendDataTail).toBeUndefined();
    expect(d.sndUna).toBe(2600);
  });

  it('R2/R3: one completion per terminate with a status for every block, only SUCCESS or FAILURE', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.take();
    const op = b.opId();
    b.host({ type: 'TerminateOffload', opId: op, blocks: [
      { blockId: 1, ctx: b.neighborCtx, layer: 'neighbor', children: [{ blockId: 2, ctx: b.pathCtx, layer: 'path', children: [{ blockId: 3, ctx: b.ctx, layer: 'tcp', children: [] }] }] },
      { blockId: 4, ctx: 7777, layer: 'tcp', children: [] },
    ] });
    b.advance(5000);
    const done = terminated(b, op);
    expect(done.results.map((r) => [r.blockId, r.status])).toEqual([[1, Status.SUCCESS], [2, Status.SUCCESS], [3, Status.SUCCESS], [4, Status.FAILURE]]);
    expect(b.core.connectionCount).toBe(0);
  });

  it('R4/R5/R25/R26/R27: returned delegated values are current (timers left, TsTime, SRtt x8, RttVar x4), no CONST/CACHED', () => {
    const b = new CoreBench();
    const data = seqBytes(1000, 300);
    b.initiate(benchTcp({
      chain: [data], sndUna: 1000, constFlags: TCP_CONST_FLAG.TIMESTAMP_ENABLED, tsTime: 100_000, tsRecent: 777,
      srttX8: 8 * 30, rttvarX4: 4 * 7, rtTimeoutDelta: 400,
      cachedFlags: TCP_CACHED_FLAG.KEEP_ALIVE_ENABLED, kaTimeout: 60_000, kaInterval: 1000, kaProbeCount: 5, kaTimeoutDelta: 7000,
    }));
    b.take();
    b.advance(123);
    const op = b.terminate();
    const r = tcpResult(terminated(b, op));
    expect(Object.keys(r.tcp!)).toEqual(['delegated']); // R5
    const nb = terminated(b, op).results.find((x) => x.blockId === 90)!;
    expect(Object.keys(nb.neighbor ?? {})).toEqual(['delegated']);
    const path = terminated(b, op).results.find((x) => x.blockId === 91)!;
    expect(path.path).toBeUndefined();
    const d = r.tcp!.delegated!;
    expect(d.state).toBe(S.Established);
    expect(d.tsTime).toBe(100_123); // R26
    expect(d.tsRecent).toBe(777);
    expect([d.srttX8, d.rttvarX4]).toEqual([240, 28]); // R27: unchanged without a new sample
    expect(d.rtTimeoutDelta).toBe(400 - 123); // R25
    expect(d.kaTimeoutDelta).toBe(7000 - 123); // R25: the keepalive timer's ticks left
    expect([d.sndUna, d.sndNxt, d.sndMax, d.rcvNxt]).toEqual([1000, 1300, 1300, 5000]);
    expect(d.flags).toBe(0);
  });

  it('R25: an idle connection returns the keepalive ticks left and 0xFFFFFFFF (-1) for the stopped retransmit timer', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ cachedFlags: TCP_CACHED_FLAG.KEEP_ALIVE_ENABLED, kaTimeout: 60_000, kaInterval: 1000, kaProbeCount: 5, kaTimeoutDelta: 7000 }));
    b.advance(1000);
    const d = tcpResult(terminated(b, b.terminate())).tcp!.delegated!;
    expect(d.kaTimeoutDelta).toBe(6000);
    expect(d.rtTimeoutDelta).toBe(-1);
  });

  it('R19: a pending delayed ACK goes on the wire before the terminate completes', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    // A nonpush request takes the data without completing (no indication holds the terminate).
    b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId: 1, capacity: 1000, noPush: true }] });
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 100), flags: TCP_ACK | TCP_PSH });
    expect(b.takeWire().filter((w) => w.seg.ack === 5100), 'one segment is below the ACK frequency: delayed').toEqual([]);
    const op = b.terminate();
    const done = terminated(b, op);
    const acks = b.takeWire().filter((w) => w.seg.ack === 5100);
    expect(acks).toHaveLength(1);
    expect(acks[0].hostMsgsBefore).toBeLessThan(b.all.indexOf(done) + 1);
    expect(tcpResult(done).tcp!.delegated!.rcvNxt).toBe(5100);
  });

  it('R20/R21: posted receives (filled part SUCCESS with its bytes, empty UPLOAD_IN_PROGRESS) and a pending disconnect complete before the terminate', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ chain: [seqBytes(1000, 50)] }));
    b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId: 1, capacity: 1000, noPush: true }, { requestId: 2, capacity: 1000, noPush: true }] });
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 300), flags: TCP_ACK | TCP_PSH });
    b.host({ type: 'TcpDisconnect', ctx: b.ctx, requestId: 3, flags: 1, bytes: seqBytes(1050, 20) });
    b.take();
    const op = b.terminate();
    const msgs = b.take();
    const done = terminated(b, op);
    const rc = only(msgs, 'TcpReceiveComplete').flatMap((m) => m.entries);
    expect(rc.map((e) => [e.requestId, e.status, e.bytesTransferred])).toEqual([[1, Status.SUCCESS, 300], [2, Status.UPLOAD_IN_PROGRESS, 0]]);
    expect(sha(rc[0].bytes)).toBe(sha(seqBytes(5000, 300)));
    const dc = only(msgs, 'TcpDisconnectComplete');
    expect(dc.map((m) => [m.requestId, m.status, m.bytesTransferred])).toEqual([[3, Status.UPLOAD_IN_PROGRESS, 0]]);
    expect(msgs.indexOf(dc[0])).toBeLessThan(msgs.indexOf(done));
    const d = tcpResult(done).tcp!.delegated!;
    expect(d.bufferedBuffers ?? []).toEqual([]);
    expect(d.state).toBe(S.FinWait1);
    // The disconnect's data was sent with the FIN and is returned as send data (6.3).
    expect(d.sndMax).toBe(1000 + 50 + 20 + 1);
  });

  it('R22/R23/R31: an unanswered indication holds the terminate; segments meanwhile go raw; I/O then gets UPLOAD_IN_PROGRESS', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 100), flags: TCP_ACK | TCP_PSH });
    const ind = only(b.take(), 'TcpReceiveIndicate');
    expect(ind).toHaveLength(1);
    const op = b.terminate();
    expect(only(b.take(), 'TerminateOffloadComplete')).toEqual([]);
    // R23: a segment now is passed up raw, not processed (RcvNxt stays 5100).
    b.peer({ seq: 5100, ack: 1000, payload: seqBytes(5100, 50), flags: TCP_ACK | TCP_PSH });
    const raw = only(b.take(), 'RawFrame');
    expect(raw).toHaveLength(1);
    b.takeWire();
    // R31: I/O that arrives now is refused with UPLOAD_IN_PROGRESS.
    b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId: 7, capacity: 10, noPush: false }] });
    b.host({ type: 'TcpForward', ctx: b.ctx, segments: [{ requestId: 8, tcpBytes: new Uint8Array(20).fill(0).map((_, i) => (i === 12 ? 0x50 : 0)) }] });
    const io = b.take();
    expect(only(io, 'TcpReceiveComplete').flatMap((m) => m.entries).map((e) => [e.requestId, e.status])).toEqual([[7, Status.UPLOAD_IN_PROGRESS]]);
    expect(only(io, 'TcpForwardComplete').flatMap((m) => m.entries).map((e) => [e.requestId, e.status])).toEqual([[8, Status.UPLOAD_IN_PROGRESS]]);
    expect(only(io, 'TerminateOffloadComplete')).toEqual([]);
    b.advance(2000);
    expect(only(b.take(), 'TerminateOffloadComplete')).toEqual([]);
    // The host refuses the indication: the data goes into BufferedData; then the terminate completes.
    b.host({ type: 'IndicateReply', indicationId: ind[0].indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
    const done = terminated(b, op);
    const d = tcpResult(done).tcp!.delegated!;
    expect(d.rcvNxt).toBe(5100);
    expect(sha(concat(d.bufferedBuffers!.map((x) => x.bytes)))).toBe(sha(seqBytes(5000, 100)));
    expect(b.wire.filter((w) => w.seg.ack === 5150), 'the raw segment was never acknowledged by the target').toEqual([]);
  });

  it('R22/R15: the reply to the indication a terminate waits for completes it at once: data that waited behind the indication goes back as BufferedData, not in a second indication (one more round trip of held ACKs)', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 100), flags: TCP_ACK | TCP_PSH });
    const ind = only(b.take(), 'TcpReceiveIndicate');
    expect(ind.map((m) => m.bytes.length)).toEqual([100]);
    // Acknowledged while the indication is out; it waits for the reply (E1.1).
    b.peer({ seq: 5100, ack: 1000, payload: seqBytes(5100, 50), flags: TCP_ACK | TCP_PSH });
    expect(only(b.take(), 'TcpReceiveIndicate')).toEqual([]);
    const op = b.terminate();
    expect(only(b.take(), 'TerminateOffloadComplete')).toEqual([]);
    b.host({ type: 'IndicateReply', indicationId: ind[0].indicationId, status: Status.SUCCESS, bytesConsumed: 100 });
    const msgs = b.take();
    expect(only(msgs, 'TcpReceiveIndicate'), 'no new indication during the terminate').toEqual([]);
    const done = only(msgs, 'TerminateOffloadComplete').find((m) => m.opId === op);
    expect(done, 'the terminate completed with the reply').toBeDefined();
    const d = tcpResult(done!).tcp!.delegated!;
    expect(d.rcvNxt).toBe(5150);
    expect(sha(concat(d.bufferedBuffers!.map((x) => x.bytes)))).toBe(sha(seqBytes(5100, 50)));
  });

  it('R24/R30: after the terminate, segments go raw and requests naming the old context get an error; another connection carries on', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    const old = { n: b.neighborCtx, p: b.pathCtx, t: b.ctx };
    b.initiate(benchTcp({ localPort: 40001 }));
    const other = b.ctx;
    b.ctx = old.t; b.pathCtx = old.p; b.neighborCtx = old.n;
    b.host({ type: 'TerminateOffload', opId: 50, blocks: [{ blockId: 92, ctx: old.t, layer: 'tcp', children: [] }] });
    expect(tcpResult(terminated(b, 50)).status).toBe(Status.SUCCESS);
    b.take();
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 10) });
    const raw = only(b.take(), 'RawFrame');
    expect(raw).toHaveLength(1);
    expect(b.takeWire()).toEqual([]);
    b.host({ type: 'TcpSend', ctx: old.t, buffers: [{ requestId: 1, bytes: seqBytes(1000, 10) }] });
    b.host({ type: 'TcpReceive', ctx: old.t, requests: [{ requestId: 2, capacity: 10, noPush: false }] });
    b.host({ type: 'TcpDisconnect', ctx: old.t, requestId: 3, flags: 1, bytes: new Uint8Array(0) });
    b.host({ type: 'QueryOffload', opId: 51, blocks: [{ blockId: 1, ctx: old.t, layer: 'tcp', children: [] }] });
    const errs = b.take();
    expect(only(errs, 'Error').map((e) => [e.refId, e.status])).toEqual([[old.t, Status.IPC_UNKNOWN_CONTEXT], [old.t, Status.IPC_UNKNOWN_CONTEXT], [old.t, Status.IPC_UNKNOWN_CONTEXT]]);
    expect(only(errs, 'QueryOffloadComplete')[0].results.map((r) => r.status)).toEqual([Status.FAILURE]);
    // The other connection still sends.
    b.host({ type: 'TcpSend', ctx: other, buffers: [{ requestId: 9, bytes: seqBytes(1000, 40) }] });
    const w = b.takeWire();
    expect(w.map((x) => [x.seg.dstPort, x.seg.srcPort, x.seg.seq, sha(x.seg.payload)])).toEqual([[80, 40001, 1000, sha(seqBytes(1000, 40))]]);
  });

  it('R1/R115: retransmission exhaustion asks for the upload (TimeoutExpiration) but the target keeps the connection and sends no RST', () => {
    const b = new CoreBench();
    b.host({ type: 'SetParameters', opId: 1, ticksPerSecond: 1000, tcpAckFrequency: 2, tcpDelayedAckTicks: 40, tcpMaximumRetransmissions: 3, tcpDoubtReachabilityRetransmissions: 3, tcpSwsPreventionTicks: 1000, tcpDuplicateAckThreshold: 3, tcpPushTicks: 500, nceStaleTicks: 30_000 });
    b.initiate(benchTcp({ chain: [seqBytes(1000, 100)], rtTimeoutDelta: 100 }));
    b.take();
    b.advance(600_000);
    const msgs = b.take();
    const ev = only(msgs, 'TcpEvent');
    expect(ev.map((e) => [e.handle, e.eventType, e.info])).toEqual([[3, TcpEventType.Retrieve, UploadReason.TimeoutExpiration]]);
    expect(b.core.connectionCount).toBe(1);
    expect(b.wire.filter((w) => w.seg.flags & TCP_RST)).toEqual([]);
    // Retransmitting for 30 s without progress made the neighbor stale: one reachability query
    // (R119), and R22: the terminate waits for its answer.
    const q = only(msgs, 'NeighborReachabilityQuery');
    expect(q.map((x) => x.handle)).toEqual([1]);
    const op = b.terminate();
    expect(only(b.take(), 'TerminateOffloadComplete')).toEqual([]);
    b.host({ type: 'ReachabilityReply', indicationId: q[0].indicationId, hostReachabilityDelta: 0 });
    const d = tcpResult(terminated(b, op)).tcp!.delegated!;
    expect(d.rtCount).toBeGreaterThan(3);
    expect(d.sndUna).toBe(1000);
  });

  it('R28/R116: FIN_WAIT_2 expiry returns State Closed after TcpIndicateRetrieve + TimeoutExpiration', () => {
    const b = new CoreBench();
    // Our FIN (1000) is acknowledged: SndUna 1001 in FinWait2, the FIN_WAIT_2 timer has 500 ticks left.
    b.initiate(benchTcp({ state: S.FinWait2, sndUna: 1001, sndMax: 1001, sndNxt: 1001, rtTimeoutDelta: 500 }));
    b.take();
    b.advance(499);
    expect(only(b.take(), 'TcpEvent')).toEqual([]);
    b.advance(2);
    expect(only(b.take(), 'TcpEvent').map((e) => [e.eventType, e.info])).toEqual([[TcpEventType.Retrieve, UploadReason.TimeoutExpiration]]);
    const d = tcpResult(terminated(b, b.terminate())).tcp!.delegated!;
    expect(d.state).toBe(S.Closed);
  });

  it('R28/R29: terminate after the peer FIN (CloseWait) and after an acceptable RST (Closed) both succeed with the actual state', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.peer({ seq: 5000, ack: 1000, flags: TCP_ACK | TCP_FIN });
    const d1 = tcpResult(terminated(b, b.terminate())).tcp!.delegated!;
    expect([d1.state, d1.rcvNxt]).toEqual([S.CloseWait, 5001]);

    const c = new CoreBench();
    c.initiate(benchTcp());
    c.take();
    c.peer({ seq: 5000, ack: 1000, flags: TCP_RST });
    expect(only(c.take(), 'TcpEvent').map((e) => e.eventType)).toEqual([TcpEventType.Abort]);
    // Spec 4.8 / R120: after the RST the 4-tuple's segments go to the host raw, not into the engine.
    c.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 10) });
    expect(only(c.take(), 'RawFrame')).toHaveLength(1);
    const done = terminated(c, c.terminate());
    expect(tcpResult(done).status).toBe(Status.SUCCESS);
    expect(tcpResult(done).tcp!.delegated!.state).toBe(S.Closed);
  });

  it('R23 / spec 6.2 step 1: while a terminate waits (here for an IndicateReply) nothing is transmitted, retransmissions included', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ chain: [seqBytes(1000, 500)], sndNxt: 1500, sndMax: 1500, rtTimeoutDelta: 100 }));
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 10), flags: TCP_ACK | TCP_PSH });
    const ind = only(b.take(), 'TcpReceiveIndicate')[0];
    b.terminate();
    b.takeWire();
    b.advance(10_000); // the RTO (100 ms) and its backoffs would have fired many times
    expect(b.takeWire()).toEqual([]);
    b.host({ type: 'IndicateReply', indicationId: ind.indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
    expect(only(b.all, 'TerminateOffloadComplete')).toHaveLength(1);
  });

  it('R32: a send posted while the terminate is being prepared completes UPLOAD_IN_PROGRESS and is not transmitted', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 10), flags: TCP_ACK | TCP_PSH });
    b.take();
    b.terminate(); // held by the unanswered indication
    b.takeWire();
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 5, bytes: seqBytes(1000, 10) }] });
    expect(only(b.take(), 'TcpSendComplete').flatMap((m) => m.entries)).toEqual([{ ctx: b.ctx, requestId: 5, status: Status.UPLOAD_IN_PROGRESS, bytesTransferred: 0 }]);
    expect(b.takeWire().filter((w) => w.seg.payload.length > 0)).toEqual([]);
  });

  it('R31/R114: after an urgent segment asks for the upload, send/receive/disconnect/forward get UPLOAD_IN_PROGRESS, receive-return is accepted', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 10), flags: TCP_ACK | TCP_PSH });
    const ind = only(b.take(), 'TcpReceiveIndicate')[0];
    b.host({ type: 'IndicateReply', indicationId: ind.indicationId, status: Status.SUCCESS, bytesConsumed: 10 });
    b.takeWire();
    b.peer({ seq: 5010, ack: 1000, payload: seqBytes(5010, 10), flags: TCP_ACK | TCP_URG, urgent: 5 });
    const first = b.take();
    expect(only(first, 'TcpEvent').map((e) => [e.eventType, e.info])).toEqual([[TcpEventType.Retrieve, UploadReason.ReceivedUrgentData]]);
    expect(only(first, 'RawFrame')).toHaveLength(1);
    expect(b.takeWire(), 'no ACK for urgent data').toEqual([]);
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 10) }] });
    b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId: 2, capacity: 10, noPush: false }] });
    b.host({ type: 'TcpDisconnect', ctx: b.ctx, requestId: 3, flags: 1, bytes: new Uint8Array(0) });
    b.host({ type: 'TcpForward', ctx: b.ctx, segments: [{ requestId: 4, tcpBytes: new Uint8Array(20).map((_, i) => (i === 12 ? 0x50 : 0)) }] });
    b.host({ type: 'TcpReceiveReturn', bufferIds: [ind.bufferId] });
    const io = b.take();
    expect(io.map((m) => m.type)).toEqual(['TcpSendComplete', 'TcpReceiveComplete', 'TcpDisconnectComplete', 'TcpForwardComplete']);
    expect(only(io, 'TcpSendComplete')[0].entries[0].status).toBe(Status.UPLOAD_IN_PROGRESS);
    expect(only(io, 'TcpReceiveComplete')[0].entries[0].status).toBe(Status.UPLOAD_IN_PROGRESS);
    expect(only(io, 'TcpDisconnectComplete')[0].status).toBe(Status.UPLOAD_IN_PROGRESS);
    expect(only(io, 'TcpForwardComplete')[0].entries[0].status).toBe(Status.UPLOAD_IN_PROGRESS);
    // Later segments keep going raw, unacknowledged.
    b.peer({ seq: 5020, ack: 1000, payload: seqBytes(5020, 10), flags: TCP_ACK });
    expect(only(b.take(), 'RawFrame')).toHaveLength(1);
    expect(b.takeWire()).toEqual([]);
    const d = tcpResult(terminated(b, b.terminate())).tcp!.delegated!;
    expect(d.rcvNxt).toBe(5010);
  });

  it('R33: terminating a path or neighbor that still has offloaded dependents fails those blocks and leaves the connection running', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.take();
    b.host({ type: 'TerminateOffload', opId: 60, blocks: [{ blockId: 1, ctx: b.neighborCtx, layer: 'neighbor', children: [] }, { blockId: 2, ctx: b.pathCtx, layer: 'path', children: [] }] });
    expect(terminated(b, 60).results.map((r) => [r.blockId, r.status])).toEqual([[1, Status.FAILURE], [2, Status.FAILURE]]);
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 30) }] });
    expect(b.takeWire().map((w) => [w.seg.seq, sha(w.seg.payload)])).toEqual([[1000, sha(seqBytes(1000, 30))]]);
    // Terminating the whole tree afterwards works.
    const done = terminated(b, b.terminate());
    expect(done.results.map((r) => r.status)).toEqual([Status.SUCCESS, Status.SUCCESS, Status.SUCCESS]);
  });
  it('R34: a terminated neighbor returns its current NicReachabilityDelta (ticks since the last forward progress)', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ chain: [seqBytes(1000, 100)] }), { neighbor: { ...benchNeighborState(), delegated: { nicReachabilityDelta: 400 } } });
    b.advance(100);
    b.peer({ seq: 5000, ack: 1100 }); // forward progress at t = 100
    b.advance(1000);
    const done = terminated(b, b.terminate());
    expect(done.results.find((r) => r.blockId === 90)!.neighbor).toEqual({ delegated: { nicReachabilityDelta: 1000 } });
    // Without progress the delta keeps growing from the value handed over.
    const c = new CoreBench();
    c.initiate(benchTcp(), { neighbor: { ...benchNeighborState(), delegated: { nicReachabilityDelta: 400 } } });
    c.advance(250);
    expect(terminated(c, c.terminate()).results.find((r) => r.blockId === 90)!.neighbor).toEqual({ delegated: { nicReachabilityDelta: 650 } });
  });
});
