/**
 * The TCP engine: one connection, sans-I/O. Segments and the current time go in (`input`,
 * `onTimer`, application calls); segments (`takeOutput`), events (`takeEvents`) and the next timer
 * deadline (`nextDeadline`) come out. No sockets, timers or clocks inside: the caller owns those.
 *
 * RFC 9293 state machine with RFC 5961 protections, RFC 7323 window scaling/timestamps/PAWS,
 * RFC 2018 SACK with D-SACK reports (RFC 2883) and RFC 6675 recovery (NewReno RFC 6582 without
 * SACK), RFC 6298 RTO, delayed ACK, Nagle, SWS avoidance, zero-window probing, keepalive, and
 * state export/import in the chimney split.
 */
import {
  TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN,
  type SackBlock, type TcpOptions, type TcpSegment,
} from '../wire/tcp-segment.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from '../wire/seq.js';
import { ByteQueue } from './byte-queue.js';
import { createCongestionControl } from './cc/index.js';
import type { CongestionControl } from './cc/congestion-control.js';
import { effectiveSendMss, negotiate, synOptions, TS_OPTION_BYTES, type Negotiated } from './negotiation.js';
import { ReassemblyQueue } from './reassembly.js';
import { RtoEstimator } from './rto.js';
import { SackScoreboard } from './sack-scoreboard.js';
import {
  DEFAULT_TCP_CONFIG, TcpState,
  type TcpConfig, type TcpEvent, type TcpExport, type TcpErrorCode,
} from './types.js';

const DUP_THRESH = 3;
/** RFC 7323 5.5: TS.Recent older than 24 days is invalid for PAWS. */
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;
const EMPTY = new Uint8Array(0);

/** Which meaning the single retransmit-timer slot has (chimney 5.4 overloads it the same way). */
type RtxMode = 'rto' | 'persist' | 'fin-wait-2';

export interface TcpStats {
  segmentsIn: number;
  segmentsOut: number;
  bytesIn: number;
  bytesOut: number;
  retransmittedSegments: number;
  retransmittedBytes: number;
  fastRetransmits: number;
  timeouts: number;
  dupAcksIn: number;
  outOfOrderSegments: number;
  challengeAcks: number;
  pawsDrops: number;
  windowProbes: number;
  keepaliveProbes: number;
  droppedUnacceptable: number;
  renegings: number;
  /** ACKs that reported a duplicate segment in a D-SACK block (RFC 2883). */
  dsacksSent: number;
}

export interface ConnectOptions {
  config?: Partial<TcpConfig>;
  localPort: number;
  remotePort: number;
  iss: number;
  now: number;
  /** Offset added to the ms clock for our timestamps (a per-connection random value). */
  tsOffset?: number;
}

export interface AcceptOptions extends ConnectOptions {
  /** The SYN received on the listening port. */
  syn: TcpSegment;
}

export interface ImportOptions {
  config?: Partial<TcpConfig>;
  localPort: number;
  remotePort: number;
  now: number;
  /** Milliseconds per chimney tick (1 for TicksPerSecond = 1000). */
  msPerTick?: number;
}

export interface ExportOptions {
  msPerTick?: number;
  /** Send a pending delayed ACK first (default true; a query must not change anything). */
  flushAck?: boolean;
  /** Include engine-private details for an exact engine-to-engine move. */
  includePrivate?: boolean;
}

function mergeConfig(partial: Partial<TcpConfig> | undefined): TcpConfig {
  const cfg = { ...DEFAULT_TCP_CONFIG, ...partial };
  cfg.keepalive = { ...DEFAULT_TCP_CONFIG.keepalive, ...partial?.keepalive };
  cfg.rto = { ...DEFAULT_TCP_CONFIG.rto, ...partial?.rto };
  return cfg;
}

export class TcpConnection {
  readonly config: TcpConfig;
  readonly localPort: number;
  readonly remotePort: number;

  private _state: TcpState = TcpState.Closed;
  private now = 0;

  // Send sequence space.
  private iss = 0;
  private _sndUna = 0;
  private _sndNxt = 0;
  private _sndMax = 0;
  private _sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private maxSndWnd = 0;
  /** Bytes from sndBufSeq on that the peer has not acknowledged (sent or not). */
  private readonly sndBuf = new ByteQueue();
  private sndBufSeq = 0;
  private finQueued = false;
  /** End of each write (absolute sequence), oldest first: the segment reaching one carries PSH. */
  private pushMarks: number[] = [];
  private sndMss = 536;
  private writableWanted = false;

  // Receive sequence space.
  private irs = 0;
  private _rcvNxt = 0;
  /** rcvNxt + the window we last advertised: never moves left. */
  private advertisedEdge = 0;
  private readonly rcvBuf = new ByteQueue();
  private readonly reasm: ReassemblyQueue;
  private finReceived = false;
  private rcvMss = 536;
  /** Largest payload seen from the peer: "full-sized" for the delayed-ACK rule (Linux rcv_mss). */
  private rcvMssSeen = 0;
  /** PSH bit of the last in-order segment that added readable bytes (chimney delivery, 4.5.4). */
  private lastPush = false;
  /** Bytes taken by `read` that the application has not consumed yet: they keep the window closed. */
  private receiveReserved = 0;

  // Negotiated options.
  private tsEnabled = false;
  private sackEnabled = false;
  private wsEnabled = false;
  private sndWscale = 0;
  private rcvWscale = 0;
  private remoteMss = 536;
  private tsOffset = 0;
  private tsRecent = 0;
  private tsRecentAt = -Infinity;
  private lastAckSent = 0;
  /** RFC 2883: the duplicate range of the latest duplicate segment, first block of the next ACK. */
  private pendingDsack: SackBlock | undefined;

  // RTT, congestion control, recovery.
  private readonly rto: RtoEstimator;
  private cc: CongestionControl;
  private readonly scoreboard = new SackScoreboard();
  private dupAcks = 0;
  private inRecovery = false;
  private recoveryPoint = 0;
  private highRxt = 0;
  private rttSeq: number | undefined;
  private rttSentAt = 0;

  // Timers: absolute deadlines in ms, undefined = not running.
  private rtxDeadline: number | undefined;
  private rtxMode: RtxMode = 'rto';
  private rtCount = 0;
  private retransmitStartedAt: number | undefined;
  private sndWndProbeCount = 0;
  private persistProbeOutstanding = false;
  /** The persist timer fired with a small open window: send a runt despite SWS avoidance. */
  private swsOverride = false;
  private ackDeadline: number | undefined;
  private kaDeadline: number | undefined;
  /** The keepalive timer runs for the blind-reset mitigation (spec 4.8); `kaBlindStarted`: it started it. */
  private kaBlind = false;
  /** Data segments still to be acknowledged at once (no delayed ACK): set after a hand-over. */
  private quickAcks = 0;
  private kaBlindStarted = false;
  private kaProbeCount = 0;
  private twDeadline: number | undefined;
  private timeoutReported = false;

  // Delayed-ACK bookkeeping.
  private ackNow = false;
  private bytesSinceAck = 0;
  private lastChallengeAckAt = -Infinity;

  private output: TcpSegment[] = [];
  private events: TcpEvent[] = [];
  readonly stats: TcpStats = {
    segmentsIn: 0, segmentsOut: 0, bytesIn: 0, bytesOut: 0, retransmittedSegments: 0,
    retransmittedBytes: 0, fastRetransmits: 0, timeouts: 0, dupAcksIn: 0, outOfOrderSegments: 0,
    challengeAcks: 0, pawsDrops: 0, windowProbes: 0, keepaliveProbes: 0, droppedUnacceptable: 0,
    renegings: 0, dsacksSent: 0,
  };

  private constructor(config: Partial<TcpConfig> | undefined, localPort: number, remotePort: number, now: number) {
    this.config = mergeConfig(config);
    this.localPort = localPort;
    this.remotePort = remotePort;
    this.now = now;
    this.rto = new RtoEstimator(this.config.rto);
    this.reasm = new ReassemblyQueue(this.config.reassemblyMaxBytes);
    this.cc = this.newCc(536);
  }

  // ---------------------------------------------------------------------------------------------
  // Construction

  /** A connection about to send its SYN (or SYN-ACK) from `iss`. */
  private static opening(o: ConnectOptions): TcpConnection {
    const c = new TcpConnection(o.config, o.localPort, o.remotePort, o.now);
    c.tsOffset = (o.tsOffset ?? 0) >>> 0;
    c.iss = o.iss >>> 0;
    c._sndUna = c.iss;
    c._sndNxt = c.iss;
    c._sndMax = c.iss;
    c.sndBufSeq = seqAdd(c.iss, 1);
    c.recoveryPoint = c.iss;
    return c;
  }

  /** Active open: sends a SYN. */
  static connect(o: ConnectOptions): TcpConnection {
    const c = TcpConnection.opening(o);
    c._state = TcpState.SynSent;
    c.sendSyn(false);
    return c;
  }

  /** Passive open: a SYN arrived on a listening port; answers with a SYN-ACK. */
  static accept(o: AcceptOptions): TcpConnection {
    const c = TcpConnection.opening(o);
    c.irs = o.syn.seq;
    c._rcvNxt = seqAdd(o.syn.seq, 1);
    c.applyNegotiation(o.syn.options);
    if (c.tsEnabled && o.syn.options.ts) c.setTsRecent(o.syn.options.ts.val);
    c._sndWnd = o.syn.window; // never scaled in a SYN
    c.maxSndWnd = c._sndWnd;
    c.sndWl1 = o.syn.seq;
    c.sndWl2 = c.iss;
    c._state = TcpState.SynRcvd;
    c.sendSyn(true, o.syn.options);
    return c;
  }

  /**
   * The RST to answer a segment that matches no connection (RFC 9293 3.10.7.1), or null for an
   * incoming RST.
   */
  static resetFor(seg: TcpSegment): TcpSegment | null {
    if (seg.flags & TCP_RST) return null;
    const base = { srcPort: seg.dstPort, dstPort: seg.srcPort, window: 0, urgent: 0, options: {}, payload: EMPTY };
    if (seg.flags & TCP_ACK) return { ...base, seq: seg.ack, ack: 0, flags: TCP_RST };
    const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
    return { ...base, seq: 0, ack: seqAdd(seg.seq, len), flags: TCP_RST | TCP_ACK };
  }

