/**
 * Initiate (offload) requirements R35-R56 on the target core (CoreBench: message by message,
 * scripted peer).
 */
import { describe, expect, it } from 'vitest';
import { CoreBench, benchNeighbor, benchPath, benchTcp, seqBytes, sha } from '../support/chimney-sim.js';
import { Status } from '../../src/chimney/status.js';
import { TCP_CONST_FLAG, TcpEventType, UploadReason, type Block } from '../../src/chimney/state.js';
import type { TargetMessage } from '../../src/ipc/messages.js';
import { TcpState as S } from '../../src/tcp/types.js';
import { TCP_ACK, TCP_PSH } from '../../src/wire/tcp-segment.js';
import { mac } from '../../src/wire/addresses.js';

type Msg<K extends TargetMessage['type']> = Extract<TargetMessage, { type: K }>;

function only<K extends TargetMessage['type']>(msgs: TargetMessage[], type: K): Array<Msg<K>> {
  return msgs.filter((m) => m.type === type) as Array<Msg<K>>;
}

function tcpBlock(blockId: number, localPort: number, over: Parameters<typeof benchTcp>[0] = {}): Block {
  return { blockId, role: 'new', layer: 'tcp', handle: 1000 + blockId, state: benchTcp({ localPort, ...over }), children: [] };
}

function pathBlock(blockId: number, children: Block[], pathMtu = 1500): Block {
  return { blockId, role: 'new', layer: 'path', handle: 1000 + blockId, state: benchPath(pathMtu), children };
}

function neighborBlock(blockId: number, children: Block[], over: Parameters<typeof benchNeighbor>[0] = {}): Block {
  return { blockId, role: 'new', layer: 'neighbor', handle: 1000 + blockId, state: benchNeighbor(over), children };
}

function initiate(b: CoreBench, blocks: Block[]): Msg<'InitiateOffloadComplete'> {
  const opId = b.opId();
  b.host({ type: 'InitiateOffload', opId, blocks });
  const done = only(b.all, 'InitiateOffloadComplete').filter((m) => m.opId === opId);
  expect(done).toHaveLength(1); // R35: exactly one completion
  return done[0];
}

