/**
 * Send path and disconnect requirements R67-R88 on the target core (CoreBench).
 */
import { describe, expect, it } from 'vitest';
import { CoreBench, benchTcp, seqBytes, sha, type WireOut } from '../support/chimney-sim.js';
import { Status } from '../../src/chimney/status.js';
import { TCP_CACHED_FLAG, TcpEventType, UploadReason } from '../../src/chimney/state.js';
import type { TargetMessage } from '../../src/ipc/messages.js';
import { TcpState as S } from '../../src/tcp/types.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST } from '../../src/wire/tcp-segment.js';

type Msg<K extends TargetMessage['type']> = Extract<TargetMessage, { type: K }>;

function only<K extends TargetMessage['type']>(msgs: TargetMessage[], type: K): Array<Msg<K>> {
  return msgs.filter((m) => m.type === type) as Array<Msg<K>>;
}

function payloadOf(w: WireOut[]): Uint8Array {
  const out = new Uint8Array(w.reduce((n, x) => n + x.seg.payload.length, 0));
  let o = 0;
  for (const x of w) { out.set(x.seg.payload, o); o += x.seg.payload.length; }
  return out;
}

function sendEntries(msgs: TargetMessage[]): Array<[number, number, number]> {
  return only(msgs, 'TcpSendComplete').flatMap((m) => m.entries.map((e) => [e.requestId, e.status, e.bytesTransferred] as [number, number, number]));
}

