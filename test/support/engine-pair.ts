/**
 * Two TCP engines joined by a segment-level pipe with seeded impairments on a virtual clock.
 * Applications on both ends stream deterministic pseudo-random bytes and hash what they read, so a
 * test compares digests, not lengths. Used by the engine unit tests and the simulation property test.
 */
import { createHash, type Hash } from 'node:crypto';
import { Simulator } from '../../src/link/sim/simulator.js';
import { Rng } from '../../src/link/sim/rng.js';
import { TcpConnection } from '../../src/tcp/connection.js';
import { ConnectionDriver, type Scheduler } from '../../src/tcp/driver.js';
import type { TcpConfig, TcpEvent } from '../../src/tcp/types.js';
import { TcpState } from '../../src/tcp/types.js';
import { TCP_RST, type TcpSegment } from '../../src/wire/tcp-segment.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { impair, type ImpairSpec } from '../../src/link/sim/impair.js';
import type { Link } from '../../src/link/link.js';
import { withCapture } from '../../src/link/capture-link.js';
import { PcapWriter, memorySink, type MemorySink } from '../../src/capture/pcap-writer.js';
import { buildTcpFrame, parseFrame } from '../../src/wire/frame.js';
import { ipv4, mac } from '../../src/wire/addresses.js';

export interface PipeImpairments {
  loss?: number;
  duplicate?: number;
  reorder?: number;
  delayMs?: number;
  jitterMs?: number;
  /** Link rate in bits per second (0 = unlimited). */
  rateBps?: number;
}

export function simScheduler(sim: Simulator): Scheduler {
  return {
    now: () => sim.now,
    schedule: (at, fn) => sim.schedule(Math.max(at, sim.now), fn),
    cancel: (h) => { sim.cancel(h as ReturnType<Simulator['schedule']>); },
  };
}

function cloneSegment(s: TcpSegment): TcpSegment {
  return {
    ...s,
    options: { ...s.options, sack: s.options.sack?.map((b) => ({ ...b })), ts: s.options.ts ? { ...s.options.ts } : undefined },
    payload: s.payload.slice(),
  };
}

/** One direction of transport between the two engines. */
export interface Pipe {
  send(seg: TcpSegment): void;
  receiver: (seg: TcpSegment) => void;
  imp: PipeImpairments;
  readonly log: Array<{ t: number; seg: TcpSegment }>;
}

/** One direction of the pipe: loss, duplication, reordering, delay with FIFO jitter, rate. */
export class SegmentPipe implements Pipe {
  delivered = 0;
  dropped = 0;
  /** Every segment put on this direction (before impairments), for wire-level checks. */
  readonly log: Array<{ t: number; seg: TcpSegment }> = [];
  private busyUntil = 0;
  private lastArrival = 0;
  receiver: (seg: TcpSegment) => void = () => {};

  constructor(private readonly sim: Simulator, private readonly rng: Rng, public imp: PipeImpairments, private readonly keepLog = false) {}

  send(seg: TcpSegment): void {
    const copy = cloneSegment(seg);
    if (this.keepLog) this.log.push({ t: this.sim.now, seg: copy });
    const imp = this.imp;
    if (imp.loss && this.rng.chance(imp.loss)) {
      this.dropped++;
      return;
    }
    let t = this.sim.now;
    if (imp.rateBps) {
      const bits = (copy.payload.length + 54) * 8;
      this.busyUntil = Math.max(this.busyUntil, t) + (bits / imp.rateBps) * 1000;
      t = this.busyUntil;
    }
    t += imp.delayMs ?? 0;
    if (imp.jitterMs) t += this.rng.float() * imp.jitterMs;
    t = Math.max(t, this.lastArrival); // FIFO unless reordered on purpose
    this.lastArrival = t;
    if (imp.reorder && this.rng.chance(imp.reorder)) t += 1 + this.rng.float() * Math.max(5, (imp.delayMs ?? 0) / 2);
    this.deliverAt(t, copy);
    if (imp.duplicate && this.rng.chance(imp.duplicate)) this.deliverAt(t + this.rng.float() * 3, cloneSegment(copy));
  }

