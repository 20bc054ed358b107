/**
 * A TCP connection of the host stack as a Node Duplex that behaves like `net.Socket` where
 * applications rely on it: 'connect', write backpressure (a write completes when the engine took
 * the bytes; the engine's 'writable' resumes it), `end()` -> FIN, `destroy()` -> RST, reads pushed
 * with `push()` backpressure (unread data keeps the receive window closed), 'end' after the peer's
 * FIN, errors with `code` ECONNRESET / ECONNREFUSED / ETIMEDOUT.
 *
 * Closing follows Linux: once our FIN is queued and nothing is unread, destroying the socket lets
 * the engine finish the close on its own (an orphan); data arriving at an orphan is answered with
 * RST. Any other destroy aborts.
 */
import { Duplex } from 'node:stream';
import type { TcpConnection, ExportOptions } from '../tcp/connection.js';
import { DEFAULT_TCP_CONFIG, TcpState, type TcpErrorCode, type TcpEvent, type TcpExport } from '../tcp/types.js';
import { socketError } from './errors.js';
import type { ConnectionObserver, HostConnection } from './host-connection.js';
import type { SegmentHandler } from './tcp-demux.js';

const EMPTY = new Uint8Array(0);

export interface TcpSocketInfo {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

export interface TcpSocketOptions {
  /** Keep the writable side open after the peer's FIN (default false, as `net.Socket`). */
  allowHalfOpen?: boolean;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
}

type WriteCallback = (error?: Error | null) => void;

/** The socket's I/O while the offload target drives the connection (implemented in offload.ts). */
export interface OffloadIo {
  /** Take up to `data.length` bytes for sending; returns how many (0 = backlog full, wait for writable). */
  write(data: Uint8Array): number;
  /** Graceful close (FIN after everything written). */
  end(): void;
  /** The application wants data again after a push returned false. */
  readResume(): void;
  /** The socket is destroyed: `abortive` = RST, else the connection finishes its close by itself. */
  destroyed(abortive: boolean): void;
}

/** The stack's offload manager as a socket sees it. */
export interface OffloadControl {
  offload(socket: TcpSocket): Promise<void>;
  terminate(socket: TcpSocket): Promise<void>;
  /** Engine activity (connected, data, acks): where an automatic policy decides. */
  activity(socket: TcpSocket): void;
  /** Nagle or keepalive settings changed while offloaded (UpdateOffload). */
  updateCached(socket: TcpSocket): void;
}

export class TcpSocket extends Duplex implements ConnectionObserver {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly remoteFamily = 'IPv4';
  /** True until the handshake completes (as `net.Socket#connecting`). */
  connecting: boolean;
  bytesRead = 0;
  /** Received bytes that came back from the target after the stream had ended or the socket was destroyed (diagnostics: should stay 0 unless the application destroyed it). */
  receiveDiscarded = 0;
  /** What ended the read stream (diagnostics), once it ended. */
  endedBy: string | undefined;
  bytesWritten = 0;

  private pendingWrite: { data: Uint8Array; cb: WriteCallback } | undefined;
  private pendingFinal: WriteCallback | undefined;
  private finalIssued = false;
  private readWanted = true;
  private pushedEnd = false;
  private orphan = false;
  private forceReset = false;
  /** Passive sockets: handed to the server's listener once established. */
  private announce: ((s: TcpSocket) => void) | undefined;
  /** Set while the connection is offloaded: reads and writes go through the target. */
  private offloadIo: OffloadIo | undefined;
  /** Set by the stack when it has an offload target. */
  offloadControl: OffloadControl | undefined;

  constructor(
    readonly binding: HostConnection,
    info: TcpSocketInfo,
    opts: TcpSocketOptions = {},
    announce?: (s: TcpSocket) => void,
  ) {
    super({
      allowHalfOpen: opts.allowHalfOpen ?? false,
      readableHighWaterMark: opts.readableHighWaterMark,
      writableHighWaterMark: opts.writableHighWaterMark,
      decodeStrings: true,
    });
    this.localAddress = info.localAddress;
    this.localPort = info.localPort;
    this.remoteAddress = info.remoteAddress;
    this.remotePort = info.remotePort;
    this.announce = announce;
    this.connecting = !binding.connection.isSynchronized;
    binding.observer = this;
  }

