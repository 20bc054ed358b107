/**
 * Codecs of the chimney state model (`chimney/state.ts`): state objects, block trees and block
 * results. Each exported codec is annotated with its model type, so the compiler checks schema and
 * model against each other. Fields that are significant only in some operations (spec 8.1, the C
 * unions) are optional in the model and allowed or refused per operation by the rules below.
 */
import {
  Status,
} from '../chimney/status.js';
import {
  TCP_CACHED_FLAG,
  TCP_CONST_FLAG,
  type Block,
  type BlockResult,
  type Layer,
  type LentBuffer,
  type NeighborCached,
  type NeighborConst,
  type NeighborDelegated,
  type NeighborState,
  type PathCached,
  type PathConst,
  type PathState,
  type RefBlock,
  type SendChainEntry,
  type TcpCached,
  type TcpConst,
  type TcpDelegated,
  type TcpState,
} from '../chimney/state.js';
import { TcpState as TcpConnectionState } from '../tcp/types.js';
import { MAX_BLOCK_DEPTH, MAX_DATA_BYTES, MAX_LIST } from './limits.js';
import {
  addr, array, bytes, codeSet, enumOf, f, flags, lazy, lit, mac, nest, numChoice, opt, refine, strEnum, struct, timer, u16, u32,
  u8, uint, union, type Codec,
} from './schema.js';

const flagMask = (o: Record<string, number>): number => Object.values(o).reduce((m, v) => m | v, 0);

/** Any status code of `chimney/status.ts`; unknown values are refused. */
export const status: Codec<number> = codeSet('Status', Status, 'u32');

/** u32 ids: opId, ctx, handle, blockId, requestId, bufferId, indicationId. */
const id = u32;
const shift = uint('u8', 0, 14);

// ------------------------------------------------------------------------------------- neighbor

export const neighborConst: Codec<NeighborConst> = struct('NeighborConst', 'NEIGHBOR_OFFLOAD_STATE_CONST', {
  dlSourceAddress: f(mac, 'source MAC of frames through this neighbor; all zero = the interface MAC', '1.3, 8.1'),
  vlanId: f(uint('u16', 0, 4095), '802.1Q VLAN id (12 bits); 0 = the interface configuration', '1.3'),
});

export const neighborCached: Codec<NeighborCached> = struct('NeighborCached', 'NEIGHBOR_OFFLOAD_STATE_CACHED', {
  dlDestinationAddress: f(mac, 'MAC of the next hop', '1.3'),
  hostReachabilityDelta: f(u32, 'HRD, ticks: host time minus HRD = last host reachability confirmation', '1.3, 5.3'),
});

export const neighborDelegated: Codec<NeighborDelegated> = struct('NeighborDelegated', 'NEIGHBOR_OFFLOAD_STATE_DELEGATED', {
  nicReachabilityDelta: f(u32, 'NRD, ticks: target time minus NRD = last forward progress the target saw', '1.3, 5.3'),
});

export const neighborState: Codec<NeighborState> = struct('NeighborState', 'NeighborOffloadState: CONST, CACHED, DELEGATED', {
  const: f(neighborConst, 'CONST variables', '1.3'),
  cached: f(neighborCached, 'CACHED variables', '1.3'),
  delegated: f(neighborDelegated, 'DELEGATED variables', '1.3'),
});

// ------------------------------------------------------------------------------------- path

function sameFamily(c: PathConst): string | undefined {
  return c.sourceAddress.length === c.destinationAddress.length
    ? undefined
    : `source address has ${c.sourceAddress.length} bytes, destination ${c.destinationAddress.length}`;
}

export const pathConst: Codec<PathConst> = refine(
  struct('PathConst', 'PATH_OFFLOAD_STATE_CONST', {
    sourceAddress: f(addr, 'source IP (4 or 16 bytes, network byte order)', '1.4'),
    destinationAddress: f(addr, 'destination IP (same family as the source)', '1.4'),
  }),
  'both addresses have the same length',
  sameFamily,
);

