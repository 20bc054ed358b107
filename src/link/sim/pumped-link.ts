/**
 * A sim link driven by the real event loop: after each send, the simulator's zero-delay deliveries
 * run on the next turn. For the sim-link mode of `chimney start` and tests that put real IPC
 * sockets next to the in-memory wire.
 */
import { ForwardingLink, type Link } from '../link.js';
import type { Simulator } from './simulator.js';

export class PumpedLink extends ForwardingLink {
  private armed = false;
  constructor(inner: Link, private readonly sim: Simulator) {
    super(inner);
  }

  send(frames: readonly Uint8Array[]): void {
    this.inner.send(frames);
    if (this.armed) return;
    this.armed = true;
    setImmediate(() => {
      this.armed = false;
      this.sim.runUntil(this.sim.now);
    });
  }
}
