/** In-memory Ethernet links for host/target tests that need real event-loop turns (not the sim). */
import { newLinkCounters, type FrameHandler, type Link } from '../../src/link/link.js';

/** Two in-memory endpoints; delivery on a later event-loop turn, frames copied. */
export function memoryPair(names: [string, string] = ['mem.a', 'mem.b']): [Link, Link] {
  const mk = (name: string): Link & { peer?: { deliver(f: Uint8Array[]): void }; deliver(f: Uint8Array[]): void } => {
    let rx: FrameHandler | undefined;
    let closed = false;
    const ep = {
      name, layer: 'ethernet' as const, mtu: 1500, counters: newLinkCounters(),
      peer: undefined as { deliver(f: Uint8Array[]): void } | undefined,
      send(frames: readonly Uint8Array[]): void {
        if (closed) return;
        const copy = frames.map((f) => f.slice());
        setImmediate(() => ep.peer?.deliver(copy));
      },
      deliver(frames: Uint8Array[]): void { if (!closed) rx?.(frames); },
      setReceiver(h: FrameHandler): void { rx = h; },
      close(): Promise<void> { closed = true; return Promise.resolve(); },
    };
    return ep;
  };
  const a = mk(names[0]);
  const b = mk(names[1]);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
