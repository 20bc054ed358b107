/**
 * The offload state objects of the chimney model (spec 1.3-1.6): neighbor, path and TCP, each
 * split CONST / CACHED / DELEGATED, plus the enumerations the operations and events use. These are
 * the records both sides and the IPC codec share; `docs/ipc-protocol.md` describes them field by
 * field.
 */
import type { TcpDelegatedState } from '../tcp/types.js';

/** OFFLOAD_STATE_TYPE (spec 1.6). Only the combined types are used for initiate (spec 9 item 18). */
export enum OffloadStateType {
  NeighborConst = 1,
  NeighborCached = 2,
  NeighborDelegated = 3,
  Neighbor = 4,
  Ip4Const = 5,
  Ip4Cached = 6,
  Ip4Delegated = 7,
  Ip4 = 8,
  Ip6Const = 9,
  Ip6Cached = 10,
  Ip6Delegated = 11,
  Ip6 = 12,
  TcpConst = 13,
  TcpCached = 14,
  TcpDelegated = 15,
  TcpResource = 16,
  Tcp = 17,
}

export type Layer = 'neighbor' | 'path' | 'tcp';

export function layerOf(type: OffloadStateType): Layer {
  if (type <= OffloadStateType.Neighbor) return 'neighbor';
  if (type <= OffloadStateType.Ip6) return 'path';
  return 'tcp';
}

/** TCP_OFFLOAD_EVENT_TYPE. */
export enum TcpEventType {
  SendBacklogChange = 1,
  Disconnect = 2,
  Retrieve = 3,
  Abort = 4,
}

/** TCP_UPLOAD_REASON. */
export enum UploadReason {
  LowActivity = 1,
  HighDropRate = 2,
  SmallIO = 3,
  NoBufferPreposting = 4,
  ReceivedUrgentData = 5,
  HighFragmentation = 6,
  HighOutOfOrderPackets = 7,
  TimeoutExpiration = 8,
  InvalidState = 9,
  UploadRequested = 10,
  HardwareFailure = 11,
}

/** Reasons the host must honour (spec 5.1): the target stops processing the connection. */
export const MANDATORY_UPLOAD_REASONS: ReadonlySet<UploadReason> = new Set([
  UploadReason.HardwareFailure, UploadReason.InvalidState, UploadReason.ReceivedUrgentData,
  UploadReason.TimeoutExpiration, UploadReason.UploadRequested,
]);

/** Adapter-wide status indications (spec 5.5). */
export enum AdapterStatus {
  UploadAll = 1,
  OffloadPause = 2,
  OffloadResume = 3,
}

export const TCP_CONST_FLAG = { TIMESTAMP_ENABLED: 0x01, SACK_ENABLED: 0x02, WINDOW_SCALING_ENABLED: 0x04 } as const;
export const TCP_CACHED_FLAG = {
  KEEP_ALIVE_ENABLED: 0x01, NAGLING_ENABLED: 0x02, KEEP_ALIVE_RESTART: 0x04, MAX_RT_RESTART: 0x08, UPDATE_RCV_WND: 0x10,
} as const;
export const TCP_DISCONNECT = { GRACEFUL: 0x01, ABORTIVE: 0x02 } as const;

/** 0xFFFFFFFF on the wire: a timer that is not running (engine uses -1). */
export const TIMER_NOT_RUNNING = 0xffffffff;
/** 0xFFFFFFFF: backlog sizes the target does not support. */
export const BACKLOG_UNSUPPORTED = 0xffffffff;

// ------------------------------------------------------------------------------------- neighbor

export interface NeighborConst {
  /** Source MAC for frames through this neighbor; all zero = the interface MAC. */
  dlSourceAddress: Uint8Array;
  /** 12-bit VLAN id; 0 = the interface's VLAN configuration. */
  vlanId: number;
}

export interface NeighborCached {
  /** MAC of the next hop. */
  dlDestinationAddress: Uint8Array;
  /** Ticks since the host last confirmed reachability. */
  hostReachabilityDelta: number;
}

export interface NeighborDelegated {
  /** Ticks since the target last saw forward progress. */
  nicReachabilityDelta: number;
}

export interface NeighborState {
  const: NeighborConst;
  cached: NeighborCached;
  delegated: NeighborDelegated;
}

// ------------------------------------------------------------------------------------- path

