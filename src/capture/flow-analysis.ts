/**
 * TCP flow analysis of a capture: connections by 4-tuple, and per data direction what was sent,
 * what the receiver acknowledged, what the capture never saw, what was sent twice, and whether
 * the copies agree. Streams through packets once; memory grows with the number of holes and
 * segments, not with bytes (no per-byte maps; payload copies only under a fixed budget).
 *
 * Sequence numbers are unwrapped to *relative* sequence numbers (plain integers, the ISN is 0, the
 * first data byte 1) so that a stream may pass 2^32 bytes; `baseSeq` maps them back.
 */
import { createHash, type Hash } from 'node:crypto';
import { seq32, seqDiff, seqGt } from '../wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpOptions } from '../wire/tcp-segment.js';
import {
  decodeTcpPacket, LINKTYPE_ETHERNET, streamPcap, type PcapPacket, type TcpPacketInfo,
} from './pcap-reader.js';

// ================================================================ ordered interval sets (treap)

interface Node {
  s: number;
  e: number;
  p: number;
  l: Node | null;
  r: Node | null;
  /** Content chunks only: the bytes of [s, e). */
  bytes: Uint8Array | undefined;
}

let prioState = 0x2545f491;
function nextPrio(): number {
  // xorshift32: deterministic, so analyses are reproducible run to run.
  let x = prioState;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  prioState = x >>> 0;
  return prioState;
}

function newNode(s: number, e: number, bytes?: Uint8Array): Node {
  return { s, e, p: nextPrio(), l: null, r: null, bytes };
}

/** [nodes with s < k, nodes with s >= k]. */
function split(t: Node | null, k: number): [Node | null, Node | null] {
  if (!t) return [null, null];
  if (t.s < k) {
    const [a, b] = split(t.r, k);
    t.r = a;
    return [t, b];
  }
  const [a, b] = split(t.l, k);
  t.l = b;
  return [a, t];
}

/** Every key of `a` is below every key of `b`. */
function merge(a: Node | null, b: Node | null): Node | null {
  if (!a) return b;
  if (!b) return a;
  if (a.p > b.p) {
    a.r = merge(a.r, b);
    return a;
  }
  b.l = merge(a, b.l);
  return b;
}

function leftmost(t: Node | null): Node | null {
  if (!t) return null;
  while (t.l) t = t.l;
  return t;
}

function rightmost(t: Node | null): Node | null {
  if (!t) return null;
  while (t.r) t = t.r;
  return t;
}

function removeRightmost(t: Node): Node | null {
  if (!t.r) return t.l;
  t.r = removeRightmost(t.r);
  return t;
}

/** Nodes intersecting [a, b), in order. Disjoint nodes: O(log n + k). */
function collect(t: Node | null, a: number, b: number, out: Node[]): void {
  if (!t) return;
  if (t.s > a) collect(t.l, a, b, out);
  if (t.s < b && t.e > a) out.push(t);
  if (t.e < b) collect(t.r, a, b, out);
}

function inorder(t: Node | null, out: Node[]): void {
  if (!t) return;
  inorder(t.l, out);
  out.push(t);
  inorder(t.r, out);
}

/** A half-open integer range [start, end). */
export type Range = [start: number, end: number];

/**
 * A set of integers kept as disjoint, non-adjacent ranges in a treap: add/query in
 * O(log n + k) expected, n ranges in the set, k ranges touched.
 */
export class IntervalSet {
  private root: Node | null = null;
  private total = 0;
  private count = 0;

  /** Integers in the set. */
  get measure(): number {
    return this.total;
  }
  /** Disjoint ranges in the set. */
  get size(): number {
    return this.count;
  }

  /** Adds [s, e); returns the parts of it that were already in the set. */
  add(s: number, e: number): Range[] {
    const had: Range[] = [];
    if (e <= s) return had;
    const [lower, right] = split(this.root, s);
    let left = lower;
    let ns = s;
    let ne = e;
    const pred = rightmost(left);
    if (pred && pred.e >= s) {
      if (pred.e > s) had.push([s, Math.min(pred.e, e)]);
      ns = pred.s;
      ne = Math.max(ne, pred.e);
      this.total -= pred.e - pred.s;
      this.count--;
      left = removeRightmost(left!);
    }
    const [mid, rest] = split(right, e + 1);
    if (mid) {
      const swallowed: Node[] = [];
      inorder(mid, swallowed);
      for (const n of swallowed) {
        if (n.s < e) had.push([n.s, Math.min(n.e, e)]);
        ne = Math.max(ne, n.e);
        this.total -= n.e - n.s;
        this.count--;
      }
    }
    this.total += ne - ns;
    this.count++;
    this.root = merge(merge(left, newNode(ns, ne)), rest);
    return had;
  }

  /** The parts of [s, e) in the set. */
  covered(s: number, e: number): Range[] {
    if (e <= s) return [];
    const nodes: Node[] = [];
    collect(this.root, s, e, nodes);
    return nodes.map((n): Range => [Math.max(n.s, s), Math.min(n.e, e)]);
  }

  coveredLength(s: number, e: number): number {
    let n = 0;
    for (const [a, b] of this.covered(s, e)) n += b - a;
    return n;
  }

  /** The parts of [s, e) not in the set. */
  holes(s: number, e: number): Range[] {
    const out: Range[] = [];
    let at = s;
    for (const [a, b] of this.covered(s, e)) {
      if (a > at) out.push([at, a]);
      at = b;
    }
    if (at < e) out.push([at, e]);
    return out;
  }

  has(x: number): boolean {
    return this.covered(x, x + 1).length > 0;
  }

  /** Drops everything below `x`. */
  removeBelow(x: number): void {
    const [left, right] = split(this.root, x);
    let keep = right;
    if (left) {
      const all: Node[] = [];
      inorder(left, all);
      for (const n of all) {
        this.total -= n.e - n.s;
        this.count--;
      }
      const last = all[all.length - 1]!;
      if (last.e > x) {
        keep = merge(newNode(x, last.e), keep);
        this.total += last.e - x;
        this.count++;
      }
    }
    this.root = keep;
  }

