/**
 * Virtual clock and event scheduler for deterministic simulation. Time is a number of
 * milliseconds (fractions allowed: serialisation delays are often below 1 ms). Events run in order
 * of time, then of scheduling, so one seed always gives one history. A binary heap keeps millions
 * of events cheap; cancelled events are dropped lazily and compacted when they pile up (TCP
 * re-arms its retransmission timer on nearly every ACK).
 */

/** Handle of a scheduled event. Opaque apart from the time it is due. */
export interface TimerId {
  readonly at: number;
}

class SimEvent implements TimerId {
  constructor(
    readonly at: number,
    readonly seq: number,
    /** null once the event has run or was cancelled. */
    public fn: (() => void) | null,
  ) {}
}

export interface RunUntilIdleOptions {
  /** Virtual time this call may advance (from `now` at the call). Default: unbounded. */
  maxTimeMs?: number;
  /** Events this call may run. Default: 10 000 000. */
  maxEvents?: number;
}

/** Thrown when a run bound is exceeded; `bound` names which one. */
export class SimBoundExceededError extends Error {
  constructor(
    readonly bound: 'maxTimeMs' | 'maxEvents',
    readonly limit: number,
    message: string,
  ) {
    super(message);
    this.name = 'SimBoundExceededError';
  }
}

const DEFAULT_MAX_EVENTS = 10_000_000;
/** Compact the heap once this many cancelled events sit in it (and they outnumber live ones). */
const COMPACT_MIN_DEAD = 1024;

export class Simulator {
  private clock: number;
  private heap: SimEvent[] = [];
  private dead = 0;
  private nextSeq = 0;
  private running = false;
  private executed = 0;

  constructor(startMs = 0) {
    if (!Number.isFinite(startMs)) throw new RangeError(`Simulator start time must be finite, got ${startMs}`);
    this.clock = startMs;
  }

  /** Current virtual time in ms. */
  get now(): number {
    return this.clock;
  }

  /** Events scheduled and not yet run or cancelled. */
  get pending(): number {
    return this.heap.length - this.dead;
  }

  /** Events run since construction. */
  get eventsRun(): number {
    return this.executed;
  }

  /** Time of the next live event, or undefined when idle. */
  nextTime(): number | undefined {
    const top = this.peekLive();
    return top === undefined ? undefined : top.at;
  }

  schedule(atMs: number, fn: () => void): TimerId {
    if (!Number.isFinite(atMs)) throw new RangeError(`Simulator.schedule: time must be finite, got ${atMs}`);
    if (atMs < this.clock) {
      throw new RangeError(`Simulator.schedule: time ${atMs} is in the past (now ${this.clock})`);
    }
    const ev = new SimEvent(atMs, this.nextSeq++, fn);
    this.push(ev);
    return ev;
  }

  after(delayMs: number, fn: () => void): TimerId {
    if (!(delayMs >= 0)) throw new RangeError(`Simulator.after: delay must be >= 0, got ${delayMs}`);
    return this.schedule(this.clock + delayMs, fn);
  }

  /** Cancel a pending event. Returns false when it already ran or was cancelled. */
  cancel(id: TimerId | undefined): boolean {
    if (!(id instanceof SimEvent) || id.fn === null) return false;
    id.fn = null;
    this.dead++;
    if (this.dead >= COMPACT_MIN_DEAD && this.dead * 2 > this.heap.length) this.compact();
    return true;
  }

  /** Run the next event, if any. Returns whether one ran. */
  step(): boolean {
    this.enter('step');
    try {
      const ev = this.peekLive();
      if (ev === undefined) return false;
      this.runTop(ev);
      return true;
    } finally {
      this.running = false;
    }
  }

  /**
   * Run every event due at or before `tMs` (including those they schedule), then set the clock to
   * `tMs`. Returns the number of events run.
   */
  runUntil(tMs: number, opts: { maxEvents?: number } = {}): number {
    if (Number.isNaN(tMs)) throw new RangeError('Simulator.runUntil: time is NaN');
    const maxEvents = opts.maxEvents ?? DEFAULT_MAX_EVENTS;
    this.enter('runUntil');
    let n = 0;
    try {
      for (;;) {
        const ev = this.peekLive();
        if (ev === undefined || ev.at > tMs) break;
        if (n >= maxEvents) this.throwEvents('runUntil', maxEvents);
        this.runTop(ev);
        n++;
      }
      if (tMs > this.clock && Number.isFinite(tMs)) this.clock = tMs;
      return n;
    } finally {
      this.running = false;
    }
  }

  /** Run until no event is pending. Throws SimBoundExceededError when a bound is hit. */
  runUntilIdle(opts: RunUntilIdleOptions = {}): number {
    const maxEvents = opts.maxEvents ?? DEFAULT_MAX_EVENTS;
    const maxTimeMs = opts.maxTimeMs ?? Infinity;
    const limit = this.clock + maxTimeMs;
    this.enter('runUntilIdle');
    let n = 0;
    try {
      for (;;) {
        const ev = this.peekLive();
        if (ev === undefined) return n;
        if (ev.at > limit) {
          throw new SimBoundExceededError(
            'maxTimeMs',
            maxTimeMs,
            `Simulator.runUntilIdle: maxTimeMs bound (${maxTimeMs} ms) exceeded: next event at ` +
              `${ev.at} ms is past ${limit} ms, ${this.pending} events pending`,
          );
        }
        if (n >= maxEvents) this.throwEvents('runUntilIdle', maxEvents);
        this.runTop(ev);
        n++;
      }
    } finally {
      this.running = false;
    }
  }

  private throwEvents(where: string, maxEvents: number): never {
    throw new SimBoundExceededError(
      'maxEvents',
      maxEvents,
      `Simulator.${where}: maxEvents bound (${maxEvents}) exceeded at t=${this.clock} ms, ` +
        `${this.pending} events pending`,
    );
  }

  private enter(what: string): void {
    if (this.running) throw new Error(`Simulator.${what} called from inside an event (re-entrant run)`);
    this.running = true;
  }

  /** Pops cancelled events off the top and returns the first live one without removing it. */
  private peekLive(): SimEvent | undefined {
    const heap = this.heap;
    while (heap.length > 0) {
      const top = heap[0]!;
      if (top.fn !== null) return top;
      this.pop();
      this.dead--;
    }
    return undefined;
  }

  private runTop(ev: SimEvent): void {
    this.pop();
    const fn = ev.fn!;
    ev.fn = null;
    this.clock = ev.at;
    this.executed++;
    fn();
  }

  private push(ev: SimEvent): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(ev);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(ev, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = ev;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length > 0) this.siftDown(0, last);
  }

  private siftDown(start: number, ev: SimEvent): void {
    const heap = this.heap;
    const n = heap.length;
    let i = start;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && before(heap[right]!, heap[child]!)) child = right;
      const c = heap[child]!;
      if (!before(c, ev)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = ev;
  }

  /** Drop cancelled events and rebuild the heap in O(n). */
  private compact(): void {
    this.heap = this.heap.filter((ev) => ev.fn !== null);
    this.dead = 0;
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i, this.heap[i]!);
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
