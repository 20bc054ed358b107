/**
 * The offload target's core, sans-I/O: host messages and link frames in; host messages, frames and
 * timers (through the injected scheduler) out. It owns the offloaded objects (neighbor, path, TCP
 * contexts), demultiplexes received frames (offloaded 4-tuple -> its engine; everything else -> the
 * host raw), and runs the five state operations of spec section 2 and section 6. The service
 * (`service.ts`) binds it to a real link and an IPC socket; tests bind it to the sim link.
 */
import { BufferLedger } from '../chimney/buffer-ledger.js';
import { processInitiateTree } from '../chimney/initiate-tree.js';
import type { TerminateSendMode } from '../chimney/send-queue.js';
import {
  AdapterStatus, UploadReason,
  type Block, type BlockResult, type Layer, type NeighborCached, type NeighborState, type PathCached, type PathState,
  type RefBlock, type TcpCached,
} from '../chimney/state.js';
import { Status, statusName } from '../chimney/status.js';
import type { HostMessage, MessageOf, TargetMessage } from '../ipc/messages.js';
import type { Scheduler } from '../tcp/driver.js';
import { ipv4ToString, macEquals, ZERO_MAC } from '../wire/addresses.js';
import { buildTcpFrame, parseFrame } from '../wire/frame.js';
import { parseTcp } from '../wire/tcp.js';
import { TCP_ACK, TCP_RST, TCP_SYN, TCP_URG, cloneSegment, type TcpSegment } from '../wire/tcp-segment.js';
import { seqAdd, seqGe, seqLe, seqLt } from '../wire/seq.js';
import { TcpState as EngineState } from '../tcp/types.js';
import { RawFrameRing } from './raw-frame-ring.js';
import {
  DEFAULT_PARAMETERS, OffloadedConnection, checkOffloadable, type TargetParameters,
} from './offloaded-connection.js';

export interface TargetLimits {
  maxConnections: number;
  maxNeighbors: number;
  maxPaths: number;
  /** Largest InitialRcvWnd accepted (OFFLOAD_TCP_RCV_WINDOW beyond). */
  maxReceiveWindow: number;
  /** Largest path MTU (OFFLOAD_PATH_MTU beyond): the link's. */
  maxPathMtu: number;
  /** Bytes lent to the host (indications, BufferedData) plus bytes copied at initiate. */
  maxBufferedBytes: number;
}

export const DEFAULT_LIMITS: TargetLimits = {
  maxConnections: 4096,
  maxNeighbors: 1024,
  maxPaths: 4096,
  maxReceiveWindow: 16 * 1024 * 1024,
  maxPathMtu: 1500,
  maxBufferedBytes: 512 * 1024 * 1024,
};

export const DEFAULT_FORWARD_WAIT_MS = 1000;
/**
 * RawFrame messages kept for the hand-over replay (a power of two). Enough for the frames one
 * host round trip carries at line rate on a loaded machine (~4k full frames in 100 ms at 500 Mbit/s);
 * about 12 MB at most, held as the copies the RawFrame messages were made from anyway.
 */
export const RAW_FRAME_RING = 8192;

