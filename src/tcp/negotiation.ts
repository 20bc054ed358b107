/**
 * SYN option negotiation (RFC 9293 3.7.1 MSS, RFC 7323 window scale and timestamps, RFC 2018
 * SACK-permitted): what we offer and what both ends end up using.
 */
import type { TcpOptions } from '../wire/tcp-segment.js';
import type { TcpConfig } from './types.js';

/** RFC 7323 2.3: the largest shift allowed. */
export const MAX_WINDOW_SHIFT = 14;
/** Default MSS when the peer sent none (RFC 9293 3.7.1, IPv4). */
export const DEFAULT_REMOTE_MSS = 536;
/** Bytes the timestamps option takes in every segment (10 + 2 NOPs). */
export const TS_OPTION_BYTES = 12;

/** The smallest shift that lets `bufferSize` be advertised in 16 bits. */
export function windowShiftFor(bufferSize: number): number {
  let shift = 0;
  while (shift < MAX_WINDOW_SHIFT && bufferSize >> shift > 0xffff) shift++;
  return shift;
}

export interface Negotiated {
  windowScaling: boolean;
  sndWindScale: number;
  rcvWindScale: number;
  timestamps: boolean;
  sack: boolean;
  remoteMss: number;
}

/** Options for a SYN or SYN-ACK we send. `peer` is the received SYN when answering one. */
export function synOptions(cfg: TcpConfig, tsVal: number, peer?: TcpOptions): TcpOptions {
  const opts: TcpOptions = { mss: cfg.mss };
  const answering = peer !== undefined;
  if (cfg.windowScaling && (!answering || peer.wscale !== undefined)) opts.wscale = windowShiftFor(cfg.receiveBufferSize);
  if (cfg.sack && (!answering || peer.sackPermitted)) opts.sackPermitted = true;
  if (cfg.timestamps && (!answering || peer.ts !== undefined)) opts.ts = { val: tsVal, ecr: answering && peer.ts ? peer.ts.val : 0 };
  return opts;
}

/** What both ends use, from our config and the peer's SYN options. */
export function negotiate(cfg: TcpConfig, peer: TcpOptions): Negotiated {
  const windowScaling = cfg.windowScaling && peer.wscale !== undefined;
  return {
    windowScaling,
    sndWindScale: windowScaling ? Math.min(peer.wscale ?? 0, MAX_WINDOW_SHIFT) : 0,
    rcvWindScale: windowScaling ? windowShiftFor(cfg.receiveBufferSize) : 0,
    timestamps: cfg.timestamps && peer.ts !== undefined,
    sack: cfg.sack && peer.sackPermitted === true,
    remoteMss: peer.mss ?? DEFAULT_REMOTE_MSS,
  };
}

/** Largest payload per segment we send: min of the peer's MSS and ours, less per-segment options. */
export function effectiveSendMss(cfg: TcpConfig, remoteMss: number, timestamps: boolean): number {
  return Math.max(64, Math.min(remoteMss, cfg.mss) - (timestamps ? TS_OPTION_BYTES : 0));
}
