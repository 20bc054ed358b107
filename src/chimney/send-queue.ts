/**
 * The send requests of one offloaded connection, mapped onto the byte stream (spec 3.1, 3.3, 3.6,
 * 6.3). Requests are kept in posting order with their stream offsets; cumulative ACKs complete a
 * prefix of them. At terminate the outstanding ones are completed (UPLOAD_IN_PROGRESS with their
 * acknowledged bytes) or returned as the chain, which starts at SND.UNA.
 *
 * Why a mix cannot interleave: the chain must start at SndUna (R10) and completions must be a
 * prefix of the posting order (R11), so the only completions before the chain are requests
 * acknowledged in full (SUCCESS). The two modes are therefore "complete all" and "chain all
 * unacknowledged", chosen per terminate.
 */
import { Status } from './status.js';

export interface SendCompletion {
  requestId: number;
  status: number;
  bytesTransferred: number;
}

export interface ChainReturn {
  bufferId: number;
  ackedBytes: number;
}

export type TerminateSendMode = 'chain' | 'complete';

interface Entry {
  requestId: number;
  /** Stream offset of the first byte (bytes since the queue was created). */
  start: number;
  length: number;
}

export class SendRequestQueue {
  private entries: Entry[] = [];
  private head = 0;
  private posted = 0;
  private acked = 0;
  private readonly ids = new Set<number>();

  /** Bytes posted and not yet acknowledged. */
  get outstandingBytes(): number {
    return this.posted - this.acked;
  }

  get outstandingRequests(): number {
    return this.entries.length - this.head;
  }

  has(requestId: number): boolean {
    return this.ids.has(requestId);
  }

  /** Append a request (posting order = stream order). The caller rejects duplicate ids first. */
  push(requestId: number, length: number): void {
    this.entries.push({ requestId, start: this.posted, length });
    this.ids.add(requestId);
    this.posted += length;
  }

  /** `bytes` more of the stream were acknowledged: complete every request now acknowledged in full. */
  onAcked(bytes: number): SendCompletion[] {
    this.acked = Math.min(this.posted, this.acked + bytes);
    const out: SendCompletion[] = [];
    while (this.head < this.entries.length) {
      const e = this.entries[this.head];
      if (e.start + e.length > this.acked) break;
      out.push({ requestId: e.requestId, status: Status.SUCCESS, bytesTransferred: e.length });
      this.removeHead();
    }
    return out;
  }

  /** Terminate: dispose of every outstanding request exactly once (R6, R7, R10-R13). */
  terminate(mode: TerminateSendMode): { completions: SendCompletion[]; chain: ChainReturn[] } {
    const completions: SendCompletion[] = [];
    const chain: ChainReturn[] = [];
    while (this.head < this.entries.length) {
      const e = this.entries[this.head];
      const ackedInside = Math.max(0, Math.min(e.length, this.acked - e.start));
      if (mode === 'complete') completions.push({ requestId: e.requestId, status: Status.UPLOAD_IN_PROGRESS, bytesTransferred: ackedInside });
      else chain.push({ bufferId: e.requestId, ackedBytes: ackedInside });
      this.removeHead();
    }
    return { completions, chain };
  }

  /** RST received or abortive disconnect: every outstanding request fails (R73). */
  abort(): SendCompletion[] {
    const out: SendCompletion[] = [];
    while (this.head < this.entries.length) {
      const e = this.entries[this.head];
      out.push({ requestId: e.requestId, status: Status.REQUEST_ABORTED, bytesTransferred: Math.max(0, Math.min(e.length, this.acked - e.start)) });
      this.removeHead();
    }
    return out;
  }

  private removeHead(): void {
    this.ids.delete(this.entries[this.head].requestId);
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