export interface TargetCoreOptions {
  scheduler: Scheduler;
  /** The interface MAC (source MAC when a neighbor's DlSourceAddress is zero). */
  interfaceMac: Uint8Array;
  limits?: Partial<TargetLimits>;
  /** How outstanding send data is disposed of at terminate ('alternate' flips per terminate). */
  terminateSendMode?: TerminateSendMode | 'alternate';
  congestionControl?: 'newreno' | 'cubic';
  /**
   * How long a freshly offloaded connection's wire segments wait for the host's first TcpForward
   * (the segments it held during the initiate; docs/ipc-protocol.md, hand-over barrier). 0: no
   * wait. Default 1 s: the barrier is part of the protocol, and on a loaded machine a host's
   * round trip took over 100 ms; a host that never sends it costs one stall per offload.
   */
  forwardWaitMs?: number;
  /** RawFrame messages remembered for the hand-over replay (power of two; default RAW_FRAME_RING). */
  rawFrameRing?: number;
  toHost(msg: TargetMessage): void;
  toWire(frame: Uint8Array): void;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

interface NeighborObj {
  ctx: number;
  handle: number;
  state: NeighborState;
  invalidated: boolean;
  paths: Set<number>;
  /** Spec 5.3, in target ms: last forward progress (NRT) and last host confirmation (HRT). */
  nrt: number;
  hrt: number;
  /** Indication id of an unanswered NeighborReachabilityQuery. */
  queryPending: number | undefined;
}

interface PathObj {
  ctx: number;
  handle: number;
  state: PathState;
  neighbor: number | undefined;
  invalidated: boolean;
  tcps: Set<number>;
}

interface TcpObj {
  conn: OffloadedConnection;
  path: number;
  /** Flow-table coordinates (IPv4): the peer's address, the local address and both ports. */
  remoteIp: number;
  localIp: number;
  ports: number;
}

export interface TargetCounters {
  framesIn: number;
  framesToHost: number;
  framesOffloaded: number;
  framesOut: number;
  dropped: Record<string, number>;
  errorsToHost: number;
  initiates: number;
  terminates: number;
  /** Held segments the target replayed itself at initiates (RawFramesSeen). */
  segmentsReplayed: number;
  /** Initiates whose replay the ring could not cover (they waited for the host's forward). */
  replayIncomplete: number;
}

function ipKey(a: Uint8Array): string {
  return a.length === 4 ? `${a[0]}.${a[1]}.${a[2]}.${a[3]}` : Buffer.from(a).toString('hex');
}

/** A readable name of a flow for logs: local address/port > remote address/port. */
function flowKey(local: Uint8Array, localPort: number, remote: Uint8Array, remotePort: number): string {
  return `${ipKey(local)}:${localPort}>${ipKey(remote)}:${remotePort}`;
}

export class TargetCore {
  readonly limits: TargetLimits;
  readonly ledger: BufferLedger;
  params: TargetParameters = { ...DEFAULT_PARAMETERS };
  readonly counters: TargetCounters = { framesIn: 0, framesToHost: 0, framesOffloaded: 0, framesOut: 0, dropped: {}, errorsToHost: 0, initiates: 0, terminates: 0, segmentsReplayed: 0, replayIncomplete: 0 };
  private readonly o: TargetCoreOptions;
  private readonly neighbors = new Map<number, NeighborObj>();
  private readonly paths = new Map<number, PathObj>();
  private readonly tcps = new Map<number, TcpObj>();
  /**
   * Offloaded flows by the peer's IPv4 address, then local port * 65536 + remote port: numeric keys,
   * no per-frame string formatting (performance-facts: a string key costs ~300 ns per lookup).
   */
  private readonly flows = new Map<number, Map<number, number>>();
  private nextCtx = 1;
  private ipId = 0x8000;
  private alternate = false;
  /** Host messages produced while an initiate runs: held until its completion went out (R45). */
  private holdBack: TargetMessage[] | undefined;
  /** Indication ids on the wire are target-wide; each connection's delivery numbers its own. */
  private readonly indications = new Map<number, { ctx: number; localId: number }>();
  private nextIndicationId = 1;
  /** Every context that ever had buffers lent (to reclaim them when the host is gone). */
  private readonly lenders = new Set<number>();
  private readonly pendingTerminates: Array<{ opId: number; blocks: RefBlock[]; conns: OffloadedConnection[]; neighbors: number[] }> = [];
  /** Unanswered NeighborReachabilityQuery ids -> neighbor context. */
  private readonly reachabilityQueries = new Map<number, number>();
  /** The frames passed up as RawFrame, for the hand-over replay. */
  private readonly rawRing: RawFrameRing;
  /** The host's RawFramesSeen mark for the next InitiateOffload (it is sent right before one). */
  private rawSeenMark: number | undefined;

  constructor(o: TargetCoreOptions) {
    this.o = o;
    this.limits = { ...DEFAULT_LIMITS, ...o.limits };
    this.ledger = new BufferLedger({ maxLentBytes: this.limits.maxBufferedBytes });
    this.rawRing = new RawFrameRing(o.rawFrameRing ?? RAW_FRAME_RING);
  }

  private get msPerTick(): number {
    return 1000 / this.params.ticksPerSecond;
  }

  /** NicReachabilityDelta now: ticks since the last forward progress (spec 5.3; R34). */
  private nrd(n: NeighborObj): number {
    return Math.max(0, Math.floor((this.o.scheduler.now() - n.nrt) / this.msPerTick)) >>> 0;
  }

  private neighborState(n: NeighborObj): NeighborState {
    return { const: n.state.const, cached: n.state.cached, delegated: { nicReachabilityDelta: this.nrd(n) } };
  }

  /** R119: before sending through a neighbor both sides have not confirmed lately, ask the host once. */
  private checkReachability(n: NeighborObj): void {
    if (n.queryPending !== undefined) return;
    const now = this.o.scheduler.now();
    const stale = this.params.nceStaleTicks * this.msPerTick;
    if (now - n.nrt <= stale || now - n.hrt <= stale) return;
    const id = this.nextIndicationId++;
    n.queryPending = id;
    this.reachabilityQueries.set(id, n.ctx);
    this.send({ type: 'NeighborReachabilityQuery', indicationId: id, handle: n.handle, neighbor: this.neighborState(n) });
  }