describe('send path requirements (spec 3.1-3.4, R67-R81)', () => {
  it('R67/R68/R74/R75: every request accepted; bytes on the wire in posting order; segments within min(RemoteMss, PathMtu - 40); DF and IP IDs 0x8000-0xFFFF', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ remoteMss: 1000 }));
    let seq = 1000;
    let id = 1;
    for (let post = 0; post < 20; post++) {
      const buffers = [700, 1, 2500, 64].map((n) => { const r = { requestId: id++, bytes: seqBytes(seq, n) }; seq += n; return r; });
      b.host({ type: 'TcpSend', ctx: b.ctx, buffers });
      // The peer acknowledges everything so far (and keeps the window open).
      const w = b.wire.filter((x) => x.seg.payload.length > 0);
      const last = w.at(-1)!;
      b.peer({ seq: 5000, ack: last.seg.seq + last.seg.payload.length });
    }
    const total = seq - 1000;
    const data = b.wire.filter((x) => x.seg.payload.length > 0);
    expect(sha(payloadOf(data))).toBe(sha(seqBytes(1000, total)));
    expect(Math.max(...data.map((x) => x.seg.payload.length))).toBe(1000);
    expect(b.wire.every((x) => x.df && x.ipId >= 0x8000 && x.ipId <= 0xffff)).toBe(true);
    expect(new Set(b.wire.map((x) => x.ipId)).size).toBe(b.wire.length);
    const sc = sendEntries(b.all);
    expect(sc.map((e) => e[0])).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    expect(sc.every((e) => e[1] === Status.SUCCESS)).toBe(true);
    expect(only(b.all, 'Error')).toEqual([]);
  });

  it('R69/R70/R72: SUCCESS only when every byte is acknowledged, with the full length; one completion may span posts', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 300) }] });
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 2, bytes: seqBytes(1300, 300) }, { requestId: 3, bytes: seqBytes(1600, 300) }] });
    b.take();
    b.peer({ seq: 5000, ack: 1299 });
    expect(b.take()).toEqual([]);
    b.peer({ seq: 5000, ack: 1300 });
    expect(sendEntries(b.take())).toEqual([[1, Status.SUCCESS, 300]]);
    b.peer({ seq: 5000, ack: 1900 });
    const msgs = b.take();
    expect(only(msgs, 'TcpSendComplete')).toHaveLength(1);
    expect(sendEntries(msgs)).toEqual([[2, Status.SUCCESS, 300], [3, Status.SUCCESS, 300]]);
  });

  it('R71/R73/R111: an acceptable RST aborts every outstanding send (none sent afterwards), the posted receives and the disconnect', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ sndWnd: 500 }));
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 400) }, { requestId: 2, bytes: seqBytes(1400, 400) }, { requestId: 3, bytes: seqBytes(1800, 400) }] });
    b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId: 4, capacity: 100, noPush: true }] });
    b.host({ type: 'TcpDisconnect', ctx: b.ctx, requestId: 5, flags: 1, bytes: new Uint8Array(0) });
    b.take();
    b.peer({ seq: 5000, ack: 1000, flags: TCP_RST | TCP_ACK });
    const msgs = b.take();
    expect(only(msgs, 'TcpEvent').map((e) => e.eventType)).toEqual([TcpEventType.Abort]);
    expect(sendEntries(msgs)).toEqual([[1, Status.REQUEST_ABORTED, 0], [2, Status.REQUEST_ABORTED, 0], [3, Status.REQUEST_ABORTED, 0]]);
    expect(only(msgs, 'TcpReceiveComplete').flatMap((m) => m.entries.map((e) => [e.requestId, e.status]))).toEqual([[4, Status.REQUEST_ABORTED]]);
    expect(only(msgs, 'TcpDisconnectComplete').map((m) => [m.requestId, m.status])).toEqual([[5, Status.REQUEST_ABORTED]]);
    b.takeWire();
    b.advance(60_000);
    expect(b.takeWire()).toEqual([]);
    expect(b.core.connectionCount).toBe(1); // R88: kept until terminated
  });

  it('R76: the last segment carved from a request carries PSH (requests sent as posted)', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 3000) }] });
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 2, bytes: seqBytes(4000, 100) }] });
    expect(b.takeWire().map((x) => [x.seg.seq, x.seg.payload.length, (x.seg.flags & TCP_PSH) !== 0])).toEqual([
      [1000, 1460, false], [2460, 1460, false], [3920, 80, true], [4000, 100, true],
    ]);
  });

  it('R77: with NAGLING_ENABLED a small segment waits while data is unacknowledged; without it, it goes at once', () => {
    for (const nagle of [true, false]) {
      const b = new CoreBench();
      b.initiate(benchTcp({ cachedFlags: nagle ? TCP_CACHED_FLAG.NAGLING_ENABLED : 0 }));
      b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 100) }] });
      b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 2, bytes: seqBytes(1100, 100) }] });
      expect(b.takeWire().map((x) => x.seg.seq), `nagle ${nagle}`).toEqual(nagle ? [1000] : [1000, 1100]);
      b.peer({ seq: 5000, ack: 1100 });
      expect(b.takeWire().map((x) => x.seg.seq), `nagle ${nagle}`).toEqual(nagle ? [1100] : []);
    }
  });

  it('R81: SendBacklogChange carries the new backlog in bytes, at most once a second and only for a change of a quarter or more', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ cwnd: 2 * 1460 }));
    b.take();
    const told: Array<{ at: number; info: number; now: number }> = [];
    let seq = 1000;
    let id = 1;
    while (b.now < 3500) {
      if (seq - b.core.connections()[0].connection.sndUna < 200_000) {
        b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: id++, bytes: seqBytes(seq, 65536) }] });
        seq += 65536;
      }
      const w = b.takeWire().filter((x) => x.seg.payload.length > 0);
      // The peer's window: open, then a small change (no indication), then a big one.
      const window = b.now < 1500 ? 65535 : b.now < 2000 ? 60000 : 16000;
      for (const x of w) b.peer({ seq: 5000, ack: x.seg.seq + x.seg.payload.length, window });
      for (const e of only(b.take(), 'TcpEvent')) {
        expect(e.eventType).toBe(TcpEventType.SendBacklogChange);
        told.push({ at: b.now, info: e.info, now: b.core.connections()[0].sendBacklog() });
      }
      b.advance(10);
    }
    expect(told.map((t) => t.info)).toEqual([65535, 16000]);
    expect(told[0].at).toBeGreaterThanOrEqual(1000);
    for (const [i, t] of told.entries()) {
      expect(t.info).toBe(t.now);
      const prev = i === 0 ? { at: 0, info: 2 * 1460 } : told[i - 1];
      expect(t.at - prev.at).toBeGreaterThanOrEqual(1000);
      expect(Math.abs(t.info - prev.info)).toBeGreaterThanOrEqual(prev.info / 4);
    }
  });

  it('R80: no VLAN tag when VLAN and priority are zero; a priority-only tag (VLAN 0) when UserPriority is set', () => {
    for (const prio of [0, 5]) {
      const b = new CoreBench();
      b.initiate(benchTcp({ userPriority: prio }));
      b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 10) }] });
      const w = b.takeWire();
      expect(w.map((x) => x.vlan)).toEqual([prio ? { pcp: 5, dei: false, vid: 0 } : undefined]);
      expect(sha(w[0].seg.payload)).toBe(sha(seqBytes(1000, 10)));
    }
  });
});

