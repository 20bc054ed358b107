/**
 * NewReno congestion control (RFC 5681 growth and reductions; the RFC 6582 recovery mechanics are
 * the engine's). Slow start uses RFC 3465 appropriate byte counting with L = 2*SMSS (L = 1*SMSS in
 * the slow start that follows an RTO, RFC 3465 section 2.3); congestion avoidance uses byte counting
 * (RFC 5681 section 3.1): +1 SMSS each time a full cwnd of bytes has been acknowledged.
 *
 * cwnd grows only while the sender is cwnd-limited (RFC 7661 spirit): an application- or
 * receiver-window-limited sender has not tested the larger window.
 */
import type { CongestionControl, CongestionControlInit } from './congestion-control.js';

/** RFC 5681: ssthresh = max(FlightSize / 2, 2*SMSS). */
export function halvedSsthresh(flightSize: number, mss: number): number {
  return Math.max(Math.floor(flightSize / 2), 2 * mss);
}

/**
 * Whether the window was the limit before this ACK. In slow start half a window in flight counts
 * (the sender may send in bursts and still use the doubled window, as Linux does); in congestion
 * avoidance less than one segment of unused window.
 */
export function isCwndLimited(cwnd: number, ssthresh: number, flightBefore: number, mss: number): boolean {
  return cwnd < ssthresh ? 2 * flightBefore >= cwnd : flightBefore + mss > cwnd;
}

/**
 * RFC 5681 / RFC 3465 slow start for one ACK. Returns the new cwnd (never beyond ssthresh) and the
 * acknowledged bytes left over for congestion avoidance when ssthresh was reached.
 */
export function slowStart(cwnd: number, ssthresh: number, acked: number, abcLimit: number): { cwnd: number; leftover: number } {
  const inc = Math.min(acked, abcLimit);
  if (cwnd + inc < ssthresh) return { cwnd: cwnd + inc, leftover: 0 };
  return { cwnd: Math.max(cwnd, ssthresh), leftover: Math.max(0, acked - (ssthresh - cwnd)) };
}

export class NewReno implements CongestionControl {
  readonly name = 'newreno';
  cwnd: number;
  ssthresh: number;
  private mss: number;
  /** Bytes acknowledged in congestion avoidance since cwnd last grew. */
  private bytesAcked = 0;
  /** In the slow start after an RTO: ABC limit L = 1*SMSS. */
  private afterRto = false;

  constructor(init: CongestionControlInit) {
    this.mss = init.mss;
    this.cwnd = init.cwnd;
    this.ssthresh = init.ssthresh;
  }

  setMss(mss: number): void {
    this.mss = mss;
    if (this.cwnd < mss) this.cwnd = mss;
  }

  onAck(ackedBytes: number, _now: number, _srtt: number | undefined, flightBefore: number): void {
    if (ackedBytes <= 0 || !isCwndLimited(this.cwnd, this.ssthresh, flightBefore, this.mss)) return;
    let acked = ackedBytes;
    if (this.cwnd < this.ssthresh) {
      const ss = slowStart(this.cwnd, this.ssthresh, acked, (this.afterRto ? 1 : 2) * this.mss);
      this.cwnd = ss.cwnd;
      acked = ss.leftover;
      if (this.cwnd < this.ssthresh) return;
    }
    this.afterRto = false;
    this.bytesAcked += acked;
    if (this.bytesAcked >= this.cwnd) {
      this.bytesAcked -= this.cwnd;
      this.cwnd += this.mss;
    }
  }

  onCongestionEvent(_now: number, flightSize: number): void {
    this.ssthresh = halvedSsthresh(flightSize, this.mss);
    this.cwnd = this.ssthresh;
    this.bytesAcked = 0;
    this.afterRto = false;
  }

  onRecoveryExit(_now: number): void {
    this.cwnd = this.ssthresh;
    this.bytesAcked = 0;
  }

  onTimeout(_now: number, flightSize: number): void {
    this.ssthresh = halvedSsthresh(flightSize, this.mss);
    this.cwnd = this.mss; // loss window, RFC 5681 section 3.1
    this.bytesAcked = 0;
    this.afterRto = true;
  }

  reset(_now: number): void {
    this.bytesAcked = 0;
    this.afterRto = false;
  }
}