  private onReachabilityReply(indicationId: number, hrd: number): void {
    const ctx = this.reachabilityQueries.get(indicationId);
    if (ctx === undefined) return this.error(0x0026, indicationId, Status.IPC_UNKNOWN_CONTEXT, `ReachabilityReply for query ${indicationId}, which is not outstanding`);
    this.reachabilityQueries.delete(indicationId);
    const n = this.neighbors.get(ctx);
    if (n) {
      n.queryPending = undefined;
      n.hrt = this.o.scheduler.now() - hrd * this.msPerTick;
      n.state = { ...n.state, cached: { ...n.state.cached, hostReachabilityDelta: hrd } };
    }
    this.settleTerminates();
  }

  private progress(ctx: number): void {
    const t = this.tcps.get(ctx);
    const p = t && this.paths.get(t.path);
    const n = p?.neighbor === undefined ? undefined : this.neighbors.get(p.neighbor);
    if (n) n.nrt = this.o.scheduler.now();
  }

  get connectionCount(): number {
    return this.tcps.size;
  }

  /** Live connections (for status displays and tests). */
  connections(): OffloadedConnection[] {
    return [...this.tcps.values()].map((t) => t.conn);
  }

  // ------------------------------------------------------------------------------ host messages

  private send(msg: TargetMessage): void {
    if (this.holdBack) this.holdBack.push(msg);
    else this.o.toHost(msg);
  }

  private error(refKind: number, refId: number, status: number, problem: string): void {
    this.counters.errorsToHost++;
    this.o.log?.('warn', `host request refused: ${problem}`, { status: statusName(status) });
    this.send({ type: 'Error', refKind, refId, status, problem });
  }

  /** One message from the host binding, in arrival order. */
  onHostMessage(msg: HostMessage): void {
    switch (msg.type) {
      case 'SetParameters': {
        const { type: _t, opId, ...p } = msg;
        void _t;
        this.params = { ...this.params, ...p };
        this.send({ type: 'SetParametersComplete', opId, status: Status.SUCCESS });
        return;
      }
      case 'RawFrame':
        this.counters.framesOut++;
        this.o.toWire(msg.frame);
        return;
      case 'RawFramesSeen':
        this.rawSeenMark = msg.count;
        return;
      case 'InitiateOffload':
        this.initiate(msg);
        return;
      case 'TerminateOffload':
        this.terminate(msg);
        return;
      case 'QueryOffload':
        this.send({ type: 'QueryOffloadComplete', opId: msg.opId, results: this.refResults(msg.blocks, (b) => this.queryBlock(b)) });
        return;
      case 'UpdateOffload':
        this.update(msg);
        return;
      case 'InvalidateOffload':
        this.send({ type: 'InvalidateOffloadComplete', opId: msg.opId, results: this.refResults(msg.blocks, (b) => this.invalidateBlock(b)) });
        return;
      case 'TcpSend': {
        const t = this.tcpFor(0x0020, msg.ctx);
        if (!t) return;
        const dup = msg.buffers.find((b) => t.conn.hasSendRequest(b.requestId));
        if (dup) return this.error(0x0020, msg.ctx, Status.IPC_DUPLICATE_ID, `TcpSend request ${dup.requestId} is already outstanding on context ${msg.ctx}`);
        t.conn.send(msg.buffers);
        return;
      }
      case 'TcpReceive': {
        const t = this.tcpFor(0x0021, msg.ctx);
        if (t) t.conn.receive(msg.requests);
        return;
      }
      case 'TcpReceiveReturn': {
        const r = this.ledger.returnBuffers(msg.bufferIds);
        if (!r.ok) this.error(0x0022, msg.bufferIds[0] ?? 0, Status.IPC_UNKNOWN_BUFFER, r.problem);
        return;
      }
      case 'TcpDisconnect': {
        const t = this.tcpFor(0x0023, msg.ctx);
        if (t) t.conn.disconnectRequest(msg.requestId, msg.flags, msg.bytes, (msg.flags & 0x02) === 0);
        return;
      }
      case 'TcpForward': {
        const t = this.tcpFor(0x0024, msg.ctx);
        if (!t) return;
        const segs = msg.segments.map((s) => {
          const seg = parseTcp(s.tcpBytes);
          return { requestId: s.requestId, segment: typeof seg === 'string' ? undefined : cloneSegment(seg) };
        });
        const entries = t.conn.forward(segs);
        // An empty forward is the post-initiate barrier (2.6 note): nothing to complete.
        if (entries.length > 0) this.send({ type: 'TcpForwardComplete', entries });
        this.settleTerminates();
        return;
      }
      case 'IndicateReply': {
        const found = this.connByIndication(msg.indicationId);
        if (!found) return this.error(0x0025, msg.indicationId, Status.IPC_UNKNOWN_CONTEXT, `IndicateReply for indication ${msg.indicationId}, which no connection is waiting for`);
        const problem = found.conn.indicateReply(found.localId, msg.status, msg.bytesConsumed);
        if (problem) this.error(0x0025, msg.indicationId, Status.IPC_INVALID_IN_STATE, problem);
        this.settleTerminates();
        return;
      }
      case 'ReachabilityReply':
        return this.onReachabilityReply(msg.indicationId, msg.hostReachabilityDelta);
      case 'Hello':
        return this.error(0x0001, 0, Status.IPC_INVALID_IN_STATE, 'Hello after the handshake');
      default:
        return;
    }
  }

