/** The wall-clock Scheduler (src/link/scheduler.ts) on real Node timers, and the TCP demux. */
import { describe, expect, it } from 'vitest';
import { deferOn, WallClockScheduler } from '../../src/link/scheduler.js';
import { Simulator } from '../../src/link/sim/simulator.js';
import { TcpDemux, type DemuxEntry } from '../../src/host/tcp-demux.js';
import { virtualScheduler } from '../support/host-sim.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('WallClockScheduler', () => {
  it('runs callbacks in deadline order (ties in scheduling order), never before their time', async () => {
    const s = new WallClockScheduler();
    const t0 = s.now();
    const ran: Array<[string, number]> = [];
    const at = (label: string, ms: number): void => { s.schedule(t0 + ms, () => ran.push([label, s.now() - t0])); };
    at('c', 60);
    at('a', 20);
    at('b1', 40);
    at('b2', 40);
    at('past', -5);
    await sleep(100);
    expect(ran.map(([l]) => l)).toEqual(['past', 'a', 'b1', 'b2', 'c']);
    for (const [label, t] of ran) {
      const due = { past: -5, a: 20, b1: 40, b2: 40, c: 60 }[label]!;
      expect(t).toBeGreaterThanOrEqual(due);
    }
    expect(s.pending).toBe(0);
  });

  it('cancel() stops a callback; re-arming earlier and later works with one timer', async () => {
    const s = new WallClockScheduler();
    const t0 = s.now();
    const ran: string[] = [];
    const late = s.schedule(t0 + 30, () => ran.push('late'));
    s.schedule(t0 + 10, () => ran.push('early'));
    s.cancel(late);
    s.cancel(late); // twice is harmless
    const h = s.schedule(t0 + 20, () => ran.push('cancelled'));
    s.cancel(h);
    s.schedule(t0 + 40, () => ran.push('kept'));
    await sleep(60);
    expect(ran).toEqual(['early', 'kept']);
  });

  it('survives heavy re-arming (a retransmission timer restarted on every ACK)', async () => {
    const s = new WallClockScheduler();
    const t0 = s.now();
    let fired = 0;
    let handle: unknown;
    for (let i = 0; i < 5_000; i++) {
      if (handle !== undefined) s.cancel(handle);
      handle = s.schedule(t0 + 20 + i / 1000, () => { fired++; });
    }
    expect(s.pending).toBe(1);
    await sleep(50);
    expect(fired).toBe(1);
  });

  it('callbacks may schedule more work for now: it runs in the same pass', async () => {
    const s = new WallClockScheduler();
    const order: number[] = [];
    s.schedule(s.now(), () => {
      order.push(1);
      s.schedule(s.now() - 1, () => order.push(2));
    });
    await sleep(10);
    expect(order).toEqual([1, 2]);
  });

  it('close() cancels everything and ignores later work', async () => {
    const s = new WallClockScheduler();
    let n = 0;
    s.schedule(s.now() + 5, () => n++);
    s.close();
    s.schedule(s.now(), () => n++);
    s.defer(() => n++);
    await sleep(20);
    expect(n).toBe(0);
  });

  it('deferOn uses defer (after I/O of this turn) where present, else a zero-delay schedule', async () => {
    const s = new WallClockScheduler();
    const order: string[] = [];
    deferOn(s, () => order.push('deferred'));
    queueMicrotask(() => order.push('microtask'));
    order.push('sync');
    await sleep(5);
    expect(order).toEqual(['sync', 'microtask', 'deferred']);

    const sim = new Simulator();
    let ran = false;
    deferOn(virtualScheduler(sim), () => { ran = true; });
    expect(ran).toBe(false);
    sim.runUntil(0);
    expect(ran).toBe(true);
  });
});

describe('TcpDemux', () => {
  const entry = (remoteIp: number, remotePort: number, localPort: number): DemuxEntry => ({ remoteIp, remotePort, localPort, handler: { input: () => {} } });

  it('finds connections by the full 4-tuple only', () => {
    const d = new TcpDemux();
    const e1 = d.add(entry(0x0a000002, 40000, 80));
    const e2 = d.add(entry(0x0a000003, 40000, 80));
    const e3 = d.add(entry(0x0a000002, 40001, 80));
    expect(d.get(0x0a000002, 40000, 80)).toBe(e1);
    expect(d.get(0x0a000003, 40000, 80)).toBe(e2);
    expect(d.get(0x0a000002, 40001, 80)).toBe(e3);
    expect(d.get(0x0a000002, 80, 40000)).toBeUndefined();
    expect(d.get(0xffffffff, 65535, 65535)).toBeUndefined();
    expect(() => d.add(entry(0x0a000002, 40000, 80))).toThrow(/in use/);
    expect(d.size).toBe(3);
  });

  it('removes only the registered entry and tracks local port use', () => {
    const d = new TcpDemux();
    const e1 = d.add(entry(0xc0a80001, 1, 65535));
    expect(d.remove(entry(0xc0a80001, 1, 65535))).toBe(false); // same tuple, other object
    expect(d.localPortInUse(65535)).toBe(true);
    expect(d.remove(e1)).toBe(true);
    expect(d.remove(e1)).toBe(false);
    expect(d.localPortInUse(65535)).toBe(false);
    expect(d.size).toBe(0);
    expect(d.entries()).toEqual([]);
  });
});