  private newCc(mss: number): CongestionControl {
    const iw = Math.min(this.config.initialWindowSegments * mss, Math.max(2 * mss, 14600));
    return createCongestionControl(this.config.congestionControl, { mss, cwnd: iw, ssthresh: 0x7fffffff });
  }

  private applyNegotiation(peer: TcpOptions): void {
    this.applyOptions(negotiate(this.config, peer));
  }

  /** Take on the options both ends use (from a SYN exchange or an imported CONST state). */
  private applyOptions(n: Negotiated): void {
    this.wsEnabled = n.windowScaling;
    this.sndWscale = n.sndWindScale;
    this.rcvWscale = n.rcvWindScale;
    this.tsEnabled = n.timestamps;
    this.sackEnabled = n.sack;
    this.remoteMss = n.remoteMss;
    this.sndMss = effectiveSendMss(this.config, n.remoteMss, n.timestamps);
    this.rcvMss = this.config.mss - (n.timestamps ? TS_OPTION_BYTES : 0);
    this.cc = this.newCc(this.sndMss);
  }

  // ---------------------------------------------------------------------------------------------
  // Accessors

  get state(): TcpState { return this._state; }
  get sndUna(): number { return this._sndUna; }
  get sndNxt(): number { return this._sndNxt; }
  get sndMax(): number { return this._sndMax; }
  get sndWnd(): number { return this._sndWnd; }
  get rcvNxt(): number { return this._rcvNxt; }
  get mss(): number { return this.sndMss; }
  get cwnd(): number { return this.cc.cwnd; }
  get ssthresh(): number { return this.cc.ssthresh; }
  get srttMs(): number | undefined { return this.rto.srtt; }
  get rtoMs(): number { return this.rto.rto; }
  get timestampsEnabled(): boolean { return this.tsEnabled; }
  get sackEnabledNegotiated(): boolean { return this.sackEnabled; }
  get windowScales(): { snd: number; rcv: number } { return { snd: this.sndWscale, rcv: this.rcvWscale }; }
  get remoteMssAnnounced(): number { return this.remoteMss; }
  /** Bytes written and not yet acknowledged (sent or not). */
  get sendQueued(): number { return this.sndBuf.length; }
  /** Bytes the application may still write before the send buffer is full. */
  get sendSpace(): number { return Math.max(0, this.config.sendBufferSize - this.sndBuf.length); }
  /** In-order received bytes not yet read. */
  get readable(): number { return this.rcvBuf.length; }
  /** PSH of the last in-order segment that added readable bytes. */
  get readablePush(): boolean { return this.lastPush; }
  /** True once the peer's FIN has been received in sequence. */
  get peerFinished(): boolean { return this.finReceived; }
  get inLossRecovery(): boolean { return this.inRecovery; }
  get retransmitCount(): number { return this.rtCount; }
  get outOfOrderBytes(): number { return this.reasm.bytes; }
  get isSynchronized(): boolean {
    return this._state !== TcpState.Closed && this._state !== TcpState.Listen && this._state !== TcpState.SynSent && this._state !== TcpState.SynRcvd;
  }

  /** Drain the segments produced since the last call, in transmission order. */
  takeOutput(): TcpSegment[] {
    const out = this.output;
    this.output = [];
    return out;
  }

  takeEvents(): TcpEvent[] {
    const ev = this.events;
    this.events = [];
    return ev;
  }

  /** The earliest timer deadline (ms), or undefined when no timer runs. */
  nextDeadline(): number | undefined {
    let d: number | undefined;
    for (const t of [this.rtxDeadline, this.ackDeadline, this.kaDeadline, this.twDeadline]) {
      if (t !== undefined && (d === undefined || t < d)) d = t;
    }
    return d;
  }

  // ---------------------------------------------------------------------------------------------
  // Application calls

  /** Queue bytes for sending (copied). Returns how many were accepted (send-buffer space). */
  write(data: Uint8Array, now: number): number {
    this.now = now;
    if (this.finQueued || this._state === TcpState.Closed || this._state === TcpState.TimeWait) {
      throw new Error(`write after end (state ${TcpState[this._state]})`);
    }
    const n = Math.min(data.length, this.sendSpace);
    if (n > 0) {
      this.sndBuf.appendCopy(n === data.length ? data : data.subarray(0, n));
      this.pushMarks.push(seqAdd(this.sndBufSeq, this.sndBuf.length));
    }
    if (n < data.length) this.writableWanted = true;
    this.trySend();
    this.flushAck();
    return n;
  }

  /** Read up to `max` in-order bytes. Opens the receive window (a window update may be sent). */
  read(max: number, now: number): Uint8Array {
    this.now = now;
    const before = this.currentWindow();
    const out = this.rcvBuf.shift(max);
    if (out.length > 0) this.updateWindowFrom(before);
    return out;
  }

  /**
   * After an import: the previous owner's advertised window may be far smaller than the room here
   * (its buffer held undelivered data; ours starts empty). Say so now, or the peer waits for its
   * persist timer (a 120-250 ms stall per hand-over was measured without this).
   */
  announceWindow(now: number): void {
    this.now = now;
    this.updateWindowFrom(this.currentWindow());
  }

  /** Window update when the window at least doubles by a segment or more, or reopens from below one MSS. */
  private updateWindowFrom(before: number): void {
    if (!this.isSynchronized) return;
    const avail = this.availableWindow();
    const mss = this.rcvMss;
    if ((before < mss && avail >= mss) || (avail >= 2 * before && avail - before >= mss)) {
      if (this._state === TcpState.Established || this._state === TcpState.FinWait1 || this._state === TcpState.FinWait2) {
        this.ackNow = true;
        this.flushAck();
      }
    }
  }

  /**
   * Bytes read out of the engine but not yet consumed by the application (an offload target's
   * undelivered data): they count against the receive window (chimney 4.6). Lowering it may open
   * the window and send an update.
   */
  setReceiveReserved(bytes: number, now: number): void {
    this.now = now;
    const before = this.currentWindow();
    this.receiveReserved = Math.max(0, bytes);
    if (this.isSynchronized && this.availableWindow() >= before + this.rcvMss && before < this.rcvMss) {
      this.ackNow = true;
      this.flushAck();
    }
  }

  /**
   * Host-owned settings changing mid-connection (chimney CACHED update, spec 2.2): Nagle,
   * keepalive, receive buffer (InitialRcvWnd; a larger one is advertised at once), retransmission
   * limit. `restartKeepalive` restarts the keepalive timer from zero.
   */
  updateSettings(s: {
    nagle?: boolean; keepalive?: Partial<TcpConfig['keepalive']>; receiveBufferSize?: number; maxRetransmissions?: number;
    restartKeepalive?: boolean; maxRetransmitTimeMs?: number; resetTotalRetransmitTime?: boolean;
  }, now: number): void {
    this.now = now;
    if (s.nagle !== undefined) this.config.nagle = s.nagle;
    if (s.maxRetransmitTimeMs !== undefined) this.config.maxRetransmitTimeMs = s.maxRetransmitTimeMs;
    // Chimney MAX_RT_RESTART: TotalRT starts again from zero.
    if (s.resetTotalRetransmitTime && this.retransmitStartedAt !== undefined) this.retransmitStartedAt = now;
    if (s.maxRetransmissions !== undefined) this.config.maxRetransmissions = s.maxRetransmissions;
    if (s.keepalive) {
      const wasEnabled = this.config.keepalive.enabled;
      this.config.keepalive = { ...this.config.keepalive, ...s.keepalive };
      if (!this.config.keepalive.enabled) this.kaDeadline = undefined;
      else if (!wasEnabled || s.restartKeepalive) { this.kaProbeCount = 0; this.kaDeadline = undefined; this.startKeepalive(); }
    } else if (s.restartKeepalive && this.config.keepalive.enabled) {
      this.kaProbeCount = 0;
      this.kaDeadline = undefined;
      this.startKeepalive();
    }
    if (s.receiveBufferSize !== undefined && s.receiveBufferSize !== this.config.receiveBufferSize) {
      const grew = s.receiveBufferSize > this.config.receiveBufferSize;
      this.config.receiveBufferSize = s.receiveBufferSize;
      if (grew && this.isSynchronized) this.ackNow = true; // advertise the new window (R59)
    }
    this.trySend();
    this.flushAck();
  }

  /** The path MTU changed (chimney PathMtu update): the send MSS follows, never above the peer's. */
  setPathMtu(mtu: number, ipHeaderBytes: number): void {
    const mss = Math.min(this.config.mss, Math.max(64, mtu - ipHeaderBytes - 20));
    this.sndMss = effectiveSendMss({ ...this.config, mss }, this.remoteMss, this.tsEnabled);
    this.cc.setMss(this.sndMss);
  }

  /**
   * Take in-order bytes for a consumer that delivers them later (an offload target's delivery
   * algorithm): they stay counted against the window as reserved bytes until the consumer lowers
   * the reservation with `setReceiveReserved`.
   */
  takeReceived(max: number, now: number): Uint8Array {
    this.now = now;
    const out = this.rcvBuf.shift(max);
    this.receiveReserved += out.length;
    return out;
  }

  /** Graceful close: a FIN follows the queued data. */
  close(now: number): void {
    this.now = now;
    switch (this._state) {
      case TcpState.SynSent:
        this.enterClosed(undefined);
        return;
      case TcpState.SynRcvd:
        this.finQueued = true; // FIN_WAIT_1 once the handshake completes
        return;
      case TcpState.Established:
        this.finQueued = true;
        this._state = TcpState.FinWait1;
        break;
      case TcpState.CloseWait:
        this.finQueued = true;
        this._state = TcpState.LastAck;
        break;
      default:
        return; // already closing or closed
    }
    this.trySend();
    this.flushAck();
  }

