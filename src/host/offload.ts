/**
 * The host side of offload (spec 2.1, 2.6, 3, 4.1-4.3, 5.1, 6): when to offload a socket's
 * connection, the InitiateOffload tree built from the engine's export, the socket's I/O while the
 * target drives it (TcpSend with the host's copies kept until completion, indications and posted
 * receives, disconnects, events), and the terminate that rebuilds a host engine from the returned
 * delegated state, send chain and BufferedData. Frames of the 4-tuple that reach the host while the
 * target owns the connection are held and processed after the terminate (spec 6.7).
 */
import {
  AdapterStatus, TCP_CACHED_FLAG, TCP_CONST_FLAG, TCP_DISCONNECT, TcpEventType, UploadReason, type TcpCached, type TcpDelegated, type TcpState as ChimneyTcpState,
} from '../chimney/state.js';
import { Status, statusName } from '../chimney/status.js';
import { MESSAGES, type MessageOf, type TargetMessage } from '../ipc/messages.js';
import { deferOn } from '../link/scheduler.js';
import { TcpConnection } from '../tcp/connection.js';
import { seqDiff } from '../wire/seq.js';
import type { Scheduler } from '../tcp/driver.js';
import { FIN_QUEUED_STATES, FIN_RECEIVED_STATES, OFFLOADABLE_STATES, TcpState as S, type TcpConfig, type TcpExport } from '../tcp/types.js';
import { cloneSegment, type TcpSegment } from '../wire/tcp-segment.js';
import { encodeTcp } from '../wire/tcp.js';
import type { ChimneyLink } from './chimney-link.js';
import type { OffloadControl, OffloadIo, TcpSocket } from './socket.js';

/** When the stack hands established connections to the target. */
export type OffloadPolicy = 'never' | 'after-handshake' | { afterBytes: number } | 'manual';

/** What the manager needs from its stack. */
export interface OffloadStack {
  readonly scheduler: Scheduler;
  readonly mac: Uint8Array;
  readonly address: number;
  /** Send the frames built so far (the export's ACK must precede the InitiateOffload). */
  flush(): void;
  /** The link-layer destination for `remoteIp` if resolved (next hop's ARP entry). */
  neighborMac(remoteIp: number): Uint8Array | undefined;
  /** The next hop toward `remoteIp` (itself when on-link, else the gateway). */
  routeTo(remoteIp: number): number | undefined;
}

export interface OffloadManagerOptions {
  policy: OffloadPolicy;
  /** Bytes of send requests the target may hold per connection before writes wait (default 256 KiB). */
  sendBacklog?: number;
  /** Receive request size posted after the host refused an indication (default 64 KiB). */
  receivePost?: number;
  /** The target's tick rate (its default; this manager sends no SetParameters). Default 1000. */
  ticksPerSecond?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface OffloadStats {
  initiates: number;
  initiateFailures: number;
  terminates: number;
  sendRequests: number;
  /** Most send-request bytes one connection had at the target at once (bounded by sendBacklog). */
  sendBacklogPeak: number;
  indications: number;
  indicationsRefused: number;
  /** Neighbor and path UpdateOffloads sent (MAC or path MTU changes). */
  updates: number;
  /**
   * Hand-overs where the bytes given to the application since the previous hand-over differ from
   * how far RcvNxt moved: received data lost or duplicated (a bug; logged with the numbers).
   */
  receiveMismatches: number;
}

/** Where a connection's receive stream stood at its last hand-over. */
interface ReceiveMark {
  rcvNxt: number;
  finReceived: boolean;
  bytesRead: number;
}

/** States an established connection can be offloaded in (the handshake stays on the host). */
const MAX_REQUEST = 64 * 1024;
/** Slow start from one segment reaches 32 in five round trips, each without a delayed ACK. */
const QUICK_ACKS_AFTER_TERMINATE = 32;
/** Segments per TcpForward message (about 100 KB of full-sized segments). */
const FORWARD_BATCH = 64;
const EMPTY = new Uint8Array(0);
const TERMINATE_BLOCKS = { neighbor: 1, path: 2, tcp: 3 } as const;

interface SendRequest {
  id: number;
  bytes: Uint8Array;
}

interface Waiter {
  resolve(): void;
  reject(e: Error): void;
}

type Phase = 'initiating' | 'offloaded' | 'terminating';

/** One offloaded (or offloading / terminating) connection. */
class OffloadEntry implements OffloadIo {
  phase: Phase = 'initiating';
  ctx = 0;
  neighborCtx = 0;
  pathCtx = 0;
  /** Send requests the target owns, in posting order (our copies, R6). */
  outstanding: SendRequest[] = [];
  outstandingBytes = 0;
  /** Tails of requests completed with UPLOAD_IN_PROGRESS: the host resends them (mode "complete"). */
  uploadInProgress: SendRequest[] = [];
  /** Segments of the 4-tuple that reached the host meanwhile (copied). */
  held: TcpSegment[] = [];
  /** Held segments forwarded to the target after the initiate, by request id, until completed. */
  forwarding = new Map<number, TcpSegment>();
  /** An indication was refused: from then on data comes through posted receive requests only. */
  refused = false;
  receivePosted = false;
  aborted = false;
  endPending = false;
  endSent = false;
  /** Both directions finished while offloaded: the host takes the connection back to end it. */
  peerFinSeen = false;
  /** The reason of the target's last TcpIndicateRetrieve (UploadReason), if any. */
  retrieveReason: number | undefined;
  finAcked = false;
  disconnectId = 0;
  abortPending = false;
  terminateAfterInitiate = false;
  updatePending = false;
  /** The neighbor's MAC / the path MTU changed while the initiate ran: update once it completed. */
  neighborPending = false;
  pathMtuPending: number | undefined;
  initiateWaiters: Waiter[] = [];
  terminateWaiters: Waiter[] = [];

