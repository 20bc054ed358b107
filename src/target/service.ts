/**
 * The offload target service: one link, one Unix socket, one host binding at a time, and the
 * sans-I/O `TargetCore` between them.
 *
 * - Link batches go into the core frame by frame; the core's frames go out in one `link.send` per
 *   event-loop turn. Host messages go into the core in arrival order; the core's messages go to the
 *   binding, which batches its own writes per turn.
 * - A second host is answered with `Error` and closed. A binding that closes, or sends more than
 *   `maxHostErrors` bad messages within `hostErrorWindowMs`, is dropped: its offloaded connections
 *   are aborted with RST and their buffers freed (`core.hostGone`).
 * - With no host bound, link frames are dropped and counted (the core has no connections then, so
 *   nothing can be lost by not queueing them).
 * - `shutdown` asks the host to upload everything (UploadAll), waits up to `graceMs`, aborts what is
 *   left, then closes the socket and the link.
 */
import type { Logger } from 'pino';
import { Status } from '../chimney/status.js';
import type { IpcBinding } from '../ipc/server.js';
import { IpcServer } from '../ipc/server.js';
import { MESSAGES, type Capabilities, type HostMessage, type TargetMessage } from '../ipc/messages.js';
import type { Link, LinkCounters } from '../link/link.js';
import { deferOn, WallClockScheduler } from '../link/scheduler.js';
import type { Scheduler } from '../tcp/driver.js';
import { TcpState } from '../tcp/types.js';
import { TcpEventType } from '../chimney/state.js';
import { ZERO_MAC } from '../wire/addresses.js';
import { TargetCore, type TargetCounters, type TargetLimits } from './core.js';
import { DEFAULT_PARAMETERS } from './offloaded-connection.js';
import type { IpcCounters } from '../ipc/connection.js';

export interface TargetServiceOptions {
  link: Link;
  /** Where the Unix socket is created (owner-only, 0600). */
  socketPath: string;
  /** Source MAC for neighbors offloaded with a zero DlSourceAddress. */
  interfaceMac?: Uint8Array;
  /** Core limits; `maxPathMtu` defaults to the link's MTU. */
  limits?: Partial<TargetLimits>;
  logger: Logger;
  /** Default: a wall-clock scheduler owned (and closed) by the service. */
  scheduler?: Scheduler;
  /** Default grace for `shutdown` (ms). */
  uploadGraceMs?: number;
  /** Bad messages (Error replies, ours or the IPC layer's) tolerated per window before dropping the host. */
  maxHostErrors?: number;
  hostErrorWindowMs?: number;
  /** Name and version sent in the hello. */
  software?: string;
  terminateSendMode?: 'chain' | 'complete' | 'alternate';
  congestionControl?: 'newreno' | 'cubic';
}

export interface ServiceCounters {
  /** Link frames dropped because no host was bound. */
  framesDroppedNoHost: number;
  /** Core messages for the host not sent: none bound, binding closing, or refused by the codec. */
  messagesDroppedNoHost: number;
  linkBatchesIn: number;
  linkBatchesOut: number;
  bindingsAccepted: number;
  bindingsRefused: number;
  /** Bindings dropped for misbehaving (too many errors). */
  bindingsDropped: number;
  /** Bindings that went away (closed or dropped). */
  hostsGone: number;
  /** Offloaded connections aborted with RST (host gone or shutdown grace expired). */
  connectionsAborted: number;
  handshakeFailures: number;
}

export interface ConnectionRow {
  ctx: number;
  handle: number;
  state: string;
  phase: string;
  sndUna: number;
  sndNxt: number;
  rcvNxt: number;
  bytesIn: number;
  bytesOut: number;
  aborted: boolean;
  uploadRequested: boolean;
}

export interface TargetStatus {
  socketPath: string;
  link: { name: string; layer: 'ethernet' | 'ip'; mtu: number; counters: LinkCounters };
  host: { software: string; counters: IpcCounters } | undefined;
  shuttingDown: boolean;
  counters: { service: ServiceCounters; core: TargetCounters };
  lentBuffers: { count: number; bytes: number };
  connections: ConnectionRow[];
}

export interface ShutdownResult {
  /** Connections offloaded when shutdown began that the host took back. */
  uploaded: number;
  /** Connections aborted with RST (grace expired, or the host went away meanwhile). */
  aborted: number;
}

