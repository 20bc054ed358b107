/**
 * The message set of the host <-> target protocol (spec 8.2): one table, from which the message
 * types, the codec and the protocol document all come. Type codes are stable: never renumber, only
 * add (and bump PROTOCOL_VERSION when meaning changes).
 */
import { AdapterStatus, TCP_DISCONNECT, TcpEventType, UploadReason, type BlockResult } from '../chimney/state.js';
import { Status } from '../chimney/status.js';
import { MAX_DATA_BYTES, MAX_LIST, MAX_PROBLEM_BYTES, MAX_SOFTWARE_BYTES } from './limits.js';
import {
  array, bool, bytes, codeSet, enumOf, f, numChoice, opt, refine, strEnum, string, struct, u16, u32, u8, type Codec, type CodecType,
  type Simplify,
} from './schema.js';
import {
  block, blockResult, blockResultProblem, duplicateBlockId, neighborState, refBlock, RESULT_RULES, siblingsShareLayer, status, updateRefBlock,
  type ResultOp,
} from './state-schema.js';

/** Bumped whenever the encoding or the meaning of any message changes. */
export const PROTOCOL_VERSION = 2; // 2: RawFramesSeen (the hand-over replay mark)

export type Direction = 'host->target' | 'target->host' | 'both';

interface MessageDef<D extends Direction, C> {
  readonly code: number;
  readonly dir: D;
  readonly spec: string;
  readonly doc: string;
  readonly codec: C;
}

function m<const D extends Direction, C>(code: number, dir: D, spec: string, doc: string, codec: C): MessageDef<D, C> {
  return { code, dir, spec, doc, codec };
}

const id = u32;
const opId = f(id, 'host-chosen operation id, echoed by the completion', '2.0, 8.1');
const ctx = f(id, 'context id of the offloaded TCP connection (from its initiate result)', '1.9, 8.1');
const requestId = f(id, 'host-chosen request id; exactly one completion names it; not reused until completed', '8.1');

function unique(ids: readonly number[], what: string): string | undefined {
  const seen = new Set<number>();
  for (const x of ids) {
    if (seen.has(x)) return `${what} ${x} appears twice`;
    seen.add(x);
  }
  return undefined;
}

// ------------------------------------------------------------------------------------- handshake

export const capabilities = refine(
  struct('Capabilities', 'what the target offers (NDIS_TCP_CONNECTION_OFFLOAD)', {
    supportIPv4: f(bool, 'offloads IPv4 connections', '2.8'),
    supportIPv6: f(bool, 'offloads IPv6 connections', '2.8'),
    supportSack: f(bool, 'generates and consumes SACK', '2.8'),
    tcpConnectionOffloadCapacity: f(u32, 'most connections offloaded at once (IPv4 + IPv6)', '2.8'),
    ticksPerSecond: f(u32, 'the target\'s default tick rate, used until SetParameters sets one', '0, 2.8'),
  }),
  'supports IPv4 or IPv6 (at least one)',
  (c) => (c.supportIPv4 || c.supportIPv6 ? undefined : 'a target supports IPv4, IPv6 or both'),
);
export type Capabilities = CodecType<typeof capabilities>;

const role = strEnum('Role', ['host', 'target']);

const hello = refine(
  struct('Hello', 'first message on the stream, in both directions', {
    version: f(u16, 'protocol version the sender speaks; must equal the peer\'s', '8.1'),
    role: f(role, 'host or target; each side expects the other role', '8.1'),
    software: f(string(MAX_SOFTWARE_BYTES), 'name and version of the sending program, for logs', '8.1'),
    capabilities: f(opt(capabilities), 'target only: its capabilities', '2.8, 8.1'),
  }),
  'a target hello carries capabilities, a host hello does not',
  (h) => ((h.role === 'target') === (h.capabilities !== undefined) ? undefined : `a ${h.role} hello ${h.role === 'target' ? 'lacks' : 'carries'} capabilities`),
);

