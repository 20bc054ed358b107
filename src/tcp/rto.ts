/**
 * Retransmission timeout estimation per RFC 6298.
 *
 * Karn's algorithm (RFC 6298 section 3) is the engine's job: it must call `sample()` only with RTTs
 * of segments that were not retransmitted (or with timestamp-echo RTTs, RFC 7323 section 4), and it
 * keeps the backed-off RTO (via `backoff()`) until such a sample arrives.
 */

export interface RtoConfig {
  minRtoMs: number;
  maxRtoMs: number;
  initialRtoMs: number;
  /** Clock granularity G of RFC 6298 section 2. */
  granularityMs: number;
}

export const DEFAULT_RTO_CONFIG: RtoConfig = { minRtoMs: 200, maxRtoMs: 120_000, initialRtoMs: 1000, granularityMs: 1 };

const ALPHA = 1 / 8;
const BETA = 1 / 4;
const K = 4;
const U16_MAX = 0xffff;
/** Beyond this many doublings the RTO is at maxRtoMs anyway; keeps 2**n finite. */
const MAX_BACKOFF_SHIFT = 32;

export class RtoEstimator {
  private readonly cfg: RtoConfig;
  private srttMs: number | undefined;
  private rttvarMs: number | undefined;
  /** RTO before backoff (RFC 6298 2.1-2.4), already clamped to [min,max]. */
  private baseRto: number;
  private backoffs = 0;

  constructor(cfg?: Partial<RtoConfig>) {
    this.cfg = { ...DEFAULT_RTO_CONFIG, ...cfg };
    this.baseRto = this.clamp(this.cfg.initialRtoMs);
  }

  get srtt(): number | undefined {
    return this.srttMs;
  }

  get rttvar(): number | undefined {
    return this.rttvarMs;
  }

  /** Current RTO in ms including exponential backoff, clamped to [minRtoMs, maxRtoMs]. */
  get rto(): number {
    return this.clamp(this.baseRto * 2 ** Math.min(this.backoffs, MAX_BACKOFF_SHIFT));
  }

  get backoffCount(): number {
    return this.backoffs;
  }

  /** RFC 6298 2.2 (first sample) / 2.3 (later samples). Negative or non-finite samples are ignored. */
  sample(rttMs: number): void {
    if (!Number.isFinite(rttMs) || rttMs < 0) return;
    if (this.srttMs === undefined || this.rttvarMs === undefined) {
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
    } else {
      // RTTVAR first: it uses the SRTT from before this sample.
      this.rttvarMs = (1 - BETA) * this.rttvarMs + BETA * Math.abs(this.srttMs - rttMs);
      this.srttMs = (1 - ALPHA) * this.srttMs + ALPHA * rttMs;
    }
    this.recompute();
    this.backoffs = 0;
  }

  /** RFC 6298 5.5: double the RTO (the `rto` getter clamps at maxRtoMs). */
  backoff(): void {
    this.backoffs++;
  }

  resetBackoff(): void {
    this.backoffs = 0;
  }

  /**
   * Chimney export (spec §1.5, R27): SRtt in ticks x8 and RttVar in ticks x4, u16 saturating.
   * Before the first sample both are 0. A real but tiny SRTT is exported as at least 1 so that it is
   * not mistaken for "no sample yet".
   */
  exportScaled(msPerTick: number): { srttX8: number; rttvarX4: number } {
    if (this.srttMs === undefined || this.rttvarMs === undefined) return { srttX8: 0, rttvarX4: 0 };
    const srttX8 = Math.max(1, toU16Saturating((this.srttMs * 8) / msPerTick));
    const rttvarX4 = toU16Saturating((this.rttvarMs * 4) / msPerTick);
    return { srttX8, rttvarX4 };
  }

  /**
   * Import the scaled values; srttX8 == 0 means "no sample yet" (RTO goes back to initialRtoMs).
   * Backoff is reset: the delegated retransmit count travels separately and the engine re-applies it.
   */
  importScaled(v: { srttX8: number; rttvarX4: number }, msPerTick: number): void {
    this.backoffs = 0;
    if (v.srttX8 === 0) {
      this.srttMs = undefined;
      this.rttvarMs = undefined;
      this.baseRto = this.clamp(this.cfg.initialRtoMs);
      return;
    }
    this.srttMs = (v.srttX8 * msPerTick) / 8;
    this.rttvarMs = (v.rttvarX4 * msPerTick) / 4;
    this.recompute();
  }

  private recompute(): void {
    // Both defined here; RFC 6298 2.3: RTO = SRTT + max(G, K*RTTVAR), then 2.4/2.5 bounds.
    this.baseRto = this.clamp((this.srttMs ?? 0) + Math.max(this.cfg.granularityMs, K * (this.rttvarMs ?? 0)));
  }

  private clamp(ms: number): number {
    return Math.min(this.cfg.maxRtoMs, Math.max(this.cfg.minRtoMs, ms));
  }
}

function toU16Saturating(x: number): number {
  return Math.min(U16_MAX, Math.max(0, Math.round(x)));
}