  private deliverAt(t: number, seg: TcpSegment): void {
    this.sim.schedule(t, () => {
      this.delivered++;
      this.receiver(seg);
    });
  }
}

const MAC_A = mac('02:00:00:00:00:0a');
const MAC_B = mac('02:00:00:00:00:0b');
const IP_A = ipv4('10.0.0.1');
const IP_B = ipv4('10.0.0.2');

/**
 * The same two directions as real frames: segments are built into Ethernet/IPv4/TCP frames with
 * the wire codec, cross a sim link pair wrapped in seeded impairments (and optionally a pcap
 * capture), and are parsed again on the other side, checksums verified.
 */
export class FrameTransport {
  readonly ab: FramePipe;
  readonly ba: FramePipe;
  readonly capture: MemorySink | undefined;
  badFrames = 0;
  /** Frames a sender built larger than the link MTU allows (an engine bug: they would be dropped). */
  oversize = 0;

  constructor(sim: Simulator, rng: Rng, impAB: ImpairSpec, impBA: ImpairSpec, capture: boolean, keepLog: boolean) {
    const [ra, rb] = createSimPair(sim, { name: 'pair', mtu: 1500 });
    let la: Link = impair(ra, sim, rng.fork('a'), impAB);
    const lb: Link = impair(rb, sim, rng.fork('b'), impBA);
    if (capture) {
      this.capture = memorySink();
      const writer = new PcapWriter(this.capture, 'ethernet');
      la = withCapture(la, writer, () => sim.now);
    }
    const oversize = (): void => { this.oversize++; };
    this.ab = new FramePipe(sim, la, MAC_A, MAC_B, IP_A, IP_B, impAB, keepLog, oversize);
    this.ba = new FramePipe(sim, lb, MAC_B, MAC_A, IP_B, IP_A, impBA, keepLog, oversize);
    la.setReceiver((frames) => this.deliver(frames, this.ba));
    lb.setReceiver((frames) => this.deliver(frames, this.ab));
  }

  private deliver(frames: readonly Uint8Array[], from: FramePipe): void {
    for (const f of frames) {
      const parsed = parseFrame(f);
      if (typeof parsed === 'string' || !parsed.tcp) {
        this.badFrames++;
        continue;
      }
      from.receiver(parsed.tcp);
    }
  }
}

export class FramePipe implements Pipe {
  receiver: (seg: TcpSegment) => void = () => {};
  readonly log: Array<{ t: number; seg: TcpSegment }> = [];
  constructor(
    private readonly sim: Simulator, private readonly link: Link, private readonly srcMac: Uint8Array,
    private readonly dstMac: Uint8Array, private readonly src: number, private readonly dst: number,
    public imp: PipeImpairments, private readonly keepLog: boolean, private readonly onOversize: () => void,
  ) {}
  send(seg: TcpSegment): void {
    if (this.keepLog) this.log.push({ t: this.sim.now, seg: cloneSegment(seg) });
    const frame = buildTcpFrame({ srcMac: this.srcMac, dstMac: this.dstMac, ip: { version: 4, src: this.src, dst: this.dst }, segment: seg });
    if (frame.length > 1514) this.onOversize();
    this.link.send([frame]);
  }
}

/** Deterministic byte source: `total` bytes from a seeded generator, hashed as produced. */
export class StreamSource {
  readonly hash: Hash = createHash('sha256');
  produced = 0;
  private readonly rng: Rng;
  constructor(seed: string, readonly total: number) {
    this.rng = new Rng(seed);
  }
  next(max: number): Uint8Array {
    const n = Math.min(max, this.total - this.produced);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.rng.nextU32();
      out[i] = v & 0xff;
      if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = (v >>> 24) & 0xff;
    }
    this.hash.update(out);
    this.produced += n;
    return out;
  }
  get done(): boolean {
    return this.produced >= this.total;
  }
}