  /** The engine currently driving this connection (status, inspection, offload). */
  get connection(): TcpConnection {
    return this.binding.connection;
  }

  get pending(): boolean {
    return this.connecting;
  }

  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  address(): { address: string; family: 'IPv4'; port: number } {
    return { address: this.localAddress, family: 'IPv4', port: this.localPort };
  }

  /** Nagle off (true) or on (false). Queued small data goes out at once when turning it off. */
  setNoDelay(noDelay = true): this {
    const c = this.connection;
    c.config.nagle = !noDelay;
    if (noDelay && this.binding.attached && !this.binding.closed && (c.state === TcpState.Established || c.state === TcpState.CloseWait)) {
      this.binding.run((conn, now) => conn.write(EMPTY, now));
    }
    if (this.offloadIo !== undefined) this.offloadControl?.updateCached(this);
    return this;
  }

  /**
   * Keepalive probes after `initialDelay` ms idle (0 keeps the configured idle time). The engine
   * arms its keepalive timer when the connection is established: call this before that.
   */
  setKeepAlive(enable = false, initialDelay = 0): this {
    const settings = { enabled: enable, ...(initialDelay > 0 ? { idleMs: initialDelay } : {}) };
    if (this.binding.attached && !this.binding.closed && this.connection.isSynchronized) {
      // Through the engine, so a keepalive enabled after the handshake arms its timer.
      this.binding.run((conn, now) => conn.updateSettings({ keepalive: settings }, now));
    } else {
      Object.assign(this.connection.config.keepalive, settings);
    }
    if (this.offloadIo !== undefined) this.offloadControl?.updateCached(this);
    return this;
  }

  /** Present for `net.Socket` compatibility; the stack's link decides the process lifetime. */
  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  /** Destroy with an RST even after a graceful end (Node's `resetAndDestroy`). */
  resetAndDestroy(): this {
    this.forceReset = true;
    return this.destroy();
  }

  // --------------------------------------------------------------------------- offload seam

  /** True while the offload target drives this connection. */
  get offloaded(): boolean {
    return this.offloadIo !== undefined;
  }

  /** Hand the connection to the offload target (resolves once the target runs it). */
  offload(): Promise<void> {
    if (this.offloadControl === undefined) return Promise.reject(new Error('offload: the stack has no offload target'));
    return this.offloadControl.offload(this);
  }

  /** Take the connection back from the target (resolves once the host engine runs it again). */
  terminateOffload(): Promise<void> {
    if (this.offloadControl === undefined) return Promise.reject(new Error('terminateOffload: the stack has no offload target'));
    return this.offloadControl.terminate(this);
  }

  /** Offload manager: the target now drives the connection (the engine is detached). */
  offloadBegin(io: OffloadIo): void {
    this.offloadIo = io;
    this.tryWrite();
    this.tryFinal();
  }

  /** Whether the application takes more data now (its last push was not refused). */
  get wantsData(): boolean {
    return this.readWanted && !this.pushedEnd && !this.destroyed;
  }

  /** Offload manager: in-order bytes from the target. Returns whether the application wants more. */
  offloadData(bytes: Uint8Array): boolean {
    if (this.destroyed || this.pushedEnd) {
      this.receiveDiscarded += bytes.length;
      return false;
    }
    this.bytesRead += bytes.length;
    this.readWanted = this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    return this.readWanted;
  }

  /** Offload manager: the peer's FIN, after all its data (TcpIndicateDisconnect). */
  offloadPeerFin(): void {
    this.endStream('the target indicated the peer\'s FIN');
  }

  /** Offload manager: send backlog shrank (send completions). */
  offloadWritable(): void {
    this.tryWrite();
    this.tryFinal();
  }

