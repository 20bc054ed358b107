import { describe, expect, it } from 'vitest';
import { createCongestionControl } from '../../src/tcp/cc/index.js';
import { CUBIC_ALPHA, CUBIC_BETA, CUBIC_C, Cubic } from '../../src/tcp/cc/cubic.js';
import { NewReno } from '../../src/tcp/cc/newreno.js';
import type { CongestionControl, CongestionControlName } from '../../src/tcp/cc/congestion-control.js';

const MSS = 1000;
const BIG = 0x7fffffff;

/**
 * A saturated ACK clock: each round sends floor(cwnd/mss) segments and receives their ACKs evenly
 * spread over one RTT (one ACK per `ackEvery` segments), the sender always cwnd-limited.
 * Returns cwnd after each round.
 */
function ackClock(cc: CongestionControl, o: { rttMs: number; rounds: number; start?: number; ackEvery?: number; onRound?: (now: number) => void }): number[] {
  const out: number[] = [];
  let now = o.start ?? 0;
  const every = o.ackEvery ?? 1;
  for (let r = 0; r < o.rounds; r++) {
    // A whole window per round: full segments plus the sub-MSS rest of a fractional cwnd.
    const window = Math.max(MSS, Math.floor(cc.cwnd));
    const n = Math.ceil(window / MSS);
    const acks = Math.ceil(n / every);
    for (let i = 0; i < acks; i++) {
      const bytes = Math.min(every * MSS, window - i * every * MSS);
      cc.onAck(bytes, now + ((i + 1) * o.rttMs) / acks, o.rttMs, cc.cwnd);
    }
    now += o.rttMs;
    out.push(cc.cwnd);
    o.onRound?.(now);
  }
  return out;
}

describe('createCongestionControl', () => {
  it('creates the named algorithm with the initial window and ssthresh', () => {
    for (const name of ['newreno', 'cubic'] as const) {
      const cc = createCongestionControl(name, { mss: MSS, cwnd: 10 * MSS, ssthresh: BIG });
      expect(cc.name).toBe(name);
      expect(cc.cwnd).toBe(10 * MSS);
      expect(cc.ssthresh).toBe(BIG);
    }
    expect(createCongestionControl('newreno', { mss: MSS, cwnd: MSS, ssthresh: BIG })).toBeInstanceOf(NewReno);
    expect(createCongestionControl('cubic', { mss: MSS, cwnd: MSS, ssthresh: BIG })).toBeInstanceOf(Cubic);
    expect(() => createCongestionControl('bbr' as CongestionControlName, { mss: MSS, cwnd: MSS, ssthresh: BIG })).toThrow(/unknown congestion control "bbr"/);
  });
});

describe.each(['newreno', 'cubic'] as const)('%s: slow start (RFC 5681 3.1, RFC 3465)', (name) => {
  it('RFC 5681: slow start doubles cwnd per RTT with an ACK per segment', () => {
    const cc = createCongestionControl(name, { mss: MSS, cwnd: 10 * MSS, ssthresh: BIG });
    expect(ackClock(cc, { rttMs: 50, rounds: 5 })).toEqual([20, 40, 80, 160, 320].map((x) => x * MSS));
  });

  it('RFC 3465: with delayed ACKs (2 segments per ACK) ABC with L=2*SMSS still doubles per RTT', () => {
    const cc = createCongestionControl(name, { mss: MSS, cwnd: 10 * MSS, ssthresh: BIG });
    expect(ackClock(cc, { rttMs: 50, rounds: 4, ackEvery: 2 })).toEqual([20, 40, 80, 160].map((x) => x * MSS));
  });

  it('RFC 3465: one ACK covering many segments grows cwnd by at most L = 2*SMSS', () => {
    const cc = createCongestionControl(name, { mss: MSS, cwnd: 10 * MSS, ssthresh: BIG });
    cc.onAck(10 * MSS, 1, 50, 10 * MSS);
    expect(cc.cwnd).toBe(12 * MSS);
    cc.onAck(100, 2, 50, 12 * MSS);
    expect(cc.cwnd).toBe(12 * MSS + 100);
  });

  it('RFC 5681: slow start stops at ssthresh', () => {
    const cc = createCongestionControl(name, { mss: MSS, cwnd: 10 * MSS, ssthresh: 15 * MSS });
    cc.onAck(MSS, 1, 50, 10 * MSS);
    expect(cc.cwnd).toBe(11 * MSS);
    for (let i = 0; i < 4; i++) cc.onAck(MSS, 2 + i, 50, cc.cwnd);
    expect(cc.cwnd).toBe(15 * MSS);
  });

  it('RFC 7661: no growth while the sender is not cwnd-limited', () => {
    const cc = createCongestionControl(name, { mss: MSS, cwnd: 10 * MSS, ssthresh: BIG });
    cc.onAck(2 * MSS, 1, 50, 3 * MSS); // only 3 of 10 segments were in flight
    expect(cc.cwnd).toBe(10 * MSS);
    cc.onAck(2 * MSS, 2, 50, 5 * MSS); // half the window counts in slow start
    expect(cc.cwnd).toBe(12 * MSS);
    cc.onAck(0, 3, 50, 12 * MSS); // nothing acknowledged
    expect(cc.cwnd).toBe(12 * MSS);
  });
});

