import { describe, expect, it } from 'vitest';
import { BufferLedger } from '../../src/chimney/buffer-ledger.js';
import {
  ReceiveDelivery,
  type DeliveryOutput,
  type DeliverySource,
  type ReceiveCompletionEntry,
  type ReceivePost,
} from '../../src/chimney/delivery.js';
import { Status } from '../../src/chimney/status.js';
import { Rng } from '../../src/link/sim/rng.js';

const { SUCCESS, OFFLOAD_DATA_NOT_ACCEPTED: NOT_ACCEPTED, OFFLOAD_DATA_PARTIALLY_ACCEPTED: PARTIAL } = Status;
const OWNER = 0x51;
const PUSH_MS = 500;

/** Byte at stream offset `o`: not periodic within a few KiB, so misplaced bytes show. */
function streamByte(o: number): number {
  return (Math.imul(o + 1, 0x9e3779b1) >>> 24) ^ (o >>> 8) & 0xff;
}
function stream(from: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = streamByte(from + i);
  return b;
}
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
/** Compare bytes by content (hex keeps failures readable). */
function expectStream(actual: Uint8Array, from: number, len: number): void {
  expect(actual.length).toBe(len);
  expect(hex(actual)).toBe(hex(stream(from, len)));
}
function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** The TCP engine's receive buffer, reduced to what delivery sees. */
class FakeSource implements DeliverySource {
  private chunks: Uint8Array[] = [];
  available = 0;
  lastPush = false;
  /** Stream offset of the next byte pushed. */
  end = 0;

  push(len: number, psh: boolean): void {
    if (len > 0) this.chunks.push(stream(this.end, len));
    this.end += len;
    this.available += len;
    if (len > 0) this.lastPush = psh;
  }