  private tcpFor(kind: number, ctx: number): TcpObj | undefined {
    const t = this.tcps.get(ctx);
    if (!t) this.error(kind, ctx, Status.IPC_UNKNOWN_CONTEXT, `request for unknown or terminated TCP context ${ctx}`);
    return t;
  }

  private connByIndication(indicationId: number): { conn: OffloadedConnection; localId: number } | undefined {
    const ref = this.indications.get(indicationId);
    if (!ref) return undefined;
    this.indications.delete(indicationId);
    const t = this.tcps.get(ref.ctx);
    return t ? { conn: t.conn, localId: ref.localId } : undefined;
  }

  // ------------------------------------------------------------------------------ initiate

  private initiate(msg: MessageOf<'InitiateOffload'>): void {
    this.counters.initiates++;
    const replay = this.replayFrames();
    const held: TargetMessage[] = [];
    this.holdBack = held;
    let results: BlockResult[];
    try {
      results = processInitiateTree(msg.blocks, {
        exists: (ctx, layer) => this.exists(ctx, layer),
        offload: (b, parent) => this.offloadOne(b, parent, replay),
      });
    } finally {
      this.holdBack = undefined;
    }
    this.o.toHost({ type: 'InitiateOffloadComplete', opId: msg.opId, results });
    for (const m of held) this.o.toHost(m);
  }

  private exists(ctx: number, layer: Layer): boolean {
    if (layer === 'neighbor') return this.neighbors.has(ctx);
    if (layer === 'path') return this.paths.has(ctx);
    return this.tcps.has(ctx);
  }

  /**
   * The frames the host holds for the connections of this initiate: every RawFrame after the
   * host's RawFramesSeen mark (sent right before the InitiateOffload). Undefined without a mark or
   * when the ring lost some of them: the connection then waits for the host's forward instead.
   */
  private replayFrames(): Map<string, TcpSegment[]> | undefined {
    const mark = this.rawSeenMark;
    this.rawSeenMark = undefined;
    if (mark === undefined) return undefined;
    const frames = this.rawRing.after(mark);
    if (frames === undefined) {
      this.counters.replayIncomplete++;
      return undefined;
    }
    // Parsed once per initiate, by 4-tuple (an initiate may carry many connections); checksums
    // verified like any input.
    const byFlow = new Map<string, TcpSegment[]>();
    for (const frame of frames) {
      const p = parseFrame(frame);
      if (typeof p === 'string' || !p.tcp || !p.ip || p.ip.version !== 4 || p.ip.hasOptions) continue;
      const key = replayKey(p.ip.src, p.ip.dst, p.tcp.dstPort * 65536 + p.tcp.srcPort);
      const list = byFlow.get(key);
      if (list) list.push(p.tcp);
      else byFlow.set(key, [p.tcp]);
    }
    return byFlow;
  }