describe('initiate requirements (spec 2.1, R35-R56)', () => {
  it('R35-R41/R43/R55: the partial-offload example N1 -> {P1 -> {T1, T2}, P2 -> {T3}}: pre-order statuses, causes, contexts only where offloaded', () => {
    const b = new CoreBench({ limits: { maxReceiveWindow: 100_000 } });
    const done = initiate(b, [neighborBlock(1, [
      pathBlock(2, [tcpBlock(3, 40001), tcpBlock(4, 40002, { initialRcvWnd: 200_000 })]),
      pathBlock(5, [tcpBlock(6, 40003)], 9000),
    ])]);
    expect(done.results.map((r) => [r.blockId, r.status])).toEqual([
      [1, Status.OFFLOAD_PARTIAL_SUCCESS], [2, Status.OFFLOAD_PARTIAL_SUCCESS], [3, Status.SUCCESS],
      [4, Status.OFFLOAD_TCP_RCV_WINDOW], [5, Status.OFFLOAD_PATH_MTU], [6, Status.FAILURE],
    ]);
    const ctx = done.results.map((r) => r.ctx);
    expect(ctx.slice(3)).toEqual([undefined, undefined, undefined]); // R38
    expect(new Set(ctx.slice(0, 3)).size).toBe(3); // R55: unique
    expect(b.core.connectionCount).toBe(1);
    // T3 was never attempted, so its port is free for a later offload; T1 is live at once.
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 10), flags: TCP_ACK | TCP_PSH, srcPort: 80 });
    expect(b.takeWire()).toEqual([]); // port 40000 is not offloaded: raw
    expect(only(b.take(), 'RawFrame')).toHaveLength(1);
  });

  it('R37/R40/R46: placeholders and linkers: a linker adds dependents to an existing object; its status follows its dependents', () => {
    const b = new CoreBench({ limits: { maxReceiveWindow: 100_000 } });
    const first = initiate(b, [neighborBlock(1, [pathBlock(2, [tcpBlock(3, 40001)])])]);
    const nCtx = first.results[0].ctx!;
    const pCtx = first.results[1].ctx!;
    // A second initiate while the first connection lives: placeholder root, linker to the path.
    const second = initiate(b, [
      { blockId: 10, role: 'placeholder', layer: 'neighbor', children: [] },
      { blockId: 11, role: 'linker', layer: 'neighbor', ctx: nCtx, children: [{ blockId: 12, role: 'linker', layer: 'path', ctx: pCtx, children: [tcpBlock(13, 40002), tcpBlock(14, 40003, { initialRcvWnd: 500_000 })] }] },
      { blockId: 15, role: 'linker', layer: 'neighbor', ctx: nCtx, children: [{ blockId: 16, role: 'linker', layer: 'path', ctx: pCtx, children: [tcpBlock(17, 40004, { initialRcvWnd: 500_000 })] }] },
      { blockId: 18, role: 'linker', layer: 'neighbor', ctx: nCtx, children: [{ blockId: 19, role: 'linker', layer: 'path', ctx: pCtx, children: [tcpBlock(20, 40005)] }] },
    ]);
    expect(second.results.map((r) => [r.blockId, r.status])).toEqual([
      [10, Status.SUCCESS],
      [11, Status.SUCCESS], [12, Status.OFFLOAD_PARTIAL_SUCCESS], [13, Status.SUCCESS], [14, Status.OFFLOAD_TCP_RCV_WINDOW],
      [15, Status.SUCCESS], [16, Status.FAILURE], [17, Status.OFFLOAD_TCP_RCV_WINDOW],
      [18, Status.SUCCESS], [19, Status.SUCCESS], [20, Status.SUCCESS],
    ]);
    expect(b.core.connectionCount).toBe(3);
    expect(second.results.filter((r) => r.ctx !== undefined).map((r) => r.blockId)).toEqual([13, 20]);
  });

  it('R42: when the root block fails, nothing further is offloaded and every remaining block is FAILURE', () => {
    const b = new CoreBench();
    const done = initiate(b, [
      neighborBlock(1, [pathBlock(2, [tcpBlock(3, 40001)])], { vlanId: 5 }),
      neighborBlock(4, [pathBlock(5, [tcpBlock(6, 40002)])]),
    ]);
    expect(done.results.map((r) => [r.blockId, r.status, r.ctx])).toEqual([
      [1, Status.OFFLOAD_VLAN_ENTRIES, undefined], [2, Status.FAILURE, undefined], [3, Status.FAILURE, undefined],
      [4, Status.FAILURE, undefined], [5, Status.FAILURE, undefined], [6, Status.FAILURE, undefined],
    ]);
    expect(b.core.connectionCount).toBe(0);
  });

  it('R43/R44: capacity limits name their object (TCP, path, neighbor entries)', () => {
    const b = new CoreBench({ limits: { maxConnections: 2, maxPaths: 1, maxNeighbors: 1 } });
    const done = initiate(b, [neighborBlock(1, [pathBlock(2, [tcpBlock(3, 40001), tcpBlock(4, 40002), tcpBlock(5, 40003)]), pathBlock(6, [])])]);
    expect(done.results.map((r) => [r.blockId, r.status])).toEqual([
      [1, Status.OFFLOAD_PARTIAL_SUCCESS], [2, Status.OFFLOAD_PARTIAL_SUCCESS], [3, Status.SUCCESS], [4, Status.SUCCESS],
      [5, Status.OFFLOAD_TCP_ENTRIES], [6, Status.OFFLOAD_PATH_ENTRIES],
    ]);
    const more = initiate(b, [neighborBlock(7, [])]);
    expect(more.results.map((r) => r.status)).toEqual([Status.OFFLOAD_NEIGHBOR_ENTRIES]);
    expect(b.core.connectionCount).toBe(2);
  });

  it('R45/R56: an upload request raised while the initiate runs reaches the host after the completion, with the host handle', () => {
    const b = new CoreBench();
    // Retransmissions already beyond the limit and the timer due now: the engine times out at once.
    const tcp = benchTcp({ chain: [seqBytes(1000, 100)], sndNxt: 1100, rtTimeoutDelta: 0, handle: 77 });
    tcp.delegated.rtCount = 40;
    b.initiate(tcp, { handle: 77 });
    const msgs = b.take();
    expect(msgs.map((m) => m.type)).toEqual(['InitiateOffloadComplete', 'TcpEvent']);
    expect(only(msgs, 'TcpEvent').map((e) => [e.handle, e.eventType, e.info])).toEqual([[77, TcpEventType.Retrieve, UploadReason.TimeoutExpiration]]);
  });

  it('R47/R48/R56/R97: BufferedData is copied, held (not indicated), delivered first when a request is posted', () => {
    const b = new CoreBench();
    const buffered = seqBytes(4700, 300);
    const original = sha(buffered);
    b.initiate(benchTcp({ rcvNxt: 5000, bufferedData: buffered }), { handle: 55 });
    buffered.fill(0); // the host frees its buffer after the completion: the target must have copied it
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 100), flags: TCP_ACK | TCP_PSH });
    expect(b.take().map((m) => m.type)).toEqual(['InitiateOffloadComplete']);
    b.host({ type: 'TcpReceive', ctx: b.ctx, requests: [{ requestId: 1, capacity: 250, noPush: false }] });
    const msgs = b.take();
    const rc = only(msgs, 'TcpReceiveComplete').flatMap((m) => m.entries);
    expect(rc.map((e) => [e.requestId, e.status, e.bytesTransferred])).toEqual([[1, Status.SUCCESS, 250]]);
    expect(sha(rc[0].bytes)).toBe(sha(seqBytes(4700, 250)));
    expect(sha(seqBytes(4700, 300))).toBe(original);
    const ind = only(msgs, 'TcpReceiveIndicate');
    expect(ind.map((i) => [i.handle, sha(i.bytes)])).toEqual([[55, sha(seqBytes(4950, 150))]]);
  });

  it('R47: BufferedData the target cannot hold fails the TCP block with FAILURE (and the path PARTIAL_SUCCESS)', () => {
    const b = new CoreBench({ limits: { maxBufferedBytes: 100 } });
    const done = b.initiate(benchTcp({ rcvNxt: 5000, bufferedData: seqBytes(4700, 300) }));
    expect(done.results.map((r) => r.status)).toEqual([Status.SUCCESS, Status.OFFLOAD_PARTIAL_SUCCESS, Status.FAILURE]);
  });

  it('R49/R50: chain [SndNxt, SndMax) first, then the unsent rest, then later sends; chain completions before later requests', () => {
    const b = new CoreBench();
    const chain = [seqBytes(1000, 600), seqBytes(1600, 600)];
    b.initiate(benchTcp({ sndUna: 1000, sndNxt: 1300, sndMax: 1700, chain }));
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 7, bytes: seqBytes(2200, 100) }] });
    const w = b.takeWire().filter((x) => x.seg.payload.length > 0);
    expect(w[0].seg.seq).toBe(1300);
    const sent = new Uint8Array(w.reduce((n, x) => n + x.seg.payload.length, 0));
    let o = 0;
    for (const x of w) { sent.set(x.seg.payload, o); o += x.seg.payload.length; }
    expect(sha(sent)).toBe(sha(seqBytes(1300, 1000)));
    b.peer({ seq: 5000, ack: 2300 });
    const sc = only(b.take(), 'TcpSendComplete').flatMap((m) => m.entries);
    expect(sc.map((e) => [e.requestId, e.status, e.bytesTransferred])).toEqual([[100, Status.SUCCESS, 600], [101, Status.SUCCESS, 600], [7, Status.SUCCESS, 100]]);
    // [SndUna, SndNxt) is retransmitted when needed: after an RTO the segment at 1000 goes again.
    const c = new CoreBench();
    c.initiate(benchTcp({ sndUna: 1000, sndNxt: 1300, sndMax: 1300, chain: [seqBytes(1000, 300)], rtTimeoutDelta: 50 }));
    expect(c.takeWire()).toEqual([]);
    c.advance(50);
    expect(c.takeWire().map((x) => [x.seg.seq, sha(x.seg.payload)])).toEqual([[1000, sha(seqBytes(1000, 300))]]);
  });

  it('R51: a failed initiate neither completes nor alters nor sends the chain', () => {
    const b = new CoreBench({ limits: { maxReceiveWindow: 1000 } });
    const chain = [seqBytes(1000, 300), seqBytes(1300, 200)];
    const before = chain.map(sha);
    const done = b.initiate(benchTcp({ chain, sndNxt: 1000, sndMax: 1000 }));
    expect(done.results[2].status).toBe(Status.OFFLOAD_TCP_RCV_WINDOW);
    b.advance(10_000);
    expect(b.all.map((m) => m.type)).toEqual(['InitiateOffloadComplete']);
    expect(b.wire).toEqual([]);
    expect(chain.map(sha)).toEqual(before);
  });

  it('R52: the retransmit timer resumes from the delegated delta; -1 means not running', () => {
    const b = new CoreBench();
    b.initiate(benchTcp({ chain: [seqBytes(1000, 100)], rtTimeoutDelta: 300 }));
    b.advance(299);
    expect(b.takeWire()).toEqual([]);
    b.advance(1);
    expect(b.takeWire().map((x) => x.seg.seq)).toEqual([1000]);
    const c = new CoreBench();
    c.initiate(benchTcp({ rtTimeoutDelta: -1 }));
    c.advance(60_000);
    expect(c.wire).toEqual([]);
  });

  it('R53/R78: timestamps continue the host clock (NicDelta = TsTime - NicTime) on every segment', () => {
    const b = new CoreBench();
    b.advance(1000);
    b.initiate(benchTcp({ constFlags: TCP_CONST_FLAG.TIMESTAMP_ENABLED, tsTime: 100_000, tsRecent: 42 }));
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 100) }] });
    b.advance(50);
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 2, bytes: seqBytes(1100, 100) }] });
    const w = b.takeWire();
    expect(w.map((x) => [x.seg.seq, x.seg.options.ts])).toEqual([[1000, { val: 100_000, ecr: 42 }], [1100, { val: 100_050, ecr: 42 }]]);
  });

  it('R54: states Closed, Listen, SynSent, SynRcvd and TimeWait are refused with FAILURE', () => {
    for (const state of [S.Closed, S.Listen, S.SynSent, S.SynRcvd, S.TimeWait]) {
      const b = new CoreBench();
      const done = b.initiate(benchTcp({ state }));
      expect(done.results.map((r) => r.status), S[state]).toEqual([Status.SUCCESS, Status.OFFLOAD_PARTIAL_SUCCESS, Status.FAILURE]);
      expect(b.core.connectionCount).toBe(0);
    }
  });

  it('R43/R79: a non-zero DlSourceAddress is used as the source MAC; the next hop is DlDestinationAddress; TTL/TOS from CACHED', () => {
    const b = new CoreBench();
    const src = mac('02:aa:bb:cc:dd:ee');
    const dst = mac('02:11:22:33:44:55');
    b.initiate(benchTcp({ ttl: 33, tos: 0x28 }), { neighbor: benchNeighbor({ dlSourceAddress: src, dst }) });
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 10) }] });
    const w = b.takeWire();
    expect(w.map((x) => [Buffer.from(x.srcMac).toString('hex'), Buffer.from(x.dstMac).toString('hex'), x.ttl, x.tos])).toEqual([['02aabbccddee', '021122334455', 33, 0x28]]);
  });
});
