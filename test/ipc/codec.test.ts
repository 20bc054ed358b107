import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Status } from '../../src/chimney/status.js';
import { decodeBody, decodeFrame, encodeFrame, FRAME_HEADER_BYTES, IpcDecodeError } from '../../src/ipc/codec.js';
import { MAX_FRAME_BYTES } from '../../src/ipc/limits.js';
import { MESSAGE_LIST, MESSAGES, type Message } from '../../src/ipc/messages.js';
import { IpcSchemaError, Writer } from '../../src/ipc/schema.js';
import { initiateTree, SAMPLES, samplesOf, seqBytes, tcpState, terminateResults } from './samples.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function roundTrip(m: Message): Message {
  const r = decodeFrame(encodeFrame(m));
  if (!r.ok) throw r.error;
  return r.message;
}

function encodeError(m: unknown): IpcSchemaError {
  try {
    encodeFrame(m as Message);
  } catch (e) {
    if (e instanceof IpcSchemaError) return e;
    throw e;
  }
  throw new Error('encoded without complaint');
}

function decodeError(frame: Uint8Array): IpcDecodeError {
  const r = decodeFrame(frame);
  if (r.ok) throw new Error(`decoded: ${JSON.stringify(r.message.type)}`);
  return r.error;
}

/** Offset of the little-endian u32 `v` in `b` (it must occur exactly once). */
function offsetOfU32(b: Uint8Array, v: number): number {
  const needle = Buffer.alloc(4);
  needle.writeUInt32LE(v >>> 0);
  const buf = Buffer.from(b);
  const at = buf.indexOf(needle);
  expect(at, 'sentinel present').toBeGreaterThanOrEqual(0);
  expect(buf.indexOf(needle, at + 1), 'sentinel unique').toBe(-1);
  return at;
}

describe('round trip (spec 8.2 message set)', () => {
  it('every message type has samples', () => {
    for (const m of MESSAGE_LIST) expect(samplesOf(m.name).length, m.name).toBeGreaterThan(0);
  });

  it.each(SAMPLES.map((m, i) => [`${i} ${m.type}`, m] as const))('%s decodes to exactly what was encoded', (_n, m) => {
    expect(roundTrip(m)).toStrictEqual(m);
  });

  it('re-encoding a decoded message gives the same bytes (one encoding per value)', () => {
    for (const m of SAMPLES) {
      const a = encodeFrame(m);
      expect(hex(encodeFrame(roundTrip(m)))).toBe(hex(a));
    }
  });

  it('decoded byte fields are plain Uint8Array views of the frame (zero copy)', () => {
    const frame = encodeFrame(SAMPLES.find((m) => m.type === 'RawFrame')!);
    const r = decodeFrame(frame);
    expect(r.ok).toBe(true);
    const f = (r as { message: { frame: Uint8Array } }).message.frame;
    expect(Object.getPrototypeOf(f)).toBe(Uint8Array.prototype);
    expect(f.buffer).toBe(frame.buffer);
  });

  it('timers: model -1 is 0xFFFFFFFF on the wire, 0xFFFFFFFE stays a tick count (spec 1.5, 5.4)', () => {
    const m: Message = { type: 'InitiateOffload', opId: 0x0a0b0c0d, blocks: [{ blockId: 1, role: 'new', layer: 'tcp', handle: 2, children: [], state: tcpState({ kaTimeoutDelta: -1, rtTimeoutDelta: 0xfffffffe, dWnd: 0x5a5a5a5a }) }] };
    const frame = encodeFrame(m);
    // dWnd follows rtTimeoutDelta, which follows kaTimeoutDelta and rtCount.
    const dWnd = offsetOfU32(frame, 0x5a5a5a5a);
    expect(hex(frame.subarray(dWnd - 4, dWnd))).toBe('feffffff');
    expect(hex(frame.subarray(dWnd - 9, dWnd - 5))).toBe('ffffffff');
    const back = roundTrip(m) as typeof m;
    const d = (back.blocks[0] as { state: { delegated: { kaTimeoutDelta: number; rtTimeoutDelta: number } } }).state.delegated;
    expect([d.kaTimeoutDelta, d.rtTimeoutDelta]).toEqual([-1, 0xfffffffe]);
  });

  it('a three-level tree keeps its shape and pre-order (spec 1.8, 2.1)', () => {
    const back = roundTrip({ type: 'InitiateOffload', opId: 1, blocks: initiateTree }) as { blocks: typeof initiateTree };
    const order: number[] = [];
    const walk = (bs: typeof initiateTree): void => bs.forEach((b) => (order.push(b.blockId), walk(b.children)));
    walk(back.blocks);
    expect(order).toEqual([1, 2, 3, 4, 5, 6, 9, 10, 11]);
  });
});

