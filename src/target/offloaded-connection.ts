/**
 * One offloaded TCP connection inside the target: the engine (imported from the host's delegated
 * state), its send requests, its receive delivery, and the rules of spec sections 3-6 that tie
 * them to the host: completions, indications, events, disconnect, forward, query and terminate.
 * Sans-I/O: segments leave through `sinks.segments`, messages through `sinks.host`, time through
 * the injected scheduler.
 */
import { TcpConnection } from '../tcp/connection.js';
import { ConnectionDriver, type Scheduler } from '../tcp/driver.js';
import { FIN_QUEUED_STATES, FIN_RECEIVED_STATES, OFFLOADABLE_STATES, TcpState as EngineState, type TcpConfig, type TcpEvent, type TcpExport } from '../tcp/types.js';
import { cloneSegment, type TcpSegment } from '../wire/tcp-segment.js';
import type { BufferLedger } from '../chimney/buffer-ledger.js';
import { ReceiveDelivery, type ReceivePost } from '../chimney/delivery.js';
import type { TargetMessage } from '../ipc/messages.js';
import { SendRequestQueue, type TerminateSendMode } from '../chimney/send-queue.js';
import {
  BACKLOG_UNSUPPORTED, TCP_CACHED_FLAG, TCP_CONST_FLAG, TcpEventType, UploadReason,
  type LentBuffer, type SendChainEntry, type TcpCached, type TcpConst, type TcpDelegated, type TcpState,
} from '../chimney/state.js';
import { Status } from '../chimney/status.js';

/** Adapter-wide parameters (spec 2.8), set by the host at bind time. */
export interface TargetParameters {
  ticksPerSecond: number;
  tcpAckFrequency: number;
  tcpDelayedAckTicks: number;
  tcpMaximumRetransmissions: number;
  tcpDoubtReachabilityRetransmissions: number;
  tcpSwsPreventionTicks: number;
  tcpDuplicateAckThreshold: number;
  tcpPushTicks: number;
  nceStaleTicks: number;
}

export const DEFAULT_PARAMETERS: TargetParameters = {
  ticksPerSecond: 1000,
  tcpAckFrequency: 2,
  tcpDelayedAckTicks: 40,
  tcpMaximumRetransmissions: 15,
  tcpDoubtReachabilityRetransmissions: 3,
  tcpSwsPreventionTicks: 1000,
  tcpDuplicateAckThreshold: 3,
  tcpPushTicks: 500,
  nceStaleTicks: 30_000,
};

export interface ConnectionSinks {
  /** Segments for the wire (the target frames them with the path and neighbor state). */
  segments(segs: TcpSegment[]): void;
  /** Messages for the host, in causal order. */
  host(msg: TargetMessage): void;
  /** Forward progress (new data acknowledged, or in-sequence data received): spec 5.3. */
  progress?(): void;
}


export interface OffloadOptions {
  ctx: number;
  handle: number;
  state: TcpState;
  params: TargetParameters;
  /** MSS that fits the path MTU (PathMtu - IP header - TCP header). */
  pathMss: number;
  scheduler: Scheduler;
  ledger: BufferLedger;
  sinks: ConnectionSinks;
  congestionControl: TcpConfig['congestionControl'];
  /**
   * Hand-over barrier (spec 2.6 note in docs/ipc-protocol.md): how long wire segments wait for the
   * host's first TcpForward after the initiate; 0 processes them at once.
   */
  forwardWaitMs?: number;
}

/** Wire segments a fresh connection queues at most while it waits for the host's forward. */
const FORWARD_WAIT_MAX_SEGMENTS = 4096;

