/**
 * Binds one TCP engine to the host stack: owns the demux entry and the ConnectionDriver, turns the
 * engine's output into frames (through the stack) and hands its events to an observer (the
 * socket). The engine can be detached (the host stops driving it, e.g. to offload it) and a new
 * engine attached later (e.g. one imported from the state the target gives back).
 */
import { ConnectionDriver, type Scheduler } from '../tcp/driver.js';
import type { ExportOptions, TcpConnection } from '../tcp/connection.js';
import { TcpState, type TcpEvent, type TcpExport } from '../tcp/types.js';
import type { TcpSegment } from '../wire/tcp-segment.js';
import type { DemuxEntry, SegmentHandler, TcpDemux } from './tcp-demux.js';

/** What a connection needs from its stack. */
export interface ConnectionHost {
  readonly scheduler: Scheduler;
  readonly demux: TcpDemux;
  /** Put segments of this connection on the wire, in order. */
  sendSegments(remoteIp: number, segs: readonly TcpSegment[]): void;
  /** The connection left the demux (closed). */
  connectionGone(hc: HostConnection): void;
}

export interface ConnectionObserver {
  /** Engine events, in order. Called from inside the driver: may call back into the engine. */
  onEngineEvents(evs: readonly TcpEvent[]): void;
}

/** Segments for a detached connection nobody took over: dropped and counted. */
export class DiscardHandler implements SegmentHandler {
  dropped = 0;
  input(): void {
    this.dropped++;
  }
}

export class HostConnection implements SegmentHandler {
  readonly entry: DemuxEntry;
  observer: ConnectionObserver | undefined;
  private conn: TcpConnection;
  private driver: ConnectionDriver | undefined;
  private gone = false;

  constructor(
    private readonly host: ConnectionHost,
    remoteIp: number,
    remotePort: number,
    localPort: number,
    conn: TcpConnection,
  ) {
    this.conn = conn;
    this.entry = host.demux.add({ remoteIp, remotePort, localPort, handler: this });
    this.attach(conn);
  }

  get connection(): TcpConnection {
    return this.conn;
  }

  /** False while detached (someone else drives the connection). */
  get attached(): boolean {
    return this.driver !== undefined;
  }

  /** True once the connection closed and left the demux. */
  get closed(): boolean {
    return this.gone;
  }

  input(seg: TcpSegment): void {
    this.driver?.input(seg);
  }

  /** Call into the engine at the scheduler's time, then send its output and handle its events. */
  run<T>(fn: (conn: TcpConnection, now: number) => T): T {
    if (this.driver === undefined) throw new Error('connection is detached');
    return this.driver.run(fn);
  }

  /**
   * Stop driving the engine and give it to the caller. Segments for this 4-tuple go to `handler`
   * until `attach` (default: dropped). Output the engine produced before stays sent.
   */
  detach(handler: SegmentHandler = new DiscardHandler()): TcpConnection {
    if (this.driver === undefined) throw new Error('connection is already detached');
    this.driver.stop();
    this.driver = undefined;
    this.entry.handler = handler;
    return this.conn;
  }

  /** Export the engine's state (its pending ACK is sent first) and detach it. */
  exportAndDetach(opts: ExportOptions = {}, handler?: SegmentHandler): TcpExport {
    const exp = this.run((c, now) => c.export(now, opts));
    this.detach(handler);
    return exp;
  }

  /** Drive `conn` (a fresh one, or one imported from a returned state) from now on. */
  attach(conn: TcpConnection): void {
    if (this.driver !== undefined) throw new Error('connection is already attached');
    if (this.gone) throw new Error('connection is closed');
    this.conn = conn;
    this.entry.handler = this;
    const remoteIp = this.entry.remoteIp;
    this.driver = new ConnectionDriver(conn, this.host.scheduler, {
      segments: (segs) => this.host.sendSegments(remoteIp, segs),
      events: (evs, c) => this.onEvents(evs, c),
    });
    // An imported engine may already be closed (e.g. it timed out while offloaded).
    if (conn.state === TcpState.Closed) this.leave();
  }

  /** A detached connection that ended elsewhere (reset while offloaded): leave the demux. */
  release(): void {
    if (this.driver !== undefined) throw new Error('connection is attached');
    this.leave();
  }

  private onEvents(evs: readonly TcpEvent[], c: TcpConnection): void {
    if (c !== this.conn) return;
    if (evs.some((e) => e.type === 'closed')) this.leave();
    this.observer?.onEngineEvents(evs);
  }

  private leave(): void {
    if (this.gone) return;
    this.gone = true;
    this.driver?.stop();
    this.host.demux.remove(this.entry);
    this.host.connectionGone(this);
  }
}
