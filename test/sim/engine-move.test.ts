/**
 * State export/import (issue 2, deliverable 3): a connection moved to a fresh engine at random
 * instants of a simulated transfer continues exactly.
 *  - Engine-to-engine (with engine-private state): the wire trace is identical, segment for segment
 *    and to the microsecond, to the same seed without moves.
 *  - Chimney fidelity (only the CONST/DELEGATED fields, send and receive data): byte streams exact,
 *    and on a loss-free path no retransmission at all.
 */
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/link/sim/rng.js';
import { TcpState } from '../../src/tcp/types.js';
import { EnginePair, digestOf, type Pipe } from '../support/engine-pair.js';
import { randomScenario, seedsFromEnv, type Scenario } from '../support/sim-scenario.js';

/** The states a chimney host may offload in (spec 1.6): the moves use the same rule. */
const OFFLOADABLE = new Set([TcpState.Established, TcpState.FinWait1, TcpState.FinWait2, TcpState.CloseWait, TcpState.Closing, TcpState.LastAck]);

function traceDigest(pipe: Pipe): string {
  const h = createHash('sha256');
  for (const { t, seg } of pipe.log) {
    h.update(`${t.toFixed(6)} ${seg.seq} ${seg.ack} ${seg.flags} ${seg.window} ${JSON.stringify(seg.options)} ${seg.payload.length}\n`);
    h.update(seg.payload);
  }
  return h.digest('hex');
}

function run(sc: Scenario, moves: { rng: Rng; meanGapMs: number; includePrivate: boolean } | undefined): { p: EnginePair; moved: number } {
  const p = new EnginePair({ ...sc.pair, keepLog: true });
  if (sc.ending === 'a-closes') { p.appB.closeWhenDone = false; p.appB.closeOnPeerFin = true; }
  if (sc.ending === 'b-closes') { p.appA.closeWhenDone = false; p.appA.closeOnPeerFin = true; }
  p.start();
  let moved = 0;
  if (moves) {
    const schedule = (): void => {
      p.sim.after(moves.rng.float() * 2 * moves.meanGapMs, () => {
        const side = moves.rng.chance(0.5) ? 'a' : 'b';
        const d = side === 'a' ? p.a : p.b;
        if (d && !d.isStopped && OFFLOADABLE.has(d.conn.state)) {
          p.move(side, moves.includePrivate);
          moved++;
        }
        const done = p.a.conn.state === TcpState.Closed && (!p.b || p.b.conn.state === TcpState.Closed);
        if (!done) schedule();
      });
    };
    schedule();
  }
  p.sim.runUntilIdle({ maxTimeMs: 3_600_000, maxEvents: 1_000_000 });
  return { p, moved };
}

function streamsExact(p: EnginePair): string[] {
  const problems: string[] = [];
  if (digestOf(p.appB.received) !== digestOf(p.appA.source.hash) || p.appB.receivedBytes !== p.appA.source.total) problems.push(`A->B differs (${p.appB.receivedBytes}/${p.appA.source.total})`);
  if (digestOf(p.appA.received) !== digestOf(p.appB.source.hash) || p.appA.receivedBytes !== p.appB.source.total) problems.push(`B->A differs (${p.appA.receivedBytes}/${p.appB.source.total})`);
  if (p.appA.error || p.appB.error) problems.push(`errors A=${p.appA.error} B=${p.appB.error}`);
  if (p.a.conn.state !== TcpState.Closed || p.b?.conn.state !== TcpState.Closed) problems.push('not both closed');
  return problems;
}

function retransmissions(p: EnginePair): number {
  // Count on the wire (the engines are replaced, their counters restart): a data segment whose
  // range starts below the highest sequence already sent in that direction.
  let n = 0;
  for (const pipe of [p.ab, p.ba]) {
    let high: number | undefined;
    for (const { seg } of pipe.log) {
      if (seg.payload.length === 0) continue;
      const end = (seg.seq + seg.payload.length) >>> 0;
      if (high !== undefined && ((seg.seq - high) | 0) < 0) n++;
      if (high === undefined || ((end - high) | 0) > 0) high = end;
    }
  }
  return n;
}

