/**
 * Representative and edge-value messages of every type, shared by the codec, fuzz and socket
 * tests. Edge values: 0 and 0xFFFFFFFF in u32 fields, -1 timers, shifts of 14, empty arrays where
 * allowed, IPv6 paths, three-level trees, 0xFF counts, long byte arrays.
 */
import { AdapterStatus, TcpEventType, UploadReason, type Block, type BlockResult, type NeighborState, type PathState, type RefBlock, type TcpState } from '../../src/chimney/state.js';
import { Status } from '../../src/chimney/status.js';
import type { Message, MessageName } from '../../src/ipc/messages.js';
import { TcpState as Conn } from '../../src/tcp/types.js';

const MAX = 0xffffffff;

export function seqBytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const mac = (...b: number[]): Uint8Array => new Uint8Array(b);
const v4 = (...b: number[]): Uint8Array => new Uint8Array(b);
const v6 = (last: number): Uint8Array => new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);

export const neighbor: NeighborState = {
  const: { dlSourceAddress: mac(0, 0, 0, 0, 0, 0), vlanId: 0 },
  cached: { dlDestinationAddress: mac(0x02, 0x42, 0xac, 0x11, 0x00, 0x02), hostReachabilityDelta: MAX },
  delegated: { nicReachabilityDelta: 0 },
};

export const neighborEdge: NeighborState = {
  const: { dlSourceAddress: mac(0xfe, 0xff, 0xff, 0xff, 0xff, 0xff), vlanId: 4095 },
  cached: { dlDestinationAddress: mac(0xff, 0xff, 0xff, 0xff, 0xff, 0xff), hostReachabilityDelta: 0 },
  delegated: { nicReachabilityDelta: MAX },
};

export const path4: PathState = { version: 4, const: { sourceAddress: v4(10, 0, 0, 1), destinationAddress: v4(10, 0, 0, 2) }, cached: { pathMtu: 1500 } };
export const path6: PathState = { version: 6, const: { sourceAddress: v6(1), destinationAddress: v6(2) }, cached: { pathMtu: MAX } };

export function tcpState(over: Partial<TcpState['delegated']> = {}): TcpState {
  return {
    const: { flags: 0x07, remotePort: 65535, localPort: 0, sndWindScale: 14, rcvWindScale: 14, remoteMss: 1460, hashValue: MAX },
    cached: {
      flags: 0x1f, initialRcvWnd: 65535, rcvIndicationSize: 0, kaProbeCount: 255, kaTimeout: 7_200_000, kaInterval: 1000, maxRt: MAX,
      flowLabel: 0xfffff, ttlOrHopLimit: 64, tosOrTrafficClass: 0xb8, userPriority: 7,
    },
    delegated: {
      state: Conn.Established, flags: 0, rcvNxt: MAX, rcvWnd: 65535, sndUna: 0xfffffff0, sndNxt: 0x10, sndMax: 0x20, sndWnd: 0, maxSndWnd: 1 << 30,
      sndWl1: 1, cwnd: 14600, ssthresh: MAX, srttX8: 0x10000, rttvarX4: 0, tsRecent: MAX, tsRecentAge: 0, tsTime: 123456789, totalRt: 0,
      dupAckCount: 255, sndWndProbeCount: 0, kaProbeCount: 3, kaTimeoutDelta: -1, rtCount: 0, rtTimeoutDelta: 0xfffffffe, dWnd: 0,
      ...over,
    },
  };
}

/** Three levels: neighbor -> {path v4 -> {tcp, tcp}, path v6 (placeholder) -> {tcp}}. */
export const initiateTree: Block[] = [
  {
    blockId: 1, role: 'new', layer: 'neighbor', handle: 100, state: neighbor, children: [
      {
        blockId: 2, role: 'new', layer: 'path', handle: 200, state: path4, children: [
          {
            blockId: 3, role: 'new', layer: 'tcp', handle: 300,
            state: tcpState({
              sendChain: [{ bufferId: 7, bytes: seqBytes(1000, 7) }, { bufferId: 8, bytes: seqBytes(3, 8) }],
              sendDataHead: 7, sendDataTail: 8, bufferedData: seqBytes(17, 9),
            }),
            children: [],
          },
          { blockId: 4, role: 'new', layer: 'tcp', handle: 0, state: tcpState({ kaTimeoutDelta: 0, rtTimeoutDelta: -1, state: Conn.LastAck }), children: [] },
        ],
      },
      {
        blockId: 5, role: 'linker', layer: 'path', ctx: MAX, children: [
          { blockId: 6, role: 'new', layer: 'tcp', handle: MAX, state: tcpState(), children: [] },
        ],
      },
    ],
  },
  { blockId: 9, role: 'placeholder', layer: 'neighbor', children: [{ blockId: 10, role: 'new', layer: 'path', handle: 1, state: path6, children: [] }] },
  { blockId: 11, role: 'new', layer: 'neighbor', handle: 2, state: neighborEdge, children: [] },
];