  /** Abortive close: RST to the peer, everything dropped. */
  abort(now: number): void {
    this.now = now;
    if (this._state === TcpState.Closed) return;
    if (this._state !== TcpState.SynSent && this._state !== TcpState.TimeWait) {
      this.emit({ srcPort: this.localPort, dstPort: this.remotePort, seq: this._sndNxt, ack: 0, flags: TCP_RST, window: 0, urgent: 0, options: {}, payload: EMPTY });
    }
    this.enterClosed(undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // Segment arrival (RFC 9293 3.10.7)

  /**
   * A segment for this connection. The engine keeps no reference to `seg`, its options or its
   * payload after returning (it copies what it keeps), so the caller may pass views into a reused
   * receive buffer.
   */
  input(seg: TcpSegment, now: number): void {
    this.now = now;
    this.stats.segmentsIn++;
    this.stats.bytesIn += seg.payload.length;
    switch (this._state) {
      case TcpState.Closed:
      case TcpState.Listen:
        return; // the demux answers closed ports (TcpConnection.resetFor)
      case TcpState.SynSent:
        this.inputSynSent(seg);
        break;
      default:
        this.inputSynchronized(seg);
    }
    this.afterInput();
  }

  private afterInput(): void {
    if (this._state === TcpState.Closed) return;
    this.trySend();
    this.flushAck();
  }

  private inputSynSent(seg: TcpSegment): void {
    const hasAck = (seg.flags & TCP_ACK) !== 0;
    if (hasAck && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this._sndMax))) {
      if (!(seg.flags & TCP_RST)) this.sendRst(seg.ack);
      return;
    }
    if (seg.flags & TCP_RST) {
      if (hasAck) this.enterClosed('ECONNREFUSED');
      return;
    }
    if (!(seg.flags & TCP_SYN)) return;
    this.irs = seg.seq;
    this._rcvNxt = seqAdd(seg.seq, 1);
    this.advertisedEdge = this._rcvNxt; // nothing advertised yet in this sequence space
    this.applyNegotiation(seg.options);
    if (this.tsEnabled && seg.options.ts) {
      this.setTsRecent(seg.options.ts.val);
      if (hasAck && seg.options.ts.ecr !== 0) this.rto.sample(Math.max(0, this.tsNow() - seg.options.ts.ecr));
    } else if (hasAck && this.rtCount === 0) {
      this.rto.sample(this.now - this.rttSentAt);
    }
    this._sndWnd = seg.window;
    this.maxSndWnd = seg.window;
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    if (hasAck) {
      this._sndUna = seg.ack;
      this.stopRtx();
      this.rtCount = 0;
      this.rto.resetBackoff();
      this._state = TcpState.Established;
      this.events.push({ type: 'connected' });
      this.startKeepalive();
      this.ackNow = true;
      if (this.finQueued) this._state = TcpState.FinWait1;
      // Data or FIN in the SYN-ACK is processed like any other segment's.
      if (seg.payload.length > 0 || seg.flags & TCP_FIN) {
        this.processData({ ...seg, seq: seqAdd(seg.seq, 1), flags: seg.flags & ~TCP_SYN });
      }
    } else {
      // Simultaneous open.
      this._state = TcpState.SynRcvd;
      this.sendSyn(true, seg.options);
    }
  }

  private inputSynchronized(seg: TcpSegment): void {
    if (this._state === TcpState.SynRcvd && seg.flags & TCP_SYN && seg.seq === this.irs && !(seg.flags & TCP_RST)) {
      if (seg.flags & TCP_ACK && seg.ack === seqAdd(this.iss, 1)) {
        // Simultaneous open: the peer's SYN-ACK crossed ours. Its SYN is old news; take the ACK.
        seg = { ...seg, seq: seqAdd(seg.seq, 1), flags: seg.flags & ~TCP_SYN };
      } else {
        this.retransmitSyn(); // our SYN-ACK was lost: answer the retransmitted SYN
        return;
      }
    }
    const isRst = (seg.flags & TCP_RST) !== 0;
    // RFC 7323 5.3 PAWS.
    if (this.tsEnabled && seg.options.ts && !isRst && this.tsRecentAt > -Infinity) {
      if (seqLt(seg.options.ts.val, this.tsRecent) && this.now - this.tsRecentAt < PAWS_IDLE_MS) {
        this.stats.pawsDrops++;
        this.noteDuplicateBelowRcvNxt(seg.seq, seg.payload.length);
        this.ackNow = true;
        return;
      }
    }
    // Acceptability (RFC 9293 3.10.7.4 first check).
    const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
    const wnd = Math.max(0, seqDiff(this.advertisedEdge, this._rcvNxt));
    let acceptable: boolean;
    if (len === 0) {
      acceptable = wnd === 0 ? seg.seq === this._rcvNxt : seqGe(seg.seq, this._rcvNxt) && seqLt(seg.seq, seqAdd(this._rcvNxt, wnd));
    } else if (wnd === 0) {
      acceptable = false;
    } else {
      const last = seqAdd(seg.seq, len - 1);
      const end = seqAdd(this._rcvNxt, wnd);
      acceptable = (seqGe(seg.seq, this._rcvNxt) && seqLt(seg.seq, end)) || (seqGe(last, this._rcvNxt) && seqLt(last, end));
    }
    if (!acceptable) {
      // A zero-window probe or an old duplicate: ACK it (never answer an RST). Exception: an
      // unacceptable segment may still carry a valid ACK for our data (zero-window case).
      this.stats.droppedUnacceptable++;
      if (!isRst) {
        this.noteDuplicateBelowRcvNxt(seg.seq, seg.payload.length);
        // A retransmission of the data our last ACK covered (its ACK was lost): echo its TSval, as
        // Linux does (tcp_sequence accepts end >= rcv_wup). Echoing the stale TS.Recent made a Linux
        // sender measure the whole RTO as RTT and back off to ~10 s under loss (issue 5 interop).
        if (this.tsEnabled && seg.options.ts && len > 0 && seqLe(seg.seq, this.lastAckSent) && seqGe(seqAdd(seg.seq, len), this.lastAckSent) && seqGe(seg.options.ts.val, this.tsRecent)) {
          this.setTsRecent(seg.options.ts.val);
        }
        if (wnd === 0 && seg.flags & TCP_ACK && len > 0 && seg.seq === this._rcvNxt) this.processAck(seg);
        if (this._state === TcpState.TimeWait && seg.flags & TCP_FIN) this.twDeadline = this.now + this.config.timeWaitMs;
        this.ackNow = true;
      }
      return;
    }
    // RFC 5961 3.2: RST only when it hits RCV.NXT exactly; otherwise a challenge ACK.
    if (isRst) {
      // RFC 1337: TIME-WAIT ignores RST. Both FINs are done; a peer that already closed answers a
      // late ACK of ours with RST, and that must not turn a finished connection into a reset one
      // (at an offload target it made the host drop data received before the FIN).
      if (this._state === TcpState.TimeWait) return;
      if (seg.seq === this._rcvNxt) this.onReset();
      else {
        this.challengeAck();
        this.armBlindResetKeepalive();
      }
      return;
    }
    // RFC 5961 4.2: a SYN in a synchronized state gets a challenge ACK.
    if (seg.flags & TCP_SYN) {
      this.challengeAck();
      this.armBlindResetKeepalive();
      return;
    }
    if (!(seg.flags & TCP_ACK)) return;
    // RFC 7323 4.3: TS.Recent from segments covering Last.ACK.sent.
    if (this.tsEnabled && seg.options.ts && seqLe(seg.seq, this.lastAckSent) && seqGe(seg.options.ts.val, this.tsRecent)) {
      this.setTsRecent(seg.options.ts.val);
    } else if (this.tsEnabled && seg.options.ts && this.tsRecentAt === -Infinity) {
      this.setTsRecent(seg.options.ts.val);
    }
    if (this._state === TcpState.SynRcvd) {
      if (seqGt(seg.ack, this._sndUna) && seqLe(seg.ack, this._sndMax)) {
        this._state = this.finQueued ? TcpState.FinWait1 : TcpState.Established;
        this.events.push({ type: 'connected' });
        this.startKeepalive();
        this.sndWl1 = seg.seq;
        this.sndWl2 = seg.ack;
        this._sndWnd = seg.window << this.sndWscale;
        this.maxSndWnd = Math.max(this.maxSndWnd, this._sndWnd);
      } else {
        this.sendRst(seg.ack);
        return;
      }
    }
    if (!this.processAck(seg)) return;
    if (this._state === TcpState.Closed) return;
    this.restartKeepalive();
    if (this._state === TcpState.FinWait2 && this.rtxMode === 'fin-wait-2' && this.rtxDeadline !== undefined) {
      this.rtxDeadline = this.now + this.config.finWait2TimeoutMs; // restarted by acceptable segments
    }
    if (this._state === TcpState.TimeWait) {
      if (seg.flags & TCP_FIN) {
        this.ackNow = true;
        this.twDeadline = this.now + this.config.timeWaitMs;
      }
      return;
    }
    this.processData(seg);
  }