/** The engine configuration the chimney state and parameters imply. */
export function engineConfigFor(state: TcpState, params: TargetParameters, pathMss: number, cc: TcpConfig['congestionControl']): Partial<TcpConfig> {
  const msPerTick = 1000 / params.ticksPerSecond;
  const k = state.const;
  const c = state.cached;
  return {
    mss: pathMss,
    timestamps: (k.flags & TCP_CONST_FLAG.TIMESTAMP_ENABLED) !== 0,
    sack: (k.flags & TCP_CONST_FLAG.SACK_ENABLED) !== 0,
    windowScaling: (k.flags & TCP_CONST_FLAG.WINDOW_SCALING_ENABLED) !== 0,
    nagle: (c.flags & TCP_CACHED_FLAG.NAGLING_ENABLED) !== 0,
    receiveBufferSize: c.initialRcvWnd,
    // The target must accept every send request (R67): the global memory budget limits it instead.
    sendBufferSize: 0x7fffffff,
    delayedAckMs: params.tcpDelayedAckTicks * msPerTick,
    ackFrequency: params.tcpAckFrequency,
    maxRetransmissions: params.tcpMaximumRetransmissions,
    maxRetransmitTimeMs: maxRtMs(c.maxRt, msPerTick),
    keepalive: {
      enabled: (c.flags & TCP_CACHED_FLAG.KEEP_ALIVE_ENABLED) !== 0,
      idleMs: Math.max(1, c.kaTimeout * msPerTick),
      intervalMs: Math.max(1, c.kaInterval * msPerTick),
      probes: c.kaProbeCount,
    },
    congestionControl: cc,
    // R1/R115: a target never ends a connection on its own; it reports and asks for the upload.
    onTimeout: 'report',
    finWait2TimeoutMs: 120_000,
    // Spec 4.8 (R112/R113): at most one challenge ACK per 3 s.
    challengeAckIntervalMs: 3000,
    // Spec 4.8 blind-reset mitigation: probe within 5 min of a suspicious RST/SYN; zeros: 10 x 1 s.
    blindResetKeepalive: {
      idleMs: 300_000,
      intervalMs: c.kaInterval > 0 ? c.kaInterval * msPerTick : 1000,
      probes: c.kaProbeCount > 0 ? c.kaProbeCount : 10,
    },
  };
}

/** Chimney MaxRT (ticks): 0 = use TcpMaximumRetransmissions, 0xFFFFFFFF = no limit. */
function maxRtMs(maxRt: number, msPerTick: number): number {
  if (maxRt === 0) return 0;
  if (maxRt >= 0xffffffff) return Infinity;
  return maxRt * msPerTick;
}

/** The engine export a chimney TCP state describes (initiate direction, spec 6.10). */
export function exportFromChimney(state: TcpState): TcpExport {
  const d = state.delegated;
  const k = state.const;
  const sendData = (d.sendChain ?? []).map((e) => e.bytes ?? new Uint8Array(0));
  return {
    const: {
      timestamps: (k.flags & TCP_CONST_FLAG.TIMESTAMP_ENABLED) !== 0,
      sack: (k.flags & TCP_CONST_FLAG.SACK_ENABLED) !== 0,
      windowScaling: (k.flags & TCP_CONST_FLAG.WINDOW_SCALING_ENABLED) !== 0,
      sndWindScale: k.sndWindScale,
      rcvWindScale: k.rcvWindScale,
      remoteMss: k.remoteMss,
    },
    delegated: { ...d },
    sendData,
    finQueued: FIN_QUEUED_STATES.has(d.state),
    // The host's BufferedData is held by the delivery algorithm, not the engine (R48).
    receiveData: [],
    finReceived: FIN_RECEIVED_STATES.has(d.state),
  };
}

/** Why an initiate of this TCP state must be refused, or undefined. */
export function checkOffloadable(state: TcpState): { status: number; problem: string } | undefined {
  const d = state.delegated;
  if (!OFFLOADABLE_STATES.has(d.state)) return { status: Status.FAILURE, problem: `state ${EngineState[d.state] ?? d.state} cannot be offloaded (R54)` };
  const chain = d.sendChain ?? [];
  if (chain.some((e) => e.bytes === undefined)) return { status: Status.FAILURE, problem: 'send chain entry without bytes at initiate' };
  if (chain.length > 0 && (d.sendDataHead !== chain[0].bufferId || d.sendDataTail !== chain[chain.length - 1].bufferId)) {
    return { status: Status.FAILURE, problem: 'SendDataHead/SendDataTail do not name the first/last chain buffer' };
  }
  if (new Set(chain.map((e) => e.bufferId)).size !== chain.length) return { status: Status.FAILURE, problem: 'duplicate buffer id in the send chain' };
  return undefined;
}

/** Shortest time between two send-backlog indications (R81 throttle). */
export const BACKLOG_INTERVAL_MS = 1000;

