/**
 * The hand-over barrier (docs/ipc-protocol.md, section 7; spec 2.6): after an initiate the target
 * queues the connection's wire segments until the host's empty TcpForward, so the segments the host
 * held during the initiate are processed first and the peer is never told about a hole.
 */
import { describe, expect, it } from 'vitest';
import { CoreBench, benchTcp, seqBytes } from '../support/chimney-sim.js';
import type { TargetMessage } from '../../src/ipc/messages.js';
import { Status } from '../../src/chimney/status.js';
import { encodeTcp } from '../../src/wire/tcp.js';
import { DEFAULT_FORWARD_WAIT_MS } from '../../src/target/core.js';
import { TCP_ACK, type TcpSegment } from '../../src/wire/tcp-segment.js';

const RCV_NXT = 5000;
const MSS = 1000;

function bench(): CoreBench {
  const b = new CoreBench();
  b.barrier = false; // the tests play the host's part of the barrier themselves
  b.initiate(benchTcp({ rcvNxt: RCV_NXT }));
  b.take();
  b.takeWire();
  return b;
}

/** A peer data segment as the host would forward it (TCP header + payload, no IP header). */
function peerSegment(seq: number, n: number): TcpSegment {
  return { srcPort: 80, dstPort: 40000, seq, ack: 1000, flags: TCP_ACK, window: 65535, urgent: 0, options: {}, payload: seqBytes(seq, n) };
}

function forward(b: CoreBench, segs: TcpSegment[], firstId = 1): void {
  b.host({ type: 'TcpForward', ctx: b.ctx, segments: segs.map((s, i) => ({ requestId: firstId + i, tcpBytes: encodeTcp(s) })) });
}

function acks(b: CoreBench): Array<{ ack: number; sack: number }> {
  return b.takeWire().map((w) => ({ ack: w.seg.ack, sack: w.seg.options.sack?.length ?? 0 }));
}

function rcvNxtAtTerminate(msgs: TargetMessage[]): number | undefined {
  const done = msgs.find((m) => m.type === 'TerminateOffloadComplete');
  return done?.type === 'TerminateOffloadComplete' ? done.results.find((r) => r.tcp)?.tcp?.delegated?.rcvNxt : undefined;
}

describe('hand-over barrier (spec 2.6, docs/ipc-protocol.md section 7)', () => {
  it('spec 2.6: wire segments wait for the empty forward; the held ones go first; no SACK and no duplicate ACK reach the peer', () => {
    const b = bench();
    // The host held [5000, 7000) during the initiate; the wire brings [7000, 9000) meanwhile.
    b.peer({ seq: RCV_NXT + 2 * MSS, payload: seqBytes(RCV_NXT + 2 * MSS, MSS) });
    b.peer({ seq: RCV_NXT + 3 * MSS, payload: seqBytes(RCV_NXT + 3 * MSS, MSS) });
    b.advance(5);
    expect(b.takeWire(), 'nothing is acknowledged while the held segments are on their way').toEqual([]);
    forward(b, [peerSegment(RCV_NXT, MSS), peerSegment(RCV_NXT + MSS, MSS)]);
    const completions = b.take().filter((m) => m.type === 'TcpForwardComplete');
    expect(completions).toHaveLength(1);
    b.advance(50); // the delayed ACK of the forwarded data; well within forwardWaitMs
    const beforeBarrier = acks(b);
    expect(beforeBarrier.every((a) => a.ack <= RCV_NXT + 2 * MSS), 'the wire segments still wait: more forwards may follow').toBe(true);
    forward(b, []);
    expect(b.take().filter((m) => m.type === 'TcpForwardComplete'), 'the empty forward completes nothing').toEqual([]);
    b.advance(200);
    const sent = [...beforeBarrier, ...acks(b)];
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((a) => a.sack === 0)).toBe(true);
    const seen = sent.map((a) => a.ack);
    expect(new Set(seen).size, 'no duplicate ACK').toBe(seen.length);
    expect(seen.at(-1)).toBe(RCV_NXT + 4 * MSS);
  });

  it.each([10, 0])('spec 2.6 / RFC 6298: no retransmission timeout fires while the acknowledgments wait behind the barrier (RTO due %i ms after the import)', (rtTimeoutDelta) => {
    const b = new CoreBench();
    b.barrier = false;
    // 3,000 bytes in flight (SndNxt = SndMax); 0 = the host exported an overdue timer (R49: fires
    // at once, which here means once the acknowledgments that waited are processed).
    b.initiate(benchTcp({ rcvNxt: RCV_NXT, chain: [seqBytes(1000, 3000)], sndNxt: 4000, sndMax: 4000, rtTimeoutDelta }));
    b.take();
    b.peer({ seq: RCV_NXT, ack: 4000 }); // the peer has it all; its ACK waits for the barrier
    b.advance(50);
    expect(b.takeWire(), 'no retransmission while the ACK waits').toEqual([]);
    forward(b, []);
    b.advance(1000);
    expect(b.takeWire().filter((w) => w.seg.payload.length > 0), 'nothing resent after the ACK is processed').toEqual([]);
    b.terminate();
    const done = b.all.find((m) => m.type === 'TerminateOffloadComplete');
    expect(done?.type === 'TerminateOffloadComplete' ? done.results.find((r) => r.tcp)?.tcp?.delegated?.sndUna : undefined).toBe(4000);
  });

  it('spec 2.6: without the barrier (the empty forward never comes) the wait ends after forwardWaitMs and the data is processed', () => {
    const b = bench();
    b.peer({ seq: RCV_NXT, payload: seqBytes(RCV_NXT, MSS) });
    b.advance(DEFAULT_FORWARD_WAIT_MS - 1);
    expect(b.takeWire()).toEqual([]);
    b.advance(2);
    b.advance(200); // the delayed ACK
    expect(acks(b).at(-1)?.ack).toBe(RCV_NXT + MSS);
  });

  it('spec 2.6 / R23: a terminate during the wait processes what waited first; the host gets it back in the state', () => {
    const b = bench();
    b.peer({ seq: RCV_NXT, payload: seqBytes(RCV_NXT, MSS) });
    b.peer({ seq: RCV_NXT + MSS, payload: seqBytes(RCV_NXT + MSS, MSS) });
    b.terminate();
    // The data was indicated before the export: refusing it lets the terminate complete (R22).
    for (const m of b.take()) {
      if (m.type === 'TcpReceiveIndicate') b.host({ type: 'IndicateReply', indicationId: m.indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
    }
    expect(rcvNxtAtTerminate(b.all)).toBe(RCV_NXT + 2 * MSS);
  });

  it('spec 2.6 / R84: an abortive disconnect during the wait drops what waited (nothing is acknowledged after the RST)', () => {
    const b = bench();
    b.peer({ seq: RCV_NXT, payload: seqBytes(RCV_NXT, MSS) });
    b.host({ type: 'TcpDisconnect', ctx: b.ctx, requestId: 9, flags: 0x02, bytes: new Uint8Array(0) });
    b.advance(500);
    const wire = b.takeWire();
    expect(wire.map((w) => w.seg.flags & 0x04)).toEqual([0x04]);
    expect(wire[0].seg.ack === RCV_NXT || (wire[0].seg.flags & TCP_ACK) === 0).toBe(true);
  });
});
