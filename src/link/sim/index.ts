/**
 * Deterministic in-memory link: virtual clock, seeded randomness, endpoint pairs, impairments.
 *
 *   const sim = new Simulator();
 *   const rng = new Rng(seed);
 *   const [a, b] = createSimPair(sim, { name: 'p0' });
 *   const spec = { loss: 0.01, delayMs: 5, jitterMs: 1 };
 *   const linkA = impair(a, sim, rng, spec);   // a -> b impaired
 *   const linkB = impair(b, sim, rng, spec);   // b -> a impaired (own rng forks, by link name)
 *   ... attach engines to linkA / linkB, then sim.runUntilIdle({ maxTimeMs: 60_000 });
 */
export { Simulator, SimBoundExceededError, type TimerId, type RunUntilIdleOptions } from './simulator.js';
export { Rng, type RngSeed } from './rng.js';
export { createSimPair, maxFrameLen, copyFrame, ETHERNET_HEADER_LEN, type SimPairOptions } from './sim-link.js';
export {
  impair,
  withLoss,
  withDuplication,
  withReordering,
  withDelay,
  withRateLimit,
  withMtu,
  type ImpairedLink,
  type ImpairSpec,
  type ImpairStats,
  type LossStats,
  type DuplicationStats,
  type ReorderOptions,
  type ReorderStats,
  type DelayOptions,
  type DelayStats,
  type RateLimitOptions,
  type RateLimitStats,
  type MtuStats,
} from './impair.js';
