/**
 * One host binding over a stream socket: hello exchange, batched writes, incremental reads, in-order
 * delivery, and the protocol's error behaviour (docs/ipc-protocol.md, "Errors").
 *
 * Writes: `send` encodes at once (so an invalid message throws at the caller) into the current
 * turn's buffer; one `socket.write` per event-loop turn carries everything queued in that turn.
 * While the socket asks us to wait (`write` returned false) frames keep accumulating and go out in
 * one write at 'drain': nothing is dropped.
 *
 * Reads: frames are decoded in arrival order and queued; the handler gets them in that order. Until
 * a handler is set (e.g. between the hello exchange and the owner taking the binding) they wait;
 * a long queue pauses the socket.
 */
import type { Socket } from 'node:net';
import { Status } from '../chimney/status.js';
import { decodeBody, writeFrame } from './codec.js';
import { IpcClosedError, IpcHandshakeError } from './errors.js';
import { FrameParser, type FrameFault } from './framing.js';
import { MAX_FRAME_BYTES, MAX_PROBLEM_BYTES } from './limits.js';
import {
  MESSAGE_BY_CODE, MESSAGES, PROTOCOL_VERSION, receivableBy, type HelloMessage, type Message, type MessageOf, type Role,
} from './messages.js';
import { Writer } from './schema.js';

export interface IpcCounters {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** `socket.write` calls (batching: far fewer than messagesOut under load). */
  writes: number;
  /** Incoming frames refused (undecodable, invalid, wrong direction, out of order). */
  framesRejected: number;
  /** `Error` messages we sent / received. */
  errorsSent: number;
  errorsReceived: number;
  /** Messages `send` refused because the connection was closing or closed. */
  droppedAfterClose: number;
}

export interface IpcConnectionOptions {
  /** Our side; the peer must be the other one. */
  role: Role;
  /** Protocol version we speak (tests override it to provoke a mismatch). */
  version?: number;
  maxFrameBytes?: number;
  /** Queued incoming messages above which the socket is paused. */
  inboxHighWater?: number;
}

export type HelloFields = Omit<HelloMessage, 'type' | 'version' | 'role'>;

type State = 'handshake' | 'open' | 'closing' | 'closed';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const END_GRACE_MS = 2000;
const PROBLEM_CHARS = Math.floor(MAX_PROBLEM_BYTES / 4);

export class IpcConnection<Out extends Message = Message, In extends Message = Message> {
  readonly counters: IpcCounters = {
    messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, writes: 0, framesRejected: 0, errorsSent: 0, errorsReceived: 0, droppedAfterClose: 0,
  };
  readonly role: Role;
  readonly version: number;
  private readonly maxFrameBytes: number;
  private readonly highWater: number;
  private readonly parser: FrameParser;
  private state: State = 'handshake';
  private out = new Writer(4096);
  private flushScheduled = false;
  private blocked = false;
  private inbox: In[] = [];
  private inboxHead = 0;
  private handler: ((msg: In) => void) | undefined;
  private userPaused = false;
  private socketPaused = false;
  private readonly peerHello = deferred<HelloMessage>();
  private readonly closedD = deferred<void>();
  private closeListeners: Array<(reason: string) => void> = [];
  private closeReason = 'closed';
  private endTimer: NodeJS.Timeout | undefined;

