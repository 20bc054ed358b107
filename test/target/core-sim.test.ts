/**
 * The target core between a host (engine stand-in) and a peer engine on the sim link: offload,
 * transfer, terminate and re-offload; streams checked by digest.
 */
import { describe, expect, it } from 'vitest';
import { ChimneySim } from '../support/chimney-sim.js';

function run(sim: ChimneySim, maxMs = 600_000): void {
  sim.sim.runUntilIdle({ maxTimeMs: maxMs, maxEvents: 5_000_000 });
}

describe('target core over the sim link', () => {
  it('R35/R49/R69: a connection offloaded after the handshake carries 1 MB each way exactly, indications accepted', () => {
    const s = new ChimneySim({ seed: 'c1', bytesHostToPeer: 1_000_000, bytesPeerToHost: 1_000_000, impairTargetToPeer: { delayMs: 5 }, impairPeerToTarget: { delayMs: 5 } });
    s.start();
    s.sim.runUntil(30);
    s.offload();
    run(s);
    expect(s.check(), s.log.join('\n')).toEqual([]);
    expect(s.core.counters.framesOffloaded).toBeGreaterThan(100);
  });

  it('R2/R6/R15: terminate mid-transfer and continue on the host: streams exact, every request disposed of once', () => {
    const s = new ChimneySim({ seed: 'c2', bytesHostToPeer: 2_000_000, bytesPeerToHost: 2_000_000, impairTargetToPeer: { delayMs: 5 }, impairPeerToTarget: { delayMs: 5 }, postSize: 8192 });
    s.start();
    s.sim.runUntil(30);
    s.offload();
    s.sim.runUntil(200);
    s.terminate();
    run(s);
    expect(s.check(), s.log.join('\n')).toEqual([]);
    expect(s.cycles).toBe(1);
  });

  for (const mode of ['chain', 'complete'] as const) {
    it(`R6-R13: many offload/terminate cycles through loss and reordering (${mode} mode), streams exact`, () => {
      const imp = { delayMs: 5, loss: 0.02, reorder: 0.02, reorderDelayMs: 3 };
      const s = new ChimneySim({ seed: `c3${mode}`, bytesHostToPeer: 3_000_000, bytesPeerToHost: 3_000_000, impairTargetToPeer: imp, impairPeerToTarget: imp, terminateSendMode: mode, postSize: 16384, indicateReply: 'mixed' });
      s.start();
      s.sim.runUntil(30);
      const cycle = (): void => {
        if (s.offloaded && !s.terminating) s.terminate();
        else if (!s.offloaded) s.offload();
        if (s.sim.now < 20_000) s.sim.after(20 + s.rng.float() * 80, cycle);
      };
      s.sim.after(10, cycle);
      run(s);
      expect(s.check(), s.log.slice(-20).join('\n')).toEqual([]);
      expect(s.cycles).toBeGreaterThan(5);
    });
  }
});