describe('disconnect requirements (spec 3.5, R82-R88)', () => {
  it('R82/R83/R85: graceful: earlier data, the disconnect data, FIN without waiting; completions in order; SUCCESS once the FIN is acknowledged', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.take();
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 2000) }] });
    b.host({ type: 'TcpDisconnect', ctx: b.ctx, requestId: 2, flags: 1, bytes: seqBytes(3000, 50) });
    const w = b.takeWire();
    expect(sha(payloadOf(w))).toBe(sha(seqBytes(1000, 2050)));
    const fin = w.filter((x) => x.seg.flags & TCP_FIN);
    expect(fin.map((x) => x.seg.seq + x.seg.payload.length)).toEqual([3050]);
    expect(b.take()).toEqual([]);
    b.peer({ seq: 5000, ack: 3050 });
    expect(sendEntries(b.take())).toEqual([[1, Status.SUCCESS, 2000]]);
    b.peer({ seq: 5000, ack: 3051 });
    const msgs = b.take();
    expect(only(msgs, 'TcpDisconnectComplete').map((m) => [m.requestId, m.status, m.bytesTransferred])).toEqual([[2, Status.SUCCESS, 50]]);
    expect(b.core.connections()[0].state).toBe(S.FinWait2);
    expect(b.wire.filter((x) => x.seg.flags & TCP_RST)).toEqual([]); // R85
  });

  it('R117 (extended): a close that finishes at the target (our FIN acknowledged in LAST_ACK) offers the connection back once, and keeps it until terminated', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.peer({ seq: 5000, ack: 1000, flags: TCP_ACK | TCP_FIN }); // the peer closes first: CLOSE_WAIT
    b.take();
    b.host({ type: 'TcpDisconnect', ctx: b.ctx, requestId: 1, flags: 1, bytes: new Uint8Array(0) }); // LAST_ACK
    expect(only(b.take(), 'TcpEvent')).toEqual([]);
    b.peer({ seq: 5001, ack: 1001 }); // our FIN acknowledged: Closed
    const msgs = b.take();
    expect(only(msgs, 'TcpDisconnectComplete').map((m) => m.status)).toEqual([Status.SUCCESS]);
    expect(only(msgs, 'TcpEvent').map((e) => [e.eventType, e.info])).toEqual([[TcpEventType.Retrieve, UploadReason.UploadRequested]]);
    expect(b.core.connectionCount).toBe(1);
    b.terminate();
    const done = only(b.all, 'TerminateOffloadComplete')[0];
    expect(done.results.find((r) => r.blockId === 92)!.tcp!.delegated!.state).toBe(S.Closed);
  });

  it('R87/R88/R117: after our FIN the target still delivers and acknowledges data; entering TIME_WAIT asks for the upload; kept until terminated', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.host({ type: 'TcpDisconnect', ctx: b.ctx, requestId: 1, flags: 1, bytes: new Uint8Array(0) });
    b.peer({ seq: 5000, ack: 1001 });
    b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId: 2, capacity: 100, noPush: false }] });
    b.take();
    b.takeWire();
    b.peer({ seq: 5000, ack: 1001, payload: seqBytes(5000, 100), flags: TCP_ACK | TCP_PSH });
    const rc = only(b.take(), 'TcpReceiveComplete').flatMap((m) => m.entries);
    expect(rc.map((e) => [e.requestId, e.status, sha(e.bytes)])).toEqual([[2, Status.SUCCESS, sha(seqBytes(5000, 100))]]);
    b.peer({ seq: 5100, ack: 1001, flags: TCP_ACK | TCP_FIN });
    const msgs = b.take();
    expect(only(msgs, 'TcpEvent').map((e) => [e.eventType, e.info])).toEqual([[TcpEventType.Disconnect, 0], [TcpEventType.Retrieve, UploadReason.UploadRequested]]);
    expect(b.takeWire().map((x) => x.seg.ack).at(-1)).toBe(5101);
    expect(b.core.connections()[0].state).toBe(S.TimeWait);
    // The 2MSL wait ends in Closed; the target still keeps the connection for the host (R88, R28).
    b.advance(600_000);
    expect(b.core.connectionCount).toBe(1);
    b.terminate();
    const done = only(b.all, 'TerminateOffloadComplete')[0];
    expect(done.results.find((r) => r.blockId === 92)!.tcp!.delegated!.state).toBe(S.Closed);
    expect(b.wire.filter((x) => x.seg.flags & TCP_RST)).toEqual([]);
  });

  it('R84/R85/R86: abortive: RST, every send REQUEST_ABORTED before the disconnect completes SUCCESS, nothing acknowledged afterwards', () => {
    const b = new CoreBench();
    b.initiate(benchTcp());
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 100) }, { requestId: 2, bytes: seqBytes(1100, 100) }] });
    b.takeWire();
    b.take();
    b.host({ type: 'TcpDisconnect', ctx: b.ctx, requestId: 3, flags: 2, bytes: new Uint8Array(0) });
    const msgs = b.take();
    expect(msgs.map((m) => m.type)).toEqual(['TcpSendComplete', 'TcpDisconnectComplete']);
    expect(sendEntries(msgs)).toEqual([[1, Status.REQUEST_ABORTED, 0], [2, Status.REQUEST_ABORTED, 0]]);
    expect(only(msgs, 'TcpDisconnectComplete').map((m) => [m.requestId, m.status])).toEqual([[3, Status.SUCCESS]]);
    const w = b.takeWire();
    expect(w.map((x) => [x.seg.flags & TCP_RST, x.seg.seq])).toEqual([[TCP_RST, 1200]]);
    b.peer({ seq: 5000, ack: 1200, payload: seqBytes(5000, 50), flags: TCP_ACK | TCP_PSH });
    b.advance(1000);
    expect(b.takeWire()).toEqual([]);
    // R86: a later disconnect on the aborted connection fails with REQUEST_ABORTED.
    b.host({ type: 'TcpDisconnect', ctx: b.ctx, requestId: 4, flags: 1, bytes: new Uint8Array(0) });
    expect(only(b.take(), 'TcpDisconnectComplete').map((m) => [m.requestId, m.status])).toEqual([[4, Status.REQUEST_ABORTED]]);
  });
});
