/**
 * CUBIC congestion control, RFC 9438. cwnd is kept in bytes; the cubic function works in segments
 * (C = 0.4 segments/s^3) and is converted with the current MSS. Slow start (cwnd < ssthresh) is
 * Reno's (RFC 5681 with RFC 3465 ABC); HyStart is not implemented.
 *
 * Choices where RFC 9438 leaves room, following Linux:
 * - the epoch (t_epoch, cwnd_epoch, K) starts at the first ACK in congestion avoidance after a
 *   reduction or slow start;
 * - when cwnd_epoch >= W_max (or W_max is unknown), K = 0 and the curve's plateau is cwnd_epoch;
 * - while the sender is not cwnd-limited, cwnd does not grow and t is frozen (t_epoch moves), so an
 *   application-limited period does not turn into a burst later (RFC 9438 section 5.8).
 */
import type { CongestionControl, CongestionControlInit } from './congestion-control.js';
import { isCwndLimited, slowStart } from './newreno.js';

/** RFC 9438 section 5: constants. */
export const CUBIC_C = 0.4;
export const CUBIC_BETA = 0.7;
/** RFC 9438 section 4.3: alpha_cubic = 3 (1 - beta) / (1 + beta). */
export const CUBIC_ALPHA = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);

export interface CubicOptions {
  /** RFC 9438 section 4.7; default true. */
  fastConvergence?: boolean;
}

export class Cubic implements CongestionControl {
  readonly name = 'cubic';
  cwnd: number;
  ssthresh: number;
  private mss: number;
  private readonly fastConvergence: boolean;
  /** W_max in bytes (cwnd before the last reduction, or less with fast convergence). */
  private wMaxBytes: number | undefined;
  /** cwnd_prior in bytes: cwnd just before the most recent reduction. */
  private cwndPrior: number | undefined;
  private epochStart: number | undefined;
  private kSec = 0;
  /** The curve's plateau for this epoch, bytes (W_max, or cwnd_epoch when K = 0). */
  private origin = 0;
  /** W_est in bytes (RFC 9438 section 4.3). */
  private wEstBytes = 0;
  private lastAckAt: number | undefined;
  /** RFC 9438 section 4.8: the next epoch starts with K = 0 and W_max = cwnd_epoch. */
  private afterTimeout = false;

  constructor(init: CongestionControlInit, opts: CubicOptions = {}) {
    this.mss = init.mss;
    this.cwnd = init.cwnd;
    this.ssthresh = init.ssthresh;
    this.fastConvergence = opts.fastConvergence ?? true;
  }

  /** W_max in bytes, undefined before the first congestion event. */
  get wMax(): number | undefined {
    return this.wMaxBytes;
  }

  /** K of the current epoch in seconds, undefined outside an epoch. */
  get k(): number | undefined {
    return this.epochStart === undefined ? undefined : this.kSec;
  }

  /** W_est of the current epoch in bytes, undefined outside an epoch. */
  get wEst(): number | undefined {
    return this.epochStart === undefined ? undefined : this.wEstBytes;
  }

  /** t_epoch (engine clock, ms) of the current epoch, undefined outside one. */
  get epochStartMs(): number | undefined {
    return this.epochStart;
  }

  /** W_cubic(t) of the current epoch in bytes, t in seconds since t_epoch (RFC 9438 Figure 1). */
  wCubic(tSec: number): number {
    return CUBIC_C * (tSec - this.kSec) ** 3 * this.mss + this.origin;
  }

  setMss(mss: number): void {
    this.mss = mss;
    if (this.cwnd < mss) this.cwnd = mss;
    // Segment-based curve parameters no longer match: start a new epoch from the current cwnd.
    this.epochStart = undefined;
  }

  onAck(ackedBytes: number, now: number, srtt: number | undefined, flightBefore: number): void {
    if (ackedBytes <= 0) return;
    const last = this.lastAckAt;
    this.lastAckAt = now;
    if (!isCwndLimited(this.cwnd, this.ssthresh, flightBefore, this.mss)) {
      if (this.epochStart !== undefined && last !== undefined) this.epochStart += now - last;
      return;
    }
    let acked = ackedBytes;
    if (this.cwnd < this.ssthresh) {
      const ss = slowStart(this.cwnd, this.ssthresh, acked, (this.afterTimeout ? 1 : 2) * this.mss);
      this.cwnd = ss.cwnd;
      acked = ss.leftover;
      if (this.cwnd < this.ssthresh || acked === 0) return;
    }
    if (this.epochStart === undefined) this.startEpoch(now);
    const t = (now - this.epochStart!) / 1000;
    const rtt = (srtt ?? 0) / 1000;
    const mss = this.mss;

    // Reno-friendly estimate (section 4.3); alpha becomes 1 once W_est reaches cwnd_prior.
    const alpha = this.cwndPrior !== undefined && this.wEstBytes >= this.cwndPrior ? 1 : CUBIC_ALPHA;
    this.wEstBytes += (alpha * acked * mss) / this.cwnd;

    if (this.wCubic(t) < this.wEstBytes) {
      if (this.wEstBytes > this.cwnd) this.cwnd = this.wEstBytes;
      return;
    }
    // Concave and convex regions (sections 4.4, 4.5): aim for W_cubic(t + RTT), at most 1.5 cwnd.
    const target = Math.min(Math.max(this.wCubic(t + rtt), this.cwnd), 1.5 * this.cwnd);
    this.cwnd += ((target - this.cwnd) / this.cwnd) * acked;
  }

  onCongestionEvent(_now: number, flightSize: number): void {
    this.reduceTo(flightSize);
    this.cwnd = this.ssthresh;
  }

  onRecoveryExit(_now: number): void {
    this.cwnd = this.ssthresh;
    this.epochStart = undefined;
  }

  /** Section 4.8: ssthresh via beta_cubic as for a loss, cwnd to 1 MSS, and K = 0 next epoch. */
  onTimeout(_now: number, flightSize: number): void {
    this.reduceTo(flightSize);
    this.cwnd = this.mss;
    this.afterTimeout = true;
  }

  reset(_now: number): void {
    this.epochStart = undefined;
    this.lastAckAt = undefined;
  }

  /** Sections 4.6 and 4.7: W_max (with fast convergence), cwnd_prior and ssthresh. */
  private reduceTo(flightSize: number): void {
    const cwnd = this.cwnd;
    if (this.fastConvergence && this.wMaxBytes !== undefined && cwnd < this.wMaxBytes) {
      this.wMaxBytes = (cwnd * (1 + CUBIC_BETA)) / 2;
    } else {
      this.wMaxBytes = cwnd;
    }
    this.cwndPrior = cwnd;
    // flight * 7 / 10 rather than * 0.7: exact for whole-segment flights (0.7 is not binary exact).
    this.ssthresh = Math.max(Math.floor((flightSize * 7) / 10), 2 * this.mss);
    this.epochStart = undefined;
    this.afterTimeout = false;
  }

  private startEpoch(now: number): void {
    this.epochStart = now;
    const cwndEpoch = this.cwnd;
    if (this.afterTimeout) this.wMaxBytes = cwndEpoch;
    this.afterTimeout = false;
    const wMax = this.wMaxBytes;
    if (wMax === undefined || wMax <= cwndEpoch) {
      this.kSec = 0;
      this.origin = cwndEpoch;
    } else {
      this.kSec = Math.cbrt((wMax - cwndEpoch) / this.mss / CUBIC_C);
      this.origin = wMax;
    }
    this.wEstBytes = cwndEpoch;
  }
}