interface PendingDisconnect {
  requestId: number;
  length: number;
}

export type ConnectionPhase = 'live' | 'terminating' | 'gone';

export class OffloadedConnection {
  readonly ctx: number;
  readonly handle: number;
  const: TcpConst;
  cached: TcpCached;
  private readonly engine: TcpConnection;
  private readonly driver: ConnectionDriver;
  private readonly sendQueue = new SendRequestQueue();
  readonly delivery: ReceiveDelivery;
  private readonly sinks: ConnectionSinks;
  private readonly scheduler: Scheduler;
  private readonly msPerTick: number;
  private pushTimer: unknown;
  private pushTimerAt: number | undefined;
  private disconnect: PendingDisconnect | undefined;
  /** Set once the target asked for the upload with a mandatory reason (R31/R32). */
  uploadRequested = false;
  /** An acceptable RST arrived or the host aborted (R111, R84). */
  aborted = false;
  /** Invalidated (directly or through its path/neighbor): no more transmission (R64). */
  invalidated = false;
  /** Spec 4.8 in-order SYN (R113): the connection is dead and is uploaded in Closed state. */
  forcedClosed = false;
  phase: ConnectionPhase = 'live';
  /**
   * Right after the import, segments the host received during the initiate are still on their way
   * here (it forwards them after InitiateOffloadComplete). Wire segments wait for them, or the
   * engine would see a hole and answer with duplicate ACKs that make the peer retransmit.
   */
  private forwardWait: { queue: TcpSegment[]; timer: unknown; startPending?: boolean } | undefined;
  /** The held segments were replayed from the ring: the host's forwards before its barrier repeat them. */
  private replayed = false;
  /** Sends completed with SUCCESS / chained / completed otherwise, for the ownership ledger. */
  readonly counters = { sendsCompleted: 0, receivesCompleted: 0, indications: 0, segmentsIn: 0 };

  constructor(o: OffloadOptions) {
    this.ctx = o.ctx;
    this.handle = o.handle;
    this.const = o.state.const;
    this.cached = o.state.cached;
    this.sinks = o.sinks;
    this.scheduler = o.scheduler;
    this.msPerTick = 1000 / o.params.ticksPerSecond;
    const exp = exportFromChimney(o.state);
    this.engine = TcpConnection.import(exp, {
      config: engineConfigFor(o.state, o.params, o.pathMss, o.congestionControl),
      localPort: o.state.const.localPort,
      remotePort: o.state.const.remotePort,
      now: o.scheduler.now(),
      msPerTick: this.msPerTick,
    });
    this.progressMark = { una: this.engine.sndUna, rcv: this.engine.rcvNxt };
    this.backlogTold = this.sendBacklog();
    this.backlogToldAt = o.scheduler.now();
    // The initiate chain is posted before any later send (R50).
    for (const e of o.state.delegated.sendChain ?? []) this.sendQueue.push(e.bufferId, e.bytes!.length);
    const engine = this.engine;
    this.delivery = new ReceiveDelivery({
      source: {
        get available() { return engine.readable; },
        take: (max) => engine.takeReceived(max, this.scheduler.now()),
        get lastPush() { return engine.readablePush; },
      },
      ledger: o.ledger,
      owner: o.ctx,
      rcvIndicationSize: o.state.cached.rcvIndicationSize,
      pushTimeoutMs: o.params.tcpPushTicks * this.msPerTick,
    });
    if (o.state.delegated.bufferedData && o.state.delegated.bufferedData.length > 0) {
      this.delivery.seedHeld(o.state.delegated.bufferedData.slice()); // copied (R47)
    }
    this.driver = new ConnectionDriver(this.engine, o.scheduler, {
      // Progress is reported before the output it may accompany (the reachability check, 5.3).
      segments: (segs) => { this.checkProgress(); if (!this.invalidated && !this.forcedClosed) this.sinks.segments(segs); },
      events: (evs) => { this.checkProgress(); this.onEngineEvents(evs); },
    });
    this.afterDelivery();
    if ((o.forwardWaitMs ?? 0) > 0) {
      this.forwardWait = { queue: [], timer: o.scheduler.schedule(o.scheduler.now() + o.forwardWaitMs!, () => this.endForwardWait()) };
      // The acknowledgments of the wait are queued or being forwarded: a retransmission timeout
      // now would resend data the peer already has (seen under load: a 4 MB go-back-N storm).
      this.driver.holdTimers(true);
    }
  }

