/**
 * The plain record for one TCP segment that the sans-I/O engine consumes and produces. The wire
 * codec (`tcp.ts`) parses a header into this record (payload is a view over the received buffer)
 * and builds a header from it. Ports and addresses are not the engine's business: the caller's
 * demux owns the 4-tuple.
 */

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/** A SACK block [left, right) in sequence space (RFC 2018). */
export interface SackBlock {
  left: number;
  right: number;
}

export interface TcpOptions {
  /** MSS option (SYN only). */
  mss?: number;
  /** Window-scale shift (SYN only), 0..14 after clamping. */
  wscale?: number;
  /** SACK-permitted (SYN only). */
  sackPermitted?: boolean;
  /** SACK blocks, at most 4 (3 with timestamps). */
  sack?: SackBlock[];
  /** Timestamps option (RFC 7323). */
  ts?: { val: number; ecr: number };
}

export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** Bitwise OR of TCP_FIN .. TCP_CWR. */
  flags: number;
  /** The raw 16-bit window field, before scaling. */
  window: number;
  urgent: number;
  options: TcpOptions;
  payload: Uint8Array;
}

/** Sequence space a segment occupies: payload plus one for SYN and one for FIN. */
export function segmentLength(seg: TcpSegment): number {
  return seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
}

/** An independent copy: parsed segments are views into frame buffers that links reuse. */
export function cloneSegment(s: TcpSegment): TcpSegment {
  return { ...s, payload: s.payload.slice(), options: { ...s.options, sack: s.options.sack?.map((b) => ({ ...b })), ts: s.options.ts && { ...s.options.ts } } };
}

export function flagsToString(flags: number): string {
  const names: Array<[number, string]> = [
    [TCP_SYN, 'S'], [TCP_FIN, 'F'], [TCP_RST, 'R'], [TCP_PSH, 'P'], [TCP_ACK, '.'], [TCP_URG, 'U'], [TCP_ECE, 'E'], [TCP_CWR, 'W'],
  ];
  return names.filter(([bit]) => flags & bit).map(([, n]) => n).join('') || 'none';
}
