/**
 * Whole-frame convenience: parse Ethernet -> ARP | IPv4/IPv6 -> TCP | ICMPv4 in one call, and build
 * Ethernet + IP + TCP frames (or bare IP packets for the raw L3 link) from a TcpSegment.
 */

import { buildArp, ARP_LENGTH, parseArp, type ArpPacket } from './arp.js';
import { onesComplementSum, pseudoHeaderSumV4, pseudoHeaderSumV6 } from './checksum.js';
import type { WireDropReason } from './drop-counter.js';
import {
  buildEthernet, ethernetHeaderLength, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, parseEthernet,
  type EthernetHeader, type VlanTag,
} from './ethernet.js';
import {
  buildIcmpEcho, buildIcmpError, ICMP_HEADER_LENGTH, parseIcmpv4, type IcmpEchoFields, type IcmpErrorFields,
  type IcmpMessage,
} from './icmp.js';
import { buildIpv4Header, IPPROTO_ICMP, IPPROTO_TCP, IPV4_HEADER_LENGTH, parseIpv4At, type Ipv4Header } from './ipv4.js';
import { buildIpv6Header, IPV6_HEADER_LENGTH, parseIpv6At, type Ipv6Header } from './ipv6.js';
import { buildTcp, parseTcpAt, tcpHeaderLength } from './tcp.js';
import type { TcpSegment } from './tcp-segment.js';

export type IpHeader = Ipv4Header | Ipv6Header;

export interface ParsedPacket {
  ip: IpHeader;
  /** Set when the IP payload is TCP. */
  tcp: TcpSegment | undefined;
  /** Set when the IP payload is ICMPv4. Other protocols: read `ip.protocol` / `ip.payload`. */
  icmp: IcmpMessage | undefined;
}

export interface ParsedFrame {
  eth: EthernetHeader;
  /** Set for IPv4/IPv6 frames. */
  ip: IpHeader | undefined;
  /** Set for ARP frames. */
  arp: ArpPacket | undefined;
  tcp: TcpSegment | undefined;
  icmp: IcmpMessage | undefined;
}

/**
 * Parses an Ethernet frame. The IPv4 header checksum is always verified; `verifyL4Checksum` false
 * skips TCP/ICMP checksums (frames whose checksum the kernel left to offload). Every view in the
 * result aliases `buf`.
 */
export function parseFrame(buf: Uint8Array, verifyL4Checksum = true): ParsedFrame | WireDropReason {
  const eth = parseEthernet(buf);
  if (typeof eth === 'string') return eth;
  if (eth.ethertype === ETHERTYPE_ARP) {
    const arp = parseArp(eth.payload);
    if (typeof arp === 'string') return arp;
    return { eth, ip: undefined, arp, tcp: undefined, icmp: undefined };
  }
  let packet: ParsedPacket | WireDropReason;
  if (eth.ethertype === ETHERTYPE_IPV4) packet = parseIpv4Packet(buf, eth.headerLength, verifyL4Checksum);
  else if (eth.ethertype === ETHERTYPE_IPV6) packet = parseIpv6Packet(buf, eth.headerLength, verifyL4Checksum);
  else return 'unsupported-ethertype';
  if (typeof packet === 'string') return packet;
  return { eth, ip: packet.ip, arp: undefined, tcp: packet.tcp, icmp: packet.icmp };
}

/** Parses a bare IP packet (raw L3 link), IPv4 or IPv6 by the version nibble. */
export function parseIpPacket(buf: Uint8Array, verifyL4Checksum = true): ParsedPacket | WireDropReason {
  if (buf.length === 0) return 'truncated';
  const version = buf[0]! >>> 4;
  if (version === 4) return parseIpv4Packet(buf, 0, verifyL4Checksum);
  if (version === 6) return parseIpv6Packet(buf, 0, verifyL4Checksum);
  return 'bad-version';
}

