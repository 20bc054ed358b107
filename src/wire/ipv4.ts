/** IPv4 header (RFC 791). Options are skipped, fragments rejected: there is no reassembly here. */

import { readIpv4, writeIpv4 } from './addresses.js';
import { checksumValid, internetChecksum } from './checksum.js';

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

export const IPV4_HEADER_LENGTH = 20;

export interface Ipv4Header {
  version: 4;
  /** IHL * 4, 20..60. */
  headerLength: number;
  tos: number;
  totalLength: number;
  id: number;
  /** Don't-fragment flag. */
  df: boolean;
  ttl: number;
  protocol: number;
  src: number;
  dst: number;
  /** IHL > 5: options were present and skipped. */
  hasOptions: boolean;
  /** The upper-layer bytes, trimmed to the total length (link padding excluded). */
  payload: Uint8Array;
}

export type Ipv4ParseError = 'truncated' | 'bad-version' | 'bad-header-length' | 'bad-checksum' | 'bad-length' | 'fragment';

/** Checks in the order Linux's ip_rcv_core does; `verifyChecksum` false skips the header checksum. */
export function parseIpv4(buf: Uint8Array, verifyChecksum = true): Ipv4Header | Ipv4ParseError {
  if (buf.length < IPV4_HEADER_LENGTH) return 'truncated';
  const b0 = buf[0]!;
  if (b0 >>> 4 !== 4) return 'bad-version';
  const headerLength = (b0 & 0x0f) << 2;
  if (headerLength < IPV4_HEADER_LENGTH) return 'bad-header-length';
  if (headerLength > buf.length) return 'truncated';
  if (verifyChecksum && !checksumValid(buf, 0, headerLength)) return 'bad-checksum';
  const totalLength = (buf[2]! << 8) | buf[3]!;
  if (totalLength < headerLength) return 'bad-length';
  if (totalLength > buf.length) return 'truncated';
  const flagsFrag = (buf[6]! << 8) | buf[7]!;
  // MF (0x2000) or a non-zero fragment offset.
  if ((flagsFrag & 0x3fff) !== 0) return 'fragment';
  return {
    version: 4,
    headerLength,
    tos: buf[1]!,
    totalLength,
    id: (buf[4]! << 8) | buf[5]!,
    df: (flagsFrag & 0x4000) !== 0,
    ttl: buf[8]!,
    protocol: buf[9]!,
    src: readIpv4(buf, 12),
    dst: readIpv4(buf, 16),
    hasOptions: headerLength > IPV4_HEADER_LENGTH,
    payload: buf.subarray(headerLength, totalLength),
  };
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
  const sum = internetChecksum(out, offset, IPV4_HEADER_LENGTH);
  out[offset + 10] = sum >>> 8;
  out[offset + 11] = sum & 0xff;
  return offset + IPV4_HEADER_LENGTH;
}
