/** IPv4 header (RFC 791). Options are skipped, fragments rejected: there is no reassembly here. */

import { readIpv4, writeIpv4 } from './addresses.js';

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

export const IPV4_HEADER_LENGTH = 20;

/**
 * A parsed IPv4 header. `payload` is a view made on each access; the hot path uses
 * `buf`/`payloadOffset`/`payloadEnd` instead. Copy what you keep.
 */
export interface Ipv4Header {
  readonly version: 4;
  /** IHL * 4, 20..60. */
  readonly headerLength: number;
  readonly tos: number;
  readonly totalLength: number;
  readonly id: number;
  /** Don't-fragment flag. */
  readonly df: boolean;
  readonly ttl: number;
  readonly protocol: number;
  readonly src: number;
  readonly dst: number;
  /** IHL > 5: options were present and skipped. */
  readonly hasOptions: boolean;
  /** The buffer given to the parser; the header starts at `payloadOffset - headerLength`. */
  readonly buf: Uint8Array;
  /** The upper-layer bytes are `buf[payloadOffset .. payloadEnd)` (link padding excluded). */
  readonly payloadOffset: number;
  readonly payloadEnd: number;
  /** View of the upper-layer bytes, trimmed to the total length. */
  readonly payload: Uint8Array;
}

class Ipv4View implements Ipv4Header {
  readonly version = 4 as const;
  readonly hasOptions: boolean;
  constructor(
    readonly buf: Uint8Array,
    readonly headerLength: number,
    readonly tos: number,
    readonly totalLength: number,
    readonly id: number,
    readonly df: boolean,
    readonly ttl: number,
    readonly protocol: number,
    readonly src: number,
    readonly dst: number,
    readonly payloadOffset: number,
    readonly payloadEnd: number,
  ) {
    this.hasOptions = headerLength > IPV4_HEADER_LENGTH;
  }

  get payload(): Uint8Array {
    return this.buf.subarray(this.payloadOffset, this.payloadEnd);
  }
}

export type Ipv4ParseError = 'truncated' | 'bad-version' | 'bad-header-length' | 'bad-checksum' | 'bad-length' | 'fragment';

/** Checks in the order Linux's ip_rcv_core does; `verifyChecksum` false skips the header checksum. */
export function parseIpv4(buf: Uint8Array, verifyChecksum = true): Ipv4Header | Ipv4ParseError {
  return parseIpv4At(buf, 0, buf.length, verifyChecksum);
}

/** parseIpv4 over `buf[offset .. end)` without making a view of it. */
export function parseIpv4At(buf: Uint8Array, offset: number, end: number, verifyChecksum = true): Ipv4Header | Ipv4ParseError {
  const available = end - offset;
  if (available < IPV4_HEADER_LENGTH) return 'truncated';
  const b0 = buf[offset]!;
  if (b0 >>> 4 !== 4) return 'bad-version';
  const headerLength = (b0 & 0x0f) << 2;
  if (headerLength < IPV4_HEADER_LENGTH) return 'bad-header-length';
  if (headerLength > available) return 'truncated';
  if (verifyChecksum && headerSum(buf, offset, headerLength) !== 0xffff) return 'bad-checksum';
  const totalLength = (buf[offset + 2]! << 8) | buf[offset + 3]!;
  if (totalLength < headerLength) return 'bad-length';
  if (totalLength > available) return 'truncated';
  const flagsFrag = (buf[offset + 6]! << 8) | buf[offset + 7]!;
  // MF (0x2000) or a non-zero fragment offset.
  if ((flagsFrag & 0x3fff) !== 0) return 'fragment';
  return new Ipv4View(
    buf, headerLength, buf[offset + 1]!, totalLength, (buf[offset + 4]! << 8) | buf[offset + 5]!, (flagsFrag & 0x4000) !== 0,
    buf[offset + 8]!, buf[offset + 9]!, readIpv4(buf, offset + 12), readIpv4(buf, offset + 16),
    offset + headerLength, offset + totalLength,
  );
}

/** Ones'-complement sum of an IPv4 header (even length <= 60): a tight loop beats the general one here. */
function headerSum(buf: Uint8Array, offset: number, length: number): number {
  let sum = 0;
  for (let i = offset, end = offset + length; i < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  sum = (sum >>> 16) + (sum & 0xffff);
  return (sum >>> 16) + (sum & 0xffff);
}

export interface Ipv4Fields {
  src: number;
  dst: number;
  protocol: number;
  /** Bytes after the 20-byte header. */
  payloadLength: number;
  /** Default 64. */
  ttl?: number;
  /** Default 0. */
  tos?: number;
  /** Default 0. */
  id?: number;
  /** Default true (path MTU discovery, RFC 1191). */
  df?: boolean;
}

/** Writes a 20-byte header (no options) with its checksum at `offset`; returns the offset past it. */
export function buildIpv4Header(h: Ipv4Fields, out: Uint8Array, offset = 0): number {
  const total = IPV4_HEADER_LENGTH + h.payloadLength;
  if (total > 0xffff) throw new RangeError(`IPv4 total length ${total} > 65535`);
  const id = h.id ?? 0;
  out[offset] = 0x45;
  out[offset + 1] = h.tos ?? 0;
  out[offset + 2] = total >>> 8;
  out[offset + 3] = total & 0xff;
  out[offset + 4] = (id >>> 8) & 0xff;
  out[offset + 5] = id & 0xff;
  out[offset + 6] = h.df === false ? 0 : 0x40;
  out[offset + 7] = 0;
  out[offset + 8] = h.ttl ?? 64;
  out[offset + 9] = h.protocol;
  out[offset + 10] = 0;
  out[offset + 11] = 0;
  writeIpv4(out, offset + 12, h.src);
  writeIpv4(out, offset + 16, h.dst);
  const sum = ~headerSum(out, offset, IPV4_HEADER_LENGTH) & 0xffff;
  out[offset + 10] = sum >>> 8;
  out[offset + 11] = sum & 0xff;
  return offset + IPV4_HEADER_LENGTH;
}