  private offloadOne(b: Extract<Block, { role: 'new' }>, parent: number | undefined, replay?: ReadonlyMap<string, TcpSegment[]>): { status: number; ctx?: number } {
    if (b.layer === 'neighbor') {
      const s = b.state as NeighborState;
      if (this.neighbors.size >= this.limits.maxNeighbors) return { status: Status.OFFLOAD_NEIGHBOR_ENTRIES };
      if (s.const.vlanId !== 0) return { status: Status.OFFLOAD_VLAN_ENTRIES };
      const ctx = this.nextCtx++;
      const now = this.o.scheduler.now();
      this.neighbors.set(ctx, {
        ctx, handle: b.handle, state: s, invalidated: false, paths: new Set(),
        nrt: now - s.delegated.nicReachabilityDelta * this.msPerTick, hrt: now - s.cached.hostReachabilityDelta * this.msPerTick, queryPending: undefined,
      });
      return { status: Status.SUCCESS, ctx };
    }
    if (b.layer === 'path') {
      const s = b.state as PathState;
      const n = parent === undefined ? undefined : this.neighbors.get(parent);
      if (!n) return { status: Status.FAILURE };
      if (this.paths.size >= this.limits.maxPaths) return { status: Status.OFFLOAD_PATH_ENTRIES };
      if (s.cached.pathMtu > this.limits.maxPathMtu) return { status: Status.OFFLOAD_PATH_MTU };
      if (s.version !== 4) return { status: Status.OFFLOAD_IP_ADDRESS_ENTRIES }; // IPv6 offload not yet supported
      const ctx = this.nextCtx++;
      this.paths.set(ctx, { ctx, handle: b.handle, state: s, neighbor: parent, invalidated: false, tcps: new Set() });
      n.paths.add(ctx);
      return { status: Status.SUCCESS, ctx };
    }
    const s = b.state as import('../chimney/state.js').TcpState;
    const p = parent === undefined ? undefined : this.paths.get(parent);
    if (!p) return { status: Status.FAILURE };
    if (this.tcps.size >= this.limits.maxConnections) return { status: Status.OFFLOAD_TCP_ENTRIES };
    if (s.cached.initialRcvWnd > this.limits.maxReceiveWindow) return { status: Status.OFFLOAD_TCP_RCV_WINDOW };
    const bad = checkOffloadable(s);
    if (bad) {
      this.o.log?.('warn', `initiate refused: ${bad.problem}`, { handle: b.handle });
      return { status: bad.status };
    }
    // R47: BufferedData that cannot be copied fails the block with FAILURE; a send chain that
    // does not fit is short of transmit buffers.
    const buffered = s.delegated.bufferedData?.length ?? 0;
    const chainBytes = (s.delegated.sendChain ?? []).reduce((n, e) => n + (e.bytes?.length ?? 0), 0);
    if (!this.ledger.canLend(buffered)) return { status: Status.FAILURE };
    if (!this.ledger.canLend(buffered + chainBytes)) return { status: Status.OFFLOAD_TCP_XMIT_BUFFER };
    const flow = flowKey(p.state.const.sourceAddress, s.const.localPort, p.state.const.destinationAddress, s.const.remotePort);
    const remoteIp = readU32(p.state.const.destinationAddress);
    const localIp = readU32(p.state.const.sourceAddress);
    const ports = s.const.localPort * 65536 + s.const.remotePort;
    if (this.flowLookup(remoteIp, localIp, ports) !== undefined) return { status: Status.FAILURE };
    const ctx = this.nextCtx++;
    const ipHeader = p.state.version === 4 ? 20 : 40;
    const conn = new OffloadedConnection({
      ctx, handle: b.handle, state: s, params: this.params,
      pathMss: p.state.cached.pathMtu - ipHeader - 20,
      scheduler: this.o.scheduler, ledger: this.ledger,
      congestionControl: this.o.congestionControl ?? 'cubic',
      forwardWaitMs: this.o.forwardWaitMs ?? DEFAULT_FORWARD_WAIT_MS,
      sinks: {
        segments: (segs) => this.transmit(ctx, segs),
        host: (m) => {
          if (m.type === 'TcpReceiveIndicate') {
            const id = this.nextIndicationId++;
            this.indications.set(id, { ctx, localId: m.indicationId });
            this.lenders.add(ctx);
            this.send({ ...m, indicationId: id });
          } else {
            this.send(m);
          }
        },
        progress: () => this.progress(ctx),
      },
    });
    this.tcps.set(ctx, { conn, path: p.ctx, remoteIp, localIp, ports });
    let byPorts = this.flows.get(remoteIp);
    if (!byPorts) this.flows.set(remoteIp, (byPorts = new Map()));
    byPorts.set(ports, ctx);
    p.tcps.add(ctx);
    if (replay !== undefined) {
      const segs = replay.get(replayKey(remoteIp, localIp, ports)) ?? [];
      this.counters.segmentsReplayed += segs.length;
      conn.replayHeld(segs);
    }
    conn.start();
    this.o.log?.('info', 'connection offloaded', { ctx, handle: b.handle, flow });
    return { status: Status.SUCCESS, ctx };
  }

  // ------------------------------------------------------------------------------ wire

  private transmit(ctx: number, segs: TcpSegment[]): void {
    const t = this.tcps.get(ctx);
    if (!t) return;
    const p = this.paths.get(t.path);
    const n = p?.neighbor === undefined ? undefined : this.neighbors.get(p.neighbor);
    if (!p || !n || p.invalidated || n.invalidated || t.conn.invalidated) return; // R64
    if (t.conn.phase === 'live') this.checkReachability(n); // not for a terminate's last ACK
    const srcMac = macEquals(n.state.const.dlSourceAddress, ZERO_MAC) ? this.o.interfaceMac : n.state.const.dlSourceAddress;
    const cached = t.conn.cached;
    // R80 (spec 3.2.6): VlanId is always 0 here (non-zero is refused at initiate); a non-zero
    // 802.1p priority goes out in a VLAN-0 tag, CFI/DEI 0; no tag when both are zero.
    const vlan = cached.userPriority ? { pcp: cached.userPriority & 7, dei: false, vid: 0 } : undefined;
    for (const segment of segs) {
      const id = this.ipId;
      this.ipId = this.ipId === 0xffff ? 0x8000 : this.ipId + 1; // R75: the upper half of the ID space
      const frame = buildTcpFrame({
        srcMac, dstMac: n.state.cached.dlDestinationAddress, vlan,
        ip: { version: 4, src: readU32(p.state.const.sourceAddress), dst: readU32(p.state.const.destinationAddress), ttl: cached.ttlOrHopLimit || 64, tos: cached.tosOrTrafficClass, id, df: true },
        segment,
      });
      this.counters.framesOut++;
      this.o.toWire(frame);
    }
  }