  first(): Range | undefined {
    const n = leftmost(this.root);
    return n ? [n.s, n.e] : undefined;
  }

  last(): Range | undefined {
    const n = rightmost(this.root);
    return n ? [n.s, n.e] : undefined;
  }

  ranges(): Range[] {
    const all: Node[] = [];
    inorder(this.root, all);
    return all.map((n): Range => [n.s, n.e]);
  }
}

// ================================================================ bounded payload store

/** What a stored chunk costs besides its bytes (node, typed-array header): counted in the budget. */
const CHUNK_OVERHEAD = 512;

/** One budget for all directions: the oldest chunks go first. */
class ContentBudget {
  used = 0;
  evicted = 0;
  private readonly fifo: Array<{ store: ContentStore; node: Node }> = [];
  private head = 0;
  constructor(readonly limit: number) {}

  admit(store: ContentStore, node: Node): void {
    this.fifo.push({ store, node });
    this.used += node.e - node.s + CHUNK_OVERHEAD;
    while (this.used > this.limit && this.head < this.fifo.length) {
      const old = this.fifo[this.head++]!;
      old.store.remove(old.node);
      this.used -= old.node.e - old.node.s + CHUNK_OVERHEAD;
      this.evicted += old.node.e - old.node.s;
    }
    if (this.head > 4096 && this.head * 2 > this.fifo.length) {
      this.fifo.splice(0, this.head);
      this.head = 0;
    }
  }
}

interface Mismatch {
  start: number;
  end: number;
  firstDiff: number;
  differingBytes: number;
  firstByte: number;
  laterByte: number;
}

/** First-captured payload bytes of one direction, in disjoint chunks keyed by relative seq. */
class ContentStore {
  private root: Node | null = null;
  constructor(private readonly budget: ContentBudget) {}

  /**
   * Compares `bytes` (captured at relative seq `s`) with what is stored, stores what is not.
   * Returns the number of bytes compared and the differing ranges.
   */
  check(s: number, bytes: Uint8Array): { compared: number; mismatches: Mismatch[] } {
    const e = s + bytes.length;
    const nodes: Node[] = [];
    collect(this.root, s, e, nodes);
    let compared = 0;
    const mismatches: Mismatch[] = [];
    let at = s;
    const fresh: Range[] = [];
    for (const n of nodes) {
      const a = Math.max(n.s, s);
      const b = Math.min(n.e, e);
      if (a > at) fresh.push([at, a]);
      at = b;
      const old = n.bytes!.subarray(a - n.s, b - n.s);
      const now = bytes.subarray(a - s, b - s);
      compared += b - a;
      if (Buffer.compare(old, now) !== 0) {
        let first = -1;
        let differing = 0;
        for (let i = 0; i < old.length; i++) {
          if (old[i] !== now[i]) {
            if (first < 0) first = i;
            differing++;
          }
        }
        mismatches.push({ start: a, end: b, firstDiff: a + first, differingBytes: differing, firstByte: old[first]!, laterByte: now[first]! });
      }
    }
    if (at < e) fresh.push([at, e]);
    if (this.budget.limit > 0) {
      for (const [a, b] of fresh) {
        // A copy: a view would keep the parser's whole read buffer alive.
        const node = newNode(a, b, new Uint8Array(bytes.subarray(a - s, b - s)));
        const [l, r] = split(this.root, a);
        this.root = merge(merge(l, node), r);
        this.budget.admit(this, node);
      }
    }
    return { compared, mismatches };
  }

  /** The stored chunk holding relative seq `x`. */
  chunkAt(x: number): Node | undefined {
    const nodes: Node[] = [];
    collect(this.root, x, x + 1, nodes);
    return nodes[0];
  }

  remove(node: Node): void {
    const [l, r] = split(this.root, node.s);
    const [, rest] = split(r, node.s + 1);
    this.root = merge(l, rest);
  }
}

// ================================================================ report types

export interface EventTimes {
  firstMs: number;
  count: number;
}

/** Options an endpoint announced on its SYN or SYN-ACK. */
export interface SynOptions {
  mss: number | undefined;
  wscale: number | undefined;
  sackPermitted: boolean;
  timestamps: boolean;
  /** The (unscaled) window of the SYN. */
  window: number;
}

/** A range of relative sequence numbers [start, end) (ISN = 0, first data byte = 1). */
export interface SeqRange {
  start: number;
  end: number;
  bytes: number;
  /** Absolute sequence number of `start`. */
  seq: number;
}

export interface DifferingOverlap extends SeqRange {
  /** When the later copy was seen. */
  timeMs: number;
  /** Relative seq of the first differing byte, and the two values there. */
  firstDiff: number;
  firstByte: number;
  laterByte: number;
  differingBytes: number;
}

export interface Counted {
  segments: number;
  bytes: number;
}

export type DataKind = 'new' | 'retransmission' | 'spurious' | 'reordered' | 'duplicate';

export interface DataEvent {
  timeMs: number;
  start: number;
  end: number;
  kind: DataKind;
}

export interface AckEvent {
  timeMs: number;
  ack: number;
  /** Right edge of the advertised receive window (ack + scaled window). */
  windowEdge: number;
  sack: Range[] | undefined;
}

/**
 * One direction of data, `from` -> `to`. Sender-side fields describe the segments `from` sent;
 * `acks` describes what `to` sent back about this data (cumulative ACKs, SACK, windows).
 */
