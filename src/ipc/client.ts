/**
 * Host side of a binding: connect to the target's Unix socket, exchange hellos, then send typed
 * host messages, receive target messages, and await operation completions by opId.
 */
import { connect } from 'node:net';
import { IpcConnection, type IpcCounters } from './connection.js';
import type { Capabilities, HelloMessage, HostMessage, TargetMessage } from './messages.js';
import { RequestTracker, type CompletionOf, type OperationInput, type OperationName } from './requests.js';

export interface IpcClientOptions {
  /** Our program name and version, sent in the hello. */
  software: string;
  /** Protocol version to claim (tests only). */
  version?: number;
  handshakeTimeoutMs?: number;
  maxFrameBytes?: number;
}

export class IpcClient {
  private handler: ((msg: TargetMessage) => void) | undefined;
  private readonly early: TargetMessage[] = [];
  private readonly tracker: RequestTracker;

  private constructor(
    readonly connection: IpcConnection<HostMessage, TargetMessage>,
    /** The target's hello. */
    readonly target: HelloMessage,
  ) {
    this.tracker = new RequestTracker((m) => connection.send(m as HostMessage));
    connection.onClose((reason) => this.tracker.failAll(reason));
    connection.setHandler((msg) => {
      if (this.tracker.handle(msg)) return;
      if (this.handler === undefined) this.early.push(msg);
      else this.handler(msg);
    });
  }

  /** Connect to the target listening at `path` and complete the hello exchange. */
  static async connect(path: string, options: IpcClientOptions): Promise<IpcClient> {
    const socket = connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const connection = new IpcConnection<HostMessage, TargetMessage>(socket, {
      role: 'host', version: options.version, maxFrameBytes: options.maxFrameBytes,
    });
    try {
      const hello = await connection.handshake({ software: options.software }, options.handshakeTimeoutMs);
      return new IpcClient(connection, hello);
    } catch (e) {
      connection.destroy('handshake failed');
      throw e;
    }
  }

  get capabilities(): Capabilities {
    // A target hello always carries them (the codec refuses one without).
    return this.target.capabilities!;
  }

  get counters(): IpcCounters {
    return this.connection.counters;
  }

  /** Queue a message for the target (batched per event-loop turn). False once closed. */
  send(msg: HostMessage): boolean {
    return this.connection.send(msg);
  }

  /** Receive every target message not consumed by `request` (messages that came earlier first). */
  on(handler: (msg: TargetMessage) => void): void {
    this.handler = handler;
    const early = this.early.splice(0);
    for (const m of early) handler(m);
  }

  onClose(listener: (reason: string) => void): void {
    this.connection.onClose(listener);
  }

  /** Send an operation (opId assigned unless given) and resolve with its completion. */
  request<K extends OperationName>(input: OperationInput<K>): Promise<CompletionOf<K>> {
    return this.tracker.request(input);
  }

  get pendingRequests(): number {
    return this.tracker.outstanding;
  }

  close(): Promise<void> {
    return this.connection.close();
  }
}
