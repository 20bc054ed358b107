import { describe, expect, it } from 'vitest';
import { SendRequestQueue } from '../../src/chimney/send-queue.js';
import { Status } from '../../src/chimney/status.js';

describe('send request queue', () => {
  it('R69: a request completes with SUCCESS only when every byte is acknowledged, in posting order', () => {
    const q = new SendRequestQueue();
    q.push(1, 500);
    q.push(2, 700);
    q.push(3, 800);
    expect(q.onAcked(499)).toEqual([]);
    expect(q.onAcked(1)).toEqual([{ requestId: 1, status: Status.SUCCESS, bytesTransferred: 500 }]);
    expect(q.onAcked(1100)).toEqual([{ requestId: 2, status: Status.SUCCESS, bytesTransferred: 700 }]);
    expect(q.outstandingBytes).toBe(400);
  });

  it('R6/R7/R10/R12: spec 6.11 worked example, chain mode: S1, S2 completed, S3 (400 acked) and S4 chained in order', () => {
    const q = new SendRequestQueue();
    for (const [id, len] of [[1, 500], [2, 700], [3, 800]] as const) q.push(id, len);
    q.push(4, 400);
    const done = q.onAcked(1600); // SndUna 1000 -> 2600
    expect(done.map((c) => [c.requestId, c.status, c.bytesTransferred])).toEqual([[1, Status.SUCCESS, 500], [2, Status.SUCCESS, 700]]);
    const t = q.terminate('chain');
    expect(t.completions).toEqual([]);
    expect(t.chain).toEqual([{ bufferId: 3, ackedBytes: 400 }, { bufferId: 4, ackedBytes: 0 }]);
    expect(q.outstandingRequests).toBe(0);
  });

  it('R13: spec 6.11 alternative (a): S3 and S4 complete with UPLOAD_IN_PROGRESS and their acknowledged bytes', () => {
    const q = new SendRequestQueue();
    for (const [id, len] of [[1, 500], [2, 700], [3, 800], [4, 400]] as const) q.push(id, len);
    q.onAcked(1600);
    const t = q.terminate('complete');
    expect(t.chain).toEqual([]);
    expect(t.completions).toEqual([
      { requestId: 3, status: Status.UPLOAD_IN_PROGRESS, bytesTransferred: 400 },
      { requestId: 4, status: Status.UPLOAD_IN_PROGRESS, bytesTransferred: 0 },
    ]);
  });

  it('R73: abort fails every outstanding request with REQUEST_ABORTED and the acknowledged count', () => {
    const q = new SendRequestQueue();
    q.push(7, 10);
    q.push(8, 10);
    q.onAcked(4);
    expect(q.abort()).toEqual([
      { requestId: 7, status: Status.REQUEST_ABORTED, bytesTransferred: 4 },
      { requestId: 8, status: Status.REQUEST_ABORTED, bytesTransferred: 0 },
    ]);
    expect(q.has(7)).toBe(false);
  });

  it('R6: every request is disposed of exactly once across completions, terminate and abort (seeded property)', () => {
    let seed = 12345;
    const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
    for (let round = 0; round < 200; round++) {
      const q = new SendRequestQueue();
      const seen = new Map<number, number>();
      let next = 1;
      let posted = 0;
      let acked = 0;
      for (let step = 0; step < 50; step++) {
        if (rnd(2) === 0) {
          const len = 1 + rnd(3000);
          q.push(next++, len);
          posted += len;
        } else {
          const n = rnd(posted - acked + 1);
          acked += n;
          for (const c of q.onAcked(n)) seen.set(c.requestId, (seen.get(c.requestId) ?? 0) + 1);
        }
      }
      const t = rnd(2) === 0 ? q.terminate('chain') : q.terminate('complete');
      for (const c of t.completions) seen.set(c.requestId, (seen.get(c.requestId) ?? 0) + 1);
      for (const c of t.chain) seen.set(c.bufferId, (seen.get(c.bufferId) ?? 0) + 1);
      expect(seen.size).toBe(next - 1);
      expect([...seen.values()].every((v) => v === 1)).toBe(true);
      // The chain starts at SndUna: its first entry's acked bytes are exactly the partial head.
      const ids = [...t.completions.map((c) => c.requestId), ...t.chain.map((c) => c.bufferId)];
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
    }
  });
});
