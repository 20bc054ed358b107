/** Congestion control factory: the engine names an algorithm, gets a strategy object. */
import type { CongestionControl, CongestionControlInit, CongestionControlName } from './congestion-control.js';
import { Cubic } from './cubic.js';
import { NewReno } from './newreno.js';

export type { CongestionControl, CongestionControlInit, CongestionControlName } from './congestion-control.js';
export { Cubic } from './cubic.js';
export { NewReno } from './newreno.js';

export const CONGESTION_CONTROL_NAMES: readonly CongestionControlName[] = ['newreno', 'cubic'];

export function createCongestionControl(name: CongestionControlName, init: CongestionControlInit): CongestionControl {
  switch (name) {
    case 'newreno':
      return new NewReno(init);
    case 'cubic':
      return new Cubic(init);
    default:
      // Reachable from untyped configuration (CLI, IPC).
      throw new RangeError(`unknown congestion control "${String(name)}" (expected one of ${CONGESTION_CONTROL_NAMES.join(', ')})`);
  }
}