export const pathCached: Codec<PathCached> = struct('PathCached', 'PATH_OFFLOAD_STATE_CACHED', {
  pathMtu: f(u32, 'path MTU in bytes', '1.4'),
});

const ipVersion = numChoice('IpVersion', [4, 6], 'u8');

function versionFits(p: { version?: 4 | 6; const?: PathConst }): string | undefined {
  if (p.version === undefined || p.const === undefined) return undefined;
  const want = p.version === 4 ? 4 : 16;
  return p.const.sourceAddress.length === want ? undefined : `IPv${p.version} path with ${p.const.sourceAddress.length}-byte addresses`;
}

export const pathState: Codec<PathState> = refine(
  struct('PathState', 'Ip4OffloadState / Ip6OffloadState: CONST, CACHED (no DELEGATED variables)', {
    version: f(ipVersion, '4 = Ip4 block types, 6 = Ip6 block types', '1.4, 1.6'),
    const: f(pathConst, 'CONST variables', '1.4'),
    cached: f(pathCached, 'CACHED variables', '1.4'),
  }),
  'the address length matches the version (4 bytes for 4, 16 for 6)',
  versionFits,
);

// ------------------------------------------------------------------------------------- tcp

export const tcpConst: Codec<TcpConst> = struct('TcpConst', 'TCP_OFFLOAD_STATE_CONST', {
  flags: f(flags('u16', flagMask(TCP_CONST_FLAG)), 'TIMESTAMP_ENABLED 0x01, SACK_ENABLED 0x02, WINDOW_SCALING_ENABLED 0x04', '1.5, 1.6'),
  remotePort: f(u16, 'peer port (a number, not network byte order)', '1.5'),
  localPort: f(u16, 'our port', '1.5'),
  sndWindScale: f(shift, 'shift applied to windows the peer advertises (RFC 7323: at most 14)', '1.5'),
  rcvWindScale: f(shift, 'shift applied to windows we advertise (at most 14)', '1.5'),
  remoteMss: f(u16, 'MSS the peer announced', '1.5'),
  hashValue: f(u32, 'RSS hash computed by the host', '1.5'),
});

export const tcpCached: Codec<TcpCached> = struct('TcpCached', 'TCP_OFFLOAD_STATE_CACHED', {
  flags: f(flags('u16', flagMask(TCP_CACHED_FLAG)), 'KEEP_ALIVE_ENABLED 0x01, NAGLING_ENABLED 0x02, KEEP_ALIVE_RESTART 0x04, MAX_RT_RESTART 0x08, UPDATE_RCV_WND 0x10', '1.5, 1.6, 2.2'),
  initialRcvWnd: f(u32, 'default receive window, bytes', '1.5'),
  rcvIndicationSize: f(u32, 'preferred bytes per receive indication; 0 = as much as possible', '1.5, 4.4'),
  kaProbeCount: f(u8, 'keepalive probes before the connection is dead', '1.5'),
  kaTimeout: f(u32, 'ticks idle before the first keepalive probe', '1.5'),
  kaInterval: f(u32, 'ticks between unanswered keepalive probes', '1.5'),
  maxRt: f(u32, 'ticks of retransmission allowed; 0 = use TcpMaximumRetransmissions; 0xFFFFFFFF = no limit', '1.5'),
  flowLabel: f(uint('u32', 0, 0xfffff), 'IPv6 flow label (20 bits)', '1.5'),
  ttlOrHopLimit: f(u8, 'IPv4 TTL / IPv6 hop limit', '1.5'),
  tosOrTrafficClass: f(u8, 'IPv4 TOS / IPv6 traffic class', '1.5'),
  userPriority: f(uint('u8', 0, 7), '802.1p priority (3 bits)', '1.5'),
});