export interface DirectionReport {
  from: string;
  to: string;
  /** The SYN's sequence number, when the SYN (or SYN-ACK) was captured. */
  isn: number | undefined;
  /** Absolute sequence number of relative sequence 0. */
  baseSeq: number;
  syn: EventTimes | undefined;
  /** `seq` is the relative sequence number the FIN occupies. */
  fin: (EventTimes & { seq: number }) | undefined;
  rst: EventTimes | undefined;
  synOptions: SynOptions | undefined;
  packets: number;
  dataSegments: number;
  /** Payload bytes of all data segments, copies included. */
  payloadBytes: number;
  /**
   * The stream's data in sequence space: from the first data byte (1 when the SYN was seen, else
   * the lowest byte seen) to the FIN, or to the highest byte seen or acknowledged.
   */
  stream: SeqRange | undefined;
  /** Bytes of `stream` seen on the capture at least once. */
  uniqueBytes: number;
  /** Bytes of `stream` the receiver acknowledged cumulatively. */
  ackedBytes: number;
  gaps: {
    /** Acknowledged by the receiver (cumulatively or by SACK) but never on the capture. */
    capture: SeqRange[];
    captureBytes: number;
    /** Never seen and never acknowledged: the receiver never got these bytes (while captured). */
    stream: SeqRange[];
    streamBytes: number;
  };
  /**
   * Segments carrying bytes sent before. `needed`: some re-sent byte was not yet acknowledged;
   * `spurious`: every re-sent byte was already acknowledged (cumulatively or by SACK) when the
   * copy was seen. `lostBeforeCapture` (part of the total): segments that filled a hole below
   * the highest byte sent and were sent later than the data above them (newer TSval or IPv4 id,
   * or after 3 duplicate ACKs): retransmissions whose original the capture never saw.
   */
  retransmissions: Counted & { needed: Counted; spurious: Counted; lostBeforeCapture: Counted };
  /** Hole fills with no sign of being sent later: network reordering. */
  reordered: Counted;
  /** Exact copies (same seq, length, IPv4 id and TSval): duplicated by the network. */
  duplicates: Counted;
  /** One-byte segments just below the cumulative ACK (keep-alives): not counted as data. */
  keepAlives: number;
  overlaps: {
    /** Bytes seen more than once. */
    bytes: number;
    /** Of those, compared with the first captured copy. */
    comparedBytes: number;
    /** Not comparable: payload cut by the snaplen, or the first copy evicted from the budget. */
    uncheckedBytes: number;
    /** Ranges where a later copy differs from the first (first `maxReportedRanges`). */
    differing: DifferingOverlap[];
    differingCount: number;
    differingBytes: number;
  };
  /** SHA-256 of the stream as first captured, when every byte from 1 to the FIN was captured. */
  content: { sha256: string | undefined; bytes: number; unavailable: string | undefined };
  acks: {
    /** ACK segments from the receiver. */
    count: number;
    /** Highest cumulative ACK (relative seq). */
    highest: number | undefined;
    /** RFC 5681: no data, no SYN/FIN, same ACK and window, data outstanding. */
    dupAcks: number;
    zeroWindows: EventTimes | undefined;
    /** Largest advertised window in bytes (scaled). */
    maxWindow: number;
    /** False when the handshake was not captured: windows are shown unscaled. */
    windowScaleKnown: boolean;
    sack: { acks: number; blocks: number; dsackBlocks: number; dsackBytes: number };
  };
  /** Longest time between two consecutive data segments. */
  longestPause: { ms: number; fromMs: number; toMs: number } | undefined;
  /** Per-segment history for time-sequence graphs (first `maxEventsPerDirection` of each). */
  events: { data: DataEvent[]; acks: AckEvent[]; truncated: boolean };
}

export interface NegotiatedOptions {
  /** Both the SYN and the SYN-ACK were captured. */
  complete: boolean;
  sackPermitted: boolean;
  timestamps: boolean;
  /** Shift each side applies to the windows it advertises (both sides must offer scaling). */
  windowScale: { a: number; b: number } | undefined;
  /** Largest segment each direction may carry: the other side's MSS option (536 without one). */
  mss: { ab: number | undefined; ba: number | undefined };
}

export interface ConnectionReport {
  id: number;
  /** The endpoint that sent the SYN (else the first sender seen), as "addr:port". */
  a: string;
  b: string;
  ipVersion: 4 | 6;
  startMs: number;
  endMs: number;
  packets: number;
  state: 'open' | 'closed' | 'reset';
  negotiated: NegotiatedOptions;
  /** Data a -> b. */
  ab: DirectionReport;
  /** Data b -> a. */
  ba: DirectionReport;
}

export interface FlowAnalysis {
  packets: number;
  tcpPackets: number;
  /** Packets that yielded no TCP segment, by reason ('not-ip', 'truncated', ...). */
  skipped: Record<string, number>;
  connections: ConnectionReport[];
  /** Payload bytes not kept for content checks because of the budget. */
  contentEvictedBytes: number;
}

export interface AnalyzeOptions {
  /** Linktype of bare packet arrays (default 1, Ethernet). */
  linktype?: number;
  verifyChecksums?: boolean;
  /**
   * Memory for payload kept for overlap checks and stream digests, all flows together (each
   * chunk counts its bytes plus 512, about what a chunk object costs). Default 64 MiB.
   */
  contentBudgetBytes?: number;
  /** Data and ACK events kept per direction for graphs. Default 50000. */
  maxEventsPerDirection?: number;
  /** Gap and differing ranges listed per direction. Default 100. */
  maxReportedRanges?: number;
}

// ================================================================ per-direction state

const DUPTHRESH = 3;
const NOT_CAPTURED = 'payload not captured (snaplen) or not kept (content budget)';
const RECENT = 32;

/** Where the highest sequence sent moved, segment by segment: to date hole fills. */
class PassLog {
  private starts = new Float64Array(256);
  private ends = new Float64Array(256);
  private ts = new Float64Array(256);
  private ids = new Int32Array(256);
  private head = 0;
  private n = 0;

  push(start: number, end: number, ts: number | undefined, id: number | undefined): void {
    if (this.n === this.ends.length) this.grow();
    this.starts[this.n] = start;
    this.ends[this.n] = end;
    this.ts[this.n] = ts ?? -1;
    this.ids[this.n] = id ?? -1;
    this.n++;
  }

  /** The segment that first carried the highest sequence past `x`. */
  find(x: number): { ts: number | undefined; id: number | undefined } | undefined {
    let lo = this.head;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    if (lo >= this.n || this.starts[lo]! > x) return undefined;
    const ts = this.ts[lo]!;
    const id = this.ids[lo]!;
    return { ts: ts < 0 ? undefined : ts, id: id < 0 ? undefined : id };
  }

