/**
 * One interface for every way frames reach a wire: `tap` (native addon), `raw` (raw IP socket) and
 * `sim` (in-memory, virtual clock). Wrappers (pcap capture, impairments) take a Link and are a Link.
 */

/** Receives one batch of frames. The views are valid only for the duration of the call. */
export type FrameHandler = (frames: readonly Uint8Array[]) => void;

export interface LinkCounters {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  /** Frames the link itself dropped (queue full, write error, impairment). */
  dropsOut: number;
  dropsIn: number;
}

export interface Link {
  /** Human-readable name (device name, sim endpoint name). */
  readonly name: string;
  /** 'ethernet': frames start with an Ethernet header (TAP, sim). 'ip': IP packets (raw). */
  readonly layer: 'ethernet' | 'ip';
  /** Largest IP packet the link carries (without the Ethernet header). */
  readonly mtu: number;
  /** Send a batch of frames. The link copies what it keeps: the caller may reuse the memory. */
  send(frames: readonly Uint8Array[]): void;
  /** Install the receiver of incoming batches (replaces any earlier one). */
  setReceiver(handler: FrameHandler): void;
  readonly counters: LinkCounters;
  close(): Promise<void>;
}

export function newLinkCounters(): LinkCounters {
  return { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, dropsOut: 0, dropsIn: 0 };
}

/**
 * A Link that wraps another: identity, counters, the receiver and close pass through; subclasses
 * decide what `send` (and, by overriding `setReceiver`, receiving) does. Base of the pcap capture
 * and impairment wrappers.
 */
export abstract class ForwardingLink implements Link {
  constructor(readonly inner: Link) {}

  get name(): string {
    return this.inner.name;
  }
  get layer(): 'ethernet' | 'ip' {
    return this.inner.layer;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  get counters(): LinkCounters {
    return this.inner.counters;
  }

  abstract send(frames: readonly Uint8Array[]): void;

  setReceiver(handler: FrameHandler): void {
    this.inner.setReceiver(handler);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