export const sendChainEntry: Codec<SendChainEntry> = struct('SendChainEntry', 'one buffer of a TCP block\'s send chain (NetBufferListChain)', {
  bufferId: f(id, 'initiate: the host\'s request id for this buffer; terminate: the request id being returned', '3.6, 6.3, 8.1'),
  bytes: f(opt(bytes(MAX_DATA_BYTES)), 'initiate only: the buffer\'s data', '3.6, 8.1'),
  ackedBytes: f(opt(u32), 'terminate only: bytes at the front of this buffer the peer already acknowledged (non-zero only on the first entry)', '6.3, 8.1'),
});

export const lentBuffer: Codec<LentBuffer> = struct('LentBuffer', 'a target buffer lent to the host until TcpReceiveReturn names it', {
  bufferId: f(id, 'target-chosen lent buffer id', '4.3, 6.4, 8.1'),
  bytes: f(bytes(MAX_DATA_BYTES), 'the buffered receive data', '6.4'),
});

export const tcpDelegated: Codec<TcpDelegated> = struct('TcpDelegated', 'TCP_OFFLOAD_STATE_DELEGATED (the optional tail fields are significant only in some operations, see the rules)', {
  state: f(enumOf('TcpConnectionState', TcpConnectionState, 'u8'), 'RFC 793 state, TCP_OFFLOAD_CONNECTION_STATE numbering', '1.5, 1.6'),
  flags: f(u16, 'reserved: send 0, ignored on receipt', '1.5'),
  rcvNxt: f(u32, 'RCV.NXT', '1.5'),
  rcvWnd: f(u32, 'RCV.WND, bytes', '1.5'),
  sndUna: f(u32, 'SND.UNA', '1.5'),
  sndNxt: f(u32, 'SND.NXT', '1.5'),
  sndMax: f(u32, 'highest sequence number sent', '1.5'),
  sndWnd: f(u32, 'SND.WND, bytes', '1.5'),
  maxSndWnd: f(u32, 'largest send window seen, bytes', '1.5'),
  sndWl1: f(u32, 'SND.WL1 (SendWL1)', '1.5'),
  cwnd: f(u32, 'congestion window, bytes', '1.5'),
  ssthresh: f(u32, 'slow-start threshold, bytes', '1.5'),
  srttX8: f(u32, 'smoothed RTT, ticks x 8 (u16 in NDIS; u32 here so long RTTs fit)', '1.5'),
  rttvarX4: f(u32, 'RTT variation, ticks x 4 (u16 in NDIS)', '1.5'),
  tsRecent: f(u32, 'TS.Recent', '1.5, 5.6'),
  tsRecentAge: f(u32, 'ticks since TS.Recent was set', '1.5'),
  tsTime: f(u32, 'current value of the sender\'s timestamp clock', '1.5, 5.6'),
  totalRt: f(u32, 'ticks spent retransmitting the current segment', '1.5'),
  dupAckCount: f(u8, 'duplicate ACKs received', '1.5'),
  sndWndProbeCount: f(u8, 'persist round', '1.5, 5.4'),
  kaProbeCount: f(u8, 'KeepAlive.ProbeCount: unanswered keepalive probes', '1.5'),
  kaTimeoutDelta: f(timer, 'KeepAlive.TimeoutDelta: ticks to the keepalive timeout', '1.5, 5.4'),
  rtCount: f(u8, 'Retransmit.Count', '1.5'),
  rtTimeoutDelta: f(timer, 'Retransmit.TimeoutDelta: ticks to the retransmit, persist or FIN_WAIT_2 timeout', '1.5, 5.4'),
  dWnd: f(u32, 'DWnd: undocumented in NDIS; send 0', '1.5, 9'),
  sendChain: f(opt(array(sendChainEntry, { max: MAX_LIST })), 'initiate / terminate: outstanding send data from SndUna, in posting order (absent or empty: none)', '3.6, 6.3'),
  sendDataHead: f(opt(id), 'initiate / terminate: bufferId of the first chain entry (present exactly when the chain has entries)', '1.5, 8.1'),
  sendDataTail: f(opt(id), 'initiate / terminate: bufferId of the last chain entry', '1.5, 8.1'),
  bufferedData: f(opt(bytes(MAX_DATA_BYTES, 1)), 'initiate only: the host\'s received, acknowledged, undelivered bytes, ending at RcvNxt', '6.10, 8.1'),
  bufferedBuffers: f(opt(array(lentBuffer, { max: MAX_LIST })), 'terminate only: the target\'s undelivered bytes, in order, ending at RcvNxt, lent until returned', '6.4, 8.1'),
  sendBacklogSize: f(opt(u32), 'query only: preferred outstanding send bytes; 0xFFFFFFFF = unsupported', '3.4'),
  receiveBacklogSize: f(opt(u32), 'query only: receive bytes buffered in the target; 0xFFFFFFFF = unsupported', '1.5'),
});

