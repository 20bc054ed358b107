/**
 * Host stacks on the deterministic sim link, and helpers to run them from async tests.
 *
 * Sockets are Node streams: their callbacks run on process.nextTick / microtasks. `runUntil`
 * therefore advances the virtual clock one event time at a time and lets the real event loop turn
 * in between (a setImmediate), so application reactions happen at the virtual time that caused
 * them and nothing races the clock.
 */
import { createHash, type Hash } from 'node:crypto';
import { Simulator } from '../../src/link/sim/simulator.js';
import { Rng } from '../../src/link/sim/rng.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { impair, type ImpairSpec } from '../../src/link/sim/impair.js';
import type { Link } from '../../src/link/link.js';
import type { Scheduler } from '../../src/tcp/driver.js';
import type { TcpConfig } from '../../src/tcp/types.js';
import { ipv4, mac } from '../../src/wire/addresses.js';
import { HostStack, type HostStackOptions } from '../../src/host/stack.js';
import type { ArpCacheOptions } from '../../src/host/arp-cache.js';
import type { TcpSocket } from '../../src/host/socket.js';

export const MAC_A = mac('02:00:00:00:00:0a');
export const MAC_B = mac('02:00:00:00:00:0b');
export const IP_A = ipv4('10.0.0.1');
export const IP_B = ipv4('10.0.0.2');

/** The virtual-clock Scheduler (same shape as test/support/engine-pair.ts simScheduler). */
export function virtualScheduler(sim: Simulator): Scheduler {
  return {
    now: () => sim.now,
    schedule: (at, fn) => sim.schedule(Math.max(at, sim.now), fn),
    cancel: (h) => { sim.cancel(h as ReturnType<Simulator['schedule']>); },
  };
}

export const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Runs the simulator until `cond()` holds, one event time per event-loop turn. Throws when the
 * virtual time limit passes or nothing is left to run.
 */
export async function runSimUntil(sim: Simulator, cond: () => boolean, what: string, maxVirtualMs = 600_000): Promise<void> {
  const limit = sim.now + maxVirtualMs;
  let idle = 0;
  for (;;) {
    await turn();
    if (cond()) return;
    const t = sim.nextTime();
    if (t === undefined) {
      if (++idle > 20) throw new Error(`${what}: simulation idle at t=${sim.now} ms and the condition does not hold`);
      continue;
    }
    idle = 0;
    if (t > limit) throw new Error(`${what}: not reached within ${maxVirtualMs} virtual ms (now ${sim.now})`);
    sim.runUntil(t);
  }
}

/** Let time pass (running every event due), with application turns in between. */
export async function runSimFor(sim: Simulator, ms: number): Promise<void> {
  const end = sim.now + ms;
  for (;;) {
    await turn();
    const t = sim.nextTime();
    if (t === undefined || t > end) break;
    sim.runUntil(t);
  }
  sim.runUntil(end);
  await turn();
}

export interface SimHostsOptions {
  seed?: string;
  /** Impairments on what A sends / what B sends. */
  impairAB?: ImpairSpec;
  impairBA?: ImpairSpec;
  mtu?: number;
  tcp?: Partial<TcpConfig>;
  arp?: ArpCacheOptions;
  /** Extra options per stack. */
  a?: Partial<HostStackOptions>;
  b?: Partial<HostStackOptions>;
}

/** Two host stacks, A = 10.0.0.1 and B = 10.0.0.2 on one /24, over a sim link pair. */
export class SimHosts {
  readonly sim = new Simulator();
  readonly scheduler: Scheduler;
  readonly rng: Rng;
  readonly linkA: Link;
  readonly linkB: Link;
  readonly a: HostStack;
  readonly b: HostStack;

