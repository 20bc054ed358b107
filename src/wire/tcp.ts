/**
 * TCP header and options codec (RFC 9293 3.1, RFC 7323, RFC 2018) over the `TcpSegment` record.
 *
 * Checksums take a pseudo-header *base*: `pseudoHeaderSumV4/V6(src, dst, IPPROTO_TCP, 0)`, which a
 * connection can compute once; the codec adds the segment length itself.
 */

import { checksumValid, internetChecksum } from './checksum.js';
import type { SackBlock, TcpOptions, TcpSegment } from './tcp-segment.js';

export const TCP_HEADER_LENGTH = 20;
export const TCP_MAX_OPTIONS_LENGTH = 40;

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WSCALE = 3;
export const TCPOPT_SACK_PERMITTED = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMPS = 8;

/** RFC 7323 2.3: a larger shift is treated as 14. */
export const TCP_MAX_WSCALE = 14;

export type TcpParseError = 'truncated' | 'bad-header-length' | 'bad-checksum' | 'bad-tcp-options';

/**
 * Parses a whole TCP segment (the IP payload, exactly). With `pseudoBase` the checksum is verified;
 * without it (e.g. a checksum the kernel left to offload) it is not. The payload is a view.
 */
export function parseTcp(buf: Uint8Array, pseudoBase?: number): TcpSegment | TcpParseError {
  return parseTcpAt(buf, 0, buf.length, pseudoBase);
}

/** parseTcp over `buf[start .. end)`: only the payload view is made. */
export function parseTcpAt(buf: Uint8Array, start: number, end: number, pseudoBase?: number): TcpSegment | TcpParseError {
  const length = end - start;
  if (length < TCP_HEADER_LENGTH) return 'truncated';
  const headerLength = (buf[start + 12]! >>> 4) << 2;
  if (headerLength < TCP_HEADER_LENGTH) return 'bad-header-length';
  if (headerLength > length) return 'truncated';
  if (pseudoBase !== undefined && !checksumValid(buf, start, length, pseudoBase + length)) return 'bad-checksum';
  const options = headerLength === TCP_HEADER_LENGTH ? {} : parseTcpOptions(buf, start + TCP_HEADER_LENGTH, start + headerLength);
  if (options === undefined) return 'bad-tcp-options';
  return {
    srcPort: (buf[start]! << 8) | buf[start + 1]!,
    dstPort: (buf[start + 2]! << 8) | buf[start + 3]!,
    seq: u32(buf, start + 4),
    ack: u32(buf, start + 8),
    flags: buf[start + 13]!,
    window: (buf[start + 14]! << 8) | buf[start + 15]!,
    urgent: (buf[start + 18]! << 8) | buf[start + 19]!,
    options,
    payload: buf.subarray(start + headerLength, end),
  };
}

function u32(buf: Uint8Array, o: number): number {
  return ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
}

/**
 * Parses the option bytes `buf[start .. end)`; undefined when the list is malformed (Linux would
 * stop parsing and keep the segment; we drop it). Unknown kinds are skipped by their length; a
 * later duplicate of a known kind wins (as in Linux). SYN-only options are reported on any
 * segment: ignoring them outside a SYN is the engine's business.
 */
export function parseTcpOptions(buf: Uint8Array, start: number, end: number): TcpOptions | undefined {
  const options: TcpOptions = {};
  let i = start;
  while (i < end) {
    const kind = buf[i]!;
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return undefined;
    const len = buf[i + 1]!;
    if (len < 2 || i + len > end) return undefined;
    switch (kind) {
      case TCPOPT_MSS:
        if (len !== 4) return undefined;
        options.mss = (buf[i + 2]! << 8) | buf[i + 3]!;
        break;
      case TCPOPT_WSCALE:
        if (len !== 3) return undefined;
        options.wscale = Math.min(buf[i + 2]!, TCP_MAX_WSCALE);
        break;
      case TCPOPT_SACK_PERMITTED:
        if (len !== 2) return undefined;
        options.sackPermitted = true;
        break;
      case TCPOPT_SACK: {
        const n = (len - 2) >>> 3;
        if (n < 1 || n > 4 || len !== 2 + 8 * n) return undefined;
        const blocks: SackBlock[] = [];
        for (let b = 0; b < n; b++) {
          const o = i + 2 + 8 * b;
          blocks.push({ left: u32(buf, o), right: u32(buf, o + 4) });
        }
        options.sack = blocks;
        break;
      }
      case TCPOPT_TIMESTAMPS:
        if (len !== 10) return undefined;
        options.ts = { val: u32(buf, i + 2), ecr: u32(buf, i + 6) };
        break;
      default:
        break;
    }
    i += len;
  }
  return options;
}

/** Bytes of options other than SACK blocks, in the layout `buildTcp` writes. */
function fixedOptionsLength(o: TcpOptions): number {
  let n = 0;
  if (o.mss !== undefined) n += 4;
  if (o.ts !== undefined) n += 12;
  else if (o.sackPermitted) n += 4;
  if (o.wscale !== undefined) n += 4;
  return n;
}