describe('NewReno (RFC 5681)', () => {
  it('RFC 5681 3.1: congestion avoidance grows cwnd by exactly 1 SMSS per RTT', () => {
    const cc = new NewReno({ mss: MSS, cwnd: 20 * MSS, ssthresh: 10 * MSS });
    expect(ackClock(cc, { rttMs: 50, rounds: 10 })).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30].map((x) => x * MSS));
  });

  it('RFC 5681 3.1: congestion avoidance with delayed ACKs still grows 1 SMSS per RTT (byte counting)', () => {
    const cc = new NewReno({ mss: MSS, cwnd: 20 * MSS, ssthresh: 10 * MSS });
    expect(ackClock(cc, { rttMs: 50, rounds: 4, ackEvery: 2 })).toEqual([21, 22, 23, 24].map((x) => x * MSS));
  });

  it('RFC 5681 3.1: congestion avoidance is not cwnd growth when not cwnd-limited', () => {
    const cc = new NewReno({ mss: MSS, cwnd: 20 * MSS, ssthresh: 10 * MSS });
    for (let i = 0; i < 100; i++) cc.onAck(MSS, i, 50, 10 * MSS);
    expect(cc.cwnd).toBe(20 * MSS);
  });

  it('RFC 5681 3.2: loss halves: ssthresh = max(FlightSize/2, 2*SMSS), cwnd = ssthresh; recovery exit cwnd = ssthresh', () => {
    const cc = new NewReno({ mss: MSS, cwnd: 40 * MSS, ssthresh: BIG });
    cc.onCongestionEvent(0, 40 * MSS);
    expect(cc.ssthresh).toBe(20 * MSS);
    expect(cc.cwnd).toBe(20 * MSS);
    cc.cwnd += 5 * MSS; // the engine's RFC 6582 inflation
    cc.onRecoveryExit(10);
    expect(cc.cwnd).toBe(20 * MSS);
    cc.onCongestionEvent(20, 3 * MSS);
    expect(cc.ssthresh).toBe(2 * MSS);
    expect(cc.cwnd).toBe(2 * MSS);
    // Halving uses FlightSize, not cwnd
    const c2 = new NewReno({ mss: MSS, cwnd: 40 * MSS, ssthresh: BIG });
    c2.onCongestionEvent(0, 25 * MSS + 1);
    expect(c2.ssthresh).toBe(12 * MSS + 500);
  });

  it('RFC 5681 3.1: timeout: ssthresh = max(FlightSize/2, 2*SMSS), cwnd = 1 SMSS, then slow start with L = 1*SMSS (RFC 3465 2.3)', () => {
    const cc = new NewReno({ mss: MSS, cwnd: 40 * MSS, ssthresh: BIG });
    cc.onTimeout(0, 30 * MSS);
    expect(cc.ssthresh).toBe(15 * MSS);
    expect(cc.cwnd).toBe(MSS);
    cc.onAck(4 * MSS, 1, 50, MSS); // a cumulative ACK for several retransmitted segments
    expect(cc.cwnd).toBe(2 * MSS);
    expect(ackClock(cc, { rttMs: 50, rounds: 3, start: 10 })).toEqual([4, 8, 15].map((x) => x * MSS));
    // Back in congestion avoidance: linear again, and a later slow start uses L = 2*SMSS.
    expect(ackClock(cc, { rttMs: 50, rounds: 2, start: 200 })).toEqual([16, 17].map((x) => x * MSS));
    cc.ssthresh = BIG;
    cc.onAck(10 * MSS, 400, 50, cc.cwnd);
    expect(cc.cwnd).toBe(19 * MSS);
  });

  it('setMss keeps cwnd in bytes but at least one segment', () => {
    const cc = new NewReno({ mss: MSS, cwnd: 2 * MSS, ssthresh: BIG });
    cc.setMss(1460);
    expect(cc.cwnd).toBe(2 * MSS);
    cc.setMss(4000);
    expect(cc.cwnd).toBe(4000);
  });
});

