/**
 * Random scenarios for the simulation property tests: one seed decides impairments, transfer
 * sizes, TCP options and how the connection ends. A failing seed is replayed with
 * `SIM_SEED=<seed> npx vitest run <file>`.
 */
import { Rng } from '../../src/link/sim/rng.js';
import type { TcpConfig } from '../../src/tcp/types.js';
import type { PairOptions, PipeImpairments } from './engine-pair.js';

export type Ending = 'both-close' | 'a-closes' | 'b-closes' | 'a-aborts';

export interface Scenario {
  seed: string;
  pair: PairOptions;
  ending: Ending;
  /** For 'a-aborts': when A aborts (ms). */
  abortAtMs: number;
  describe: string;
}

function logUniform(rng: Rng, lo: number, hi: number): number {
  return Math.round(Math.exp(Math.log(lo) + rng.float() * (Math.log(hi) - Math.log(lo))));
}

function impairments(rng: Rng, lossMax: number): PipeImpairments {
  return {
    loss: rng.chance(0.7) ? rng.float() * lossMax : 0,
    reorder: rng.chance(0.5) ? rng.float() * 0.1 : 0,
    duplicate: rng.chance(0.3) ? rng.float() * 0.05 : 0,
    delayMs: 1 + rng.float() * 40,
    jitterMs: rng.chance(0.5) ? rng.float() * 5 : 0,
    rateBps: rng.chance(0.3) ? logUniform(rng, 5e6, 1e9) : 0,
  };
}

export function randomScenario(seed: string, opts: { maxBytes?: number; lossMax?: number } = {}): Scenario {
  const rng = new Rng(`scenario/${seed}`);
  const maxBytes = opts.maxBytes ?? 3_000_000;
  const config: Partial<TcpConfig> = {
    sack: rng.chance(0.75),
    timestamps: rng.chance(0.75),
    windowScaling: rng.chance(0.85),
    nagle: rng.chance(0.5),
    delayedAckMs: rng.chance(0.8) ? 40 : 0,
    congestionControl: rng.chance(0.5) ? 'cubic' : 'newreno',
    receiveBufferSize: logUniform(rng, 16 * 1024, 4 * 1024 * 1024),
    sendBufferSize: logUniform(rng, 16 * 1024, 4 * 1024 * 1024),
    timeWaitMs: 240_000, // 2*MSL longer than any backed-off RTO (virtual time is free)
    rto: { minRtoMs: 200 },
  };
  const endings: Ending[] = ['both-close', 'both-close', 'a-closes', 'b-closes', 'a-aborts'];
  const ending = endings[rng.int(endings.length)];
  const bytesAtoB = rng.chance(0.1) ? 0 : logUniform(rng, 1, maxBytes);
  const bytesBtoA = rng.chance(0.2) ? 0 : logUniform(rng, 1, maxBytes);
  const lossMax = opts.lossMax ?? 0.1;
  const pair: PairOptions = {
    seed, config, bytesAtoB, bytesBtoA, transport: 'frames',
    impAtoB: impairments(rng, lossMax), impBtoA: impairments(rng, lossMax),
    closeWhenDone: true,
  };
  const abortAtMs = 5 + rng.float() * 2000;
  const fmt = (i: PipeImpairments): string => `loss ${((i.loss ?? 0) * 100).toFixed(1)}% reorder ${((i.reorder ?? 0) * 100).toFixed(1)}% dup ${((i.duplicate ?? 0) * 100).toFixed(1)}% delay ${(i.delayMs ?? 0).toFixed(0)}ms`;
  return {
    seed, pair, ending, abortAtMs,
    describe: `seed ${seed}: A->B ${bytesAtoB} B, B->A ${bytesBtoA} B, ${ending}, sack ${config.sack} ts ${config.timestamps} ws ${config.windowScaling} ${config.congestionControl}, rcvbuf ${config.receiveBufferSize}; A->B ${fmt(pair.impAtoB!)}; B->A ${fmt(pair.impBtoA!)}`,
  };
}

/** Seeds to run: SIM_SEED=x runs one, else SIM_SEEDS=n (default `dflt`) seeds. */
export function seedsFromEnv(dflt: number, prefix: string): string[] {
  const one = process.env.SIM_SEED;
  if (one) return [one];
  const n = Number(process.env.SIM_SEEDS ?? dflt);
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}
