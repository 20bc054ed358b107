import { describe, expect, it } from 'vitest';
import { decodeBody, encodeFrame } from '../../src/ipc/codec.js';
import { FrameParser } from '../../src/ipc/framing.js';
import type { Message } from '../../src/ipc/messages.js';
import { SAMPLES, seqBytes } from './samples.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function parseChunks(chunks: Uint8Array[], max?: number): { frames: string[]; fault?: string } {
  const p = new FrameParser(max);
  const frames: string[] = [];
  for (const c of chunks) {
    const fault = p.push(c, (type, body) => frames.push(`${type.toString(16)}:${hex(body)}`));
    if (fault !== undefined) return { frames, fault: fault.problem };
  }
  expect(p.pendingBytes).toBe(0);
  return { frames };
}

// Small messages so that splitting at every byte boundary stays quick.
const small: Message[] = [
  { type: 'SetParametersComplete', opId: 1, status: 0 },
  { type: 'TcpReceiveReturn', bufferIds: [1, 2, 3] },
  { type: 'RawFrame', frame: seqBytes(300, 3) },
  { type: 'TcpEvent', handle: 1, eventType: 2, info: 0 },
  { type: 'Hello', version: 1, role: 'host', software: 'x' },
];
const stream = concat(small.map((m) => encodeFrame(m)));
const expected = small.map((m) => {
  const f = encodeFrame(m);
  return `${(f[4]! | (f[5]! << 8)).toString(16)}:${hex(f.subarray(6))}`;
});

describe('incremental frame parser', () => {
  it('one chunk with many frames', () => {
    expect(parseChunks([stream]).frames).toEqual(expected);
  });

  it('split into two chunks at every byte boundary', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = parseChunks([stream.subarray(0, cut), stream.subarray(cut)]);
      if (r.frames.join() !== expected.join()) expect.fail(`split at ${cut}`);
    }
  });

  it('split into three chunks at every pair of boundaries around each frame edge', () => {
    const edges: number[] = [];
    let o = 0;
    for (const m of small) edges.push((o += encodeFrame(m).length));
    for (const e of edges) {
      for (let a = Math.max(0, e - 8); a <= e; a++) {
        for (let b = a; b <= Math.min(stream.length, e + 8); b++) {
          const r = parseChunks([stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]);
          if (r.frames.join() !== expected.join()) expect.fail(`split at ${a},${b}`);
        }
      }
    }
  });

  it('one byte at a time', () => {
    const chunks = Array.from(stream, (_, i) => stream.subarray(i, i + 1));
    expect(parseChunks(chunks).frames).toEqual(expected);
  });

  it('every sample, fed in random-sized chunks, decodes to the same messages', () => {
    const all = concat(SAMPLES.map((m) => encodeFrame(m)));
    let seed = 7;
    const chunks: Uint8Array[] = [];
    for (let o = 0; o < all.length;) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const n = 1 + (seed % 5000);
      chunks.push(all.slice(o, o + n));
      o += n;
    }
    const p = new FrameParser();
    const out: Message[] = [];
    for (const c of chunks) {
      expect(p.push(c, (type, body) => {
        const r = decodeBody(type, body);
        if (!r.ok) throw r.error;
        out.push(r.message);
      })).toBeUndefined();
    }
    expect(out).toStrictEqual(SAMPLES);
  });

  it('an empty body (length 2) is a frame', () => {
    const f = new Uint8Array([2, 0, 0, 0, 0x34, 0x12]);
    expect(parseChunks([f]).frames).toEqual(['1234:']);
    expect(parseChunks([f.subarray(0, 3), f.subarray(3)]).frames).toEqual(['1234:']);
  });

  it('a length below the type field cannot be resynchronised: fault after the frames before it', () => {
    const bad = concat([encodeFrame(small[0]!), new Uint8Array([1, 0, 0, 0, 9, 9]), encodeFrame(small[1]!)]);
    const r = parseChunks([bad]);
    expect(r.frames).toEqual([expected[0]]);
    expect(r.fault).toBe('frame length 1 is shorter than the 2-byte type field');
  });

  it('an oversize length is reported as soon as the length field is complete', () => {
    const head = new Uint8Array([0x72, 0x11, 0x01, 0x00]); // 70002
    const p = new FrameParser(65536);
    const fault = p.push(head, () => expect.fail('no frame'));
    expect(fault?.problem).toBe('frame length 70002 exceeds the 64 KiB limit');
    expect(fault?.kind).toBe('oversize');
    // Once faulted, the parser refuses further input.
    expect(p.push(encodeFrame(small[0]!), () => expect.fail('no frame'))).toBe(fault);
  });

  it('the default limit is 16 MiB', () => {
    const at = new Uint8Array(6);
    new DataView(at.buffer).setUint32(0, 16 * 1024 * 1024, true);
    expect(new FrameParser().push(at, () => undefined)).toBeUndefined();
    new DataView(at.buffer).setUint32(0, 16 * 1024 * 1024 + 1, true);
    expect(new FrameParser().push(at, () => undefined)?.problem).toBe('frame length 16777217 exceeds the 16 MiB limit');
  });

  it('frames inside one chunk are views (no copy); frames across chunks are assembled', () => {
    const p = new FrameParser();
    const bodies: Uint8Array[] = [];
    p.push(stream, (_t, b) => bodies.push(b));
    expect(bodies.every((b) => b.buffer === stream.buffer)).toBe(true);
    const split: Uint8Array[] = [];
    const q = new FrameParser();
    const first = encodeFrame(small[2]!);
    q.push(first.slice(0, 100), (_t, b) => split.push(b));
    q.push(first.slice(100), (_t, b) => split.push(b));
    expect(hex(split[0]!)).toBe(hex(first.subarray(6)));
  });
});
