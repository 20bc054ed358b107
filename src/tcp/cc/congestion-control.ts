/**
 * Congestion control as a pluggable strategy. The engine owns loss detection and recovery
 * mechanics (fast retransmit, NewReno partial ACKs, RFC 6675 pipe); the strategy owns only how
 * cwnd and ssthresh move. All sizes in bytes, times in ms (virtual clock from the engine).
 */
export interface CongestionControl {
  readonly name: string;
  /** Congestion window, bytes. The engine may read it at any time. */
  cwnd: number;
  /** Slow-start threshold, bytes. */
  ssthresh: number;
  /** Sender MSS changed (e.g. after import or PMTU update). */
  setMss(mss: number): void;
  /**
   * New data was cumulatively acknowledged outside loss recovery.
   * @param ackedBytes bytes newly acknowledged by this ACK
   * @param now engine clock, ms
   * @param srtt smoothed RTT in ms, or undefined before the first sample
   * @param flightBefore bytes in flight before this ACK (to tell a cwnd-limited sender)
   */
  onAck(ackedBytes: number, now: number, srtt: number | undefined, flightBefore: number): void;
  /**
   * Loss detected by duplicate ACKs or SACK (entering fast recovery): set ssthresh from the
   * flight size and set cwnd to the value recovery starts from (ssthresh for both NewReno and CUBIC;
   * the engine adds any RFC 5681 inflation itself).
   */
  onCongestionEvent(now: number, flightSize: number): void;
  /** Fast recovery ended (the recovery point was acknowledged). cwnd becomes ssthresh. */
  onRecoveryExit(now: number): void;
  /** Retransmission timeout: ssthresh from flight size, cwnd to the loss window (1 MSS). */
  onTimeout(now: number, flightSize: number): void;
  /** The last RTO was spurious or the connection was imported: nothing else to undo here. */
  reset?(now: number): void;
}

export type CongestionControlName = 'newreno' | 'cubic';

export interface CongestionControlInit {
  mss: number;
  /** Initial cwnd in bytes (RFC 5681 IW or RFC 6928); the engine computes it. */
  cwnd: number;
  /** Initial ssthresh; Infinity-like large value when unknown (use 0x7fffffff). */
  ssthresh: number;
}
