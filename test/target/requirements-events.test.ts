/**
 * Events, timers and special packets R111-R120 on the target core (CoreBench).
 */
import { describe, expect, it } from 'vitest';
import { CoreBench, benchNeighbor, benchTcp, seqBytes, sha } from '../support/chimney-sim.js';
import { Status } from '../../src/chimney/status.js';
import { TCP_CACHED_FLAG, TcpEventType, UploadReason } from '../../src/chimney/state.js';
import type { TargetMessage } from '../../src/ipc/messages.js';
import { TcpState as S } from '../../src/tcp/types.js';
import { TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG } from '../../src/wire/tcp-segment.js';
import { buildTcpFrame } from '../../src/wire/frame.js';
import { internetChecksum } from '../../src/wire/checksum.js';
import { HOST_MAC, PEER_MAC, HOST_IP, PEER_IP } from '../support/chimney-sim.js';

type Msg<K extends TargetMessage['type']> = Extract<TargetMessage, { type: K }>;

function only<K extends TargetMessage['type']>(msgs: TargetMessage[], type: K): Array<Msg<K>> {
  return msgs.filter((m) => m.type === type) as Array<Msg<K>>;
}

function bench(over: Parameters<typeof benchTcp>[0] = {}, neighbor?: ReturnType<typeof benchNeighbor>): CoreBench {
  const b = new CoreBench();
  b.initiate(benchTcp(over), { neighbor });
  b.take();
  b.takeWire();
  return b;
}

function setParams(b: CoreBench, over: Record<string, number>): void {
  b.host({ type: 'SetParameters', opId: 99, ticksPerSecond: 1000, tcpAckFrequency: 2, tcpDelayedAckTicks: 40, tcpMaximumRetransmissions: 15, tcpDoubtReachabilityRetransmissions: 3, tcpSwsPreventionTicks: 1000, tcpDuplicateAckThreshold: 3, tcpPushTicks: 500, nceStaleTicks: 30_000, ...over });
}

/** A peer data frame for the offloaded 4-tuple (to be altered into special packets). */
function peerFrame(seq: number, n: number): Uint8Array {
  return buildTcpFrame({ srcMac: PEER_MAC, dstMac: HOST_MAC, ip: { version: 4, src: PEER_IP, dst: HOST_IP }, segment: { srcPort: 80, dstPort: 40000, seq, ack: 1000, flags: TCP_ACK | TCP_PSH, window: 65535, urgent: 0, options: {}, payload: seqBytes(seq, n) } }).slice();
}

function fixIpChecksum(f: Uint8Array): Uint8Array {
  const ihl = (f[14] & 0x0f) * 4;
  f[24] = 0; f[25] = 0;
  const c = internetChecksum(f, 14, ihl);
  f[24] = c >>> 8; f[25] = c & 0xff;
  return f;
}