export interface TargetService {
  readonly socketPath: string;
  readonly core: TargetCore;
  readonly counters: ServiceCounters;
  /** Whether a host is bound now. */
  readonly hostBound: boolean;
  status(): TargetStatus;
  /** UploadAll, wait for the host (at most `graceMs`), abort the rest, close socket and link. */
  shutdown(opts?: { graceMs?: number }): Promise<ShutdownResult>;
}

const DEFAULT_GRACE_MS = 5000;
const DEFAULT_MAX_HOST_ERRORS = 100;
const DEFAULT_ERROR_WINDOW_MS = 10_000;

export async function startTargetService(o: TargetServiceOptions): Promise<TargetService> {
  // The core reads and writes Ethernet frames, and so does the host (ChimneyLink); an IP-layer link
  // would also need ARP answered for the host, which nothing does yet.
  if (o.link.layer !== 'ethernet') throw new Error(`the target service needs an Ethernet link (TAP or sim); ${o.link.name} is an IP-layer link`);
  const service = new Service(o);
  await service.listen();
  return service;
}

interface Bound {
  binding: IpcBinding;
  gone: boolean;
  errorsSeen: number;
  windowStart: number;
  windowErrors: number;
}

class Service implements TargetService {
  readonly core: TargetCore;
  readonly counters: ServiceCounters = {
    framesDroppedNoHost: 0, messagesDroppedNoHost: 0, linkBatchesIn: 0, linkBatchesOut: 0, bindingsAccepted: 0,
    bindingsRefused: 0, bindingsDropped: 0, hostsGone: 0, connectionsAborted: 0, handshakeFailures: 0,
  };
  private readonly log: Logger;
  private readonly link: Link;
  private readonly scheduler: Scheduler;
  private readonly ownScheduler: WallClockScheduler | undefined;
  private server: IpcServer | undefined;
  private host: Bound | undefined;
  private outFrames: Uint8Array[] = [];
  private flushQueued = false;
  private shutdownPromise: Promise<ShutdownResult> | undefined;
  /** Called after every host message and when a host goes (shutdown waits on it). */
  private onProgress: (() => void) | undefined;
  /** Connections aborted since shutdown began. */
  private abortedDuringShutdown = new Set<number>();
  private readonly maxHostErrors: number;
  private readonly errorWindowMs: number;

  constructor(private readonly o: TargetServiceOptions) {
    this.log = o.logger;
    this.link = o.link;
    this.ownScheduler = o.scheduler ? undefined : new WallClockScheduler();
    this.scheduler = o.scheduler ?? this.ownScheduler!;
    this.maxHostErrors = o.maxHostErrors ?? DEFAULT_MAX_HOST_ERRORS;
    this.errorWindowMs = o.hostErrorWindowMs ?? DEFAULT_ERROR_WINDOW_MS;
    this.core = new TargetCore({
      scheduler: this.scheduler,
      interfaceMac: o.interfaceMac ?? ZERO_MAC,
      limits: { maxPathMtu: o.link.mtu, ...o.limits },
      terminateSendMode: o.terminateSendMode,
      congestionControl: o.congestionControl,
      toHost: (m) => this.toHost(m),
      toWire: (f) => this.toWire(f),
      log: (level, msg, fields) => this.log[level](fields ?? {}, msg),
    });
  }

  get socketPath(): string {
    return this.o.socketPath;
  }

  get hostBound(): boolean {
    return this.host !== undefined;
  }

  async listen(): Promise<void> {
    const capabilities: Capabilities = {
      supportIPv4: true,
      supportIPv6: false, // the core refuses IPv6 paths
      supportSack: true,
      tcpConnectionOffloadCapacity: this.core.limits.maxConnections,
      ticksPerSecond: DEFAULT_PARAMETERS.ticksPerSecond,
    };
    this.server = await IpcServer.listen(this.o.socketPath, {
      software: this.o.software ?? 'tcp-chimney target',
      capabilities,
      onBinding: (b) => this.onBinding(b),
      onHandshakeFailure: (e) => {
        this.counters.handshakeFailures++;
        this.log.warn({ err: e.message }, 'host handshake failed');
      },
    });
    this.link.setReceiver((frames) => this.onLinkFrames(frames));
    this.log.info({ socket: this.o.socketPath, link: this.link.name, mtu: this.link.mtu, capabilities }, 'target listening');
  }

  // ------------------------------------------------------------------------------ link

