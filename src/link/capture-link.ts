/**
 * Records every frame crossing a Link into a pcap writer: sent frames before they are handed
 * down, received frames before they are handed up. Where it sits decides what it sees: around an
 * impairment chain it records what the stack sent; under it, what survived onto the wire.
 */
import { linktypeForLayer, type PcapWriter } from '../capture/pcap-writer.js';
import { ForwardingLink, type FrameHandler, type Link } from './link.js';

class CaptureLink extends ForwardingLink {
  constructor(
    inner: Link,
    private readonly writer: PcapWriter,
    private readonly clockMs: () => number,
  ) {
    super(inner);
  }

  send(frames: readonly Uint8Array[]): void {
    const t = this.clockMs();
    for (const f of frames) this.writer.write(f, t);
    this.inner.send(frames);
  }

  override setReceiver(handler: FrameHandler): void {
    this.inner.setReceiver((frames) => {
      const t = this.clockMs();
      for (const f of frames) this.writer.write(f, t);
      handler(frames);
    });
  }
}

/**
 * Wraps `link` so that both directions are written to `writer`, stamped with `clockMs()` (the
 * simulator's `now` in simulation, `Date.now` on real links). The writer's linktype must match
 * the link's layer. Closing the link does not close the writer (it may be shared).
 */
export function withCapture(link: Link, writer: PcapWriter, clockMs: () => number): Link {
  const want = linktypeForLayer(link.layer);
  if (writer.linktype !== want) {
    throw new Error(`withCapture: writer linktype ${writer.linktype} does not match link ${link.name} (${link.layer}, linktype ${want})`);
  }
  return new CaptureLink(link, writer, clockMs);
}