const error = struct('Error', 'the reply to a message that could not be decoded or is not valid now', {
  refKind: f(u16, 'type code of the offending message; 0 when unknown (e.g. a bad frame length)', '8.1'),
  refId: f(id, 'first u32 of the offending body (its opId, ctx or indicationId), or 0', '8.1'),
  status: f(status, 'an IPC_* or NDIS status', '1.7'),
  problem: f(string(MAX_PROBLEM_BYTES), 'what was wrong, for a human: "TcpSend for unknown context 7"', '8.1, 8.2'),
});

// ------------------------------------------------------------------------------------- control

const ticksPerSecond = numChoice('TicksPerSecond', [10, 100, 1000], 'u32');

const setParameters = struct('SetParameters', 'adapter-wide parameters (NDIS_TCP_CONNECTION_OFFLOAD_PARAMETERS), sent at bind time', {
  opId,
  ticksPerSecond: f(ticksPerSecond, 'tick rate of every timer-valued variable', '0, 2.8'),
  tcpAckFrequency: f(u8, 'segments received before an ACK is sent', '2.8'),
  tcpDelayedAckTicks: f(u8, 'delayed-ACK timer, ticks', '2.8'),
  tcpMaximumRetransmissions: f(u8, 'retransmissions of a segment before the target may ask for upload', '2.8, 5.2'),
  tcpDoubtReachabilityRetransmissions: f(u8, 'retransmissions before neighbor reachability is in doubt', '2.8'),
  tcpSwsPreventionTicks: f(u32, 'SWS send and receive timers, ticks', '2.8'),
  tcpDuplicateAckThreshold: f(u32, 'duplicate ACKs before fast retransmit', '2.8'),
  tcpPushTicks: f(u32, 'push timer, ticks', '2.8, 4.1'),
  nceStaleTicks: f(u32, 'inactivity after which a neighbor entry is stale, ticks', '2.8, 5.3'),
});

const setParametersComplete = struct('SetParametersComplete', 'answer to SetParameters', {
  opId,
  status: f(status, 'SUCCESS, or why the parameters were refused', '1.7'),
});

const statusIndication = refine(
  struct('StatusIndication', 'adapter-wide status (NdisMIndicateStatusEx)', {
    code: f(enumOf('AdapterStatus', AdapterStatus, 'u8'), 'UploadAll 1, OffloadPause 2, OffloadResume 3', '5.5'),
    capabilities: f(opt(capabilities), 'OffloadResume only: the capabilities now in force (the only way they change)', '2.8, 5.5'),
  }),
  'capabilities only with OffloadResume',
  (s) => (s.capabilities === undefined || s.code === AdapterStatus.OffloadResume ? undefined : 'capabilities are only significant with OffloadResume'),
);

const rawFrame = struct('RawFrame', 'a whole frame on the non-offload path (target -> host: received; host -> target: to send)', {
  frame: f(bytes(MAX_DATA_BYTES, 1), 'the frame as on the link (Ethernet for tap, IP packet for raw)', '2.6, 8.1'),
});

const rawFramesSeen = struct('RawFramesSeen', 'how many RawFrame messages from the target the host has processed so far on this binding', {
  count: f(u32, 'RawFrame messages target -> host processed, modulo 2^32; sent right before an InitiateOffload, it tells the target which frames of the 4-tuple the host will hold (section 7)', '2.6'),
});

// ------------------------------------------------------------------------------------- state operations

interface TreeNode {
  blockId: number;
  layer: 'neighbor' | 'path' | 'tcp';
  children: ReadonlyArray<TreeNode>;
}

function tree<T extends TreeNode>(name: string, doc: string, blockCodec: Codec<T>) {
  return refine(
    struct(name, doc, {
      opId,
      blocks: f(array(blockCodec, { max: MAX_LIST, min: 1 }), 'the root block list (NextBlock chain of the root layer)', '1.8'),
    }),
    'blockIds are unique in the tree; root blocks are all of one layer',
    (o) => duplicateBlockId(o.blocks) ?? siblingsShareLayer(o.blocks),
  );
}