  /**
   * Called once the target has registered the connection (its segments can be framed): spec
   * 3.2.5/3.6 (R49) send the handed-over data at once, [SndNxt, SndMax) first, and a timer delta
   * of 0 fires now. The import alone produces no output.
   */
  start(): void {
    // Behind the hand-over barrier the peer's latest ACKs may still be on their way: a timer the
    // host exported as due would resend acknowledged data. It runs when the wait ends.
    if (this.forwardWait !== undefined) {
      this.forwardWait.startPending = true;
      return;
    }
    this.driver.run((c, now) => {
      c.onTimer(now);
      c.announceWindow(now);
    });
  }

  get state(): EngineState {
    return this.engine.state;
  }

  get connection(): TcpConnection {
    return this.engine;
  }

  // ------------------------------------------------------------------------------ wire input

  /** A segment of this connection from the wire (or forwarded by the host). */
  input(seg: TcpSegment): void {
    if (this.phase !== 'live' || this.aborted) return;
    const w = this.forwardWait;
    if (w !== undefined) {
      w.queue.push(cloneSegment(seg)); // the caller's segment is a view into a reused frame buffer
      if (w.queue.length >= FORWARD_WAIT_MAX_SEGMENTS) this.endForwardWait();
      return;
    }
    this.counters.segmentsIn++;
    this.driver.input(seg);
  }

  /** True while wire segments wait for the host's first forward. */
  get awaitingForward(): boolean {
    return this.forwardWait !== undefined;
  }

  /**
   * The segments the host holds for this connection, replayed by the target from its RawFrame
   * ring (RawFramesSeen): processed now, before any wire segment, so the connection need not wait
   * for the host's forward; the host's forwards of the same segments are then skipped.
   */
  replayHeld(segs: readonly TcpSegment[]): void {
    if (this.phase !== 'live' || this.forwardWait === undefined) return;
    this.replayed = true;
    for (const seg of segs) {
      this.counters.segmentsIn++;
      this.driver.input(seg);
    }
    this.endForwardWait();
  }

  private dropForwardWait(): void {
    if (this.forwardWait !== undefined) this.scheduler.cancel(this.forwardWait.timer);
    this.forwardWait = undefined;
    this.driver.holdTimers(false);
  }

  /** The host's forward arrived (or the wait timed out): process what waited, in arrival order. */
  private endForwardWait(): void {
    const w = this.forwardWait;
    if (w === undefined) return;
    this.forwardWait = undefined;
    this.scheduler.cancel(w.timer);
    for (const seg of w.queue) this.input(seg);
    if (w.startPending && this.phase === 'live' && !this.aborted) this.start();
    this.driver.holdTimers(false);
  }

  // ------------------------------------------------------------------------------ host requests

  send(buffers: ReadonlyArray<{ requestId: number; bytes: Uint8Array }>): void {
    const refuse = this.aborted ? Status.REQUEST_ABORTED : this.uploadRequested || this.phase !== 'live' ? Status.UPLOAD_IN_PROGRESS : undefined;
    if (refuse !== undefined || this.disconnect) {
      const status = refuse ?? Status.INVALID_STATE;
      this.sinks.host({ type: 'TcpSendComplete', entries: buffers.map((b) => ({ ctx: this.ctx, requestId: b.requestId, status, bytesTransferred: 0 })) });
      return;
    }
    for (const b of buffers) {
      this.sendQueue.push(b.requestId, b.bytes.length);
      this.driver.run((c, now) => c.write(b.bytes, now));
    }
  }

  hasSendRequest(requestId: number): boolean {
    return this.sendQueue.has(requestId);
  }

  receive(requests: readonly ReceivePost[]): void {
    const refuse = this.aborted ? Status.REQUEST_ABORTED : this.uploadRequested || this.phase !== 'live' ? Status.UPLOAD_IN_PROGRESS : undefined;
    if (refuse !== undefined) {
      this.sinks.host({ type: 'TcpReceiveComplete', entries: requests.map((r) => ({ ctx: this.ctx, requestId: r.requestId, status: refuse, bytesTransferred: 0, bytes: new Uint8Array(0) })) });
      return;
    }
    this.delivery.post(requests, this.scheduler.now());
    this.afterDelivery();
  }