  private flowLookup(remoteIp: number, localIp: number, ports: number): number | undefined {
    const ctx = this.flows.get(remoteIp)?.get(ports);
    return ctx !== undefined && this.tcps.get(ctx)?.localIp === localIp ? ctx : undefined;
  }

  private flowRemove(t: TcpObj): void {
    const byPorts = this.flows.get(t.remoteIp);
    byPorts?.delete(t.ports);
    if (byPorts && byPorts.size === 0) this.flows.delete(t.remoteIp);
  }

  /** One frame from the link. */
  onFrame(frame: Uint8Array): void {
    this.counters.framesIn++;
    if (this.tcps.size > 0) {
      const parsed = parseFrame(frame);
      if (typeof parsed !== 'string' && parsed.tcp && parsed.ip && parsed.ip.version === 4 && !parsed.ip.hasOptions) {
        const ip = parsed.ip;
        const ctx = this.flowLookup(ip.src, ip.dst, parsed.tcp.dstPort * 65536 + parsed.tcp.srcPort);
        const t = ctx === undefined ? undefined : this.tcps.get(ctx);
        // Spec 4.8 / R120: once the connection is closed (an acceptable RST, or a finished close)
        // its segments are the host's business: raw, like during a terminate.
        if (t && t.conn.phase === 'live' && !t.conn.invalidated && !t.conn.uploadRequested && !t.conn.aborted && t.conn.state !== EngineState.Closed) {
          const syn = (parsed.tcp.flags & (TCP_SYN | TCP_RST)) === TCP_SYN;
          if (syn && t.conn.state === EngineState.TimeWait) {
            // R120: a SYN in TIME_WAIT goes to the host raw (a new incarnation is its business).
          } else if (syn && parsed.tcp.seq === t.conn.connection.rcvNxt) {
            // R113: an in-order SYN: upload in Closed state; this and later segments go raw. The
            // reason is InvalidState (spec 9 leaves it open): the host must tell this dead
            // connection from one whose close finished at the target (Closed, UploadRequested).
            t.conn.uploadClosed(UploadReason.InvalidState);
          } else if (parsed.tcp.flags & TCP_URG) {
            // R114: valid urgent data: ask for the upload; this and later segments go to the host
            // raw. With an unacceptable sequence or ACK number it is discarded (spec 4.8).
            if (!urgentAcceptable(parsed.tcp, t.conn)) {
              this.counters.dropped['urgent-unacceptable'] = (this.counters.dropped['urgent-unacceptable'] ?? 0) + 1;
              return;
            }
            t.conn.requestUpload(UploadReason.ReceivedUrgentData);
          } else {
            this.counters.framesOffloaded++;
            // No copy: the engine consumes the segment before returning (it copies what it keeps).
            t.conn.input(parsed.tcp);
            return;
          }
        }
      }
    }
    this.counters.framesToHost++;
    const copy = frame.slice();
    this.rawRing.push(copy);
    this.send({ type: 'RawFrame', frame: copy });
  }

  // ------------------------------------------------------------------------------ terminate

  private terminate(msg: MessageOf<'TerminateOffload'>): void {
    this.counters.terminates++;
    const conns: OffloadedConnection[] = [];
    const neighbors: number[] = [];
    const walk = (b: RefBlock): void => {
      if (b.layer === 'neighbor') neighbors.push(b.ctx);
      if (b.layer === 'tcp') {
        const t = this.tcps.get(b.ctx);
        if (t) {
          t.conn.beginTerminate();
          conns.push(t.conn);
        }
      }
      b.children.forEach(walk);
    };
    msg.blocks.forEach(walk);
    this.pendingTerminates.push({ opId: msg.opId, blocks: msg.blocks, conns, neighbors });
    this.settleTerminates();
  }

  /** Complete every pending terminate whose connections have no unanswered indication (R22), in order. */
  private settleTerminates(): void {
    while (this.pendingTerminates.length > 0) {
      const t = this.pendingTerminates[0];
      if (!t.conns.every((c) => c.canCompleteTerminate)) return;
      if (t.neighbors.some((c) => this.neighbors.get(c)?.queryPending !== undefined)) return; // R22
      this.pendingTerminates.shift();
      const all: RefBlock[] = [];
      const collect = (b: RefBlock): void => { all.push(b); b.children.forEach(collect); };
      t.blocks.forEach(collect);
      const terminated = this.terminable(all);
      // TCP first, then paths, then neighbors, wherever they sit in the tree: a connection still
      // sends its last ACK through its path and neighbor. Results are reported in tree order.
      const byBlock = new Map<number, BlockResult>();
      for (const layer of ['tcp', 'path', 'neighbor'] as const) {
        for (const b of all) if (b.layer === layer) byBlock.set(b.blockId, this.terminateBlock(b, terminated));
      }
      const results = this.refResults(t.blocks, (b) => byBlock.get(b.blockId)!);
      this.send({ type: 'TerminateOffloadComplete', opId: t.opId, results });
    }
  }

