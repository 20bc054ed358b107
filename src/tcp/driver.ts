/**
 * Binds one sans-I/O TcpConnection to a scheduler: after every call into the engine it hands the
 * produced segments and events on and re-arms a single timer at the engine's next deadline. The
 * scheduler is injected (virtual clock in simulation, wall clock in the services), so this stays
 * free of I/O.
 */
import type { TcpSegment } from '../wire/tcp-segment.js';
import type { TcpConnection } from './connection.js';
import type { TcpEvent } from './types.js';

export interface Scheduler {
  now(): number;
  /** Run `fn` at absolute time `atMs` (or as soon as possible when in the past). */
  schedule(atMs: number, fn: () => void): unknown;
  cancel(handle: unknown): void;
}

export interface DriverSinks {
  /** Segments to put on the wire, in order. */
  segments(segs: TcpSegment[], conn: TcpConnection): void;
  /** Engine events, in order. */
  events(evs: TcpEvent[], conn: TcpConnection): void;
}

export class ConnectionDriver {
  private timer: unknown;
  private timerAt: number | undefined;
  private stopped = false;
  private timersHeld = false;

  constructor(
    readonly conn: TcpConnection,
    private readonly scheduler: Scheduler,
    private readonly sinks: DriverSinks,
  ) {
    this.flush();
  }

  /** Call into the engine with the current time, then flush its output and re-arm the timer. */
  run<T>(fn: (conn: TcpConnection, now: number) => T): T {
    const result = fn(this.conn, this.scheduler.now());
    this.flush();
    return result;
  }

  input(seg: TcpSegment): void {
    this.run((c, now) => c.input(seg, now));
  }

  /** Stop driving (the connection was handed elsewhere or is gone). Output already taken stays sent. */
  stop(): void {
    this.stopped = true;
    this.disarm();
  }

  /**
   * While held, no timer fires (deadlines stay in the engine); releasing arms the earliest one,
   * at once when it is overdue. For a connection whose acknowledgments are known to be on their
   * way (e.g. queued behind a hand-over): a retransmission now would resend acknowledged data.
   */
  holdTimers(held: boolean): void {
    if (this.timersHeld === held) return;
    this.timersHeld = held;
    if (held) this.disarm();
    else this.flush();
  }

  private disarm(): void {
    if (this.timer !== undefined) this.scheduler.cancel(this.timer);
    this.timer = undefined;
    this.timerAt = undefined;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  flush(): void {
    if (this.stopped) return;
    const segs = this.conn.takeOutput();
    if (segs.length > 0) this.sinks.segments(segs, this.conn);
    const evs = this.conn.takeEvents();
    if (evs.length > 0) this.sinks.events(evs, this.conn);
    if (this.stopped || this.timersHeld) return;
    const next = this.conn.nextDeadline();
    if (next === this.timerAt) return;
    if (this.timer !== undefined) this.scheduler.cancel(this.timer);
    this.timer = undefined;
    this.timerAt = next;
    if (next !== undefined) {
      this.timer = this.scheduler.schedule(next, () => {
        this.timer = undefined;
        this.timerAt = undefined;
        this.run((c, now) => c.onTimer(now));
      });
    }
  }
}
