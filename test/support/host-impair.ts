/**
 * netem's delay / loss / reorder in userspace, on the wall clock, around a real Link: for kernels
 * without sch_netem (e.g. some micro-VMs). Applies to both directions: what the stack sends before
 * it reaches the TAP, and what the TAP delivers before the stack sees it. Like netem, a "reordered"
 * frame skips the delay and so overtakes the frames held before it. Seeded: one seed, one pattern.
 */
import { performance } from 'node:perf_hooks';
import { Rng } from '../../src/link/sim/rng.js';
import { ForwardingLink, type FrameHandler, type Link } from '../../src/link/link.js';

export interface WallImpairment {
  delayMs: number;
  lossPct: number;
  reorderPct: number;
  seed: string;
}

export interface WallImpairStats {
  passed: number;
  dropped: number;
  reordered: number;
  /**
   * Frames a reordered frame overtook, summed: the reordering depth the receiver sees. Every held
   * frame is overtaken, so a busy event loop (late timers, big read bursts) makes it grow.
   */
  overtaken: number;
  /** Longest time a frame was held past its release time (event-loop lateness), in ms. */
  maxLateMs: number;
}

/** One direction: frames held until their release time, released by one timer. */
class DelayLine {
  readonly stats: WallImpairStats = { passed: 0, dropped: 0, reordered: 0, overtaken: 0, maxLateMs: 0 };
  private queue: Array<{ at: number; frame: Uint8Array }> = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly imp: WallImpairment,
    private readonly rng: Rng,
    private readonly release: (frames: Uint8Array[]) => void,
  ) {}

  push(frames: readonly Uint8Array[]): void {
    if (this.closed) return;
    const now = performance.now();
    for (const f of frames) {
      if (this.rng.chance(this.imp.lossPct / 100)) {
        this.stats.dropped++;
        continue;
      }
      this.stats.passed++;
      const reorder = this.rng.chance(this.imp.reorderPct / 100);
      if (reorder) this.stats.reordered++;
      const at = reorder ? now : now + this.imp.delayMs;
      // Keep the queue sorted by release time; equal times stay in arrival order.
      let i = this.queue.length;
      while (i > 0 && this.queue[i - 1]!.at > at) i--;
      if (reorder) this.stats.overtaken += this.queue.length - i;
      this.queue.splice(i, 0, { at, frame: f.slice() });
    }
    this.arm();
  }

  private arm(): void {
    if (this.timer !== undefined || this.queue.length === 0 || this.closed) return;
    const wait = Math.max(0, this.queue[0]!.at - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, Math.ceil(wait));
  }

  private flush(): void {
    const now = performance.now();
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.at <= now) n++;
    if (n > 0) this.stats.maxLateMs = Math.max(this.stats.maxLateMs, now - this.queue[0]!.at);
    const due = this.queue.splice(0, n).map((e) => e.frame);
    if (due.length > 0) this.release(due);
    this.arm();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.queue = [];
  }
}

export class WallImpairedLink extends ForwardingLink {
  readonly out: DelayLine;
  readonly in: DelayLine;
  private handler: FrameHandler | undefined;

  constructor(inner: Link, imp: WallImpairment) {
    super(inner);
    const rng = new Rng(imp.seed);
    this.out = new DelayLine(imp, rng.fork('out'), (frames) => this.inner.send(frames));
    this.in = new DelayLine(imp, rng.fork('in'), (frames) => this.handler?.(frames));
    inner.setReceiver((frames) => this.in.push(frames));
  }

  send(frames: readonly Uint8Array[]): void {
    this.out.push(frames);
  }

  override setReceiver(handler: FrameHandler): void {
    this.handler = handler;
  }

  override close(): Promise<void> {
    this.out.close();
    this.in.close();
    return super.close();
  }
}