  constructor(readonly socket: Socket, options: IpcConnectionOptions) {
    this.role = options.role;
    this.version = options.version ?? PROTOCOL_VERSION;
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.highWater = options.inboxHighWater ?? 4096;
    this.parser = new FrameParser(this.maxFrameBytes);
    // Nobody may be left waiting on a handshake that is never asked for.
    this.peerHello.promise.catch(() => undefined);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e: Error) => {
      if (this.closeReason === 'closed') this.closeReason = e.message;
    });
    socket.on('close', () => this.handleClose());
  }

  /** Resolves once the socket has closed. */
  get closed(): Promise<void> {
    return this.closedD.promise;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Bytes queued and not yet handed to the kernel (ours plus the socket's). */
  get bufferedBytes(): number {
    return this.out.pos + this.socket.writableLength;
  }

  /**
   * Send our hello and wait for the peer's. On a version or role mismatch, or an `Error` from the
   * peer, or no hello within `timeoutMs`, the binding is closed and the promise rejects.
   */
  async handshake(fields: HelloFields, timeoutMs = 5000): Promise<HelloMessage> {
    this.send({ type: 'Hello', version: this.version, role: this.role, ...fields } as Out);
    const timer = setTimeout(() => {
      this.fail(MESSAGES.Hello.code, 0, Status.IPC_INVALID_IN_STATE, `no Hello within ${timeoutMs} ms`, true);
      this.peerHello.reject(new IpcHandshakeError(`no Hello from the peer within ${timeoutMs} ms`));
    }, timeoutMs);
    try {
      return await this.peerHello.promise;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Queue a message; it goes out with everything else sent in this event-loop turn. Throws
   * `IpcSchemaError` if the message is invalid. Returns false (and drops it) once closing/closed.
   */
  send(msg: Out): boolean {
    if (this.state === 'closing' || this.state === 'closed') {
      this.counters.droppedAfterClose++;
      return false;
    }
    writeFrame(this.out, msg, this.maxFrameBytes);
    this.counters.messagesOut++;
    if (msg.type === 'Error') this.counters.errorsSent++;
    this.scheduleFlush();
    return true;
  }

  /** Deliver incoming messages (in order) to `handler`; messages that arrived meanwhile come first. */
  setHandler(handler: ((msg: In) => void) | undefined): void {
    this.handler = handler;
    if (handler !== undefined) queueMicrotask(() => this.deliver());
  }

  /** Stop delivering (and reading) until `resume`. */
  pause(): void {
    this.userPaused = true;
    this.updateSocketFlow();
  }

  resume(): void {
    this.userPaused = false;
    this.updateSocketFlow();
    queueMicrotask(() => this.deliver());
  }

  onClose(listener: (reason: string) => void): void {
    if (this.state === 'closed') queueMicrotask(() => listener(this.closeReason));
    else this.closeListeners.push(listener);
  }

  /** Flush what is queued, then end the stream; resolves when the socket has closed. */
  close(reason = 'closed locally'): Promise<void> {
    if (this.state !== 'closing' && this.state !== 'closed') {
      this.closeReason = reason;
      this.state = 'closing';
      this.flush();
      this.socket.end();
      // A peer that never closes its side must not keep the binding alive forever.
      this.endTimer = setTimeout(() => this.socket.destroy(), END_GRACE_MS);
      this.endTimer.unref();
    }
    return this.closedD.promise;
  }

  /** Close at once, dropping anything not yet written. */
  destroy(reason = 'destroyed locally'): void {
    if (this.state !== 'closed') this.closeReason = reason;
    this.socket.destroy();
  }

  // ----------------------------------------------------------------------------------- writing

  private scheduleFlush(): void {
    if (this.flushScheduled || this.blocked) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.blocked || this.out.pos === 0 || this.socket.destroyed) return;
    const data = this.out.finish();
    this.out = new Writer(4096);
    this.counters.writes++;
    this.counters.bytesOut += data.length;
    if (!this.socket.write(data)) {
      this.blocked = true;
      this.socket.once('drain', () => {
        this.blocked = false;
        this.flush();
      });
    }
  }

  // ----------------------------------------------------------------------------------- reading

  private onData(chunk: Buffer): void {
    if (this.state === 'closing' || this.state === 'closed' || this.parser.fault !== undefined) return;
    this.counters.bytesIn += chunk.length;
    const fault = this.parser.push(chunk, (type, body) => this.onFrame(type, body));
    if (fault !== undefined) this.onFault(fault);
    this.deliver();
  }

  private onFault(fault: FrameFault): void {
    this.counters.framesRejected++;
    const status = fault.kind === 'oversize' ? Status.IPC_LIMIT : Status.IPC_MALFORMED;
    this.fail(fault.type, 0, status, `${fault.problem}; the stream cannot be resynchronised, closing`, true);
  }

  private onFrame(type: number, body: Uint8Array): void {
    if (this.state !== 'handshake' && this.state !== 'open') return;
    const result = decodeBody(type, body);
    if (!result.ok) {
      this.counters.framesRejected++;
      const e = result.error;
      // Before the hello exchange nothing can be trusted: close instead of resynchronising.
      this.fail(type, e.refId, e.status, e.message, this.state === 'handshake');
      return;
    }
    const msg = result.message;
    this.counters.messagesIn++;
    if (msg.type === 'Error') this.counters.errorsReceived++;
    if (this.state === 'handshake') return this.onFirstMessage(msg);
    const entry = MESSAGE_BY_CODE.get(type)!;
    if (msg.type === 'Hello') {
      this.counters.framesRejected++;
      this.fail(type, 0, Status.IPC_INVALID_IN_STATE, 'Hello after the handshake', false);
      return;
    }
    if (!receivableBy(entry, this.role)) {
      this.counters.framesRejected++;
      this.fail(type, firstId(body), Status.IPC_MALFORMED, `${entry.name} is a ${entry.dir} message; this side is the ${this.role}`, false);
      return;
    }
    this.inbox.push(msg as In);
    if (this.inbox.length - this.inboxHead > this.highWater) this.updateSocketFlow();
  }

  private onFirstMessage(msg: Message): void {
    if (msg.type === 'Error') {
      this.peerHello.reject(new IpcHandshakeError(`peer refused: ${msg.problem}`));
      this.close('peer refused the handshake');
      return;
    }
    if (msg.type !== 'Hello') {
      this.counters.framesRejected++;
      const problem = `expected Hello as the first message, got ${msg.type}`;
      this.fail(MESSAGES[msg.type].code, 0, Status.IPC_INVALID_IN_STATE, problem, true);
      this.peerHello.reject(new IpcHandshakeError(problem));
      return;
    }
    const me = `this ${this.role}`;
    let problem: string | undefined;
    if (msg.version !== this.version) problem = `protocol version mismatch: the peer speaks version ${msg.version}, ${me} speaks version ${this.version}`;
    else if (msg.role === this.role) problem = `both sides claim the role ${this.role}`;
    if (problem !== undefined) {
      this.fail(MESSAGES.Hello.code, 0, Status.IPC_MALFORMED, problem, true);
      this.peerHello.reject(new IpcHandshakeError(problem));
      return;
    }
    this.state = 'open';
    this.peerHello.resolve(msg);
  }

  /** Answer with an `Error`; when fatal, close the binding after it is written. */
  private fail(refKind: number, refId: number, status: number, problem: string, fatal: boolean): void {
    const text = problem.length > PROBLEM_CHARS ? `${problem.slice(0, PROBLEM_CHARS - 3)}...` : problem;
    this.send({ type: 'Error', refKind, refId, status, problem: text } satisfies MessageOf<'Error'> as Out);
    if (fatal) void this.close(text);
  }

  private deliver(): void {
    while (this.handler !== undefined && !this.userPaused && this.inboxHead < this.inbox.length) {
      const msg = this.inbox[this.inboxHead]!;
      this.inbox[this.inboxHead++] = undefined as unknown as In;
      if (this.inboxHead === this.inbox.length) {
        this.inbox = [];
        this.inboxHead = 0;
      }
      this.handler(msg);
    }
    this.updateSocketFlow();
  }

  private updateSocketFlow(): void {
    const backlog = this.inbox.length - this.inboxHead;
    const shouldPause = this.userPaused || backlog > this.highWater;
    if (shouldPause && !this.socketPaused) {
      this.socketPaused = true;
      this.socket.pause();
    } else if (!shouldPause && this.socketPaused && backlog <= this.highWater / 2) {
      this.socketPaused = false;
      this.socket.resume();
    }
  }

  private handleClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.endTimer !== undefined) clearTimeout(this.endTimer);
    this.peerHello.reject(new IpcClosedError(this.closeReason));
    const listeners = this.closeListeners;
    this.closeListeners = [];
    for (const l of listeners) l(this.closeReason);
    this.closedD.resolve();
  }
}

function firstId(body: Uint8Array): number {
  return body.length >= 4 ? (body[0]! | (body[1]! << 8) | (body[2]! << 16) | (body[3]! << 24)) >>> 0 : 0;
}
