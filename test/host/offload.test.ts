/**
 * The host stack's offload path (issue 4 deliverable 5): a HostStack whose link is a ChimneyLink to
 * an in-process TargetCore; the core's wire side on a sim link to a peer HostStack. Messages cross
 * in both directions as separate simulator events, in order, as an IPC binding would carry them.
 */
import { describe, expect, it } from 'vitest';
import { Simulator } from '../../src/link/sim/simulator.js';
import { Rng } from '../../src/link/sim/rng.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { impair, type ImpairSpec } from '../../src/link/sim/impair.js';
import { TargetCore } from '../../src/target/core.js';
import { ChimneyLink } from '../../src/host/chimney-link.js';
import { HostStack } from '../../src/host/stack.js';
import type { OffloadPolicy } from '../../src/host/offload.js';
import type { TcpSocket } from '../../src/host/socket.js';
import type { TerminateSendMode } from '../../src/chimney/send-queue.js';
import {
  Collector, IP_A, IP_B, MAC_A, MAC_B, payload, runSimUntil, sha256, virtualScheduler, writeAll,
} from '../support/host-sim.js';

interface RigOptions {
  policy: OffloadPolicy;
  seed?: string;
  impair?: ImpairSpec;
  terminateSendMode?: TerminateSendMode | 'alternate';
}

/** Offloading host A (behind the target) and a plain peer B. */
class OffloadRig {
  readonly sim = new Simulator();
  readonly core: TargetCore;
  readonly link: ChimneyLink;
  readonly a: HostStack;
  readonly b: HostStack;

  constructor(o: RigOptions) {
    const scheduler = virtualScheduler(this.sim);
    const rng = new Rng(o.seed ?? 'offload');
    const [wa, wbRaw] = createSimPair(this.sim, { name: 'wire', mtu: 1500 });
    const wireTarget = o.impair ? impair(wa, this.sim, rng.fork('t'), o.impair) : wa;
    const wb = o.impair ? impair(wbRaw, this.sim, rng.fork('p'), o.impair) : wbRaw;
    const later = (fn: () => void): void => { this.sim.schedule(this.sim.now, fn); };
    this.link = new ChimneyLink({ send: (m) => later(() => this.core.onHostMessage(m)) });
    this.core = new TargetCore({
      scheduler, interfaceMac: MAC_A, terminateSendMode: o.terminateSendMode ?? 'chain',
      toHost: (m) => later(() => this.link.onTargetMessage(m)),
      toWire: (f) => wireTarget.send([f]),
    });
    wireTarget.setReceiver((frames) => { for (const f of frames) this.core.onFrame(f); });
    const random = (label: string): (() => number) => {
      const r = rng.fork(label);
      return () => r.nextU32();
    };
    this.a = new HostStack({
      link: this.link, mac: MAC_A, ipv4: { address: IP_A, prefixLength: 24 }, scheduler, random: random('a'),
      isnSecret: new Uint8Array(16).fill(1), offload: { policy: o.policy },
    });
    this.b = new HostStack({
      link: wb, mac: MAC_B, ipv4: { address: IP_B, prefixLength: 24 }, scheduler, random: random('b'),
      isnSecret: new Uint8Array(16).fill(2),
    });
  }

  run(cond: () => boolean, what: string, ms?: number): Promise<void> {
    return runSimUntil(this.sim, cond, what, ms);
  }

  /** A connects to B:80; resolves with both ends once established. */
  async pair(): Promise<{ ca: TcpSocket; cb: TcpSocket }> {
    let cb: TcpSocket | undefined;
    // Half-open on: each side ends after its own writes, whichever FIN comes first.
    this.b.listen(80, (s) => { cb = s; }, { allowHalfOpen: true });
    const ca = this.a.connect({ host: IP_B, port: 80, allowHalfOpen: true });
    let connected = false;
    ca.once('connect', () => { connected = true; });
    await this.run(() => connected && cb !== undefined, 'handshake');
    return { ca, cb: cb! };
  }
}

const MB5 = 5 * 1024 * 1024;

describe('host offload path (spec 2.1, 3, 4, 6)', () => {
  it('after-handshake policy: 5 MB each way through an offloaded socket, sha256 on both ends', async () => {
    const rig = new OffloadRig({ policy: 'after-handshake' });
    const { ca, cb } = await rig.pair();
    const ra = new Collector(ca);
    const rb = new Collector(cb);
    await rig.run(() => ca.offloaded && rig.a.offload!.offloadedCount === 1 && rig.core.connectionCount === 1, 'offloaded');
    const da = payload(1, MB5);
    const db = payload(2, MB5);
    void writeAll(ca, da);
    void writeAll(cb, db);
    await rig.run(() => (ra.ended && rb.ended) || ra.error !== undefined || rb.error !== undefined, 'transfer', 600_000);
    expect(rb.digest()).toBe(sha256(da));
    expect(ra.digest()).toBe(sha256(db));
    expect(rb.bytes).toBe(MB5);
    expect(ra.bytes).toBe(MB5);
    // The data went through the target's engine, not the host's.
    expect(rig.core.counters.framesOffloaded).toBeGreaterThan(3000);
    expect(rig.a.offload!.stats.initiates).toBe(1);
    expect(ra.error).toBeUndefined();
    expect(rb.error).toBeUndefined();
    // Both closed: the target hands TIME-WAIT back (Retrieve) and the host finishes it.
    await rig.run(() => ra.closed && rb.closed && rig.core.connectionCount === 0 && rig.a.demux.size === 0, 'closed');
    expect(rig.a.offload!.stats.terminates).toBe(1);
    expect(rig.core.ledger.lentCount).toBe(0);
  }, 60_000);
});
