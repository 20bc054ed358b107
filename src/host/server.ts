/**
 * A listening port of the host stack, shaped like `net.Server`: 'connection' with an established
 * TcpSocket, 'close' after `close()`. Half-open connections (SYN_RCVD) are bounded by `backlog`;
 * SYNs beyond it are dropped (the peer retransmits), as Linux does with a full SYN queue.
 */
import { EventEmitter } from 'node:events';
import type { TcpSocket, TcpSocketOptions } from './socket.js';

export interface TcpServerOptions extends TcpSocketOptions {
  /** Most connections still in the handshake (default 128). */
  backlog?: number;
  /** Nagle off on accepted sockets (applied before the handshake completes). */
  noDelay?: boolean;
  /** Keepalive on accepted sockets (the engine arms it when the connection is established). */
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
}

/** What the server needs from its stack. */
export interface ServerHost {
  readonly localAddress: string;
  unlisten(server: TcpServer): void;
}

export class TcpServer extends EventEmitter {
  readonly backlog: number;
  listening = true;
  /** Connections in the handshake. */
  private readonly halfOpen = new Set<TcpSocket>();
  private readonly open = new Set<TcpSocket>();

  constructor(
    private readonly host: ServerHost,
    readonly port: number,
    readonly options: TcpServerOptions = {},
  ) {
    super();
    this.backlog = options.backlog ?? 128;
  }

  address(): { address: string; family: 'IPv4'; port: number } {
    return { address: this.host.localAddress, family: 'IPv4', port: this.port };
  }

  /** Connections established through this server and still open. */
  get connections(): number {
    return this.open.size;
  }

  /** Whether another half-open connection fits (called by the stack on a SYN). */
  get acceptsSyn(): boolean {
    return this.listening && this.halfOpen.size < this.backlog;
  }

  /** Track a socket created for a SYN; the stack calls this before the handshake completes. */
  adopt(socket: TcpSocket): void {
    this.halfOpen.add(socket);
    socket.once('close', () => {
      this.halfOpen.delete(socket);
      this.open.delete(socket);
    });
  }

  /** The handshake of `socket` completed. */
  onEstablished(socket: TcpSocket): void {
    this.halfOpen.delete(socket);
    if (!this.listening) {
      socket.destroy();
      return;
    }
    this.open.add(socket);
    this.emit('connection', socket);
  }

  /**
   * Stop listening. Established connections stay; half-open ones are reset (Linux resets what
   * sits in the accept queue of a closed listener).
   */
  close(callback?: (err?: Error) => void): this {
    if (!this.listening) {
      if (callback) queueMicrotask(() => callback(Object.assign(new Error('Server is not running.'), { code: 'ERR_SERVER_NOT_RUNNING' })));
      return this;
    }
    this.listening = false;
    this.host.unlisten(this);
    for (const s of [...this.halfOpen]) s.destroy();
    if (callback) this.once('close', callback);
    queueMicrotask(() => this.emit('close'));
    return this;
  }
}