  take(max: number): Uint8Array {
    const parts: Uint8Array[] = [];
    let left = Math.min(max, this.available);
    while (left > 0) {
      const c = this.chunks[0];
      const n = Math.min(c.length, left);
      parts.push(c.subarray(0, n));
      if (n === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(n);
      left -= n;
      this.available -= n;
    }
    return concat(parts);
  }
}

interface Rig {
  src: FakeSource;
  ledger: BufferLedger;
  d: ReceiveDelivery;
}

function rig(opts: { rcvIndicationSize?: number; seedFrom?: number } = {}): Rig {
  const src = new FakeSource();
  const ledger = new BufferLedger({ maxLentBytes: 1 << 20 });
  const d = new ReceiveDelivery({ source: src, ledger, owner: OWNER, rcvIndicationSize: opts.rcvIndicationSize ?? 0, pushTimeoutMs: PUSH_MS });
  return { src, ledger, d };
}

/** In-order bytes arrive (E1). */
function data(r: Rig, len: number, psh: boolean, now = 0): void {
  r.src.push(len, psh);
  r.d.onData(now);
}

const req = (requestId: number, capacity: number, noPush = false, prefilled?: Uint8Array): ReceivePost =>
  prefilled ? { requestId, capacity, noPush, prefilled } : { requestId, capacity, noPush };

/** A completion entry expected to hold stream bytes [from, from+len). */
function entryOf(e: ReceiveCompletionEntry): { requestId: number; status: number; hex: string } {
  return { requestId: e.requestId, status: e.status, hex: hex(e.bytes) };
}
const want = (requestId: number, status: number, from: number, len: number) => ({ requestId, status, hex: hex(stream(from, len)) });

/** Outputs with bytes as hex, for exact comparison. */
function show(outs: DeliveryOutput[]): unknown[] {
  return outs.map((o) => {
    if (o.type === 'complete') return { type: 'complete', entries: o.entries.map(entryOf) };
    if (o.type === 'indicate') return { type: 'indicate', indicationId: o.indicationId, bufferId: o.bufferId, hex: hex(o.bytes) };
    return o;
  });
}
const complete = (...entries: ReturnType<typeof want>[]) => ({ type: 'complete', entries });

function onlyIndication(outs: DeliveryOutput[]): Extract<DeliveryOutput, { type: 'indicate' }> {
  expect(outs.length).toBe(1);
  const o = outs[0];
  if (o.type !== 'indicate') throw new Error(`expected an indication, got ${o.type}`);
  return o;
}

describe('ReceiveDelivery: indications', () => {
  it('R96: in-sequence data with no posted request and nothing held is indicated, all of it when RcvIndicationSize is 0', () => {
    const r = rig();
    data(r, 300, false);
    const ind = onlyIndication(r.d.take());
    expectStream(ind.bytes, 0, 300);
    expect(r.d.busy).toBe(true);
    expect(r.d.undeliveredBytes).toBe(300);
    expect(r.src.available).toBe(0);
  });

  it('R100: after SUCCESS the buffer belongs to the host until receive-return and all its bytes count as delivered', () => {
    const r = rig();
    data(r, 120, true);
    const ind = onlyIndication(r.d.take());
    expect(r.d.onIndicateReply(ind.indicationId, SUCCESS, 120, 1)).toBeUndefined();
    expect(r.d.busy).toBe(false);
    expect(r.d.undeliveredBytes).toBe(0);
    expect(r.ledger.lentBy(OWNER)).toEqual([ind.bufferId]);
    expect(r.ledger.lentBytes).toBe(120);
    expect(r.d.take()).toEqual([]);
    // Delivered means gone: a later request gets only newer bytes.
    r.d.post([req(1, 50)], 2);
    data(r, 50, false, 3);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 120, 50))]);
    expect(r.ledger.returnBuffers([ind.bufferId])).toEqual({ ok: true });
    expect(r.ledger.lentCount).toBe(0);
  });

  it('R101: a refused indication keeps the data and indicates nothing more until a request is posted', () => {
    const r = rig();
    data(r, 100, false);
    const ind = onlyIndication(r.d.take());
    expect(r.d.onIndicateReply(ind.indicationId, NOT_ACCEPTED, 0, 1)).toBeUndefined();
    expect(r.ledger.lentCount).toBe(0); // refused: no receive-return will come (spec 4.3)
    expect(r.d.undeliveredBytes).toBe(100);
    expect(r.d.take()).toEqual([]);
    data(r, 40, true, 2); // more data piles up behind the refused bytes (R97)
    r.d.onTimer(10_000);
    r.d.onPeerFin(10_001);
    expect(r.d.take()).toEqual([]);
    expect(r.d.pushDeadline).toBeUndefined();
    // A zero-byte request re-enables indications: all 140 bytes, oldest first, in one buffer.
    r.d.post([req(7, 0)], 10_002);
    const outs = r.d.take();
    expect(outs.length).toBe(2);
    expect(show([outs[0]])).toEqual([complete(want(7, SUCCESS, 0, 0))]);
    const again = outs[1];
    if (again.type !== 'indicate') throw new Error('expected an indication');
    expectStream(again.bytes, 0, 140);
    expect(again.indicationId).not.toBe(ind.indicationId);
    expect(again.bufferId).not.toBe(ind.bufferId);
  });

  it('R102: after a partial acceptance exactly BytesConsumed bytes count as delivered and the rest goes to posted requests', () => {
    const r = rig();
    data(r, 100, false);
    const ind = onlyIndication(r.d.take());
    expect(r.d.onIndicateReply(ind.indicationId, PARTIAL, 30, 1)).toBeUndefined();
    expect(r.ledger.lentCount).toBe(0); // the target owns the buffer at once
    expect(r.d.undeliveredBytes).toBe(70);
    expect(r.d.take()).toEqual([]);
    data(r, 10, false, 2); // not indicated: the rest is held (R101)
    expect(r.d.take()).toEqual([]);
    r.d.post([req(1, 50, true), req(2, 50, true)], 3);
    // bytes 30..79 fill request 1; 80..109 go into request 2, which (nonpush) waits.
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 30, 50))]);
    expect(r.d.undeliveredBytes).toBe(30);
    data(r, 20, false, 4);
    expect(show(r.d.take())).toEqual([complete(want(2, SUCCESS, 80, 50))]);
  });

  it('R101: when a refusal leaves only bytes not yet indicated (RcvIndicationSize), those wait for a post too', () => {
    const r = rig({ rcvIndicationSize: 40 });
    data(r, 100, false);
    const ind = onlyIndication(r.d.take());
    // All 40 indicated bytes consumed, but the call did not return SUCCESS: the 60 behind them are held.
    expect(r.d.onIndicateReply(ind.indicationId, PARTIAL, 40, 1)).toBeUndefined();
    data(r, 10, true, 2);
    expect(r.d.take()).toEqual([]);
    r.d.post([req(1, 0)], 3);
    const outs = r.d.take();
    expect(show(outs.slice(0, 1))).toEqual([complete(want(1, SUCCESS, 40, 0))]);
    if (outs[1]?.type === 'indicate') expectStream(outs[1].bytes, 40, 40);
    else throw new Error('expected an indication');
  });

  it('R101: a partial acceptance that leaves nothing behind does not block indications of newer data', () => {
    const r = rig();
    data(r, 30, false);
    const ind = onlyIndication(r.d.take());
    expect(r.d.onIndicateReply(ind.indicationId, PARTIAL, 30, 1)).toBeUndefined();
    expect(r.ledger.lentCount).toBe(0);
    data(r, 5, false, 2); // held is empty (spec 4.5.2 E1.4): indicated
    expectStream(onlyIndication(r.d.take()).bytes, 30, 5);
  });

  it('R104: indications carry RcvIndicationSize bytes and the rest stays in the source until the reply', () => {
    const r = rig({ rcvIndicationSize: 100 });
    data(r, 250, false);
    const a = onlyIndication(r.d.take());
    expectStream(a.bytes, 0, 100);
    expect(r.src.available).toBe(150); // the window stays closed for the undelivered rest (spec 4.6)
    r.d.onIndicateReply(a.indicationId, SUCCESS, 100, 1);
    const b = onlyIndication(r.d.take());
    expectStream(b.bytes, 100, 100);
    r.d.onIndicateReply(b.indicationId, SUCCESS, 100, 2);
    const c = onlyIndication(r.d.take());
    expectStream(c.bytes, 200, 50);
    r.d.onIndicateReply(c.indicationId, SUCCESS, 50, 3);
    expect(r.d.take()).toEqual([]);
    expect(r.ledger.lentBy(OWNER)).toEqual([a.bufferId, b.bufferId, c.bufferId]);
  });

  it('R104: "indicate, then post": the application reads a header, posts a request, and the rest fills it', () => {
    const r = rig({ rcvIndicationSize: 16 });
    data(r, 16 + 400, true);
    const hdr = onlyIndication(r.d.take());
    expectStream(hdr.bytes, 0, 16);
    // The host posts during the indication (the re-entrant case of spec 8.1), then replies.
    r.d.post([req(1, 400)], 1);
    expect(r.d.take()).toEqual([]);
    r.d.onIndicateReply(hdr.indicationId, SUCCESS, 16, 2);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 16, 400))]);
  });

  it('R104: with RcvIndicationSize 0 everything available goes into one indication', () => {
    const r = rig({ rcvIndicationSize: 0 });
    r.src.push(100, false);
    r.src.push(900, true);
    r.d.onData(0);
    expectStream(onlyIndication(r.d.take()).bytes, 0, 1000);
  });

  it('R103: a zero-byte request consumes no data, is completed, and re-enables indications', () => {
    const r = rig();
    r.d.post([req(5, 0)], 0);
    expect(r.d.take()).toEqual([]); // nothing to deliver yet: it waits like any request
    data(r, 64, false, 1);
    const outs = r.d.take();
    expect(show([outs[0]])).toEqual([complete(want(5, SUCCESS, 0, 0))]);
    expect(outs.length).toBe(2);
    expect(outs[1].type).toBe('indicate');
    if (outs[1].type === 'indicate') expectStream(outs[1].bytes, 0, 64); // no byte went into the zero-byte request
  });

  it('R97: data arriving while data is held is appended and not indicated', () => {
    const r = rig();
    data(r, 10, false);
    const ind = onlyIndication(r.d.take());
    r.d.onIndicateReply(ind.indicationId, NOT_ACCEPTED, 0, 1);
    for (let i = 0; i < 5; i++) data(r, 100, i === 4, 2 + i);
    expect(r.d.take()).toEqual([]);
    r.d.post([req(1, 510)], 10);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 510))]);
  });

  it('R98: requests posted while data is held are filled from the held data first, and the surplus is indicated', () => {
    const r = rig();
    data(r, 300, false);
    const ind = onlyIndication(r.d.take());
    r.d.onIndicateReply(ind.indicationId, NOT_ACCEPTED, 0, 1);
    data(r, 50, false, 2);
    r.d.post([req(1, 100), req(2, 100)], 3);
    const outs = r.d.take();
    expect(show(outs.slice(0, 1))).toEqual([complete(want(1, SUCCESS, 0, 100), want(2, SUCCESS, 100, 100))]);
    expect(outs.length).toBe(2);
    const rest = outs[1];
    if (rest.type !== 'indicate') throw new Error('expected an indication');
    expectStream(rest.bytes, 200, 150);
  });

  it('R99: no indication starts while a posted request is waiting to be filled', () => {
    const r = rig();
    r.d.post([req(1, 1000, true)], 0);
    for (let i = 0; i < 9; i++) data(r, 100, true, i);
    expect(r.d.take()).toEqual([]); // nonpush: waits, and nothing is indicated meanwhile
    expect(r.d.busy).toBe(false);
    data(r, 150, false, 9); // fills it; only the 50-byte surplus is indicated, after the completion
    const outs = r.d.take();
    expect(show(outs.slice(0, 1))).toEqual([complete(want(1, SUCCESS, 0, 1000))]);
    expect(outs.length).toBe(2);
    if (outs[1].type === 'indicate') expectStream(outs[1].bytes, 1000, 50);
    else throw new Error('expected an indication');
  });
});