  constructor(opts: SimHostsOptions = {}) {
    this.scheduler = virtualScheduler(this.sim);
    this.rng = new Rng(opts.seed ?? 'host-sim');
    const [ra, rb] = createSimPair(this.sim, { name: 'hosts', mtu: opts.mtu ?? 1500 });
    this.linkA = opts.impairAB ? impair(ra, this.sim, this.rng.fork('ab'), opts.impairAB) : ra;
    this.linkB = opts.impairBA ? impair(rb, this.sim, this.rng.fork('ba'), opts.impairBA) : rb;
    const random = (label: string): (() => number) => {
      const r = this.rng.fork(label);
      return () => r.nextU32();
    };
    this.a = new HostStack({
      link: this.linkA, mac: MAC_A, ipv4: { address: IP_A, prefixLength: 24 }, scheduler: this.scheduler,
      tcp: opts.tcp, arp: opts.arp, random: random('a'), isnSecret: new Uint8Array(16).fill(1), ...opts.a,
    });
    this.b = new HostStack({
      link: this.linkB, mac: MAC_B, ipv4: { address: IP_B, prefixLength: 24 }, scheduler: this.scheduler,
      tcp: opts.tcp, arp: opts.arp, random: random('b'), isnSecret: new Uint8Array(16).fill(2), ...opts.b,
    });
  }

  run(cond: () => boolean, what: string, maxVirtualMs?: number): Promise<void> {
    return runSimUntil(this.sim, cond, what, maxVirtualMs);
  }

  runFor(ms: number): Promise<void> {
    return runSimFor(this.sim, ms);
  }
}

/** A single stack on one end of a sim pair; the test speaks raw frames on the other end. */
export class SimHostAndWire {
  readonly sim = new Simulator();
  readonly scheduler: Scheduler;
  readonly stack: HostStack;
  readonly wire: Link;
  /** Frames the stack sent, copied, in order. */
  readonly received: Uint8Array[] = [];

  constructor(opts: { mtu?: number; layer?: 'ethernet' | 'ip'; stack?: Partial<HostStackOptions> } = {}) {
    this.scheduler = virtualScheduler(this.sim);
    const [ours, wire] = createSimPair(this.sim, { name: 'wire', mtu: opts.mtu ?? 1500, layer: opts.layer ?? 'ethernet' });
    this.wire = wire;
    wire.setReceiver((frames) => { for (const f of frames) this.received.push(f.slice()); });
    const r = new Rng('host-and-wire');
    this.stack = new HostStack({
      link: ours, mac: MAC_A, ipv4: { address: IP_A, prefixLength: 24 }, scheduler: this.scheduler,
      random: () => r.nextU32(), ...opts.stack,
    });
  }

  /** Deliver frames to the stack and run the simulator until idle (or `ms` virtual ms). */
  inject(frames: Uint8Array[], ms = 0): void {
    this.wire.send(frames);
    this.sim.runUntil(this.sim.now + ms);
  }

  take(): Uint8Array[] {
    return this.received.splice(0);
  }
}

/** Deterministic payload: xorshift32 words from `seed`. */
export function payload(seed: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  let x = (seed | 0) || 0x9e3779b9;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeInt32LE(x | 0, i);
  }
  for (let i = size - (size % 4); i < size; i++) buf[i] = i & 0xff;
  return buf;
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Hashes everything a socket reads; `done` once it ended or closed. */
export class Collector {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  ended = false;
  closed = false;
  error: (Error & { code?: string }) | undefined;

  constructor(readonly socket: TcpSocket) {
    socket.on('data', (d: Buffer) => {
      this.hash.update(d);
      this.bytes += d.length;
    });
    socket.on('end', () => { this.ended = true; });
    socket.on('close', () => { this.closed = true; });
    socket.on('error', (e: Error & { code?: string }) => { this.error = e; });
  }

  digest(): string {
    return this.hash.copy().digest('hex');
  }
}

/** Writes `data` in `chunk`-sized pieces honouring backpressure, then `end()` unless told not to. */
export async function writeAll(socket: TcpSocket, data: Uint8Array, opts: { chunk?: number; end?: boolean } = {}): Promise<{ sawBackpressure: boolean }> {
  const chunk = opts.chunk ?? 64 * 1024;
  let sawBackpressure = false;
  for (let off = 0; off < data.length; off += chunk) {
    if (socket.destroyed) throw new Error('socket destroyed while writing');
    if (!socket.write(data.subarray(off, Math.min(off + chunk, data.length)))) {
      sawBackpressure = true;
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => { socket.off('close', onClose); resolve(); };
        const onClose = (): void => { socket.off('drain', onDrain); reject(new Error('socket closed while waiting for drain')); };
        socket.once('drain', onDrain);
        socket.once('close', onClose);
      });
    }
  }
  if (opts.end ?? true) socket.end();
  return { sawBackpressure };
}
