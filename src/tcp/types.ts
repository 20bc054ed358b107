/**
 * Engine-facing types: configuration, states, events and the exported connection state. The state
 * numbering and the export record follow the chimney TCP state object (spec section 1.5/1.6), so
 * that "host exports state, target imports it" needs no translation beyond ticks.
 */
import type { CongestionControlName } from './cc/congestion-control.js';
import type { RtoConfig } from './rto.js';

/** RFC 793 states, numbered as `TCP_OFFLOAD_CONNECTION_STATE`. */
export enum TcpState {
  Closed = 0,
  Listen = 1,
  SynSent = 2,
  SynRcvd = 3,
  Established = 4,
  FinWait1 = 5,
  FinWait2 = 6,
  CloseWait = 7,
  Closing = 8,
  LastAck = 9,
  TimeWait = 10,
}

/** States a host may hand to an offload target (chimney spec 1.6, R54): established and closing. */
export const OFFLOADABLE_STATES: ReadonlySet<TcpState> = new Set([
  TcpState.Established, TcpState.FinWait1, TcpState.FinWait2, TcpState.CloseWait, TcpState.Closing, TcpState.LastAck,
]);
/** States in which the peer's FIN has been received (it is inside RcvNxt). */
export const FIN_RECEIVED_STATES: ReadonlySet<TcpState> = new Set([TcpState.CloseWait, TcpState.Closing, TcpState.LastAck, TcpState.TimeWait]);
/** States in which our FIN has been queued. */
export const FIN_QUEUED_STATES: ReadonlySet<TcpState> = new Set([TcpState.FinWait1, TcpState.FinWait2, TcpState.Closing, TcpState.LastAck, TcpState.TimeWait]);

export const TCP_STATE_NAMES: Record<TcpState, string> = {
  [TcpState.Closed]: 'CLOSED',
  [TcpState.Listen]: 'LISTEN',
  [TcpState.SynSent]: 'SYN_SENT',
  [TcpState.SynRcvd]: 'SYN_RCVD',
  [TcpState.Established]: 'ESTABLISHED',
  [TcpState.FinWait1]: 'FIN_WAIT_1',
  [TcpState.FinWait2]: 'FIN_WAIT_2',
  [TcpState.CloseWait]: 'CLOSE_WAIT',
  [TcpState.Closing]: 'CLOSING',
  [TcpState.LastAck]: 'LAST_ACK',
  [TcpState.TimeWait]: 'TIME_WAIT',
};

export interface KeepaliveConfig {
  enabled: boolean;
  /** Idle time before the first probe (chimney KaTimeout). */
  idleMs: number;
  /** Interval between unanswered probes (chimney KaInterval). */
  intervalMs: number;
  /** Unanswered probes before the connection is declared dead (chimney KaProbeCount). */
  probes: number;
}