  /** The host's answer to an indication; returns a problem text when the reply is invalid. */
  indicateReply(indicationId: number, status: number, bytesConsumed: number): string | undefined {
    const problem = this.delivery.onIndicateReply(indicationId, status, bytesConsumed, this.scheduler.now());
    this.afterDelivery();
    return problem;
  }

  disconnectRequest(requestId: number, flags: number, bytes: Uint8Array, graceful: boolean): void {
    if (this.aborted || this.uploadRequested || this.phase !== 'live' || this.disconnect) {
      const status = this.aborted ? Status.REQUEST_ABORTED : Status.UPLOAD_IN_PROGRESS;
      this.sinks.host({ type: 'TcpDisconnectComplete', ctx: this.ctx, requestId, status, bytesTransferred: 0 });
      return;
    }
    void flags;
    if (!graceful) {
      // R84/R85: RST, every send aborted, then the disconnect completes; nothing more is acknowledged.
      this.dropForwardWait();
      this.aborted = true; // before the engine's 'closed' event: that is no finished close
      this.driver.run((c, now) => c.abort(now));
      this.completeSends(this.sendQueue.abort());
      this.completeReceives(this.delivery.abort().map((e) => ({ ...e, status: Status.REQUEST_ABORTED })));
      this.sinks.host({ type: 'TcpDisconnectComplete', ctx: this.ctx, requestId, status: Status.SUCCESS, bytesTransferred: 0 });
      this.stopPushTimer();
      return;
    }
    // R82: earlier data, then this data, then FIN, without waiting for acknowledgments.
    this.disconnect = { requestId, length: bytes.length };
    this.driver.run((c, now) => {
      if (bytes.length > 0) c.write(bytes, now);
      c.close(now);
    });
  }

  forward(segments: ReadonlyArray<{ requestId: number; segment: TcpSegment | undefined }>): Array<{ ctx: number; requestId: number; status: number }> {
    // Replayed already (replayHeld): the same segments again, processed once, so completed as such.
    const repeat = this.replayed;
    if (segments.length === 0) this.replayed = false;
    const results = segments.map(({ requestId, segment }) => {
      if (repeat) return { ctx: this.ctx, requestId, status: Status.SUCCESS };
      if (this.aborted) return { ctx: this.ctx, requestId, status: Status.REQUEST_ABORTED };
      if (this.phase !== 'live' || this.uploadRequested) return { ctx: this.ctx, requestId, status: Status.UPLOAD_IN_PROGRESS };
      if (segment) this.driver.input(segment);
      return { ctx: this.ctx, requestId, status: Status.SUCCESS };
    });
    // An empty forward ends the hand-over barrier: everything the host held was forwarded before
    // it and is older than anything that waited here, which is processed now.
    if (segments.length === 0) this.endForwardWait();
    return results;
  }

  /** CACHED update (spec 2.2; R57, R59, R60). */
  update(cached: TcpCached): void {
    const old = this.cached;
    this.cached = cached;
    const ka = (cached.flags & TCP_CACHED_FLAG.KEEP_ALIVE_ENABLED) !== 0;
    const restart = (cached.flags & (TCP_CACHED_FLAG.KEEP_ALIVE_RESTART | TCP_CACHED_FLAG.MAX_RT_RESTART)) !== 0 &&
      (cached.kaTimeout !== old.kaTimeout || cached.kaInterval !== old.kaInterval || cached.kaProbeCount !== old.kaProbeCount || (cached.flags & TCP_CACHED_FLAG.KEEP_ALIVE_RESTART) !== 0);
    this.driver.run((c, now) => c.updateSettings({
      nagle: (cached.flags & TCP_CACHED_FLAG.NAGLING_ENABLED) !== 0,
      keepalive: { enabled: ka, idleMs: Math.max(1, cached.kaTimeout * this.msPerTick), intervalMs: Math.max(1, cached.kaInterval * this.msPerTick), probes: cached.kaProbeCount },
      receiveBufferSize: (cached.flags & TCP_CACHED_FLAG.UPDATE_RCV_WND) !== 0 ? cached.initialRcvWnd : undefined,
      restartKeepalive: restart,
      maxRetransmitTimeMs: maxRtMs(cached.maxRt, this.msPerTick),
      resetTotalRetransmitTime: (cached.flags & TCP_CACHED_FLAG.MAX_RT_RESTART) !== 0, // R60
    }, now));
  }

