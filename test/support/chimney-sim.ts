/**
 * Host + target + Linux-like peer on the sim link, for the target core's tests. The "host" here is
 * a minimal engine-based stand-in for the chimney host stack: it owns the connection's identity,
 * runs it on its own engine while not offloaded, and offloads / terminates it through the core's
 * host messages exactly as the IPC would carry them. Applications on both ends stream seeded bytes
 * and compare digests.
 */
import { createHash, type Hash } from 'node:crypto';
import { Simulator } from '../../src/link/sim/simulator.js';
import { Rng } from '../../src/link/sim/rng.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { impair, type ImpairSpec } from '../../src/link/sim/impair.js';
import type { Link } from '../../src/link/link.js';
import { TcpConnection } from '../../src/tcp/connection.js';
import { ConnectionDriver } from '../../src/tcp/driver.js';
import { TcpState as S, type TcpConfig, type TcpExport } from '../../src/tcp/types.js';
import { TargetCore } from '../../src/target/core.js';
import type { HostMessage, MessageOf, TargetMessage } from '../../src/ipc/messages.js';
import { encodeFrame } from '../../src/ipc/codec.js';
import { Status } from '../../src/chimney/status.js';
import { TCP_CACHED_FLAG, TCP_CONST_FLAG, TcpEventType, type NeighborState, type PathState, type TcpState as ChimneyTcpState } from '../../src/chimney/state.js';
import { buildTcpFrame, parseFrame } from '../../src/wire/frame.js';
import { ipv4, mac } from '../../src/wire/addresses.js';
import type { TcpSegment } from '../../src/wire/tcp-segment.js';
import { simScheduler, StreamSource, digestOf } from './engine-pair.js';

export const HOST_MAC = mac('02:00:00:00:00:01');
export const PEER_MAC = mac('02:00:00:00:00:02');
export const HOST_IP = ipv4('10.1.0.1');
export const PEER_IP = ipv4('10.1.0.2');
const HOST_PORT = 40000;
const PEER_PORT = 80;