export const tcpState: Codec<TcpState> = struct('TcpState', 'TcpOffloadState: CONST, CACHED, DELEGATED', {
  const: f(tcpConst, 'CONST variables', '1.5'),
  cached: f(tcpCached, 'CACHED variables', '1.5'),
  delegated: f(tcpDelegated, 'DELEGATED variables', '1.5'),
});

// ------------------------------------------------------------------------------------- per-operation rules

type OpName = 'initiate' | 'query' | 'terminate';
const ALLOWED_TAIL: Record<OpName, ReadonlyArray<keyof TcpDelegated>> = {
  initiate: ['sendChain', 'sendDataHead', 'sendDataTail', 'bufferedData'],
  query: ['sendBacklogSize', 'receiveBacklogSize'],
  terminate: ['sendChain', 'sendDataHead', 'sendDataTail', 'bufferedBuffers'],
};
const TAIL: ReadonlyArray<keyof TcpDelegated> = [
  'sendChain', 'sendDataHead', 'sendDataTail', 'bufferedData', 'bufferedBuffers', 'sendBacklogSize', 'receiveBacklogSize',
];

function uniqueIds(ids: readonly number[], what: string): string | undefined {
  const seen = new Set<number>();
  for (const x of ids) {
    if (seen.has(x)) return `${what} ${x} appears twice`;
    seen.add(x);
  }
  return undefined;
}

/** The optional DELEGATED fields an operation may carry, and the send chain's shape in it. */
export function delegatedProblem(d: TcpDelegated, op: OpName): string | undefined {
  for (const k of TAIL) {
    if (d[k] !== undefined && !ALLOWED_TAIL[op].includes(k)) return `delegated.${k} is not significant in ${op}`;
  }
  const chain = d.sendChain;
  if (chain === undefined || chain.length === 0) {
    if (d.sendDataHead !== undefined || d.sendDataTail !== undefined) return 'sendDataHead/sendDataTail given without send chain buffers';
  } else {
    if (d.sendDataHead !== chain[0]!.bufferId) return `sendDataHead ${String(d.sendDataHead)} is not the first chain buffer ${chain[0]!.bufferId}`;
    if (d.sendDataTail !== chain[chain.length - 1]!.bufferId) {
      return `sendDataTail ${String(d.sendDataTail)} is not the last chain buffer ${chain[chain.length - 1]!.bufferId}`;
    }
    const dup = uniqueIds(chain.map((e) => e.bufferId), 'chain bufferId');
    if (dup !== undefined) return dup;
    for (let i = 0; i < chain.length; i++) {
      const e = chain[i]!;
      if (op === 'initiate') {
        if (e.bytes === undefined) return `sendChain[${i}] carries no bytes at initiate`;
        if (e.ackedBytes !== undefined) return `sendChain[${i}].ackedBytes is not significant at initiate`;
      } else {
        if (e.bytes !== undefined) return `sendChain[${i}] carries bytes at terminate (the host kept its copy)`;
        if (e.ackedBytes === undefined) return `sendChain[${i}] lacks ackedBytes at terminate`;
        if (i > 0 && e.ackedBytes !== 0) return `sendChain[${i}].ackedBytes is ${e.ackedBytes}; only the first entry can be partly acknowledged`;
      }
    }
  }
  if (d.bufferedBuffers !== undefined) return uniqueIds(d.bufferedBuffers.map((b) => b.bufferId), 'lent bufferId');
  return undefined;
}