// Offset-based all the way down: the only view made on the TCP path is the payload's.
function parseIpv4Packet(buf: Uint8Array, offset: number, verifyL4Checksum: boolean): ParsedPacket | WireDropReason {
  const ip = parseIpv4At(buf, offset, buf.length);
  if (typeof ip === 'string') return ip;
  if (ip.protocol === IPPROTO_TCP) {
    const pseudo = verifyL4Checksum ? pseudoHeaderSumV4(ip.src, ip.dst, IPPROTO_TCP, 0) : undefined;
    const tcp = parseTcpAt(buf, ip.payloadOffset, ip.payloadEnd, pseudo);
    if (typeof tcp === 'string') return tcp;
    return { ip, tcp, icmp: undefined };
  }
  if (ip.protocol === IPPROTO_ICMP) {
    const icmp = parseIcmpv4(ip.payload, verifyL4Checksum);
    if (typeof icmp === 'string') return icmp;
    return { ip, tcp: undefined, icmp };
  }
  return { ip, tcp: undefined, icmp: undefined };
}

function parseIpv6Packet(buf: Uint8Array, offset: number, verifyL4Checksum: boolean): ParsedPacket | WireDropReason {
  const ip = parseIpv6At(buf, offset, buf.length);
  if (typeof ip === 'string') return ip;
  if (ip.protocol === IPPROTO_TCP) {
    // The 32 address bytes plus the protocol: pseudoHeaderSumV6 without making address views.
    const pseudo = verifyL4Checksum ? onesComplementSum(buf, offset + 8, 32) + IPPROTO_TCP : undefined;
    const tcp = parseTcpAt(buf, ip.payloadOffset, ip.payloadEnd, pseudo);
    if (typeof tcp === 'string') return tcp;
    return { ip, tcp, icmp: undefined };
  }
  return { ip, tcp: undefined, icmp: undefined };
}

export interface Ipv4Spec {
  version: 4;
  src: number;
  dst: number;
  /** Default 64. */
  ttl?: number;
  /** Default 0. */
  tos?: number;
  /** Default 0. */
  id?: number;
  /** Default true. */
  df?: boolean;
}