function completion(name: string, op: ResultOp) {
  return refine(
    struct(name, `completion of ${op}: one result per block of the request, placeholders included`, {
      opId,
      results: f(array(blockResult, { max: MAX_LIST * 3 }), 'the status (and state) of every block, named by blockId', '2.0'),
    }),
    `blockIds are unique; ${RESULT_RULES[op]}`,
    (o) => unique(o.results.map((r) => r.blockId), 'blockId') ?? resultsProblem(o.results, op),
  );
}

function resultsProblem(results: readonly BlockResult[], op: ResultOp): string | undefined {
  for (let i = 0; i < results.length; i++) {
    const p = blockResultProblem(results[i]!, op);
    if (p !== undefined) return `results[${i}]: ${p}`;
  }
  return undefined;
}

// ------------------------------------------------------------------------------------- data path

const sendBuffer = struct('SendBuffer', 'one send request', {
  requestId,
  bytes: f(bytes(MAX_DATA_BYTES, 1), 'data to send, in order after everything posted before', '3.1'),
});

const receiveRequest = refine(
  struct('ReceiveRequest', 'one posted receive request (an application buffer)', {
    requestId,
    capacity: f(u32, 'bytes the request can hold, prefilled bytes included; 0 = a zero-byte request that re-enables indications', '4.1'),
    noPush: f(bool, 'TcpReceiveNoPush: true = nonpush mode (complete only when full)', '1.6, 4.1'),
    prefilled: f(opt(bytes(MAX_DATA_BYTES, 1)), 'bytes the host already put in the request (TcpReceiveBytesTransferred)', '1.6, 4.1'),
  }),
  'prefilled bytes fit in capacity',
  (q) => (q.prefilled === undefined || q.prefilled.length <= q.capacity ? undefined : `prefilled ${q.prefilled.length} bytes exceed capacity ${q.capacity}`),
);

const forwardSegment = struct('ForwardSegment', 'one forwarded TCP segment', {
  requestId,
  tcpBytes: f(bytes(MAX_DATA_BYTES, 20), 'TCP header with options, then payload; no IP header', '2.6'),
});

const disconnectFlags = enumOf('TcpDisconnectFlags', TCP_DISCONNECT, 'u8');

const INDICATE_REPLY_STATUS = {
  SUCCESS: Status.SUCCESS,
  OFFLOAD_DATA_NOT_ACCEPTED: Status.OFFLOAD_DATA_NOT_ACCEPTED,
  OFFLOAD_DATA_PARTIALLY_ACCEPTED: Status.OFFLOAD_DATA_PARTIALLY_ACCEPTED,
};

const indicateReply = refine(
  struct('IndicateReply', 'the host\'s answer to TcpReceiveIndicate (the synchronous return of NdisTcpOffloadReceiveHandler)', {
    indicationId: f(id, 'the indication answered', '4.3, 8.1'),
    status: f(codeSet('IndicateReplyStatus', INDICATE_REPLY_STATUS, 'u32'), 'SUCCESS (all consumed; buffer kept until returned), OFFLOAD_DATA_NOT_ACCEPTED, OFFLOAD_DATA_PARTIALLY_ACCEPTED', '4.3'),
    bytesConsumed: f(u32, 'bytes the application took', '4.3'),
  }),
  'NOT_ACCEPTED consumes 0 bytes, PARTIALLY_ACCEPTED a non-zero count',
  (r) => {
    if (r.status === Status.OFFLOAD_DATA_NOT_ACCEPTED && r.bytesConsumed !== 0) return `OFFLOAD_DATA_NOT_ACCEPTED with bytesConsumed ${r.bytesConsumed}`;
    if (r.status === Status.OFFLOAD_DATA_PARTIALLY_ACCEPTED && r.bytesConsumed === 0) return 'OFFLOAD_DATA_PARTIALLY_ACCEPTED with bytesConsumed 0';
    return undefined;
  },
);

const sendCompletion = struct('SendCompletion', 'one completed send request', {
  ctx,
  requestId,
  status: f(status, 'SUCCESS = sent and acknowledged; UPLOAD_IN_PROGRESS; REQUEST_ABORTED', '3.3'),
  bytesTransferred: f(u32, 'bytes of the request sent and acknowledged', '3.3'),
});