  /** ACK field processing. Returns false when the segment must be dropped. */
  private processAck(seg: TcpSegment): boolean {
    const ack = seg.ack;
    // RFC 5961 5.2 acceptable ACK range.
    const lowest = seqAdd(this._sndUna, -Math.max(this.maxSndWnd, 1));
    if (seqGt(ack, this._sndMax) || seqLt(ack, lowest)) {
      this.challengeAck();
      return false;
    }
    const wnd = seg.window << this.sndWscale;
    let newlySacked = 0;
    if (this.sackEnabled && seg.options.sack && seg.options.sack.length > 0) {
      newlySacked = this.scoreboard.update(seqMax(ack, this._sndUna), this._sndMax, seg.options.sack);
    }
    const windowChanged = wnd !== this._sndWnd;
    if (seqGt(ack, this._sndUna)) {
      this.onNewAck(seg, ack);
    } else if (ack === this._sndUna) {
      const classicDup = seg.payload.length === 0 && !(seg.flags & (TCP_SYN | TCP_FIN)) && !windowChanged && this._sndMax !== this._sndUna;
      if (classicDup || (newlySacked > 0 && this._sndMax !== this._sndUna)) this.onDupAck();
    }
    // Window update (RFC 9293 3.10.7.4, SND.WL1/WL2 rule).
    if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
      const wasZero = this._sndWnd === 0;
      this._sndWnd = wnd;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
      if (wnd > this.maxSndWnd) this.maxSndWnd = wnd;
      if (wnd > 0 && (wasZero || this.rtxMode === 'persist')) this.endPersist();
      else if (wnd === 0 && this.persistProbeOutstanding && ack === this._sndUna) this.nextPersistRound();
    }
    return true;
  }

  private onNewAck(seg: TcpSegment, ack: number): void {
    const flightBefore = seqDiff(this._sndMax, this._sndUna);
    // Which of SYN, data, FIN this ACK covers.
    let dataAcked = 0;
    const dataEnd = seqAdd(this.sndBufSeq, this.sndBuf.length);
    if (seqGt(ack, this.sndBufSeq)) {
      dataAcked = Math.min(seqDiff(ack, this.sndBufSeq), this.sndBuf.length);
      this.sndBuf.consume(dataAcked);
      this.sndBufSeq = seqAdd(this.sndBufSeq, dataAcked);
      let drop = 0;
      while (drop < this.pushMarks.length && seqLe(this.pushMarks[drop], this.sndBufSeq)) drop++;
      if (drop > 0) this.pushMarks.splice(0, drop);
    }
    const finAcked = this.finQueued && seqGt(ack, dataEnd);
    const ackedSeq = seqDiff(ack, this._sndUna);
    // RTT: timestamps echo (RFC 7323 4.1), else Karn's timed segment.
    if (this.tsEnabled && seg.options.ts && seg.options.ts.ecr !== 0) {
      this.rto.sample(Math.max(0, seqDiff(this.tsNow(), seg.options.ts.ecr)));
    } else if (this.rttSeq !== undefined && seqGe(ack, this.rttSeq)) {
      this.rto.sample(this.now - this.rttSentAt);
      this.rttSeq = undefined;
    }
    this._sndUna = ack;
    if (seqLt(this._sndNxt, ack)) this._sndNxt = ack;
    this.rtCount = 0;
    this.retransmitStartedAt = undefined;
    this.timeoutReported = false;
    this.rto.resetBackoff();
    if (this.persistProbeOutstanding) {
      this.persistProbeOutstanding = false;
      this.sndWndProbeCount = 0;
    }
    // Loss recovery (RFC 6582 / RFC 6675).
    if (this.inRecovery) {
      if (seqGe(ack, this.recoveryPoint)) {
        this.inRecovery = false;
        this.dupAcks = 0;
        this.cc.onRecoveryExit(this.now);
      } else if (!this.sackEnabled) {
        // NewReno partial ACK: retransmit the next hole, deflate by the amount acknowledged.
        this.retransmitAt(this._sndUna);
        this.cc.cwnd = Math.max(this.sndMss, this.cc.cwnd - ackedSeq + (ackedSeq >= this.sndMss ? this.sndMss : 0));
      }
    } else {
      this.dupAcks = 0;
      this.cc.onAck(ackedSeq, this.now, this.rto.srtt, flightBefore);
    }
    if (seqLt(this.highRxt, this._sndUna)) this.highRxt = this._sndUna;
    if (this.sackEnabled && this._sndUna !== this._sndMax && this.scoreboard.isSacked(this._sndUna)) this.onReneging();
    // Timers (RFC 6298 5.2/5.3).
    if (this._sndUna === this._sndMax) {
      if (this.rtxMode === 'rto') this.stopRtx();
    } else {
      this.startRtx('rto', this.rto.rto);
    }
    if (dataAcked > 0 || finAcked) {
      this.events.push({ type: 'acked', sndUna: ack, bytes: dataAcked, finAcked });
    }
    if (this.writableWanted && this.sendSpace > 0) {
      this.writableWanted = false;
      this.events.push({ type: 'writable' });
    }
    if (finAcked) this.onFinAcked();
  }

  private onFinAcked(): void {
    switch (this._state) {
      case TcpState.FinWait1:
        this._state = TcpState.FinWait2;
        this.stopRtx();
        if (this.config.finWait2TimeoutMs > 0) this.startRtx('fin-wait-2', this.config.finWait2TimeoutMs);
        break;
      case TcpState.Closing:
        this.enterTimeWait();
        break;
      case TcpState.LastAck:
        this.enterClosed(undefined);
        break;
      default:
        break;
    }
  }

  /**
   * The cumulative ACK stopped at a byte the receiver had SACKed: it dropped SACKed data (RFC 2018
   * section 8 allows it; a chimney target must at terminate, spec 6.7). Forget the scoreboard and
   * resend from SND.UNA, as Linux does on detecting reneging.
   */
  private onReneging(): void {
    this.stats.renegings++;
    this.scoreboard.clear();
    this.inRecovery = false;
    this.dupAcks = 0;
    this.recoveryPoint = this._sndMax;
    this._sndNxt = this._sndUna;
    this.highRxt = this._sndUna;
    this.rttSeq = undefined;
    this.retransmitAt(this._sndUna);
  }

  private onDupAck(): void {
    this.stats.dupAcksIn++;
    this.dupAcks++;
    if (this.inRecovery) {
      if (!this.sackEnabled) this.cc.cwnd += this.sndMss; // RFC 6582 inflation
      return;
    }
    const lost = this.dupAcks >= DUP_THRESH ||
      (this.sackEnabled && this.scoreboard.isLost(this._sndUna, this.sndMss, DUP_THRESH));
    // RFC 6582 4.1: only one reduction per window of data (the ACK must cover beyond `recover`).
    if (lost && seqGe(this._sndUna, this.recoveryPoint)) {
      this.enterRecovery();
    }
  }

  private enterRecovery(): void {
    const flight = seqDiff(this._sndMax, this._sndUna);
    this.inRecovery = true;
    this.recoveryPoint = this._sndMax;
    this.cc.onCongestionEvent(this.now, flight);
    this.stats.fastRetransmits++;
    this.highRxt = this._sndUna;
    this.retransmitAt(this._sndUna);
    if (!this.sackEnabled) this.cc.cwnd = this.cc.ssthresh + DUP_THRESH * this.sndMss;
  }

  private processData(seg: TcpSegment): void {
    const canReceive = this._state === TcpState.Established || this._state === TcpState.FinWait1 || this._state === TcpState.FinWait2;
    let seq = seg.seq;
    let payload = seg.payload;
    let fin = (seg.flags & TCP_FIN) !== 0;
    if (!canReceive) return; // the peer already sent its FIN: nothing more is accepted
    // Trim to [rcvNxt, advertisedEdge).
    if (seqLt(seq, this._rcvNxt)) {
      const skip = seqDiff(this._rcvNxt, seq);
      this.noteDuplicateBelowRcvNxt(seq, payload.length);
      if (skip >= payload.length) {
        if (fin && seqAdd(seq, payload.length) === this._rcvNxt) {
          payload = EMPTY; // the FIN alone is new
        } else {
          if (payload.length > 0 || fin) this.ackNow = true; // pure duplicate: re-ACK
          return;
        }
      } else {
        payload = payload.subarray(skip);
      }
      seq = this._rcvNxt;
    }
    const room = Math.max(0, seqDiff(this.advertisedEdge, seq));
    if (payload.length > room) {
      payload = payload.subarray(0, room);
      fin = false;
    }
    if (payload.length === 0 && !fin) return;
    const held = this.reasm.heldOverlap(seq, seqAdd(seq, payload.length));
    if (held) this.noteDuplicate(held.left, held.right);
    if (seq !== this._rcvNxt) {
      this.stats.outOfOrderSegments++;
      if (payload.length > 0) this.reasm.insert(seq, payload, this._rcvNxt);
      if (fin) this.reasm.setFin(seqAdd(seq, payload.length));
      this.ackNow = true; // RFC 5681 4.2: out-of-order data is acknowledged at once
      return;
    }
    const hadHoles = this.reasm.bytes > 0 || this.reasm.finSeq !== undefined;
    let delivered = 0;
    if (payload.length > 0) {
      this.rcvBuf.appendCopy(payload);
      this._rcvNxt = seqAdd(this._rcvNxt, payload.length);
      delivered += payload.length;
    }
    if (hadHoles) {
      for (const chunk of this.reasm.takeContiguous(this._rcvNxt)) {
        this.rcvBuf.appendOwned(chunk);
        this._rcvNxt = seqAdd(this._rcvNxt, chunk.length);
        delivered += chunk.length;
      }
      if (this.reasm.finSeq !== undefined && this.reasm.finSeq === this._rcvNxt) fin = true;
      this.ackNow = true; // filling a hole is acknowledged at once
    }
    if (delivered > 0) {
      this.lastPush = (seg.flags & TCP_PSH) !== 0;
      this.events.push({ type: 'readable', bytes: delivered });
      this.bytesSinceAck += delivered;
      if (payload.length > this.rcvMssSeen) this.rcvMssSeen = Math.min(payload.length, this.rcvMss);
      const fullSized = Math.max(this.rcvMssSeen, Math.min(536, this.rcvMss));
      if (this.quickAcks > 0) {
        this.quickAcks--;
        this.ackNow = true;
      } else if (this.bytesSinceAck >= Math.max(1, this.config.ackFrequency) * fullSized || this.config.delayedAckMs === 0) this.ackNow = true;
      else if (this.ackDeadline === undefined) this.ackDeadline = this.now + this.config.delayedAckMs;
    }
    if (fin) this.onFinReceived();
  }

  private onFinReceived(): void {
    this._rcvNxt = seqAdd(this._rcvNxt, 1);
    this.finReceived = true;
    this.reasm.clear();
    this.ackNow = true;
    this.events.push({ type: 'peer-fin' });
    switch (this._state) {
      case TcpState.Established:
        this._state = TcpState.CloseWait;
        break;
      case TcpState.FinWait1:
        // Our FIN is not yet acknowledged (else we would be in FIN_WAIT_2): simultaneous close.
        this._state = TcpState.Closing;
        break;
      case TcpState.FinWait2:
        this.enterTimeWait();
        break;
      default:
        break;
    }
  }

  private onReset(): void {
    let error: TcpErrorCode | undefined;
    switch (this._state) {
      case TcpState.SynRcvd:
        error = 'ECONNREFUSED';
        break;
      case TcpState.Established:
      case TcpState.FinWait1:
      case TcpState.FinWait2:
      case TcpState.CloseWait:
        error = 'ECONNRESET';
        break;
      default:
        error = undefined;
    }
    this.enterClosed(error);
  }

  private challengeAck(): void {
    if (this.now - this.lastChallengeAckAt < this.config.challengeAckIntervalMs) return;
    this.lastChallengeAckAt = this.now;
    this.stats.challengeAcks++;
    this.ackNow = true;
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  /** Run every timer whose deadline is at or before `now`. */
  onTimer(now: number): void {
    this.now = now;
    if (this.twDeadline !== undefined && now >= this.twDeadline) {
      this.twDeadline = undefined;
      this.enterClosed(undefined);
      return;
    }
    if (this.ackDeadline !== undefined && now >= this.ackDeadline) {
      this.ackDeadline = undefined;
      this.ackNow = true;
    }
    if (this.rtxDeadline !== undefined && now >= this.rtxDeadline) {
      this.rtxDeadline = undefined;
      switch (this.rtxMode) {
        case 'rto': this.onRetransmitTimeout(); break;
        case 'persist': this.onPersistTimeout(); break;
        case 'fin-wait-2': this.onFinWait2Timeout(); break;
      }
      if (this._state === TcpState.Closed) return;
    }
    if (this.kaDeadline !== undefined && now >= this.kaDeadline) {
      this.kaDeadline = undefined;
      this.onKeepaliveTimeout();
      if (this._state === TcpState.Closed) return;
    }
    this.trySend();
    this.flushAck();
  }

  private startRtx(mode: RtxMode, delayMs: number): void {
    this.rtxMode = mode;
    this.rtxDeadline = this.now + delayMs;
  }

  private stopRtx(): void {
    this.rtxDeadline = undefined;
    this.rtxMode = 'rto';
  }

  private reportTimeout(reason: 'retransmit' | 'persist' | 'keepalive' | 'syn' | 'fin-wait-2'): boolean {
    if (this.config.onTimeout === 'close' || reason === 'syn') {
      this.events.push({ type: 'timeout', reason });
      this.enterClosed('ETIMEDOUT');
      return true;
    }
    if (!this.timeoutReported) {
      this.timeoutReported = true;
      this.events.push({ type: 'timeout', reason });
    }
    return false;
  }

  private onRetransmitTimeout(): void {
    this.stats.timeouts++;
    if (this._state === TcpState.SynSent || this._state === TcpState.SynRcvd) {
      if (this.rtCount >= this.config.maxSynRetransmissions) {
        this.reportTimeout('syn');
        return;
      }
      this.rtCount++;
      this.rto.backoff();
      this.retransmitSyn();
      return;
    }
    if (this._sndUna === this._sndMax) return; // nothing outstanding any more
    if (this.retransmitLimitReached()) {
      if (this.reportTimeout(this.persistProbeOutstanding ? 'persist' : 'retransmit')) return;
    }
    if (this.retransmitStartedAt === undefined) this.retransmitStartedAt = this.now;
    const flight = seqDiff(this._sndMax, this._sndUna);
    if (this.persistProbeOutstanding) {
      // Persist round (chimney 5.4 step 3): re-probe with backoff, no congestion response.
      this.rtCount++;
      this.retransmitAt(this._sndUna);
      this.startRtx('rto', Math.min(this.rto.rto * 2 ** this.rtCount, this.rtoMax()));
      return;
    }
    if (this.rtCount === 0) this.cc.onTimeout(this.now, flight);
    else this.cc.cwnd = this.sndMss;
    this.rtCount++;
    this.rto.backoff();
    this.inRecovery = false;
    this.dupAcks = 0;
    this.recoveryPoint = this._sndMax;
    this.rttSeq = undefined;
    // Go back to SND.UNA; the send loop skips what the peer SACKed.
    this._sndNxt = this._sndUna;
    this.highRxt = this._sndUna;
    this.retransmitAt(this._sndUna);
    this.startRtx('rto', this.rto.rto);
  }

  /** Chimney 5.2: retransmissions exhausted by count, or by total time when MaxRT is set. */
  private retransmitLimitReached(): boolean {
    const maxRt = this.config.maxRetransmitTimeMs;
    if (maxRt > 0) {
      return maxRt !== Infinity && this.retransmitStartedAt !== undefined && this.now - this.retransmitStartedAt >= maxRt;
    }
    return this.rtCount >= this.config.maxRetransmissions;
  }

  private rtoMax(): number {
    return this.config.rto.maxRtoMs ?? 120_000;
  }

  private onPersistTimeout(): void {
    // Chimney 5.4 step 2: send a window probe, then the retransmit timer runs for it.
    const dataEnd = seqAdd(this.sndBufSeq, this.sndBuf.length);
    if (seqGe(this._sndNxt, dataEnd)) {
      this.stopRtx();
      return;
    }
    if (this._sndWnd > 0) {
      this.stopRtx();
      this.swsOverride = true; // the send loop after the timers sends what the window allows
      return;
    }
    this.stats.windowProbes++;
    const seq = this._sndNxt;
    const payload = this.sndBuf.peek(seqDiff(seq, this.sndBufSeq), 1);
    this.emit(this.dataSegment(seq, payload, false));
    this._sndNxt = seqAdd(seq, 1);
    if (seqGt(this._sndNxt, this._sndMax)) this._sndMax = this._sndNxt;
    this.persistProbeOutstanding = true;
    this.rtCount = 0;
    this.startRtx('rto', this.rto.rto);
  }

  private nextPersistRound(): void {
    // Chimney 5.4 step 4: the probe was answered with a zero window.
    this.sndWndProbeCount++;
    this.rtCount = 0;
    this.persistProbeOutstanding = false;
    this._sndNxt = this._sndUna; // the probe byte is re-sent at the next probe
    this.startRtx('persist', Math.min(this.rto.rto * 2 ** this.sndWndProbeCount, this.rtoMax()));
    if (this.sndWndProbeCount > this.config.maxRetransmissions) this.reportTimeout('persist');
  }

  private endPersist(): void {
    if (this.rtxMode === 'persist') this.stopRtx();
    this.sndWndProbeCount = 0;
    if (this.persistProbeOutstanding && this._sndUna === this._sndMax) this.persistProbeOutstanding = false;
  }

  private onFinWait2Timeout(): void {
    if (this.config.onTimeout === 'close') {
      this.events.push({ type: 'timeout', reason: 'fin-wait-2' });
      this.enterClosed(undefined);
    } else {
      this._state = TcpState.Closed; // chimney 5.4: state Closed, host asked to retrieve
      this.events.push({ type: 'timeout', reason: 'fin-wait-2' });
    }
  }

  private startKeepalive(): void {
    if (this.config.keepalive.enabled) this.kaDeadline = this.now + this.config.keepalive.idleMs;
  }

  /** Spec 4.8: probe the peer within `idleMs` (start the timer, or bring it forward). */
  private armBlindResetKeepalive(): void {
    const b = this.config.blindResetKeepalive;
    if (b === undefined) return;
    const at = this.now + b.idleMs;
    if (this.kaDeadline === undefined) {
      this.kaBlindStarted = true; // probes carried in at the import count (spec 4.8)
    } else if (this.kaDeadline <= at) {
      return;
    }
    this.kaDeadline = at;
    this.kaBlind = true;
  }

  private restartKeepalive(): void {
    if (this.kaBlind) {
      // An acceptable segment: the mitigation's own timer stops; a normal one restarts below.
      this.kaBlind = false;
      if (this.kaBlindStarted) {
        this.kaBlindStarted = false;
        this.kaDeadline = undefined;
        this.kaProbeCount = 0;
        return;
      }
    }
    this.kaProbeCount = 0;
    if (this.config.keepalive.enabled && this.kaDeadline !== undefined) this.kaDeadline = this.now + this.config.keepalive.idleMs;
  }

  private onKeepaliveTimeout(): void {
    const blind = this.kaBlind ? this.config.blindResetKeepalive : undefined;
    const ka = blind ?? this.config.keepalive;
    if (!blind && !this.config.keepalive.enabled) return;
    if (this._state !== TcpState.Established && this._state !== TcpState.CloseWait) return;
    if (this._sndUna !== this._sndMax || this.sndBuf.length > 0) {
      this.kaDeadline = this.now + ka.idleMs; // data in flight: the retransmit timer covers liveness
      return;
    }
    if (this.kaProbeCount >= ka.probes) {
      if (blind) {
        // Spec 4.8: every probe unanswered: the connection is dead, uploaded in state Closed.
        this.kaBlind = this.kaBlindStarted = false;
        this.events.push({ type: 'timeout', reason: 'keepalive' });
        if (this.config.onTimeout === 'close') this.enterClosed('ETIMEDOUT');
        else this._state = TcpState.Closed;
        return;
      }
      if (this.reportTimeout('keepalive')) return;
      this.kaDeadline = this.now + ka.intervalMs;
      return;
    }
    this.kaProbeCount++;
    this.stats.keepaliveProbes++;
    // A probe is a segment one below SND.NXT with no data: the peer answers with an ACK.
    this.emit({ ...this.ackSegment(), seq: seqAdd(this._sndMax, -1) });
    this.kaDeadline = this.now + ka.intervalMs;
  }

  private enterTimeWait(): void {
    this._state = TcpState.TimeWait;
    this.stopRtx();
    this.kaDeadline = undefined;
    this.twDeadline = this.now + this.config.timeWaitMs;
    this.events.push({ type: 'time-wait' });
  }

  private enterClosed(error: TcpErrorCode | undefined): void {
    if (this._state === TcpState.Closed && this.rtxDeadline === undefined && this.twDeadline === undefined) {
      return;
    }
    this._state = TcpState.Closed;
    this.rtxDeadline = undefined;
    this.ackDeadline = undefined;
    this.kaDeadline = undefined;
    this.twDeadline = undefined;
    this.ackNow = false;
    this.pendingDsack = undefined;
    this.reasm.clear();
    this.events.push(error ? { type: 'closed', error } : { type: 'closed' });
  }

  // ---------------------------------------------------------------------------------------------
  // Transmission

  private tsNow(): number {
    return (Math.floor(this.now) + this.tsOffset) >>> 0;
  }

  private setTsRecent(val: number): void {
    this.tsRecent = val >>> 0;
    this.tsRecentAt = this.now;
  }

  /** The window we could offer now: free receive-buffer space. */
  private availableWindow(): number {
    return Math.max(0, this.config.receiveBufferSize - this.rcvBuf.length - this.receiveReserved);
  }

  private currentWindow(): number {
    return Math.max(0, seqDiff(this.advertisedEdge, this._rcvNxt));
  }

  /** The window field for the next segment, moving the advertised right edge (never left). */
  private windowField(): number {
    const avail = this.availableWindow();
    const cur = this.currentWindow();
    // Receiver SWS avoidance (RFC 9293 3.8.6.2.2): grow the edge only by a useful amount.
    const threshold = Math.min(this.config.receiveBufferSize / 2, this.rcvMss);
    let win = avail - cur >= threshold || avail >= this.config.receiveBufferSize ? Math.max(avail, cur) : cur;
    const shift = this.rcvWscale;
    let field = Math.ceil(win / 2 ** shift);
    if (field > 0xffff) field = 0xffff;
    win = field * 2 ** shift;
    const edge = seqAdd(this._rcvNxt, win);
    if (seqGt(edge, this.advertisedEdge)) this.advertisedEdge = edge;
    return field;
  }

  private baseOptions(): TcpOptions {
    const opts: TcpOptions = {};
    if (this.tsEnabled) opts.ts = { val: this.tsNow(), ecr: this.tsRecent };
    const blocks = this.sackOptionBlocks();
    if (blocks.length > 0) opts.sack = blocks;
    return opts;
  }

  /**
   * The SACK blocks of the next ACK: a pending D-SACK block first (RFC 2883 4: when the duplicate
   * lies inside held data, the next block, RFC 2018's most recent one, is the block containing it),
   * then RFC 2018 blocks; as many as fit next to the other options.
   */
  private sackOptionBlocks(): SackBlock[] {
    if (!this.sackEnabled || (this.reasm.bytes === 0 && this.pendingDsack === undefined)) return [];
    const max = this.tsEnabled ? 3 : 4;
    if (this.pendingDsack === undefined) return this.reasm.sackBlocks(max);
    return [this.pendingDsack, ...this.reasm.sackBlocks(max - 1)];
  }

  /** Duplicate data: the part of [seq, seq+len) below RCV.NXT is reported in a D-SACK block. */
  private noteDuplicateBelowRcvNxt(seq: number, len: number): void {
    if (len === 0 || !seqLt(seq, this._rcvNxt)) return;
    const end = seqAdd(seq, len);
    this.noteDuplicate(seq, seqLt(end, this._rcvNxt) ? end : this._rcvNxt);
  }

  /**
   * RFC 2883 4: report a received duplicate in the first SACK block of the next ACK, sent at once.
   * A duplicate adjacent to or overlapping the pending one extends it (as Linux does); otherwise
   * the most recent duplicate is reported.
   */
  private noteDuplicate(left: number, right: number): void {
    if (!this.sackEnabled || !seqLt(left, right)) return;
    const p = this.pendingDsack;
    if (p !== undefined && seqLe(left, p.right) && seqGe(right, p.left)) {
      this.pendingDsack = { left: seqLt(left, p.left) ? left : p.left, right: seqGt(right, p.right) ? right : p.right };
    } else {
      this.pendingDsack = { left, right };
    }
    this.ackNow = true;
  }

  /** Payload that fits in one segment next to the options it will carry (SACK blocks shrink it). */
  private maxPayload(): number {
    const blocks = this.sackOptionBlocks().length;
    return blocks === 0 ? this.sndMss : this.sndMss - (4 + 8 * blocks);
  }

  /**
   * The sequence number for a segment without data: the highest sent (not SND.NXT, which is pulled
   * back while retransmitting and would make the peer discard the ACK as old), clipped to the
   * peer's window as Linux does.
   */
  private acceptableSeq(): number {
    const wndEnd = seqAdd(this._sndUna, this._sndWnd);
    return seqLe(this._sndMax, wndEnd) ? this._sndMax : seqMax(wndEnd, this._sndNxt);
  }

  private ackSegment(): TcpSegment {
    return {
      srcPort: this.localPort, dstPort: this.remotePort, seq: this.acceptableSeq(), ack: this._rcvNxt,
      flags: TCP_ACK, window: this.windowField(), urgent: 0, options: this.baseOptions(), payload: EMPTY,
    };
  }

  private dataSegment(seq: number, payload: Uint8Array, fin: boolean): TcpSegment {
    const dataEnd = seqAdd(this.sndBufSeq, this.sndBuf.length);
    const end = seqAdd(seq, payload.length);
    let flags = TCP_ACK;
    // PSH on the segment that ends the buffered data or contains the end of a write (chimney R76).
    if (payload.length > 0 && (end === dataEnd || this.pushMarks.some((m) => seqGt(m, seq) && seqLe(m, end)))) flags |= TCP_PSH;
    if (fin) flags |= TCP_FIN;
    return {
      srcPort: this.localPort, dstPort: this.remotePort, seq, ack: this._rcvNxt,
      flags, window: this.windowField(), urgent: 0, options: this.baseOptions(), payload,
    };
  }

  /** Queue a segment for the wire; every segment we send with ACK set acknowledges rcvNxt. */
  private emit(seg: TcpSegment): void {
    if (seg.flags & TCP_ACK) {
      this.lastAckSent = seg.ack;
      if (this.pendingDsack !== undefined && seg.options.sack?.[0] === this.pendingDsack) {
        this.pendingDsack = undefined; // reported once (RFC 2883 4)
        this.stats.dsacksSent++;
      }
      this.ackNow = false;
      this.ackDeadline = undefined;
      this.bytesSinceAck = 0;
    }
    this.stats.segmentsOut++;
    this.stats.bytesOut += seg.payload.length;
    this.output.push(seg);
  }

  private sendRst(seq: number): void {
    this.emit({ srcPort: this.localPort, dstPort: this.remotePort, seq, ack: 0, flags: TCP_RST, window: 0, urgent: 0, options: {}, payload: EMPTY });
  }

  private sendSyn(withAck: boolean, peer?: TcpOptions): void {
    const opts = synOptions(this.config, this.tsNow(), withAck ? peer : undefined);
    if (withAck && this.tsEnabled) opts.ts = { val: this.tsNow(), ecr: this.tsRecent };
    const seg: TcpSegment = {
      srcPort: this.localPort, dstPort: this.remotePort, seq: this.iss, ack: withAck ? this._rcvNxt : 0,
      flags: TCP_SYN | (withAck ? TCP_ACK : 0), window: Math.min(this.availableWindow(), 0xffff),
      urgent: 0, options: opts, payload: EMPTY,
    };
    if (withAck) this.advertisedEdge = seqAdd(this._rcvNxt, seg.window);
    this.emit(seg);
    this._sndNxt = seqAdd(this.iss, 1);
    if (seqGt(this._sndNxt, this._sndMax)) this._sndMax = this._sndNxt;
    if (this.rtCount === 0) this.rttSentAt = this.now;
    this.startRtx('rto', this.rto.rto);
  }

  private retransmitSyn(): void {
    this.stats.retransmittedSegments++;
    const peerOpts: TcpOptions = {};
    if (this.wsEnabled) peerOpts.wscale = this.sndWscale;
    if (this.sackEnabled) peerOpts.sackPermitted = true;
    if (this.tsEnabled) peerOpts.ts = { val: this.tsRecent, ecr: 0 };
    this.sendSyn(this._state === TcpState.SynRcvd, peerOpts);
  }

  /** Retransmit one segment starting at `seq` (fast retransmit, NewReno partial ACK, RTO). */
  private retransmitAt(seq: number): void {
    const dataEnd = seqAdd(this.sndBufSeq, this.sndBuf.length);
    let len = Math.max(0, Math.min(this.maxPayload(), seqDiff(dataEnd, seq), seqDiff(this._sndMax, seq)));
    if (this.sackEnabled) len = this.clipAtSacked(seq, len);
    const finOutstanding = this.finQueued && seqGt(this._sndMax, dataEnd);
    const fin = finOutstanding && seqAdd(seq, len) === dataEnd;
    if (len === 0 && !fin) return;
    const payload = this.sndBuf.peek(seqDiff(seq, this.sndBufSeq), len);
    this.emit(this.dataSegment(seq, payload, fin));
    this.stats.retransmittedSegments++;
    this.stats.retransmittedBytes += len;
    this.rttSeq = undefined; // Karn
    const end = seqAdd(seq, len + (fin ? 1 : 0));
    if (seqGt(end, this.highRxt)) this.highRxt = end;
    if (seqGt(end, this._sndNxt) && seqLe(seq, this._sndNxt)) this._sndNxt = end;
    if (this.rtxDeadline === undefined || this.rtxMode !== 'rto') this.startRtx('rto', this.rto.rto);
  }

  /** Shorten [seq, seq+len) so it does not run into a SACKed byte. */
  private clipAtSacked(seq: number, len: number): number {
    const next = this.scoreboard.nextSackedAtOrAfter(seq);
    if (next === undefined) return len;
    return Math.max(0, Math.min(len, seqDiff(next, seq)));
  }

  /** Send what the windows, Nagle and SWS avoidance allow. */
  private trySend(): void {
    const s = this._state;
    if (s !== TcpState.Established && s !== TcpState.CloseWait && s !== TcpState.FinWait1 && s !== TcpState.Closing && s !== TcpState.LastAck) {
      return;
    }
    if (this.inRecovery && this.sackEnabled) {
      this.sendSackRecovery();
      return;
    }
    for (let guard = 0; guard < 100_000; guard++) {
      const dataEnd = seqAdd(this.sndBufSeq, this.sndBuf.length);
      // After an RTO (go-back-N), skip ranges the peer already SACKed.
      if (this.sackEnabled && seqLt(this._sndNxt, this._sndMax) && seqLt(this._sndNxt, dataEnd)) {
        const end = this.scoreboard.sackedRangeEnd(this._sndNxt);
        if (end !== undefined) this._sndNxt = seqLt(end, dataEnd) ? end : dataEnd;
      }
      const avail = seqDiff(dataEnd, this._sndNxt);
      if (avail < 0) return; // everything including our FIN has been sent
      const retransmitting = seqLt(this._sndNxt, this._sndMax);
      const inFlight = seqDiff(this._sndNxt, this._sndUna);
      // cwnd may be fractional (CUBIC): only whole bytes can be sent.
      const usable = Math.floor(Math.min(this._sndWnd, this.cc.cwnd) - inFlight);
      const room = this.maxPayload();
      let len = Math.min(avail, room, Math.max(0, usable));
      if (this.sackEnabled && retransmitting) len = this.clipAtSacked(this._sndNxt, len);
      const fin = this.finQueued && len === avail;
      if (len === 0 && !fin) {
        // Window closed (or too small to be worth it) with nothing in flight: the persist timer
        // probes a zero window and overrides SWS avoidance for a small one.
        if (avail > 0 && usable <= 0 && this._sndUna === this._sndMax && this.rtxDeadline === undefined) {
          if (this._sndWnd === 0) this.sndWndProbeCount = 0;
          this.startRtx('persist', this.rto.rto);
        }
        return;
      }
      if (!retransmitting && len > 0 && len < room && len < avail && !this.swsOverride) {
        // Sender SWS avoidance (RFC 9293 3.8.6.2.1): a window-limited runt waits unless it is at
        // least half the largest window the peer offered.
        if (len < this.maxSndWnd / 2) {
          if (this._sndUna === this._sndMax && this.rtxDeadline === undefined) this.startRtx('persist', this.rto.rto);
          return;
        }
      }
      if (!retransmitting && len > 0 && len < room && len === avail && !fin && this.config.nagle && this._sndUna !== this._sndMax) {
        return; // Nagle: a small final piece waits for the outstanding data to be acknowledged
      }
      this.swsOverride = false;
      const seq = this._sndNxt;
      const payload = len > 0 ? this.sndBuf.peek(seqDiff(seq, this.sndBufSeq), len) : EMPTY;
      this.emit(this.dataSegment(seq, payload, fin));
      if (retransmitting) {
        this.stats.retransmittedSegments++;
        this.stats.retransmittedBytes += len;
      } else if (len > 0 && this.rttSeq === undefined && !this.tsEnabled) {
        this.rttSeq = seqAdd(seq, len);
        this.rttSentAt = this.now;
      }
      this._sndNxt = seqAdd(seq, len + (fin ? 1 : 0));
      if (seqGt(this._sndNxt, this._sndMax)) this._sndMax = this._sndNxt;
      if (this.rtxDeadline === undefined || this.rtxMode === 'persist') this.startRtx('rto', this.rto.rto);
      if (fin) return;
    }
  }

  /** RFC 6675 section 5 (C): send while cwnd - pipe allows a segment. */
  private sendSackRecovery(): void {
    const mss = this.maxPayload();
    for (let guard = 0; guard < 10_000; guard++) {
      const dataEnd = seqAdd(this.sndBufSeq, this.sndBuf.length);
      const highData = this._sndMax;
      const pipe = this.scoreboard.pipe(this._sndUna, highData, this.highRxt, mss, DUP_THRESH);
      if (this.cc.cwnd - pipe < mss) return;
      const unsent = Math.max(0, seqDiff(dataEnd, highData));
      const next = this.scoreboard.nextSeg({
        sndUna: this._sndUna, highData, highRxt: this.highRxt, mss, dupThresh: DUP_THRESH,
        unsentBytes: unsent, sendWindowEnd: seqAdd(this._sndUna, this._sndWnd),
      });
      if (!next) return;
      if (next.retransmit) {
        const finOut = this.finQueued && seqGt(this._sndMax, dataEnd);
        const len = Math.max(0, Math.min(next.len, seqDiff(dataEnd, next.seq)));
        const fin = finOut && seqAdd(next.seq, len) === dataEnd;
        if (len === 0 && !fin) return;
        this.emit(this.dataSegment(next.seq, this.sndBuf.peek(seqDiff(next.seq, this.sndBufSeq), len), fin));
        this.stats.retransmittedSegments++;
        this.stats.retransmittedBytes += len;
        this.highRxt = seqAdd(next.seq, len + (fin ? 1 : 0));
      } else {
        const len = Math.min(next.len, unsent);
        if (len <= 0) return;
        const fin = this.finQueued && seqAdd(highData, len) === dataEnd;
        this.emit(this.dataSegment(highData, this.sndBuf.peek(seqDiff(highData, this.sndBufSeq), len), fin));
        this._sndMax = seqAdd(highData, len + (fin ? 1 : 0));
        this._sndNxt = this._sndMax;
      }
      if (this.rtxDeadline === undefined) this.startRtx('rto', this.rto.rto);
    }
  }

  /**
   * Start (or change) the FIN_WAIT_2 timeout: a host socket runs without one while its
   * application may still read, and sets it once the application let go (an orphan), as Linux
   * applies tcp_fin_timeout to orphans only.
   */
  setFinWait2Timeout(now: number, ms: number): void {
    this.now = now;
    this.config.finWait2TimeoutMs = ms; // this connection's own merged copy
    if (this._state === TcpState.FinWait2 && ms > 0 && (this.rtxMode !== 'fin-wait-2' || this.rtxDeadline === undefined)) this.startRtx('fin-wait-2', ms);
  }

  /** Send a delayed ACK now, if one is pending (chimney 6.2 step 2). */
  sendPendingAck(now: number): void {
    this.now = now;
    if (this.ackDeadline === undefined && !this.ackNow) return;
    this.ackNow = true;
    this.flushAck();
  }

  /** Send a pure ACK if one is due and nothing else carried it. */
  private flushAck(): void {
    if (!this.ackNow || this._state === TcpState.Closed || this._state === TcpState.SynSent) return;
    if (this._state === TcpState.SynRcvd) return;
    this.emit(this.ackSegment());
  }

  // ---------------------------------------------------------------------------------------------
  // State export / import (chimney TCP state object; spec 1.5, 6.5, 6.10)

  /**
   * The connection's state now. Pending delayed ACKs are sent first (chimney 6.2 step 2; take the
   * output afterwards). Timer deltas are in ticks; -1 = not running.
   */
  export(now: number, opts: ExportOptions = {}): TcpExport {
    this.now = now;
    const msPerTick = opts.msPerTick ?? 1;
    if (!opts.includePrivate && opts.flushAck !== false) this.sendPendingAck(now);
    const ticks = (deadline: number | undefined): number =>
      deadline === undefined ? -1 : Math.max(0, Math.ceil((deadline - now) / msPerTick));
    const scaled = this.rto.exportScaled(msPerTick);
    const exp: TcpExport = {
      const: {
        timestamps: this.tsEnabled, sack: this.sackEnabled, windowScaling: this.wsEnabled,
        sndWindScale: this.sndWscale, rcvWindScale: this.rcvWscale, remoteMss: this.remoteMss,
      },
      delegated: {
        state: this._state,
        rcvNxt: this._rcvNxt,
        rcvWnd: this.currentWindow(),
        sndUna: this._sndUna,
        sndNxt: this._sndNxt,
        sndMax: this._sndMax,
        sndWnd: this._sndWnd,
        maxSndWnd: this.maxSndWnd,
        sndWl1: this.sndWl1,
        cwnd: Math.floor(this.cc.cwnd),
        ssthresh: Math.floor(Math.min(this.cc.ssthresh, 0xffffffff)),
        srttX8: scaled.srttX8,
        rttvarX4: scaled.rttvarX4,
        tsRecent: this.tsRecent,
        tsRecentAge: this.tsRecentAt === -Infinity ? 0 : Math.floor((now - this.tsRecentAt) / msPerTick),
        tsTime: this.tsNow(),
        totalRt: this.retransmitStartedAt === undefined ? 0 : Math.floor((now - this.retransmitStartedAt) / msPerTick),
        dupAckCount: Math.min(this.dupAcks, 255),
        sndWndProbeCount: this.sndWndProbeCount,
        kaProbeCount: this.kaProbeCount,
        kaTimeoutDelta: ticks(this.kaDeadline),
        rtCount: this.rtCount,
        rtTimeoutDelta: ticks(this.rtxDeadline),
      },
      sendData: this.sndBuf.views(),
      finQueued: this.finQueued,
      receiveData: this.rcvBuf.views(),
      finReceived: this.finReceived,
    };
    if (opts.includePrivate) {
      exp.private = {
        sndWl2: this.sndWl2,
        inRecovery: this.inRecovery,
        recoveryPoint: this.recoveryPoint,
        highRxt: this.highRxt,
        rescueRxt: undefined,
        sackBlocks: this.scoreboard.ranges(),
        outOfOrder: this.reasm.segments(),
        oooFinSeq: this.reasm.finSeq,
        reportedSackBlocks: this.reasm.sackBlocks(4),
        delayedAckDelta: this.ackDeadline === undefined ? -1 : this.ackDeadline - now,
        unackedSegments: this.bytesSinceAck,
        lastAckSent: this.lastAckSent,
        rttSeq: this.rttSeq,
        rttSentAt: this.rttSentAt - now,
        tsOffset: this.tsOffset,
        advertisedEdge: this.advertisedEdge,
        persistActive: this.rtxMode === 'persist',
        persistProbeOutstanding: this.persistProbeOutstanding,
        finWait2Active: this.rtxMode === 'fin-wait-2',
        lastChallengeAckAt: this.lastChallengeAckAt - now,
        retransmitStartedAt: this.retransmitStartedAt === undefined ? Number.NaN : this.retransmitStartedAt - now,
        cc: { ...(this.cc as unknown as Record<string, unknown>) },
        rtt: { srtt: this.rto.srtt, rttvar: this.rto.rttvar, backoffs: this.rto.backoffCount },
        tsRecentAt: this.tsRecentAt - now,
        timeWaitDelta: this.twDeadline === undefined ? -1 : this.twDeadline - now,
        swsOverride: this.swsOverride,
        timeoutReported: this.timeoutReported,
        writableWanted: this.writableWanted,
        rcvMssSeen: this.rcvMssSeen,
        lastPush: this.lastPush,
        pushMarks: [...this.pushMarks],
      };
      exp.delegated.rtTimeoutDelta = this.rtxDeadline === undefined ? -1 : this.rtxDeadline - now;
      exp.delegated.kaTimeoutDelta = this.kaDeadline === undefined ? -1 : this.kaDeadline - now;
    }
    return exp;
  }

  /** A connection continuing from exported state (chimney initiate: the target imports). */
  static import(exp: TcpExport, o: ImportOptions): TcpConnection {
    const msPerTick = o.msPerTick ?? 1;
    const c = new TcpConnection(o.config, o.localPort, o.remotePort, o.now);
    const d = exp.delegated;
    const k = exp.const;
    const problem = validateExport(exp);
    if (problem) throw new Error(`cannot import TCP state: ${problem}`);
    const now = o.now;
    c._state = d.state;
    c.applyOptions({
      windowScaling: k.windowScaling, sndWindScale: k.sndWindScale, rcvWindScale: k.rcvWindScale,
      timestamps: k.timestamps, sack: k.sack, remoteMss: k.remoteMss,
    });
    c.cc.cwnd = Math.max(d.cwnd, c.sndMss);
    c.cc.ssthresh = d.ssthresh;
    c._rcvNxt = d.rcvNxt;
    c.advertisedEdge = seqAdd(d.rcvNxt, d.rcvWnd);
    c._sndUna = d.sndUna;
    c._sndNxt = d.sndNxt;
    c._sndMax = d.sndMax;
    c._sndWnd = d.sndWnd;
    c.maxSndWnd = d.maxSndWnd;
    c.sndWl1 = d.sndWl1;
    c.sndWl2 = d.sndUna;
    c.rto.importScaled({ srttX8: d.srttX8, rttvarX4: d.rttvarX4 }, msPerTick);
    c.tsRecent = d.tsRecent;
    c.tsRecentAt = k.timestamps ? now - d.tsRecentAge * msPerTick : -Infinity;
    c.tsOffset = (d.tsTime - Math.floor(now)) >>> 0;
    c.dupAcks = d.dupAckCount;
    c.sndWndProbeCount = d.sndWndProbeCount;
    c.kaProbeCount = d.kaProbeCount;
    c.rtCount = d.rtCount;
    c.retransmitStartedAt = d.totalRt > 0 || d.rtCount > 0 ? now - d.totalRt * msPerTick : undefined;
    c.kaDeadline = d.kaTimeoutDelta < 0 ? undefined : now + d.kaTimeoutDelta * msPerTick;
    c.rtxDeadline = d.rtTimeoutDelta < 0 ? undefined : now + d.rtTimeoutDelta * msPerTick;
    const sendLen = exp.sendData.reduce((n, b) => n + b.length, 0);
    let markAt = d.sndUna;
    for (const b of exp.sendData) {
      c.sndBuf.appendCopy(b);
      // Each handed-over buffer is a send request: its last segment carries PSH (chimney R76).
      markAt = seqAdd(markAt, b.length);
      if (b.length > 0) c.pushMarks.push(markAt);
    }
    c.finQueued = exp.finQueued;
    // Once our FIN is acknowledged SND.UNA is one past it; the (empty) data ends at the FIN.
    const finAcked = exp.finQueued && (d.state === TcpState.FinWait2 || d.state === TcpState.TimeWait || d.state === TcpState.Closed);
    c.sndBufSeq = finAcked ? seqAdd(d.sndUna, -1) : d.sndUna;
    if (d.state === TcpState.TimeWait) c.twDeadline = now + c.config.timeWaitMs; // 2MSL restarts: not delegated
    const dataEnd = seqAdd(d.sndUna, sendLen);
    c.rtxMode = d.state === TcpState.FinWait2 ? 'fin-wait-2'
      : d.sndWnd === 0 && d.sndUna === d.sndMax && sendLen > 0 ? 'persist' : 'rto';
    // No FIN_WAIT_2 timeout configured here (an application still reads): none from the export either.
    if (c.rtxMode === 'fin-wait-2' && c.config.finWait2TimeoutMs <= 0) c.rtxDeadline = undefined;
    // The delegated state does not say whether the one outstanding byte of a zero window is a probe.
    c.persistProbeOutstanding = d.sndWnd === 0 && seqDiff(d.sndMax, d.sndUna) === 1 && sendLen > 0 && seqLe(d.sndMax, dataEnd);
    for (const b of exp.receiveData) c.rcvBuf.appendCopy(b);
    c.finReceived = exp.finReceived;
    c.recoveryPoint = d.sndUna;
    c.highRxt = d.sndUna;
    c.lastAckSent = d.rcvNxt;
    c.iss = seqAdd(d.sndUna, -1);
    c.irs = seqAdd(d.rcvNxt, -1);
    if (c.config.keepalive.enabled && c.kaDeadline === undefined && (d.state === TcpState.Established || d.state === TcpState.CloseWait)) {
      c.kaDeadline = now + c.config.keepalive.idleMs;
    }
    const p = exp.private;
    if (!p) c.quickAcks = c.config.quickAcksAfterImport;
    if (p) {
      c.sndWl2 = p.sndWl2;
      c.inRecovery = p.inRecovery;
      c.recoveryPoint = p.recoveryPoint;
      c.highRxt = p.highRxt;
      c.scoreboard.update(d.sndUna, d.sndMax, p.sackBlocks);
      for (const s of p.outOfOrder) c.reasm.insert(s.seq, s.data, d.rcvNxt);
      if (p.oooFinSeq !== undefined) c.reasm.setFin(p.oooFinSeq);
      // Re-touch the reported blocks, oldest first, so RFC 2018 ordering continues unchanged.
      for (let i = p.reportedSackBlocks.length - 1; i >= 0; i--) {
        const b = p.reportedSackBlocks[i];
        const seg = p.outOfOrder.find((o) => seqLe(o.seq, b.left) && seqLt(b.left, seqAdd(o.seq, o.data.length)));
        if (seg) c.reasm.insert(b.left, seg.data.subarray(seqDiff(b.left, seg.seq), seqDiff(b.left, seg.seq) + 1), d.rcvNxt);
      }
      c.ackDeadline = p.delayedAckDelta < 0 ? undefined : now + p.delayedAckDelta;
      c.bytesSinceAck = p.unackedSegments;
      c.lastAckSent = p.lastAckSent;
      c.rttSeq = p.rttSeq;
      c.rttSentAt = now + p.rttSentAt;
      c.tsOffset = p.tsOffset;
      c.advertisedEdge = p.advertisedEdge;
      if (p.persistActive) c.rtxMode = 'persist';
      c.lastChallengeAckAt = now + p.lastChallengeAckAt;
      c.retransmitStartedAt = Number.isNaN(p.retransmitStartedAt) ? undefined : now + p.retransmitStartedAt;
      c.persistProbeOutstanding = p.persistProbeOutstanding;
      Object.assign(c.cc, p.cc);
      c.rtxDeadline = d.rtTimeoutDelta < 0 ? undefined : now + d.rtTimeoutDelta;
      c.kaDeadline = d.kaTimeoutDelta < 0 ? undefined : now + d.kaTimeoutDelta;
      c.rto.importScaled({ srttX8: p.rtt.srtt === undefined ? 0 : p.rtt.srtt * 8, rttvarX4: (p.rtt.rttvar ?? 0) * 4 }, 1);
      for (let i = 0; i < p.rtt.backoffs; i++) c.rto.backoff();
      c.tsRecentAt = now + p.tsRecentAt;
      c.twDeadline = p.timeWaitDelta < 0 ? undefined : now + p.timeWaitDelta;
      c.swsOverride = p.swsOverride;
      c.timeoutReported = p.timeoutReported;
      c.writableWanted = p.writableWanted;
      c.rcvMssSeen = p.rcvMssSeen;
      c.lastPush = p.lastPush;
      c.pushMarks = [...p.pushMarks];
    } else if (c.rtxMode === 'rto' && !c.persistProbeOutstanding) {
      // RTO backoff is implied by the retransmission count; persist probes back off explicitly.
      for (let i = 0; i < d.rtCount; i++) c.rto.backoff();
    }
    if (c.rtxDeadline === undefined && seqGt(d.sndMax, d.sndUna) && c.isSynchronized) {
      // Data in flight always has a running retransmit timer (RFC 6298 5.1).
      c.rtxDeadline = now + c.rto.rto;
    }
    return c;
  }
}