export const refTree: RefBlock[] = [
  { blockId: 1, ctx: 10, layer: 'neighbor', children: [{ blockId: 2, ctx: 20, layer: 'path', children: [{ blockId: 3, ctx: 30, layer: 'tcp', children: [] }, { blockId: 4, ctx: MAX, layer: 'tcp', children: [] }] }] },
  { blockId: 5, ctx: 0, layer: 'neighbor', children: [] },
];

export const updateTree: RefBlock[] = [
  {
    blockId: 1, ctx: 10, layer: 'neighbor', cached: { dlDestinationAddress: mac(1, 2, 3, 4, 5, 6), hostReachabilityDelta: 5 }, children: [
      { blockId: 2, ctx: 20, layer: 'path', cached: { pathMtu: 1280 }, children: [{ blockId: 3, ctx: 30, layer: 'tcp', cached: tcpState().cached, children: [] }] },
      { blockId: 4, ctx: 21, layer: 'path', children: [] },
    ],
  },
];

export const queryResults: BlockResult[] = [
  { blockId: 1, status: Status.SUCCESS, neighbor },
  { blockId: 2, status: Status.SUCCESS, path: path6 },
  { blockId: 3, status: Status.SUCCESS, tcp: tcpState({ sendBacklogSize: MAX, receiveBacklogSize: 0 }) },
  { blockId: 4, status: Status.FAILURE },
  { blockId: 5, status: Status.SUCCESS, tcp: { delegated: tcpState().delegated }, neighbor: { delegated: { nicReachabilityDelta: 3 } } },
];

export const terminateResults: BlockResult[] = [
  { blockId: 1, status: Status.SUCCESS, neighbor: { delegated: { nicReachabilityDelta: 42 } } },
  { blockId: 2, status: Status.SUCCESS },
  {
    blockId: 3, status: Status.SUCCESS, tcp: {
      delegated: tcpState({
        sendChain: [{ bufferId: 7, ackedBytes: 999 }, { bufferId: 8, ackedBytes: 0 }], sendDataHead: 7, sendDataTail: 8,
        bufferedBuffers: [{ bufferId: MAX, bytes: seqBytes(5000, 3) }, { bufferId: 0, bytes: new Uint8Array(0) }],
      }).delegated,
    },
  },
  { blockId: 4, status: Status.FAILURE, tcp: { delegated: tcpState({ state: Conn.Closed, kaTimeoutDelta: -1, rtTimeoutDelta: -1 }).delegated } },
  { blockId: 5, status: Status.SUCCESS, tcp: { delegated: tcpState({ sendChain: [], bufferedBuffers: [] }).delegated } },
];

const caps = { supportIPv4: true, supportIPv6: false, supportSack: true, tcpConnectionOffloadCapacity: MAX, ticksPerSecond: 1000 };