  private onLinkFrames(frames: readonly Uint8Array[]): void {
    this.counters.linkBatchesIn++;
    if (this.host === undefined) {
      this.counters.framesDroppedNoHost += frames.length;
      return;
    }
    for (const f of frames) this.core.onFrame(f);
  }

  private toWire(frame: Uint8Array): void {
    this.outFrames.push(frame);
    if (this.flushQueued) return;
    this.flushQueued = true;
    deferOn(this.scheduler, () => this.flushWire());
  }

  private flushWire(): void {
    this.flushQueued = false;
    if (this.outFrames.length === 0) return;
    const frames = this.outFrames;
    this.outFrames = [];
    this.counters.linkBatchesOut++;
    this.link.send(frames);
  }

  // ------------------------------------------------------------------------------ host binding

  private toHost(msg: TargetMessage): void {
    const h = this.host;
    let sent = false;
    try {
      sent = h !== undefined && !h.gone && h.binding.connection.send(msg);
    } catch (e) {
      // An invalid message is a core bug: keep the core running, say what was refused.
      this.log.error({ err: (e as Error).message, type: msg.type }, 'core produced a message the codec refuses');
    }
    if (!sent) {
      this.counters.messagesDroppedNoHost++;
      return;
    }
    if (msg.type === 'TcpEvent' && msg.eventType === TcpEventType.Abort) {
      this.log.warn({ handle: msg.handle }, 'offloaded connection reset by the peer');
    }
  }

  private onBinding(binding: IpcBinding): void {
    const conn = binding.connection;
    const software = binding.host.software;
    if (this.host !== undefined || this.shutdownPromise !== undefined) {
      this.counters.bindingsRefused++;
      const why = this.shutdownPromise !== undefined ? 'the target is shutting down' : `another host (${this.host!.binding.host.software}) is bound to this target`;
      conn.send({ type: 'Error', refKind: MESSAGES.Hello.code, refId: 0, status: Status.IPC_INVALID_IN_STATE, problem: `binding refused: ${why}` });
      void conn.close('binding refused');
      this.log.warn({ host: software, reason: why }, 'second host binding refused');
      return;
    }
    const h: Bound = { binding, gone: false, errorsSeen: conn.counters.errorsSent, windowStart: this.scheduler.now(), windowErrors: 0 };
    this.host = h;
    this.core.hostBound();
    this.counters.bindingsAccepted++;
    this.log.info({ host: software }, 'host bound');
    conn.onClose((reason) => this.hostGone(h, `binding closed: ${reason}`));
    // Runs after the connection's own 'data' listener: counts the IPC layer's Error replies too.
    conn.socket.on('data', () => this.checkErrors(h));
    conn.setHandler((msg) => this.onHostMessage(h, msg));
  }

  private onHostMessage(h: Bound, msg: HostMessage): void {
    if (h.gone) return;
    if (msg.type === 'InitiateOffload' && this.shutdownPromise !== undefined) {
      // Spec 5.5: after UploadAll the host offloads nothing more; one that does is told so.
      h.binding.connection.send({ type: 'Error', refKind: MESSAGES.InitiateOffload.code, refId: msg.opId, status: Status.IPC_INVALID_IN_STATE, problem: 'InitiateOffload refused: the target is shutting down (UploadAll sent)' });
      return;
    }
    try {
      this.core.onHostMessage(msg);
    } catch (e) {
      // A core bug must not take the service down; the host hears about it like any bad request.
      this.log.error({ err: (e as Error).stack ?? String(e), type: msg.type }, 'core failed on a host message');
      h.binding.connection.send({ type: 'Error', refKind: MESSAGES[msg.type].code, refId: 0, status: Status.FAILURE, problem: `target failed on ${msg.type}: ${(e as Error).message}` });
    }
    this.checkErrors(h);
    this.onProgress?.();
  }

  /** Drop a host that keeps sending bad messages. */
  private checkErrors(h: Bound): void {
    if (h.gone) return;
    const total = h.binding.connection.counters.errorsSent;
    const fresh = total - h.errorsSeen;
    if (fresh === 0) return;
    h.errorsSeen = total;
    const now = this.scheduler.now();
    if (now - h.windowStart > this.errorWindowMs) {
      h.windowStart = now;
      h.windowErrors = 0;
    }
    h.windowErrors += fresh;
    if (h.windowErrors <= this.maxHostErrors) return;
    this.counters.bindingsDropped++;
    const reason = `${h.windowErrors} bad messages within ${this.errorWindowMs} ms (limit ${this.maxHostErrors})`;
    this.log.warn({ host: h.binding.host.software, errors: h.windowErrors }, `dropping host binding: ${reason}`);
    this.hostGone(h, `dropped: ${reason}`);
    void h.binding.connection.close(`too many errors: ${reason}`);
  }

