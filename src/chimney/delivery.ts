/**
 * The chimney receive-delivery algorithm for one offloaded connection (spec 4.5, flowcharts F1-F3):
 * in-order received bytes go into the host's posted receive requests (FILL), or, when none are
 * posted, are offered in an indication that the host accepts, partly accepts or refuses
 * (INDICATE). Sans-I/O: events come in as method calls with `now` (ms), results leave through
 * `take()`, and the caller arms one timer at `pushDeadline`.
 *
 * Undelivered bytes live in two places, always in this order: `held` (bytes already taken from the
 * TCP engine: the host's BufferedData, the refused part of an indication) and then the source (the
 * engine's receive buffer). Leaving bytes in the source until they are delivered keeps the
 * advertised window closed for them (spec 4.6). The flowcharts' "held" queue is therefore
 * `held + source` whenever no run of the algorithm is in progress.
 */
import type { BufferLedger } from './buffer-ledger.js';
import { Status, statusName } from './status.js';

export interface DeliverySource {
  /** In-order bytes waiting. */
  readonly available: number;
  /** Remove and return up to `max` bytes (in order). */
  take(max: number): Uint8Array;
  /** PSH bit of the last in-order segment that added bytes. */
  readonly lastPush: boolean;
}

export interface ReceivePost {
  requestId: number;
  /** Size of the host's buffer, including `prefilled`. */
  capacity: number;
  /** TcpReceiveNoPush: complete only when full (spec 4.1). */
  noPush: boolean;
  /** Bytes the host already put into the buffer (TcpReceiveBytesTransferred); the target fills after them. */
  prefilled?: Uint8Array;
}

export interface ReceiveCompletionEntry {
  requestId: number;
  status: number;
  /** The bytes the target placed into the request (never the host's prefilled bytes). */
  bytes: Uint8Array;
}

export type DeliveryOutput =
  | { type: 'complete'; entries: ReceiveCompletionEntry[] } // one TcpReceiveComplete
  | { type: 'indicate'; indicationId: number; bufferId: number; bytes: Uint8Array } // one TcpReceiveIndicate (awaits a reply)
  | { type: 'disconnect' }; // TcpIndicateDisconnect (R110)

export interface ReceiveDeliveryOptions {
  source: DeliverySource;
  ledger: BufferLedger;
  /** Ledger owner of this connection's lent buffers (its context id). */
  owner: number;
  /** RcvIndicationSize (spec 4.4): bytes per indication; 0 = as much as is available. */
  rcvIndicationSize: number;
  /** TcpPushTicks converted to ms. */
  pushTimeoutMs: number;
}

interface PostedRequest {
  readonly requestId: number;
  /** Capacity left after the host's prefilled bytes. */
  readonly room: number;
  readonly prefilled: number;
  readonly noPush: boolean;
  readonly parts: Uint8Array[];
  placed: number;
}

interface Indication {
  readonly id: number;
  readonly bufferId: number;
  readonly bytes: Uint8Array;
  /** PSH of its last byte, if known (used when the refused rest becomes the tail of `held`). */
  readonly lastPush: boolean;
}

