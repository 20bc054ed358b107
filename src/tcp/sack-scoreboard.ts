/**
 * The sender's SACK scoreboard (RFC 6675): which bytes above SND.UNA the receiver reported holding,
 * and the loss-recovery helpers IsLost, SetPipe and NextSeg. Sequence numbers mod 2^32.
 *
 * HighRxt convention: one past the highest retransmitted octet (SND.UNA when nothing has been
 * retransmitted in this recovery), so "octet <= HighRxt" of RFC 6675 reads `seq < highRxt` here.
 */
import type { SackBlock } from '../wire/tcp-segment.js';
import { seqAdd, seqDiff, seqGt, seqLe, seqLt, seqMax } from '../wire/seq.js';

export interface NextSegment {
  seq: number;
  len: number;
  /** true when this is a retransmission of previously sent data (rules 1 and 3). */
  retransmit: boolean;
}

export interface SackScoreboardApi {
  /** Forget everything (e.g. after RTO per RFC 6675 section 5.1 the scoreboard is kept, but a reneging or import clears it). */
  clear(): void;
  /**
   * Apply the cumulative ACK and the SACK blocks of one ACK. Blocks outside (sndUna, sndMax] are
   * ignored (D-SACK and stale blocks); a block straddling sndUna is clipped to it. Returns the
   * number of bytes newly marked SACKed.
   */
  update(sndUna: number, sndMax: number, blocks: readonly SackBlock[]): number;
  /** Whether byte `seq` has been SACKed. */
  isSacked(seq: number): boolean;
  /** Total SACKed bytes above sndUna. */
  readonly sackedBytes: number;
  /** Highest SACKed sequence number (the right edge of the highest block), or undefined. */
  readonly highestSacked: number | undefined;
  /** RFC 6675 IsLost(seq): DupThresh discontiguous SACKed sequences, or more than (DupThresh-1)*mss bytes SACKed, above seq. */
  isLost(seq: number, mss: number, dupThresh: number): boolean;
  /** RFC 6675 SetPipe over [sndUna, highData), given HighRxt: bytes estimated in the network. */
  pipe(sndUna: number, highData: number, highRxt: number, mss: number, dupThresh: number): number;
  /**
   * RFC 6675 NextSeg rules 1-3 over [sndUna, highData) given HighRxt. Rule 1: first unSACKed, lost
   * octet at or above HighRxt and below the highest SACKed octet; rule 2: new data (seq = highData)
   * when `unsentBytes` > 0 and a segment of min(mss, unsentBytes) fits below `sendWindowEnd`;
   * rule 3: as rule 1 but without the IsLost test. The engine handles rule 4 (rescue
   * retransmission) itself. Returns null when nothing may be sent. len is at most mss and a
   * retransmission never crosses a SACKed byte or highData.
   */
  nextSeg(args: {
    sndUna: number;
    highData: number;
    highRxt: number;
    mss: number;
    dupThresh: number;
    unsentBytes: number;
    sendWindowEnd: number;
  }): NextSegment | null;
}

/**
 * Sorted, disjoint, non-adjacent [left, right) ranges above SND.UNA. update() is O(ranges); the
 * queries are binary searches over the ranges plus lazily built prefix sums, so the engine may call
 * pipe()/nextSeg() once per segment sent in recovery even with thousands of ranges.
 */
export class SackScoreboard implements SackScoreboardApi {
  private r: SackBlock[] = [];
  private sacked = 0;
  /** prefix[k] = SACKed bytes in ranges [0, k); rebuilt on demand after a change. */
  private prefix: number[] | undefined;

  clear(): void {
    this.r = [];
    this.sacked = 0;
    this.prefix = undefined;
  }

  get sackedBytes(): number {
    return this.sacked;
  }

  get highestSacked(): number | undefined {
    return this.r.length > 0 ? this.r[this.r.length - 1]!.right : undefined;
  }

  /** Copies of the SACKed ranges in sequence order (for state export). */
  ranges(): SackBlock[] {
    return this.r.map((x) => ({ left: x.left, right: x.right }));
  }

  update(sndUna: number, sndMax: number, blocks: readonly SackBlock[]): number {
    this.prefix = undefined;
    this.advance(sndUna);
    let newly = 0;
    for (const b of blocks) {
      let left = b.left >>> 0;
      const right = b.right >>> 0;
      if (!seqLt(left, right) || seqGt(right, sndMax) || seqLe(right, sndUna)) continue;
      if (seqLt(left, sndUna)) left = sndUna;
      newly += this.add(left, right);
    }
    return newly;
  }

  isSacked(seq: number): boolean {
    return this.containing(seq) !== undefined;
  }

  /** Right edge of the SACKed range holding `seq`, or undefined when `seq` is not SACKed. */
  sackedRangeEnd(seq: number): number | undefined {
    return this.containing(seq)?.right;
  }

  /** The smallest SACKed sequence number >= seq (seq itself when SACKed), or undefined. */
  nextSackedAtOrAfter(seq: number): number | undefined {
    const x = this.r[this.firstEndingAfter(seq)];
    if (x === undefined) return undefined;
    return seqLe(x.left, seq) ? seq : x.left;
  }

  isLost(seq: number, mss: number, dupThresh: number): boolean {
    const end = this.lostEnd(mss, dupThresh);
    return end !== undefined && seqLt(seq, end);
  }