  /**
   * Offload manager: the connection ended while offloaded (reset), after the terminate gave back
   * what the target had received before it: nothing continues. As with Linux, the application
   * reads the bytes that arrived before the reset, then gets ECONNRESET (destroying at once would
   * discard what it has not read yet).
   */
  offloadGone(): void {
    this.offloadIo = undefined;
    this.binding.release();
    if (this.destroyed) return;
    this.forceReset = true;
    const fail = (): void => {
      if (!this.destroyed) this.destroy(socketError('ECONNRESET', 'read', this.remoteAddress, this.remotePort));
    };
    if (this.readableLength === 0) {
      fail();
      return;
    }
    const check = (): void => {
      if (this.readableLength > 0) return;
      this.off('data', check);
      fail();
    };
    this.on('data', check);
  }

  /**
   * Offload manager: the connection finished its close at the target (both FINs done): nothing to
   * continue, nothing failed. The stream ends after what was delivered.
   */
  offloadFinished(): void {
    this.offloadIo = undefined;
    this.binding.release();
    this.endStream('the close finished at the target');
  }

  /** End of the read stream (the peer's FIN), once; `why` is kept for diagnostics (`endedBy`). */
  private endStream(why: string): void {
    if (this.destroyed || this.pushedEnd) return;
    this.pushedEnd = true;
    this.endedBy = why;
    this.push(null);
  }

  /** An orphan (the application let go after its FIN) gets the FIN_WAIT_2 timeout. */
  private startOrphanTimeout(): void {
    const b = this.binding;
    if (b.attached && !b.closed && b.connection.config.finWait2TimeoutMs <= 0) b.run((c, now) => c.setFinWait2Timeout(now, DEFAULT_TCP_CONFIG.finWait2TimeoutMs));
  }

  /** Offload manager: the terminate returned the connection; `conn` is imported from its state. */
  offloadEnd(conn: TcpConnection): void {
    this.offloadIo = undefined;
    // A FIN the application asked for may not have reached the target's engine (its disconnect
    // request completed with UPLOAD_IN_PROGRESS): queue it on the imported engine.
    const reissueFin = this.finalIssued && (conn.state === TcpState.Established || conn.state === TcpState.CloseWait);
    this.attachEngine(conn);
    const b = this.binding;
    if (b.closed || !b.attached) return;
    // Destroyed abortively while the terminate ran: what the target did not reset, we do.
    if (this.destroyed && !this.orphan) b.run((c, now) => c.abort(now));
    else if (this.orphan) this.startOrphanTimeout();
    else if (reissueFin) b.run((c, now) => c.close(now));
  }

  /** Stop driving the engine and return it; segments of the 4-tuple go to `handler` meanwhile. */
  detachEngine(handler?: SegmentHandler): TcpConnection {
    return this.binding.detach(handler);
  }

  /** Export the engine's state and detach it (host -> target). */
  exportState(opts: ExportOptions = {}, handler?: SegmentHandler): TcpExport {
    return this.binding.exportAndDetach(opts, handler);
  }

  /** Continue with `conn` (e.g. imported from the state the target returned). */
  attachEngine(conn: TcpConnection): void {
    this.binding.attach(conn);
    if (this.binding.closed) {
      this.onEngineClosed(undefined);
      return;
    }
    this.pump();
    this.tryWrite();
    this.tryFinal();
  }

  // --------------------------------------------------------------------------- engine events

  onEngineEvents(evs: readonly TcpEvent[]): void {
    let connected = false;
    let data = false;
    let fin = false;
    let writable = false;
    let closed: (TcpEvent & { type: 'closed' }) | undefined;
    for (const e of evs) {
      switch (e.type) {
        case 'connected': connected = true; break;
        case 'readable': data = true; break;
        case 'peer-fin': fin = true; break;
        case 'writable':
        case 'acked': writable = true; break;
        case 'closed': closed = e; break;
        default: break;
      }
    }
    if (this.orphan) {
      // Linux answers data for a closed socket with RST (LINUX_MIB_TCPABORTONDATA).
      if (data && !this.binding.closed) this.binding.run((c, now) => c.abort(now));
      return;
    }
    if (connected) this.onConnected();
    if (data || fin) this.pump();
    if (writable) this.tryWrite();
    if (closed) this.onEngineClosed(closed.error);
    else if (!this.destroyed && this.offloadControl !== undefined) this.offloadControl.activity(this);
  }

  private onConnected(): void {
    this.connecting = false;
    this.tryFinal();
    const announce = this.announce;
    if (announce) {
      this.announce = undefined;
      announce(this);
    } else {
      this.emit('connect');
      this.emit('ready');
    }
  }

