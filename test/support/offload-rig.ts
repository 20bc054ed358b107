/**
 * Offloading host A (behind an in-process TargetCore) and a plain peer host B on a sim wire: the
 * host's messages and the target's cross as separate simulator events, in order, as an IPC binding
 * would carry them. Shared by the host offload tests.
 */
import { Simulator } from '../../src/link/sim/simulator.js';
import { Rng } from '../../src/link/sim/rng.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { impair, type ImpairSpec } from '../../src/link/sim/impair.js';
import type { Link } from '../../src/link/link.js';
import { TargetCore } from '../../src/target/core.js';
import { ChimneyLink } from '../../src/host/chimney-link.js';
import { HostStack } from '../../src/host/stack.js';
import type { OffloadPolicy } from '../../src/host/offload.js';
import type { TcpSocket } from '../../src/host/socket.js';
import type { TerminateSendMode } from '../../src/chimney/send-queue.js';
import { IP_A, IP_B, MAC_A, MAC_B, runSimUntil, virtualScheduler } from './host-sim.js';

export interface RigOptions {
  policy: OffloadPolicy;
  seed?: string;
  impair?: ImpairSpec;
  terminateSendMode?: TerminateSendMode | 'alternate';
  maxConnections?: number;
  /** Keep a copy of every frame the target sends and receives, with its time (wireOut, wireIn). */
  recordWire?: boolean;
  /**
   * IPC latency in ms: each message takes between half this and this, order kept per direction
   * (a loaded machine's Unix socket, where hand-over round trips outlast the wire's).
   */
  ipcDelayMs?: number;
  /** The target's wait for the hand-over barrier (TargetCore forwardWaitMs). */
  forwardWaitMs?: number;
  /** RawFrame messages the target keeps for the hand-over replay (TargetCore rawFrameRing). */
  rawFrameRing?: number;
  /** false: the host's RawFramesSeen never reaches the target (a version-1 host: the barrier waits). */
  replay?: boolean;
}

/** Offloading host A (behind the target) and a plain peer B. */
export class OffloadRig {
  readonly sim = new Simulator();
  readonly core: TargetCore;
  readonly link: ChimneyLink;
  readonly a: HostStack;
  readonly b: HostStack;
  /** B's side of the wire: frames sent here reach the target as if B sent them. */
  readonly peerWire: Link;
  /** Every frame the target put on the wire, in order (copies), and when (virtual ms). */
  readonly wireOut: Uint8Array[] = [];
  readonly wireOutAt: number[] = [];
  /** Every frame that reached the target from the wire, and when (with recordWire). */
  readonly wireIn: Uint8Array[] = [];
  readonly wireInAt: number[] = [];

  constructor(o: RigOptions) {
    const scheduler = virtualScheduler(this.sim);
    const rng = new Rng(o.seed ?? 'offload');
    const [wa, wbRaw] = createSimPair(this.sim, { name: 'wire', mtu: 1500 });
    const wireTarget = o.impair ? impair(wa, this.sim, rng.fork('t'), o.impair) : wa;
    const wb = o.impair ? impair(wbRaw, this.sim, rng.fork('p'), o.impair) : wbRaw;
    this.peerWire = wb;
    const ipcDelay = o.ipcDelayMs ?? 0;
    const ipcRng = ipcDelay > 0 ? rng.fork('ipc') : undefined;
    // One queue per direction: a message never overtakes an earlier one (a stream socket).
    const channel = (): ((fn: () => void) => void) => {
      let last = 0;
      return (fn) => {
        const at = Math.max(last, this.sim.now + (ipcRng ? ipcDelay * (0.5 + 0.5 * ipcRng.float()) : 0));
        last = at;
        this.sim.schedule(at, fn);
      };
    };
    const toTarget = channel();
    const toHost = channel();
    this.link = new ChimneyLink({
      send: (m) => {
        if (m.type === 'RawFramesSeen' && o.replay === false) return;
        toTarget(() => this.core.onHostMessage(m));
      },
    });
    this.core = new TargetCore({
      scheduler, interfaceMac: MAC_A, forwardWaitMs: o.forwardWaitMs, rawFrameRing: o.rawFrameRing, terminateSendMode: o.terminateSendMode ?? 'chain',
      limits: o.maxConnections === undefined ? undefined : { maxConnections: o.maxConnections },
      toHost: (m) => toHost(() => this.link.onTargetMessage(m)),
      toWire: (f) => {
        if (o.recordWire) {
          this.wireOut.push(f.slice());
          this.wireOutAt.push(this.sim.now);
        }
        wireTarget.send([f]);
      },
    });
    wireTarget.setReceiver((frames) => {
      for (const f of frames) {
        if (o.recordWire) {
          this.wireIn.push(f.slice());
          this.wireInAt.push(this.sim.now);
        }
        this.core.onFrame(f);
      }
    });
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