describe('ReceiveDelivery: posted requests', () => {
  it('R89: requests are filled in sequence order and completed in posting order; one completion may carry several', () => {
    const r = rig();
    r.d.post([req(11, 100, true), req(12, 100, true)], 0);
    r.d.post([req(13, 100, true)], 0);
    data(r, 250, true, 1);
    expect(show(r.d.take())).toEqual([complete(want(11, SUCCESS, 0, 100), want(12, SUCCESS, 100, 100))]);
    data(r, 50, false, 2);
    expect(show(r.d.take())).toEqual([complete(want(13, SUCCESS, 200, 100))]);
  });

  it('R90: a completely filled push-mode request is completed at once, without PSH and without the timer', () => {
    const r = rig();
    r.d.post([req(1, 64)], 0);
    data(r, 64, false, 5);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 64))]);
    expect(r.d.pushDeadline).toBeUndefined();
  });

  it('R91: a partially filled push-mode request completes when a PSH segment is placed into it', () => {
    const r = rig();
    r.d.post([req(1, 1000)], 0);
    data(r, 100, false, 1);
    expect(r.d.take()).toEqual([]);
    data(r, 30, true, 2);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 130))]);
    expect(r.d.pushDeadline).toBeUndefined();
  });

  it('R91: a partially filled push-mode request completes when the push timer fires, not before', () => {
    const r = rig();
    r.d.post([req(1, 1000), req(2, 10)], 0);
    data(r, 100, false, 1000);
    expect(r.d.pushDeadline).toBe(1000 + PUSH_MS);
    r.d.onTimer(1000 + PUSH_MS - 1); // early call: ignored
    expect(r.d.take()).toEqual([]);
    r.d.onTimer(1000 + PUSH_MS);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 100))]);
    expect(r.d.pushDeadline).toBeUndefined();
    data(r, 10, false, 2000); // the next request fills normally
    expect(show(r.d.take())).toEqual([complete(want(2, SUCCESS, 100, 10))]);
  });

  it('R92: a nonpush request completes only when full, whatever PSH says, and arms no push timer', () => {
    const r = rig();
    r.d.post([req(1, 300, true)], 0);
    data(r, 100, true, 1);
    data(r, 100, true, 2);
    expect(r.d.pushDeadline).toBeUndefined();
    r.d.onTimer(1_000_000);
    expect(r.d.take()).toEqual([]);
    data(r, 100, false, 3);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 300))]);
  });

  it('R93: the push timer starts at the first byte, restarts on more data, stops when a request completes, and lasts TcpPushTicks', () => {
    const r = rig();
    r.d.post([req(1, 1000), req(2, 1000)], 0);
    expect(r.d.pushDeadline).toBeUndefined(); // empty request: no timer yet
    data(r, 10, false, 100);
    expect(r.d.pushDeadline).toBe(100 + PUSH_MS);
    data(r, 10, false, 300);
    expect(r.d.pushDeadline).toBe(300 + PUSH_MS); // restarted
    r.d.onTimer(100 + PUSH_MS); // the old deadline is stale now
    expect(r.d.take()).toEqual([]);
    data(r, 990, false, 400); // fills request 1 (completes: timer stops) and puts 10 bytes into request 2 (starts it)
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 1000))]);
    expect(r.d.pushDeadline).toBe(400 + PUSH_MS);
    data(r, 990, false, 450); // fills request 2 exactly
    expect(show(r.d.take())).toEqual([complete(want(2, SUCCESS, 1000, 1000))]);
    expect(r.d.pushDeadline).toBeUndefined();
  });

  it('R93/R107: a push-mode request posted holding host data starts the timer at posting; its completion reports only the bytes placed', () => {
    const r = rig();
    const host = Uint8Array.from([0xde, 0xad, 0xbe, 0xef]);
    r.d.post([req(1, 104, false, host)], 50);
    expect(r.d.pushDeadline).toBe(50 + PUSH_MS);
    data(r, 60, false, 70);
    expect(r.d.pushDeadline).toBe(70 + PUSH_MS);
    data(r, 40, false, 80); // 100 bytes of room after the host's 4: full
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 100))]);
    // And one that times out with host data only.
    r.d.post([req(2, 10, false, host)], 1000);
    r.d.onTimer(1000 + PUSH_MS);
    expect(show(r.d.take())).toEqual([complete(want(2, SUCCESS, 0, 0))]);
  });

  it('R107: each completion reports exactly the bytes placed into that request', () => {
    const r = rig();
    r.d.post([req(1, 7, true), req(2, 13, true), req(3, 1, true), req(4, 100)], 0);
    data(r, 3, false, 1);
    data(r, 30, true, 2);
    expect(show(r.d.take())).toEqual([
      complete(want(1, SUCCESS, 0, 7), want(2, SUCCESS, 7, 13), want(3, SUCCESS, 20, 1), want(4, SUCCESS, 21, 12)),
    ]);
  });

  it('malformed and duplicate posts are completed at once with an IPC status and 0 bytes, leaving the rest untouched', () => {
    const r = rig();
    r.d.post([req(1, 3, false, new Uint8Array(4)), req(2, 100, true), req(2, 50), req(3, -1), req(4, 1.5)], 0);
    expect(show(r.d.take())).toEqual([
      complete(
        { requestId: 1, status: Status.IPC_MALFORMED, hex: '' },
        { requestId: 2, status: Status.IPC_DUPLICATE_ID, hex: '' },
        { requestId: 3, status: Status.IPC_MALFORMED, hex: '' },
        { requestId: 4, status: Status.IPC_MALFORMED, hex: '' },
      ),
    ]);
    data(r, 100, false, 1);
    expect(show(r.d.take())).toEqual([complete(want(2, SUCCESS, 0, 100))]);
  });
});