describe('events, timers and special packets (spec 4.8, 5; R111-R120)', () => {
  it('R112: an RST outside the window is dropped silently; an in-window RST with the wrong sequence gets one challenge ACK per period', () => {
    const b = bench();
    b.peer({ seq: 5000 + 200_000, ack: 1000, flags: TCP_RST });
    expect(b.take()).toEqual([]);
    expect(b.takeWire()).toEqual([]);
    b.peer({ seq: 5100, ack: 1000, flags: TCP_RST });
    b.peer({ seq: 5200, ack: 1000, flags: TCP_RST });
    expect(b.takeWire().map((w) => [w.seg.seq, w.seg.ack, w.seg.flags])).toEqual([[1000, 5000, TCP_ACK]]);
    expect(b.take()).toEqual([]);
    expect(b.core.connections()[0].state).toBe(S.Established);
  });

  it('spec 4.8 blind reset: a wrong-sequence RST starts probing 5 min later (10 x 1 s with zero keepalive values); an acceptable segment stops it; all unanswered uploads in Closed state', () => {
    const b = bench();
    b.peer({ seq: 5100, ack: 1000, flags: TCP_RST });
    b.takeWire();
    b.advance(299_999);
    expect(b.takeWire(), 'no probe before 5 min').toEqual([]);
    b.advance(1);
    const probe = b.takeWire();
    expect(probe.map((w) => [w.seg.seq, w.seg.payload.length])).toEqual([[999, 0]]); // SND.NXT - 1, no data
    b.peer({ seq: 5000, ack: 1000 }); // the peer answers: the mitigation's timer stops
    b.advance(3_600_000);
    expect(b.takeWire(), 'no keepalive of its own (KEEP_ALIVE_ENABLED is off)').toEqual([]);
    // Again, and this time nobody answers: 10 probes 1 s apart, then the connection is dead.
    b.peer({ seq: 5100, ack: 1000, flags: TCP_SYN });
    b.takeWire();
    b.advance(300_000 + 9 * 1000);
    expect(b.takeWire()).toHaveLength(10);
    const meanwhile = b.take();
    expect(only(meanwhile, 'TcpEvent'), 'still alive after the tenth probe').toEqual([]);
    // R119: the idle neighbor was stale before the probes; the query holds a terminate (R22): answer it.
    for (const q of only(meanwhile, 'NeighborReachabilityQuery')) b.host({ type: 'ReachabilityReply', indicationId: q.indicationId, hostReachabilityDelta: 0 });
    b.advance(1000);
    expect(only(b.take(), 'TcpEvent').map((e) => [e.eventType, e.info])).toEqual([[TcpEventType.Retrieve, UploadReason.TimeoutExpiration]]);
    b.terminate();
    const done = only(b.all, 'TerminateOffloadComplete')[0];
    expect(done.results.find((r) => r.tcp)?.tcp?.delegated?.state).toBe(S.Closed);
  });

  it('R113: an out-of-window SYN gets an ACK, an in-window out-of-order SYN at most one challenge ACK per 3 s, an in-order SYN uploads in Closed state', () => {
    const b = bench();
    b.peer({ seq: 5000 + 500_000, flags: TCP_SYN });
    expect(b.takeWire().map((w) => [w.seg.ack, w.seg.flags])).toEqual([[5000, TCP_ACK]]);
    b.advance(3000);
    b.peer({ seq: 5100, flags: TCP_SYN });
    b.advance(2999);
    b.peer({ seq: 5100, flags: TCP_SYN });
    expect(b.takeWire().map((w) => [w.seg.ack, w.seg.flags])).toEqual([[5000, TCP_ACK]]);
    expect(b.take()).toEqual([]);
    b.peer({ seq: 5000, flags: TCP_SYN });
    const msgs = b.take();
    expect(msgs.map((m) => m.type)).toEqual(['TcpEvent', 'RawFrame']);
    expect(only(msgs, 'TcpEvent').map((e) => [e.handle, e.eventType, e.info])).toEqual([[3, TcpEventType.Retrieve, UploadReason.InvalidState]]);
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 10) });
    expect(only(b.take(), 'RawFrame')).toHaveLength(1);
    b.advance(60_000);
    expect(b.takeWire()).toEqual([]);
    const op = b.terminate();
    const done = only(b.all, 'TerminateOffloadComplete').find((m) => m.opId === op)!;
    const d = done.results.find((r) => r.blockId === 92)!.tcp!.delegated!;
    expect([d.state, d.rcvNxt]).toEqual([S.Closed, 5000]);
  });

  it('R114: an URG segment with an unacceptable sequence number is discarded and the connection carries on', () => {
    const b = bench();
    b.peer({ seq: 5000 + 300_000, ack: 1000, payload: seqBytes(0, 10), flags: TCP_ACK | TCP_URG, urgent: 1 });
    expect(b.take()).toEqual([]);
    expect(b.takeWire()).toEqual([]);
    b.peer({ seq: 5000, ack: 1000, payload: seqBytes(5000, 10), flags: TCP_ACK | TCP_PSH });
    expect(only(b.take(), 'TcpReceiveIndicate').map((i) => sha(i.bytes))).toEqual([sha(seqBytes(5000, 10))]);
  });

  it('R115/R28: keepalive probes all unanswered produce TcpIndicateRetrieve + TimeoutExpiration; the connection stays and is returned Closed', () => {
    const b = bench({ cachedFlags: TCP_CACHED_FLAG.KEEP_ALIVE_ENABLED, kaTimeout: 1000, kaInterval: 100, kaProbeCount: 3, kaTimeoutDelta: 1000 });
    b.advance(999);
    expect(b.takeWire()).toEqual([]);
    b.advance(2000);
    const probes = b.takeWire();
    expect(probes.map((w) => [w.seg.seq, w.seg.payload.length])).toEqual([[999, 0], [999, 0], [999, 0]]);
    expect(only(b.take(), 'TcpEvent').map((e) => [e.eventType, e.info])).toEqual([[TcpEventType.Retrieve, UploadReason.TimeoutExpiration]]);
    expect(b.core.connectionCount).toBe(1);
    // R28: the dead connection is returned in Closed state; nothing more was sent meanwhile.
    b.advance(60_000);
    expect(b.takeWire()).toEqual([]);
    const op = b.terminate();
    const done = only(b.all, 'TerminateOffloadComplete').find((m) => m.opId === op)!;
    expect(done.results.find((r) => r.blockId === 92)!.tcp!.delegated!.state).toBe(S.Closed);
  });

  it('R115: unanswered zero-window probes beyond TcpMaximumRetransmissions produce TcpIndicateRetrieve + TimeoutExpiration', () => {
    const b = new CoreBench();
    setParams(b, { tcpMaximumRetransmissions: 3 });
    b.initiate(benchTcp({ chain: [seqBytes(1000, 100)], sndNxt: 1000, sndMax: 1000, sndWnd: 0, rtTimeoutDelta: -1 }));
    b.take();
    b.advance(600_000);
    const probes = b.wire.filter((w) => w.seg.payload.length > 0);
    expect(probes.length).toBeGreaterThanOrEqual(3);
    expect(probes.every((w) => w.seg.seq === 1000 && w.seg.payload.length === 1 && w.seg.payload[0] === seqBytes(1000, 1)[0])).toBe(true);
    expect(only(b.take(), 'TcpEvent').filter((e) => e.eventType === TcpEventType.Retrieve).map((e) => e.info)).toEqual([UploadReason.TimeoutExpiration]);
    expect(b.core.connectionCount).toBe(1);
  });

  it('R119: one NeighborReachabilityQuery with the current HRD and NRD before sending through a stale neighbor; the answer is applied', () => {
    const b = new CoreBench();
    setParams(b, { nceStaleTicks: 1000 });
    // A long RTT keeps retransmissions (which also check reachability) out of this timeline.
    b.initiate(benchTcp({ srttX8: 8 * 2000, rttvarX4: 4 * 100 }), { neighbor: benchNeighbor({ hrd: 5000, nrd: 4000 }) });
    b.take();
    b.advance(100);
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 1, bytes: seqBytes(1000, 10) }] });
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 2, bytes: seqBytes(1010, 10) }] });
    const q = only(b.take(), 'NeighborReachabilityQuery');
    expect(q.map((x) => [x.handle, x.neighbor.cached.hostReachabilityDelta, x.neighbor.delegated.nicReachabilityDelta])).toEqual([[1, 5000, 4100]]);
    expect(b.takeWire().map((w) => w.seg.seq)).toEqual([1000, 1010]); // sending is not held up
    b.host({ type: 'ReachabilityReply', indicationId: q[0].indicationId, hostReachabilityDelta: 0 });
    b.advance(900);
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 3, bytes: seqBytes(1020, 10) }] });
    expect(only(b.take(), 'NeighborReachabilityQuery')).toEqual([]); // the host confirmed 900 ms ago
    // Forward progress (an ACK of new data) makes the neighbor fresh on the target side.
    b.advance(500);
    b.peer({ seq: 5000, ack: 1030 });
    b.advance(900);
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 4, bytes: seqBytes(1030, 10) }] });
    expect(only(b.take(), 'NeighborReachabilityQuery')).toEqual([]);
    b.advance(1100);
    b.host({ type: 'TcpSend', ctx: b.ctx, buffers: [{ requestId: 5, bytes: seqBytes(1040, 10) }] });
    const q2 = only(b.take(), 'NeighborReachabilityQuery');
    expect(q2.map((x) => [x.neighbor.cached.hostReachabilityDelta, x.neighbor.delegated.nicReachabilityDelta])).toEqual([[0, 2000]]);
    b.host({ type: 'ReachabilityReply', indicationId: q2[0].indicationId, hostReachabilityDelta: 30 });
    b.host({ type: 'ReachabilityReply', indicationId: q2[0].indicationId, hostReachabilityDelta: 30 });
    expect(only(b.take(), 'Error').map((e) => e.status)).toEqual([Status.IPC_UNKNOWN_CONTEXT]);
  });

  it('R120: ARP, ICMP, IPv4 with options and IP fragments of the offloaded 4-tuple go to the host raw, never into the engine', () => {
    const b = bench();
    const frames: Uint8Array[] = [];
    // ARP request (who-has HOST_IP).
    const arp = new Uint8Array(42);
    arp.set(HOST_MAC, 0); arp.set(PEER_MAC, 6); arp[12] = 0x08; arp[13] = 0x06;
    arp.set([0, 1, 8, 0, 6, 4, 0, 1], 14); arp.set(PEER_MAC, 22);
    frames.push(arp);
    // ICMP: the same packet with protocol 1.
    const icmp = peerFrame(5000, 8); icmp[23] = 1; frames.push(fixIpChecksum(icmp));
    // IPv4 options: four NOP/EOL bytes inserted after the 20-byte header.
    const plain = peerFrame(5000, 20);
    const opt = new Uint8Array(plain.length + 4);
    opt.set(plain.subarray(0, 34), 0); opt.set([1, 1, 1, 0], 34); opt.set(plain.subarray(34), 38);
    opt[14] = 0x46;
    const tl = ((opt[16] << 8) | opt[17]) + 4; opt[16] = tl >>> 8; opt[17] = tl & 0xff;
    frames.push(fixIpChecksum(opt));
    // A first fragment (MF set).
    const frag = peerFrame(5000, 20); frag[20] |= 0x20; frames.push(fixIpChecksum(frag));
    for (const f of frames) b.core.onFrame(f);
    const raw = only(b.take(), 'RawFrame');
    expect(raw.map((m) => sha(m.frame))).toEqual(frames.map(sha));
    expect(b.takeWire()).toEqual([]);
    b.advance(1000);
    expect(b.takeWire()).toEqual([]);
    expect(b.core.connections()[0].connection.rcvNxt).toBe(5000);
  });
});