  setPathMss(mss: number): void {
    this.driver.run((c) => c.setPathMtu(mss + 40, 20));
  }

  /** Invalidate (R64, R65): stop transmitting at once and ask for the upload. */
  invalidate(): void {
    if (this.invalidated) return;
    this.invalidated = true;
    this.requestUpload(UploadReason.InvalidState);
  }

  /** Current values of every variable (query, R62); changes nothing. */
  query(): TcpState {
    const exp = this.engine.export(this.scheduler.now(), { msPerTick: this.msPerTick, flushAck: false });
    const delegated: TcpDelegated = {
      ...exp.delegated, flags: 0, dWnd: 0,
      ...(this.forcedClosed ? { state: EngineState.Closed } : {}),
      sendBacklogSize: this.sendBacklog(),
      receiveBacklogSize: this.delivery.undeliveredBytes + this.engine.readable,
    };
    if (delegated.sendBacklogSize === undefined) delegated.sendBacklogSize = BACKLOG_UNSUPPORTED;
    return { const: this.const, cached: this.cached, delegated };
  }

  // ------------------------------------------------------------------------------ terminate

  /** Whether a terminate can complete now (no indication awaiting its reply: R22). */
  get canCompleteTerminate(): boolean {
    return !this.delivery.busy;
  }

  /** Enter the terminate: no more TCP processing or transmission (R23, spec 6.2 step 1). */
  beginTerminate(): void {
    if (this.phase !== 'live') return;
    // Segments that arrived before the terminate are the connection's: processed, not lost.
    this.endForwardWait();
    this.phase = 'terminating';
    this.delivery.beginTerminate();
    this.stopPushTimer();
    // Spec 6.2 step 2 comes before the wait for indication replies (step 7): the pending delayed
    // ACK goes now, not a round trip later (R19), or the peer's probe timer may fire meanwhile.
    this.driver.run((c, now) => c.sendPendingAck(now));
    // Spec 6.2 step 1: no more transmission either (no retransmission, probe or keepalive while
    // the terminate waits, e.g. for an IndicateReply).
    this.driver.holdTimers(true);
  }

  /**
   * Complete the terminate (spec 6.2 steps 2-11): flush the delayed ACK, drop out-of-order data,
   * deliver into posted requests, complete every request, dispose of send data, and return the
   * delegated state with the chain and the lent BufferedData. Host messages for completions are
   * emitted before this returns; the caller then sends the terminate completion.
   */
  finishTerminate(mode: TerminateSendMode, ledger: BufferLedger): TcpDelegated {
    const now = this.scheduler.now();
    // Step 4-5: deliver what posted requests can take; complete them all (R20).
    const del = this.delivery.terminate(now);
    if (del.completions.length > 0) this.completeReceives(del.completions);
    // Step 6: send data (R6-R14); the disconnect completes after the sends (R21).
    const sends = this.aborted ? { completions: [], chain: [] } : this.sendQueue.terminate(mode);
    this.completeSends(sends.completions);
    if (this.disconnect) {
      const acked = this.engine.export(now, { msPerTick: this.msPerTick, flushAck: false }).sendData.length === 0 && this.sendQueue.outstandingBytes === 0;
      this.sinks.host({ type: 'TcpDisconnectComplete', ctx: this.ctx, requestId: this.disconnect.requestId, status: Status.UPLOAD_IN_PROGRESS, bytesTransferred: acked ? this.disconnect.length : 0 });
      this.disconnect = undefined;
    }
    // Steps 2-3 and 8: the export sends the pending ACK (R19) and leaves out-of-order data out (R18).
    const exp = this.driver.run((c, t) => c.export(t, { msPerTick: this.msPerTick }));
    this.driver.stop();
    const remaining = concatAll([del.remaining, ...exp.receiveData]);
    const buffered: LentBuffer[] = [];
    for (let off = 0; off < remaining.length; off += 1 << 20) {
      const bytes = remaining.slice(off, Math.min(remaining.length, off + (1 << 20)));
      buffered.push({ bufferId: ledger.lend(bytes, this.ctx), bytes });
    }
    const chain: SendChainEntry[] = sends.chain.map((c) => ({ bufferId: c.bufferId, ackedBytes: c.ackedBytes }));
    this.phase = 'gone';
    return {
      ...exp.delegated,
      ...(this.forcedClosed ? { state: EngineState.Closed } : {}),
      flags: 0,
      dWnd: 0,
      sendChain: chain,
      sendDataHead: chain.length > 0 ? chain[0].bufferId : undefined,
      sendDataTail: chain.length > 0 ? chain[chain.length - 1].bufferId : undefined,
      bufferedBuffers: buffered,
    };
  }