const EMPTY = new Uint8Array(0);

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 0) return EMPTY;
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** FIFO of byte chunks that also takes chunks back at its front (a refused indication's bytes). */
class HeldBytes {
  private chunks: Uint8Array[] = [];
  private total = 0;

  get length(): number {
    return this.total;
  }

  append(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.total += b.length;
  }

  prepend(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.unshift(b);
    this.total += b.length;
  }

  /** Remove up to `max` bytes from the front, as views of the held chunks. */
  take(max: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let left = Math.min(max, this.total);
    while (left > 0) {
      const c = this.chunks[0];
      if (c.length <= left) {
        out.push(c);
        this.chunks.shift();
        left -= c.length;
        this.total -= c.length;
      } else {
        out.push(c.subarray(0, left));
        this.chunks[0] = c.subarray(left);
        this.total -= left;
        left = 0;
      }
    }
    return out;
  }
}

export class ReceiveDelivery {
  private readonly source: DeliverySource;
  private readonly ledger: BufferLedger;
  private readonly owner: number;
  private readonly rcvIndicationSize: number;
  private readonly pushTimeoutMs: number;

  private readonly held = new HeldBytes();
  /** PSH of the last byte of `held` ([I] 4.5.4: BufferedData counts as no PSH). */
  private heldTailPush = false;
  private readonly posted: PostedRequest[] = [];
  private readonly liveRequestIds = new Set<number>();
  private indication: Indication | undefined;
  private nextIndicationId = 1;
  /** A refusal left data behind: no indication until the host posts (R101). */
  private refusedHolding = false;
  private pushAt: number | undefined;
  /** The push timer fired during an indication; replayed after the reply (4.5.6 [I]). */
  private timerDeferred = false;
  private finReceived = false;
  private disconnected = false;
  private aborted = false;
  /** Abort arrived during an indication: the posted requests complete after the reply (R94). */
  private abortDeferred = false;
  private terminated = false;
  /** A terminate waits (for the reply to the indication out): no new indication. */
  private terminating = false;
  /** Requests refused at posting (malformed, after disconnect/abort), waiting for a free moment. */
  private readonly rejected: ReceiveCompletionEntry[] = [];
  private outputs: DeliveryOutput[] = [];

  constructor(opts: ReceiveDeliveryOptions) {
    this.source = opts.source;
    this.ledger = opts.ledger;
    this.owner = opts.owner;
    this.rcvIndicationSize = Math.max(0, Math.floor(opts.rcvIndicationSize));
    this.pushTimeoutMs = opts.pushTimeoutMs;
  }

  /** When the caller must call `onTimer`; undefined when no push timer is due. */
  get pushDeadline(): number | undefined {
    return this.timerDeferred ? undefined : this.pushAt;
  }

  /** An indication awaits its reply (the synchronous receive handler of NDIS, spec 8.1). */
  get busy(): boolean {
    return this.indication !== undefined;
  }

  /** Bytes taken from the source and not yet delivered: held, in an unanswered indication, or in incomplete requests. */
  get undeliveredBytes(): number {
    let n = this.held.length + (this.indication?.bytes.length ?? 0);
    for (const r of this.posted) n += r.placed;
    return n;
  }

  /** TcpIndicateDisconnect has been emitted. */
  get disconnectIndicated(): boolean {
    return this.disconnected;
  }

  /** Drain the outputs produced so far, in the order they must reach the host. */
  take(): DeliveryOutput[] {
    const out = this.outputs;
    this.outputs = [];
    return out;
  }

  /** Initiate: the host's BufferedData becomes held data, delivered only into posted requests first (R48). */
  seedHeld(bytes: Uint8Array): void {
    if (this.terminated || bytes.length === 0) return;
    this.held.append(bytes.slice()); // the initiate message's buffer is not ours to keep (R47)
    this.heldTailPush = false;
  }

  /** E1: new in-order bytes are in the source. */
  onData(now: number): void {
    if (this.terminated || this.aborted) return;
    // E1.1: during an indication the bytes simply wait in the source; the run that resumes at the
    // reply treats them as "more receive data" (B.3/B.4), which is where 4.5.7 would replay them.
    if (this.busy) return;
    this.e1(now);
    this.settle(now);
  }

  /** E2: the host posts receive requests. */
  post(reqs: readonly ReceivePost[], now: number): void {
    let accepted = 0;
    for (const r of reqs) {
      const refusal = this.vet(r);
      if (refusal !== undefined) {
        this.rejected.push({ requestId: r.requestId, status: refusal, bytes: EMPTY });
        continue;
      }
      const prefilled = r.prefilled?.length ?? 0;
      this.posted.push({ requestId: r.requestId, room: r.capacity - prefilled, prefilled, noPush: r.noPush, parts: [], placed: 0 });
      this.liveRequestIds.add(r.requestId);
      accepted++;
      // 4.1: a push-mode request that arrives holding host data starts (restarts) the push timer.
      if (!r.noPush && prefilled > 0) this.pushAt = now + this.pushTimeoutMs;
    }
    if (this.busy) return; // E2.1: queued in `posted`; B.3/B.4 fill them when the reply comes
    this.flushRejected();
    // E2.3 / E2.2: fill from held data, if any.
    if (accepted > 0 && this.pendingBytes() > 0) this.fill(now);
    this.settle(now);
  }

  /** E3: call when `now >= pushDeadline`. Early or stale calls are ignored. */
  onTimer(now: number): void {
    if (this.terminated || this.aborted) return;
    if (this.pushAt === undefined || now < this.pushAt) return;
    if (this.busy) {
      this.timerDeferred = true;
      return;
    }
    this.e3(now);
    this.settle(now);
  }

  /**
   * The host's answer to an indication. Returns the problem for a bad reply (and changes nothing),
   * undefined when the reply was applied.
   */
  onIndicateReply(indicationId: number, status: number, bytesConsumed: number, now: number): string | undefined {
    const ind = this.indication;
    if (!ind || ind.id !== indicationId) {
      return ind
        ? `unknown indication id ${indicationId} (awaiting a reply to ${ind.id})`
        : `unknown indication id ${indicationId} (no indication awaits a reply)`;
    }
    const len = ind.bytes.length;
    if (!Number.isInteger(bytesConsumed) || bytesConsumed < 0) return `bytesConsumed ${bytesConsumed} is not a byte count`;
    if (bytesConsumed > len) return `bytesConsumed ${bytesConsumed} exceeds the ${len} bytes indicated by ${indicationId}`;
    if (status === Status.SUCCESS) {
      if (bytesConsumed !== len) return `SUCCESS means all ${len} indicated bytes were consumed, but bytesConsumed is ${bytesConsumed}`;
    } else if (status === Status.OFFLOAD_DATA_NOT_ACCEPTED) {
      if (bytesConsumed !== 0) return `OFFLOAD_DATA_NOT_ACCEPTED with bytesConsumed ${bytesConsumed}: use OFFLOAD_DATA_PARTIALLY_ACCEPTED`;
    } else if (status === Status.OFFLOAD_DATA_PARTIALLY_ACCEPTED) {
      if (bytesConsumed === 0) return 'OFFLOAD_DATA_PARTIALLY_ACCEPTED with bytesConsumed 0: use OFFLOAD_DATA_NOT_ACCEPTED';
    } else {
      return `status ${statusName(status)} is not SUCCESS, OFFLOAD_DATA_NOT_ACCEPTED or OFFLOAD_DATA_PARTIALLY_ACCEPTED`;
    }

    this.indication = undefined;
    if (status === Status.SUCCESS) {
      // B.3: the host keeps the buffer until receive-return (R100); the ledger already holds it.
      if (!this.aborted && this.pendingBytes() > 0) {
        if (this.posted.length > 0) this.fill(now);
        else this.indicate();
      }
    } else {
      // B.4 and the [I] partial rule: the consumed prefix is delivered, the rest is ours again.
      this.ledger.reclaim(ind.bufferId);
      const rest = ind.bytes.subarray(bytesConsumed);
      if (rest.length > 0) {
        if (this.held.length === 0) this.heldTailPush = ind.lastPush;
        this.held.prepend(rest);
      }
      if (!this.aborted) {
        if (this.posted.length > 0) this.fill(now);
        else this.refusedHolding = this.pendingBytes() > 0;
      }
    }
    this.settle(now);
    return undefined;
  }

  /** FIN received: TcpIndicateDisconnect once every byte before it is consumed (R110). */
  onPeerFin(now: number): void {
    if (this.terminated || this.aborted || this.finReceived) return;
    this.finReceived = true;
    if (this.busy) return; // checked again after the reply
    this.e1(now); // the FIN segment may have brought the last bytes
    this.settle(now);
  }

  /**
   * Terminate (spec 6.2 steps 2-5, 6.4, 6.6): stop the push timer; deliver held + source data into
   * posted requests (FILL, no new indications); complete every posted request (with data: SUCCESS
   * and its bytes; empty: UPLOAD_IN_PROGRESS, 0 bytes); return every remaining undelivered byte, in
   * order, for BufferedData (the caller lends it through the ledger, R17). Drain `take()` first:
   * outputs queued earlier precede these. Throws if called while `busy` (the caller must wait for
   * the reply, R22): that is a caller bug, not a host or peer input.
   */
  terminate(_now: number): { completions: ReceiveCompletionEntry[]; remaining: Uint8Array } {
    if (this.busy) throw new Error('ReceiveDelivery.terminate while an indication awaits its reply (R22)');
    if (this.terminated) return { completions: [], remaining: EMPTY };
    this.pushAt = undefined;
    this.timerDeferred = false;
    const completions: ReceiveCompletionEntry[] = [...this.rejected];
    this.rejected.length = 0;
    for (const r of this.posted) {
      const want = r.room - r.placed;
      if (want > 0 && this.pendingBytes() > 0) this.place(r, want);
    }
    for (const r of this.posted.splice(0)) {
      completions.push({ requestId: r.requestId, status: r.placed > 0 ? Status.SUCCESS : Status.UPLOAD_IN_PROGRESS, bytes: concat(r.parts) });
    }
    this.liveRequestIds.clear();
    const remaining = concat(this.takeData(this.pendingBytes()).parts);
    this.terminated = true;
    return { completions, remaining };
  }

  /**
   * Acceptable RST / abortive disconnect: complete every posted request REQUEST_ABORTED with the
   * bytes it holds (R111). During an indication these completions come out of `take()` right after
   * the reply instead (R94), and this returns []. Undelivered bytes stay for `terminate` (R15).
   */
  abort(): ReceiveCompletionEntry[] {
    if (this.terminated || this.aborted) return [];
    this.aborted = true;
    this.pushAt = undefined;
    this.timerDeferred = false;
    if (this.busy) {
      this.abortDeferred = true;
      return [];
    }
    return this.drainPosted(Status.REQUEST_ABORTED);
  }

  // --- the algorithm ---------------------------------------------------------------------------

  /** E1.2-E1.4. */
  private e1(now: number): void {
    if (this.posted.length > 0) this.fill(now);
    else if (this.held.length > 0 || this.refusedHolding) return; // E1.3: append to held, no indication
    else this.indicate();
  }

  /** E3.1-E3.3. Also the replay of a deferred expiry, which the run may have made stale. */
  private e3(now: number): void {
    if (this.pushAt === undefined || now < this.pushAt) return;
    this.pushAt = undefined;
    const head = this.posted[0];
    if (!head || !this.partial(head) || head.noPush) return;
    this.posted.shift();
    this.liveRequestIds.delete(head.requestId);
    this.outputs.push({ type: 'complete', entries: [this.entry(head, Status.SUCCESS)] });
  }

  /** FILL, A.1-A.6. */
  private fill(now: number): void {
    if (this.pendingBytes() === 0) return;
    const done: ReceiveCompletionEntry[] = [];
    let intoHead = 0;
    let lastPush = false;
    while (this.posted.length > 0) {
      const r = this.posted[0];
      const want = r.room - r.placed;
      if (want > 0) {
        if (this.pendingBytes() === 0) break;
        const got = this.place(r, want);
        lastPush = got.push;
        if (r.placed < r.room) {
          intoHead = got.bytes;
          break;
        }
      }
      // A.2: completely filled (a zero-byte request counts as filled)
      this.posted.shift();
      this.liveRequestIds.delete(r.requestId);
      done.push(this.entry(r, Status.SUCCESS));
    }
    if (done.length > 0) this.pushAt = undefined; // A.3
    if (this.pendingBytes() > 0) {
      // A.4: every posted request is full and completed; the rest is indicated.
      this.emitCompletion(done);
      this.indicate();
      return;
    }
    const head = this.posted[0];
    if (head && this.partial(head) && !head.noPush) {
      // A.6 (a nonpush head just waits to be filled)
      if (intoHead > 0 && lastPush) {
        this.posted.shift();
        this.liveRequestIds.delete(head.requestId);
        done.push(this.entry(head, Status.SUCCESS));
        this.pushAt = undefined;
      } else if (intoHead > 0 || this.pushAt === undefined) {
        this.pushAt = now + this.pushTimeoutMs; // start, or restart on new data (R93)
      }
    }
    this.emitCompletion(done);
  }

  /**
   * A terminate started (spec 6.2 step 1): a reply still completes the indication that is out, but
   * no new one starts. What is left goes back as BufferedData with the terminate's completion;
   * another indication would only hold the terminate, and the connection's ACKs, for one more
   * round trip to the host (docs/spec-decisions.md).
   */
  beginTerminate(): void {
    this.terminating = true;
  }

  /** INDICATE, B.1-B.2; B.3/B.4 run in `onIndicateReply`. */
  private indicate(): void {
    const avail = this.pendingBytes();
    if (this.busy || avail === 0 || this.terminating) return;
    const n = this.rcvIndicationSize > 0 ? Math.min(avail, this.rcvIndicationSize) : avail;
    const got = this.takeData(n);
    const bytes = concat(got.parts);
    // Lent from the moment it leaves: it counts against the budget while the host holds it, and
    // is reclaimed if the reply refuses it.
    const bufferId = this.ledger.lend(bytes, this.owner);
    const id = this.nextIndicationId;
    this.nextIndicationId = id === 0xffffffff ? 1 : id + 1;
    this.indication = { id, bufferId, bytes, lastPush: got.push };
    this.refusedHolding = false;
    this.outputs.push({ type: 'indicate', indicationId: id, bufferId, bytes });
  }

  /** End of an event: replay what waited for the indication, then check the FIN rule. */
  private settle(now: number): void {
    if (this.busy) return;
    if (this.abortDeferred) {
      this.abortDeferred = false;
      this.emitCompletion(this.drainPosted(Status.REQUEST_ABORTED));
    }
    this.flushRejected();
    if (this.timerDeferred) {
      this.timerDeferred = false;
      this.e3(now);
    }
    this.checkFin();
  }

  private checkFin(): void {
    if (!this.finReceived || this.disconnected || this.aborted || this.terminated || this.busy) return;
    if (this.pendingBytes() > 0) return;
    const head = this.posted[0];
    if (head && this.partial(head)) {
      // [I] FIN implies PUSH (RFC 9293 3.10.7.4), for nonpush requests too: no byte can ever fill
      // them, and R110 needs every byte consumed before the disconnect indication.
      this.posted.shift();
      this.liveRequestIds.delete(head.requestId);
      this.pushAt = undefined;
      this.outputs.push({ type: 'complete', entries: [this.entry(head, Status.SUCCESS)] });
    }
    this.disconnected = true;
    this.outputs.push({ type: 'disconnect' });
  }

  // --- helpers ---------------------------------------------------------------------------------

  /** Status for a request refused at posting, or undefined if it may be queued. */
  private vet(r: ReceivePost): number | undefined {
    if (this.terminated) return Status.UPLOAD_IN_PROGRESS;
    const prefilled = r.prefilled?.length ?? 0;
    if (!Number.isInteger(r.requestId) || r.requestId < 0 || r.requestId > 0xffffffff) return Status.IPC_MALFORMED;
    if (!Number.isInteger(r.capacity) || r.capacity < 0 || prefilled > r.capacity) return Status.IPC_MALFORMED;
    if (this.liveRequestIds.has(r.requestId)) return Status.IPC_DUPLICATE_ID;
    if (this.aborted) return Status.REQUEST_ABORTED;
    if (this.disconnected) return Status.INVALID_STATE; // R106
    return undefined;
  }

  private flushRejected(): void {
    if (this.rejected.length === 0) return;
    this.outputs.push({ type: 'complete', entries: this.rejected.splice(0) });
  }

  private emitCompletion(entries: ReceiveCompletionEntry[]): void {
    if (entries.length > 0) this.outputs.push({ type: 'complete', entries });
  }

  private drainPosted(status: number): ReceiveCompletionEntry[] {
    const out = this.posted.splice(0).map((r) => this.entry(r, status));
    this.liveRequestIds.clear();
    return out;
  }

  private entry(r: PostedRequest, status: number): ReceiveCompletionEntry {
    return { requestId: r.requestId, status, bytes: concat(r.parts) };
  }

  private partial(r: PostedRequest): boolean {
    return r.prefilled + r.placed > 0 && r.placed < r.room;
  }

  /** Undelivered bytes not in flight: held, then the source. */
  private pendingBytes(): number {
    return this.held.length + this.source.available;
  }

  /** Place up to `want` pending bytes into `r`. */
  private place(r: PostedRequest, want: number): { bytes: number; push: boolean } {
    const got = this.takeData(Math.min(want, this.pendingBytes()));
    let n = 0;
    for (const p of got.parts) {
      r.parts.push(p);
      n += p.length;
    }
    r.placed += n;
    return { bytes: n, push: got.push };
  }

  /**
   * Take `n` bytes, held first (R98, R48), and the PSH of the last one where known: the source's
   * last segment when the take emptied the source, the held tail when it emptied `held`.
   */
  private takeData(n: number): { parts: Uint8Array[]; push: boolean } {
    const parts = this.held.take(n);
    let got = 0;
    for (const p of parts) got += p.length;
    let push = this.held.length === 0 ? this.heldTailPush : false;
    if (got < n) {
      const s = this.source.take(n - got);
      if (s.length > 0) {
        parts.push(s);
        push = this.source.available === 0 ? this.source.lastPush : false;
      }
    }
    if (this.held.length === 0) this.heldTailPush = false;
    return { parts, push };
  }
}