export interface PathConst {
  /** 4 bytes for IPv4, 16 for IPv6 (network byte order). */
  sourceAddress: Uint8Array;
  destinationAddress: Uint8Array;
}

export interface PathCached {
  pathMtu: number;
}

export interface PathState {
  version: 4 | 6;
  const: PathConst;
  cached: PathCached;
}

// ------------------------------------------------------------------------------------- tcp

export interface TcpConst {
  /** TCP_CONST_FLAG bits. */
  flags: number;
  remotePort: number;
  localPort: number;
  /** Shift applied to windows the peer advertises. */
  sndWindScale: number;
  /** Shift applied to windows we advertise. */
  rcvWindScale: number;
  remoteMss: number;
  hashValue: number;
}

export interface TcpCached {
  /** TCP_CACHED_FLAG bits. */
  flags: number;
  initialRcvWnd: number;
  rcvIndicationSize: number;
  kaProbeCount: number;
  /** Ticks. */
  kaTimeout: number;
  /** Ticks. */
  kaInterval: number;
  /** Ticks; 0 = use TcpMaximumRetransmissions; 0xFFFFFFFF = no limit. */
  maxRt: number;
  flowLabel: number;
  ttlOrHopLimit: number;
  tosOrTrafficClass: number;
  userPriority: number;
}

/** A send buffer handed over at initiate (bytes) or returned at terminate (ackedBytes skipped). */
export interface SendChainEntry {
  bufferId: number;
  /** Initiate: the buffer's bytes. Terminate: absent (the host kept its copy). */
  bytes?: Uint8Array;
  /** Terminate: bytes at the front of this buffer the peer already acknowledged. */
  ackedBytes?: number;
}

/** A target buffer lent to the host in a terminate's BufferedData (returned by receive-return). */
export interface LentBuffer {
  bufferId: number;
  bytes: Uint8Array;
}

/**
 * TCP_OFFLOAD_STATE_DELEGATED. Timer deltas, SRtt (x8) and RttVar (x4) in ticks; timer deltas use
 * -1 in this record for "not running" (0xFFFFFFFF on the wire). The chain and buffered-data
 * fields are significant only at initiate/terminate, the backlog sizes only in a query.
 */
export interface TcpDelegated extends TcpDelegatedState {
  flags: number;
  dWnd: number;
  sendChain?: SendChainEntry[];
  sendDataHead?: number;
  sendDataTail?: number;
  /** Initiate: the host's buffered receive bytes (ending at RcvNxt). */
  bufferedData?: Uint8Array;
  /** Terminate: the target's undelivered bytes, lent until receive-return. */
  bufferedBuffers?: LentBuffer[];
  sendBacklogSize?: number;
  receiveBacklogSize?: number;
}

export interface TcpState {
  const: TcpConst;
  cached: TcpCached;
  delegated: TcpDelegated;
}

// ------------------------------------------------------------------------------------- trees

/**
 * One block of a state tree (spec 1.8, section 8.1 translation). `children` is the
 * DependentBlockList (next layer up), array order is the NextBlock chain.
 */
export type Block =
  | { blockId: number; role: 'placeholder'; layer: Layer; children: Block[] }
  | { blockId: number; role: 'linker'; layer: Layer; ctx: number; children: Block[] }
  | { blockId: number; role: 'new'; layer: 'neighbor'; handle: number; state: NeighborState; children: Block[] }
  | { blockId: number; role: 'new'; layer: 'path'; handle: number; state: PathState; children: Block[] }
  | { blockId: number; role: 'new'; layer: 'tcp'; handle: number; state: TcpState; children: Block[] };

/** A reference to an offloaded object in query/update/invalidate/terminate trees. */
export interface RefBlock {
  blockId: number;
  ctx: number;
  layer: Layer;
  /** Update: the new CACHED values (neighbor, path or TCP per layer). */
  cached?: NeighborCached | PathCached | TcpCached;
  children: RefBlock[];
}

export interface BlockResult {
  blockId: number;
  status: number;
  /** Initiate: the context id of a newly offloaded object. */
  ctx?: number;
  /** Query: the current state; terminate: delegated state of TCP / neighbor objects. */
  neighbor?: Partial<NeighborState>;
  path?: Partial<PathState>;
  tcp?: Partial<TcpState>;
}