describe('ReceiveDelivery: serialization and deferred work', () => {
  it('R94/R95: posts and segments arriving during an indication wait for the reply and are then handled in arrival order', () => {
    const r = rig();
    data(r, 100, false);
    const ind = onlyIndication(r.d.take());
    r.d.post([req(1, 150, true)], 1);
    data(r, 60, true, 2);
    r.d.post([req(2, 40, true)], 3);
    data(r, 40, false, 4);
    expect(r.d.take()).toEqual([]); // nothing overlaps the unanswered indication
    expect(r.d.busy).toBe(true);
    r.d.onIndicateReply(ind.indicationId, NOT_ACCEPTED, 0, 5);
    const outs = r.d.take();
    expect(show(outs.slice(0, 1))).toEqual([complete(want(1, SUCCESS, 0, 150), want(2, SUCCESS, 150, 40))]);
    expect(outs.length).toBe(2); // the 10-byte surplus is indicated after the completion
    if (outs[1].type === 'indicate') expectStream(outs[1].bytes, 190, 10);
    else throw new Error('expected an indication');
  });

  it('R94: after a SUCCESS reply the bytes that arrived meanwhile are indicated next, never two indications at once', () => {
    const r = rig();
    data(r, 10, false);
    const a = onlyIndication(r.d.take());
    data(r, 20, false, 1);
    data(r, 30, true, 2);
    expect(r.d.take()).toEqual([]);
    r.d.onIndicateReply(a.indicationId, SUCCESS, 10, 3);
    const b = onlyIndication(r.d.take());
    expectStream(b.bytes, 10, 50);
  });

  it('E3 during an indication is deferred until the reply (spec 4.5.6 [I])', () => {
    const r = rig();
    data(r, 10, false);
    const ind = onlyIndication(r.d.take());
    r.d.post([req(1, 100, false, Uint8Array.of(1, 2))], 100); // prefilled push mode: timer from posting
    expect(r.d.pushDeadline).toBe(100 + PUSH_MS);
    r.d.onTimer(100 + PUSH_MS);
    expect(r.d.take()).toEqual([]);
    expect(r.d.pushDeadline).toBeUndefined(); // already fired; nothing more for the caller to arm
    r.d.onIndicateReply(ind.indicationId, SUCCESS, 10, 700);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 0))]);
  });

  it('a bad reply is reported and changes nothing: unknown id, bytesConsumed beyond the indication, bad status', () => {
    const r = rig();
    data(r, 100, false);
    const ind = onlyIndication(r.d.take());
    const id = ind.indicationId;
    expect(r.d.onIndicateReply(id + 1, SUCCESS, 100, 1)).toBe(`unknown indication id ${id + 1} (awaiting a reply to ${id})`);
    expect(r.d.onIndicateReply(id, PARTIAL, 101, 1)).toBe(`bytesConsumed 101 exceeds the 100 bytes indicated by ${id}`);
    expect(r.d.onIndicateReply(id, Status.FAILURE, 0, 1)).toBe(
      'status FAILURE is not SUCCESS, OFFLOAD_DATA_NOT_ACCEPTED or OFFLOAD_DATA_PARTIALLY_ACCEPTED',
    );
    expect(r.d.onIndicateReply(id, SUCCESS, 99, 1)).toBe('SUCCESS means all 100 indicated bytes were consumed, but bytesConsumed is 99');
    expect(r.d.onIndicateReply(id, NOT_ACCEPTED, 5, 1)).toMatch(/^OFFLOAD_DATA_NOT_ACCEPTED with bytesConsumed 5/);
    expect(r.d.onIndicateReply(id, PARTIAL, 0, 1)).toMatch(/^OFFLOAD_DATA_PARTIALLY_ACCEPTED with bytesConsumed 0/);
    expect(r.d.onIndicateReply(id, PARTIAL, -1, 1)).toBe('bytesConsumed -1 is not a byte count');
    expect(r.d.busy).toBe(true);
    expect(r.ledger.lentBy(OWNER)).toEqual([ind.bufferId]);
    expect(r.d.take()).toEqual([]);
    expect(r.d.onIndicateReply(id, PARTIAL, 40, 2)).toBeUndefined();
    expect(r.d.busy).toBe(false);
    expect(r.d.onIndicateReply(id, PARTIAL, 40, 3)).toBe(`unknown indication id ${id} (no indication awaits a reply)`);
    expect(r.d.undeliveredBytes).toBe(60);
  });
});