export interface TcpConfig {
  /** MSS we announce (receive side): link MTU minus IP and TCP headers. */
  mss: number;
  /** Largest number of bytes `write` accepts beyond SND.UNA. */
  sendBufferSize: number;
  /** Receive buffer: the receive window is this minus bytes not yet read (chimney InitialRcvWnd). */
  receiveBufferSize: number;
  /** Offer/accept RFC 7323 window scaling, timestamps and RFC 2018 SACK on SYNs we send or answer. */
  windowScaling: boolean;
  timestamps: boolean;
  sack: boolean;
  /** Nagle's algorithm (RFC 896). */
  nagle: boolean;
  /** Delayed-ACK upper bound; 0 acks every segment at once. */
  delayedAckMs: number;
  rto: Partial<RtoConfig>;
  congestionControl: CongestionControlName;
  /** Initial window in segments (RFC 6928: 10). */
  initialWindowSegments: number;
  /** 2*MSL, how long TIME_WAIT lasts. */
  timeWaitMs: number;
  /** FIN_WAIT_2 timeout (chimney: 120 s); 0 disables. */
  finWait2TimeoutMs: number;
  keepalive: KeepaliveConfig;
  /** Retransmissions of one segment before giving up (data, FIN, persist probes). */
  maxRetransmissions: number;
  /**
   * Total time one segment may spend being retransmitted before giving up (chimney MaxRT, ms);
   * 0 = use `maxRetransmissions` instead, Infinity = no limit.
   */
  maxRetransmitTimeMs: number;
  /** Full-sized segments received before an ACK is sent at once (TcpAckFrequency; 1 = every segment). */
  ackFrequency: number;
  /** SYN / SYN-ACK retransmissions before giving up. */
  maxSynRetransmissions: number;
  /** Upper bound for buffered out-of-order data. */
  reassemblyMaxBytes: number;
  /** Minimum interval between RFC 5961 challenge ACKs (rate limit). */
  challengeAckIntervalMs: number;
  /**
   * Chimney blind-reset mitigation (spec 4.8): an in-window RST or SYN with the wrong sequence
   * number starts (or brings forward) keepalive probing `idleMs` later; all `probes` unanswered
   * closes the connection (state Closed, a keepalive timeout). Undefined: off (plain RFC 5961).
   */
  blindResetKeepalive?: { idleMs: number; intervalMs: number; probes: number };
  /**
   * Data segments acknowledged at once (no delayed ACK) after an import without the private part,
   * i.e. a chimney hand-over. The hand-over may have dropped out-of-order data the peer saw SACKed
   * (R18): the peer then recovers from one segment, and a delayed ACK would stall each of its first
   * round trips. Like Linux's quick-ack mode. Default 0 (an offload target keeps R108 exactly).
   */
  quickAcksAfterImport: number;
  /**
   * What to do when retransmission, persist or keepalive limits are exhausted: 'close' ends the
   * connection (a host stack); 'report' only emits the event and keeps the state (an offload
   * target must not terminate on its own, chimney R1/R115).
   */
  onTimeout: 'close' | 'report';
}

export const DEFAULT_TCP_CONFIG: TcpConfig = {
  mss: 1460,
  sendBufferSize: 4 * 1024 * 1024,
  receiveBufferSize: 4 * 1024 * 1024,
  windowScaling: true,
  timestamps: true,
  sack: true,
  nagle: true,
  delayedAckMs: 40,
  rto: {},
  congestionControl: 'cubic',
  initialWindowSegments: 10,
  timeWaitMs: 60_000,
  finWait2TimeoutMs: 120_000,
  keepalive: { enabled: false, idleMs: 7_200_000, intervalMs: 75_000, probes: 9 },
  maxRetransmissions: 15,
  maxRetransmitTimeMs: 0,
  ackFrequency: 2,
  maxSynRetransmissions: 6,
  reassemblyMaxBytes: 8 * 1024 * 1024,
  challengeAckIntervalMs: 1000,
  quickAcksAfterImport: 0,
  onTimeout: 'close',
};

export type TcpErrorCode = 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT';

export type TcpEvent =
  /** The handshake completed (ESTABLISHED reached). */
  | { type: 'connected' }
  /** In-order bytes became available to `read`. */
  | { type: 'readable'; bytes: number }
  /** The peer's FIN was received in sequence: after the queued bytes, the stream ends. */
  | { type: 'peer-fin' }
  /** SND.UNA advanced: `bytes` of stream data (not SYN/FIN) were newly acknowledged. */
  | { type: 'acked'; sndUna: number; bytes: number; finAcked: boolean }
  /** Send-buffer space became available after being full. */
  | { type: 'writable' }
  /** A retransmission, persist or keepalive limit was exhausted (see TcpConfig.onTimeout). */
  | { type: 'timeout'; reason: 'retransmit' | 'persist' | 'keepalive' | 'syn' | 'fin-wait-2' }
  /** TIME_WAIT entered. */
  | { type: 'time-wait' }
  /** The connection is gone. `error` is set for abnormal ends. */
  | { type: 'closed'; error?: TcpErrorCode };

/**
 * The connection's state in the chimney split (spec 1.5), engine units: times in ms, SRTT/RTTVAR as
 * ticks x8 / x4 with `msPerTick`. Timer deltas: -1 (0xFFFFFFFF on the chimney wire) = not running.
 */
