/** ICMPv4 (RFC 792): echo, destination unreachable (incl. RFC 1191 next-hop MTU), time exceeded. */

import { readIpv4 } from './addresses.js';
import { checksumValid, internetChecksum } from './checksum.js';
import { IPPROTO_TCP, IPPROTO_UDP, IPV4_HEADER_LENGTH } from './ipv4.js';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;

export const ICMP_UNREACH_NET = 0;
export const ICMP_UNREACH_HOST = 1;
export const ICMP_UNREACH_PROTOCOL = 2;
export const ICMP_UNREACH_PORT = 3;
export const ICMP_UNREACH_FRAG_NEEDED = 4;

export const ICMP_HEADER_LENGTH = 8;

export interface IcmpEcho {
  kind: 'echo';
  /** ICMP_ECHO_REQUEST or ICMP_ECHO_REPLY. */
  type: number;
  code: number;
  id: number;
  seq: number;
  data: Uint8Array;
}

/** What an ICMP error quotes of the packet that caused it (RFC 792: IP header + 8 bytes). */
export interface IcmpQuoted {
  src: number;
  dst: number;
  protocol: number;
  /** Present when the quoted packet is TCP (or UDP) and its first 8 bytes are there. */
  srcPort?: number;
  dstPort?: number;
  /** TCP sequence number of the quoted segment. */
  seq?: number;
}

export interface IcmpError {
  kind: 'dest-unreachable' | 'time-exceeded';
  type: number;
  code: number;
  /** Next-hop MTU for code ICMP_UNREACH_FRAG_NEEDED (RFC 1191), else 0. */
  nextHopMtu: number;
  /** The quoted original IP header and following bytes, as sent back. */
  original: Uint8Array;
  /** Parsed fields of `original`; undefined when it is not a readable IPv4 header. */
  quoted?: IcmpQuoted;
}

export interface IcmpOther {
  kind: 'other';
  type: number;
  code: number;
  /** Bytes after the 4-byte type/code/checksum. */
  body: Uint8Array;
}

export type IcmpMessage = IcmpEcho | IcmpError | IcmpOther;

export type IcmpParseError = 'truncated' | 'bad-checksum' | 'bad-icmp';

/** Parses an ICMPv4 message (the IPv4 payload). */
export function parseIcmpv4(buf: Uint8Array, verifyChecksum = true): IcmpMessage | IcmpParseError {
  if (buf.length < ICMP_HEADER_LENGTH) return 'truncated';
  if (verifyChecksum && !checksumValid(buf)) return 'bad-checksum';
  const type = buf[0]!;
  const code = buf[1]!;
  if (type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY) {
    return { kind: 'echo', type, code, id: (buf[4]! << 8) | buf[5]!, seq: (buf[6]! << 8) | buf[7]!, data: buf.subarray(8) };
  }
  if (type === ICMP_DEST_UNREACHABLE || type === ICMP_TIME_EXCEEDED) {
    // Anything shorter than an IP header cannot say what it is about.
    if (buf.length < ICMP_HEADER_LENGTH + IPV4_HEADER_LENGTH) return 'bad-icmp';
    const original = buf.subarray(8);
    const nextHopMtu = type === ICMP_DEST_UNREACHABLE && code === ICMP_UNREACH_FRAG_NEEDED ? (buf[6]! << 8) | buf[7]! : 0;
    const quoted = parseQuotedIpv4(original);
    const kind = type === ICMP_DEST_UNREACHABLE ? 'dest-unreachable' : 'time-exceeded';
    return quoted ? { kind, type, code, nextHopMtu, original, quoted } : { kind, type, code, nextHopMtu, original };
  }
  return { kind: 'other', type, code, body: buf.subarray(4) };
}

/** Reads the quoted header leniently: routers may quote truncated packets or bad lengths. */
export function parseQuotedIpv4(original: Uint8Array): IcmpQuoted | undefined {
  if (original.length < IPV4_HEADER_LENGTH || original[0]! >>> 4 !== 4) return undefined;
  const ihl = (original[0]! & 0x0f) << 2;
  if (ihl < IPV4_HEADER_LENGTH || ihl > original.length) return undefined;
  const q: IcmpQuoted = { src: readIpv4(original, 12), dst: readIpv4(original, 16), protocol: original[9]! };
  if (original.length >= ihl + 8 && (q.protocol === IPPROTO_TCP || q.protocol === IPPROTO_UDP)) {
    q.srcPort = (original[ihl]! << 8) | original[ihl + 1]!;
    q.dstPort = (original[ihl + 2]! << 8) | original[ihl + 3]!;
    if (q.protocol === IPPROTO_TCP) q.seq = readIpv4(original, ihl + 4);
  }
  return q;
}

export function icmpEchoLength(dataLength: number): number {
  return ICMP_HEADER_LENGTH + dataLength;
}

export interface IcmpEchoFields {
  /** ICMP_ECHO_REQUEST or ICMP_ECHO_REPLY. */
  type: number;
  id: number;
  seq: number;
  data: Uint8Array;
}

/** Writes an echo request/reply with checksum at `offset`; returns the offset past it. */
export function buildIcmpEcho(m: IcmpEchoFields, out: Uint8Array, offset = 0): number {
  out[offset] = m.type;
  out[offset + 1] = 0;
  out[offset + 2] = 0;
  out[offset + 3] = 0;
  out[offset + 4] = (m.id >>> 8) & 0xff;
  out[offset + 5] = m.id & 0xff;
  out[offset + 6] = (m.seq >>> 8) & 0xff;
  out[offset + 7] = m.seq & 0xff;
  out.set(m.data, offset + 8);
  return finishIcmp(out, offset, ICMP_HEADER_LENGTH + m.data.length);
}

export interface IcmpErrorFields {
  /** ICMP_DEST_UNREACHABLE or ICMP_TIME_EXCEEDED. */
  type: number;
  code: number;
  /** Written for ICMP_UNREACH_FRAG_NEEDED. */
  nextHopMtu?: number;
  /** The offending packet's IP header and at least its first 8 payload bytes. */
  original: Uint8Array;
}

/** Writes an ICMP error with checksum at `offset`; returns the offset past it. */
export function buildIcmpError(m: IcmpErrorFields, out: Uint8Array, offset = 0): number {
  const mtu = m.type === ICMP_DEST_UNREACHABLE && m.code === ICMP_UNREACH_FRAG_NEEDED ? (m.nextHopMtu ?? 0) : 0;
  out[offset] = m.type;
  out[offset + 1] = m.code;
  out[offset + 2] = 0;
  out[offset + 3] = 0;
  out[offset + 4] = 0;
  out[offset + 5] = 0;
  out[offset + 6] = (mtu >>> 8) & 0xff;
  out[offset + 7] = mtu & 0xff;
  out.set(m.original, offset + 8);
  return finishIcmp(out, offset, ICMP_HEADER_LENGTH + m.original.length);
}

function finishIcmp(out: Uint8Array, offset: number, length: number): number {
  const sum = internetChecksum(out, offset, length);
  out[offset + 2] = sum >>> 8;
  out[offset + 3] = sum & 0xff;
  return offset + length;
}