  private onEngineClosed(error: TcpErrorCode | undefined): void {
    if (this.destroyed) return;
    if (this.announce) {
      // Never established, never handed to the application: nobody to tell.
      this.announce = undefined;
      this.destroy();
      return;
    }
    if (error === undefined) {
      this.pump();
      // Both FINs exchanged: the stream ends by itself once the application read everything.
      if (this.connection.peerFinished && this.finalIssued) return;
      if (!this.destroyed) this.destroy();
      return;
    }
    this.pump(); // data that arrived before the RST is still delivered
    const syscall = error === 'ECONNRESET' ? 'read' : this.connecting ? 'connect' : 'read';
    this.destroy(socketError(error, syscall, this.remoteAddress, this.remotePort));
  }

  // --------------------------------------------------------------------------- Duplex

  override _read(): void {
    this.readWanted = true;
    if (this.offloadIo !== undefined) this.offloadIo.readResume();
    else this.pump();
  }

  /** Move in-order bytes from the engine into the stream while the consumer keeps up. */
  private pump(): void {
    if (this.destroyed || this.pushedEnd || !this.binding.attached) return;
    const max = Math.max(this.readableHighWaterMark, 16 * 1024);
    while (this.readWanted) {
      const chunk = this.binding.run((c, now) => c.read(max, now));
      if (chunk.length === 0) break;
      this.bytesRead += chunk.length;
      this.readWanted = this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      if (this.destroyed) return;
    }
    const c = this.binding.connection;
    if (c.peerFinished && c.readable === 0) this.endStream('the host engine read the peer\'s FIN');
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.pendingWrite = { data: chunk, cb: callback };
    this.tryWrite();
  }

  private tryWrite(): void {
    const p = this.pendingWrite;
    if (p === undefined) return;
    if (this.binding.closed) {
      this.pendingWrite = undefined;
      p.cb(socketError('EPIPE', 'write'));
      return;
    }
    let n: number;
    if (this.offloadIo !== undefined) {
      n = this.offloadIo.write(p.data);
    } else {
      if (!this.binding.attached) return;
      try {
        n = this.binding.run((c, now) => c.write(p.data, now));
      } catch {
        this.pendingWrite = undefined;
        p.cb(socketError('EPIPE', 'write'));
        return;
      }
    }
    this.bytesWritten += n;
    if (n === p.data.length) {
      this.pendingWrite = undefined;
      p.cb();
      this.tryFinal();
    } else {
      p.data = p.data.subarray(n);
    }
  }

  override _final(callback: WriteCallback): void {
    this.pendingFinal = callback;
    this.tryFinal();
  }

  private tryFinal(): void {
    const cb = this.pendingFinal;
    if (cb === undefined || this.pendingWrite !== undefined) return;
    if (this.binding.closed) {
      this.pendingFinal = undefined;
      cb();
      return;
    }
    if (this.offloadIo !== undefined) {
      this.pendingFinal = undefined;
      this.finalIssued = true;
      this.offloadIo.end();
      cb();
      return;
    }
    // An engine in SYN_SENT would drop the connection on close(): the FIN waits for the handshake.
    if (!this.binding.attached || this.connection.state === TcpState.SynSent) return;
    this.pendingFinal = undefined;
    this.finalIssued = true;
    this.binding.run((c, now) => c.close(now));
    cb();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.pendingWrite = undefined;
    this.pendingFinal = undefined;
    this.announce = undefined;
    const b = this.binding;
    const io = this.offloadIo;
    if (io !== undefined) {
      const unread = this.readableLength > 0 && !this.readableEnded;
      const graceful = !error && !this.forceReset && this.finalIssued && !unread;
      if (graceful) this.orphan = true;
      io.destroyed(!graceful);
    } else if (b.attached && !b.closed) {
      const c = b.connection;
      const unread = c.readable > 0 || (this.readableLength > 0 && !this.readableEnded);
      if (!error && !this.forceReset && this.finalIssued && !unread) {
        this.orphan = true;
        this.startOrphanTimeout();
      } else b.run((conn, now) => conn.abort(now));
    }
    callback(error);
  }
}