  /** Forgets entries below `x` (no hole can be filled there any more). */
  dropBelow(x: number): void {
    while (this.head < this.n && this.ends[this.head]! <= x) this.head++;
  }

  private grow(): void {
    const live = this.n - this.head;
    const size = Math.max(256, live * 2);
    const copy = <T extends Float64Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a.subarray(this.head, this.n));
      return b;
    };
    this.starts = copy(this.starts, (k) => new Float64Array(k));
    this.ends = copy(this.ends, (k) => new Float64Array(k));
    this.ts = copy(this.ts, (k) => new Float64Array(k));
    this.ids = copy(this.ids, (k) => new Int32Array(k));
    this.n = live;
    this.head = 0;
  }
}

interface RecentSegment {
  start: number;
  len: number;
  id: number | undefined;
  ts: number | undefined;
}

class Direction {
  base: number | undefined;
  isn: number | undefined;
  private ref = 0;
  syn: EventTimes | undefined;
  synOptions: SynOptions | undefined;
  fin: (EventTimes & { seq: number }) | undefined;
  rst: EventTimes | undefined;
  packets = 0;
  dataSegments = 0;
  payloadBytes = 0;
  private readonly seen = new IntervalSet();
  /** Highest data byte + 1 seen (relative), -Infinity before any data. */
  private sndMax = -Infinity;
  private readonly passLog = new PassLog();
  private passPushes = 0;
  private readonly recent: RecentSegment[] = [];
  private idSteps = 0;
  private idIncreasing = 0;
  private lastId: number | undefined;

  readonly retrans = { segments: 0, bytes: 0, needed: { segments: 0, bytes: 0 }, spurious: { segments: 0, bytes: 0 }, lostBeforeCapture: { segments: 0, bytes: 0 } };
  readonly reordered = { segments: 0, bytes: 0 };
  readonly duplicates = { segments: 0, bytes: 0 };
  private keepAlives = 0;
  private overlapBytes = 0;
  private comparedBytes = 0;
  private readonly differing: DifferingOverlap[] = [];
  private differingCount = 0;
  private differingBytes = 0;
  private readonly content: ContentStore;
  private digest: Hash | undefined;
  private digestAt = 1;
  private digestStop: string | undefined;

  // What the receiver sent about this data.
  private cumAck = -Infinity;
  private lastAckWindow = -1;
  private dupRun = 0;
  private readonly sacked = new IntervalSet();
  acksSeen = 0;
  private dupAcks = 0;
  private zeroWindows: EventTimes | undefined;
  private maxWindow = 0;
  /** Shift the receiver applies to its windows; undefined until the handshake says. */
  receiverShift: number | undefined;
  private readonly sack = { acks: 0, blocks: 0, dsackBlocks: 0, dsackBytes: 0 };

  private lastDataMs: number | undefined;
  private longestPause: { ms: number; fromMs: number; toMs: number } | undefined;
  private readonly dataEvents: DataEvent[] = [];
  private readonly ackEvents: AckEvent[] = [];
  private eventsTruncated = false;

  constructor(
    readonly from: string,
    readonly to: string,
    budget: ContentBudget,
    private readonly maxEvents: number,
    private readonly maxRanges: number,
  ) {
    this.content = new ContentStore(budget);
  }

  /** True once a segment or an ACK of this direction was seen (the sequence base is set). */
  get started(): boolean {
    return this.base !== undefined;
  }

  private rel(x: number): number {
    if (this.base === undefined) this.base = seq32(x - 1);
    return this.ref + seqDiff(x, seq32(this.base + this.ref));
  }

  private advanceRef(x: number): void {
    if (x > this.ref) this.ref = x;
  }

  noteIpId(id: number | undefined): void {
    if (id === undefined) return;
    if (this.lastId !== undefined) {
      const step = (id - this.lastId) & 0xffff;
      this.idSteps++;
      // Linux: +1 per packet, +n per n-segment GSO packet.
      if (step >= 1 && step <= 2048) this.idIncreasing++;
    }
    this.lastId = id;
  }

  private idsTellOrder(): boolean {
    return this.idSteps >= 8 && this.idIncreasing >= 0.9 * this.idSteps;
  }

  onSyn(info: TcpPacketInfo): void {
    const seg = info.tcp;
    if (this.syn) {
      this.syn.count++;
      return;
    }
    this.syn = { firstMs: info.timeMs, count: 1 };
    this.isn = seg.seq;
    if (this.base === undefined) this.base = seg.seq;
    this.synOptions = synOptionsOf(seg.options, seg.window);
    this.digest = createHash('sha256');
  }

  onRst(timeMs: number): void {
    if (this.rst) this.rst.count++;
    else this.rst = { firstMs: timeMs, count: 1 };
  }