  constructor(
    readonly mgr: OffloadManager,
    readonly socket: TcpSocket,
    readonly handle: number,
    readonly exp: TcpExport,
  ) {}

  write(data: Uint8Array): number {
    if (this.phase !== 'offloaded' || this.endSent || this.aborted) return 0;
    const room = this.mgr.sendBacklog - this.outstandingBytes;
    if (room <= 0) return 0;
    const n = Math.min(room, data.length);
    const buffers: Array<{ requestId: number; bytes: Uint8Array }> = [];
    for (let off = 0; off < n; off += MAX_REQUEST) {
      // A copy: the application may reuse its buffer once the write callback ran.
      const req = { id: this.mgr.nextRequestId(), bytes: data.slice(off, Math.min(n, off + MAX_REQUEST)) };
      this.outstanding.push(req);
      this.outstandingBytes += req.bytes.length;
      buffers.push({ requestId: req.id, bytes: req.bytes });
    }
    const st = this.mgr.stats;
    st.sendRequests += buffers.length;
    if (this.outstandingBytes > st.sendBacklogPeak) st.sendBacklogPeak = this.outstandingBytes;
    this.mgr.link.sendMessage({ type: 'TcpSend', ctx: this.ctx, buffers });
    return n;
  }

  end(): void {
    if (this.phase === 'initiating') this.endPending = true;
    else if (this.phase === 'offloaded') this.sendDisconnect(true);
    // terminating: the socket queues the FIN on the imported engine (finalIssued)
  }

  readResume(): void {
    if (!this.refused || this.phase !== 'offloaded' || this.receivePosted) return;
    // After a refused indication the target holds the data until the host posts a request (spec
    // 4.3); from then on one request stays posted while the application reads.
    this.receivePosted = true;
    this.mgr.link.sendMessage({ type: 'TcpReceive', ctx: this.ctx, requests: [{ requestId: this.mgr.nextRequestId(), capacity: this.mgr.receivePost, noPush: false }] });
  }

  destroyed(abortive: boolean): void {
    // Graceful: the target finishes the close; the last FIN exchange or TIME-WAIT brings it back.
    if (!abortive) return;
    if (this.phase === 'initiating') {
      this.abortPending = true;
      return;
    }
    if (this.phase === 'offloaded' && !this.aborted) {
      this.aborted = true;
      this.mgr.link.sendMessage({ type: 'TcpDisconnect', ctx: this.ctx, requestId: this.mgr.nextRequestId(), flags: TCP_DISCONNECT.ABORTIVE, bytes: EMPTY });
    }
    void this.mgr.terminate(this.socket).catch(() => {});
  }