  /**
   * R33: the path and neighbor contexts of a terminate tree that can go without orphaning anything:
   * every dependent is terminated in the same request (and can itself go). Iterated to a fixpoint
   * because a path that stays keeps its neighbor too. TCP contexts are always terminable.
   */
  private terminable(blocks: readonly RefBlock[]): Set<number> {
    const ok = new Set<number>();
    for (const b of blocks) if (this.exists(b.ctx, b.layer)) ok.add(b.ctx);
    for (let changed = true; changed;) {
      changed = false;
      for (const b of blocks) {
        if (!ok.has(b.ctx) || b.layer === 'tcp') continue;
        const deps = b.layer === 'path' ? this.paths.get(b.ctx)!.tcps : this.neighbors.get(b.ctx)!.paths;
        if ([...deps].some((c) => !ok.has(c))) {
          ok.delete(b.ctx);
          changed = true;
        }
      }
    }
    return ok;
  }

  private sendMode(): TerminateSendMode {
    const m = this.o.terminateSendMode ?? 'chain';
    if (m !== 'alternate') return m;
    this.alternate = !this.alternate;
    return this.alternate ? 'chain' : 'complete';
  }

  private terminateBlock(b: RefBlock, terminated: Set<number>): BlockResult {
    if (b.layer === 'tcp') {
      const t = this.tcps.get(b.ctx);
      if (!t) return { blockId: b.blockId, status: Status.FAILURE };
      const delegated = t.conn.finishTerminate(this.sendMode(), this.ledger);
      this.lenders.add(b.ctx);
      this.tcps.delete(b.ctx);
      this.flowRemove(t);
      this.paths.get(t.path)?.tcps.delete(b.ctx);
      const flow = `${ipv4ToString(t.localIp)}:${Math.floor(t.ports / 65536)}>${ipv4ToString(t.remoteIp)}:${t.ports % 65536}`;
      this.o.log?.('info', 'connection uploaded', { ctx: b.ctx, handle: t.conn.handle, flow });
      return { blockId: b.blockId, status: Status.SUCCESS, tcp: { delegated } };
    }
    if (b.layer === 'path') {
      const p = this.paths.get(b.ctx);
      if (!p) return { blockId: b.blockId, status: Status.FAILURE };
      // R33: never orphan dependents.
      if (!terminated.has(b.ctx)) return { blockId: b.blockId, status: Status.FAILURE };
      this.paths.delete(b.ctx);
      if (p.neighbor !== undefined) this.neighbors.get(p.neighbor)?.paths.delete(b.ctx);
      return { blockId: b.blockId, status: Status.SUCCESS };
    }
    const n = this.neighbors.get(b.ctx);
    if (!n) return { blockId: b.blockId, status: Status.FAILURE };
    if (!terminated.has(b.ctx)) return { blockId: b.blockId, status: Status.FAILURE };
    this.neighbors.delete(b.ctx);
    return { blockId: b.blockId, status: Status.SUCCESS, neighbor: { delegated: { nicReachabilityDelta: this.nrd(n) } } };
  }

  // ------------------------------------------------------------------------------ query / update / invalidate

  /** Apply `fn` to every block in pre-order (children after their parent) and collect results. */
  private refResults(blocks: readonly RefBlock[], fn: (b: RefBlock) => BlockResult): BlockResult[] {
    const out: BlockResult[] = [];
    const walk = (b: RefBlock): void => {
      out.push(fn(b));
      b.children.forEach(walk);
    };
    blocks.forEach(walk);
    return out;
  }

  private queryBlock(b: RefBlock): BlockResult {
    if (b.layer === 'tcp') {
      const t = this.tcps.get(b.ctx);
      return t ? { blockId: b.blockId, status: Status.SUCCESS, tcp: t.conn.query() } : { blockId: b.blockId, status: Status.FAILURE };
    }
    if (b.layer === 'path') {
      const p = this.paths.get(b.ctx);
      return p ? { blockId: b.blockId, status: Status.SUCCESS, path: p.state } : { blockId: b.blockId, status: Status.FAILURE };
    }
    const n = this.neighbors.get(b.ctx);
    return n ? { blockId: b.blockId, status: Status.SUCCESS, neighbor: this.neighborState(n) } : { blockId: b.blockId, status: Status.FAILURE };
  }

  private update(msg: MessageOf<'UpdateOffload'>): void {
    const results: BlockResult[] = [];
    const walk = (b: RefBlock, parent: RefBlock | undefined): void => {
      results.push(this.updateBlock(b, parent));
      b.children.forEach((c) => walk(c, b));
    };
    msg.blocks.forEach((b) => walk(b, undefined));
    this.send({ type: 'UpdateOffloadComplete', opId: msg.opId, results });
  }