function ipBytes(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

function copySeg(s: TcpSegment): TcpSegment {
  return { ...s, payload: s.payload.slice(), options: { ...s.options, sack: s.options.sack?.map((b) => ({ ...b })) } };
}

export interface ChimneySimOptions {
  seed: string;
  bytesHostToPeer: number;
  bytesPeerToHost: number;
  impairTargetToPeer?: ImpairSpec;
  impairPeerToTarget?: ImpairSpec;
  tcp?: Partial<TcpConfig>;
  terminateSendMode?: 'chain' | 'complete' | 'alternate';
  /** Receive requests the host posts while offloaded (bytes each); 0 = rely on indications. */
  postSize?: number;
  /** How the host answers indications: accept everything, refuse, or take part. */
  indicateReply?: 'accept' | 'refuse' | 'partial' | 'mixed';
}

interface HostRequest {
  id: number;
  bytes: Uint8Array;
}

/** The host side: engine while not offloaded, message exchange with the core while offloaded. */
export class ChimneySim {
  readonly sim = new Simulator();
  readonly rng: Rng;
  readonly core: TargetCore;
  readonly peerLink: Link;
  readonly targetLink: Link;
  peer: ConnectionDriver | undefined;
  host: ConnectionDriver | undefined;
  ctx: number | undefined;
  offloaded = false;
  terminating = false;
  readonly hostApp: { source: StreamSource; received: Hash; receivedBytes: number; peerFin: boolean; pending: Uint8Array };
  readonly peerApp: { source: StreamSource; received: Hash; receivedBytes: number; peerFin: boolean; pending: Uint8Array; closed: boolean };
  readonly problems: string[] = [];
  readonly log: string[] = [];
  /** Frames for our 4-tuple that arrived while the terminate ran: processed after it (spec 6.7). */
  private heldFrames: TcpSegment[] = [];
  private nextId = 1;
  private opId = 1;
  /** Send requests the target owns, in posting order (the host's copies). */
  private outstanding: HostRequest[] = [];
  private postedReceives = 0;
  private readonly lent = new Set<number>();
  cycles = 0;
  readonly ledger = { sendsCompleted: 0, sendsChained: 0, lentReturned: 0 };
  hostClosed = false;

  constructor(readonly opts: ChimneySimOptions) {
    this.rng = new Rng(opts.seed);
    const sched = simScheduler(this.sim);
    const [a, b] = createSimPair(this.sim, { name: 'wire', mtu: 1500 });
    this.targetLink = impair(a, this.sim, this.rng.fork('t'), opts.impairTargetToPeer ?? {});
    this.peerLink = impair(b, this.sim, this.rng.fork('p'), opts.impairPeerToTarget ?? {});
    this.core = new TargetCore({
      scheduler: sched, interfaceMac: HOST_MAC, terminateSendMode: opts.terminateSendMode ?? 'chain',
      toHost: (m) => this.sim.schedule(this.sim.now, () => this.onTargetMessage(m)),
      toWire: (f) => this.targetLink.send([f]),
    });
    this.targetLink.setReceiver((frames) => { for (const f of frames) { this.traceFrame('P>T', f); this.core.onFrame(f); } });
    this.peerLink.setReceiver((frames) => { for (const f of frames) { this.traceFrame('T>P', f); this.peerFrame(f); } });
    const mk = (label: string, total: number) => ({ source: new StreamSource(`${opts.seed}/${label}`, total), received: createHash('sha256'), receivedBytes: 0, peerFin: false, pending: new Uint8Array(0) });
    this.hostApp = mk('host', opts.bytesHostToPeer);
    this.peerApp = { ...mk('peer', opts.bytesPeerToHost), closed: false };
  }

  /** With `trace` on: one line per frame delivered (time, direction, seq, ack, length, flags). */
  trace: string[] | undefined;
  private traceFrame(dir: string, f: Uint8Array): void {
    if (!this.trace) return;
    const p = parseFrame(f);
    if (typeof p === 'string' || !p.tcp) return;
    const t = p.tcp;
    this.trace.push(`${this.sim.now.toFixed(2)} ${dir} seq ${t.seq} ack ${t.ack} len ${t.payload.length} fl ${t.flags.toString(16)} win ${t.window}${t.options.sack ? ' sack ' + JSON.stringify(t.options.sack) : ''} off=${this.offloaded ? 1 : 0}${this.terminating ? 'T' : ''}`);
  }

  private later(fn: () => void): void {
    this.sim.schedule(this.sim.now, fn);
  }

  // ----------------------------------------------------------------------------- peer (Linux stand-in)

  private peerFrame(f: Uint8Array): void {
    const p = parseFrame(f);
    if (typeof p === 'string' || !p.tcp) return;
    const seg = copySeg(p.tcp);
    if (!this.peer) {
      const conn = TcpConnection.accept({ config: this.opts.tcp, localPort: PEER_PORT, remotePort: HOST_PORT, iss: this.rng.nextU32(), now: this.sim.now, syn: seg, tsOffset: this.rng.nextU32() });
      this.peer = new ConnectionDriver(conn, simScheduler(this.sim), {
        segments: (segs) => { for (const s of segs) this.peerLink.send([buildTcpFrame({ srcMac: PEER_MAC, dstMac: HOST_MAC, ip: { version: 4, src: PEER_IP, dst: HOST_IP }, segment: s })]); },
        events: (evs) => {
          for (const e of evs) {
            if (e.type === 'connected' || e.type === 'acked' || e.type === 'writable') this.later(() => this.peerPump());
            if (e.type === 'readable' || e.type === 'peer-fin') this.later(() => this.peerDrain());
            if (e.type === 'peer-fin') this.peerApp.peerFin = true;
            if (e.type === 'closed') { this.peerApp.closed = true; if (e.error) this.problems.push(`peer error ${e.error}`); }
          }
        },
      });
      return;
    }
    this.peer.input(seg);
  }

  private peerPump(): void {
    const d = this.peer!;
    const app = this.peerApp;
    for (let i = 0; i < 1000; i++) {
      if (app.pending.length === 0) {
        if (app.source.done) break;
        app.pending = app.source.next(65536);
      }
      if (d.conn.state !== S.Established && d.conn.state !== S.CloseWait) return;
      const n = d.run((c, now) => c.write(app.pending, now));
      app.pending = app.pending.subarray(n);
      if (n === 0) return;
    }
    if (app.source.done && app.pending.length === 0 && app.peerFin && (d.conn.state === S.CloseWait)) d.run((c, now) => c.close(now));
  }

  private peerDrain(): void {
    const d = this.peer!;
    for (;;) {
      const b = d.run((c, now) => c.read(1 << 30, now));
      if (b.length === 0) break;
      this.peerApp.received.update(b);
      this.peerApp.receivedBytes += b.length;
    }
    if (this.peerApp.peerFin) this.peerPump();
  }

  // ----------------------------------------------------------------------------- host

  start(): void {
    const conn = TcpConnection.connect({ config: this.opts.tcp, localPort: HOST_PORT, remotePort: PEER_PORT, iss: this.rng.nextU32(), now: this.sim.now, tsOffset: this.rng.nextU32() });
    this.host = this.attachHostEngine(conn);
  }

  private attachHostEngine(conn: TcpConnection): ConnectionDriver {
    return new ConnectionDriver(conn, simScheduler(this.sim), {
      segments: (segs) => {
        for (const s of segs) this.core.onHostMessage({ type: 'RawFrame', frame: buildTcpFrame({ srcMac: HOST_MAC, dstMac: PEER_MAC, ip: { version: 4, src: HOST_IP, dst: PEER_IP }, segment: s }) });
      },
      events: (evs) => {
        for (const e of evs) {
          if (e.type === 'connected' || e.type === 'acked' || e.type === 'writable') this.later(() => this.hostPump());
          if (e.type === 'readable' || e.type === 'peer-fin') this.later(() => this.hostDrain());
          if (e.type === 'peer-fin') this.hostApp.peerFin = true;
          if (e.type === 'closed' && e.error) this.problems.push(`host engine error ${e.error}`);
        }
      },
    });
  }

  private hostPump(): void {
    const app = this.hostApp;
    if (this.terminating) return;
    for (let i = 0; i < 1000; i++) {
      if (app.pending.length === 0) {
        if (app.source.done) break;
        app.pending = app.source.next(16384);
      }
      if (this.offloaded) {
        const id = this.nextId++;
        const bytes = app.pending;
        this.outstanding.push({ id, bytes });
        app.pending = new Uint8Array(0);
        if (this.outstanding.reduce((n, r) => n + r.bytes.length, 0) > 256 * 1024) {
          this.core.onHostMessage({ type: 'TcpSend', ctx: this.ctx!, buffers: [{ requestId: id, bytes }] });
          return; // enough in flight at the target; resume on completions
        }
        this.core.onHostMessage({ type: 'TcpSend', ctx: this.ctx!, buffers: [{ requestId: id, bytes }] });
        continue;
      }
      const d = this.host!;
      if (d.conn.state !== S.Established && d.conn.state !== S.CloseWait) return;
      const n = d.run((c, now) => c.write(app.pending, now));
      app.pending = app.pending.subarray(n);
      if (n === 0) return;
    }
    if (app.source.done && app.pending.length === 0 && !this.hostClosed) {
      if (this.offloaded) {
        this.hostClosed = true;
        this.core.onHostMessage({ type: 'TcpDisconnect', ctx: this.ctx!, requestId: this.nextId++, flags: 1, bytes: new Uint8Array(0) });
      } else if (this.host && (this.host.conn.state === S.Established || this.host.conn.state === S.CloseWait)) {
        this.hostClosed = true;
        this.host.run((c, now) => c.close(now));
      }
    }
  }

  private hostDrain(): void {
    if (this.offloaded || !this.host) return;
    for (;;) {
      const b = this.host.run((c, now) => c.read(1 << 30, now));
      if (b.length === 0) break;
      this.deliver(b);
    }
  }

  private deliver(b: Uint8Array): void {
    this.hostApp.received.update(b);
    this.hostApp.receivedBytes += b.length;
  }

  /** Hand the connection to the target (spec 2.1, 6.10). */
  offload(): void {
    if (this.offloaded || this.terminating || !this.host) return;
    const conn = this.host.conn;
    if (![S.Established, S.FinWait1, S.FinWait2, S.CloseWait, S.Closing, S.LastAck].includes(conn.state)) return;
    const exp = this.host.run((c, now) => c.export(now, {}));
    this.lastConst = exp.const;
    this.host.stop();
    this.host = undefined;
    // The host's unread bytes would go as BufferedData; this host reads eagerly, so deliver first.
    for (const b of exp.receiveData) this.deliver(b);
    // Outstanding send data becomes the chain; our own copies stay until completion.
    this.outstanding = [];
    const sendChain = exp.sendData.filter((b) => b.length > 0).map((b) => {
      const id = this.nextId++;
      const bytes = b.slice();
      this.outstanding.push({ id, bytes });
      return { bufferId: id, bytes };
    });
    const state: ChimneyTcpState = {
      const: {
        flags: (exp.const.timestamps ? TCP_CONST_FLAG.TIMESTAMP_ENABLED : 0) | (exp.const.sack ? TCP_CONST_FLAG.SACK_ENABLED : 0) | (exp.const.windowScaling ? TCP_CONST_FLAG.WINDOW_SCALING_ENABLED : 0),
        remotePort: PEER_PORT, localPort: HOST_PORT, sndWindScale: exp.const.sndWindScale, rcvWindScale: exp.const.rcvWindScale, remoteMss: exp.const.remoteMss, hashValue: 0,
      },
      cached: {
        flags: (conn.config.nagle ? TCP_CACHED_FLAG.NAGLING_ENABLED : 0), initialRcvWnd: conn.config.receiveBufferSize, rcvIndicationSize: 0,
        kaProbeCount: 0, kaTimeout: 0, kaInterval: 0, maxRt: 0, flowLabel: 0, ttlOrHopLimit: 64, tosOrTrafficClass: 0, userPriority: 0,
      },
      delegated: {
        ...exp.delegated, flags: 0, dWnd: 0,
        sendChain, sendDataHead: sendChain[0]?.bufferId, sendDataTail: sendChain[sendChain.length - 1]?.bufferId,
      },
    };
    const opId = this.opId++;
    this.offloaded = true;
    this.core.onHostMessage({
      type: 'InitiateOffload', opId, blocks: [{
        blockId: 1, role: 'new', layer: 'neighbor', handle: 1,
        state: { const: { dlSourceAddress: new Uint8Array(6), vlanId: 0 }, cached: { dlDestinationAddress: PEER_MAC, hostReachabilityDelta: 0 }, delegated: { nicReachabilityDelta: 0 } },
        children: [{
          blockId: 2, role: 'new', layer: 'path', handle: 2,
          state: { version: 4, const: { sourceAddress: ipBytes(HOST_IP), destinationAddress: ipBytes(PEER_IP) }, cached: { pathMtu: 1500 } },
          children: [{ blockId: 3, role: 'new', layer: 'tcp', handle: 3, state, children: [] }],
        }],
      }],
    });
    this.log.push(`${this.sim.now.toFixed(1)} offload ${S[conn.state]} rcvNxt ${exp.delegated.rcvNxt} rcvWnd ${exp.delegated.rcvWnd} sndUna ${exp.delegated.sndUna} got ${this.hostApp.receivedBytes}`);
  }

  /** Take the connection back (spec 6). */
  terminate(): void {
    if (!this.offloaded || this.terminating || this.ctx === undefined) return;
    this.terminating = true;
    this.core.onHostMessage({ type: 'TerminateOffload', opId: this.opId++, blocks: [{ blockId: 10, ctx: this.neighborCtx!, layer: 'neighbor', children: [{ blockId: 11, ctx: this.pathCtx!, layer: 'path', children: [{ blockId: 12, ctx: this.ctx, layer: 'tcp', children: [] }] }] }] });
    this.log.push(`${this.sim.now.toFixed(1)} terminate`);
  }

  private neighborCtx: number | undefined;
  private pathCtx: number | undefined;

  private postReceive(): void {
    const size = this.opts.postSize ?? 0;
    if (!size || !this.offloaded || this.terminating || this.postedReceives >= 2) return;
    this.postedReceives++;
    this.core.onHostMessage({ type: 'TcpReceive', ctx: this.ctx!, requests: [{ requestId: this.nextId++, capacity: size, noPush: false }] });
  }

  private onTargetMessage(m: TargetMessage): void {
    switch (m.type) {
      case 'InitiateOffloadComplete': {
        const byId = new Map(m.results.map((r) => [r.blockId, r]));
        const t = byId.get(3)!;
        if (t.status !== Status.SUCCESS) { this.problems.push(`initiate failed ${t.status.toString(16)}`); return; }
        this.neighborCtx = byId.get(1)!.ctx;
        this.pathCtx = byId.get(2)!.ctx;
        this.ctx = t.ctx;
        // The hand-over barrier (docs/ipc-protocol.md): nothing was held during the initiate here.
        this.later(() => { if (this.ctx === t.ctx && !this.terminating) this.core.onHostMessage({ type: 'TcpForward', ctx: t.ctx!, segments: [] }); });
        this.postReceive();
        this.postReceive();
        this.later(() => this.hostPump());
        return;
      }
      case 'RawFrame': {
        const p = parseFrame(m.frame);
        if (typeof p === 'string' || !p.tcp) return;
        const seg = copySeg(p.tcp);
        if (this.terminating || this.offloaded) this.heldFrames.push(seg); // processed after the terminate
        else this.host?.input(seg);
        return;
      }
      case 'TcpSendComplete':
        for (const e of m.entries) {
          const i = this.outstanding.findIndex((r) => r.id === e.requestId);
          if (i !== 0) { this.problems.push(`send completion ${e.requestId} out of order (index ${i})`); continue; }
          if (e.status === Status.SUCCESS) {
            if (e.bytesTransferred !== this.outstanding[0].bytes.length) this.problems.push('SUCCESS with a short count');
            this.outstanding.shift();
            this.ledger.sendsCompleted++;
          } else if (e.status === Status.UPLOAD_IN_PROGRESS) {
            // The unacknowledged rest is resent by the host (mode "complete").
            const r = this.outstanding[0];
            r.bytes = r.bytes.subarray(e.bytesTransferred);
            this.uploadInProgress.push(this.outstanding.shift()!);
            this.ledger.sendsCompleted++;
          } else {
            this.problems.push(`send completion status ${e.status.toString(16)}`);
            this.outstanding.shift();
          }
        }
        this.later(() => this.hostPump());
        return;
      case 'TcpReceiveComplete':
        for (const e of m.entries) {
          this.postedReceives--;
          if (e.bytes.length > 0) this.deliver(e.bytes);
        }
        this.postReceive();
        return;
      case 'TcpReceiveIndicate': {
        const mode = this.opts.indicateReply ?? 'accept';
        const pick = mode === 'mixed' ? (['accept', 'refuse', 'partial'] as const)[this.rng.int(3)] : mode;
        if (pick === 'accept') {
          this.deliver(m.bytes);
          this.core.onHostMessage({ type: 'IndicateReply', indicationId: m.indicationId, status: Status.SUCCESS, bytesConsumed: m.bytes.length });
          this.lent.add(m.bufferId);
          this.later(() => this.returnBuffers());
        } else if (pick === 'partial' && m.bytes.length > 1) {
          const n = 1 + this.rng.int(m.bytes.length - 1);
          this.deliver(m.bytes.subarray(0, n));
          this.core.onHostMessage({ type: 'IndicateReply', indicationId: m.indicationId, status: Status.OFFLOAD_DATA_PARTIALLY_ACCEPTED, bytesConsumed: n });
          this.sim.after(1, () => this.postAfterRefusal());
        } else {
          this.core.onHostMessage({ type: 'IndicateReply', indicationId: m.indicationId, status: Status.OFFLOAD_DATA_NOT_ACCEPTED, bytesConsumed: 0 });
          this.sim.after(1, () => this.postAfterRefusal());
        }
        return;
      }
      case 'TcpEvent':
        if (m.eventType === TcpEventType.Disconnect) this.hostApp.peerFin = true;
        if (m.eventType === TcpEventType.Abort) this.problems.push('abort event');
        if (m.eventType === TcpEventType.Retrieve) this.later(() => this.terminate());
        return;
      case 'TcpDisconnectComplete':
        return;
      case 'NeighborReachabilityQuery':
        // This host's neighbor entry is always fresh.
        this.core.onHostMessage({ type: 'ReachabilityReply', indicationId: m.indicationId, hostReachabilityDelta: 0 });
        return;
      case 'TerminateOffloadComplete':
        this.onTerminated(m);
        return;
      case 'Error':
        this.problems.push(`target error: ${m.problem}`);
        return;
      default:
        return;
    }
  }

  private uploadInProgress: HostRequest[] = [];

  /**
   * After refusing (part of) an indication the application reads a little later: it posts a real
   * receive request (held data goes there first), or sometimes a zero-byte one that only re-enables
   * indications. Always answering "refuse" and re-posting zero bytes at once would loop forever.
   */
  private postAfterRefusal(): void {
    if (!this.offloaded || this.terminating || this.ctx === undefined) return;
    const capacity = this.rng.chance(0.2) ? 0 : this.opts.postSize || 8192;
    this.core.onHostMessage({ type: 'TcpReceive', ctx: this.ctx, requests: [{ requestId: this.nextId++, capacity, noPush: false }] });
  }

  private returnBuffers(): void {
    if (this.lent.size === 0) return;
    const ids = [...this.lent];
    this.lent.clear();
    this.ledger.lentReturned += ids.length;
    this.core.onHostMessage({ type: 'TcpReceiveReturn', bufferIds: ids });
  }

  private onTerminated(m: MessageOf<'TerminateOffloadComplete'>): void {
    const r = m.results.find((x) => x.blockId === 12)!;
    if (r.status !== Status.SUCCESS || !r.tcp?.delegated) { this.problems.push('terminate failed'); return; }
    const d = r.tcp.delegated;
    // Rebuild the send data from our own copies: completed-in-progress first, then the chain (R10, R11).
    const sendData: Uint8Array[] = this.uploadInProgress.map((x) => x.bytes);
    const chain = d.sendChain ?? [];
    for (const [i, c] of chain.entries()) {
      const req = this.outstanding.find((x) => x.id === c.bufferId);
      if (!req) { this.problems.push(`chained buffer ${c.bufferId} unknown`); continue; }
      if (i > 0 && c.ackedBytes) this.problems.push('acked bytes on a non-head chain entry');
      sendData.push(req.bytes.subarray(c.ackedBytes ?? 0));
      this.ledger.sendsChained++;
    }
    const chainIds = new Set(chain.map((c) => c.bufferId));
    const leftover = this.outstanding.filter((x) => !chainIds.has(x.id));
    if (leftover.length > 0) this.problems.push(`${leftover.length} send requests neither completed nor chained (R6)`);
    this.outstanding = [];
    this.uploadInProgress = [];
    // BufferedData: deliver, then return the buffers (R15-R17).
    for (const b of d.bufferedBuffers ?? []) {
      this.deliver(b.bytes);
      this.lent.add(b.bufferId);
    }
    this.returnBuffers();
    const finQueued = [S.FinWait1, S.FinWait2, S.Closing, S.LastAck, S.TimeWait].includes(d.state);
    const exp: TcpExport = {
      const: this.lastConst!,
      delegated: { ...d },
      sendData,
      finQueued,
      receiveData: [],
      finReceived: [S.CloseWait, S.Closing, S.LastAck, S.TimeWait].includes(d.state),
    };
    const conn = TcpConnection.import(exp, { config: this.opts.tcp, localPort: HOST_PORT, remotePort: PEER_PORT, now: this.sim.now });
    const held = this.heldFrames;
    this.heldFrames = [];
    this.host = this.attachHostEngine(conn);
    this.offloaded = false;
    this.terminating = false;
    this.ctx = undefined;
    this.postedReceives = 0;
    this.cycles++;
    this.log.push(`${this.sim.now.toFixed(1)} terminated ${S[d.state]} chain ${chain.length} buffered ${(d.bufferedBuffers ?? []).length} rcvNxt ${d.rcvNxt} rcvWnd ${d.rcvWnd} got ${this.hostApp.receivedBytes} held ${held.length}`);
    for (const s of held) this.host.input(s);
    this.later(() => { this.hostPump(); this.hostDrain(); });
  }

  /** The CONST values at offload: the host keeps them; the target never returns them (R5). */
  private lastConst: TcpExport['const'] | undefined;

  check(): string[] {
    const out = [...this.problems];
    if (digestOf(this.peerApp.received) !== digestOf(this.hostApp.source.hash) || this.peerApp.receivedBytes !== this.hostApp.source.total) out.push(`host->peer differs (${this.peerApp.receivedBytes}/${this.hostApp.source.total})`);
    if (digestOf(this.hostApp.received) !== digestOf(this.peerApp.source.hash) || this.hostApp.receivedBytes !== this.peerApp.source.total) out.push(`peer->host differs (${this.hostApp.receivedBytes}/${this.peerApp.source.total})`);
    if (this.core.ledger.lentCount !== 0) out.push(`${this.core.ledger.lentCount} lent buffers never returned`);
    return out;
  }
}

// ================================================================================================
// CoreBench: the core driven message by message, with a scripted peer (exact sequence numbers).
// ================================================================================================

export const BENCH_LOCAL_PORT = HOST_PORT;
export const BENCH_REMOTE_PORT = PEER_PORT;

/** A segment the target put on the wire, with the IP facts the requirements talk about. */
export interface WireOut {
  seg: TcpSegment;
  ipId: number;
  df: boolean;
  ttl: number;
  tos: number;
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  frame: Uint8Array;
  /** How many host messages had been emitted when this segment left (orders wire vs host). */
  hostMsgsBefore: number;
  vlan: { pcp: number; dei: boolean; vid: number } | undefined;
}

export interface BenchTcpOptions {
  state?: S;
  rcvNxt?: number;
  rcvWnd?: number;
  sndUna?: number;
  /** Defaults to the end of the chain (everything sent). */
  sndNxt?: number;
  sndMax?: number;
  sndWnd?: number;
  cwnd?: number;
  /** Send chain handed over at initiate, in order. */
  chain?: Uint8Array[];
  bufferedData?: Uint8Array;
  constFlags?: number;
  cachedFlags?: number;
  initialRcvWnd?: number;
  rcvIndicationSize?: number;
  remoteMss?: number;
  rtTimeoutDelta?: number;
  kaTimeoutDelta?: number;
  kaTimeout?: number;
  kaInterval?: number;
  kaProbeCount?: number;
  srttX8?: number;
  rttvarX4?: number;
  tsTime?: number;
  tsRecent?: number;
  ttl?: number;
  tos?: number;
  userPriority?: number;
  handle?: number;
  localPort?: number;
}

/** The neighbor, path and TCP states the bench offloads (callers may alter them). */
export function benchNeighbor(over: { dlSourceAddress?: Uint8Array; vlanId?: number; dst?: Uint8Array; hrd?: number; nrd?: number } = {}): NeighborState {
  return {
    const: { dlSourceAddress: over.dlSourceAddress ?? new Uint8Array(6), vlanId: over.vlanId ?? 0 },
    cached: { dlDestinationAddress: over.dst ?? PEER_MAC, hostReachabilityDelta: over.hrd ?? 0 },
    delegated: { nicReachabilityDelta: over.nrd ?? 0 },
  };
}

export function benchPath(pathMtu = 1500): PathState {
  return { version: 4, const: { sourceAddress: ipBytes(HOST_IP), destinationAddress: ipBytes(PEER_IP) }, cached: { pathMtu } };
}

export function benchTcp(o: BenchTcpOptions = {}): ChimneyTcpState {
  const chain = o.chain ?? [];
  const chainLen = chain.reduce((n, b) => n + b.length, 0);
  const sndUna = o.sndUna ?? 1000;
  const end = (sndUna + chainLen) >>> 0;
  const sndMax = o.sndMax ?? end;
  const ids = chain.map((_, i) => 100 + i);
  return {
    const: { flags: o.constFlags ?? 0, remotePort: PEER_PORT, localPort: o.localPort ?? HOST_PORT, sndWindScale: 0, rcvWindScale: 0, remoteMss: o.remoteMss ?? 1460, hashValue: 0 },
    cached: {
      flags: o.cachedFlags ?? 0, initialRcvWnd: o.initialRcvWnd ?? 65535, rcvIndicationSize: o.rcvIndicationSize ?? 0,
      kaProbeCount: o.kaProbeCount ?? 0, kaTimeout: o.kaTimeout ?? 0, kaInterval: o.kaInterval ?? 0, maxRt: 0, flowLabel: 0,
      ttlOrHopLimit: o.ttl ?? 64, tosOrTrafficClass: o.tos ?? 0, userPriority: o.userPriority ?? 0,
    },
    delegated: {
      state: o.state ?? S.Established, rcvNxt: o.rcvNxt ?? 5000, rcvWnd: o.rcvWnd ?? 65535,
      sndUna, sndNxt: o.sndNxt ?? sndMax, sndMax, sndWnd: o.sndWnd ?? 65535, maxSndWnd: o.sndWnd ?? 65535, sndWl1: o.rcvNxt ?? 5000,
      cwnd: o.cwnd ?? 64 * 1460, ssthresh: 0x7fffffff, srttX8: o.srttX8 ?? 80, rttvarX4: o.rttvarX4 ?? 20,
      tsRecent: o.tsRecent ?? 0, tsRecentAge: 0, tsTime: o.tsTime ?? 0, totalRt: 0, dupAckCount: 0, sndWndProbeCount: 0,
      kaProbeCount: 0, kaTimeoutDelta: o.kaTimeoutDelta ?? -1, rtCount: 0,
      rtTimeoutDelta: o.rtTimeoutDelta ?? (sndUna === sndMax ? -1 : 200),
      flags: 0, dWnd: 0,
      sendChain: chain.map((bytes, i) => ({ bufferId: ids[i], bytes: bytes.slice() })),
      sendDataHead: ids[0], sendDataTail: ids[ids.length - 1],
      bufferedData: o.bufferedData,
    },
  };
}

/** Seeded, position-dependent bytes: byte i of a stream starting at sequence s is f(s + i). */
export function seqBytes(seq: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const x = (seq + i) >>> 0;
    out[i] = (x * 131 + (x >>> 8) * 7 + 13) & 0xff;
  }
  return out;
}

