import { describe, expect, it } from 'vitest';
import { DEFAULT_RTO_CONFIG, RtoEstimator } from '../../src/tcp/rto.js';

describe('RtoEstimator', () => {
  it('RFC 6298 2.1: initial RTO is 1 s and no SRTT/RTTVAR before the first sample', () => {
    const r = new RtoEstimator();
    expect(r.rto).toBe(1000);
    expect(r.srtt).toBeUndefined();
    expect(r.rttvar).toBeUndefined();
    expect(r.backoffCount).toBe(0);
    expect(DEFAULT_RTO_CONFIG).toEqual({ minRtoMs: 200, maxRtoMs: 120_000, initialRtoMs: 1000, granularityMs: 1 });
  });

  it('RFC 6298 2.2: first sample sets SRTT=R, RTTVAR=R/2, RTO=SRTT+max(G,4*RTTVAR)', () => {
    const r = new RtoEstimator();
    r.sample(100);
    expect(r.srtt).toBe(100);
    expect(r.rttvar).toBe(50);
    expect(r.rto).toBe(300);
  });

  it('RFC 6298 2.3: later samples use alpha=1/8, beta=1/4, RTTVAR updated with the old SRTT', () => {
    const r = new RtoEstimator();
    r.sample(100);
    r.sample(200);
    // RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
    expect(r.rttvar).toBe(62.5);
    expect(r.srtt).toBe(112.5);
    expect(r.rto).toBe(112.5 + 4 * 62.5);
    r.sample(112.5);
    // RTTVAR = 3/4*62.5 + 0 = 46.875; SRTT unchanged
    expect(r.rttvar).toBe(46.875);
    expect(r.srtt).toBe(112.5);
    expect(r.rto).toBe(112.5 + 187.5);
  });

  it('RFC 6298 2.3: clock granularity G bounds the variance term from below', () => {
    const r = new RtoEstimator({ minRtoMs: 0, granularityMs: 10 });
    for (let i = 0; i < 100; i++) r.sample(40);
    // RTTVAR decays toward 0, so RTO = SRTT + G
    expect(r.srtt).toBe(40);
    expect(r.rttvar!).toBeLessThan(1e-9);
    expect(r.rto).toBe(50);
  });

  it('RFC 6298 2.4: RTO is clamped to minRtoMs; 2.5: and to maxRtoMs', () => {
    const r = new RtoEstimator();
    r.sample(1);
    expect(r.rto).toBe(200);
    const big = new RtoEstimator({ maxRtoMs: 5000 });
    big.sample(4000);
    expect(big.rto).toBe(5000);
  });

  it('RFC 6298 5.5: backoff doubles the RTO and saturates at maxRtoMs; a new sample resets it', () => {
    const r = new RtoEstimator();
    r.sample(100); // RTO 300
    const seen: number[] = [];
    for (let i = 0; i < 12; i++) {
      r.backoff();
      seen.push(r.rto);
    }
    expect(seen).toEqual([600, 1200, 2400, 4800, 9600, 19200, 38400, 76800, 120000, 120000, 120000, 120000]);
    expect(r.backoffCount).toBe(12);
    for (let i = 0; i < 100; i++) r.backoff();
    expect(r.rto).toBe(120000);
    r.sample(100);
    expect(r.backoffCount).toBe(0);
    expect(r.rto).toBeCloseTo(100 + 4 * 37.5, 9);
  });

  it('resetBackoff restores the un-backed-off RTO without touching SRTT', () => {
    const r = new RtoEstimator();
    r.sample(100);
    r.backoff();
    r.backoff();
    expect(r.rto).toBe(1200);
    r.resetBackoff();
    expect(r.rto).toBe(300);
    expect(r.srtt).toBe(100);
  });

  it('backoff before any sample doubles the initial RTO (RFC 6298 5.5 during the handshake)', () => {
    const r = new RtoEstimator();
    r.backoff();
    expect(r.rto).toBe(2000);
  });

  it('ignores negative and non-finite samples', () => {
    const r = new RtoEstimator();
    r.sample(-5);
    r.sample(Number.NaN);
    r.sample(Number.POSITIVE_INFINITY);
    expect(r.srtt).toBeUndefined();
    expect(r.rto).toBe(1000);
  });

  it('R27: exports SRtt x8 and RttVar x4 in ticks (1 ms and 10 ms ticks)', () => {
    const r = new RtoEstimator();
    r.sample(100);
    expect(r.exportScaled(1)).toEqual({ srttX8: 800, rttvarX4: 200 });
    expect(r.exportScaled(10)).toEqual({ srttX8: 80, rttvarX4: 20 });
  });

  it('R27: export before any sample is 0/0; a tiny real SRTT exports as at least 1', () => {
    const r = new RtoEstimator();
    expect(r.exportScaled(1)).toEqual({ srttX8: 0, rttvarX4: 0 });
    r.sample(0);
    expect(r.exportScaled(100)).toEqual({ srttX8: 1, rttvarX4: 0 });
  });

  it('R27: export saturates at u16', () => {
    const r = new RtoEstimator();
    r.sample(20_000); // 160000 x8 ticks
    expect(r.exportScaled(1)).toEqual({ srttX8: 0xffff, rttvarX4: 40000 });
    r.sample(100_000);
    expect(r.exportScaled(1).rttvarX4).toBe(0xffff);
  });

  it('importScaled restores SRTT/RTTVAR and the RTO; export(import(x)) == x', () => {
    const r = new RtoEstimator();
    r.backoff();
    r.importScaled({ srttX8: 800, rttvarX4: 200 }, 1);
    expect(r.srtt).toBe(100);
    expect(r.rttvar).toBe(50);
    expect(r.rto).toBe(300);
    expect(r.backoffCount).toBe(0);
    expect(r.exportScaled(1)).toEqual({ srttX8: 800, rttvarX4: 200 });
    const t = new RtoEstimator();
    t.importScaled({ srttX8: 123, rttvarX4: 45 }, 10);
    expect(t.srtt).toBe(153.75);
    expect(t.rttvar).toBe(112.5);
    expect(t.exportScaled(10)).toEqual({ srttX8: 123, rttvarX4: 45 });
  });

  it('importScaled with srttX8 == 0 means no sample yet: initial RTO, first later sample is a first sample', () => {
    const r = new RtoEstimator();
    r.sample(50);
    r.importScaled({ srttX8: 0, rttvarX4: 77 }, 1);
    expect(r.srtt).toBeUndefined();
    expect(r.rttvar).toBeUndefined();
    expect(r.rto).toBe(1000);
    r.sample(80);
    expect(r.srtt).toBe(80);
    expect(r.rttvar).toBe(40);
  });
});
