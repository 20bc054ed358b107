/**
 * Impairments as Link wrappers. Each applies to frames *sent* through it (wrap both endpoints for
 * both directions), passes receiving straight through, and shares the inner link's counters (its
 * own drops are added to `dropsOut`, as the Link contract says). What each did is in `stats`.
 * Wrappers that hold frames copy them, because the caller may reuse its memory after `send`.
 * Closing a wrapper discards what it still holds and closes the inner link.
 */
import { ForwardingLink, type Link } from '../link.js';
import type { Rng } from './rng.js';
import { copyFrame, maxFrameLen } from './sim-link.js';
import type { Simulator } from './simulator.js';

export type ImpairedLink<S> = Link & { readonly stats: S; readonly inner: Link };

abstract class LinkWrapper<S> extends ForwardingLink {
  protected closed = false;

  constructor(
    inner: Link,
    readonly stats: S,
  ) {
    super(inner);
  }

  /** A closed wrapper drops what is still sent through it (and counts it); the rest is `pass`. */
  send(frames: readonly Uint8Array[]): void {
    if (this.closed) {
      this.counters.dropsOut += frames.length;
      return;
    }
    this.pass(frames);
  }

  /** What the impairment does with frames sent through an open wrapper. */
  protected abstract pass(frames: readonly Uint8Array[]): void;

  override close(): Promise<void> {
    this.closed = true;
    return super.close();
  }

  /** Forward to the inner link unless closed meanwhile (for frames released by a timer). */
  protected release(frames: Uint8Array[]): void {
    if (!this.closed) this.inner.send(frames);
  }
}