  pipe(sndUna: number, highData: number, highRxt: number, mss: number, dupThresh: number): number {
    if (!seqLt(sndUna, highData)) return 0;
    const clip = (x: number) => (seqLt(x, sndUna) ? sndUna : seqGt(x, highData) ? highData : x);
    const lost = this.lostEnd(mss, dupThresh);
    // (a) unSACKed octets that are not lost: IsLost is monotone, so they are those >= the lost end.
    let p = this.unsackedIn(lost === undefined ? sndUna : clip(lost), highData);
    // (b) unSACKed octets already retransmitted count once more.
    p += this.unsackedIn(sndUna, clip(highRxt));
    return p;
  }

  nextSeg(args: {
    sndUna: number;
    highData: number;
    highRxt: number;
    mss: number;
    dupThresh: number;
    unsentBytes: number;
    sendWindowEnd: number;
  }): NextSegment | null {
    const { sndUna, highData, highRxt, mss, dupThresh, unsentBytes, sendWindowEnd } = args;
    let rule3: NextSegment | null = null;
    const highest = this.highestSacked;
    const start = seqMax(highRxt, sndUna);
    if (highest !== undefined && seqLt(start, highData)) {
      const s = this.firstUnsackedAtOrAfter(start);
      if (seqLt(s, highData) && seqLt(s, highest)) {
        const limit = this.nextSackedAtOrAfter(s) ?? highData;
        const len = Math.min(mss, seqDiff(limit, s), seqDiff(highData, s));
        const seg = { seq: s, len, retransmit: true };
        // Rule 1. IsLost is monotone, so if the first candidate is not lost no later one is.
        if (this.isLost(s, mss, dupThresh)) return seg;
        rule3 = seg;
      }
    }
    if (unsentBytes > 0) {
      const len = Math.min(mss, unsentBytes);
      if (seqLe(seqAdd(highData, len), sendWindowEnd)) return { seq: highData, len, retransmit: false };
    }
    return rule3;
  }

  /**
   * Exclusive end of the region where IsLost holds: IsLost(s) is true exactly for s < the result.
   * undefined when no octet is lost.
   */
  private lostEnd(mss: number, dupThresh: number): number | undefined {
    const r = this.r;
    const n = r.length;
    if (n === 0) return undefined;
    const d = Math.max(1, dupThresh);
    let end: number | undefined;
    // DupThresh ranges above s: s lies below the last byte of the d-th range from the top.
    if (n >= d) end = seqAdd(r[n - d]!.right, -1);
    // More than (d-1)*mss SACKed bytes above s.
    const threshold = (d - 1) * mss;
    let above = 0;
    for (let k = n - 1; k >= 0; k--) {
      const len = seqDiff(r[k]!.right, r[k]!.left);
      if (above + len > threshold) {
        const cand = seqAdd(r[k]!.right, -(threshold - above) - 1);
        end = end === undefined ? cand : seqMax(end, cand);
        break;
      }
      above += len;
    }
    return end;
  }

  /** Count of octets in [a, b) that are not SACKed. */
  private unsackedIn(a: number, b: number): number {
    if (!seqLt(a, b)) return 0;
    return seqDiff(b, a) - (this.sackedBefore(b) - this.sackedBefore(a));
  }

  /** SACKed bytes in ranges below x (all ranges lie within one window, so this is well defined). */
  private sackedBefore(x: number): number {
    const r = this.r;
    let prefix = this.prefix;
    if (prefix === undefined) {
      prefix = new Array<number>(r.length + 1);
      prefix[0] = 0;
      for (let k = 0; k < r.length; k++) prefix[k + 1] = prefix[k]! + seqDiff(r[k]!.right, r[k]!.left);
      this.prefix = prefix;
    }
    const k = this.firstEndingAfter(x);
    const y = r[k];
    return prefix[k]! + (y !== undefined && seqLt(y.left, x) ? seqDiff(x, y.left) : 0);
  }

  private firstUnsackedAtOrAfter(seq: number): number {
    return this.containing(seq)?.right ?? seq;
  }

  private containing(seq: number): SackBlock | undefined {
    const x = this.r[this.firstEndingAfter(seq)];
    return x !== undefined && seqLe(x.left, seq) ? x : undefined;
  }

  /** Index of the first range with right > seq. */
  private firstEndingAfter(seq: number): number {
    let lo = 0;
    let hi = this.r.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqLe(this.r[mid]!.right, seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drop what the cumulative ACK covers. */
  private advance(sndUna: number): void {
    const k = this.firstEndingAfter(sndUna);
    for (let i = 0; i < k; i++) this.sacked -= seqDiff(this.r[i]!.right, this.r[i]!.left);
    if (k > 0) this.r.splice(0, k);
    const first = this.r[0];
    if (first !== undefined && seqLt(first.left, sndUna)) {
      this.sacked -= seqDiff(sndUna, first.left);
      first.left = sndUna;
    }
  }

  /** Merge [left, right) in; returns the number of bytes not SACKed before. */
  private add(left: number, right: number): number {
    const r = this.r;
    // First range ending at or after left (adjacent ranges merge).
    let i = 0;
    let hi = r.length;
    while (i < hi) {
      const mid = (i + hi) >>> 1;
      if (seqLt(r[mid]!.right, left)) i = mid + 1;
      else hi = mid;
    }
    let j = i;
    let covered = 0;
    while (j < r.length && seqLe(r[j]!.left, right)) {
      covered += seqDiff(r[j]!.right, r[j]!.left);
      j++;
    }
    const newLeft = i < j && seqLt(r[i]!.left, left) ? r[i]!.left : left;
    const newRight = i < j && seqGt(r[j - 1]!.right, right) ? r[j - 1]!.right : right;
    const added = seqDiff(newRight, newLeft) - covered;
    r.splice(i, j - i, { left: newLeft, right: newRight });
    this.sacked += added;
    return added;
  }
}