  private updateBlock(b: RefBlock, parent: RefBlock | undefined): BlockResult {
    const fail = { blockId: b.blockId, status: Status.FAILURE };
    if (b.layer === 'neighbor') {
      const n = this.neighbors.get(b.ctx);
      if (!n) return fail;
      if (b.cached) {
        n.state = { ...n.state, cached: b.cached as NeighborCached };
        n.hrt = this.o.scheduler.now() - n.state.cached.hostReachabilityDelta * this.msPerTick;
      }
      return { blockId: b.blockId, status: Status.SUCCESS };
    }
    if (b.layer === 'path') {
      const p = this.paths.get(b.ctx);
      if (!p) return fail;
      if (parent && parent.layer === 'neighbor' && this.neighbors.has(parent.ctx) && p.neighbor !== parent.ctx) {
        // R58: relink this path to the neighbor of the root block.
        if (p.neighbor !== undefined) this.neighbors.get(p.neighbor)?.paths.delete(p.ctx);
        p.neighbor = parent.ctx;
        this.neighbors.get(parent.ctx)!.paths.add(p.ctx);
      }
      if (b.cached) {
        const c = b.cached as PathCached;
        if (c.pathMtu > this.limits.maxPathMtu) return fail;
        p.state = { ...p.state, cached: c };
        const mss = c.pathMtu - (p.state.version === 4 ? 20 : 40) - 20;
        for (const ctx of p.tcps) this.tcps.get(ctx)?.conn.setPathMss(mss);
      }
      return { blockId: b.blockId, status: Status.SUCCESS };
    }
    const t = this.tcps.get(b.ctx);
    if (!t) return fail;
    if (b.cached) t.conn.update(b.cached as TcpCached);
    return { blockId: b.blockId, status: Status.SUCCESS };
  }

  private invalidateBlock(b: RefBlock): BlockResult {
    const fail = { blockId: b.blockId, status: Status.FAILURE };
    const invalidateTcp = (ctx: number): void => this.tcps.get(ctx)?.conn.invalidate();
    if (b.layer === 'tcp') {
      if (!this.tcps.has(b.ctx)) return fail;
      invalidateTcp(b.ctx);
    } else if (b.layer === 'path') {
      const p = this.paths.get(b.ctx);
      if (!p) return fail;
      p.invalidated = true;
      p.tcps.forEach(invalidateTcp);
    } else {
      const n = this.neighbors.get(b.ctx);
      if (!n) return fail;
      n.invalidated = true;
      for (const pc of n.paths) this.paths.get(pc)?.tcps.forEach(invalidateTcp);
    }
    return { blockId: b.blockId, status: Status.SUCCESS };
  }

  // ------------------------------------------------------------------------------ lifecycle

  /** Ask the host to take every connection back (SIGTERM, spec 5.5). */
  requestUploadAll(): void {
    this.send({ type: 'StatusIndication', code: AdapterStatus.UploadAll });
  }

  /** A host bound: it counts RawFrame messages from zero (RawFramesSeen). */
  hostBound(): void {
    this.rawRing.reset();
    this.rawSeenMark = undefined;
  }

  /** The host binding closed or misbehaved: abort (RST) its connections and free their buffers. */
  hostGone(): number {
    const n = this.tcps.size;
    for (const t of this.tcps.values()) t.conn.destroy();
    this.tcps.clear();
    this.flows.clear();
    this.paths.clear();
    this.neighbors.clear();
    this.pendingTerminates.length = 0;
    for (const ctx of this.lenders) for (const id of this.ledger.lentBy(ctx)) this.ledger.reclaim(id);
    this.lenders.clear();
    this.indications.clear();
    this.reachabilityQueries.clear();
    if (n > 0) this.o.log?.('warn', `host binding gone: aborted ${n} offloaded connection(s) with RST`);
    return n;
  }
}

/** A 4-tuple as the replay groups it: peer address, our address, our port * 65536 + peer port. */
function replayKey(remoteIp: number, localIp: number, ports: number): string {
  return `${remoteIp}/${localIp}/${ports}`;
}

function readU32(a: Uint8Array): number {
  return ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0;
}

/** Spec 4.8: an URG segment counts only with its sequence number in the window and a valid ACK. */
function urgentAcceptable(seg: TcpSegment, conn: OffloadedConnection): boolean {
  const c = conn.connection;
  const inWindow = seqGe(seg.seq, c.rcvNxt) && seqLt(seg.seq, seqAdd(c.rcvNxt, Math.max(1, conn.cached.initialRcvWnd)));
  const ackOk = (seg.flags & TCP_ACK) !== 0 && seqGe(seg.ack, c.sndUna) && seqLe(seg.ack, c.sndMax);
  return inWindow && ackOk;
}