/** Consistency checks on an export before importing it; returns the problem or undefined. */
export function validateExport(exp: TcpExport): string | undefined {
  const d = exp.delegated;
  const okStates = [TcpState.Established, TcpState.FinWait1, TcpState.FinWait2, TcpState.CloseWait, TcpState.Closing, TcpState.LastAck, TcpState.TimeWait, TcpState.Closed];
  if (!okStates.includes(d.state)) return `state ${TcpState[d.state] ?? d.state} cannot be imported (only synchronized states)`;
  if (seqLt(d.sndNxt, d.sndUna)) return 'SndNxt is before SndUna';
  if (seqLt(d.sndMax, d.sndNxt)) return 'SndMax is before SndNxt';
  const sendLen = exp.sendData.reduce((n, b) => n + b.length, 0);
  const limit = seqAdd(d.sndUna, sendLen + (exp.finQueued ? 1 : 0));
  if (seqGt(d.sndMax, limit)) return `SndMax ${d.sndMax} beyond the send data (${sendLen} bytes from SndUna ${d.sndUna})`;
  if (exp.const.sndWindScale > 14 || exp.const.rcvWindScale > 14) return 'window scale above 14';
  if (d.rcvWnd < 0 || d.sndWnd < 0) return 'negative window';
  return undefined;
}