const receiveCompletion = refine(
  struct('ReceiveCompletion', 'one completed receive request', {
    ctx,
    requestId,
    status: f(status, 'SUCCESS, REQUEST_ABORTED, UPLOAD_IN_PROGRESS, INVALID_STATE', '4.2'),
    bytesTransferred: f(u32, 'TcpOffloadBytesTransferred of the request', '4.2'),
    bytes: f(bytes(MAX_DATA_BYTES), 'the bytes the target placed in the request, in stream order', '4.2, 8.1'),
  }),
  'bytes fit in bytesTransferred',
  (c) => (c.bytes.length <= c.bytesTransferred ? undefined : `${c.bytes.length} bytes carried but bytesTransferred is ${c.bytesTransferred}`),
);

const forwardCompletion = struct('ForwardCompletion', 'one completed forwarded segment', {
  ctx,
  requestId,
  status: f(status, 'SUCCESS (processed), UPLOAD_IN_PROGRESS (host processes it), REQUEST_ABORTED (RST seen; host drops it)', '2.6'),
});

const tcpEvent = refine(
  struct('TcpEvent', 'a TCP event (NdisTcpOffloadEventHandler)', {
    handle: f(id, 'host handle of the connection', '1.9, 8.1'),
    eventType: f(enumOf('TcpEventType', TcpEventType, 'u8'), 'SendBacklogChange 1, Disconnect 2, Retrieve 3, Abort 4', '5.1'),
    info: f(u32, 'Retrieve: the UploadReason; SendBacklogChange: the backlog in bytes; otherwise 0', '5.1'),
  }),
  'a Retrieve event carries a valid UploadReason',
  (e) => (e.eventType !== TcpEventType.Retrieve || UploadReason[e.info] !== undefined ? undefined : `Retrieve with unknown upload reason ${e.info}`),
);

// ------------------------------------------------------------------------------------- the table