export interface TcpConstState {
  timestamps: boolean;
  sack: boolean;
  windowScaling: boolean;
  /** Shift applied to windows the peer advertises. */
  sndWindScale: number;
  /** Shift we apply to windows we advertise. */
  rcvWindScale: number;
  /** MSS the peer announced (before subtracting options). */
  remoteMss: number;
}

export interface TcpDelegatedState {
  state: TcpState;
  rcvNxt: number;
  rcvWnd: number;
  sndUna: number;
  sndNxt: number;
  sndMax: number;
  sndWnd: number;
  maxSndWnd: number;
  sndWl1: number;
  cwnd: number;
  ssthresh: number;
  /** Smoothed RTT in ticks x 8 (0 = no sample yet). */
  srttX8: number;
  /** RTT variance in ticks x 4. */
  rttvarX4: number;
  tsRecent: number;
  /** Ticks since TsRecent was set. */
  tsRecentAge: number;
  /** Current value of our timestamp clock (the value we would send now). */
  tsTime: number;
  /** Ticks spent retransmitting the current segment. */
  totalRt: number;
  dupAckCount: number;
  sndWndProbeCount: number;
  kaProbeCount: number;
  /** Ticks until the keepalive timer fires; -1 = not running. */
  kaTimeoutDelta: number;
  rtCount: number;
  /** Ticks until the retransmit timer (or persist, or FIN_WAIT_2 timer) fires; -1 = not running. */
  rtTimeoutDelta: number;
}

/**
 * Engine-private details that make an engine-to-engine move exact. Times in it are relative to the
 * export instant, except inside `cc`, whose timestamps are absolute: only valid when both engines
 * share one clock (same process, same simulation). Never carried over the chimney IPC.
 */
export interface TcpPrivateState {
  sndWl2: number;
  inRecovery: boolean;
  recoveryPoint: number;
  highRxt: number;
  rescueRxt: number | undefined;
  sackBlocks: Array<{ left: number; right: number }>;
  /** Out-of-order received data (seq, bytes) and an out-of-order FIN. */
  outOfOrder: Array<{ seq: number; data: Uint8Array }>;
  oooFinSeq: number | undefined;
  /** SACK blocks we report, most recent first (RFC 2018 ordering history). */
  reportedSackBlocks: Array<{ left: number; right: number }>;
  /** Pending delayed ACK: ms until it fires, or -1. */
  delayedAckDelta: number;
  unackedSegments: number;
  lastAckSent: number;
  rttSeq: number | undefined;
  rttSentAt: number;
  tsOffset: number;
  advertisedEdge: number;
  persistActive: boolean;
  persistProbeOutstanding: boolean;
  finWait2Active: boolean;
  lastChallengeAckAt: number;
  retransmitStartedAt: number;
  /** Congestion-control internals (own enumerable fields of the strategy object). */
  cc: Record<string, unknown>;
  /** Exact RTT estimator state (ms) and backoff count. */
  rtt: { srtt: number | undefined; rttvar: number | undefined; backoffs: number };
  tsRecentAt: number;
  /** ms until TIME_WAIT ends, or -1. */
  timeWaitDelta: number;
  swsOverride: boolean;
  timeoutReported: boolean;
  writableWanted: boolean;
  rcvMssSeen: number;
  lastPush: boolean;
  /** Sequence numbers just past the end of each write not yet acknowledged (PSH points). */
  pushMarks: number[];
}

export interface TcpExport {
  const: TcpConstState;
  delegated: TcpDelegatedState;
  /** Bytes from SND.UNA on: sent-unacknowledged then never-sent, in order (FIN excluded). */
  sendData: Uint8Array[];
  /** Whether a FIN follows sendData (the application closed). */
  finQueued: boolean;
  /** Received, acknowledged, not yet read bytes, in order, ending at RcvNxt (before a received FIN). */
  receiveData: Uint8Array[];
  /** Whether the peer's FIN has been received (and is counted in RcvNxt). */
  finReceived: boolean;
  private?: TcpPrivateState;
}
