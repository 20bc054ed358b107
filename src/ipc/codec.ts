/**
 * Message <-> frame. Encoding errors are the caller's bug and throw `IpcSchemaError`; decoding
 * never throws: it returns a typed `IpcDecodeError` the connection answers with an `Error` message.
 *
 * Frame: u32 LE length (bytes after the length field) | u16 LE type | body.
 */
import { Status } from '../chimney/status.js';
import { MAX_FRAME_BYTES } from './limits.js';
import { MESSAGE_BY_CODE, MESSAGE_BY_NAME, type Message } from './messages.js';
import { IpcSchemaError, Reader, Writer, type SchemaErrorCode } from './schema.js';

export const FRAME_LENGTH_BYTES = 4;
export const FRAME_TYPE_BYTES = 2;
export const FRAME_HEADER_BYTES = FRAME_LENGTH_BYTES + FRAME_TYPE_BYTES;

export type DecodeErrorCode = SchemaErrorCode | 'unknown-type' | 'internal';

/** Why a frame body did not decode into a valid message. */
export class IpcDecodeError extends Error {
  constructor(
    readonly code: DecodeErrorCode,
    /** Message type code of the frame. */
    readonly type: number,
    /** First u32 of the body (the message's opId / ctx / indicationId), or 0. */
    readonly refId: number,
    readonly path: string,
    readonly problem: string,
  ) {
    super(describe(type, path, problem));
    this.name = 'IpcDecodeError';
  }

  /** The status an `Error` reply carries for this problem. */
  get status(): number {
    return this.code === 'limit' ? Status.IPC_LIMIT : Status.IPC_MALFORMED;
  }
}

function describe(type: number, path: string, problem: string): string {
  const name = MESSAGE_BY_CODE.get(type)?.name ?? `message type 0x${type.toString(16).padStart(4, '0')}`;
  return path === '' ? `${name}: ${problem}` : `${name}.${path}: ${problem}`;
}

export type DecodeResult = { ok: true; message: Message } | { ok: false; error: IpcDecodeError };

function firstU32(body: Uint8Array): number {
  return body.length >= 4 ? (body[0]! | (body[1]! << 8) | (body[2]! << 16) | (body[3]! << 24)) >>> 0 : 0;
}

/** Decode one frame body of message type `type`. Never throws. */
export function decodeBody(type: number, body: Uint8Array): DecodeResult {
  const entry = MESSAGE_BY_CODE.get(type);
  if (entry === undefined) {
    return { ok: false, error: new IpcDecodeError('unknown-type', type, firstU32(body), '', `unknown message type 0x${type.toString(16).padStart(4, '0')}`) };
  }
  try {
    const r = new Reader(body);
    const fields = entry.codec.decode(r) as Record<string, unknown>;
    if (r.remaining !== 0) {
      return { ok: false, error: new IpcDecodeError('trailing', type, firstU32(body), '', `${r.remaining} byte(s) after the end of the message`) };
    }
    return { ok: true, message: { type: entry.name, ...fields } as Message };
  } catch (e) {
    if (e instanceof IpcSchemaError) return { ok: false, error: new IpcDecodeError(e.code, type, firstU32(body), e.path, e.problem) };
    // A decoder bug must not take the process down; report it like any bad frame.
    return { ok: false, error: new IpcDecodeError('internal', type, firstU32(body), '', `decoder failure: ${String(e)}`) };
  }
}

/**
 * Append one frame for `msg` to `w`. Throws `IpcSchemaError` (and leaves `w` as it was) when the
 * message is invalid or its frame would exceed `maxFrameBytes`.
 */
export function writeFrame(w: Writer, msg: Message, maxFrameBytes = MAX_FRAME_BYTES): void {
  const entry = MESSAGE_BY_NAME.get((msg as { type: Message['type'] }).type);
  if (entry === undefined) throw new IpcSchemaError('invalid', `unknown message type ${String((msg as { type: unknown }).type)}`);
  const start = w.pos;
  try {
    w.u32(0);
    w.u16(entry.code);
    entry.codec.encode(w, msg);
  } catch (e) {
    w.truncate(start);
    if (e instanceof IpcSchemaError) throw e.within(entry.name);
    throw e;
  }
  const length = w.pos - start - FRAME_LENGTH_BYTES;
  if (length > maxFrameBytes) {
    w.truncate(start);
    throw new IpcSchemaError('limit', `frame length ${length} exceeds the ${formatBytes(maxFrameBytes)} limit`, entry.name);
  }
  w.patchU32(start, length);
}

/** One message as one frame. */
export function encodeFrame(msg: Message, maxFrameBytes = MAX_FRAME_BYTES): Uint8Array {
  const w = new Writer(64);
  writeFrame(w, msg, maxFrameBytes);
  return w.finish();
}

/** Decode a single complete frame (tests, tools). Never throws. */
export function decodeFrame(frame: Uint8Array, maxFrameBytes = MAX_FRAME_BYTES): DecodeResult {
  if (frame.length < FRAME_HEADER_BYTES) {
    return { ok: false, error: new IpcDecodeError('truncated', 0, 0, '', `frame of ${frame.length} bytes is shorter than its ${FRAME_HEADER_BYTES}-byte header`) };
  }
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const length = dv.getUint32(0, true);
  const type = dv.getUint16(4, true);
  if (length > maxFrameBytes) {
    return { ok: false, error: new IpcDecodeError('limit', type, 0, '', `frame length ${length} exceeds the ${formatBytes(maxFrameBytes)} limit`) };
  }
  if (length < FRAME_TYPE_BYTES || length !== frame.length - FRAME_LENGTH_BYTES) {
    return { ok: false, error: new IpcDecodeError('truncated', type, 0, '', `frame length field ${length} does not match the ${frame.length - FRAME_LENGTH_BYTES} bytes present`) };
  }
  return decodeBody(type, frame.subarray(FRAME_HEADER_BYTES));
}

export function formatBytes(n: number): string {
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}