export interface Ipv6Spec {
  version: 6;
  src: Uint8Array;
  dst: Uint8Array;
  /** Default 64. */
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

export type IpSpec = Ipv4Spec | Ipv6Spec;

export interface TcpPacketSpec {
  ip: IpSpec;
  segment: TcpSegment;
}

export interface TcpFrameSpec extends TcpPacketSpec {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  vlan?: VlanTag;
}

/** Length of the IP packet `buildIpTcpPacket` writes. */
export function ipTcpPacketLength(spec: TcpPacketSpec): number {
  return (spec.ip.version === 4 ? IPV4_HEADER_LENGTH : IPV6_HEADER_LENGTH)
    + tcpHeaderLength(spec.segment.options) + spec.segment.payload.length;
}

export function tcpFrameLength(spec: TcpFrameSpec): number {
  return ethernetHeaderLength(spec.vlan) + ipTcpPacketLength(spec);
}

function target(out: Uint8Array | undefined, offset: number, length: number): Uint8Array {
  if (!out) return new Uint8Array(offset + length);
  if (offset + length > out.length) throw new RangeError(`output buffer too small: need ${offset + length}, have ${out.length}`);
  return out;
}

/** Writes IP header + TCP at `offset` into `out` (or a new buffer); returns the packet view. */
export function buildIpTcpPacket(spec: TcpPacketSpec, out?: Uint8Array, offset = 0): Uint8Array {
  const length = ipTcpPacketLength(spec);
  const buf = target(out, offset, length);
  writeIpTcp(spec, buf, offset, length);
  return buf.subarray(offset, offset + length);
}

/** The raw-link (L3) form of `buildTcpFrame`, IPv4 only. */
export function buildIpv4TcpPacket(spec: { ip: Ipv4Spec; segment: TcpSegment }, out?: Uint8Array, offset = 0): Uint8Array {
  return buildIpTcpPacket(spec, out, offset);
}

/** Writes Ethernet + IP + TCP at `offset` into `out` (or a new buffer); returns the frame view. */
export function buildTcpFrame(spec: TcpFrameSpec, out?: Uint8Array, offset = 0): Uint8Array {
  const ipLength = ipTcpPacketLength(spec);
  const length = ethernetHeaderLength(spec.vlan) + ipLength;
  const buf = target(out, offset, length);
  const ethertype = spec.ip.version === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6;
  const o = buildEthernet({ dst: spec.dstMac, src: spec.srcMac, ethertype, vlan: spec.vlan }, buf, offset);
  writeIpTcp(spec, buf, o, ipLength);
  return buf.subarray(offset, offset + length);
}

function writeIpTcp(spec: TcpPacketSpec, buf: Uint8Array, offset: number, ipLength: number): void {
  const ip = spec.ip;
  if (ip.version === 4) {
    const o = buildIpv4Header({
      src: ip.src, dst: ip.dst, protocol: IPPROTO_TCP, payloadLength: ipLength - IPV4_HEADER_LENGTH,
      ttl: ip.ttl, tos: ip.tos, id: ip.id, df: ip.df,
    }, buf, offset);
    buildTcp(spec.segment, buf, o, pseudoHeaderSumV4(ip.src, ip.dst, IPPROTO_TCP, 0));
  } else {
    const o = buildIpv6Header({
      src: ip.src, dst: ip.dst, nextHeader: IPPROTO_TCP, payloadLength: ipLength - IPV6_HEADER_LENGTH,
      hopLimit: ip.hopLimit, trafficClass: ip.trafficClass, flowLabel: ip.flowLabel,
    }, buf, offset);
    buildTcp(spec.segment, buf, o, pseudoHeaderSumV6(ip.src, ip.dst, IPPROTO_TCP, 0));
  }
}

export interface ArpFrameSpec {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  vlan?: VlanTag;
  arp: ArpPacket;
}

/** Ethernet + ARP (42 or 46 bytes, no padding to 60: TAP and veth do not need it). */
export function buildArpFrame(spec: ArpFrameSpec, out?: Uint8Array, offset = 0): Uint8Array {
  const length = ethernetHeaderLength(spec.vlan) + ARP_LENGTH;
  const buf = target(out, offset, length);
  const o = buildEthernet({ dst: spec.dstMac, src: spec.srcMac, ethertype: ETHERTYPE_ARP, vlan: spec.vlan }, buf, offset);
  buildArp(spec.arp, buf, o);
  return buf.subarray(offset, offset + length);
}

export type IcmpSpec = ({ kind: 'echo' } & IcmpEchoFields) | ({ kind: 'error' } & IcmpErrorFields);

export interface Icmpv4FrameSpec {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  vlan?: VlanTag;
  ip: Ipv4Spec;
  icmp: IcmpSpec;
}

/** Ethernet + IPv4 + ICMP echo or error message. */
export function buildIcmpv4Frame(spec: Icmpv4FrameSpec, out?: Uint8Array, offset = 0): Uint8Array {
  const icmpLength = ICMP_HEADER_LENGTH + (spec.icmp.kind === 'echo' ? spec.icmp.data.length : spec.icmp.original.length);
  const length = ethernetHeaderLength(spec.vlan) + IPV4_HEADER_LENGTH + icmpLength;
  const buf = target(out, offset, length);
  let o = buildEthernet({ dst: spec.dstMac, src: spec.srcMac, ethertype: ETHERTYPE_IPV4, vlan: spec.vlan }, buf, offset);
  const ip = spec.ip;
  o = buildIpv4Header({
    src: ip.src, dst: ip.dst, protocol: IPPROTO_ICMP, payloadLength: icmpLength, ttl: ip.ttl, tos: ip.tos, id: ip.id, df: ip.df,
  }, buf, o);
  if (spec.icmp.kind === 'echo') buildIcmpEcho(spec.icmp, buf, o);
  else buildIcmpError(spec.icmp, buf, o);
  return buf.subarray(offset, offset + length);
}