const initiateTcpState: Codec<TcpState> = refine(tcpState, 'DELEGATED may carry sendChain (entries with bytes), sendDataHead/Tail and bufferedData; nothing else optional', (s) =>
  delegatedProblem(s.delegated, 'initiate'),
);

// ------------------------------------------------------------------------------------- block trees

const LAYERS = ['neighbor', 'path', 'tcp'] as const;
export const layer: Codec<Layer> = strEnum('Layer', LAYERS);
const NEXT_LAYER: Record<Layer, Layer | undefined> = { neighbor: 'path', path: 'tcp', tcp: undefined };

function layering(b: { layer: Layer; children: ReadonlyArray<{ layer: Layer }> }): string | undefined {
  const next = NEXT_LAYER[b.layer];
  if (next === undefined) return b.children.length === 0 ? undefined : `a tcp block has no dependents, this one has ${b.children.length}`;
  for (let i = 0; i < b.children.length; i++) {
    const c = b.children[i]!;
    if (c.layer !== next) return `dependents of a ${b.layer} block are ${next} blocks; children[${i}] is a ${c.layer} block`;
  }
  return undefined;
}

const LAYERING_RULE = 'children are blocks of the next layer (neighbor -> path -> tcp); tcp blocks have none; at most 3 levels';

/** Smallest block on the wire: variant tag, blockId, layer, children count. */
const MIN_BLOCK = 10;

const blockRef = lazy<Block>('Block', () => block, MIN_BLOCK);
const blockChildren = f(array(blockRef, { max: MAX_LIST }), 'DependentBlockList: the blocks of the next layer that depend on this one; array order is the NextBlock chain', '1.8, 8.1');
const blockId = f(id, 'host-chosen id naming this block in the completion', '8.1');

const placeholderBlock = struct('PlaceholderBlock', 'no state: only carries dependents (slot pointer null)', {
  blockId,
  role: f(lit('placeholder'), 'variant 0', '1.8'),
  layer: f(layer, 'layer of the block', '1.8'),
  children: blockChildren,
});
const linkerBlock = struct('LinkerBlock', 'references an already offloaded object, to attach new dependents to it', {
  blockId,
  role: f(lit('linker'), 'variant 1', '1.8'),
  layer: f(layer, 'layer of the referenced object', '1.8'),
  ctx: f(id, 'context id of the offloaded object', '1.9, 8.1'),
  children: blockChildren,
});
const handle = f(id, 'host handle for the new object, echoed in every indication about it', '1.8, 8.1');
const newNeighborBlock = struct('NewNeighborBlock', 'offload a new neighbor object', {
  blockId,
  role: f(lit('new'), 'variant 2', '1.8'),
  layer: f(lit('neighbor'), 'implied by the variant', '1.8'),
  handle,
  state: f(neighborState, 'the object to offload', '2.1'),
  children: blockChildren,
});
const newPathBlock = struct('NewPathBlock', 'offload a new path object', {
  blockId,
  role: f(lit('new'), 'variant 3', '1.8'),
  layer: f(lit('path'), 'implied by the variant', '1.8'),
  handle,
  state: f(pathState, 'the object to offload', '2.1'),
  children: blockChildren,
});
const newTcpBlock = struct('NewTcpBlock', 'offload a new TCP connection', {
  blockId,
  role: f(lit('new'), 'variant 4', '1.8'),
  layer: f(lit('tcp'), 'implied by the variant', '1.8'),
  handle,
  state: f(initiateTcpState, 'the connection to offload, with its send chain and buffered receive data', '2.1, 3.6, 6.10'),
  children: blockChildren,
});