describe('ReceiveDelivery: FIN, initiate, terminate, abort', () => {
  it('R110: TcpIndicateDisconnect only after every byte before the FIN is consumed', () => {
    const r = rig();
    data(r, 100, false);
    const ind = onlyIndication(r.d.take());
    r.d.onIndicateReply(ind.indicationId, NOT_ACCEPTED, 0, 1);
    r.d.onPeerFin(2);
    expect(r.d.take()).toEqual([]); // 100 bytes are still held
    r.d.post([req(1, 60, true), req(2, 60, true)], 3);
    // Request 2 holds the last 40 bytes: FIN implies PUSH, so it completes before the disconnect.
    expect(show(r.d.take())).toEqual([
      complete(want(1, SUCCESS, 0, 60)),
      complete(want(2, SUCCESS, 60, 40)),
      { type: 'disconnect' },
    ]);
    expect(r.d.disconnectIndicated).toBe(true);
  });

  it('R110: a FIN that arrives during an indication is indicated after the reply, and only once', () => {
    const r = rig();
    data(r, 10, true);
    const ind = onlyIndication(r.d.take());
    r.d.onPeerFin(1);
    expect(r.d.take()).toEqual([]);
    r.d.onIndicateReply(ind.indicationId, SUCCESS, 10, 2);
    expect(r.d.take()).toEqual([{ type: 'disconnect' }]);
    r.d.onPeerFin(3);
    r.d.onData(4);
    expect(r.d.take()).toEqual([]);
  });

  it('R110: a FIN with nothing undelivered is indicated at once; the FIN segment\'s own bytes are delivered first', () => {
    const r = rig();
    r.d.post([req(1, 100)], 0);
    r.src.push(25, true); // the caller reports the FIN without a separate onData
    r.d.onPeerFin(1);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 25)), { type: 'disconnect' }]);
  });

  it('R106: a request posted after TcpIndicateDisconnect completes with INVALID_STATE', () => {
    const r = rig();
    r.d.onPeerFin(0);
    expect(r.d.take()).toEqual([{ type: 'disconnect' }]);
    r.d.post([req(9, 100), req(10, 0)], 1);
    expect(show(r.d.take())).toEqual([
      complete({ requestId: 9, status: Status.INVALID_STATE, hex: '' }, { requestId: 10, status: Status.INVALID_STATE, hex: '' }),
    ]);
  });

  it('R45/R48: BufferedData from the initiate is not indicated, is delivered before newer data, and its surplus is indicated only after a post', () => {
    const r = rig();
    r.d.seedHeld(stream(0, 300));
    r.src.end = 300; // the engine's stream continues after the host's BufferedData
    data(r, 80, true, 1);
    r.d.onTimer(10_000);
    expect(r.d.take()).toEqual([]); // nothing reaches the host before a post (R45: nor before the initiate completes)
    r.d.post([req(1, 200)], 2);
    const outs = r.d.take();
    expect(show(outs.slice(0, 1))).toEqual([complete(want(1, SUCCESS, 0, 200))]);
    expect(outs.length).toBe(2);
    if (outs[1].type === 'indicate') expectStream(outs[1].bytes, 200, 180);
    else throw new Error('expected an indication');
  });

  it('R48: BufferedData placed into a push-mode request counts as having no PSH: the push timer completes it', () => {
    const r = rig();
    r.d.seedHeld(stream(0, 50));
    r.d.post([req(1, 100)], 10);
    expect(r.d.take()).toEqual([]);
    expect(r.d.pushDeadline).toBe(10 + PUSH_MS);
    r.d.onTimer(10 + PUSH_MS);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 50))]);
  });

  it('R15/R16/R20: terminate fills posted requests from held data, completes every request, and returns the rest in order ending at RcvNxt', () => {
    const r = rig();
    data(r, 100, false);
    const ind = onlyIndication(r.d.take());
    r.d.post([req(1, 30, true)], 1); // posted during the indication
    r.d.onIndicateReply(ind.indicationId, PARTIAL, 10, 2); // 10 consumed, 90 back: 30 fill request 1, 60 indicated
    const outs = r.d.take();
    expect(show(outs.slice(0, 1))).toEqual([complete(want(1, SUCCESS, 10, 30))]);
    const second = outs[1];
    if (second.type !== 'indicate') throw new Error('expected an indication');
    r.d.onIndicateReply(second.indicationId, NOT_ACCEPTED, 0, 3);
    data(r, 50, true, 4);
    r.d.post([req(2, 0)], 5); // zero-byte: completes, re-indicates 110 bytes
    const o2 = r.d.take();
    const third = o2[1];
    if (third.type !== 'indicate') throw new Error('expected an indication');
    expectStream(third.bytes, 40, 110);
    r.d.onIndicateReply(third.indicationId, NOT_ACCEPTED, 0, 6);
    data(r, 25, false, 7);
    r.d.post([req(3, 20, true), req(4, 100, true), req(5, 7, true), req(6, 0)], 8);
    // FILL: 3 gets 20, 4 gets 100, 5 gets 7, 6 (zero) completes, surplus 8 indicated: refuse it.
    const o3 = r.d.take();
    expect(show(o3.slice(0, 1))).toEqual([
      complete(want(3, SUCCESS, 40, 20), want(4, SUCCESS, 60, 100), want(5, SUCCESS, 160, 7), want(6, SUCCESS, 167, 0)),
    ]);
    const fourth = o3[1];
    if (fourth.type !== 'indicate') throw new Error('expected an indication');
    r.d.onIndicateReply(fourth.indicationId, NOT_ACCEPTED, 0, 9);
    r.d.post([req(7, 5, true)], 10); // takes 5 of the 8, 3 bytes surplus indicated again: refuse
    const o4 = r.d.take();
    expect(show(o4.slice(0, 1))).toEqual([complete(want(7, SUCCESS, 167, 5))]);
    const fifth = o4[1];
    if (fifth.type !== 'indicate') throw new Error('expected an indication');
    r.d.onIndicateReply(fifth.indicationId, NOT_ACCEPTED, 0, 11);
    data(r, 12, false, 12);
    r.d.post([req(8, 10, true), req(9, 0), req(10, 100, true)], 13); // while held: fills 8 (10), completes 9, 10 gets the last 5
    expect(show(r.d.take())).toEqual([complete(want(8, SUCCESS, 172, 10), want(9, SUCCESS, 182, 0))]);
    data(r, 7, false, 14); // request 10 now holds 12 bytes (nonpush)
    r.d.post([req(11, 50), req(12, 0)], 15);
    expect(r.d.take()).toEqual([]);
    expect(r.d.undeliveredBytes).toBe(12);
    // Data that arrived after the last delivery step stays in the source until terminate.
    r.src.push(33, true);
    expect(r.src.end).toBe(227);
    const t = r.d.terminate(16);
    expect(t.completions.map(entryOf)).toEqual([
      want(10, SUCCESS, 182, 45),
      want(11, Status.UPLOAD_IN_PROGRESS, 227, 0),
      want(12, Status.UPLOAD_IN_PROGRESS, 227, 0),
    ]);
    expect(t.remaining.length).toBe(0);
    expect(r.src.available).toBe(0);
    expect(r.d.pushDeadline).toBeUndefined();
  });

  it('R15/R16: terminate returns every undelivered byte, held then source, ending at the last received byte', () => {
    const r = rig({ rcvIndicationSize: 40 });
    data(r, 100, false);
    const ind = onlyIndication(r.d.take());
    expectStream(ind.bytes, 0, 40);
    r.d.onIndicateReply(ind.indicationId, PARTIAL, 15, 1);
    data(r, 30, true, 2);
    r.d.post([req(1, 20, true)], 3); // 15..34 into request 1; then indicate 40 more: refuse
    const outs = r.d.take();
    expect(show(outs.slice(0, 1))).toEqual([complete(want(1, SUCCESS, 15, 20))]);
    const again = outs[1];
    if (again.type !== 'indicate') throw new Error('expected an indication');
    expectStream(again.bytes, 35, 40);
    r.d.onIndicateReply(again.indicationId, NOT_ACCEPTED, 0, 4);
    r.d.post([req(2, 100, true)], 5); // nonpush: takes 35..129 (95 bytes) and waits
    expect(r.d.take()).toEqual([]);
    r.src.push(70, false); // not yet seen by delivery
    const t = r.d.terminate(6);
    expect(t.completions.map(entryOf)).toEqual([want(2, SUCCESS, 35, 100)]);
    expectStream(t.remaining, 135, 65); // contiguous, in order, ending at RcvNxt = 200
    expect(r.d.undeliveredBytes).toBe(0);
    // After the terminate nothing more happens, and late posts are told the connection is uploading.
    data(r, 10, true, 7);
    r.d.post([req(3, 10)], 8);
    expect(show(r.d.take())).toEqual([complete({ requestId: 3, status: Status.UPLOAD_IN_PROGRESS, hex: '' })]);
  });

  it('R22: terminate refuses to run while an indication awaits its reply', () => {
    const r = rig();
    data(r, 10, false);
    const ind = onlyIndication(r.d.take());
    expect(() => r.d.terminate(1)).toThrow(/R22/);
    r.d.onIndicateReply(ind.indicationId, NOT_ACCEPTED, 0, 2);
    const t = r.d.terminate(3);
    expect(t.completions).toEqual([]);
    expectStream(t.remaining, 0, 10);
  });

  it('R111: abort completes every posted request REQUEST_ABORTED with the bytes it holds; later posts too', () => {
    const r = rig();
    r.d.post([req(1, 100, true), req(2, 100), req(3, 0)], 0);
    data(r, 150, false, 1);
    expect(show(r.d.take())).toEqual([complete(want(1, SUCCESS, 0, 100))]);
    const done = r.d.abort();
    expect(done.map(entryOf)).toEqual([want(2, Status.REQUEST_ABORTED, 100, 50), want(3, Status.REQUEST_ABORTED, 150, 0)]);
    expect(r.d.pushDeadline).toBeUndefined();
    expect(r.d.abort()).toEqual([]);
    data(r, 10, true, 2);
    r.d.onPeerFin(3);
    r.d.post([req(4, 10)], 4);
    expect(show(r.d.take())).toEqual([complete({ requestId: 4, status: Status.REQUEST_ABORTED, hex: '' })]);
    // R15: bytes acknowledged but never delivered still go back at terminate.
    const t = r.d.terminate(5);
    expect(t.completions).toEqual([]);
    expectStream(t.remaining, 150, 10);
  });

  it('R111/R94: an abort during an indication completes the posted requests right after the reply', () => {
    const r = rig();
    data(r, 10, false);
    const ind = onlyIndication(r.d.take());
    r.d.post([req(1, 100, false, Uint8Array.of(9))], 1);
    expect(r.d.abort()).toEqual([]);
    r.d.post([req(2, 5)], 2);
    expect(r.d.take()).toEqual([]);
    r.d.onIndicateReply(ind.indicationId, NOT_ACCEPTED, 0, 3);
    expect(show(r.d.take())).toEqual([
      complete({ requestId: 1, status: Status.REQUEST_ABORTED, hex: '' }),
      complete({ requestId: 2, status: Status.REQUEST_ABORTED, hex: '' }),
    ]);
    expectStream(r.d.terminate(4).remaining, 0, 10);
  });

  it('spec 6.11: R1 is filled from BufferedData, the rest is indicated and refused, stays held, and terminate returns exactly those 100 bytes', () => {
    // BufferedData = 300 B ending at RcvNxt 5000: bytes 4700..4999 (stream offsets 4700..).
    const r = rig();
    r.d.seedHeld(stream(4700, 300));
    r.src.end = 5000;
    r.d.post([req(1, 200)], 0); // R1, push mode, 200 B
    const outs = r.d.take();
    expect(show(outs.slice(0, 1))).toEqual([complete(want(1, SUCCESS, 4700, 200))]);
    expect(outs.length).toBe(2);
    const ind = outs[1];
    if (ind.type !== 'indicate') throw new Error('expected an indication');
    expectStream(ind.bytes, 4900, 100);
    r.d.onIndicateReply(ind.indicationId, NOT_ACCEPTED, 0, 1);
    expect(r.d.take()).toEqual([]);
    expect(r.d.undeliveredBytes).toBe(100);
    // 5200..5299 arrives out of order: the engine keeps it in reassembly, the source stays empty.
    const t = r.d.terminate(2);
    expect(t.completions).toEqual([]);
    expectStream(t.remaining, 4900, 100);
    // The caller lends BufferedData; it stays reserved until receive-return (R17).
    const id = r.ledger.lend(t.remaining, OWNER);
    expect(r.ledger.lentBy(OWNER)).toEqual([id]);
    expect(r.ledger.returnBuffers([id])).toEqual({ ok: true });
    expect(r.ledger.returnBuffers([id]).ok).toBe(false);
    expect(r.ledger.lentCount).toBe(0); // the refused indication's buffer was never the host's
  });
});