  private hostGone(h: Bound, why: string): void {
    if (h.gone) return;
    h.gone = true;
    if (this.host === h) this.host = undefined;
    this.counters.hostsGone++;
    const aborted = this.abortAll();
    // The next host starts from the defaults its hello promised, not this host's SetParameters.
    this.core.params = { ...DEFAULT_PARAMETERS };
    const lent = this.core.ledger.lentCount;
    this.log.warn({ host: h.binding.host.software, aborted, lentBuffersLeft: lent, reason: why }, `host binding gone: aborted ${aborted} offloaded connection(s) with RST`);
    this.onProgress?.();
  }

  /** RST every offloaded connection, free its buffers, log each by id. */
  private abortAll(): number {
    for (const c of this.core.connections()) {
      this.log.warn({ ctx: c.ctx, handle: c.handle, state: TcpState[c.state] }, 'offloaded connection aborted');
      if (this.shutdownPromise !== undefined) this.abortedDuringShutdown.add(c.ctx);
    }
    const n = this.core.hostGone();
    this.counters.connectionsAborted += n;
    return n;
  }

  // ------------------------------------------------------------------------------ status

  status(): TargetStatus {
    const h = this.host;
    return {
      socketPath: this.o.socketPath,
      link: { name: this.link.name, layer: this.link.layer, mtu: this.link.mtu, counters: { ...this.link.counters } },
      host: h ? { software: h.binding.host.software, counters: { ...h.binding.connection.counters } } : undefined,
      shuttingDown: this.shutdownPromise !== undefined,
      counters: { service: { ...this.counters }, core: { ...this.core.counters, dropped: { ...this.core.counters.dropped } } },
      lentBuffers: { count: this.core.ledger.lentCount, bytes: this.core.ledger.lentBytes },
      connections: this.core.connections().map((c) => {
        const e = c.connection;
        return {
          ctx: c.ctx, handle: c.handle, state: TcpState[e.state] ?? String(e.state), phase: c.phase,
          sndUna: e.sndUna, sndNxt: e.sndNxt, rcvNxt: e.rcvNxt, bytesIn: e.stats.bytesIn, bytesOut: e.stats.bytesOut,
          aborted: c.aborted, uploadRequested: c.uploadRequested,
        };
      }),
    };
  }

  // ------------------------------------------------------------------------------ shutdown

  shutdown(opts: { graceMs?: number } = {}): Promise<ShutdownResult> {
    this.shutdownPromise ??= this.runShutdown(opts.graceMs ?? this.o.uploadGraceMs ?? DEFAULT_GRACE_MS);
    return this.shutdownPromise;
  }

  private async runShutdown(graceMs: number): Promise<ShutdownResult> {
    // Let `shutdown` store the promise first: abortAll tells shutdown aborts by it.
    await Promise.resolve();
    const start = new Set(this.core.connections().map((c) => c.ctx));
    this.log.info({ connections: start.size, graceMs, hostBound: this.hostBound }, 'shutting down: asking the host to upload every connection');
    if (start.size > 0 && this.host !== undefined) {
      this.core.requestUploadAll();
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.onProgress = undefined;
          this.scheduler.cancel(timer);
          resolve();
        };
        const timer = this.scheduler.schedule(this.scheduler.now() + graceMs, done);
        this.onProgress = () => {
          if (this.core.connectionCount === 0) done();
        };
      });
    }
    const left = this.core.connections().map((c) => c.ctx);
    if (left.length > 0) {
      this.log.warn({ left: left.length, graceMs }, 'shutdown grace expired: aborting the connections the host did not take back');
      this.abortAll();
    }
    let aborted = 0;
    for (const ctx of start) if (this.abortedDuringShutdown.has(ctx)) aborted++;
    const result: ShutdownResult = { uploaded: start.size - aborted, aborted };
    this.flushWire();
    const h = this.host;
    if (h !== undefined) h.gone = true; // already empty: closing it is not a host loss
    this.host = undefined;
    await this.server?.close();
    await this.link.close();
    this.ownScheduler?.close();
    this.log.info(result, 'target stopped');
    return result;
  }
}