export const MESSAGES = {
  Hello: m(0x0001, 'both', '8.1', 'version handshake; the first message each way', hello),
  Error: m(0x0002, 'both', '8.1', 'a message could not be decoded or is not valid now', error),
  SetParameters: m(0x0003, 'host->target', '2.8', 'set adapter-wide parameters', setParameters),
  SetParametersComplete: m(0x0004, 'target->host', '2.8', 'answer to SetParameters', setParametersComplete),
  StatusIndication: m(0x0005, 'target->host', '5.5', 'adapter-wide status: upload all, pause, resume', statusIndication),
  RawFrame: m(0x0006, 'both', '2.6, 8.1', 'non-offload path frame', rawFrame),
  RawFramesSeen: m(0x0007, 'host->target', '2.6', 'RawFrame messages the host processed (the hand-over replay mark)', rawFramesSeen),

  InitiateOffload: m(0x0010, 'host->target', '2.1', 'offload a tree of new objects', tree('InitiateOffload', 'a tree of placeholder / linker / new blocks', block)),
  UpdateOffload: m(0x0011, 'host->target', '2.2', 'change CACHED variables, relink paths to a neighbor', tree('UpdateOffload', 'a tree of references with new CACHED values', updateRefBlock)),
  QueryOffload: m(0x0012, 'host->target', '2.3', 'read the current state', tree('QueryOffload', 'a tree of references', refBlock)),
  InvalidateOffload: m(0x0013, 'host->target', '2.4', 'stop sending on dependent connections', tree('InvalidateOffload', 'a tree of references (no state)', refBlock)),
  TerminateOffload: m(0x0014, 'host->target', '2.5, 6', 'upload objects back to the host', tree('TerminateOffload', 'a tree of references', refBlock)),
  InitiateOffloadComplete: m(0x0018, 'target->host', '2.1', 'completion of InitiateOffload', completion('InitiateOffloadComplete', 'initiate')),
  UpdateOffloadComplete: m(0x0019, 'target->host', '2.2', 'completion of UpdateOffload', completion('UpdateOffloadComplete', 'update')),
  QueryOffloadComplete: m(0x001a, 'target->host', '2.3', 'completion of QueryOffload', completion('QueryOffloadComplete', 'query')),
  InvalidateOffloadComplete: m(0x001b, 'target->host', '2.4', 'completion of InvalidateOffload', completion('InvalidateOffloadComplete', 'invalidate')),
  TerminateOffloadComplete: m(0x001c, 'target->host', '6.2-6.5', 'completion of TerminateOffload', completion('TerminateOffloadComplete', 'terminate')),

  TcpSend: m(0x0020, 'host->target', '3.1', 'post send requests', refine(
    struct('TcpSend', 'send requests for one connection, in wire order', {
      ctx,
      buffers: f(array(sendBuffer, { max: MAX_LIST, min: 1 }), 'the requests, FIFO', '3.1'),
    }),
    'requestIds are unique in the list',
    (s) => unique(s.buffers.map((b) => b.requestId), 'requestId'),
  )),
  TcpReceive: m(0x0021, 'host->target', '4.1', 'post receive requests', refine(
    struct('TcpReceive', 'receive requests for one connection, filled FIFO', {
      ctx,
      requests: f(array(receiveRequest, { max: MAX_LIST, min: 1 }), 'the requests, FIFO', '4.1'),
    }),
    'requestIds are unique in the list',
    (s) => unique(s.requests.map((b) => b.requestId), 'requestId'),
  )),
  TcpReceiveReturn: m(0x0022, 'host->target', '4.3, 6.4', 'give lent buffers back', refine(
    struct('TcpReceiveReturn', 'lent buffers (indications, terminate BufferedData) the host is done with', {
      bufferIds: f(array(id, { max: MAX_LIST, min: 1 }), 'each lent id exactly once', '4.3, 8.1'),
    }),
    'bufferIds are unique in the list',
    (s) => unique(s.bufferIds, 'bufferId'),
  )),
  TcpDisconnect: m(0x0023, 'host->target', '3.5', 'close the send half', refine(
    struct('TcpDisconnect', 'graceful (FIN after the data) or abortive (RST) close', {
      ctx,
      requestId,
      flags: f(disconnectFlags, 'GRACEFUL 0x01 or ABORTIVE 0x02', '1.6, 3.5'),
      bytes: f(bytes(MAX_DATA_BYTES), 'graceful: final data before the FIN (may be empty); abortive: empty', '3.5'),
    }),
    'an abortive disconnect carries no data',
    (d) => (d.flags === TCP_DISCONNECT.ABORTIVE && d.bytes.length > 0 ? `abortive disconnect with ${d.bytes.length} bytes of data` : undefined),
  )),
  TcpForward: m(0x0024, 'host->target', '2.6', 'hand received, unacknowledged segments to the target', refine(
    struct('TcpForward', 'segments for one connection', {
      ctx,
      segments: f(array(forwardSegment, { max: MAX_LIST }), 'the segments, in order; empty: the hand-over barrier after an initiate (no completion)', '2.6'),
    }),
    'requestIds are unique in the list',
    (s) => unique(s.segments.map((b) => b.requestId), 'requestId'),
  )),
  IndicateReply: m(0x0025, 'host->target', '4.3', 'answer to TcpReceiveIndicate', indicateReply),
  ReachabilityReply: m(0x0026, 'host->target', '5.3', 'answer to NeighborReachabilityQuery', struct('ReachabilityReply', 'the host\'s new HRD', {
    indicationId: f(id, 'the query answered', '5.3, 8.1'),
    hostReachabilityDelta: f(u32, 'new HRD in ticks; 0 = the host\'s entry is stale', '5.3'),
  })),

  TcpSendComplete: m(0x0030, 'target->host', '3.3', 'completed send requests', struct('TcpSendComplete', 'completions, in posting order per connection', {
    entries: f(array(sendCompletion, { max: MAX_LIST, min: 1 }), 'may span posts and connections', '3.3'),
  })),
  TcpReceiveComplete: m(0x0031, 'target->host', '4.2', 'completed receive requests with their data', struct('TcpReceiveComplete', 'completions, FIFO per connection', {
    entries: f(array(receiveCompletion, { max: MAX_LIST, min: 1 }), 'may span posts and connections', '4.2'),
  })),
  TcpDisconnectComplete: m(0x0032, 'target->host', '3.5', 'completed disconnect request', struct('TcpDisconnectComplete', 'after every earlier send completion of the connection', {
    ctx,
    requestId,
    status: f(status, 'SUCCESS, UPLOAD_IN_PROGRESS, REQUEST_ABORTED', '3.5'),
    bytesTransferred: f(u32, 'data bytes of the disconnect request sent and acknowledged', '3.5'),
  })),
  TcpForwardComplete: m(0x0033, 'target->host', '2.6', 'completed forwarded segments', struct('TcpForwardComplete', 'batchable across TcpForward messages', {
    entries: f(array(forwardCompletion, { max: MAX_LIST, min: 1 }), 'completions', '2.6'),
  })),
  TcpReceiveIndicate: m(0x0034, 'target->host', '4.3', 'offer target-owned data; the host answers IndicateReply', struct('TcpReceiveIndicate', 'one buffer of received data (NdisTcpOffloadReceiveHandler)', {
    handle: f(id, 'host handle of the connection', '1.9, 8.1'),
    indicationId: f(id, 'target-chosen id the IndicateReply names', '8.1'),
    bufferId: f(id, 'target-chosen lent buffer id (returned by TcpReceiveReturn after SUCCESS)', '4.3, 8.1'),
    bytes: f(bytes(MAX_DATA_BYTES, 1), 'the data', '4.3'),
  })),
  TcpEvent: m(0x0035, 'target->host', '5.1', 'disconnect, abort, retrieve (upload request), send backlog change', tcpEvent),
  NeighborReachabilityQuery: m(0x0036, 'target->host', '5.3', 'ask the host for a new HRD; answered by ReachabilityReply', struct('NeighborReachabilityQuery', 'the neighbor went stale before a send', {
    indicationId: f(id, 'target-chosen id the ReachabilityReply names', '8.1'),
    handle: f(id, 'host handle of the neighbor', '5.3, 8.1'),
    neighbor: f(neighborState, 'current CONST, CACHED (HRD) and DELEGATED (NRD)', '5.3'),
  })),
} as const;