  /** The host binding is gone: abort (RST) and drop everything (issue 4, item 3). */
  destroy(): void {
    if (this.phase === 'gone') return;
    this.dropForwardWait();
    if (this.engine.isSynchronized) this.driver.run((c, now) => c.abort(now));
    this.driver.stop();
    this.stopPushTimer();
    this.phase = 'gone';
  }

  // ------------------------------------------------------------------------------ internals

  private progressMark: { una: number; rcv: number } | undefined;
  /** Last send backlog told to the host (or assumed at offload) and when (R81). */
  private backlogTold = 0;
  private backlogToldAt = 0;

  /** Spec 3.4: the send data worth keeping outstanding here: min(cwnd, peer window), >= 1 MSS. */
  sendBacklog(): number {
    return Math.floor(Math.min(Math.max(this.engine.cwnd, this.engine.mss), this.engine.sndWnd || this.engine.cwnd)); // CUBIC cwnd is fractional; the field is u32
  }

  /**
   * R81: TcpIndicateSendBacklogChange, throttled: only for a change of at least a quarter (and two
   * segments), and at most one per BACKLOG_INTERVAL_MS.
   */
  private checkBacklog(): void {
    const now = this.scheduler.now();
    const b = this.sendBacklog();
    const delta = Math.abs(b - this.backlogTold);
    if (now - this.backlogToldAt < BACKLOG_INTERVAL_MS || delta < Math.max(this.backlogTold / 4, 2 * this.engine.mss)) return;
    this.backlogTold = b;
    this.backlogToldAt = now;
    this.sinks.host({ type: 'TcpEvent', handle: this.handle, eventType: TcpEventType.SendBacklogChange, info: b });
  }

  /** Spec 5.3 forward progress: new data acknowledged by the peer, or new in-sequence data. */
  private checkProgress(): void {
    const una = this.engine.sndUna;
    const rcv = this.engine.rcvNxt;
    const m = this.progressMark;
    this.progressMark = { una, rcv };
    if (m && (m.una !== una || m.rcv !== rcv)) this.sinks.progress?.();
  }

  /**
   * R113 (spec 4.8): a SYN at RcvNxt (or keepalive death) kills the connection: stop processing
   * and sending, report State Closed from now on, and ask for the upload. No RST (R85).
   */
  uploadClosed(reason: UploadReason = UploadReason.UploadRequested): void {
    if (this.forcedClosed) return;
    this.forcedClosed = true;
    this.driver.stop();
    this.stopPushTimer();
    if (!this.uploadRequested) this.requestUpload(reason);
  }

  requestUpload(reason: UploadReason): void {
    this.uploadRequested = true;
    this.sinks.host({ type: 'TcpEvent', handle: this.handle, eventType: TcpEventType.Retrieve, info: reason });
  }

