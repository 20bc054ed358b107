/**
 * Host-side correlation of the five state operations and SetParameters with their completions, by
 * opId. A completion (or an `Error` naming the request's type and opId) settles the promise; the
 * binding closing rejects everything still pending.
 */
import { IpcClosedError, IpcRemoteError } from './errors.js';
import { MESSAGE_BY_CODE, type Message, type MessageOf } from './messages.js';

export const COMPLETION_OF = {
  InitiateOffload: 'InitiateOffloadComplete',
  UpdateOffload: 'UpdateOffloadComplete',
  QueryOffload: 'QueryOffloadComplete',
  InvalidateOffload: 'InvalidateOffloadComplete',
  TerminateOffload: 'TerminateOffloadComplete',
  SetParameters: 'SetParametersComplete',
} as const;

export type OperationName = keyof typeof COMPLETION_OF;
export type CompletionName = (typeof COMPLETION_OF)[OperationName];
export type CompletionOf<K extends OperationName> = MessageOf<(typeof COMPLETION_OF)[K]>;
/** A request without its opId: the tracker assigns one (or uses the one given). */
export type OperationInput<K extends OperationName> = Omit<MessageOf<K>, 'opId'> & { type: K; opId?: number };

const OPERATION_OF = new Map<string, OperationName>(Object.entries(COMPLETION_OF).map(([op, c]) => [c, op as OperationName]));

interface Pending {
  op: OperationName;
  resolve: (m: Message) => void;
  reject: (e: Error) => void;
}

export class RequestTracker {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(private readonly sendFn: (msg: Message) => boolean) {}

  get outstanding(): number {
    return this.pending.size;
  }

  /** Send an operation and wait for its completion (or the peer's `Error` about it). */
  request<K extends OperationName>(input: OperationInput<K>): Promise<CompletionOf<K>> {
    const opId = input.opId ?? this.allocate();
    if (this.pending.has(opId)) return Promise.reject(new Error(`opId ${opId} is already pending`));
    const msg = { ...input, opId } as unknown as Message;
    return new Promise<CompletionOf<K>>((resolve, reject) => {
      this.pending.set(opId, { op: input.type, resolve: resolve as unknown as (m: Message) => void, reject });
      try {
        if (!this.sendFn(msg)) {
          this.pending.delete(opId);
          reject(new IpcClosedError(`cannot send ${input.type}`));
        }
      } catch (e) {
        this.pending.delete(opId);
        reject(e as Error);
      }
    });
  }

  /** Offer an incoming message; true when it settled a pending request (and is consumed). */
  handle(msg: Message): boolean {
    if (msg.type === 'Error') {
      const op = MESSAGE_BY_CODE.get(msg.refKind)?.name;
      const p = this.pending.get(msg.refId);
      if (p === undefined || p.op !== op) return false;
      this.pending.delete(msg.refId);
      p.reject(new IpcRemoteError(msg.status, msg.problem));
      return true;
    }
    const op = OPERATION_OF.get(msg.type);
    if (op === undefined) return false;
    const opId = (msg as { opId: number }).opId;
    const p = this.pending.get(opId);
    if (p === undefined || p.op !== op) return false;
    this.pending.delete(opId);
    p.resolve(msg);
    return true;
  }

  /** Reject everything pending (the binding closed). */
  failAll(reason: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(new IpcClosedError(reason));
  }

  private allocate(): number {
    do {
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    } while (this.pending.has(this.nextId));
    return this.nextId;
  }
}