  sendDisconnect(graceful: boolean): void {
    if (this.endSent) return;
    this.endSent = true;
    this.disconnectId = this.mgr.nextRequestId();
    this.mgr.link.sendMessage({ type: 'TcpDisconnect', ctx: this.ctx, requestId: this.disconnectId, flags: graceful ? TCP_DISCONNECT.GRACEFUL : TCP_DISCONNECT.ABORTIVE, bytes: EMPTY });
  }
}

/** Holds the segments of an offloaded 4-tuple that reach the host stack (its demux handler meanwhile). */
class HoldHandler {
  constructor(private readonly into: TcpSegment[]) {}
  input(seg: TcpSegment): void {
    this.into.push(cloneSegment(seg));
  }
}

function ipBytes(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

export class OffloadManager implements OffloadControl {
  readonly policy: OffloadPolicy;
  readonly sendBacklog: number;
  readonly receivePost: number;
  readonly msPerTick: number;
  readonly stats: OffloadStats = { initiates: 0, initiateFailures: 0, terminates: 0, sendRequests: 0, sendBacklogPeak: 0, indications: 0, indicationsRefused: 0, updates: 0, receiveMismatches: 0 };
  private readonly receiveMarks = new WeakMap<TcpSocket, ReceiveMark>();
  private readonly bySocket = new Map<TcpSocket, OffloadEntry>();
  private readonly byHandle = new Map<number, OffloadEntry>();
  private readonly byCtx = new Map<number, OffloadEntry>();
  private readonly ops = new Map<number, { kind: 'initiate' | 'terminate'; entry: OffloadEntry }>();
  /** Query and invalidate operations waiting for their completion, by opId. */
  private readonly pending = new Map<number, { resolve: (m: MessageOf<'QueryOffloadComplete'> | MessageOf<'InvalidateOffloadComplete'>) => void; reject: (e: Error) => void }>();
  /** Sockets the automatic policy already decided on (it offloads a connection once). */
  private readonly decided = new WeakSet<TcpSocket>();
  /** Set by UploadAll / OffloadPause until OffloadResume (spec 5.5): no new offloads. */
  private paused = false;
  private nextHandle = 1;
  private nextOp = 1;
  private nextReq = 1;
  private readonly log: (msg: string, fields?: Record<string, unknown>) => void;

  constructor(
    private readonly stack: OffloadStack,
    readonly link: ChimneyLink,
    opts: OffloadManagerOptions,
  ) {
    this.policy = opts.policy;
    this.sendBacklog = opts.sendBacklog ?? 256 * 1024;
    this.receivePost = opts.receivePost ?? 64 * 1024;
    this.msPerTick = 1000 / (opts.ticksPerSecond ?? 1000);
    this.log = opts.log ?? (() => {});
    link.setControlHandler((m) => this.onTargetMessage(m));
    link.onBindingClosed = (reason) => this.bindingLost(reason);
  }

  /** Whether the target accepts new offloads now (spec 5.5). */
  get accepting(): boolean {
    return !this.paused;
  }

  /** The target is gone and has reset every connection it held (issue 4, item 3). */
  private bindingLost(reason: string): void {
    this.paused = true;
    const err = new Error(`offload target binding closed: ${reason}`);
    for (const entry of [...this.bySocket.values()]) {
      this.forget(entry);
      entry.socket.offloadGone();
      for (const w of [...entry.initiateWaiters.splice(0), ...entry.terminateWaiters.splice(0)]) w.reject(err);
    }
    this.ops.clear();
  }

  /** Connections the target drives now (initiating and terminating included). */
  get offloadedCount(): number {
    return this.bySocket.size;
  }

  nextRequestId(): number {
    const id = this.nextReq;
    this.nextReq = this.nextReq >= 0xffffffff ? 1 : this.nextReq + 1;
    return id;
  }

  // ------------------------------------------------------------------------------ policy

  activity(socket: TcpSocket): void {
    const p = this.policy;
    if (p === 'never' || p === 'manual' || this.paused || this.decided.has(socket) || this.bySocket.has(socket)) return;
    if (!OFFLOADABLE_STATES.has(socket.connection.state)) return;
    if (typeof p === 'object' && socket.bytesRead + socket.bytesWritten < p.afterBytes) return;
    this.decided.add(socket);
    // Not from inside the engine's event callback: the export drives the engine itself.
    deferOn(this.stack.scheduler, () => {
      this.offload(socket).catch((e: Error) => this.log('automatic offload not done', { reason: e.message }));
    });
  }

  // ------------------------------------------------------------------------------ initiate

  offload(socket: TcpSocket): Promise<void> {
    const existing = this.bySocket.get(socket);
    if (existing) {
      if (existing.phase === 'offloaded') return Promise.resolve();
      if (existing.phase === 'initiating') return new Promise((resolve, reject) => existing.initiateWaiters.push({ resolve, reject }));
      return Promise.reject(new Error('offload: a terminate of this connection is running'));
    }
    if (this.paused) return Promise.reject(new Error('offload: the target asked for no new offloads (spec 5.5)'));
    const b = socket.binding;
    if (socket.destroyed || b.closed || !b.attached) return Promise.reject(new Error('offload: the connection is closed or not driven by the host'));
    const conn = b.connection;
    if (!OFFLOADABLE_STATES.has(conn.state)) return Promise.reject(new Error(`offload: not offloadable in state ${S[conn.state]}`));
    const remoteIp = b.entry.remoteIp;
    const peerMac = this.stack.neighborMac(remoteIp);
    if (peerMac === undefined) return Promise.reject(new Error('offload: next hop not resolved'));

    const held: TcpSegment[] = [];
    const exp = socket.exportState({ msPerTick: this.msPerTick }, new HoldHandler(held));
    const rawSeen = this.link.rawFramesSeen;
    this.stack.flush();
    const handle = this.nextHandle;
    this.nextHandle += 3;
    const entry = new OffloadEntry(this, socket, handle, exp);
    entry.held = held;
    // Unread bytes go to the stream now rather than as BufferedData: the application gets them
    // in order either way, and the target starts with an empty receive buffer.
    for (const r of exp.receiveData) if (r.length > 0) socket.offloadData(r.slice());
    this.checkReceiveStream(socket, exp.delegated.rcvNxt, exp.finReceived, 'offload');
    for (const d of exp.sendData) {
      for (let off = 0; off < d.length; off += MAX_REQUEST) {
        const req = { id: this.nextRequestId(), bytes: d.slice(off, Math.min(d.length, off + MAX_REQUEST)) };
        entry.outstanding.push(req);
        entry.outstandingBytes += req.bytes.length;
      }
    }
    const sendChain = entry.outstanding.map((r) => ({ bufferId: r.id, bytes: r.bytes }));
    const k = exp.const;
    const state: ChimneyTcpState = {
      const: {
        flags: (k.timestamps ? TCP_CONST_FLAG.TIMESTAMP_ENABLED : 0) | (k.sack ? TCP_CONST_FLAG.SACK_ENABLED : 0) | (k.windowScaling ? TCP_CONST_FLAG.WINDOW_SCALING_ENABLED : 0),
        remotePort: b.entry.remotePort, localPort: b.entry.localPort, sndWindScale: k.sndWindScale, rcvWindScale: k.rcvWindScale, remoteMss: k.remoteMss, hashValue: 0,
      },
      cached: this.cachedOf(conn.config, 0),
      delegated: {
        ...exp.delegated, flags: 0, dWnd: 0,
        sendChain, sendDataHead: sendChain[0]?.bufferId, sendDataTail: sendChain[sendChain.length - 1]?.bufferId,
      },
    };
    const opId = this.op('initiate', entry);
    this.bySocket.set(socket, entry);
    this.byHandle.set(handle, entry);
    this.stats.initiates++;
    const promise = new Promise<void>((resolve, reject) => entry.initiateWaiters.push({ resolve, reject }));
    socket.offloadBegin(entry);
    // What the host has processed when it exported: the target replays the frames after this mark
    // (the ones held meanwhile) itself, without waiting for the forward (docs/ipc-protocol.md 7).
    this.link.sendMessage({ type: 'RawFramesSeen', count: rawSeen });
    this.link.sendMessage({
      type: 'InitiateOffload', opId, blocks: [{
        blockId: TERMINATE_BLOCKS.neighbor, role: 'new', layer: 'neighbor', handle: handle + 1,
        state: { const: { dlSourceAddress: this.stack.mac.slice(), vlanId: 0 }, cached: { dlDestinationAddress: peerMac.slice(), hostReachabilityDelta: 0 }, delegated: { nicReachabilityDelta: 0 } },
        children: [{
          blockId: TERMINATE_BLOCKS.path, role: 'new', layer: 'path', handle: handle + 2,
          state: { version: 4, const: { sourceAddress: ipBytes(this.stack.address), destinationAddress: ipBytes(remoteIp) }, cached: { pathMtu: this.link.mtu } },
          children: [{ blockId: TERMINATE_BLOCKS.tcp, role: 'new', layer: 'tcp', handle, state, children: [] }],
        }],
      }],
    });
    return promise;
  }

  /** The CACHED TCP variables the socket's settings imply (spec 2.1, 2.2). */
  private cachedOf(config: TcpConfig, extraFlags: number): TcpCached {
    const ka = config.keepalive;
    return {
      flags: (config.nagle ? TCP_CACHED_FLAG.NAGLING_ENABLED : 0) | (ka.enabled ? TCP_CACHED_FLAG.KEEP_ALIVE_ENABLED : 0) | extraFlags,
      initialRcvWnd: config.receiveBufferSize, rcvIndicationSize: 0,
      kaProbeCount: ka.probes, kaTimeout: Math.ceil(ka.idleMs / this.msPerTick), kaInterval: Math.ceil(ka.intervalMs / this.msPerTick),
      maxRt: 0, flowLabel: 0, ttlOrHopLimit: 64, tosOrTrafficClass: 0, userPriority: 0,
    };
  }

  /** The socket changed Nagle or keepalive: tell the target (UpdateOffload; completion not awaited). */
  updateCached(socket: TcpSocket): void {
    const entry = this.bySocket.get(socket);
    if (entry === undefined) return;
    if (entry.phase === 'initiating') {
      entry.updatePending = true;
      return;
    }
    if (entry.phase !== 'offloaded') return; // the imported engine uses the socket's config anyway
    this.link.sendMessage({
      type: 'UpdateOffload', opId: this.nextOpId(), blocks: [{
        blockId: 1, ctx: entry.ctx, layer: 'tcp', children: [],
        cached: this.cachedOf(socket.connection.config, TCP_CACHED_FLAG.KEEP_ALIVE_RESTART),
      }],
    });
  }

  private nextOpId(): number {
    const id = this.nextOp;
    this.nextOp = this.nextOp >= 0xffffffff ? 1 : this.nextOp + 1;
    return id;
  }

  private op(kind: 'initiate' | 'terminate', entry: OffloadEntry): number {
    const id = this.nextOpId();
    this.ops.set(id, { kind, entry });
    return id;
  }

  private onInitiated(entry: OffloadEntry, m: MessageOf<'InitiateOffloadComplete'>): void {
    const by = new Map(m.results.map((r) => [r.blockId, r]));
    const t = by.get(TERMINATE_BLOCKS.tcp);
    if (t?.status !== Status.SUCCESS || t.ctx === undefined) {
      this.initiateFailed(entry, `target refused the offload: ${statusName(t?.status ?? Status.FAILURE)}`);
      return;
    }
    entry.ctx = t.ctx;
    entry.neighborCtx = by.get(TERMINATE_BLOCKS.neighbor)?.ctx ?? 0;
    entry.pathCtx = by.get(TERMINATE_BLOCKS.path)?.ctx ?? 0;
    entry.phase = 'offloaded';
    this.byCtx.set(entry.ctx, entry);
    // Before anything else of this connection reaches the target (the stream keeps the order).
    this.forwardHeld(entry);
    for (const w of entry.initiateWaiters.splice(0)) w.resolve();
    const s = entry.socket;
    if (entry.abortPending) {
      entry.destroyed(true);
      return;
    }
    if (entry.updatePending) this.updateCached(s);
    if (entry.neighborPending) {
      const mac = this.stack.neighborMac(s.binding.entry.remoteIp);
      if (mac !== undefined) this.neighborChanged(this.stack.routeTo(s.binding.entry.remoteIp)!, mac);
    }
    if (entry.pathMtuPending !== undefined) this.pathMtuChanged(s, entry.pathMtuPending);
    s.offloadWritable();
    if (entry.endPending) entry.sendDisconnect(true);
    if (entry.terminateAfterInitiate) void this.terminate(s).catch(() => {});
  }

  /**
   * Spec 2.6: segments that reached the host during the initiate were neither processed nor
   * acknowledged here; the target owns the connection now, so they go to it, followed by an empty
   * TcpForward: the target holds the connection's wire segments until that one arrives (the
   * hand-over barrier in docs/ipc-protocol.md), so the peer never sees a hole being reported.
   */
  private forwardHeld(entry: OffloadEntry): void {
    const held = entry.held.splice(0);
    for (let i = 0; i < held.length; i += FORWARD_BATCH) {
      const segments = held.slice(i, i + FORWARD_BATCH).map((seg) => {
        const requestId = this.nextRequestId();
        entry.forwarding.set(requestId, seg);
        return { requestId, tcpBytes: encodeTcp(seg) };
      });
      this.link.sendMessage({ type: 'TcpForward', ctx: entry.ctx, segments });
    }
    this.link.sendMessage({ type: 'TcpForward', ctx: entry.ctx, segments: [] }); // the barrier's end
  }

  /** Spec 2.6: refused with UPLOAD_IN_PROGRESS, the host processes them after the terminate. */
  private onForwardComplete(m: MessageOf<'TcpForwardComplete'>): void {
    const back = new Map<OffloadEntry, TcpSegment[]>();
    for (const e of m.entries) {
      const entry = this.byCtx.get(e.ctx);
      const seg = entry?.forwarding.get(e.requestId);
      if (entry === undefined || seg === undefined) continue;
      entry.forwarding.delete(e.requestId);
      if (e.status !== Status.UPLOAD_IN_PROGRESS) continue; // processed, or the connection was reset
      const list = back.get(entry) ?? [];
      list.push(seg);
      back.set(entry, list);
    }
    // Older than anything held since the forward: they go first.
    for (const [entry, list] of back) entry.held.unshift(...list);
  }

  /** The target did not take the connection: the host engine continues from the export. */
  private initiateFailed(entry: OffloadEntry, reason: string): void {
    this.stats.initiateFailures++;
    this.log('offload failed', { reason });
    const sendData = entry.outstanding.map((r) => r.bytes);
    this.resume(entry, { ...entry.exp, sendData, receiveData: [] });
    const err = new Error(reason);
    for (const w of entry.initiateWaiters.splice(0)) w.reject(err);
    for (const w of entry.terminateWaiters.splice(0)) w.resolve();
  }

  // ------------------------------------------------------------------------------ terminate

  terminate(socket: TcpSocket): Promise<void> {
    const entry = this.bySocket.get(socket);
    if (entry === undefined) return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => entry.terminateWaiters.push({ resolve, reject }));
    if (entry.phase === 'initiating') {
      entry.terminateAfterInitiate = true;
      return p;
    }
    if (entry.phase === 'terminating') return p;
    entry.phase = 'terminating';
    this.stack.flush();
    this.link.sendMessage({
      type: 'TerminateOffload', opId: this.op('terminate', entry), blocks: [{
        blockId: TERMINATE_BLOCKS.neighbor, ctx: entry.neighborCtx, layer: 'neighbor', children: [{
          blockId: TERMINATE_BLOCKS.path, ctx: entry.pathCtx, layer: 'path', children: [{ blockId: TERMINATE_BLOCKS.tcp, ctx: entry.ctx, layer: 'tcp', children: [] }],
        }],
      }],
    });
    return p;
  }

  /** Take every connection back (StatusIndication UploadAll, shutdown). */
  terminateAll(): Promise<void> {
    return Promise.all([...this.bySocket.keys()].map((s) => this.terminate(s))).then(() => {});
  }

  private onTerminated(entry: OffloadEntry, m: MessageOf<'TerminateOffloadComplete'>): void {
    this.stats.terminates++;
    const r = m.results.find((x) => x.blockId === TERMINATE_BLOCKS.tcp);
    const d = r?.tcp?.delegated;
    if (r?.status !== Status.SUCCESS || d === undefined) {
      this.terminateFailed(entry, statusName(r?.status ?? Status.FAILURE));
      return;
    }
    // Send data (R10, R11): tails the host resends first, then the chain from our own copies.
    const sendData: Uint8Array[] = entry.uploadInProgress.map((x) => x.bytes);
    const byId = new Map(entry.outstanding.map((x) => [x.id, x]));
    for (const c of d.sendChain ?? []) {
      const req = byId.get(c.bufferId);
      if (req === undefined) {
        this.log('terminate: chained buffer unknown', { bufferId: c.bufferId });
        continue;
      }
      sendData.push(req.bytes.subarray(c.ackedBytes ?? 0));
    }
    // BufferedData (R15-R17): to the application, then the buffers go back.
    const returned: number[] = [];
    for (const bd of d.bufferedBuffers ?? []) {
      if (bd.bytes.length > 0) entry.socket.offloadData(bd.bytes.slice());
      returned.push(bd.bufferId);
    }
    if (returned.length > 0) this.link.sendMessage({ type: 'TcpReceiveReturn', bufferIds: returned });
    // Closed: the FIN is known to be in RcvNxt only for a close that finished at the target.
    const finReceived = d.state === S.Closed ? (this.finishedAtTarget(entry, d.state) ? true : undefined) : FIN_RECEIVED_STATES.has(d.state);
    if (finReceived !== undefined) this.checkReceiveStream(entry.socket, d.rcvNxt, finReceived, 'terminate');
    // A FIN the target never queued is queued again by the socket on the imported engine.
    const exp: TcpExport = {
      const: entry.exp.const,
      delegated: { ...d },
      sendData,
      finQueued: FIN_QUEUED_STATES.has(d.state),
      receiveData: [],
      finReceived: finReceived ?? false,
    };
    this.resume(entry, exp);
    for (const w of entry.terminateWaiters.splice(0)) w.resolve();
  }

  /** Without the delegated state the connection cannot continue anywhere: it ends with a reset. */
  private terminateFailed(entry: OffloadEntry, reason: string): void {
    this.log('terminate failed', { reason });
    this.forget(entry);
    entry.socket.offloadGone();
    const err = new Error(`terminate failed: ${reason}`);
    for (const w of entry.terminateWaiters.splice(0)) w.reject(err);
  }

  /**
   * Every byte the peer's sequence space carried since the last hand-over reached the application
   * exactly once: bytes read moved as far as RcvNxt did (less the peer's FIN). A mismatch is a
   * bug on one side of the hand-over; it is logged with the numbers and counted, not hidden.
   */
  private checkReceiveStream(socket: TcpSocket, rcvNxt: number, finReceived: boolean, at: 'offload' | 'terminate'): void {
    const mark = this.receiveMarks.get(socket);
    this.receiveMarks.set(socket, { rcvNxt, finReceived, bytesRead: socket.bytesRead });
    if (mark === undefined || socket.destroyed) return; // a destroyed socket discards what it gets
    const expected = seqDiff(rcvNxt, mark.rcvNxt) - (finReceived && !mark.finReceived ? 1 : 0);
    const read = socket.bytesRead - mark.bytesRead;
    if (read === expected) return;
    this.stats.receiveMismatches++;
    this.log('receive stream mismatch at a hand-over', { at, bytesGiven: read, rcvNxtAdvance: expected, rcvNxt, previousRcvNxt: mark.rcvNxt });
  }

  /**
   * Closed at the target with no reset indicated (an RST in ESTABLISHED, FIN_WAIT or CLOSE_WAIT
   * sends TcpIndicateAbort), no timeout and no in-order SYN (Retrieve TimeoutExpiration /
   * InvalidState): a close that finished there, the peer's FIN received (LAST_ACK done, or an RST
   * in CLOSING or LAST_ACK: a peer that had already closed answering a retransmitted FIN of ours).
   */
  private finishedAtTarget(entry: OffloadEntry, state: S): boolean {
    return state === S.Closed && !entry.aborted && entry.retrieveReason !== UploadReason.TimeoutExpiration && entry.retrieveReason !== UploadReason.InvalidState;
  }

  /** Rebuild the host engine from `exp`, attach it, then process the segments held meanwhile. */
  private resume(entry: OffloadEntry, exp: TcpExport): void {
    this.forget(entry);
    const s = entry.socket;
    const b = s.binding;
    let conn: TcpConnection;
    // The bytes before the peer's FIN were just given to the application; the stream ends normally
    // instead of failing with ECONNRESET (which would also discard what it had not read yet).
    if (this.finishedAtTarget(entry, exp.delegated.state)) {
      s.offloadFinished();
      return;
    }
    try {
      if (entry.aborted || exp.delegated.state === S.Closed) throw new Error('the connection was reset');
      conn = TcpConnection.import(exp, {
        // Quick ACKs for the peer's recovery from a discarded out-of-order queue (R18 renege).
        config: { ...s.connection.config, quickAcksAfterImport: QUICK_ACKS_AFTER_TERMINATE }, localPort: b.entry.localPort, remotePort: b.entry.remotePort, now: this.stack.scheduler.now(), msPerTick: this.msPerTick,
      });
    } catch (e) {
      // Nothing to continue (reset, or a state no engine accepts): the connection ends here.
      if (!entry.aborted) this.log('connection not resumable after terminate', { reason: (e as Error).message });
      s.offloadGone();
      return;
    }
    s.offloadEnd(conn);
    for (const seg of entry.held.splice(0)) {
      if (b.closed || !b.attached) break;
      b.input(seg);
    }
    if (!b.closed && b.attached) b.run((c, now) => c.announceWindow(now));
  }

  private forget(entry: OffloadEntry): void {
    this.bySocket.delete(entry.socket);
    this.byHandle.delete(entry.handle);
    if (entry.ctx !== 0) this.byCtx.delete(entry.ctx);
  }

  // ------------------------------------------------------------------------------ target messages

  onTargetMessage(m: TargetMessage): void {
    switch (m.type) {
      case 'InitiateOffloadComplete':
      case 'TerminateOffloadComplete': {
        const op = this.ops.get(m.opId);
        if (op === undefined) return;
        this.ops.delete(m.opId);
        if (m.type === 'InitiateOffloadComplete') this.onInitiated(op.entry, m);
        else this.onTerminated(op.entry, m);
        return;
      }
      case 'QueryOffloadComplete':
      case 'InvalidateOffloadComplete': {
        const p = this.pending.get(m.opId);
        if (p === undefined) return; // e.g. the control socket's own queries
        this.pending.delete(m.opId);
        p.resolve(m);
        return;
      }
      case 'UpdateOffloadComplete':
        for (const r of m.results) if (r.status !== Status.SUCCESS) this.log('update refused by the target', { status: statusName(r.status) });
        return;
      case 'Error': {
        this.log('target error', { status: statusName(m.status), problem: m.problem });
        const waiting = (m.refKind === MESSAGES.QueryOffload.code || m.refKind === MESSAGES.InvalidateOffload.code) ? this.pending.get(m.refId) : undefined;
        if (waiting !== undefined) {
          this.pending.delete(m.refId);
          waiting.reject(new Error(`target error: ${m.problem}`));
          return;
        }
        const op = this.ops.get(m.refId);
        if (op?.kind === 'initiate' && m.refKind === MESSAGES.InitiateOffload.code) {
          this.ops.delete(m.refId);
          this.initiateFailed(op.entry, `target error: ${m.problem}`);
        } else if (op?.kind === 'terminate' && m.refKind === MESSAGES.TerminateOffload.code) {
          this.ops.delete(m.refId);
          this.terminateFailed(op.entry, m.problem);
        }
        return;
      }
      case 'TcpSendComplete':
        this.onSendComplete(m);
        return;
      case 'TcpForwardComplete':
        this.onForwardComplete(m);
        return;
      case 'TcpReceiveComplete':
        for (const e of m.entries) {
          const entry = this.byCtx.get(e.ctx);
          if (entry === undefined) continue;
          entry.receivePosted = false;
          if (e.bytes.length > 0) entry.socket.offloadData(e.bytes.slice());
          if (entry.socket.wantsData) entry.readResume();
        }
        return;
      case 'TcpReceiveIndicate':
        this.onIndicate(m);
        return;
      case 'TcpEvent':
        this.onEvent(m);
        return;
      case 'TcpDisconnectComplete': {
        const entry = this.byCtx.get(m.ctx);
        if (entry === undefined || m.requestId !== entry.disconnectId || m.status !== Status.SUCCESS) return;
        entry.finAcked = true;
        this.finishedBothWays(entry);
        return;
      }
      case 'StatusIndication':
        if (m.code === AdapterStatus.UploadAll) {
          this.paused = true;
          void this.terminateAll().catch(() => {});
        } else {
          this.paused = m.code === AdapterStatus.OffloadPause;
        }
        return;
      default:
        return; // disconnect / forward completions, query and update answers: nothing to do
    }
  }

  /**
   * Our FIN acknowledged and the peer's delivered: a LAST-ACK close ends on the target without a
   * Retrieve, so the host takes the connection back to release it (TIME-WAIT runs on the host).
   */
  private finishedBothWays(entry: OffloadEntry): void {
    if (entry.finAcked && entry.peerFinSeen) void this.terminate(entry.socket).catch(() => {});
  }

  private onSendComplete(m: MessageOf<'TcpSendComplete'>): void {
    const touched = new Set<OffloadEntry>();
    for (const e of m.entries) {
      const entry = this.byCtx.get(e.ctx);
      if (entry === undefined) continue;
      const head = entry.outstanding[0];
      // Completions come in posting order (R2); anything else is a target bug we can only log.
      if (head?.id !== e.requestId) {
        this.log('send completion out of order', { requestId: e.requestId });
        continue;
      }
      entry.outstanding.shift();
      entry.outstandingBytes -= head.bytes.length;
      if (e.status === Status.UPLOAD_IN_PROGRESS && e.bytesTransferred < head.bytes.length) {
        entry.uploadInProgress.push({ id: head.id, bytes: head.bytes.subarray(e.bytesTransferred) });
      }
      touched.add(entry);
    }
    for (const entry of touched) if (entry.phase === 'offloaded') entry.socket.offloadWritable();
  }

  private onIndicate(m: MessageOf<'TcpReceiveIndicate'>): void {
    const entry = this.byHandle.get(m.handle);
    this.stats.indications++;
    const s = entry?.socket;
    if (entry === undefined || s === undefined || entry.refused || s.destroyed || !s.wantsData) {
      this.stats.indicationsRefused++;
      if (entry) entry.refused = true;
      this.link.sendMessage({ type: 'IndicateReply', indicationId: m.indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
      return;
    }
    s.offloadData(m.bytes.slice());
    this.link.sendMessage({ type: 'IndicateReply', indicationId: m.indicationId, status: Status.SUCCESS, bytesConsumed: m.bytes.length });
    this.link.sendMessage({ type: 'TcpReceiveReturn', bufferIds: [m.bufferId] });
  }

  private onEvent(m: MessageOf<'TcpEvent'>): void {
    const entry = this.byHandle.get(m.handle);
    if (entry === undefined) return;
    const s = entry.socket;
    switch (m.eventType) {
      case TcpEventType.Disconnect:
        s.offloadPeerFin();
        entry.peerFinSeen = true;
        this.finishedBothWays(entry);
        return;
      case TcpEventType.Abort:
        // The terminate brings back what the target received before the RST; the socket then
        // fails (resume -> offloadGone) after the application has read it.
        entry.aborted = true;
        void this.terminate(s).catch(() => {});
        return;
      case TcpEventType.Retrieve:
        entry.retrieveReason = m.info;
        void this.terminate(s).catch(() => {});
        return;
      default:
        return;
    }
  }

  // ------------------------------------------------------------------------------ update / invalidate / query

  /** Spec 2.2: the next hop `ip` answered from a new MAC; every offloaded connection through it is told. */
  neighborChanged(ip: number, mac: Uint8Array): void {
    for (const entry of this.bySocket.values()) {
      if (this.stack.routeTo(entry.socket.binding.entry.remoteIp) !== ip) continue;
      if (entry.phase === 'initiating') {
        entry.neighborPending = true; // the initiate carried the old MAC: update once it completed
        continue;
      }
      if (entry.phase !== 'offloaded') continue;
      this.stats.updates++;
      this.link.sendMessage({
        type: 'UpdateOffload', opId: this.nextOpId(), blocks: [{
          blockId: 1, ctx: entry.neighborCtx, layer: 'neighbor', children: [],
          cached: { dlDestinationAddress: mac.slice(), hostReachabilityDelta: 0 },
        }],
      });
    }
  }

  /** Spec 2.2 / RFC 1191: a smaller path MTU toward the socket's peer, as a path UpdateOffload. */
  pathMtuChanged(socket: TcpSocket, mtu: number): void {
    const entry = this.bySocket.get(socket);
    if (entry === undefined) return;
    if (entry.phase === 'initiating') {
      entry.pathMtuPending = mtu;
      return;
    }
    if (entry.phase !== 'offloaded') return;
    this.stats.updates++;
    this.link.sendMessage({ type: 'UpdateOffload', opId: this.nextOpId(), blocks: [{ blockId: 2, ctx: entry.pathCtx, layer: 'path', children: [], cached: { pathMtu: mtu } }] });
  }

  /**
   * Spec 2.4: the connection's neighbor or path is no longer valid (e.g. the route went away): the
   * target stops transmitting at once and asks for the upload, which this manager then performs.
   */
  invalidate(socket: TcpSocket): Promise<void> {
    const entry = this.bySocket.get(socket);
    if (entry === undefined || entry.phase !== 'offloaded') return Promise.reject(new Error('invalidate: the connection is not offloaded'));
    const opId = this.nextOpId();
    return new Promise<void>((resolve, reject) => {
      this.pending.set(opId, { resolve: () => resolve(), reject });
      this.link.sendMessage({ type: 'InvalidateOffload', opId, blocks: [{ blockId: 3, ctx: entry.ctx, layer: 'tcp', children: [] }] });
    });
  }

  /** Spec 2.3: the live DELEGATED TCP state the target holds for the socket. */
  query(socket: TcpSocket): Promise<TcpDelegated> {
    const entry = this.bySocket.get(socket);
    if (entry === undefined || entry.phase !== 'offloaded') return Promise.reject(new Error('query: the connection is not offloaded'));
    const opId = this.nextOpId();
    return new Promise<TcpDelegated>((resolve, reject) => {
      this.pending.set(opId, {
        resolve: (m) => {
          const d = m.type === 'QueryOffloadComplete' ? m.results[0]?.tcp?.delegated : undefined;
          if (d === undefined || m.results[0]?.status !== Status.SUCCESS) reject(new Error(`query: ${statusName(m.results[0]?.status ?? Status.FAILURE)}`));
          else resolve(d);
        },
        reject,
      });
      this.link.sendMessage({ type: 'QueryOffload', opId, blocks: [{ blockId: 3, ctx: entry.ctx, layer: 'tcp', children: [] }] });
    });
  }

  /** Read-only, for the control socket: where the socket's offload stands and its target context. */
  offloadState(socket: TcpSocket): { phase: 'initiating' | 'offloaded' | 'terminating'; ctx: number } | undefined {
    const e = this.bySocket.get(socket);
    return e === undefined ? undefined : { phase: e.phase, ctx: e.ctx };
  }
}