describe('engine state export/import', () => {
  const exactSeeds = seedsFromEnv(150, 'mx');
  it(`engine-to-engine moves at random instants leave the wire trace identical (${exactSeeds.length} seeds)`, () => {
    const failures: string[] = [];
    let totalMoves = 0;
    for (const seed of exactSeeds) {
      const sc = randomScenario(seed, { maxBytes: 1_000_000 });
      if (sc.ending === 'a-aborts') sc.ending = 'both-close';
      const base = run(sc, undefined);
      const moved = run(sc, { rng: new Rng(`moves/${seed}`), meanGapMs: 30, includePrivate: true });
      totalMoves += moved.moved;
      const problems = streamsExact(moved.p);
      if (traceDigest(base.p.ab) !== traceDigest(moved.p.ab)) problems.push('A->B trace differs from the unmoved run');
      if (traceDigest(base.p.ba) !== traceDigest(moved.p.ba)) problems.push('B->A trace differs from the unmoved run');
      if (problems.length) failures.push(`${sc.describe} (${moved.moved} moves)\n    ${problems.join('; ')}\n    replay: SIM_SEED=${seed} npx vitest run test/sim/engine-move.test.ts`);
      if (failures.length >= 3) break;
    }
    expect(failures, failures.join('\n')).toEqual([]);
    expect(totalMoves).toBeGreaterThan(exactSeeds.length * 3);
  }, 600_000);

  const lossFreeSeeds = seedsFromEnv(150, 'mc');
  it(`chimney-fidelity moves on a loss-free path: streams exact, no retransmission (${lossFreeSeeds.length} seeds)`, () => {
    const failures: string[] = [];
    for (const seed of lossFreeSeeds) {
      const sc = randomScenario(seed, { maxBytes: 1_000_000, lossMax: 0 });
      if (sc.ending === 'a-aborts') sc.ending = 'both-close';
      for (const imp of [sc.pair.impAtoB!, sc.pair.impBtoA!]) { imp.loss = 0; imp.reorder = 0; imp.duplicate = 0; }
      const moved = run(sc, { rng: new Rng(`moves/${seed}`), meanGapMs: 20, includePrivate: false });
      const problems = streamsExact(moved.p);
      const rx = retransmissions(moved.p);
      if (rx > 0) problems.push(`${rx} retransmissions on a loss-free path`);
      if (problems.length) failures.push(`${sc.describe} (${moved.moved} moves)\n    ${problems.join('; ')}\n    replay: SIM_SEED=${seed} npx vitest run test/sim/engine-move.test.ts`);
      if (failures.length >= 3) break;
    }
    expect(failures, failures.join('\n')).toEqual([]);
  }, 600_000);

  const lossySeeds = seedsFromEnv(100, 'ml');
  it(`chimney-fidelity moves through loss, reordering and duplication: streams exact (${lossySeeds.length} seeds)`, () => {
    const failures: string[] = [];
    for (const seed of lossySeeds) {
      const sc = randomScenario(seed, { maxBytes: 1_000_000 });
      if (sc.ending === 'a-aborts') sc.ending = 'both-close';
      if (process.env.SIM_TRACE) appendFileSync(process.env.SIM_TRACE, `${seed}\n`);
      let moved: ReturnType<typeof run>;
      try {
        moved = run(sc, { rng: new Rng(`moves/${seed}`), meanGapMs: 50, includePrivate: false });
      } catch (e) {
        failures.push(`${sc.describe}\n    threw: ${(e as Error).message}\n    replay: SIM_SEED=${seed} npx vitest run test/sim/engine-move.test.ts`);
        if (failures.length >= 3) break;
        continue;
      }
      const problems = streamsExact(moved.p);
      if (problems.length) failures.push(`${sc.describe} (${moved.moved} moves)\n    ${problems.join('; ')}\n    replay: SIM_SEED=${seed} npx vitest run test/sim/engine-move.test.ts`);
      if (failures.length >= 3) break;
    }
    expect(failures, failures.join('\n')).toEqual([]);
  }, 600_000);
});