  /** An ACK from the receiver (`window` raw, as advertised by it). */
  onAck(info: TcpPacketInfo): void {
    const seg = info.tcp;
    const a = this.rel(seg.ack);
    this.acksSeen++;
    const isSyn = (seg.flags & TCP_SYN) !== 0;
    const shift = isSyn ? 0 : (this.receiverShift ?? 0);
    const windowBytes = seg.window * 2 ** shift;
    if (windowBytes > this.maxWindow) this.maxWindow = windowBytes;
    if (seg.window === 0 && !isSyn) {
      if (this.zeroWindows) this.zeroWindows.count++;
      else this.zeroWindows = { firstMs: info.timeMs, count: 1 };
    }
    let sackRanges: Range[] | undefined;
    let newlySacked = 0;
    const blocks = seg.options.sack;
    if (blocks && blocks.length > 0) {
      this.sack.acks++;
      sackRanges = [];
      const floor = Math.max(a, this.cumAck);
      for (let i = 0; i < blocks.length; i++) {
        const l = this.rel(blocks[i]!.left);
        const r = this.rel(blocks[i]!.right);
        if (r <= l) continue;
        this.sack.blocks++;
        sackRanges.push([l, r]);
        // RFC 2883: a first block below the ACK or inside the second reports a duplicate.
        const second = blocks[1];
        if (i === 0 && (r <= a || (second !== undefined && l >= this.rel(second.left) && r <= this.rel(second.right)))) {
          this.sack.dsackBlocks++;
          this.sack.dsackBytes += r - l;
          continue;
        }
        if (r > floor) {
          const from = Math.max(l, floor);
          let had = 0;
          for (const [x, y] of this.sacked.add(from, r)) had += y - x;
          newlySacked += r - from - had;
        }
      }
    }
    // RFC 5681 duplicate ACK; with SACK (RFC 6675) one that SACKs new data counts even when the
    // window moved (Linux receivers open the window while they buffer out-of-order data).
    const pure = info.payloadLength === 0 && (seg.flags & (TCP_SYN | TCP_FIN | TCP_RST)) === 0;
    const outstanding = Math.max(this.sndMax, this.fin ? this.fin.seq + 1 : -Infinity) > a;
    if (pure && a === this.cumAck && outstanding && (seg.window === this.lastAckWindow || newlySacked > 0)) {
      this.dupAcks++;
      this.dupRun++;
    } else if (a !== this.cumAck) {
      this.dupRun = 0;
    }
    this.lastAckWindow = seg.window;
    if (a > this.cumAck) {
      this.cumAck = a;
      this.advanceRef(a);
      if (this.sacked.size > 0) this.sacked.removeBelow(a);
    }
    if (this.ackEvents.length < this.maxEvents) {
      this.ackEvents.push({ timeMs: info.timeMs, ack: a, windowEdge: a + windowBytes, sack: sackRanges });
    } else {
      this.eventsTruncated = true;
    }
  }

  /** Sequence space of a segment this direction sent: data, then the FIN. */
  onSegment(info: TcpPacketInfo): void {
    const seg = info.tcp;
    this.packets++;
    const isSyn = (seg.flags & TCP_SYN) !== 0;
    const s = this.rel(seg.seq) + (isSyn ? 1 : 0);
    const len = info.payloadLength;
    if (len > 0) this.onData(info, s, len);
    if (seg.flags & TCP_FIN) {
      const at = s + len;
      if (this.fin) this.fin.count++;
      else this.fin = { firstMs: info.timeMs, count: 1, seq: at };
      this.advanceRef(at + 1);
    }
  }

  private onData(info: TcpPacketInfo, s: number, len: number): void {
    const e = s + len;
    const t = info.timeMs;
    if (len === 1 && e === this.cumAck) {
      // A keep-alive carrying one old (often garbage) byte, as BSD and Windows send them.
      this.keepAlives++;
      return;
    }
    const ts = info.tcp.options.ts?.val;
    const id = info.ipId;
    this.dataSegments++;
    this.payloadBytes += len;
    if (this.lastDataMs !== undefined) {
      const gap = t - this.lastDataMs;
      if (!this.longestPause || gap > this.longestPause.ms) this.longestPause = { ms: gap, fromMs: this.lastDataMs, toMs: t };
    }
    this.lastDataMs = t;

    const prevMax = this.sndMax;
    const had = this.seen.add(s, e);
    let hadBytes = 0;
    for (const [a, b] of had) hadBytes += b - a;
    let kind: DataKind = 'new';

    if (hadBytes === len && this.isNetworkCopy(s, len, id, ts)) {
      this.duplicates.segments++;
      this.duplicates.bytes += len;
      kind = 'duplicate';
    } else {
      // New bytes below the highest sent so far fill a hole: retransmitted or reordered?
      const fills: Range[] = [];
      if (prevMax > s) {
        let at = s;
        for (const [a, b] of had) {
          if (a > at) fills.push([at, Math.min(a, prevMax)]);
          at = b;
        }
        if (at < Math.min(e, prevMax)) fills.push([at, Math.min(e, prevMax)]);
      }
      const fillsValid = fills.filter(([a, b]) => b > a);
      let fillBytes = 0;
      for (const [a, b] of fillsValid) fillBytes += b - a;
      const resent: Range[] = [...had];
      let lost = false;
      if (fillBytes > 0) {
        if (this.sentLater(fillsValid[0]![0], e, ts, id)) {
          lost = true;
          resent.push(...fillsValid);
        } else {
          this.reordered.segments++;
          this.reordered.bytes += fillBytes;
          kind = 'reordered';
        }
      }
      if (resent.length > 0) {
        let bytes = 0;
        let ackedBytes = 0;
        for (const [a, b] of resent) {
          bytes += b - a;
          ackedBytes += this.ackedWithin(a, b);
        }
        this.retrans.segments++;
        this.retrans.bytes += bytes;
        const cls = ackedBytes === bytes ? this.retrans.spurious : this.retrans.needed;
        cls.segments++;
        cls.bytes += bytes;
        if (lost) {
          this.retrans.lostBeforeCapture.segments++;
          this.retrans.lostBeforeCapture.bytes += fillBytes;
        }
        kind = ackedBytes === bytes ? 'spurious' : 'retransmission';
      }
    }
    this.overlapBytes += hadBytes;
    this.checkContent(info, s);

    if (e > prevMax) {
      this.passLog.push(prevMax === -Infinity ? s : prevMax, e, ts, id);
      this.sndMax = e;
      this.advanceRef(e);
      if (++this.passPushes % 1024 === 0) {
        const first = this.seen.first();
        if (first) this.passLog.dropBelow(first[1]);
      }
    }
    this.remember({ start: s, len, id, ts });
    if (this.dataEvents.length < this.maxEvents) this.dataEvents.push({ timeMs: t, start: s, end: e, kind });
    else this.eventsTruncated = true;
  }

  /** Only IPv4 can tell: a resend gets a new id, while a same-millisecond resend keeps the TSval. */
  private isNetworkCopy(s: number, len: number, id: number | undefined, ts: number | undefined): boolean {
    if (id === undefined || id === 0) return false;
    return this.recent.some((r) => r.start === s && r.len === len && r.id === id && r.ts === ts);
  }

  private remember(r: RecentSegment): void {
    if (this.recent.length >= RECENT) this.recent.shift();
    this.recent.push(r);
  }

