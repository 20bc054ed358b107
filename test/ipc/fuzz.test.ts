import { describe, expect, it } from 'vitest';
import { decodeBody, decodeFrame, encodeFrame, FRAME_HEADER_BYTES, IpcDecodeError, type DecodeResult } from '../../src/ipc/codec.js';
import { MESSAGE_LIST } from '../../src/ipc/messages.js';
import { Rng } from '../../src/link/sim/rng.js';
import { SAMPLES } from './samples.js';

const CODES = new Set(['truncated', 'trailing', 'range', 'enum', 'length', 'limit', 'depth', 'invalid', 'utf8', 'unknown-type']);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Decoding never throws; a failure is a typed error with a known code; a success re-encodes to the input. */
function check(decode: () => DecodeResult, input: Uint8Array): 'ok' | 'error' {
  // Plain checks in the loop (expect() per iteration would dominate the run time).
  let r: DecodeResult;
  try {
    r = decode();
  } catch (e) {
    throw new Error(`decoder threw on ${hex(input)}: ${String(e)}`);
  }
  if (!r.ok) {
    if (!(r.error instanceof IpcDecodeError) || !CODES.has(r.error.code) || r.error.problem === '') {
      throw new Error(`untyped decode error on ${hex(input)}: ${String(r.error)}`);
    }
    return 'error';
  }
  const again = hex(encodeFrame(r.message));
  if (again !== hex(input)) throw new Error(`decoded ${r.message.type} re-encodes differently:\n in  ${hex(input)}\n out ${again}`);
  return 'ok';
}

const frames = SAMPLES.map((m) => encodeFrame(m));

describe('decoder fuzzing (seeded)', () => {
  it('random bodies for every message type: typed errors, never a throw', () => {
    const rng = new Rng('ipc-fuzz-random');
    let errors = 0;
    for (let i = 0; i < 6000; i++) {
      const entry = MESSAGE_LIST[rng.int(MESSAGE_LIST.length)]!;
      const body = new Uint8Array(rng.int(i % 10 === 0 ? 2000 : 64));
      for (let j = 0; j < body.length; j++) body[j] = rng.chance(0.5) ? 0 : rng.int(256);
      const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
      new DataView(frame.buffer).setUint32(0, body.length + 2, true);
      new DataView(frame.buffer).setUint16(4, entry.code, true);
      frame.set(body, FRAME_HEADER_BYTES);
      if (check(() => decodeBody(entry.code, body), frame) === 'error') errors++;
    }
    expect(errors).toBeGreaterThan(5000);
  });

  it('random whole frames (random type codes and lengths)', () => {
    const rng = new Rng('ipc-fuzz-frames');
    for (let i = 0; i < 3000; i++) {
      const b = new Uint8Array(rng.int(80));
      for (let j = 0; j < b.length; j++) b[j] = rng.int(256);
      check(() => decodeFrame(b), b);
    }
  });

  it('mutated valid frames: flipped, overwritten, inserted and deleted bytes', () => {
    const rng = new Rng('ipc-fuzz-mutate');
    const tally = { ok: 0, error: 0 };
    for (let i = 0; i < 8000; i++) {
      const base = frames[rng.int(frames.length)]!;
      let b: Uint8Array = base.slice();
      const edits = 1 + rng.int(3);
      for (let e = 0; e < edits; e++) {
        // Keep the length field honest most of the time so the body decoder gets exercised.
        const at = FRAME_HEADER_BYTES + rng.int(Math.max(1, b.length - FRAME_HEADER_BYTES));
        switch (rng.int(4)) {
          case 0: b[at] = b[at]! ^ (1 << rng.int(8)); break;
          case 1: b[at] = rng.chance(0.5) ? 0xff : rng.int(256); break;
          case 2: { const n = new Uint8Array(b.length + 1); n.set(b.subarray(0, at)); n[at] = rng.int(256); n.set(b.subarray(at), at + 1); b = n; break; }
          default: { const n = new Uint8Array(Math.max(FRAME_HEADER_BYTES, b.length - 1)); n.set(b.subarray(0, at)); n.set(b.subarray(at + 1), at); b = n; }
        }
      }
      if (rng.chance(0.9)) new DataView(b.buffer, b.byteOffset).setUint32(0, b.length - 4, true);
      else if (rng.chance(0.5)) b[rng.int(4)] = rng.int(256);
      const frame = b;
      tally[check(() => decodeFrame(frame), frame)]++;
    }
    // Both outcomes occur: mutations inside byte payloads still decode.
    expect(tally.ok).toBeGreaterThan(100);
    expect(tally.error).toBeGreaterThan(1000);
  });

  it('every truncation of every sample frame is an error, never a partial message', () => {
    let n = 0;
    for (const f of frames) {
      const step = f.length > 4096 ? 97 : 1;
      for (let len = 0; len < f.length; len += step) {
        if (decodeFrame(f.subarray(0, len)).ok) throw new Error(`frame cut at ${len}/${f.length} decoded`);
        // The same bytes with a length field that claims them: the body decoder must see the end.
        if (len >= FRAME_HEADER_BYTES) {
          const r = decodeBody(f[4]! | (f[5]! << 8), f.subarray(FRAME_HEADER_BYTES, len));
          if (r.ok || r.error.code !== 'truncated') throw new Error(`body cut at ${len}/${f.length}: ${r.ok ? 'decoded' : r.error.message}`);
        }
        n++;
      }
    }
    expect(n).toBeGreaterThan(5000);
  });

  it('huge counts and lengths are refused without allocating them', () => {
    // TcpReceiveReturn claiming 65535 ids in 8 bytes, TcpSend claiming a 4 GiB buffer.
    const ids = decodeBody(0x0022, new Uint8Array([0xff, 0xff, 0, 0, 1, 2, 3, 4]));
    expect(ids.ok ? '' : ids.error.problem).toBe('count 65535 needs at least 262140 bytes, 4 left');
    const send = decodeBody(0x0020, new Uint8Array([1, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0]));
    expect(send.ok ? '' : `${send.error.path}: ${send.error.problem}`).toBe('buffers[0].bytes: length 4294967295 is outside 1..16777216');
    const many = decodeBody(0x0022, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    expect(many.ok ? '' : many.error.code).toBe('limit');
  });
});