describe('wire format (docs/ipc-protocol.md examples)', () => {
  it('TcpSendComplete: u32 LE length, u16 LE type, fields in order', () => {
    const frame = encodeFrame({ type: 'TcpSendComplete', entries: [{ ctx: 7, requestId: 0x01020304, status: Status.REQUEST_ABORTED, bytesTransferred: 1 }] });
    expect(hex(frame)).toBe(
      '16000000' + '3000' + '01000000' + '07000000' + '04030201' + '400200c0' + '01000000',
    );
  });

  it('Hello from a host', () => {
    const frame = encodeFrame({ type: 'Hello', version: 2, role: 'host', software: 'h' });
    expect(hex(frame)).toBe('0b000000' + '0100' + '0200' + '00' + '01000000' + '68' + '00');
  });

  it('TcpReceive with an optional field present and absent', () => {
    const frame = encodeFrame({ type: 'TcpReceive', ctx: 1, requests: [{ requestId: 2, capacity: 3, noPush: true, prefilled: new Uint8Array([0xaa]) }, { requestId: 4, capacity: 0, noPush: false }] });
    expect(hex(frame)).toBe(
      '23000000' + '2100' + '01000000' + '02000000'
      + '02000000' + '03000000' + '01' + '01' + '01000000' + 'aa'
      + '04000000' + '00000000' + '00' + '00',
    );
  });

  it('InitiateOffload with a placeholder neighbor and a new IPv4 path under it', () => {
    const frame = encodeFrame({
      type: 'InitiateOffload', opId: 5, blocks: [{
        blockId: 1, role: 'placeholder', layer: 'neighbor', children: [
          { blockId: 2, role: 'new', layer: 'path', handle: 9, state: { version: 4, const: { sourceAddress: new Uint8Array([10, 0, 0, 1]), destinationAddress: new Uint8Array([10, 0, 0, 2]) }, cached: { pathMtu: 1500 } }, children: [] },
        ],
      }],
    });
    expect(hex(frame)).toBe(
      '30000000' + '1000' + '05000000' + '01000000'
      + '00' + '01000000' + '00' + '01000000'
      + '03' + '02000000' + '09000000' + '04' + '04' + '0a000001' + '04' + '0a000002' + 'dc050000' + '00000000',
    );
  });

  it('the encoding of every sample is pinned (digest of all frames)', () => {
    const h = createHash('sha256');
    for (const m of SAMPLES) h.update(encodeFrame(m));
    // Changing any encoding changes this digest: then bump PROTOCOL_VERSION and update the document.
    expect(h.digest('hex')).toBe('1e833e5a5434422d8bf8e69d5c16a3ea825c837a771b3961411362e34a7476f0');
  });
});