/** One block of an InitiateOffload tree (spec 1.8, 2.1). */
export const block: Codec<Block> = nest(
  refine(
    union('Block', 'one block of an initiate tree; the u8 variant index gives role and, for new objects, layer', (b) => {
      if (b.role === 'placeholder') return 0;
      if (b.role === 'linker') return 1;
      return b.layer === 'neighbor' ? 2 : b.layer === 'path' ? 3 : 4;
    }, [
      { label: 'placeholder', codec: placeholderBlock },
      { label: 'linker', codec: linkerBlock },
      { label: 'new neighbor', codec: newNeighborBlock },
      { label: 'new path', codec: newPathBlock },
      { label: 'new tcp', codec: newTcpBlock },
    ]),
    LAYERING_RULE,
    layering,
  ),
  MAX_BLOCK_DEPTH,
  'block tree',
);

// ------------------------------------------------------------------------------------- reference trees

type Cached = NeighborCached | PathCached | TcpCached;
const cachedLayer = (c: Cached): Layer => ('dlDestinationAddress' in c ? 'neighbor' : 'pathMtu' in c ? 'path' : 'tcp');

export const cachedState: Codec<Cached> = union('CachedState', 'new CACHED values of the referenced object; the variant must match the block layer', (c) => LAYERS.indexOf(cachedLayer(c)), [
  { label: 'neighbor', codec: neighborCached },
  { label: 'path', codec: pathCached },
  { label: 'tcp', codec: tcpCached },
]);

function refProblem(b: RefBlock, withCached: boolean): string | undefined {
  if (b.cached !== undefined) {
    if (!withCached) return 'cached is only significant in UpdateOffload';
    const l = cachedLayer(b.cached);
    if (l !== b.layer) return `a ${b.layer} block carries ${l} cached state`;
  }
  return layering(b);
}

/** Smallest reference block: blockId, ctx, layer, (presence byte), children count. */
const MIN_REF = 13;
const refDoc = 'references an offloaded object by its context id';

export const updateRefBlock: Codec<RefBlock> = nest(
  refine(
    struct('UpdateRefBlock', refDoc, {
      blockId,
      ctx: f(id, 'context id of the object', '1.9, 8.1'),
      layer: f(layer, 'layer of the object', '1.8'),
      cached: f(opt(cachedState), 'the object\'s new CACHED values; absent when the block only relinks', '2.2'),
      children: f(array(lazy<RefBlock>('UpdateRefBlock', () => updateRefBlock, MIN_REF), { max: MAX_LIST }), 'dependent blocks (next layer); in an update they relink paths to this neighbor', '2.2'),
    }),
    `${LAYERING_RULE}; cached matches the layer`,
    (b) => refProblem(b, true),
  ),
  MAX_BLOCK_DEPTH,
  'block tree',
);

export const refBlock: Codec<RefBlock> = nest(
  refine(
    struct('RefBlock', refDoc, {
      blockId,
      ctx: f(id, 'context id of the object', '1.9, 8.1'),
      layer: f(layer, 'layer of the object', '1.8'),
      children: f(array(lazy<RefBlock>('RefBlock', () => refBlock, MIN_REF - 1), { max: MAX_LIST }), 'dependent blocks (next layer)', '1.8'),
    }),
    `${LAYERING_RULE}; no cached state`,
    (b) => refProblem(b, false),
  ),
  MAX_BLOCK_DEPTH,
  'block tree',
);

// ------------------------------------------------------------------------------------- results

const partialNeighbor = struct('NeighborStateResult', 'the parts of a neighbor object a completion returns', {
  const: f(opt(neighborConst), 'query', '2.3'),
  cached: f(opt(neighborCached), 'query', '2.3'),
  delegated: f(opt(neighborDelegated), 'query, terminate', '2.3, 6.5'),
});
const partialPath = refine(
  struct('PathStateResult', 'the parts of a path object a query returns', {
    version: f(opt(ipVersion), 'query', '2.3'),
    const: f(opt(pathConst), 'query', '2.3'),
    cached: f(opt(pathCached), 'query', '2.3'),
  }),
  'the address length matches the version',
  versionFits,
);
const partialTcp = struct('TcpStateResult', 'the parts of a TCP object a completion returns', {
  const: f(opt(tcpConst), 'query', '2.3'),
  cached: f(opt(tcpCached), 'query', '2.3'),
  delegated: f(opt(tcpDelegated), 'query, terminate', '2.3, 6.5'),
});