describe('ReceiveDelivery: seeded random interleavings', () => {
  interface HostReq {
    requestId: number;
    room: number;
  }

  /** Cheap assertion for the hot loop (expect() per step would dominate the run time). */
  function check(cond: boolean, msg: string): void {
    if (!cond) throw new Error(`${msg}\nlast events:\n  ${trace.slice(-15).join('\n  ')}`);
  }
  let trace: string[] = [];

  /** One run: random data / posts / replies / timers / buffer returns / FIN, then terminate. Returns path counts. */
  function run(seed: number, counts: Map<string, number>): void {
    const count = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
    trace = [];
    const log = (e: string) => trace.push(e);
    const rng = new Rng(seed);
    const sizes = [0, 1, 7, 64, 1000];
    const r = rig({ rcvIndicationSize: sizes[rng.int(sizes.length)] });
    const seeded = rng.chance(0.3) ? rng.int(400) : 0;
    if (seeded > 0) {
      r.d.seedHeld(stream(0, seeded));
      r.src.end = seeded;
    }
    let now = 0;
    let nextId = 1;
    const delivered: Uint8Array[] = [];
    let deliveredBytes = 0;
    const outstanding: HostReq[] = []; // posted, not completed, in posting order
    const lentByHost = new Set<number>();
    let pending: { indicationId: number; bufferId: number; bytes: Uint8Array } | undefined;
    let postedDuringIndication = false;
    let blocked = false; // a refusal happened and no request was posted since (R101)
    let fin = false;
    let disconnects = 0;
    const at = (what: string) => `seed ${seed}: ${what}`;

    const apply = (outs: DeliveryOutput[], wasBusy: boolean, isReply: boolean) => {
      check(!(wasBusy && !isReply && outs.length > 0), at('output during an unanswered indication (R94)'));
      for (const o of outs) {
        check(pending === undefined, at('output after an unanswered indication (R94)'));
        if (o.type === 'complete') {
          count(o.entries.length > 1 ? 'completion of several' : 'completion of one');
          for (const e of o.entries) {
            const head = outstanding.shift();
            check(head?.requestId === e.requestId, at(`completion order (R89): ${e.requestId} before ${head?.requestId}`));
            check(e.status === SUCCESS, at(`status ${e.status}`));
            check(e.bytes.length <= head!.room, at('more bytes than room (R107)'));
            if (e.bytes.length < head!.room) count('partial completion');
            delivered.push(e.bytes);
            deliveredBytes += e.bytes.length;
          }
        } else if (o.type === 'indicate') {
          count('indication');
          check(outstanding.length === 0, at('indication while a request waits (R99)'));
          check(!blocked, at('indication after a refusal without a post (R101)'));
          check(o.bytes.length > 0, at('empty indication'));
          pending = o;
          postedDuringIndication = false;
        } else {
          count('disconnect');
          check(fin, at('disconnect without FIN'));
          disconnects++;
          check(r.d.undeliveredBytes + r.src.available === 0, at('disconnect before all data was consumed (R110)'));
        }
      }
    };

    const step = (isReply: boolean, act: () => void, what: string) => {
      const wasBusy = r.d.busy;
      act();
      const outs = r.d.take();
      log(`${what} -> ${outs.map((o) => (o.type === 'complete' ? `complete[${o.entries.map((e) => `${e.requestId}:${e.bytes.length}`).join(',')}]` : o.type === 'indicate' ? `indicate ${o.bytes.length}` : o.type)).join(' ') || '-'}`);
      apply(outs, wasBusy, isReply);
      check((pending !== undefined) === r.d.busy, at('busy iff an indication is unanswered'));
      // Conservation: every byte received is delivered, in flight/held/placed, or still in the source.
      check(deliveredBytes + r.d.undeliveredBytes + r.src.available === r.src.end, at('byte conservation'));
    };

    const reply = (refuse = false) => {
      const p = pending!;
      pending = undefined;
      const k = refuse ? 1 : rng.int(3);
      const n = p.bytes.length;
      let problem: string | undefined;
      if (k === 0) {
        count('reply SUCCESS');
        // The indicated bytes reach the application before anything the reply's run emits.
        delivered.push(p.bytes);
        deliveredBytes += n;
        lentByHost.add(p.bufferId);
        step(true, () => (problem = r.d.onIndicateReply(p.indicationId, SUCCESS, n, now)), `reply SUCCESS ${n}`);
      } else {
        const c = k === 1 ? 0 : 1 + rng.int(n);
        count(c === 0 ? 'reply NOT_ACCEPTED' : c === n ? 'reply PARTIAL (all)' : 'reply PARTIAL');
        delivered.push(p.bytes.subarray(0, c));
        deliveredBytes += c;
        const postedMeanwhile = postedDuringIndication;
        blocked = !postedMeanwhile;
        step(true, () => (problem = r.d.onIndicateReply(p.indicationId, c === 0 ? NOT_ACCEPTED : PARTIAL, c, now)), `reply refuse ${c}/${n}`);
        // Nothing left over (a partial acceptance of everything, nothing else waiting): new data is new.
        blocked = !postedMeanwhile && r.d.undeliveredBytes + r.src.available > 0;
      }
      check(problem === undefined, at(`reply refused: ${problem}`));
    };

    // Per-run mix, so that some runs starve the host of requests and some flood it.
    const weights = [1 + rng.int(5), 1 + rng.int(5), 2, 1, 1]; // data, post, reply, timer, return
    const total = weights.reduce((x, y) => x + y, 0);
    const finAt = rng.chance(0.3) ? rng.int(250) : -1;
    const pick = () => {
      let w = rng.int(total);
      for (let j = 0; j < weights.length; j++) {
        if (w < weights[j]) return j;
        w -= weights[j];
      }
      return 0;
    };
    for (let i = 0; i < 250; i++) {
      const k = i === finAt ? 9 : [0, 3, 5, 7, 8][pick()];
      if (k <= 2 && !fin) {
        const len = rng.int(300);
        const psh = rng.chance(0.4);
        step(false, () => data(r, len, psh, now), `data ${len}${psh ? ' PSH' : ''}`);
      } else if (k <= 4) {
        const reqs: ReceivePost[] = [];
        for (let j = rng.int(3); j >= 0; j--) {
          const capacity = rng.chance(0.15) ? 0 : 1 + rng.int(400);
          const pre = capacity > 0 && rng.chance(0.15) ? rng.int(capacity + 1) : 0;
          const id = nextId++;
          reqs.push(req(id, capacity, rng.chance(0.4), pre > 0 ? new Uint8Array(pre) : undefined));
          outstanding.push({ requestId: id, room: capacity - pre });
        }
        if (r.d.disconnectIndicated) {
          count('post after disconnect');
          r.d.post(reqs, now);
          const outs = r.d.take();
          expect(show(outs)).toEqual([complete(...reqs.map((q) => ({ requestId: q.requestId, status: Status.INVALID_STATE, hex: '' })))]);
          outstanding.splice(outstanding.length - reqs.length);
        } else {
          if (pending) postedDuringIndication = true;
          else blocked = false;
          step(false, () => r.d.post(reqs, now), `post ${reqs.map((q) => `${q.requestId}:${q.capacity}${q.noPush ? 'np' : ''}${q.prefilled ? `+${q.prefilled.length}` : ''}`).join(',')}`);
        }
      } else if (k <= 6) {
        if (pending) reply();
      } else if (k === 7) {
        now += rng.int(2 * PUSH_MS);
        const due = r.d.pushDeadline;
        if (due !== undefined && now >= due) count('timer due');
        if (rng.chance(0.2) || (due !== undefined && now >= due)) step(false, () => r.d.onTimer(now), `timer ${now}`);
      } else if (k === 8) {
        if (lentByHost.size > 0) {
          const ids = [...lentByHost].filter(() => rng.chance(0.5));
          const res = r.ledger.returnBuffers(ids);
          check(res.ok, at(`receive-return refused: ${res.ok ? '' : res.problem}`));
          for (const id of ids) lentByHost.delete(id);
        }
      } else if (k === 9) {
        fin = true;
        step(false, () => r.d.onPeerFin(now), 'FIN');
      }
      // R100/R105: the ledger holds exactly the accepted indications not yet returned (+ the one in flight).
      const lent = r.ledger.lentBy(OWNER);
      check(lent.length === lentByHost.size + (pending ? 1 : 0), at('ledger count'));
      for (const id of lent) check(lentByHost.has(id) || id === pending?.bufferId, at(`ledger holds ${id}`));
      if (fin && !r.d.busy && r.d.undeliveredBytes + r.src.available === 0) {
        check(disconnects === 1, at('everything consumed after FIN but no disconnect (R110)'));
      }
    }
    check(disconnects <= 1, at('two disconnects'));
    // Terminate with whatever is left: often a refused indication, sometimes bytes the engine
    // queued that delivery has not been told about yet.
    const refuseAtEnd = rng.chance(0.6);
    while (pending) reply(refuseAtEnd);
    if (!fin && rng.chance(0.5)) r.src.push(1 + rng.int(200), rng.chance(0.5));
    const t = r.d.terminate(now);
    if (t.remaining.length > 0) count('terminate remainder');
    for (const e of t.completions) {
      const head = outstanding.shift();
      check(head?.requestId === e.requestId, at('terminate completion order (R20)'));
      check(e.status === (e.bytes.length > 0 ? SUCCESS : Status.UPLOAD_IN_PROGRESS), at('terminate completion status'));
      count(e.bytes.length > 0 ? 'terminate completion with data' : 'terminate completion empty');
      delivered.push(e.bytes);
    }
    check(outstanding.length === 0, at('a posted request was never completed (R20)'));
    delivered.push(t.remaining);
    const all = concat(delivered);
    check(all.length === r.src.end, at(`total bytes ${all.length} != ${r.src.end} (R15: nothing lost, nothing twice)`));
    check(hex(all) === hex(stream(0, r.src.end)), at('application stream differs from the source stream'));
    check(r.d.undeliveredBytes === 0, at('undelivered bytes after terminate'));
  }

  it('R15/R89/R94/R99/R101/R110: delivered + indicated-accepted + terminate remainder equals the source stream, once, in order (400 seeds)', () => {
    const counts = new Map<string, number>();
    for (let seed = 1; seed <= 400; seed++) run(seed, counts);
    if (process.env.DELIVERY_COUNTS) console.log(Object.fromEntries(counts));
    // The interleavings must actually reach every path they are meant to cover.
    for (const path of [
      'completion of one', 'completion of several', 'partial completion', 'indication', 'reply SUCCESS', 'reply NOT_ACCEPTED',
      'reply PARTIAL', 'reply PARTIAL (all)', 'disconnect', 'post after disconnect', 'timer due', 'terminate remainder',
      'terminate completion with data', 'terminate completion empty',
    ]) {
      expect(counts.get(path) ?? 0, path).toBeGreaterThan(20);
    }
  });
});