function checkProbability(what: string, p: number): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${what}: probability must be in [0, 1], got ${p}`);
}

// ---------------------------------------------------------------- loss

export interface LossStats {
  passed: number;
  dropped: number;
}

class LossLink extends LinkWrapper<LossStats> {
  constructor(
    inner: Link,
    private readonly rng: Rng,
    private readonly p: number,
  ) {
    super(inner, { passed: 0, dropped: 0 });
  }

  protected pass(frames: readonly Uint8Array[]): void {
    const out: Uint8Array[] = [];
    for (const f of frames) {
      if (this.rng.chance(this.p)) {
        this.stats.dropped++;
        this.counters.dropsOut++;
      } else {
        this.stats.passed++;
        out.push(f);
      }
    }
    if (out.length > 0) this.inner.send(out);
  }
}

/** Drops each frame independently with probability p. */
export function withLoss(link: Link, _sim: Simulator, rng: Rng, p: number): ImpairedLink<LossStats> {
  checkProbability('withLoss', p);
  return new LossLink(link, rng, p);
}

// ---------------------------------------------------------------- duplication

export interface DuplicationStats {
  passed: number;
  duplicated: number;
}

class DuplicationLink extends LinkWrapper<DuplicationStats> {
  constructor(
    inner: Link,
    private readonly rng: Rng,
    private readonly p: number,
  ) {
    super(inner, { passed: 0, duplicated: 0 });
  }

  protected pass(frames: readonly Uint8Array[]): void {
    const out: Uint8Array[] = [];
    for (const f of frames) {
      out.push(f);
      this.stats.passed++;
      if (this.rng.chance(this.p)) {
        // The inner link copies each entry, so the same view twice yields two independent frames.
        out.push(f);
        this.stats.duplicated++;
      }
    }
    if (out.length > 0) this.inner.send(out);
  }
}

/** Sends each frame twice (back to back) with probability p. */
export function withDuplication(
  link: Link,
  _sim: Simulator,
  rng: Rng,
  p: number,
): ImpairedLink<DuplicationStats> {
  checkProbability('withDuplication', p);
  return new DuplicationLink(link, rng, p);
}

// ---------------------------------------------------------------- reordering

export interface ReorderOptions {
  /** Probability that a frame is held back. */
  p: number;
  /** How long a chosen frame is held; frames sent meanwhile overtake it. */
  extraDelayMs: number;
}

export interface ReorderStats {
  passed: number;
  /** Frames held back (each may be overtaken by those sent within extraDelayMs after it). */
  reordered: number;
}

class ReorderLink extends LinkWrapper<ReorderStats> {
  constructor(
    inner: Link,
    private readonly sim: Simulator,
    private readonly rng: Rng,
    private readonly opts: ReorderOptions,
  ) {
    super(inner, { passed: 0, reordered: 0 });
  }

  protected pass(frames: readonly Uint8Array[]): void {
    const out: Uint8Array[] = [];
    for (const f of frames) {
      if (this.rng.chance(this.opts.p)) {
        this.stats.reordered++;
        const held = [copyFrame(f)];
        this.sim.after(this.opts.extraDelayMs, () => this.release(held));
      } else {
        this.stats.passed++;
        out.push(f);
      }
    }
    if (out.length > 0) this.inner.send(out);
  }
}

/** Holds a frame back by extraDelayMs with probability p, so later frames overtake it. */
export function withReordering(
  link: Link,
  sim: Simulator,
  rng: Rng,
  opts: ReorderOptions,
): ImpairedLink<ReorderStats> {
  checkProbability('withReordering', opts.p);
  if (!(opts.extraDelayMs >= 0)) throw new RangeError(`withReordering: extraDelayMs must be >= 0, got ${opts.extraDelayMs}`);
  return new ReorderLink(link, sim, rng, { ...opts });
}

// ---------------------------------------------------------------- delay + jitter

export interface DelayOptions {
  delayMs: number;
  /** Each frame's delay is delayMs + uniform(-jitterMs, +jitterMs), never below 0. Default 0. */
  jitterMs?: number;
  /**
   * Let jitter reorder frames (netem's behaviour). Default false: a frame never leaves before one
   * sent earlier (it waits for it), like a real path without reordering. So when frames are
   * closer together than the jitter range, FIFO raises the mean delay above delayMs.
   */
  allowReorder?: boolean;
}

export interface DelayStats {
  delayed: number;
  /** Frames currently in flight inside this wrapper. */
  held: number;
}

class DelayLink extends LinkWrapper<DelayStats> {
  /** Departure time of the last frame scheduled (for FIFO). */
  private lastAt = -Infinity;
  private readonly jitterMs: number;
  private readonly fifo: boolean;

  constructor(
    inner: Link,
    private readonly sim: Simulator,
    private readonly rng: Rng,
    private readonly delayMs: number,
    opts: DelayOptions,
  ) {
    super(inner, { delayed: 0, held: 0 });
    this.jitterMs = opts.jitterMs ?? 0;
    this.fifo = !opts.allowReorder;
  }

  protected pass(frames: readonly Uint8Array[]): void {
    const now = this.sim.now;
    // Consecutive frames leaving at the same time travel as one batch (one event).
    let batch: Uint8Array[] | undefined;
    let batchAt = 0;
    for (const f of frames) {
      let at = now + this.delayMs;
      if (this.jitterMs > 0) at += this.rng.range(-this.jitterMs, this.jitterMs);
      if (at < now) at = now;
      if (this.fifo) {
        if (at < this.lastAt) at = this.lastAt;
        this.lastAt = at;
      }
      if (batch !== undefined && at === batchAt) {
        batch.push(copyFrame(f));
      } else {
        if (batch !== undefined) this.scheduleBatch(batchAt, batch);
        batch = [copyFrame(f)];
        batchAt = at;
      }
      this.stats.delayed++;
      this.stats.held++;
    }
    if (batch !== undefined) this.scheduleBatch(batchAt, batch);
  }

  private scheduleBatch(at: number, batch: Uint8Array[]): void {
    this.sim.schedule(at, () => {
      this.stats.held -= batch.length;
      this.release(batch);
    });
  }
}

/** Delays every frame by delayMs (+ jitter); keeps FIFO order unless allowReorder. */
export function withDelay(link: Link, sim: Simulator, rng: Rng, opts: DelayOptions): ImpairedLink<DelayStats> {
  const jitter = opts.jitterMs ?? 0;
  if (!(opts.delayMs >= 0) || !Number.isFinite(opts.delayMs)) throw new RangeError(`withDelay: delayMs must be >= 0, got ${opts.delayMs}`);
  if (!(jitter >= 0) || !Number.isFinite(jitter)) throw new RangeError(`withDelay: jitterMs must be >= 0, got ${jitter}`);
  return new DelayLink(link, sim, rng, opts.delayMs, opts);
}

// ---------------------------------------------------------------- rate limit

export interface RateLimitOptions {
  bitsPerSecond: number;
  /** Frames the bottleneck holds, including the one being serialised; more are tail-dropped. Default 1000. */
  queueFrames?: number;
}

export interface RateLimitStats {
  sent: number;
  dropped: number;
  /** Frames in the bottleneck now. */
  queued: number;
  maxQueued: number;
}

class RateLimitLink extends LinkWrapper<RateLimitStats> {
  /** Time the serialiser becomes free. */
  private busyUntil = -Infinity;
  private readonly msPerByte: number;

  constructor(
    inner: Link,
    private readonly sim: Simulator,
    bitsPerSecond: number,
    private readonly queueFrames: number,
  ) {
    super(inner, { sent: 0, dropped: 0, queued: 0, maxQueued: 0 });
    this.msPerByte = 8000 / bitsPerSecond;
  }

  protected pass(frames: readonly Uint8Array[]): void {
    const s = this.stats;
    for (const f of frames) {
      if (s.queued >= this.queueFrames) {
        s.dropped++;
        this.counters.dropsOut++;
        continue;
      }
      // Store and forward: the frame leaves when its last bit is serialised.
      const start = Math.max(this.sim.now, this.busyUntil);
      const done = start + f.length * this.msPerByte;
      this.busyUntil = done;
      s.queued++;
      if (s.queued > s.maxQueued) s.maxQueued = s.queued;
      const held = [copyFrame(f)];
      this.sim.schedule(done, () => {
        s.queued--;
        s.sent++;
        this.release(held);
      });
    }
  }
}

/**
 * A bottleneck of bitsPerSecond with a FIFO of queueFrames: each frame takes length*8/rate to
 * serialise (frame bytes only: no preamble, FCS or inter-frame gap), tail drop when full.
 */
export function withRateLimit(link: Link, sim: Simulator, opts: RateLimitOptions): ImpairedLink<RateLimitStats> {
  const queueFrames = opts.queueFrames ?? 1000;
  if (!(opts.bitsPerSecond > 0) || !Number.isFinite(opts.bitsPerSecond)) {
    throw new RangeError(`withRateLimit: bitsPerSecond must be > 0, got ${opts.bitsPerSecond}`);
  }
  if (!Number.isInteger(queueFrames) || queueFrames < 1) {
    throw new RangeError(`withRateLimit: queueFrames must be an integer >= 1, got ${queueFrames}`);
  }
  return new RateLimitLink(link, sim, opts.bitsPerSecond, queueFrames);
}

// ---------------------------------------------------------------- mtu

export interface MtuStats {
  passed: number;
  dropped: number;
}

class MtuLink extends LinkWrapper<MtuStats> {
  private readonly limit: number;
  private readonly maxFrame: number;

  constructor(inner: Link, mtu: number) {
    super(inner, { passed: 0, dropped: 0 });
    this.limit = Math.min(mtu, inner.mtu);
    this.maxFrame = maxFrameLen(inner.layer, mtu);
  }

  override get mtu(): number {
    return this.limit;
  }

  protected pass(frames: readonly Uint8Array[]): void {
    const out: Uint8Array[] = [];
    for (const f of frames) {
      if (f.length > this.maxFrame) {
        this.stats.dropped++;
        this.counters.dropsOut++;
      } else {
        this.stats.passed++;
        out.push(f);
      }
    }
    if (out.length > 0) this.inner.send(out);
  }
}

/** Drops frames whose IP packet exceeds mtu (a narrower hop); the wrapper reports the smaller mtu. */
export function withMtu(link: Link, mtu: number): ImpairedLink<MtuStats> {
  if (!Number.isInteger(mtu) || mtu < 68) throw new RangeError(`withMtu: mtu must be an integer >= 68, got ${mtu}`);
  return new MtuLink(link, mtu);
}

// ---------------------------------------------------------------- spec -> chain

/** Plain description of a path's impairments; zero or absent fields add no wrapper. */
export interface ImpairSpec {
  /** Loss probability. */
  loss?: number;
  /** Duplication probability. */
  duplicate?: number;
  /** Probability a frame is held back by reorderDelayMs. */
  reorder?: number;
  /** Default 1 ms. */
  reorderDelayMs?: number;
  delayMs?: number;
  jitterMs?: number;
  /** Let jitter reorder (default false: FIFO). */
  jitterReorders?: boolean;
  rateBps?: number;
  /** Bottleneck queue (frames), with rateBps. Default 1000. */
  queueFrames?: number;
  mtu?: number;
}

export interface ImpairStats {
  mtu?: MtuStats;
  loss?: LossStats;
  duplicate?: DuplicationStats;
  reorder?: ReorderStats;
  rate?: RateLimitStats;
  delay?: DelayStats;
}

/**
 * Builds the chain for `spec` around `link`. A frame passes, in order: mtu, loss, duplicate,
 * reorder, rate limit, delay. Each wrapper draws from its own fork of `rng` (labelled by the link
 * name and the impairment), so both endpoints can share one rng and adding an impairment does
 * not change the decisions of the others.
 */
export function impair(link: Link, sim: Simulator, rng: Rng, spec: ImpairSpec): ImpairedLink<ImpairStats> {
  const base = rng.fork(link.name);
  const stats: ImpairStats = {};
  let l: Link = link;
  if ((spec.delayMs ?? 0) > 0 || (spec.jitterMs ?? 0) > 0) {
    const w = withDelay(l, sim, base.fork('delay'), {
      delayMs: spec.delayMs ?? 0,
      jitterMs: spec.jitterMs ?? 0,
      allowReorder: spec.jitterReorders ?? false,
    });
    stats.delay = w.stats;
    l = w;
  }
  if (spec.rateBps !== undefined && spec.rateBps > 0) {
    const w = withRateLimit(l, sim, { bitsPerSecond: spec.rateBps, queueFrames: spec.queueFrames ?? 1000 });
    stats.rate = w.stats;
    l = w;
  }
  if ((spec.reorder ?? 0) > 0) {
    const w = withReordering(l, sim, base.fork('reorder'), { p: spec.reorder!, extraDelayMs: spec.reorderDelayMs ?? 1 });
    stats.reorder = w.stats;
    l = w;
  }
  if ((spec.duplicate ?? 0) > 0) {
    const w = withDuplication(l, sim, base.fork('duplicate'), spec.duplicate!);
    stats.duplicate = w.stats;
    l = w;
  }
  if ((spec.loss ?? 0) > 0) {
    const w = withLoss(l, sim, base.fork('loss'), spec.loss!);
    stats.loss = w.stats;
    l = w;
  }
  if (spec.mtu !== undefined) {
    const w = withMtu(l, spec.mtu);
    stats.mtu = w.stats;
    l = w;
  }
  return new ChainLink(l, link, stats);
}

/** The outer end of an impair() chain, exposing the combined stats; `inner` is the bare link. */
class ChainLink extends LinkWrapper<ImpairStats> {
  constructor(
    private readonly head: Link,
    bare: Link,
    stats: ImpairStats,
  ) {
    super(bare, stats);
  }

  override get mtu(): number {
    return this.head.mtu;
  }

  protected pass(frames: readonly Uint8Array[]): void {
    this.head.send(frames);
  }

  override close(): Promise<void> {
    this.closed = true;
    return this.head.close();
  }
}