const blockResultBase = struct('BlockResult', 'the outcome of one block, named by its blockId', {
  blockId: f(id, 'the request\'s blockId', '2.0, 8.1'),
  status: f(status, 'status written into the block', '1.7, 2.0'),
  ctx: f(opt(id), 'initiate: the context id of a newly offloaded object', '2.1, 8.1'),
  neighbor: f(opt(partialNeighbor), 'query: the current state; terminate: DELEGATED', '2.3, 6.5'),
  path: f(opt(partialPath), 'query: the current state', '2.3'),
  tcp: f(opt(partialTcp), 'query: the current state; terminate: DELEGATED with chain and lent buffers', '2.3, 6.3-6.5'),
});

export type ResultOp = 'initiate' | 'update' | 'query' | 'invalidate' | 'terminate';

export function blockResultProblem(r: BlockResult, op: ResultOp): string | undefined {
  if (r.ctx !== undefined && op !== 'initiate') return `ctx is only significant in an initiate result (this is ${op})`;
  const hasState = r.neighbor !== undefined || r.path !== undefined || r.tcp !== undefined;
  if (op === 'initiate' || op === 'update' || op === 'invalidate') return hasState ? `an ${op} result carries no state` : undefined;
  if (op === 'terminate') {
    if (r.path !== undefined) return 'a path object returns nothing at terminate';
    if (r.neighbor?.const !== undefined || r.neighbor?.cached !== undefined || r.tcp?.const !== undefined || r.tcp?.cached !== undefined) {
      return 'terminate returns DELEGATED state only';
    }
    return r.tcp?.delegated === undefined ? undefined : delegatedProblem(r.tcp.delegated, 'terminate');
  }
  return r.tcp?.delegated === undefined ? undefined : delegatedProblem(r.tcp.delegated, 'query');
}

export const RESULT_RULES: Record<ResultOp, string> = {
  initiate: 'results carry ctx (new objects) and no state',
  update: 'results carry neither ctx nor state',
  invalidate: 'results carry neither ctx nor state',
  query: 'results carry no ctx; state allowed; TCP DELEGATED may carry only the backlog sizes',
  terminate: 'results carry no ctx and DELEGATED state only (none for paths); TCP DELEGATED may carry sendChain (ackedBytes, no bytes), sendDataHead/Tail, bufferedBuffers',
};

/** A block result, whatever the operation (the completion message checks the per-operation rule). */
export const blockResult: Codec<BlockResult> = blockResultBase;

// ------------------------------------------------------------------------------------- tree walks

interface IdTree {
  blockId: number;
  children: ReadonlyArray<IdTree>;
}

/** Every blockId of a tree, depth first. */
export function blockIds(blocks: ReadonlyArray<IdTree>, out: number[] = []): number[] {
  for (const b of blocks) {
    out.push(b.blockId);
    blockIds(b.children, out);
  }
  return out;
}

export function duplicateBlockId(blocks: ReadonlyArray<IdTree>): string | undefined {
  return uniqueIds(blockIds(blocks), 'blockId');
}

export function siblingsShareLayer(blocks: ReadonlyArray<{ layer: Layer }>): string | undefined {
  for (let i = 1; i < blocks.length; i++) {
    if (blocks[i]!.layer !== blocks[0]!.layer) return `root blocks are one layer (NextBlock chain); blocks[${i}] is ${blocks[i]!.layer}, blocks[0] ${blocks[0]!.layer}`;
  }
  return undefined;
}
