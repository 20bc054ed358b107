/**
 * The host stack's link when an offload target owns the wire: frames the stack sends go to the
 * target as RawFrame messages, RawFrames from the target are the frames the stack receives. Every
 * other target message goes to the control handler (the offload manager). Frames and control share
 * one ordered message stream, which is what makes offload hand-overs atomic (design.md).
 */
import type { IpcClient } from '../ipc/client.js';
import type { HostMessage, TargetMessage } from '../ipc/messages.js';
import { newLinkCounters, type FrameHandler, type Link, type LinkCounters } from '../link/link.js';

export interface ChimneyLinkOptions {
  /** Puts one message on the binding to the target (in order). */
  send(msg: HostMessage): void;
  name?: string;
  /** The target's wire MTU (default 1500). */
  mtu?: number;
}

export class ChimneyLink implements Link {
  readonly name: string;
  readonly layer = 'ethernet' as const;
  readonly mtu: number;
  readonly counters: LinkCounters = newLinkCounters();
  private receiver: FrameHandler | undefined;
  private control: ((msg: TargetMessage) => void) | undefined;
  /** Called once when the binding to the target is gone (the target resets what it offloaded). */
  onBindingClosed: ((reason: string) => void) | undefined;
  private early: TargetMessage[] = [];
  private closed = false;
  private readonly sendFn: (msg: HostMessage) => void;

  constructor(opts: ChimneyLinkOptions) {
    this.sendFn = opts.send;
    this.name = opts.name ?? 'chimney';
    this.mtu = opts.mtu ?? 1500;
  }

  /** A link over an IPC binding: every target message the client does not consume comes here. */
  static overIpc(client: IpcClient, opts: Omit<ChimneyLinkOptions, 'send'> = {}): ChimneyLink {
    const link = new ChimneyLink({ ...opts, send: (m) => { client.send(m); } });
    client.on((m) => link.onTargetMessage(m));
    client.onClose((reason) => link.bindingClosed(reason));
    return link;
  }

  send(frames: readonly Uint8Array[]): void {
    const c = this.counters;
    for (const f of frames) {
      if (this.closed) {
        c.dropsOut++;
        continue;
      }
      c.framesOut++;
      c.bytesOut += f.length;
      // The stack reuses its output arena after this call; the binding may send later.
      this.sendFn({ type: 'RawFrame', frame: f.slice() });
    }
  }

  setReceiver(handler: FrameHandler): void {
    this.receiver = handler;
  }

  /** Install the handler of every non-frame target message (messages that came earlier first). */
  setControlHandler(handler: (msg: TargetMessage) => void): void {
    this.control = handler;
    const early = this.early;
    this.early = [];
    for (const m of early) handler(m);
  }

  /** A control message from the host to the target, in order with the frames. */
  sendMessage(msg: HostMessage): void {
    if (!this.closed) this.sendFn(msg);
  }

  /** RawFrame messages from the target processed so far (delivered or dropped), modulo 2^32 (RawFramesSeen). */
  get rawFramesSeen(): number {
    return (this.counters.framesIn + this.counters.dropsIn) >>> 0;
  }

  /** One message from the target, in arrival order. */
  onTargetMessage(msg: TargetMessage): void {
    if (this.closed) return;
    if (msg.type === 'RawFrame') {
      const c = this.counters;
      if (this.receiver === undefined) {
        c.dropsIn++;
        return;
      }
      c.framesIn++;
      c.bytesIn += msg.frame.length;
      this.receiver([msg.frame]);
      return;
    }
    if (this.control === undefined) this.early.push(msg);
    else this.control(msg);
  }

  /** The binding closed: no more frames either way. */
  bindingClosed(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.receiver = undefined;
    this.onBindingClosed?.(reason);
  }

  close(): Promise<void> {
    this.closed = true;
    this.receiver = undefined;
    return Promise.resolve();
  }
}