describe('CUBIC (RFC 9438)', () => {
  it('RFC 9438 5: constants C = 0.4, beta = 0.7, alpha = 3(1-beta)/(1+beta)', () => {
    expect(CUBIC_C).toBe(0.4);
    expect(CUBIC_BETA).toBe(0.7);
    expect(CUBIC_ALPHA).toBeCloseTo(0.9 / 1.7, 12);
  });

  it('RFC 9438 4.6: multiplicative decrease: ssthresh = FlightSize * beta_cubic, cwnd = ssthresh, W_max = cwnd', () => {
    const cc = new Cubic({ mss: MSS, cwnd: 100 * MSS, ssthresh: BIG });
    cc.onCongestionEvent(0, 100 * MSS);
    expect(cc.ssthresh).toBe(70 * MSS);
    expect(cc.cwnd).toBe(70 * MSS);
    expect(cc.wMax).toBe(100 * MSS);
    const small = new Cubic({ mss: MSS, cwnd: 2 * MSS, ssthresh: BIG });
    small.onCongestionEvent(0, 2 * MSS);
    expect(small.ssthresh).toBe(2 * MSS); // at least 2 SMSS
  });

  it('RFC 9438 4.2: K = cbrt((W_max - cwnd_epoch) / C) at the start of congestion avoidance', () => {
    const cc = new Cubic({ mss: MSS, cwnd: 100 * MSS, ssthresh: BIG });
    cc.onCongestionEvent(0, 100 * MSS);
    cc.onRecoveryExit(100);
    expect(cc.k).toBeUndefined();
    cc.onAck(MSS, 200, 100, cc.cwnd);
    expect(cc.epochStartMs).toBe(200);
    expect(cc.k).toBeCloseTo(Math.cbrt((100 - 70) / 0.4), 12); // 4.2172 s
    expect(cc.k).toBeCloseTo(4.2171633, 6);
    // W_cubic(0) = cwnd_epoch and W_cubic(K) = W_max
    expect(cc.wCubic(0)).toBeCloseTo(70 * MSS, 6);
    expect(cc.wCubic(cc.k!)).toBeCloseTo(100 * MSS, 6);
  });

  it('RFC 9438 4.2-4.5: cwnd follows W_cubic(t) through the concave and convex regions (large BDP ACK clock)', () => {
    const W = 1000; // segments
    const rtt = 100;
    const cc = new Cubic({ mss: MSS, cwnd: W * MSS, ssthresh: BIG });
    cc.onCongestionEvent(0, W * MSS);
    const k = Math.cbrt((W * (1 - CUBIC_BETA)) / CUBIC_C);
    const wc = (t: number) => (CUBIC_C * (t - k) ** 3 + W) * MSS;
    let worst = 0;
    let checked = 0;
    ackClock(cc, {
      rttMs: rtt,
      rounds: 200, // 20 s: past K = 9.09 s into the convex region
      onRound: (now) => {
        const t = (now - cc.epochStartMs!) / 1000;
        worst = Math.max(worst, Math.abs(cc.cwnd - wc(t)) / wc(t));
        checked++;
        expect(cc.wEst!).toBeLessThan(wc(t)); // the cubic region, not the Reno-friendly one
      },
    });
    expect(cc.k).toBeCloseTo(k, 9);
    expect(checked).toBe(200);
    expect(worst).toBeLessThan(0.005);
    // Plateau near W_max around t = K, convex growth after it.
    expect(cc.cwnd).toBeGreaterThan(1.3 * W * MSS);
  });

  it('RFC 9438 4.2: the target W_cubic(t+RTT) is capped at 1.5 cwnd (at most +50% per RTT)', () => {
    // No W_max yet and cwnd = ssthresh: K = 0. With a 5 s RTT, W_cubic(t + RTT) >= 10 + 0.4*125
    // segments, far beyond 1.5 cwnd, so every ACK adds 0.5 * acked.
    const cc = new Cubic({ mss: MSS, cwnd: 10 * MSS, ssthresh: 10 * MSS });
    cc.onAck(MSS, 0, 5000, cc.cwnd); // starts the epoch at t = 0
    const before = cc.cwnd;
    ackClock(cc, { rttMs: 5000, rounds: 1, start: 0 });
    expect(cc.cwnd).toBeLessThanOrEqual(1.5 * before + 1e-6);
    expect(cc.cwnd).toBeGreaterThan(1.45 * before);
  });

  it('RFC 9438 4.3: the Reno-friendly region dominates at small RTT and BDP (W_est with alpha_cubic, then 1)', () => {
    const W = 20; // segments
    const rtt = 10;
    const cc = new Cubic({ mss: MSS, cwnd: W * MSS, ssthresh: BIG });
    cc.onCongestionEvent(0, W * MSS);
    const k = Math.cbrt((W * (1 - CUBIC_BETA)) / CUBIC_C);
    const wc = (t: number) => (CUBIC_C * (t - k) ** 3 + W) * MSS;
    const cw = ackClock(cc, {
      rttMs: rtt,
      rounds: 200,
      onRound: (now) => {
        const t = (now - cc.epochStartMs!) / 1000;
        if (t < 2 * k) expect(cc.cwnd).toBeGreaterThan(wc(t));
        expect(cc.cwnd).toBeCloseTo(cc.wEst!, 6); // cwnd = W_est in this region
      },
    });
    // W_est grows alpha_cubic segments per RTT from cwnd_epoch = 14 until it reaches
    // cwnd_prior = 20 (about 11.3 RTTs), then 1 segment per RTT like Reno.
    const rttsToPrior = (W - 14) / CUBIC_ALPHA;
    const expected = (r: number) => (r <= rttsToPrior ? 14 + CUBIC_ALPHA * r : W + (r - rttsToPrior)) * MSS;
    // Per-ACK increments divide by a cwnd that grows within the round: slightly under the ideal.
    for (const r of [5, 10, 50, 100, 200]) expect(Math.abs(cw[r - 1]! - expected(r))).toBeLessThan(MSS + 0.01 * expected(r));
    // And it beats what CUBIC alone would give at the end: W_cubic(2 s) < 20 segments.
    expect(cw[199]!).toBeGreaterThan(10 * wc(2));
  });

  it('RFC 9438 4.7: fast convergence lowers W_max to cwnd*(1+beta)/2 when losses come below the previous W_max', () => {
    const cc = new Cubic({ mss: MSS, cwnd: 100 * MSS, ssthresh: BIG });
    cc.onCongestionEvent(0, 100 * MSS);
    expect(cc.wMax).toBe(100 * MSS);
    cc.cwnd = 90 * MSS;
    cc.onCongestionEvent(1000, 90 * MSS);
    expect(cc.wMax).toBeCloseTo(90 * MSS * 0.85, 9);
    expect(cc.ssthresh).toBe(63 * MSS);
    // A loss above W_max sets W_max = cwnd.
    cc.cwnd = 200 * MSS;
    cc.onCongestionEvent(2000, 200 * MSS);
    expect(cc.wMax).toBe(200 * MSS);
    // Disabled: W_max = cwnd.
    const plain = new Cubic({ mss: MSS, cwnd: 100 * MSS, ssthresh: BIG }, { fastConvergence: false });
    plain.onCongestionEvent(0, 100 * MSS);
    plain.cwnd = 90 * MSS;
    plain.onCongestionEvent(1000, 90 * MSS);
    expect(plain.wMax).toBe(90 * MSS);
  });

  it('RFC 9438 4.7: with fast convergence K after the second loss uses the reduced W_max', () => {
    const cc = new Cubic({ mss: MSS, cwnd: 100 * MSS, ssthresh: BIG });
    cc.onCongestionEvent(0, 100 * MSS);
    cc.cwnd = 90 * MSS;
    cc.onCongestionEvent(1000, 90 * MSS);
    cc.onRecoveryExit(1100);
    cc.onAck(MSS, 1200, 100, cc.cwnd);
    expect(cc.k).toBeCloseTo(Math.cbrt((76.5 - 63) / 0.4), 9);
  });

  it('RFC 9438 4.8: timeout: ssthresh via beta_cubic, cwnd = 1 SMSS, slow start, then K = 0 and W_max = cwnd_epoch', () => {
    const cc = new Cubic({ mss: MSS, cwnd: 100 * MSS, ssthresh: BIG });
    cc.onTimeout(0, 100 * MSS);
    expect(cc.ssthresh).toBe(70 * MSS);
    expect(cc.cwnd).toBe(MSS);
    // Slow start with L = 1*SMSS after an RTO: a 4-segment ACK adds one segment.
    cc.onAck(4 * MSS, 10, 100, MSS);
    expect(cc.cwnd).toBe(2 * MSS);
    const rounds = ackClock(cc, { rttMs: 100, rounds: 6, start: 100 });
    expect(rounds.slice(0, 5)).toEqual([4, 8, 16, 32, 64].map((x) => x * MSS));
    // The sixth round reached ssthresh (70) and started the epoch with K = 0 at cwnd_epoch = 70.
    expect(cc.k).toBe(0);
    expect(cc.wMax).toBe(70 * MSS);
    expect(cc.wCubic(0)).toBe(70 * MSS);
    expect(cc.cwnd).toBeGreaterThanOrEqual(70 * MSS);
  });

  it('RFC 9438 4.10: slow start while cwnd < ssthresh, then congestion avoidance from ssthresh', () => {
    const cc = new Cubic({ mss: MSS, cwnd: 10 * MSS, ssthresh: 40 * MSS });
    expect(ackClock(cc, { rttMs: 100, rounds: 2 })).toEqual([20 * MSS, 40 * MSS]);
    expect(cc.k).toBeUndefined(); // epoch starts with the first ACK above ssthresh
    ackClock(cc, { rttMs: 100, rounds: 1, start: 200 });
    expect(cc.k).toBe(0); // no W_max yet: K = 0, plateau at cwnd_epoch
    expect(cc.cwnd).toBeGreaterThan(40 * MSS);
    expect(cc.cwnd).toBeLessThan(42 * MSS);
  });

  it('RFC 9438 5.8: application-limited time does not count in t and does not grow cwnd', () => {
    const cc = new Cubic({ mss: MSS, cwnd: 100 * MSS, ssthresh: BIG });
    cc.onCongestionEvent(0, 100 * MSS);
    cc.onAck(MSS, 1000, 100, cc.cwnd); // epoch starts at 1000
    const cwnd = cc.cwnd;
    for (let now = 1100; now <= 61_000; now += 100) cc.onAck(MSS, now, 100, 10 * MSS); // app-limited minute
    expect(cc.cwnd).toBe(cwnd);
    expect(cc.epochStartMs).toBe(61_000);
    // Back to cwnd-limited: growth continues from t ~ 0, not from t = 60 s.
    cc.onAck(MSS, 61_100, 100, cc.cwnd);
    expect(cc.cwnd - cwnd).toBeLessThan(MSS);
  });

  it('RFC 9438 4.2: recovery exit sets cwnd = ssthresh and the next epoch starts at the next ACK', () => {
    const cc = new Cubic({ mss: MSS, cwnd: 50 * MSS, ssthresh: BIG });
    cc.onCongestionEvent(0, 50 * MSS);
    cc.cwnd += 10 * MSS; // engine inflation without SACK
    cc.onRecoveryExit(300);
    expect(cc.cwnd).toBe(35 * MSS);
    expect(cc.epochStartMs).toBeUndefined();
    cc.onAck(MSS, 400, 100, cc.cwnd);
    expect(cc.epochStartMs).toBe(400);
    cc.reset(500);
    expect(cc.epochStartMs).toBeUndefined();
  });
});
