/**
 * Forwarders: unmodified programs use userspace-stack (offloadable) connections through a kernel
 * socket in the host process's own namespace.
 *
 *  --forward LOCAL_ADDR:PORT=REMOTE_ADDR:PORT  kernel listener; each accepted connection is relayed
 *                                              over a stack connection to REMOTE (e.g. curl -> peer)
 *  --expose STACK_PORT=LOCAL_ADDR:PORT         stack listener; each accepted connection is relayed
 *                                              to a kernel connection to LOCAL (peer -> local server)
 *
 * A relay pipes both ways (backpressure from either side stops the other), passes a FIN on as
 * `end()` (both sockets allow half-open connections, so each direction closes on its own) and
 * turns an error on one side into a reset of the other. `HandoverCycle` terminates and re-offloads
 * the relayed connections periodically, to exercise hand-overs under a real program's transfer.
 */
import { connect as kernelConnect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { parseIpv4Address } from '../wire/addresses.js';
import type { TcpServer } from './server.js';
import type { TcpSocket } from './socket.js';
import type { HostStack } from './stack.js';

export interface Endpoint {
  address: string;
  port: number;
}

export interface ForwardSpec {
  /** Kernel listener (port 0: the kernel picks one; `Forwarders.forward` returns it). */
  local: Endpoint;
  /** Where the stack connects. */
  remote: Endpoint;
}

export interface ExposeSpec {
  /** Port the stack listens on. */
  stackPort: number;
  /** Kernel server each connection is relayed to. */
  local: Endpoint;
}

export const FORWARD_FORMAT = 'LOCAL_ADDR:PORT=REMOTE_ADDR:PORT';
export const EXPOSE_FORMAT = 'STACK_PORT=LOCAL_ADDR:PORT';

function parsePort(s: string, min: number): number | undefined {
  if (!/^\d{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= min && n <= 65535 ? n : undefined;
}

/** "A.B.C.D:PORT" (IPv4 only: the stack is IPv4) -> endpoint, or a problem. */
function parseEndpoint(s: string, what: string, minPort: number): Endpoint | string {
  const m = /^(.*):([^:]*)$/.exec(s);
  if (!m) return `${what} '${s}' has no ':PORT'`;
  if (parseIpv4Address(m[1]) === undefined) return `${what} address '${m[1]}' is not an IPv4 address`;
  const port = parsePort(m[2], minPort);
  if (port === undefined) return `${what} port '${m[2]}' is not a number ${minPort}..65535`;
  return { address: m[1], port };
}

/** `--forward` value -> spec, or the reason it is not one. */
export function parseForward(s: string): ForwardSpec | string {
  const parts = s.split('=');
  if (parts.length !== 2) return `--forward must be ${FORWARD_FORMAT}, not '${s}'`;
  const local = parseEndpoint(parts[0], 'local', 0);
  const remote = parseEndpoint(parts[1], 'remote', 1);
  for (const e of [local, remote]) if (typeof e === 'string') return `--forward must be ${FORWARD_FORMAT}, not '${s}': ${e}`;
  return { local: local as Endpoint, remote: remote as Endpoint };
}

/** `--expose` value -> spec, or the reason it is not one. */
export function parseExpose(s: string): ExposeSpec | string {
  const parts = s.split('=');
  if (parts.length !== 2) return `--expose must be ${EXPOSE_FORMAT}, not '${s}'`;
  const stackPort = parsePort(parts[0], 1);
  if (stackPort === undefined) return `--expose must be ${EXPOSE_FORMAT}, not '${s}': stack port '${parts[0]}' is not a number 1..65535`;
  const local = parseEndpoint(parts[1], 'local', 1);
  if (typeof local === 'string') return `--expose must be ${EXPOSE_FORMAT}, not '${s}': ${local}`;
  return { stackPort, local };
}

const show = (e: Endpoint): string => `${e.address}:${e.port}`;

/** One relayed connection, as logged when it ends. */
export interface RelaySummary {
  id: string;
  kind: 'forward' | 'expose';
  /** Bytes the kernel side sent into the stack connection, and back. */
  kernelToStack: number;
  stackToKernel: number;
  /** Whether the stack connection was offloaded to the target at some point. */
  offloaded: boolean;
  /** Terminate + re-offload cycles done by a HandoverCycle on it. */
  handovers: number;
  /** The first error of either side, if any (the other side was reset). */
  error?: string;
}

export interface ForwardersStats {
  /** Relays started, and still open. */
  connections: number;
  open: number;
  /** Relays that ended with an error on one side. */
  failed: number;
}

/**
 * Relay `kernel` <-> `stack` once both are connected: pipes both ways, FIN -> end(), an error on
 * one side resets the other. `onClose` runs once, after both sockets closed.
 */
class Relay {
  offloadedOnce = false;
  handovers = 0;
  private error: string | undefined;
  private closedSides = 0;

  constructor(
    readonly id: string,
    readonly kind: 'forward' | 'expose',
    readonly kernel: Socket,
    readonly stack: TcpSocket,
    private readonly log: Logger,
    private readonly onClose: (r: Relay, s: RelaySummary) => void,
  ) {
    kernel.setNoDelay(true);
    kernel.on('error', (e: Error) => this.failed('kernel', e));
    stack.on('error', (e: Error) => this.failed('stack', e));
    kernel.once('close', () => this.sideClosed(kernel, stack));
    stack.once('close', () => this.sideClosed(stack, kernel));
  }

  /** Both sides connected: start moving bytes. */
  start(): void {
    if (this.kernel.destroyed || this.stack.destroyed) return;
    this.kernel.pipe(this.stack);
    this.stack.pipe(this.kernel);
    // Data moves while the target drives the connection: note it for the summary. (Added after
    // pipe: a 'data' listener alone would start the flow with nobody to take the bytes.)
    const seen = (): void => { if (!this.offloadedOnce && this.stack.offloaded) this.offloadedOnce = true; };
    this.stack.on('data', seen);
    this.kernel.on('data', seen);
  }

  /** Tear the relay down with resets (shutdown). */
  reset(): void {
    for (const s of [this.kernel, this.stack]) if (!s.destroyed) s.resetAndDestroy();
  }

  private failed(side: 'kernel' | 'stack', e: Error): void {
    this.error ??= `${side}: ${e.message}`;
    this.log.warn({ conn: this.id, side, err: e.message }, 'relay: error, resetting the other side');
    const other = side === 'kernel' ? this.stack : this.kernel;
    if (!other.destroyed) other.resetAndDestroy();
  }

  private sideClosed(closed: Socket | TcpSocket, other: Socket | TcpSocket): void {
    // A side that closed before both of its directions finished cannot take or give the rest of
    // the other's stream: the other side is reset rather than left waiting.
    if (!other.destroyed && !(closed.readableEnded && closed.writableFinished)) {
      this.error ??= `${closed === this.kernel ? 'kernel' : 'stack'} side closed early`;
      other.resetAndDestroy();
    }
    if (++this.closedSides < 2) return;
    const summary: RelaySummary = {
      id: this.id, kind: this.kind, kernelToStack: this.stack.bytesWritten, stackToKernel: this.stack.bytesRead,
      offloaded: this.offloadedOnce, handovers: this.handovers, ...(this.error !== undefined ? { error: this.error } : {}),
    };
    this.log.info(summary, 'relay closed');
    this.onClose(this, summary);
  }
}

/** The forwarders of one host stack. */
export class Forwarders {
  readonly summaries: RelaySummary[] = [];
  private readonly relays = new Set<Relay>();
  private readonly kernelServers: Server[] = [];
  private readonly stackServers: TcpServer[] = [];
  private started = 0;
  private failedCount = 0;
  private closing = false;

  constructor(
    private readonly stack: HostStack,
    private readonly log: Logger,
  ) {}

  get stats(): ForwardersStats {
    return { connections: this.started, open: this.relays.size, failed: this.failedCount };
  }

  /** Stack sockets of the open relays. */
  *sockets(): Iterable<TcpSocket> {
    for (const r of this.relays) yield r.stack;
  }

  /** The relay a stack socket belongs to (HandoverCycle counts its hand-overs there). */
  relayOf(socket: TcpSocket): { handovers: number; offloadedOnce: boolean } | undefined {
    for (const r of this.relays) if (r.stack === socket) return r;
    return undefined;
  }

  /** Start a kernel listener for `spec`; resolves with its bound address (rejects on EADDRINUSE ...). */
  async forward(spec: ForwardSpec): Promise<Endpoint> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (k) => this.forwardOne(k, spec));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(spec.local.port, spec.local.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log.error({ err: e.message, local: show(spec.local) }, 'forward listener error'));
    this.kernelServers.push(server);
    const a = server.address();
    const bound = typeof a === 'object' && a !== null ? { address: a.address, port: a.port } : spec.local;
    this.log.info({ local: show(bound), remote: show(spec.remote) }, 'forwarding: kernel listener -> stack connections');
    return bound;
  }

  /** Start a stack listener for `spec` (throws EADDRINUSE when the stack port is taken). */
  expose(spec: ExposeSpec): void {
    const server = this.stack.listen(spec.stackPort, (s) => this.exposeOne(s, spec), { allowHalfOpen: true, noDelay: true });
    this.stackServers.push(server);
    this.log.info({ stackPort: spec.stackPort, local: show(spec.local) }, 'exposing: stack listener -> kernel connections');
  }

  private forwardOne(k: Socket, spec: ForwardSpec): void {
    const id = `f${++this.started}`;
    if (this.closing) {
      k.resetAndDestroy();
      return;
    }
    let s: TcpSocket;
    try {
      s = this.stack.connect({ host: spec.remote.address, port: spec.remote.port, allowHalfOpen: true, noDelay: true });
    } catch (e) {
      this.log.warn({ conn: id, err: (e as Error).message }, 'forward: cannot open a stack connection');
      this.failedCount++;
      k.resetAndDestroy();
      return;
    }
    const relay = this.track(new Relay(id, 'forward', k, s, this.log, (r, sum) => this.untrack(r, sum)));
    this.log.info({ conn: id, client: `${k.remoteAddress}:${k.remotePort}`, stack: `${s.localAddress}:${s.localPort}`, remote: show(spec.remote) }, 'forward: connection accepted');
    s.once('connect', () => relay.start());
  }

  private exposeOne(s: TcpSocket, spec: ExposeSpec): void {
    const id = `e${++this.started}`;
    if (this.closing) {
      s.resetAndDestroy();
      return;
    }
    const k = kernelConnect({ host: spec.local.address, port: spec.local.port, allowHalfOpen: true, noDelay: true });
    const relay = this.track(new Relay(id, 'expose', k, s, this.log, (r, sum) => this.untrack(r, sum)));
    this.log.info({ conn: id, peer: `${s.remoteAddress}:${s.remotePort}`, stackPort: spec.stackPort, local: show(spec.local) }, 'expose: connection accepted');
    k.once('connect', () => relay.start());
  }

  private track(r: Relay): Relay {
    this.relays.add(r);
    return r;
  }

  private untrack(r: Relay, summary: RelaySummary): void {
    this.relays.delete(r);
    if (summary.error !== undefined) this.failedCount++;
    this.summaries.push(summary);
  }

  /** Stop listening and reset every open relay. */
  async close(): Promise<void> {
    this.closing = true;
    for (const s of this.stackServers.splice(0)) s.close();
    const kernel = this.kernelServers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const r of [...this.relays]) r.reset();
    await Promise.all(kernel);
  }
}

