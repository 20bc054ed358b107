/**
 * Target-owned receive buffers lent to the host (spec 4.3, 6.4, 8.1): bytes of an indication the
 * host accepted, and `BufferedData` handed up at terminate. Each lent buffer has an id the host
 * quotes in `TcpReceiveReturn`; every id comes back exactly once (R105, R17). The ledger also keeps
 * the memory budget: `canLend` tells the caller when to refuse *new* work (an initiate, a post)
 * with a resource status, because old work - data already acknowledged to the peer - must never
 * be dropped, so `lend` itself never refuses.
 */

export interface BufferLedgerOptions {
  /** Budget for bytes lent at once, across all owners. */
  maxLentBytes: number;
  /** First id handed out (tests use it to reach the 2^32 wrap). Default 1. */
  firstId?: number;
}

export type ReturnResult = { ok: true } | { ok: false; problem: string };

interface Loan {
  readonly bytes: Uint8Array;
  readonly owner: number;
}

const MAX_ID = 0xffffffff;
/** How many retired ids are remembered for precise error messages. */
const RETIRED_MEMORY = 4096;

type Retirement = 'returned' | 'reclaimed';

export class BufferLedger {
  readonly maxLentBytes: number;
  private readonly loans = new Map<number, Loan>();
  private readonly retired = new Map<number, Retirement>();
  private nextId: number;
  private readonly firstId: number;
  /** True once ids have wrapped past 2^32-1: "issued before" can no longer be told from the id. */
  private wrapped = false;
  private bytesOut = 0;

  constructor(opts: BufferLedgerOptions) {
    if (!(opts.maxLentBytes >= 0)) throw new RangeError(`maxLentBytes must be >= 0, got ${opts.maxLentBytes}`);
    this.maxLentBytes = opts.maxLentBytes;
    const first = opts.firstId ?? 1;
    if (!Number.isInteger(first) || first < 1 || first > MAX_ID) throw new RangeError(`firstId must be in 1..2^32-1, got ${first}`);
    this.firstId = first;
    this.nextId = first;
  }

  get lentBytes(): number {
    return this.bytesOut;
  }

  get lentCount(): number {
    return this.loans.size;
  }

  /** Ids lent by `owner` (a connection context), oldest first. */
  lentBy(owner: number): number[] {
    const ids: number[] = [];
    for (const [id, loan] of this.loans) if (loan.owner === owner) ids.push(id);
    return ids;
  }

  /** Whether lending `n` more bytes stays within the budget. */
  canLend(n: number): boolean {
    return this.bytesOut + n <= this.maxLentBytes;
  }

  /** Whether `id` is currently lent. */
  isLent(id: number): boolean {
    return this.loans.has(id);
  }

  /**
   * Record `bytes` as lent to the host and return its id. The ledger keeps the reference (the
   * buffer stays reserved until returned), so pass bytes nobody will modify. Never refuses: check
   * `canLend` before accepting new work instead.
   */
  lend(bytes: Uint8Array, owner: number): number {
    const id = this.allocateId();
    this.retired.delete(id);
    this.loans.set(id, { bytes, owner });
    this.bytesOut += bytes.length;
    return id;
  }

  /**
   * The host returns buffers (`TcpReceiveReturn`). All-or-nothing: if any id is unknown, not lent
   * or repeated in the list, nothing is returned and the problem names every bad id.
   */
  returnBuffers(ids: readonly number[]): ReturnResult {
    const problems: string[] = [];
    const seen = new Set<number>();
    for (const id of ids) {
      if (seen.has(id)) {
        problems.push(`buffer ${id} is listed twice`);
        continue;
      }
      seen.add(id);
      if (!this.loans.has(id)) problems.push(this.whyNotLent(id));
    }
    if (problems.length > 0) return { ok: false, problem: problems.join('; ') };
    for (const id of ids) this.retire(id, 'returned');
    return { ok: true };
  }

  /**
   * The target takes a buffer back without a receive-return: its indication was refused or only
   * partly accepted, so the host will not return it (spec 4.3). False if `id` was not lent.
   */
  reclaim(id: number): boolean {
    if (!this.loans.has(id)) return false;
    this.retire(id, 'reclaimed');
    return true;
  }

  private retire(id: number, how: Retirement): void {
    const loan = this.loans.get(id);
    if (!loan) return;
    this.loans.delete(id);
    this.bytesOut -= loan.bytes.length;
    this.retired.set(id, how);
    if (this.retired.size > RETIRED_MEMORY) {
      const oldest = this.retired.keys().next().value as number;
      this.retired.delete(oldest);
    }
  }

  private whyNotLent(id: number): string {
    if (!Number.isInteger(id) || id < 1 || id > MAX_ID) return `buffer ${String(id)} is not a valid buffer id`;
    const how = this.retired.get(id);
    if (how === 'returned') return `buffer ${id} was already returned`;
    if (how === 'reclaimed') return `buffer ${id} is not lent: its indication was refused, so it stayed with the target`;
    if (!this.wrapped && id >= this.firstId && id < this.nextId) return `buffer ${id} was already returned`;
    return this.wrapped ? `buffer ${id} is not lent (unknown or already returned)` : `buffer ${id} is unknown (never lent)`;
  }

  /** Monotonic ids, wrapping after 2^32-1 and skipping ids still lent: never reused while lent,
   *  and not reused until 2^32-1 other buffers have been lent. */
  private allocateId(): number {
    if (this.loans.size >= MAX_ID) throw new RangeError('every buffer id is lent');
    for (;;) {
      const id = this.nextId;
      if (this.nextId === MAX_ID) {
        this.nextId = 1;
        this.wrapped = true;
      } else {
        this.nextId++;
      }
      if (!this.loans.has(id)) return id;
    }
  }
}