  /**
   * Whether a segment filling a hole at `x` was sent after the segment that first went past `x`:
   * a newer TSval, a newer IPv4 id (when this sender's ids count up), or the receiver had sent
   * DUPTHRESH duplicate ACKs for the hole.
   */
  private sentLater(x: number, e: number, ts: number | undefined, id: number | undefined): boolean {
    const passed = this.passLog.find(x);
    if (passed) {
      if (ts !== undefined && passed.ts !== undefined && seqGt(ts, passed.ts)) return true;
      if (id !== undefined && passed.id !== undefined && this.idsTellOrder()) {
        const d = (id - passed.id) & 0xffff;
        if (d > 0 && d < 0x8000) return true;
      }
    }
    return this.dupRun >= DUPTHRESH && x <= this.cumAck && this.cumAck < e;
  }

  /** Bytes of [a, b) the receiver had acknowledged (cumulatively or by SACK). */
  private ackedWithin(a: number, b: number): number {
    const cum = Math.max(0, Math.min(b, this.cumAck) - a);
    const from = Math.max(a, this.cumAck);
    return cum + (from < b ? this.sacked.coveredLength(from, b) : 0);
  }

  private checkContent(info: TcpPacketInfo, s: number): void {
    const bytes = info.tcp.payload;
    if (bytes.length === 0) return;
    const { compared, mismatches } = this.content.check(s, bytes);
    this.comparedBytes += compared;
    for (const m of mismatches) {
      this.differingCount++;
      this.differingBytes += m.differingBytes;
      if (this.differing.length < this.maxRanges) {
        this.differing.push({
          ...this.range(m.start, m.end), timeMs: info.timeMs, firstDiff: m.firstDiff, firstByte: m.firstByte,
          laterByte: m.laterByte, differingBytes: m.differingBytes,
        });
      }
    }
    this.advanceDigest();
  }

  private advanceDigest(): void {
    if (!this.digest || this.digestStop) return;
    for (;;) {
      const chunk = this.content.chunkAt(this.digestAt);
      if (chunk) {
        this.digest.update(chunk.bytes!.subarray(this.digestAt - chunk.s));
        this.digestAt = chunk.e;
        continue;
      }
      if (this.seen.has(this.digestAt)) {
        this.digestStop = NOT_CAPTURED;
      }
      return;
    }
  }

  private range(start: number, end: number): SeqRange {
    return { start, end, bytes: end - start, seq: seq32((this.base ?? 0) + start) };
  }

  report(): DirectionReport {
    const start = this.isn !== undefined ? 1 : this.seen.first()?.[0];
    const ackedEnd = this.fin ? Math.min(this.cumAck, this.fin.seq) : this.cumAck;
    const end = this.fin ? this.fin.seq : Math.max(this.sndMax, ackedEnd);
    const captureGaps: SeqRange[] = [];
    const streamGaps: SeqRange[] = [];
    let captureBytes = 0;
    let streamBytes = 0;
    let stream: SeqRange | undefined;
    let uniqueBytes = 0;
    let ackedBytes = 0;
    if (start !== undefined && end > start) {
      stream = this.range(start, end);
      uniqueBytes = this.seen.coveredLength(start, end);
      ackedBytes = Math.max(0, ackedEnd - start);
      for (const [a, b] of this.seen.holes(start, end)) {
        const pieces: Array<[Range, boolean]> = [];
        const cum = Math.min(b, Math.max(a, ackedEnd));
        if (cum > a) pieces.push([[a, cum], true]);
        if (cum < b) {
          let at = cum;
          for (const [x, y] of this.sacked.covered(cum, b)) {
            if (x > at) pieces.push([[at, x], false]);
            pieces.push([[x, y], true]);
            at = y;
          }
          if (at < b) pieces.push([[at, b], false]);
        }
        for (const [[x, y], acked] of pieces) {
          if (acked) {
            captureBytes += y - x;
            if (captureGaps.length < this.maxRanges) captureGaps.push(this.range(x, y));
          } else {
            streamBytes += y - x;
            if (streamGaps.length < this.maxRanges) streamGaps.push(this.range(x, y));
          }
        }
      }
    }
    let sha256: string | undefined;
    let unavailable: string | undefined;
    if (!this.digest) unavailable = 'the SYN was not captured';
    else if (this.digestStop) unavailable = this.digestStop;
    else if (this.seen.has(this.digestAt)) unavailable = NOT_CAPTURED;
    else if (!this.fin) unavailable = 'no FIN: the end of the stream is unknown';
    else if (this.digestAt < this.fin.seq) unavailable = `never captured from relative seq ${this.digestAt}`;
    else sha256 = this.digest.copy().digest('hex');
    return {
      from: this.from,
      to: this.to,
      isn: this.isn,
      baseSeq: this.base ?? 0,
      syn: this.syn && { ...this.syn },
      fin: this.fin && { ...this.fin },
      rst: this.rst && { ...this.rst },
      synOptions: this.synOptions,
      packets: this.packets,
      dataSegments: this.dataSegments,
      payloadBytes: this.payloadBytes,
      stream,
      uniqueBytes,
      ackedBytes,
      gaps: { capture: captureGaps, captureBytes, stream: streamGaps, streamBytes },
      retransmissions: structuredClone(this.retrans),
      reordered: { ...this.reordered },
      duplicates: { ...this.duplicates },
      keepAlives: this.keepAlives,
      overlaps: {
        bytes: this.overlapBytes,
        comparedBytes: this.comparedBytes,
        uncheckedBytes: Math.max(0, this.overlapBytes - this.comparedBytes),
        differing: [...this.differing],
        differingCount: this.differingCount,
        differingBytes: this.differingBytes,
      },
      content: { sha256, bytes: this.digest ? this.digestAt - 1 : 0, unavailable },
      acks: {
        count: this.acksSeen,
        highest: this.cumAck === -Infinity ? undefined : this.cumAck,
        dupAcks: this.dupAcks,
        zeroWindows: this.zeroWindows && { ...this.zeroWindows },
        maxWindow: this.maxWindow,
        windowScaleKnown: this.receiverShift !== undefined,
        sack: { ...this.sack },
      },
      longestPause: this.longestPause && { ...this.longestPause },
      events: { data: this.dataEvents, acks: this.ackEvents, truncated: this.eventsTruncated },
    };
  }
}

