/**
 * Wall-clock `Scheduler` for the services: a min-heap of deadlines served by one Node timer armed
 * for the earliest one, on a `performance.now()` millisecond clock. TCP re-arms its retransmission
 * timer on nearly every ACK, so cancels are lazy (the entry is marked dead; the heap is compacted
 * when dead entries pile up) and the Node timer is only re-armed when a deadline moves *earlier*.
 * A timer that fires for a cancelled head just re-arms for the next live one.
 */
import { performance } from 'node:perf_hooks';
import type { Scheduler } from '../tcp/driver.js';

/** A Scheduler that can also run work "after this event-loop turn" (output batching). */
export interface LoopScheduler extends Scheduler {
  /** Run `fn` once the current turn's work is done (setImmediate; in simulation: at `now`). */
  defer(fn: () => void): void;
}

/** `defer` where the scheduler has one, else a zero-delay schedule (e.g. the virtual-clock one). */
export function deferOn(s: Scheduler, fn: () => void): void {
  const d = (s as Partial<LoopScheduler>).defer;
  if (typeof d === 'function') d.call(s, fn);
  else s.schedule(s.now(), fn);
}

class Entry {
  constructor(
    readonly at: number,
    readonly seq: number,
    public fn: (() => void) | null,
  ) {}
}

const COMPACT_MIN_DEAD = 256;

export interface WallClockSchedulerOptions {
  /** Let the process exit while timers are pending (default false: timers keep it alive). */
  unref?: boolean;
  /** Clock override (ms); default `performance.now()`. */
  clock?: () => number;
}

export class WallClockScheduler implements LoopScheduler {
  private heap: Entry[] = [];
  private dead = 0;
  private nextSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Deadline the Node timer is armed for. */
  private timerAt = Infinity;
  private readonly unref: boolean;
  private readonly clock: () => number;
  private closed = false;

  constructor(opts: WallClockSchedulerOptions = {}) {
    this.unref = opts.unref ?? false;
    this.clock = opts.clock ?? (() => performance.now());
  }

  now(): number {
    return this.clock();
  }

  /** Scheduled entries not yet run or cancelled. */
  get pending(): number {
    return this.heap.length - this.dead;
  }

  schedule(atMs: number, fn: () => void): unknown {
    if (!Number.isFinite(atMs)) throw new RangeError(`WallClockScheduler.schedule: time must be finite, got ${atMs}`);
    const e = new Entry(atMs, this.nextSeq++, fn);
    if (this.closed) {
      e.fn = null;
      return e;
    }
    this.push(e);
    if (atMs < this.timerAt) this.arm(atMs);
    return e;
  }

  cancel(handle: unknown): void {
    if (!(handle instanceof Entry) || handle.fn === null) return;
    handle.fn = null;
    this.dead++;
    if (this.dead >= COMPACT_MIN_DEAD && this.dead * 2 > this.heap.length) this.compact();
    if (this.pending === 0) this.disarm();
  }

  defer(fn: () => void): void {
    if (this.closed) return;
    const im = setImmediate(fn);
    if (this.unref) im.unref();
  }

  /** Cancel everything and refuse new work (the service is shutting down). */
  close(): void {
    this.closed = true;
    this.heap = [];
    this.dead = 0;
    this.disarm();
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    const delay = Math.max(0, Math.ceil(at - this.clock()));
    this.timer = setTimeout(() => this.fire(), delay);
    if (this.unref) this.timer.unref();
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock();
    try {
      // Entries scheduled by callbacks for "now or earlier" also run in this pass.
      for (;;) {
        const top = this.peekLive();
        if (top === undefined || top.at > now) break;
        this.pop();
        const fn = top.fn!;
        top.fn = null;
        fn();
      }
    } finally {
      const top = this.peekLive();
      if (top !== undefined && !this.closed && top.at < this.timerAt) this.arm(top.at);
    }
  }

  private peekLive(): Entry | undefined {
    while (this.heap.length > 0 && this.heap[0]!.fn === null) {
      this.pop();
      this.dead--;
    }
    return this.heap[0];
  }

  private push(e: Entry): void {
    const h = this.heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length > 0) this.siftDown(0, last);
  }

  private siftDown(start: number, e: Entry): void {
    const h = this.heap;
    const n = h.length;
    let i = start;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && before(h[c + 1]!, h[c]!)) c++;
      if (!before(h[c]!, e)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = e;
  }

  private compact(): void {
    const live = this.heap.filter((e) => e.fn !== null);
    this.heap = [];
    this.dead = 0;
    for (const e of live) this.push(e);
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