export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export class CoreBench {
  readonly sim = new Simulator();
  readonly core: TargetCore;
  /** Every message to the host, in order (never cleared). */
  readonly all: TargetMessage[] = [];
  /** Messages not yet taken. */
  private inbox: TargetMessage[] = [];
  /** Every segment on the wire (never cleared). */
  readonly wire: WireOut[] = [];
  private wireInbox: WireOut[] = [];
  private nextOp = 1;
  private nextBlock = 1;
  /** Context ids of the last initiate. */
  neighborCtx = 0;
  pathCtx = 0;
  ctx = 0;

  constructor(opts: { limits?: ConstructorParameters<typeof TargetCore>[0]['limits']; terminateSendMode?: 'chain' | 'complete'; congestionControl?: 'newreno' | 'cubic' } = {}) {
    this.core = new TargetCore({
      scheduler: simScheduler(this.sim), interfaceMac: HOST_MAC, limits: opts.limits, terminateSendMode: opts.terminateSendMode ?? 'chain',
      congestionControl: opts.congestionControl ?? 'newreno',
      // Every message must pass the real codec, as it would on the IPC socket (throws otherwise).
      toHost: (m) => { encodeFrame(m); this.all.push(m); this.inbox.push(m); },
      toWire: (f) => {
        const p = parseFrame(f);
        if (typeof p === 'string' || !p.tcp || !p.ip || p.ip.version !== 4) throw new Error(`target sent an unparsable frame: ${String(p)}`);
        const ip = p.ip;
        const w: WireOut = { seg: copySeg(p.tcp), ipId: ip.id, df: ip.df, ttl: ip.ttl, tos: ip.tos, srcMac: p.eth.src.slice(), dstMac: p.eth.dst.slice(), frame: f.slice(), hostMsgsBefore: this.all.length, vlan: p.eth.vlan ? { ...p.eth.vlan } : undefined };
        this.wire.push(w);
        this.wireInbox.push(w);
      },
    });
  }

  get now(): number {
    return this.sim.now;
  }

  /** Messages to the host since the last call. */
  take(): TargetMessage[] {
    const m = this.inbox;
    this.inbox = [];
    return m;
  }

  /** Segments sent since the last call. */
  takeWire(): WireOut[] {
    const w = this.wireInbox;
    this.wireInbox = [];
    return w;
  }

  opId(): number {
    return this.nextOp++;
  }

  blockId(): number {
    return this.nextBlock++;
  }

  /** Offload neighbor + path + TCP in one tree; returns the completion. Messages stay in the inbox. */
  initiate(tcp: ChimneyTcpState, opts: { neighbor?: ReturnType<typeof benchNeighbor>; path?: ReturnType<typeof benchPath>; handle?: number } = {}): MessageOf<'InitiateOffloadComplete'> {
    const opId = this.opId();
    const [nb, pb, tb] = [this.blockId(), this.blockId(), this.blockId()];
    const before = this.all.length;
    this.host({
      type: 'InitiateOffload', opId, blocks: [{
        blockId: nb, role: 'new', layer: 'neighbor', handle: 1, state: opts.neighbor ?? benchNeighbor(),
        children: [{ blockId: pb, role: 'new', layer: 'path', handle: 2, state: opts.path ?? benchPath(), children: [{ blockId: tb, role: 'new', layer: 'tcp', handle: opts.handle ?? 3, state: tcp, children: [] }] }],
      }],
    });
    const done = this.all.slice(before).find((m) => m.type === 'InitiateOffloadComplete' && m.opId === opId) as MessageOf<'InitiateOffloadComplete'> | undefined;
    if (!done) throw new Error('initiate did not complete synchronously');
    const by = new Map(done.results.map((r) => [r.blockId, r]));
    this.neighborCtx = by.get(nb)!.ctx ?? 0;
    this.pathCtx = by.get(pb)!.ctx ?? 0;
    this.ctx = by.get(tb)!.ctx ?? 0;
    return done;
  }

  /** Terminate neighbor, path and connection (the usual full tree); returns the opId. */
  terminate(): number {
    const opId = this.opId();
    this.core.onHostMessage({ type: 'TerminateOffload', opId, blocks: [{ blockId: 90, ctx: this.neighborCtx, layer: 'neighbor', children: [{ blockId: 91, ctx: this.pathCtx, layer: 'path', children: [{ blockId: 92, ctx: this.ctx, layer: 'tcp', children: [] }] }] }] });
    return opId;
  }

  /** A frame from the peer to the offloaded 4-tuple. */
  peer(s: { seq: number; ack?: number; flags?: number; payload?: Uint8Array; window?: number; sack?: Array<{ left: number; right: number }>; ts?: { val: number; ecr: number }; urgent?: number; srcPort?: number }): void {
    const segment: TcpSegment = {
      srcPort: s.srcPort ?? PEER_PORT, dstPort: HOST_PORT, seq: s.seq >>> 0, ack: (s.ack ?? 0) >>> 0, flags: s.flags ?? 0x10, window: s.window ?? 65535, urgent: s.urgent ?? 0,
      options: { sack: s.sack, ts: s.ts }, payload: s.payload ?? new Uint8Array(0),
    };
    this.core.onFrame(buildTcpFrame({ srcMac: PEER_MAC, dstMac: HOST_MAC, ip: { version: 4, src: PEER_IP, dst: HOST_IP }, segment }));
  }

  /** Run the virtual clock forward. */
  advance(ms: number): void {
    this.sim.runUntil(this.sim.now + ms, { maxEvents: 1_000_000 });
  }

  /** A host message; after an initiate, the hand-over barrier a host sends (empty TcpForward). */
  host(m: HostMessage): void {
    const before = this.all.length;
    this.core.onHostMessage(m);
    if (m.type === 'InitiateOffload' && this.barrier) this.sendBarriers(m, this.all.slice(before));
  }

  /** Set false to play a host that never sends the post-initiate forward. */
  barrier = true;

  private sendBarriers(m: MessageOf<'InitiateOffload'>, out: TargetMessage[]): void {
    const tcpBlocks = new Set<number>();
    const walk = (b: MessageOf<'InitiateOffload'>['blocks'][number]): void => {
      if (b.layer === 'tcp') tcpBlocks.add(b.blockId);
      b.children.forEach(walk);
    };
    m.blocks.forEach(walk);
    const done = out.find((x): x is MessageOf<'InitiateOffloadComplete'> => x.type === 'InitiateOffloadComplete' && x.opId === m.opId);
    for (const r of done?.results ?? []) {
      if (tcpBlocks.has(r.blockId) && r.status === Status.SUCCESS && r.ctx !== undefined) this.core.onHostMessage({ type: 'TcpForward', ctx: r.ctx, segments: [] });
    }
  }
}
