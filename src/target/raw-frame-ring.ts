/**
 * The last frames the target passed up to the host as RawFrame messages, numbered like the host
 * counts them (1, 2, ... per binding, modulo 2^32). At an initiate the host says how many it had
 * processed when it exported the connection (RawFramesSeen); the frames after that number are the
 * ones the host holds for the connection, and the target replays them from here at once instead of
 * waiting a round trip for the host to forward them (docs/ipc-protocol.md section 7).
 *
 * The frames are the copies already made for the RawFrame messages (never written afterwards), so
 * keeping them costs memory, not copying.
 */
export class RawFrameRing {
  private readonly frames: Array<Uint8Array | undefined>;
  /** Number of the newest frame (0: none yet). */
  private newest = 0;
  private count = 0;

  /** `capacity` is a power of two, so that numbering modulo 2^32 maps onto slots without a seam. */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(Math.log2(capacity)) || capacity > 2 ** 31) throw new RangeError(`RawFrameRing capacity ${capacity} is not a power of two`);
    this.frames = new Array<Uint8Array | undefined>(capacity);
  }

  /** The number the next pushed frame gets (what the host counts). */
  get sent(): number {
    return this.newest;
  }

  push(frame: Uint8Array): void {
    this.newest = (this.newest + 1) >>> 0;
    this.frames[this.newest % this.capacity] = frame;
    if (this.count < this.capacity) this.count++;
  }

  /**
   * Every frame numbered after `seen`, oldest first; undefined when the ring no longer holds all of
   * them (or `seen` is ahead of what was sent): the caller then cannot know what the host holds.
   */
  after(seen: number): Uint8Array[] | undefined {
    const n = (this.newest - seen) >>> 0;
    if (n > this.count) return undefined;
    const out: Uint8Array[] = [];
    for (let i = n - 1; i >= 0; i--) out.push(this.frames[((this.newest - i) >>> 0) % this.capacity]!);
    return out;
  }

  /** A new binding counts from zero again. */
  reset(): void {
    this.frames.fill(undefined);
    this.newest = 0;
    this.count = 0;
  }
}