/** How many of `o.sack` fit beside the other options (at most 4; 3 with timestamps). */
export function tcpSackBlocksThatFit(o: TcpOptions): number {
  const want = o.sack ? o.sack.length : 0;
  if (want === 0) return 0;
  const room = Math.floor((TCP_MAX_OPTIONS_LENGTH - fixedOptionsLength(o) - 4) / 8);
  return Math.max(0, Math.min(want, 4, room));
}

/** Header length (20 + options, a multiple of 4) that `buildTcp` writes for these options. */
export function tcpHeaderLength(o: TcpOptions): number {
  const blocks = tcpSackBlocksThatFit(o);
  return TCP_HEADER_LENGTH + fixedOptionsLength(o) + (blocks > 0 ? 4 + 8 * blocks : 0);
}

function put32(out: Uint8Array, o: number, v: number): void {
  out[o] = v >>> 24;
  out[o + 1] = v >>> 16;
  out[o + 2] = v >>> 8;
  out[o + 3] = v;
}

function put4(out: Uint8Array, o: number, a: number, b: number, c: number, d: number): void {
  out[o] = a;
  out[o + 1] = b;
  out[o + 2] = c;
  out[o + 3] = d;
}

/** A segment as TCP header + payload bytes without checksum (e.g. for a TcpForward buffer). */
export function encodeTcp(seg: TcpSegment): Uint8Array {
  const out = new Uint8Array(tcpHeaderLength(seg.options) + seg.payload.length);
  buildTcp(seg, out);
  return out;
}

/**
 * Writes header, options, payload and (with `pseudoBase`) checksum at `offset`; returns the offset
 * past the payload. Options are laid out like Linux's tcp_options_write: MSS; SACK_PERM+TS or
 * NOP NOP TS; NOP NOP SACK_PERM (without TS); NOP WS; NOP NOP SACK blocks (as many as fit).
 * Without `pseudoBase` the checksum field is left 0. The payload may already sit where it belongs
 * in `out` (it may alias `out` only there).
 */
export function buildTcp(seg: TcpSegment, out: Uint8Array, offset = 0, pseudoBase?: number): number {
  const o = seg.options;
  const blocks = tcpSackBlocksThatFit(o);
  const headerLength = TCP_HEADER_LENGTH + fixedOptionsLength(o) + (blocks > 0 ? 4 + 8 * blocks : 0);
  out[offset] = seg.srcPort >>> 8;
  out[offset + 1] = seg.srcPort & 0xff;
  out[offset + 2] = seg.dstPort >>> 8;
  out[offset + 3] = seg.dstPort & 0xff;
  put32(out, offset + 4, seg.seq);
  put32(out, offset + 8, seg.ack);
  out[offset + 12] = (headerLength >>> 2) << 4;
  out[offset + 13] = seg.flags & 0xff;
  out[offset + 14] = (seg.window >>> 8) & 0xff;
  out[offset + 15] = seg.window & 0xff;
  out[offset + 16] = 0;
  out[offset + 17] = 0;
  out[offset + 18] = (seg.urgent >>> 8) & 0xff;
  out[offset + 19] = seg.urgent & 0xff;
  let p = offset + TCP_HEADER_LENGTH;
  if (o.mss !== undefined) {
    put4(out, p, TCPOPT_MSS, 4, (o.mss >>> 8) & 0xff, o.mss & 0xff);
    p += 4;
  }
  if (o.ts !== undefined) {
    if (o.sackPermitted) put4(out, p, TCPOPT_SACK_PERMITTED, 2, TCPOPT_TIMESTAMPS, 10);
    else put4(out, p, TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMPS, 10);
    put32(out, p + 4, o.ts.val);
    put32(out, p + 8, o.ts.ecr);
    p += 12;
  } else if (o.sackPermitted) {
    put4(out, p, TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK_PERMITTED, 2);
    p += 4;
  }
  if (o.wscale !== undefined) {
    put4(out, p, TCPOPT_NOP, TCPOPT_WSCALE, 3, Math.min(o.wscale, TCP_MAX_WSCALE));
    p += 4;
  }
  if (blocks > 0) {
    put4(out, p, TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, 2 + 8 * blocks);
    p += 4;
    const sack = o.sack!;
    for (let b = 0; b < blocks; b++) {
      put32(out, p, sack[b]!.left);
      put32(out, p + 4, sack[b]!.right);
      p += 8;
    }
  }
  // A payload already in place (zero-copy senders) is copied onto itself: a memmove that costs
  // less than the `.buffer`/`.byteOffset` getters it would take to detect it.
  out.set(seg.payload, p);
  const end = p + seg.payload.length;
  if (pseudoBase !== undefined) {
    const length = end - offset;
    const sum = internetChecksum(out, offset, length, pseudoBase + length);
    out[offset + 16] = sum >>> 8;
    out[offset + 17] = sum & 0xff;
  }
  return end;
}
