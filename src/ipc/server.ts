/**
 * Target side: listen on a Unix socket, exchange hellos with each host that connects, and hand each
 * binding to the target.
 *
 * The socket file is owner-only (0600) from the moment it has its public name: it is bound inside a
 * fresh 0700 directory next to `path`, chmod-ed, then hard-linked to `path` (which fails rather
 * than replace a file someone else created meanwhile). The process umask is never touched, since
 * it is process-wide and not settable from worker threads.
 */
import { lstat, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { listenOwnerOnly } from './owner-only-socket.js';
import { IpcConnection } from './connection.js';
import type { Capabilities, HelloMessage, HostMessage, TargetMessage } from './messages.js';

export interface IpcBinding {
  connection: IpcConnection<TargetMessage, HostMessage>;
  /** The host's hello. */
  host: HelloMessage;
}

export interface IpcServerOptions {
  software: string;
  capabilities: Capabilities;
  /** A host finished the hello exchange: the binding is the target's from now on. */
  onBinding: (binding: IpcBinding) => void;
  /** A connection failed the hello exchange (it has been answered with Error and closed). */
  onHandshakeFailure?: (error: Error) => void;
  handshakeTimeoutMs?: number;
  maxFrameBytes?: number;
  /** Protocol version to claim (tests only). */
  version?: number;
}


export class IpcServer {
  private readonly connections = new Set<IpcConnection<TargetMessage, HostMessage>>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly inode: number,
  ) {}

  /** Listen at `path` (a stale socket file with no listener is replaced; anything else is refused). */
  static async listen(path: string, options: IpcServerOptions): Promise<IpcServer> {
    const server = createServer();
    // Connections that arrive before the server object exists wait here (none can: the name is not public yet).
    const early: Socket[] = [];
    const hold = (socket: Socket): void => {
      socket.on('error', () => undefined);
      early.push(socket);
    };
    server.on('connection', hold);
    const inode = await listenOwnerOnly(server, path, 'target');
    const ipc = new IpcServer(server, path, inode);
    server.off('connection', hold);
    server.on('connection', (socket: Socket) => ipc.accept(socket, options));
    server.on('error', () => undefined);
    for (const s of early) ipc.accept(s, options);
    return ipc;
  }

  /** Live bindings (and connections still in the hello exchange). */
  get bindingCount(): number {
    return this.connections.size;
  }

  /** Stop listening, close every binding, remove the socket file. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      await Promise.all([...this.connections].map((c) => c.close('target shutting down')));
      await stopped;
      try {
        if ((await lstat(this.path)).ino === this.inode) await unlink(this.path);
      } catch {
        // Already gone.
      }
    })();
    return this.closing;
  }

  private accept(socket: Socket, options: IpcServerOptions): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    const connection = new IpcConnection<TargetMessage, HostMessage>(socket, {
      role: 'target', version: options.version, maxFrameBytes: options.maxFrameBytes,
    });
    this.connections.add(connection);
    connection.onClose(() => this.connections.delete(connection));
    connection.handshake({ software: options.software, capabilities: options.capabilities }, options.handshakeTimeoutMs).then(
      (host) => options.onBinding({ connection, host }),
      (e: Error) => options.onHandshakeFailure?.(e),
    );
  }
}
