/**
 * Issue 5 property test: host, target and peer on the sim link; random transfers both ways,
 * random impairments, offload and terminate at random instants (so also mid-retransmission,
 * mid-recovery, zero window and mid-close), both ways of disposing of send data. Every seed checks
 * both byte streams by digest, that no request and no lent buffer is left behind, and, on a
 * loss-free path, that no byte crossed the wire twice because of a hand-over.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/link/sim/rng.js';
import { ChimneySim } from '../support/chimney-sim.js';
import { seedsFromEnv } from '../support/sim-scenario.js';
import type { ImpairSpec } from '../../src/link/sim/impair.js';

function logUniform(rng: Rng, lo: number, hi: number): number {
  return Math.round(Math.exp(Math.log(lo) + rng.float() * (Math.log(hi) - Math.log(lo))));
}

function scenario(seed: string, lossFree: boolean): { sim: ChimneySim; gapMs: number; describe: string } {
  const rng = new Rng(`terminate/${seed}`);
  const imp = (): ImpairSpec => lossFree
    ? { delayMs: 1 + rng.float() * 20 }
    : { delayMs: 1 + rng.float() * 20, loss: rng.chance(0.7) ? rng.float() * 0.05 : 0, reorder: rng.chance(0.4) ? rng.float() * 0.05 : 0, reorderDelayMs: 3, duplicate: rng.chance(0.2) ? rng.float() * 0.02 : 0 };
  const modes = ['chain', 'complete', 'alternate'] as const;
  const replies = ['accept', 'refuse', 'partial', 'mixed'] as const;
  const opts = {
    seed,
    bytesHostToPeer: rng.chance(0.1) ? 0 : logUniform(rng, 1, 600_000),
    bytesPeerToHost: rng.chance(0.1) ? 0 : logUniform(rng, 1, 600_000),
    impairTargetToPeer: imp(),
    impairPeerToTarget: imp(),
    terminateSendMode: modes[rng.int(3)],
    postSize: rng.chance(0.3) ? 0 : logUniform(rng, 512, 65536),
    indicateReply: replies[rng.int(4)],
    tcp: { receiveBufferSize: logUniform(rng, 8192, 1 << 20), timeWaitMs: 240_000 },
  };
  const gapMs = 2 + rng.float() * 60;
  const sim = new ChimneySim(opts);
  return { sim, gapMs, describe: `${seed}: ${JSON.stringify({ ...opts, seed: undefined, gapMs: Math.round(gapMs) })}` };
}

function run(seed: string, lossFree: boolean): { problems: string[]; describe: string; cycles: number } {
  const { sim: s, gapMs, describe } = scenario(seed, lossFree);
  if (lossFree) s.trace = [];
  const rng = new Rng(`cycles/${seed}`);
  s.start();
  let stop = false;
  const cycle = (): void => {
    if (stop) return;
    if (s.offloaded && !s.terminating) s.terminate();
    else if (!s.offloaded) s.offload();
    s.sim.after(rng.float() * 2 * gapMs, cycle);
  };
  s.sim.after(rng.float() * 50, cycle);
  // Stop cycling once both applications are done so the run can end; then take it back for good.
  const watch = (): void => {
    const done = s.peerApp.receivedBytes === s.hostApp.source.total && s.hostApp.receivedBytes === s.peerApp.source.total;
    if (done || s.sim.now > 600_000) {
      stop = true;
      if (s.offloaded && !s.terminating) s.terminate();
      return;
    }
    s.sim.after(100, watch);
  };
  s.sim.after(100, watch);
  const problems: string[] = [];
  try {
    s.sim.runUntilIdle({ maxTimeMs: 3_600_000, maxEvents: 3_000_000 });
  } catch (e) {
    problems.push(`threw: ${(e as Error).message}`);
  }
  problems.push(...s.check());
  if (s.offloaded) problems.push('still offloaded at the end');
  if (lossFree && s.trace) {
    // On a loss-free, in-order path no data byte may cross the wire twice, hand-overs included.
    const high = new Map<string, number>();
    let dup = 0;
    for (const line of s.trace) {
      const m = /^\S+ (\S+) seq (\d+) ack \d+ len (\d+)/.exec(line);
      if (!m || m[3] === '0') continue;
      const [dir, seq, len] = [m[1], Number(m[2]), Number(m[3])];
      const end = (seq + len) >>> 0;
      const h = high.get(dir);
      if (h !== undefined && ((seq - h) | 0) < 0) dup++;
      if (h === undefined || ((end - h) | 0) > 0) high.set(dir, end);
    }
    if (dup > 0) problems.push(`${dup} data segments crossed the wire twice on a loss-free path`);
  }
  return { problems, describe, cycles: s.cycles };
}

describe('terminate property (issue 5)', () => {
  const lossy = seedsFromEnv(700, 't');
  it(`R6/R15/R17: ${lossy.length} seeds through loss, reordering and duplication: streams exact, ledger empty`, () => {
    const failures: string[] = [];
    let cycles = 0;
    for (const seed of lossy) {
      const r = run(seed, false);
      cycles += r.cycles;
      if (r.problems.length) failures.push(`${r.describe}\n    ${r.problems.join('; ')}\n    replay: SIM_SEED=${seed} npx vitest run test/target/terminate-property.test.ts`);
      if (failures.length >= 3) break;
    }
    expect(failures, failures.join('\n')).toEqual([]);
    expect(cycles).toBeGreaterThan(lossy.length);
  }, 900_000);

  const clean = seedsFromEnv(300, 'c');
  it(`R18/R19: ${clean.length} loss-free seeds: no byte crosses the wire twice because of a hand-over`, () => {
    const failures: string[] = [];
    for (const seed of clean) {
      const r = run(seed, true);
      if (r.problems.length) failures.push(`${r.describe}\n    ${r.problems.join('; ')}\n    replay: SIM_SEED=${seed} npx vitest run test/target/terminate-property.test.ts`);
      if (failures.length >= 3) break;
    }
    expect(failures, failures.join('\n')).toEqual([]);
  }, 900_000);
});