function synOptionsOf(o: TcpOptions, window: number): SynOptions {
  return { mss: o.mss, wscale: o.wscale, sackPermitted: o.sackPermitted === true, timestamps: o.ts !== undefined, window };
}

// ================================================================ connections

class Connection {
  readonly ab: Direction;
  readonly ba: Direction;
  packets = 0;
  endMs: number;

  constructor(
    readonly id: number,
    readonly a: string,
    readonly b: string,
    readonly ipVersion: 4 | 6,
    readonly startMs: number,
    budget: ContentBudget,
    opts: Required<Pick<AnalyzeOptions, 'maxEventsPerDirection' | 'maxReportedRanges'>>,
  ) {
    this.ab = new Direction(a, b, budget, opts.maxEventsPerDirection, opts.maxReportedRanges);
    this.ba = new Direction(b, a, budget, opts.maxEventsPerDirection, opts.maxReportedRanges);
    this.endMs = startMs;
  }

  /** A SYN (no ACK) from `from` that starts a new incarnation of this 4-tuple. */
  isNewIncarnation(from: string, seq: number): boolean {
    const d = from === this.a ? this.ab : this.ba;
    if (d.isn !== undefined) return d.isn !== seq;
    return d.started || (from === this.a ? this.ba : this.ab).started;
  }

  add(info: TcpPacketInfo, from: string): void {
    this.packets++;
    this.endMs = info.timeMs;
    const [sender, receiver] = from === this.a ? [this.ab, this.ba] : [this.ba, this.ab];
    const seg = info.tcp;
    sender.noteIpId(info.ipId);
    if (seg.flags & TCP_SYN) {
      sender.onSyn(info);
      this.updateScaling();
    }
    if (seg.flags & TCP_RST) sender.onRst(info.timeMs);
    // An RST's ACK field says nothing new about the data; skip it.
    if (seg.flags & TCP_ACK && !(seg.flags & TCP_RST)) receiver.onAck(info);
    sender.onSegment(info);
  }

  /** RFC 7323 2.2: scaling applies only when both SYNs carried the option. */
  private updateScaling(): void {
    const x = this.ab.synOptions;
    const y = this.ba.synOptions;
    if (!x || !y) return;
    const on = x.wscale !== undefined && y.wscale !== undefined;
    // ab's receiver is b: b's windows are scaled by b's shift.
    this.ab.receiverShift = on ? y.wscale! : 0;
    this.ba.receiverShift = on ? x.wscale! : 0;
  }

  report(): ConnectionReport {
    const x = this.ab.synOptions;
    const y = this.ba.synOptions;
    const complete = x !== undefined && y !== undefined;
    const reset = this.ab.rst !== undefined || this.ba.rst !== undefined;
    const ab = this.ab.report();
    const ba = this.ba.report();
    const finAcked = (d: DirectionReport): boolean => d.fin !== undefined && (d.acks.highest ?? -Infinity) > d.fin.seq;
    return {
      id: this.id,
      a: this.a,
      b: this.b,
      ipVersion: this.ipVersion,
      startMs: this.startMs,
      endMs: this.endMs,
      packets: this.packets,
      state: reset ? 'reset' : finAcked(ab) && finAcked(ba) ? 'closed' : 'open',
      negotiated: {
        complete,
        sackPermitted: complete && x.sackPermitted && y.sackPermitted,
        timestamps: complete && x.timestamps && y.timestamps,
        windowScale: complete && x.wscale !== undefined && y.wscale !== undefined ? { a: x.wscale, b: y.wscale } : undefined,
        mss: { ab: y ? (y.mss ?? 536) : undefined, ba: x ? (x.mss ?? 536) : undefined },
      },
      ab,
      ba,
    };
  }
}

function endpoint(ipVersion: 4 | 6, addr: string, port: number): string {
  return ipVersion === 4 ? `${addr}:${port}` : `[${addr}]:${port}`;
}

/**
 * Feeds packets one at a time (frames of a linktype, or already decoded TCP packets); `finish()`
 * reports. For captures of any size: nothing but the analysis state is kept.
 */
export class FlowAnalyzer {
  private readonly live = new Map<string, Connection>();
  private readonly done: Connection[] = [];
  private readonly budget: ContentBudget;
  private readonly skipped: Record<string, number> = {};
  private packets = 0;
  private tcpPackets = 0;
  private nextId = 1;
  private last: { conn: Connection; key: string; from: string; src: string; dst: string; srcPort: number; dstPort: number } | undefined;
  private readonly limits: Required<Pick<AnalyzeOptions, 'maxEventsPerDirection' | 'maxReportedRanges'>>;

  constructor(private readonly opts: AnalyzeOptions = {}) {
    this.budget = new ContentBudget(opts.contentBudgetBytes ?? 64 * 1024 * 1024);
    this.limits = { maxEventsPerDirection: opts.maxEventsPerDirection ?? 50_000, maxReportedRanges: opts.maxReportedRanges ?? 100 };
  }

  addFrame(linktype: number, packet: PcapPacket): void {
    this.packets++;
    const info = decodeTcpPacket(linktype, packet, { verifyChecksums: this.opts.verifyChecksums });
    if (typeof info === 'string') {
      this.skipped[info] = (this.skipped[info] ?? 0) + 1;
      return;
    }
    this.addDecoded(info);
  }

  addTcp(info: TcpPacketInfo): void {
    this.packets++;
    this.addDecoded(info);
  }

