/**
 * Deterministic simulation: two engines exchange real Ethernet/IPv4/TCP frames over the sim link
 * with random impairments; random sizes both ways at once, random endings. Every seed checks both
 * byte streams by digest, the final states, timer and buffer leaks.
 */
import { describe, expect, it } from 'vitest';
import { EnginePair, StreamSource, digestOf } from '../support/engine-pair.js';
import { randomScenario, seedsFromEnv, type Scenario } from '../support/sim-scenario.js';
import { TcpState } from '../../src/tcp/types.js';

const SEEDS = seedsFromEnv(500, 'e');

function prefixDigest(seed: string, label: string, total: number, n: number): string {
  const s = new StreamSource(`${seed}/${label}`, total);
  let left = n;
  while (left > 0) left -= s.next(Math.min(left, 1 << 20)).length;
  return s.hash.digest('hex');
}

export function runScenario(sc: Scenario): EnginePair {
  const p = new EnginePair(sc.pair);
  if (sc.ending === 'a-closes') { p.appB.closeWhenDone = false; p.appB.closeOnPeerFin = true; }
  if (sc.ending === 'b-closes') { p.appA.closeWhenDone = false; p.appA.closeOnPeerFin = true; }
  if (sc.ending === 'a-aborts') p.appA.closeWhenDone = false;
  p.start();
  // Memory bound: sample every buffer against its configured limit while the run goes on.
  const sample = (): void => {
    for (const d of [p.a, p.b]) {
      if (!d) continue;
      const c = d.conn;
      const cfg = c.config;
      if (c.outOfOrderBytes > cfg.reassemblyMaxBytes || c.sendQueued > cfg.sendBufferSize || c.readable > cfg.receiveBufferSize) {
        p.boundViolations.push(`t=${p.sim.now.toFixed(0)} ooo ${c.outOfOrderBytes} snd ${c.sendQueued} rcv ${c.readable}`);
      }
    }
    if (p.a.conn.state !== TcpState.Closed || (p.b && p.b.conn.state !== TcpState.Closed)) p.sim.after(50, sample);
  };
  p.sim.after(50, sample);
  if (sc.ending === 'a-aborts') p.sim.schedule(sc.abortAtMs, () => p.a.run((c, now) => c.abort(now)));
  // Bounded: a healthy run ends long before; a stuck one fails with the bound named.
  p.sim.runUntilIdle({ maxTimeMs: 3_600_000, maxEvents: 5_000_000 });
  return p;
}

describe('deterministic simulation: engine <-> engine over the sim link', () => {
  it(`${SEEDS.length} random seeds: byte streams exact, right final states, no leaks`, () => {
    const failures: string[] = [];
    for (const seed of SEEDS) {
      const sc = randomScenario(seed);
      let p: EnginePair | undefined;
      try {
        p = runScenario(sc);
        const a = p.appA, b = p.appB;
        const problems: string[] = [];
        if (sc.ending !== 'a-aborts') {
          if (digestOf(b.received) !== digestOf(a.source.hash) || b.receivedBytes !== a.source.total) problems.push(`A->B stream differs (${b.receivedBytes}/${a.source.total})`);
          if (digestOf(a.received) !== digestOf(b.source.hash) || a.receivedBytes !== b.source.total) problems.push(`B->A stream differs (${a.receivedBytes}/${b.source.total})`);
          if (a.error || b.error) problems.push(`unexpected error A=${a.error} B=${b.error}`);
        } else {
          // Whatever arrived before the abort is an exact prefix of what was sent.
          if (digestOf(b.received) !== prefixDigest(seed, 'a', a.source.total, b.receivedBytes)) problems.push('A->B prefix differs');
          if (digestOf(a.received) !== prefixDigest(seed, 'b', b.source.total, a.receivedBytes)) problems.push('B->A prefix differs');
        }
        if (p.boundViolations.length > 0) problems.push(`buffer over its bound: ${p.boundViolations[0]}`);
        for (const [name, d] of [['A', p.a], ['B', p.b]] as const) {
          if (!d) continue;
          if (sc.ending !== 'a-aborts' && (d.conn.sendQueued !== 0 || d.conn.readable !== 0)) problems.push(`${name} still holds data (send ${d.conn.sendQueued}, receive ${d.conn.readable})`);
          if (d.conn.state !== TcpState.Closed) problems.push(`${name} ended in ${TcpState[d.conn.state]}`);
          if (d.conn.nextDeadline() !== undefined) problems.push(`${name} still has a timer`);
          if (d.conn.outOfOrderBytes !== 0 && d.conn.state !== TcpState.Closed) problems.push(`${name} holds out-of-order data`);
        }
        if (p.sim.pending !== 0) problems.push(`${p.sim.pending} events still pending`);
        if ((p.frames?.badFrames ?? 0) > 0) problems.push(`${p.frames!.badFrames} frames failed to parse`);
        if ((p.frames?.oversize ?? 0) > 0) problems.push(`${p.frames!.oversize} frames larger than the MTU`);
        if (problems.length > 0) failures.push(`${sc.describe}\n    ${problems.join('; ')}\n    replay: SIM_SEED=${seed} npx vitest run test/sim/engine-sim.test.ts`);
      } catch (e) {
        failures.push(`${sc.describe}\n    threw: ${(e as Error).message}\n    replay: SIM_SEED=${seed} npx vitest run test/sim/engine-sim.test.ts`);
      }
      if (failures.length >= 5) break;
    }
    expect(failures, failures.join('\n')).toEqual([]);
  }, 900_000);
});