export interface HandoverStats {
  /** Terminates that returned a connection to the host, and re-offloads after them. */
  terminates: number;
  offloads: number;
  /** Cycles not completed (the connection closed meanwhile, or the target refused). */
  failures: number;
}

/**
 * Every `everyMs`, take each offloaded connection back from the target (terminate) and offload it
 * again; the same hand-over `chimney start` does at fixed points of its transfers.
 */
export class HandoverCycle {
  readonly stats: HandoverStats = { terminates: 0, offloads: 0, failures: 0 };
  private readonly busy = new WeakSet<TcpSocket>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly everyMs: number,
    private readonly forwarders: Forwarders,
    private readonly log: Logger,
  ) {
    if (!(Number.isInteger(everyMs) && everyMs > 0)) throw new RangeError(`HandoverCycle: bad interval ${everyMs}`);
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.tick();
      this.schedule();
    }, this.everyMs);
  }

  private tick(): void {
    for (const s of this.forwarders.sockets()) {
      if (!s.offloaded || s.destroyed || this.busy.has(s)) continue;
      this.busy.add(s);
      void this.cycle(s).finally(() => this.busy.delete(s));
    }
  }

  private async cycle(s: TcpSocket): Promise<void> {
    const relay = this.forwarders.relayOf(s);
    try {
      await s.terminateOffload();
      this.stats.terminates++;
      if (s.destroyed) return;
      await s.offload();
      this.stats.offloads++;
      if (relay) relay.handovers++;
      this.log.debug({ local: s.localPort, remote: `${s.remoteAddress}:${s.remotePort}` }, 'hand-over: terminated and offloaded again');
    } catch (e) {
      // Normal near the end of a connection (closing states stay on the host).
      this.stats.failures++;
      this.log.debug({ local: s.localPort, err: (e as Error).message }, 'hand-over not completed');
    }
  }
}
