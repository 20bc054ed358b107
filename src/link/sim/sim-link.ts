/**
 * A pair of connected in-memory endpoints on a virtual clock: a perfect cable with zero delay.
 * Delivery is always a separate simulator event (never inside `send`), so a receiver that answers
 * at once cannot recurse into its own sender. Impairments wrap an endpoint (see impair.ts).
 */
import { newLinkCounters, type FrameHandler, type Link, type LinkCounters } from '../link.js';
import type { Simulator } from './simulator.js';

export interface SimPairOptions {
  /** Endpoints are named `${name}.a` and `${name}.b`. */
  name: string;
  /** Largest IP packet; frames longer than mtu (+ 14 for Ethernet) are dropped. Default 1500. */
  mtu?: number;
  layer?: 'ethernet' | 'ip';
}

export const ETHERNET_HEADER_LEN = 14;

/** Longest frame a link of this layer and MTU carries. */
export function maxFrameLen(layer: 'ethernet' | 'ip', mtu: number): number {
  return mtu + (layer === 'ethernet' ? ETHERNET_HEADER_LEN : 0);
}

/** Copy that never aliases the caller's memory (Buffer#slice would return a view). */
export function copyFrame(frame: Uint8Array): Uint8Array {
  return new Uint8Array(frame);
}

class SimEndpoint implements Link {
  readonly counters: LinkCounters = newLinkCounters();
  peer: SimEndpoint | undefined;
  private receiver: FrameHandler | undefined;
  private closed = false;
  private readonly maxFrame: number;

  constructor(
    private readonly sim: Simulator,
    readonly name: string,
    readonly layer: 'ethernet' | 'ip',
    readonly mtu: number,
  ) {
    this.maxFrame = maxFrameLen(layer, mtu);
  }

  send(frames: readonly Uint8Array[]): void {
    const c = this.counters;
    if (this.closed) {
      c.dropsOut += frames.length;
      return;
    }
    const out: Uint8Array[] = [];
    for (const f of frames) {
      if (f.length > this.maxFrame) {
        c.dropsOut++;
        continue;
      }
      out.push(copyFrame(f));
      c.framesOut++;
      c.bytesOut += f.length;
    }
    if (out.length === 0) return;
    const peer = this.peer!;
    this.sim.after(0, () => peer.deliver(out));
  }

  setReceiver(handler: FrameHandler): void {
    this.receiver = handler;
  }

  close(): Promise<void> {
    this.closed = true;
    this.receiver = undefined;
    return Promise.resolve();
  }

  private deliver(frames: Uint8Array[]): void {
    const c = this.counters;
    if (this.closed || this.receiver === undefined) {
      c.dropsIn += frames.length;
      return;
    }
    c.framesIn += frames.length;
    for (const f of frames) c.bytesIn += f.length;
    this.receiver(frames);
  }
}

/** Two connected endpoints: what one sends, the other receives at the same virtual time. */
export function createSimPair(sim: Simulator, opts: SimPairOptions): [Link, Link] {
  const mtu = opts.mtu ?? 1500;
  const layer = opts.layer ?? 'ethernet';
  if (!Number.isInteger(mtu) || mtu < 68) throw new RangeError(`sim link mtu must be an integer >= 68, got ${mtu}`);
  const a = new SimEndpoint(sim, `${opts.name}.a`, layer, mtu);
  const b = new SimEndpoint(sim, `${opts.name}.b`, layer, mtu);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