export interface EndApp {
  source: StreamSource;
  received: Hash;
  receivedBytes: number;
  /** Pending bytes produced but not yet accepted by the engine. */
  pending: Uint8Array;
  closeWhenDone: boolean;
  events: TcpEvent[];
  peerFin: boolean;
  closed: boolean;
  error?: string;
  /** Read only this many bytes per 'readable' (0 = everything): lets tests make a slow reader. */
  readChunk: number;
  paused: boolean;
  /** Close (after sending everything) once the peer's FIN arrived, like a server that half-closes back. */
  closeOnPeerFin: boolean;
}

export interface PairOptions {
  seed: string;
  config?: Partial<TcpConfig>;
  configA?: Partial<TcpConfig>;
  configB?: Partial<TcpConfig>;
  impAtoB?: PipeImpairments;
  impBtoA?: PipeImpairments;
  bytesAtoB?: number;
  bytesBtoA?: number;
  closeWhenDone?: boolean;
  keepLog?: boolean;
  /** 'frames': real Ethernet/IPv4/TCP frames over the sim link (default 'segments'). */
  transport?: 'segments' | 'frames';
  /** With 'frames': capture side A's link to an in-memory pcap. */
  capture?: boolean;
}

/** Client A and server B with their drivers, pipes and applications. */
export class EnginePair {
  readonly sim = new Simulator();
  readonly rng: Rng;
  readonly ab: Pipe;
  readonly ba: Pipe;
  readonly frames: FrameTransport | undefined;
  a!: ConnectionDriver;
  b: ConnectionDriver | undefined;
  readonly appA: EndApp;
  readonly appB: EndApp;
  private readonly sched: Scheduler;
  /** Buffer-bound violations recorded by a test's sampler. */
  readonly boundViolations: string[] = [];
  /** Segments B's side received before B existed answered by RST (none expected). */
  resets = 0;

  constructor(readonly opts: PairOptions) {
    this.rng = new Rng(opts.seed);
    this.sched = simScheduler(this.sim);
    if (opts.transport === 'frames') {
      this.frames = new FrameTransport(this.sim, this.rng.fork('frames'), toSpec(opts.impAtoB), toSpec(opts.impBtoA), opts.capture ?? false, opts.keepLog ?? false);
      this.ab = this.frames.ab;
      this.ba = this.frames.ba;
    } else {
      this.ab = new SegmentPipe(this.sim, this.rng.fork('ab'), opts.impAtoB ?? {}, opts.keepLog);
      this.ba = new SegmentPipe(this.sim, this.rng.fork('ba'), opts.impBtoA ?? {}, opts.keepLog);
    }
    const mkApp = (label: string, total: number): EndApp => ({
      source: new StreamSource(`${opts.seed}/${label}`, total), received: createHash('sha256'), receivedBytes: 0,
      pending: new Uint8Array(0), closeWhenDone: opts.closeWhenDone ?? true, events: [], peerFin: false, closed: false,
      readChunk: 0, paused: false, closeOnPeerFin: false,
    });
    this.appA = mkApp('a', opts.bytesAtoB ?? 0);
    this.appB = mkApp('b', opts.bytesBtoA ?? 0);
    this.ba.receiver = (seg) => this.a.input(seg);
    this.ab.receiver = (seg) => this.deliverToB(seg);
  }

  private deliverToB(seg: TcpSegment): void {
    if (!this.b) {
      const isn = this.rng.nextU32();
      const conn = TcpConnection.accept({ config: { ...this.opts.config, ...this.opts.configB }, localPort: 80, remotePort: 40000, iss: isn, now: this.sim.now, syn: seg, tsOffset: this.rng.nextU32() });
      this.b = this.attach(conn, this.appB, this.ba);
      return;
    }
    if (this.b.conn.state === TcpState.Closed) {
      const rst = TcpConnection.resetFor(seg);
      if (rst && !(seg.flags & TCP_RST)) this.resets++;
      return;
    }
    this.b.input(seg);
  }