  private onEngineEvents(evs: TcpEvent[]): void {
    for (const e of evs) {
      switch (e.type) {
        case 'acked': {
          this.completeSends(this.sendQueue.onAcked(e.bytes));
          if (this.phase === 'live' && !this.uploadRequested && !this.aborted) this.checkBacklog();
          if (e.finAcked && this.disconnect && this.sendQueue.outstandingRequests === 0) {
            this.sinks.host({ type: 'TcpDisconnectComplete', ctx: this.ctx, requestId: this.disconnect.requestId, status: Status.SUCCESS, bytesTransferred: this.disconnect.length });
            this.disconnect = undefined;
          }
          break;
        }
        case 'readable':
          this.delivery.onData(this.scheduler.now());
          this.afterDelivery();
          break;
        case 'peer-fin':
          this.delivery.onPeerFin(this.scheduler.now());
          this.afterDelivery();
          break;
        case 'timeout':
          // Keepalive death leaves the connection dead: uploaded in Closed state (spec 5.2, R28).
          if (e.reason === 'keepalive') this.uploadClosed(UploadReason.TimeoutExpiration);
          else if (!this.uploadRequested) this.requestUpload(UploadReason.TimeoutExpiration);
          break;
        case 'time-wait':
          if (!this.uploadRequested) this.requestUpload(UploadReason.UploadRequested);
          break;
        case 'closed':
          if (e.error === 'ECONNRESET' || e.error === 'ECONNREFUSED') this.onReset();
          // A close that finished here (LAST_ACK's FIN acknowledged): nothing is left to drive, so
          // offer it back like TIME_WAIT (R117) instead of holding it until the host asks.
          else if (e.error === undefined && !this.aborted && !this.uploadRequested) this.requestUpload(UploadReason.UploadRequested);
          break;
        default:
          break;
      }
    }
  }

  /** R111: acceptable RST: abort indication, every outstanding request aborted, kept until terminated. */
  private onReset(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.sinks.host({ type: 'TcpEvent', handle: this.handle, eventType: TcpEventType.Abort, info: 0 });
    this.completeSends(this.sendQueue.abort());
    this.completeReceives(this.delivery.abort());
    if (this.disconnect) {
      this.sinks.host({ type: 'TcpDisconnectComplete', ctx: this.ctx, requestId: this.disconnect.requestId, status: Status.REQUEST_ABORTED, bytesTransferred: 0 });
      this.disconnect = undefined;
    }
    this.stopPushTimer();
  }

  private completeSends(list: Array<{ requestId: number; status: number; bytesTransferred: number }>): void {
    if (list.length === 0) return;
    this.counters.sendsCompleted += list.length;
    this.sinks.host({ type: 'TcpSendComplete', entries: list.map((c) => ({ ctx: this.ctx, ...c })) });
  }

  private completeReceives(list: Array<{ requestId: number; status: number; bytes: Uint8Array }>): void {
    if (list.length === 0) return;
    this.counters.receivesCompleted += list.length;
    this.sinks.host({ type: 'TcpReceiveComplete', entries: list.map((c) => ({ ctx: this.ctx, requestId: c.requestId, status: c.status, bytesTransferred: c.bytes.length, bytes: c.bytes })) });
  }

  /** Emit delivery outputs, keep the window reservation exact, re-arm the push timer. */
  private afterDelivery(): void {
    for (const out of this.delivery.take()) {
      if (out.type === 'complete') this.completeReceives(out.entries);
      else if (out.type === 'indicate') {
        this.counters.indications++;
        this.sinks.host({ type: 'TcpReceiveIndicate', handle: this.handle, indicationId: out.indicationId, bufferId: out.bufferId, bytes: out.bytes });
      } else {
        this.sinks.host({ type: 'TcpEvent', handle: this.handle, eventType: TcpEventType.Disconnect, info: 0 });
      }
    }
    if (this.phase === 'live') {
      this.driver.run((c, now) => c.setReceiveReserved(this.delivery.undeliveredBytes, now));
      this.armPushTimer();
    }
  }

  private armPushTimer(): void {
    const at = this.delivery.pushDeadline;
    if (at === this.pushTimerAt) return;
    this.stopPushTimer();
    if (at === undefined) return;
    this.pushTimerAt = at;
    this.pushTimer = this.scheduler.schedule(at, () => {
      this.pushTimer = undefined;
      this.pushTimerAt = undefined;
      this.delivery.onTimer(this.scheduler.now());
      this.afterDelivery();
    });
  }

  private stopPushTimer(): void {
    if (this.pushTimer !== undefined) this.scheduler.cancel(this.pushTimer);
    this.pushTimer = undefined;
    this.pushTimerAt = undefined;
  }
}

function concatAll(parts: readonly Uint8Array[]): Uint8Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
