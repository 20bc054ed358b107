/** ARP for Ethernet/IPv4 only (RFC 826). */

import { readIpv4, writeIpv4 } from './addresses.js';

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
/** Ethernet/IPv4 ARP body length; a frame may carry padding after it. */
export const ARP_LENGTH = 28;

export interface ArpPacket {
  /** ARP_REQUEST or ARP_REPLY. */
  op: number;
  senderMac: Uint8Array;
  senderIp: number;
  /** All zero in a request. */
  targetMac: Uint8Array;
  targetIp: number;
}

export function parseArp(buf: Uint8Array): ArpPacket | 'truncated' | 'bad-arp' {
  if (buf.length < ARP_LENGTH) return 'truncated';
  const htype = (buf[0]! << 8) | buf[1]!;
  const ptype = (buf[2]! << 8) | buf[3]!;
  const op = (buf[6]! << 8) | buf[7]!;
  if (htype !== 1 || ptype !== 0x0800 || buf[4] !== 6 || buf[5] !== 4) return 'bad-arp';
  if (op !== ARP_REQUEST && op !== ARP_REPLY) return 'bad-arp';
  return {
    op,
    senderMac: buf.subarray(8, 14),
    senderIp: readIpv4(buf, 14),
    targetMac: buf.subarray(18, 24),
    targetIp: readIpv4(buf, 24),
  };
}

/** Writes the 28-byte body at `offset`; returns the offset just past it. */
export function buildArp(p: ArpPacket, out: Uint8Array, offset = 0): number {
  out[offset] = 0;
  out[offset + 1] = 1;
  out[offset + 2] = 0x08;
  out[offset + 3] = 0x00;
  out[offset + 4] = 6;
  out[offset + 5] = 4;
  out[offset + 6] = p.op >>> 8;
  out[offset + 7] = p.op & 0xff;
  for (let i = 0; i < 6; i++) {
    out[offset + 8 + i] = p.senderMac[i]!;
    out[offset + 18 + i] = p.targetMac[i]!;
  }
  writeIpv4(out, offset + 14, p.senderIp);
  writeIpv4(out, offset + 24, p.targetIp);
  return offset + ARP_LENGTH;
}