  /** Attach a driver + application to a connection (also used after an export/import move). */
  attach(conn: TcpConnection, app: EndApp, out: Pipe): ConnectionDriver {
    // Run application reactions after the driver finished flushing: never re-enter the engine
    // from inside its own sinks.
    const later = (fn: () => void): void => { this.sim.schedule(this.sim.now, fn); };
    const driver: ConnectionDriver = new ConnectionDriver(conn, this.sched, {
      segments: (segs) => { for (const s of segs) out.send(s); },
      events: (evs) => {
        app.events.push(...evs);
        for (const e of evs) {
          if (e.type === 'connected' || e.type === 'writable' || e.type === 'acked') later(() => this.pump(driver, app));
          if (e.type === 'readable') later(() => this.drain(driver, app));
          if (e.type === 'peer-fin') {
            app.peerFin = true;
            later(() => this.drain(driver, app));
            if (app.closeOnPeerFin) {
              app.closeWhenDone = true;
              later(() => this.pump(driver, app));
            }
          }
          if (e.type === 'closed') { app.closed = true; app.error = e.error; }
        }
      },
    });
    return driver;
  }

  start(): void {
    const conn = TcpConnection.connect({ config: { ...this.opts.config, ...this.opts.configA }, localPort: 40000, remotePort: 80, iss: this.rng.nextU32(), now: this.sim.now, tsOffset: this.rng.nextU32() });
    this.a = this.attach(conn, this.appA, this.ab);
  }

  pump(d: ConnectionDriver, app: EndApp): void {
    if (d.isStopped) return;
    const c = d.conn;
    if (!c.isSynchronized && c.state !== TcpState.SynRcvd) return;
    if (c.state === TcpState.SynRcvd) return;
    for (let guard = 0; guard < 10_000; guard++) {
      if (app.pending.length === 0) {
        if (app.source.done) break;
        app.pending = app.source.next(64 * 1024);
      }
      if (c.state !== TcpState.Established && c.state !== TcpState.CloseWait) return;
      const n = d.run((conn, now) => conn.write(app.pending, now));
      app.pending = app.pending.subarray(n);
      if (n === 0) return;
    }
    if (app.source.done && app.pending.length === 0 && app.closeWhenDone && (c.state === TcpState.Established || c.state === TcpState.CloseWait)) {
      d.run((conn, now) => conn.close(now));
    }
  }

  drain(d: ConnectionDriver, app: EndApp): void {
    if (d.isStopped || app.paused) return;
    for (;;) {
      const chunk = d.run((conn, now) => conn.read(app.readChunk || 1 << 30, now));
      if (chunk.length === 0) break;
      app.received.update(chunk);
      app.receivedBytes += chunk.length;
      if (app.readChunk) {
        // A slow reader keeps reading a little every millisecond while data is waiting.
        if (d.conn.readable > 0) this.sim.after(1, () => this.drain(d, app));
        break;
      }
    }
  }

  /** Replace a side's engine by a fresh one imported from its export (a simulated hand-over). */
  move(side: 'a' | 'b', includePrivate: boolean): void {
    const d = side === 'a' ? this.a : this.b;
    if (!d || d.isStopped) return;
    const app = side === 'a' ? this.appA : this.appB;
    const out = side === 'a' ? this.ab : this.ba;
    const exp = d.run((conn, now) => conn.export(now, { includePrivate }));
    d.stop();
    const fresh = TcpConnection.import(exp, { config: d.conn.config, localPort: d.conn.localPort, remotePort: d.conn.remotePort, now: this.sim.now });
    const nd = this.attach(fresh, app, out);
    if (side === 'a') this.a = nd; else this.b = nd;
  }
}

function toSpec(imp: PipeImpairments | undefined): ImpairSpec {
  if (!imp) return {};
  return { loss: imp.loss, duplicate: imp.duplicate, reorder: imp.reorder, reorderDelayMs: 5, delayMs: imp.delayMs, jitterMs: imp.jitterMs, rateBps: imp.rateBps };
}

export function digestOf(h: Hash): string {
  return h.copy().digest('hex');
}