type Defs = typeof MESSAGES;
export type MessageName = keyof Defs;
export type MessageOf<K extends MessageName> = Simplify<{ type: K } & CodecType<Defs[K]['codec']>>;
export type Message = { [K in MessageName]: MessageOf<K> }[MessageName];

type NamesFor<D extends Direction> = { [K in MessageName]: Defs[K]['dir'] extends D | 'both' ? K : never }[MessageName];
export type HostMessageName = NamesFor<'host->target'>;
export type TargetMessageName = NamesFor<'target->host'>;
/** What a host may send (and a target receives). */
export type HostMessage = { [K in HostMessageName]: MessageOf<K> }[HostMessageName];
/** What a target may send (and a host receives). */
export type TargetMessage = { [K in TargetMessageName]: MessageOf<K> }[TargetMessageName];

export type HelloMessage = MessageOf<'Hello'>;
export type ErrorMessage = MessageOf<'Error'>;
export type Role = HelloMessage['role'];

export interface MessageEntry {
  readonly name: MessageName;
  readonly code: number;
  readonly dir: Direction;
  readonly spec: string;
  readonly doc: string;
  readonly codec: Codec<unknown>;
}

export const MESSAGE_LIST: readonly MessageEntry[] = Object.entries(MESSAGES).map(([name, d]) => ({
  name: name as MessageName,
  code: d.code,
  dir: d.dir,
  spec: d.spec,
  doc: d.doc,
  codec: d.codec as Codec<unknown>,
}));

export const MESSAGE_BY_CODE: ReadonlyMap<number, MessageEntry> = new Map(MESSAGE_LIST.map((e) => [e.code, e]));
export const MESSAGE_BY_NAME: ReadonlyMap<MessageName, MessageEntry> = new Map(MESSAGE_LIST.map((e) => [e.name, e]));

/** Whether `role` may receive messages of this type. */
export function receivableBy(entry: MessageEntry, role: Role): boolean {
  return entry.dir === 'both' || (role === 'target' ? entry.dir === 'host->target' : entry.dir === 'target->host');
}
