/** IPv6 fixed header (RFC 8200) and a walk over extension headers to the upper-layer protocol. */

export const IPV6_HEADER_LENGTH = 40;

export const IPV6_HOP_BY_HOP = 0;
export const IPV6_ROUTING = 43;
export const IPV6_FRAGMENT = 44;
export const IPV6_ESP = 50;
export const IPV6_AUTH = 51;
export const IPV6_NO_NEXT_HEADER = 59;
export const IPV6_DEST_OPTIONS = 60;
export const IPV6_MOBILITY = 135;
export const IPV6_HIP = 139;
export const IPV6_SHIM6 = 140;

/**
 * A parsed IPv6 header. `src`, `dst` and `payload` are views made on each access; the hot path
 * uses `buf` and the offsets instead. Copy what you keep.
 */
export interface Ipv6Header {
  readonly version: 6;
  readonly trafficClass: number;
  readonly flowLabel: number;
  readonly payloadLength: number;
  /** Next-header field of the fixed header. */
  readonly nextHeader: number;
  readonly hopLimit: number;
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  /** Upper-layer protocol after the extension headers (IPV6_NO_NEXT_HEADER, ESP stop the walk). */
  readonly protocol: number;
  /** Fixed header plus extension headers. */
  readonly headerLength: number;
  /** The buffer given to the parser; the fixed header starts at `payloadOffset - headerLength`. */
  readonly buf: Uint8Array;
  /** Upper-layer bytes are `buf[payloadOffset .. payloadEnd)` (link padding excluded). */
  readonly payloadOffset: number;
  readonly payloadEnd: number;
  readonly payload: Uint8Array;
}

class Ipv6View implements Ipv6Header {
  readonly version = 6 as const;
  constructor(
    readonly buf: Uint8Array,
    readonly trafficClass: number,
    readonly flowLabel: number,
    readonly payloadLength: number,
    readonly nextHeader: number,
    readonly hopLimit: number,
    readonly protocol: number,
    readonly headerLength: number,
    readonly payloadOffset: number,
    readonly payloadEnd: number,
  ) {}

  get src(): Uint8Array {
    const o = this.payloadOffset - this.headerLength + 8;
    return this.buf.subarray(o, o + 16);
  }

  get dst(): Uint8Array {
    const o = this.payloadOffset - this.headerLength + 24;
    return this.buf.subarray(o, o + 16);
  }

  get payload(): Uint8Array {
    return this.buf.subarray(this.payloadOffset, this.payloadEnd);
  }
}

export type Ipv6ParseError = 'truncated' | 'bad-version' | 'bad-length' | 'fragment' | 'bad-extension-header';

export function parseIpv6(buf: Uint8Array): Ipv6Header | Ipv6ParseError {
  return parseIpv6At(buf, 0, buf.length);
}

/** parseIpv6 over `buf[start .. limit)` without making a view of it. */
export function parseIpv6At(buf: Uint8Array, start: number, limit: number): Ipv6Header | Ipv6ParseError {
  if (limit - start < IPV6_HEADER_LENGTH) return 'truncated';
  const b0 = buf[start]!;
  if (b0 >>> 4 !== 6) return 'bad-version';
  const payloadLength = (buf[start + 4]! << 8) | buf[start + 5]!;
  const nextHeader = buf[start + 6]!;
  // Jumbograms (RFC 2675) announce payload length 0; not supported.
  if (payloadLength === 0 && nextHeader === IPV6_HOP_BY_HOP) return 'bad-length';
  const end = start + IPV6_HEADER_LENGTH + payloadLength;
  if (end > limit) return 'truncated';
  let protocol = nextHeader;
  let off = start + IPV6_HEADER_LENGTH;
  for (;;) {
    let len: number;
    if (protocol === IPV6_HOP_BY_HOP) {
      if (off !== start + IPV6_HEADER_LENGTH) return 'bad-extension-header';
      if (off + 2 > end) return 'truncated';
      len = (buf[off + 1]! + 1) << 3;
    } else if (protocol === IPV6_ROUTING || protocol === IPV6_DEST_OPTIONS || protocol === IPV6_MOBILITY
      || protocol === IPV6_HIP || protocol === IPV6_SHIM6) {
      if (off + 2 > end) return 'truncated';
      len = (buf[off + 1]! + 1) << 3;
    } else if (protocol === IPV6_AUTH) {
      if (off + 2 > end) return 'truncated';
      len = (buf[off + 1]! + 2) << 2;
    } else if (protocol === IPV6_FRAGMENT) {
      return 'fragment';
    } else {
      break;
    }
    if (off + len > end) return 'truncated';
    protocol = buf[off]!;
    off += len;
  }
  return new Ipv6View(
    buf, ((b0 & 0x0f) << 4) | (buf[start + 1]! >>> 4), ((buf[start + 1]! & 0x0f) << 16) | (buf[start + 2]! << 8) | buf[start + 3]!,
    payloadLength, nextHeader, buf[start + 7]!, protocol, off - start, off, end,
  );
}

export interface Ipv6Fields {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  payloadLength: number;
  /** Default 64. */
  hopLimit?: number;
  /** Default 0. */
  trafficClass?: number;
  /** Default 0. */
  flowLabel?: number;
}

/** Writes the 40-byte fixed header at `offset`; returns the offset past it. */
export function buildIpv6Header(h: Ipv6Fields, out: Uint8Array, offset = 0): number {
  if (h.payloadLength > 0xffff) throw new RangeError(`IPv6 payload length ${h.payloadLength} > 65535`);
  const tc = h.trafficClass ?? 0;
  const fl = h.flowLabel ?? 0;
  out[offset] = 0x60 | ((tc >>> 4) & 0x0f);
  out[offset + 1] = ((tc & 0x0f) << 4) | ((fl >>> 16) & 0x0f);
  out[offset + 2] = (fl >>> 8) & 0xff;
  out[offset + 3] = fl & 0xff;
  out[offset + 4] = h.payloadLength >>> 8;
  out[offset + 5] = h.payloadLength & 0xff;
  out[offset + 6] = h.nextHeader;
  out[offset + 7] = h.hopLimit ?? 64;
  for (let i = 0; i < 16; i++) {
    out[offset + 8 + i] = h.src[i]!;
    out[offset + 24 + i] = h.dst[i]!;
  }
  return offset + IPV6_HEADER_LENGTH;
}