  private addDecoded(info: TcpPacketInfo): void {
    this.tcpPackets++;
    const seg = info.tcp;
    // Fast path: most packets belong to the flow of the packet before.
    const last = this.last;
    if (last && (seg.flags & TCP_SYN) === 0 && seg.srcPort === last.srcPort && seg.dstPort === last.dstPort
      && info.src === last.src && info.dst === last.dst && this.live.get(last.key) === last.conn) {
      last.conn.add(info, last.from);
      return;
    }
    const from = endpoint(info.ipVersion, info.src, seg.srcPort);
    const to = endpoint(info.ipVersion, info.dst, seg.dstPort);
    const key = from < to ? `${from}|${to}` : `${to}|${from}`;
    let conn = this.live.get(key);
    const initialSyn = (seg.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    if (conn && initialSyn && conn.isNewIncarnation(from, seg.seq)) {
      this.done.push(conn);
      conn = undefined;
    }
    if (!conn) {
      // The SYN's sender is `a`; without a SYN, whoever spoke first.
      const synAck = (seg.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK);
      const [a, b] = synAck ? [to, from] : [from, to];
      conn = new Connection(this.nextId++, a, b, info.ipVersion, info.timeMs, this.budget, this.limits);
      this.live.set(key, conn);
    }
    conn.add(info, from);
    this.last = { conn, key, from, src: info.src, dst: info.dst, srcPort: seg.srcPort, dstPort: seg.dstPort };
  }

  finish(): FlowAnalysis {
    const all = [...this.done, ...this.live.values()].sort((x, y) => x.startMs - y.startMs || x.id - y.id);
    return {
      packets: this.packets,
      tcpPackets: this.tcpPackets,
      skipped: { ...this.skipped },
      connections: all.map((c) => c.report()),
      contentEvictedBytes: this.budget.evicted,
    };
  }
}

/** Analyzes captured frames: a `readPcap` result, or packets of `opts.linktype` (default Ethernet). */
export function analyzeFlows(
  input: Iterable<PcapPacket> | { linktype: number; packets: Iterable<PcapPacket> },
  opts: AnalyzeOptions = {},
): FlowAnalysis {
  const analyzer = new FlowAnalyzer(opts);
  const [linktype, packets] = isCapture(input) ? [input.linktype, input.packets] : [opts.linktype ?? LINKTYPE_ETHERNET, input];
  for (const p of packets) analyzer.addFrame(linktype, p);
  return analyzer.finish();
}

function isCapture(x: unknown): x is { linktype: number; packets: Iterable<PcapPacket> } {
  return typeof x === 'object' && x !== null && 'linktype' in x && 'packets' in x;
}

/** Streams a pcap file (or buffer) through the analyzer without keeping its packets. */
export async function analyzePcap(input: string | Uint8Array, opts: AnalyzeOptions = {}): Promise<FlowAnalysis> {
  const analyzer = new FlowAnalyzer(opts);
  await streamPcap(input, (p, info) => analyzer.addFrame(info.linktype, p));
  return analyzer.finish();
}

// ================================================================ verdict

export interface VerdictOptions {
  /** An RST in either direction is a problem. */
  failOnRst?: boolean;
  /** Bytes acknowledged but missing from the capture are a problem (a lossy capture). */
  failOnCaptureGap?: boolean;
}

export interface Verdict {
  ok: boolean;
  problems: string[];
  /** Worth knowing, not failures: capture gaps, unchecked overlaps, skipped packets. */
  notes: string[];
}

function describeRanges(ranges: SeqRange[], total: number): string {
  const shown = ranges.slice(0, 5).map((r) => `${r.start}-${r.end} (${r.bytes} B, seq ${r.seq})`).join(', ');
  const more = ranges.length > 5 ? `, and ${ranges.length - 5} more listed` : '';
  return `${total} bytes at relative seq ${shown}${more}`;
}

/**
 * Judges an analysis: a stream gap (bytes the receiver never got) or a retransmission whose bytes
 * differ from the first copy makes it not ok; so does an RST with `failOnRst`.
 */
export function verdict(analysis: FlowAnalysis | ConnectionReport[], opts: VerdictOptions = {}): Verdict {
  const conns = Array.isArray(analysis) ? analysis : analysis.connections;
  const problems: string[] = [];
  const notes: string[] = [];
  for (const c of conns) {
    for (const d of [c.ab, c.ba]) {
      const dir = `${d.from} -> ${d.to}`;
      if (d.gaps.streamBytes > 0) {
        problems.push(`${dir}: stream gap: ${describeRanges(d.gaps.stream, d.gaps.streamBytes)} never seen and never acknowledged`);
      }
      if (d.gaps.captureBytes > 0) {
        const text = `${dir}: capture gap: ${describeRanges(d.gaps.capture, d.gaps.captureBytes)} acknowledged by the receiver but missing from the capture`;
        (opts.failOnCaptureGap ? problems : notes).push(text);
      }
      if (d.overlaps.differingCount > 0) {
        const first = d.overlaps.differing[0]!;
        const hex = (v: number): string => `0x${v.toString(16).padStart(2, '0')}`;
        problems.push(
          `${dir}: corruption: ${d.overlaps.differingCount} resent range(s) differ from the first copy (${d.overlaps.differingBytes} bytes), ` +
          `first at relative seq ${first.start}-${first.end} (seq ${first.seq}): byte ${first.firstDiff} was ${hex(first.firstByte)}, later ${hex(first.laterByte)}`,
        );
      }
      if (d.rst) {
        const at = (d.rst.firstMs - c.startMs).toFixed(3);
        const text = `${dir}: RST sent by ${d.from} (${d.rst.count}x, first ${at} ms after the connection's first packet)`;
        (opts.failOnRst ? problems : notes).push(text);
      }
      if (d.overlaps.uncheckedBytes > 0) {
        notes.push(`${dir}: ${d.overlaps.uncheckedBytes} resent bytes not compared (payload not captured or beyond the content budget)`);
      }
    }
  }
  if (!Array.isArray(analysis)) {
    const skipped = Object.entries(analysis.skipped).filter(([r]) => r !== 'not-tcp' && r !== 'not-ip');
    if (skipped.length > 0) notes.push(`undecodable packets: ${skipped.map(([r, n]) => `${n} ${r}`).join(', ')}`);
  }
  return { ok: problems.length === 0, problems, notes };
}