describe('validation on encode and decode', () => {
  const tcpBlock = (over: Partial<ReturnType<typeof tcpState>['delegated']> = {}, constOver = {}): Message => ({
    type: 'InitiateOffload', opId: 1, blocks: [{ blockId: 1, role: 'new', layer: 'tcp', handle: 1, children: [], state: { ...tcpState(over), const: { ...tcpState().const, ...constOver } } }],
  });

  it('RFC 7323: a window shift above 14 is refused both ways', () => {
    expect(encodeError(tcpBlock({}, { sndWindScale: 15 })).message).toMatch(/InitiateOffload\.blocks\[0\]\.state\.const\.sndWindScale: 15 is not an integer in 0\.\.14/);
    const frame = encodeFrame(tcpBlock({}, { hashValue: 0xa1b2c3d4, sndWindScale: 14 }));
    const shiftAt = offsetOfU32(frame, 0xa1b2c3d4) - 4;
    expect(frame[shiftAt]).toBe(14);
    frame[shiftAt] = 15;
    const e = decodeError(frame);
    expect([e.code, e.path, e.problem]).toEqual(['range', 'blocks[0].state.const.sndWindScale', '15 is outside 0..14']);
    expect(e.refId).toBe(1);
    expect(e.status).toBe(Status.IPC_MALFORMED);
  });

  it('MAC addresses are exactly 6 bytes', () => {
    const m = SAMPLES.find((s) => s.type === 'NeighborReachabilityQuery')!;
    const bad = structuredClone(m) as { neighbor: { cached: { dlDestinationAddress: Uint8Array } } };
    bad.neighbor.cached.dlDestinationAddress = new Uint8Array(5);
    expect(encodeError(bad).message).toMatch(/neighbor\.cached\.dlDestinationAddress: length 5 is not 6/);
  });

  it('addresses are 4 or 16 bytes, match the path version, and both ends agree', () => {
    const path = (src: Uint8Array, dst: Uint8Array, version: 4 | 6): Message => ({
      type: 'InitiateOffload', opId: 1, blocks: [{ blockId: 1, role: 'new', layer: 'path', handle: 1, children: [], state: { version, const: { sourceAddress: src, destinationAddress: dst }, cached: { pathMtu: 1 } } }],
    });
    expect(encodeError(path(new Uint8Array(5), new Uint8Array(5), 4)).problem).toBe('address length 5 is neither 4 nor 16');
    expect(encodeError(path(new Uint8Array(16), new Uint8Array(16), 4)).problem).toBe('IPv4 path with 16-byte addresses');
    expect(encodeError(path(new Uint8Array(4), new Uint8Array(16), 4)).problem).toBe('source address has 4 bytes, destination 16');
    // Decode side: turn the destination's length prefix 4 into 5.
    const frame = encodeFrame(path(new Uint8Array([1, 2, 3, 4]), new Uint8Array([0xa1, 0xb2, 0xc3, 0xd4]), 4));
    const at = offsetOfU32(frame, 0xd4c3b2a1) - 1;
    expect(frame[at]).toBe(4);
    frame[at] = 5;
    expect(decodeError(frame).problem).toBe('address length 5 is neither 4 nor 16');
  });

  it('enumerations: unknown values are refused', () => {
    expect(encodeError({ type: 'TcpEvent', handle: 1, eventType: 5, info: 0 }).problem).toBe('5 is not a TcpEventType value');
    expect(encodeError({ type: 'TcpEvent', handle: 1, eventType: 3, info: 12 }).problem).toBe('Retrieve with unknown upload reason 12');
    expect(encodeError({ type: 'SetParametersComplete', opId: 1, status: 0xc0000002 }).problem).toBe('3221225474 is not a Status value');
    const frame = encodeFrame({ type: 'TcpEvent', handle: 1, eventType: 4, info: 0 });
    frame[FRAME_HEADER_BYTES + 4] = 0;
    expect(decodeError(frame).problem).toBe('0 (0x0) is not a TcpEventType value');
    const b = encodeFrame({ type: 'TcpReceive', ctx: 1, requests: [{ requestId: 2, capacity: 3, noPush: true }] });
    b[FRAME_HEADER_BYTES + 16] = 2; // the noPush byte
    expect(decodeError(b).problem).toBe('boolean byte 2 is neither 0 nor 1');
  });

  it('flags: bits outside the defined set are refused (spec 1.6)', () => {
    expect(encodeError(tcpBlock({}, { flags: 0x08 })).problem).toMatch(/flag bits 0x8 are not defined/);
  });

  it('block trees: more than 3 levels, wrong layering, tcp dependents, duplicate ids are refused (spec 1.1, 1.8)', () => {
    const leaf = (id: number, layer: 'neighbor' | 'path' | 'tcp') => ({ blockId: id, role: 'placeholder' as const, layer, children: [] });
    expect(encodeError({ type: 'InitiateOffload', opId: 1, blocks: [{ ...leaf(1, 'tcp'), children: [leaf(2, 'tcp')] }] }).problem).toBe('a tcp block has no dependents, this one has 1');
    expect(encodeError({ type: 'InitiateOffload', opId: 1, blocks: [{ ...leaf(1, 'neighbor'), children: [leaf(2, 'tcp')] }] }).problem)
      .toBe('dependents of a neighbor block are path blocks; children[0] is a tcp block');
    expect(encodeError({ type: 'InitiateOffload', opId: 1, blocks: [leaf(1, 'path'), leaf(1, 'path')] }).problem).toBe('blockId 1 appears twice');
    expect(encodeError({ type: 'InitiateOffload', opId: 1, blocks: [leaf(1, 'path'), leaf(2, 'tcp')] }).problem).toMatch(/root blocks are one layer/);
    expect(encodeError({ type: 'InitiateOffload', opId: 1, blocks: [] }).problem).toBe('count 0 is below the minimum 1');
  });

  it('block trees: a fourth nesting level is refused before it is walked, however deep the input', () => {
    // Hand-built placeholders nested `levels` deep, all of layer neighbor: depth is checked first.
    const nested = (levels: number): Uint8Array => {
      const w = new Writer();
      w.u32(0);
      w.u16(MESSAGES.InitiateOffload.code);
      w.u32(1);
      w.u32(1);
      for (let i = 0; i < levels; i++) {
        w.u8(0);
        w.u32(i + 1);
        w.u8(0);
        w.u32(i === levels - 1 ? 0 : 1);
      }
      w.patchU32(0, w.pos - 4);
      return w.finish();
    };
    const four = decodeError(nested(4));
    expect([four.code, four.path, four.problem]).toEqual(['depth', 'blocks[0].children[0].children[0].children[0]', 'block tree nesting exceeds 3']);
    // 200k levels would overflow the stack if the decoder recursed without a bound.
    expect(decodeError(nested(200_000)).code).toBe('depth');
    // Three levels of the same layer pass the depth check and fail the layering rule.
    expect(decodeError(nested(3)).problem).toBe('dependents of a neighbor block are path blocks; children[0] is a neighbor block');
  });

  it('reference trees (query/update/invalidate/terminate) are depth-bounded the same way', () => {
    const w = new Writer();
    w.u32(0);
    w.u16(MESSAGES.QueryOffload.code);
    w.u32(3);
    w.u32(1);
    const levels = 100_000;
    for (let i = 0; i < levels; i++) {
      w.u32(i + 1);
      w.u32(i + 1000);
      w.u8(i % 3);
      w.u32(i === levels - 1 ? 0 : 1);
    }
    w.patchU32(0, w.pos - 4);
    const e = decodeError(w.finish());
    expect([e.code, e.path, e.refId]).toEqual(['depth', 'blocks[0].children[0].children[0].children[0]', 3]);
  });

  it('send chain at initiate: bytes, no ackedBytes, head/tail naming the first and last buffer (spec 3.6, 8.1)', () => {
    expect(encodeError(tcpBlock({ sendChain: [{ bufferId: 1, bytes: new Uint8Array(1) }], sendDataHead: 2, sendDataTail: 1 })).problem).toBe('sendDataHead 2 is not the first chain buffer 1');
    expect(encodeError(tcpBlock({ sendChain: [{ bufferId: 1 }], sendDataHead: 1, sendDataTail: 1 })).problem).toBe('sendChain[0] carries no bytes at initiate');
    expect(encodeError(tcpBlock({ sendChain: [{ bufferId: 1, bytes: new Uint8Array(1), ackedBytes: 0 }], sendDataHead: 1, sendDataTail: 1 })).problem).toBe('sendChain[0].ackedBytes is not significant at initiate');
    expect(encodeError(tcpBlock({ sendDataHead: 1 })).problem).toBe('sendDataHead/sendDataTail given without send chain buffers');
    expect(encodeError(tcpBlock({ sendChain: [], sendDataTail: 1 })).problem).toBe('sendDataHead/sendDataTail given without send chain buffers');
    expect(encodeError(tcpBlock({ bufferedBuffers: [{ bufferId: 1, bytes: new Uint8Array(1) }] })).problem).toBe('delegated.bufferedBuffers is not significant in initiate');
    expect(encodeError(tcpBlock({ sendBacklogSize: 1 })).problem).toBe('delegated.sendBacklogSize is not significant in initiate');
  });

  it('terminate results: chain entries carry ackedBytes and no bytes; only the first is partly acknowledged (spec 6.3)', () => {
    const term = (d: Partial<ReturnType<typeof tcpState>['delegated']>): Message => ({ type: 'TerminateOffloadComplete', opId: 1, results: [{ blockId: 1, status: 0, tcp: { delegated: tcpState(d).delegated } }] });
    expect(encodeError(term({ sendChain: [{ bufferId: 1, bytes: new Uint8Array(1), ackedBytes: 0 }], sendDataHead: 1, sendDataTail: 1 })).problem).toBe('results[0]: sendChain[0] carries bytes at terminate (the host kept its copy)');
    expect(encodeError(term({ sendChain: [{ bufferId: 1, ackedBytes: 0 }, { bufferId: 2, ackedBytes: 5 }], sendDataHead: 1, sendDataTail: 2 })).problem).toBe('results[0]: sendChain[1].ackedBytes is 5; only the first entry can be partly acknowledged');
    expect(encodeError(term({ bufferedData: new Uint8Array(1) })).problem).toBe('results[0]: delegated.bufferedData is not significant in terminate');
    expect(encodeError(term({ bufferedBuffers: [{ bufferId: 3, bytes: new Uint8Array(1) }, { bufferId: 3, bytes: new Uint8Array(1) }] })).problem).toBe('results[0]: lent bufferId 3 appears twice');
    expect(encodeError({ type: 'TerminateOffloadComplete', opId: 1, results: [{ blockId: 1, status: 0, ctx: 4 }] }).problem).toBe('results[0]: ctx is only significant in an initiate result (this is terminate)');
    expect(encodeError({ type: 'TerminateOffloadComplete', opId: 1, results: [{ blockId: 1, status: 0, tcp: { const: tcpState().const } }] }).problem).toBe('results[0]: terminate returns DELEGATED state only');
    expect(encodeError({ type: 'QueryOffloadComplete', opId: 1, results: terminateResults }).problem).toBe('results[2]: delegated.sendChain is not significant in query');
  });

  it('cached values only in updates, and of the block\'s layer (spec 2.2, 2.3)', () => {
    expect(encodeError({ type: 'QueryOffload', opId: 1, blocks: [{ blockId: 1, ctx: 1, layer: 'path', cached: { pathMtu: 1 }, children: [] }] }).problem).toBe('cached is only significant in UpdateOffload');
    expect(encodeError({ type: 'UpdateOffload', opId: 1, blocks: [{ blockId: 1, ctx: 1, layer: 'tcp', cached: { pathMtu: 1 }, children: [] }] }).problem).toBe('a tcp block carries path cached state');
  });

  it('data path rules: prefilled fits capacity, abortive disconnects carry no data, indicate replies are consistent', () => {
    expect(encodeError({ type: 'TcpReceive', ctx: 1, requests: [{ requestId: 1, capacity: 1, noPush: true, prefilled: new Uint8Array(2) }] }).problem).toBe('prefilled 2 bytes exceed capacity 1');
    expect(encodeError({ type: 'TcpDisconnect', ctx: 1, requestId: 1, flags: 2, bytes: new Uint8Array(1) }).problem).toBe('abortive disconnect with 1 bytes of data');
    expect(encodeError({ type: 'TcpDisconnect', ctx: 1, requestId: 1, flags: 3, bytes: new Uint8Array(0) }).problem).toBe('3 is not a TcpDisconnectFlags value');
    expect(encodeError({ type: 'IndicateReply', indicationId: 1, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 4 }).problem).toBe('OFFLOAD_DATA_NOT_ACCEPTED with bytesConsumed 4');
    expect(encodeError({ type: 'IndicateReply', indicationId: 1, status: Status.FAILURE, bytesConsumed: 0 }).problem).toMatch(/is not a IndicateReplyStatus value/);
    expect(encodeError({ type: 'TcpSend', ctx: 1, buffers: [{ requestId: 1, bytes: new Uint8Array(1) }, { requestId: 1, bytes: new Uint8Array(1) }] }).problem).toBe('requestId 1 appears twice');
    expect(encodeError({ type: 'TcpForward', ctx: 1, segments: [{ requestId: 1, tcpBytes: new Uint8Array(19) }] }).problem).toBe('length 19 is outside 20..16777216');
    expect(encodeError({ type: 'TcpReceiveComplete', entries: [{ ctx: 1, requestId: 1, status: 0, bytesTransferred: 1, bytes: new Uint8Array(2) }] }).problem).toBe('2 bytes carried but bytesTransferred is 1');
  });

  it('hello: a target carries capabilities, a host does not', () => {
    expect(encodeError({ type: 'Hello', version: 1, role: 'target', software: '' }).problem).toBe('a target hello lacks capabilities');
    expect(encodeError({ type: 'Hello', version: 1, role: 'host', software: '', capabilities: { supportIPv4: true, supportIPv6: true, supportSack: true, tcpConnectionOffloadCapacity: 1, ticksPerSecond: 1000 } }).problem).toBe('a host hello carries capabilities');
  });

  it('integers out of range and wrong types are refused at the caller', () => {
    expect(encodeError({ type: 'TcpReceiveReturn', bufferIds: [0x1_0000_0000] }).message).toBe('TcpReceiveReturn.bufferIds[0]: 4294967296 is not an integer in 0..4294967295');
    expect(encodeError({ type: 'TcpReceiveReturn', bufferIds: [1.5] }).problem).toBe('1.5 is not an integer in 0..4294967295');
    expect(encodeError({ type: 'RawFrame', frame: [1, 2] }).problem).toBe('is not a Uint8Array');
    expect(encodeError({ type: 'Nope' }).problem).toBe('unknown message type Nope');
  });

  it('the frame limit applies to encoding too', () => {
    const big: Message = { type: 'RawFrame', frame: new Uint8Array(1024) };
    expect(encodeError({ ...big, frame: new Uint8Array(MAX_FRAME_BYTES) }).message).toBe('RawFrame: frame length 16777222 exceeds the 16 MiB limit');
    expect(() => encodeFrame(big, 1000)).toThrow('frame length 1030 exceeds the 1000 bytes limit');
  });

  it('a failed encode leaves the writer as it was', () => {
    const w = new Writer(16);
    const ok = encodeFrame(SAMPLES[0]!);
    w.bytes(ok);
    expect(() => encodeFrame({ type: 'TcpSend', ctx: 1, buffers: [{ requestId: 1, bytes: seqBytes(100) }, { requestId: 2, bytes: 'x' }] } as unknown as Message)).toThrow(IpcSchemaError);
    expect(hex(w.finish())).toBe(hex(ok));
  });

  it('unknown types, trailing bytes and truncation are typed errors', () => {
    const u = decodeBody(0x7777, new Uint8Array([1, 0, 0, 0]));
    expect(u.ok).toBe(false);
    expect(u.ok ? undefined : [u.error.code, u.error.message, u.error.refId]).toEqual(['unknown-type', 'message type 0x7777: unknown message type 0x7777', 1]);
    const frame = encodeFrame({ type: 'SetParametersComplete', opId: 9, status: 0 });
    const longer = new Uint8Array(frame.length + 1);
    longer.set(frame);
    new DataView(longer.buffer).setUint32(0, frame.length - 3, true);
    expect(decodeError(longer).problem).toBe('1 byte(s) after the end of the message');
    const body = frame.subarray(FRAME_HEADER_BYTES);
    const t = decodeBody(MESSAGES.SetParametersComplete.code, body.subarray(0, 6));
    expect(t.ok ? undefined : [t.error.code, t.error.path, t.error.refId]).toEqual(['truncated', 'status', 9]);
  });

  it('invalid UTF-8 in strings is refused; a leading BOM survives', () => {
    const frame = encodeFrame({ type: 'Error', refKind: 0, refId: 0, status: 0, problem: 'ab' });
    frame[frame.length - 1] = 0xff;
    expect(decodeError(frame).code).toBe('utf8');
    expect(roundTrip({ type: 'Error', refKind: 0, refId: 0, status: 0, problem: '\uFEFFx' })).toStrictEqual({ type: 'Error', refKind: 0, refId: 0, status: 0, problem: '\uFEFFx' });
  });
});