/** At least one sample per message type. */
export const SAMPLES: Message[] = [
  { type: 'Hello', version: 1, role: 'host', software: 'chimney-host 0.1.0' },
  { type: 'Hello', version: 0xffff, role: 'target', software: '', capabilities: caps },
  { type: 'Hello', version: 1, role: 'target', software: 'ünïcødé ✓ \u{1F600}', capabilities: { ...caps, supportIPv4: false, supportIPv6: true, supportSack: false, tcpConnectionOffloadCapacity: 0, ticksPerSecond: 10 } },
  { type: 'Error', refKind: 0x0020, refId: 7, status: Status.IPC_UNKNOWN_CONTEXT, problem: 'TcpSend for unknown context 7' },
  { type: 'Error', refKind: 0, refId: 0, status: Status.IPC_LIMIT, problem: '' },
  { type: 'SetParameters', opId: MAX, ticksPerSecond: 1000, tcpAckFrequency: 2, tcpDelayedAckTicks: 200, tcpMaximumRetransmissions: 255, tcpDoubtReachabilityRetransmissions: 0, tcpSwsPreventionTicks: MAX, tcpDuplicateAckThreshold: 3, tcpPushTicks: 500, nceStaleTicks: 0 },
  { type: 'SetParametersComplete', opId: 0, status: Status.SUCCESS },
  { type: 'StatusIndication', code: AdapterStatus.UploadAll },
  { type: 'StatusIndication', code: AdapterStatus.OffloadResume, capabilities: caps },
  { type: 'RawFrame', frame: seqBytes(1514, 5) },
  { type: 'RawFrame', frame: new Uint8Array([0]) },
  { type: 'RawFramesSeen', count: 0 },
  { type: 'RawFramesSeen', count: 0xffffffff },
  { type: 'InitiateOffload', opId: 1, blocks: initiateTree },
  { type: 'InitiateOffload', opId: 2, blocks: [{ blockId: 0, role: 'placeholder', layer: 'tcp', children: [] }] },
  { type: 'UpdateOffload', opId: 3, blocks: updateTree },
  { type: 'QueryOffload', opId: 4, blocks: refTree },
  { type: 'InvalidateOffload', opId: 5, blocks: [{ blockId: 1, ctx: 1, layer: 'neighbor', children: [] }] },
  { type: 'TerminateOffload', opId: 6, blocks: refTree },
  { type: 'InitiateOffloadComplete', opId: 1, results: [{ blockId: 1, status: Status.OFFLOAD_PARTIAL_SUCCESS, ctx: 10 }, { blockId: 2, status: Status.OFFLOAD_TCP_ENTRIES }, { blockId: 9, status: Status.SUCCESS }] },
  { type: 'InitiateOffloadComplete', opId: 2, results: [] },
  { type: 'UpdateOffloadComplete', opId: 3, results: [{ blockId: 1, status: Status.SUCCESS }, { blockId: 2, status: Status.FAILURE }] },
  { type: 'QueryOffloadComplete', opId: 4, results: queryResults },
  { type: 'InvalidateOffloadComplete', opId: 5, results: [{ blockId: 1, status: Status.SUCCESS }] },
  { type: 'TerminateOffloadComplete', opId: 6, results: terminateResults },
  { type: 'TcpSend', ctx: 7, buffers: [{ requestId: 1, bytes: seqBytes(65536, 2) }, { requestId: MAX, bytes: new Uint8Array([0xff]) }] },
  { type: 'TcpReceive', ctx: 7, requests: [{ requestId: 1, capacity: 0, noPush: false }, { requestId: 2, capacity: 8, noPush: true, prefilled: seqBytes(8, 4) }, { requestId: 3, capacity: MAX, noPush: false, prefilled: new Uint8Array([1]) }] },
  { type: 'TcpReceiveReturn', bufferIds: [0, 1, MAX] },
  { type: 'TcpDisconnect', ctx: 7, requestId: 9, flags: 0x01, bytes: seqBytes(100, 6) },
  { type: 'TcpDisconnect', ctx: 7, requestId: 10, flags: 0x02, bytes: new Uint8Array(0) },
  { type: 'TcpForward', ctx: 7, segments: [{ requestId: 4, tcpBytes: seqBytes(20, 11) }, { requestId: 5, tcpBytes: seqBytes(1480, 12) }] },
  { type: 'IndicateReply', indicationId: 1, status: Status.SUCCESS, bytesConsumed: 1500 },
  { type: 'IndicateReply', indicationId: 2, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 },
  { type: 'IndicateReply', indicationId: MAX, status: Status.OFFLOAD_DATA_PARTIALLY_ACCEPTED, bytesConsumed: 1 },
  { type: 'ReachabilityReply', indicationId: 3, hostReachabilityDelta: MAX },
  { type: 'TcpSendComplete', entries: [{ ctx: 7, requestId: 1, status: Status.SUCCESS, bytesTransferred: 65536 }, { ctx: 8, requestId: MAX, status: Status.REQUEST_ABORTED, bytesTransferred: 0 }] },
  { type: 'TcpReceiveComplete', entries: [{ ctx: 7, requestId: 2, status: Status.SUCCESS, bytesTransferred: 8, bytes: seqBytes(8, 13) }, { ctx: 7, requestId: 1, status: Status.UPLOAD_IN_PROGRESS, bytesTransferred: 0, bytes: new Uint8Array(0) }] },
  { type: 'TcpDisconnectComplete', ctx: 7, requestId: 9, status: Status.SUCCESS, bytesTransferred: 100 },
  { type: 'TcpForwardComplete', entries: [{ ctx: 7, requestId: 4, status: Status.UPLOAD_IN_PROGRESS }] },
  { type: 'TcpReceiveIndicate', handle: 300, indicationId: 1, bufferId: MAX, bytes: seqBytes(4096, 14) },
  { type: 'TcpEvent', handle: 300, eventType: TcpEventType.Retrieve, info: UploadReason.HardwareFailure },
  { type: 'TcpEvent', handle: 0, eventType: TcpEventType.SendBacklogChange, info: MAX },
  { type: 'TcpEvent', handle: MAX, eventType: TcpEventType.Abort, info: 0 },
  { type: 'NeighborReachabilityQuery', indicationId: 9, handle: 100, neighbor: neighborEdge },
];

export function samplesOf(name: MessageName): Message[] {
  return SAMPLES.filter((m) => m.type === name);
}
