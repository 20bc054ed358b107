/** Deterministic in-memory link: virtual clock, seeded randomness, endpoint pairs, impairments. */
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
