import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/link/sim/rng.js';
import { SimBoundExceededError, Simulator, type TimerId } from '../../src/link/sim/simulator.js';

/** Obviously-correct reference: linear scan for the smallest (time, scheduling order). */
class ReferenceScheduler {
  now = 0;
  private seq = 0;
  private events: { at: number; seq: number; fn: () => void; live: boolean }[] = [];
  schedule(at: number, fn: () => void) {
    const ev = { at, seq: this.seq++, fn, live: true };
    this.events.push(ev);
    return ev;
  }
  cancel(ev: { live: boolean }) {
    ev.live = false;
  }
  runUntilIdle() {
    for (;;) {
      let best = -1;
      for (let i = 0; i < this.events.length; i++) {
        const e = this.events[i]!;
        if (!e.live) continue;
        const b = best < 0 ? undefined : this.events[best]!;
        if (b === undefined || e.at < b.at || (e.at === b.at && e.seq < b.seq)) best = i;
      }
      if (best < 0) return;
      const e = this.events[best]!;
      e.live = false;
      this.now = e.at;
      e.fn();
    }
  }
}

interface SchedulerLike<H> {
  readonly now: number;
  schedule(at: number, fn: () => void): H;
  cancel(h: H): void;
}

/**
 * A random program: events with many equal times, some of which schedule more events and cancel
 * others. Both schedulers run the same program; their logs must match.
 */
function randomProgram<H>(s: SchedulerLike<H>, seed: number, initial: number): string[] {
  const rng = new Rng(seed);
  const log: string[] = [];
  const handles: H[] = [];
  let nextId = 0;
  const add = (at: number) => {
    const id = nextId++;
    handles.push(
      s.schedule(at, () => {
        log.push(`${id}@${s.now}`);
        if (nextId < initial * 3 && rng.chance(0.5)) add(s.now + rng.int(4)); // may be "now": same-time events
        if (rng.chance(0.3) && handles.length > 0) s.cancel(handles[rng.int(handles.length)]!);
      }),
    );
  };
  for (let i = 0; i < initial; i++) add(rng.int(40));
  for (let i = 0; i < initial / 3; i++) s.cancel(handles[rng.int(handles.length)]!);
  return log;
}

describe('Simulator', () => {
  it('runs events in order of time, then of scheduling, matching a reference scheduler (incl. cancels and heap compaction)', () => {
    for (const seed of [1, 2, 3]) {
      const sim = new Simulator();
      const log = randomProgram(sim, seed, 3000);
      sim.runUntilIdle();
      const ref = new ReferenceScheduler();
      const refLog = randomProgram(ref, seed, 3000);
      ref.runUntilIdle();
      expect(log.length).toBeGreaterThan(3000);
      expect(log).toEqual(refLog);
      expect(sim.pending).toBe(0);
    }
  });

  it('keeps the order when most events are cancelled (heap compaction)', () => {
    const sim = new Simulator();
    const rng = new Rng(4);
    const order: number[] = [];
    const ids: TimerId[] = [];
    const times: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      times.push(rng.int(100));
      ids.push(sim.schedule(times[i]!, () => order.push(i)));
    }
    const cancelled = new Set<number>();
    while (cancelled.size < 8000) {
      const i = rng.int(10_000);
      if (!cancelled.has(i)) expect(sim.cancel(ids[i])).toBe(true);
      cancelled.add(i);
    }
    expect(sim.pending).toBe(2000);
    sim.runUntilIdle();
    const expected = [...times.keys()].filter((i) => !cancelled.has(i)).sort((a, b) => times[a]! - times[b]! || a - b);
    expect(order).toEqual(expected);
  });

  it('events at the same time run in scheduling order, also when scheduled by a running event', () => {
    const sim = new Simulator();
    const log: string[] = [];
    sim.schedule(5, () => {
      log.push('a');
      sim.after(0, () => log.push('d'));
    });
    sim.schedule(5, () => log.push('b'));
    sim.schedule(5, () => log.push('c'));
    sim.schedule(4, () => log.push('first'));
    sim.runUntilIdle();
    expect(log).toEqual(['first', 'a', 'b', 'c', 'd']);
    expect(sim.now).toBe(5);
  });

  it('runUntil runs events due up to t inclusive, advances the clock to t and leaves later ones pending', () => {
    const sim = new Simulator(100);
    const seen: number[] = [];
    for (const t of [110, 120, 120.5, 130]) sim.schedule(t, () => seen.push(sim.now));
    sim.schedule(120, () => sim.schedule(120.5, () => seen.push(-sim.now)));
    expect(sim.runUntil(120.5)).toBe(5);
    expect(seen).toEqual([110, 120, 120.5, -120.5]);
    expect(sim.now).toBe(120.5);
    expect(sim.pending).toBe(1);
    expect(sim.nextTime()).toBe(130);
    sim.runUntil(125);
    expect(sim.now).toBe(125);
    expect(seen).toHaveLength(4);
  });

  it('cancel removes a pending event and reports whether it was pending', () => {
    const sim = new Simulator();
    let ran = '';
    const a = sim.after(1, () => (ran += 'a'));
    const b = sim.after(2, () => (ran += 'b'));
    expect(sim.pending).toBe(2);
    expect(sim.cancel(a)).toBe(true);
    expect(sim.cancel(a)).toBe(false);
    expect(sim.pending).toBe(1);
    sim.runUntilIdle();
    expect(ran).toBe('b');
    expect(sim.cancel(b)).toBe(false);
    expect(sim.cancel(undefined)).toBe(false);
    expect(b.at).toBe(2);
  });

  it('runUntilIdle throws an error naming maxEvents when a periodic timer never lets it idle', () => {
    const sim = new Simulator();
    const tick = () => sim.after(10, tick);
    tick();
    let err: unknown;
    try {
      sim.runUntilIdle({ maxEvents: 1000 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SimBoundExceededError);
    expect((err as SimBoundExceededError).bound).toBe('maxEvents');
    expect((err as Error).message).toMatch(/maxEvents bound \(1000\) exceeded/);
    expect(sim.eventsRun).toBe(1000);
    expect(sim.now).toBe(10_000); // ticks at 10, 20, ..., 10 000
  });

  it('runUntilIdle throws an error naming maxTimeMs without running the event past the bound', () => {
    const sim = new Simulator();
    const ran: number[] = [];
    sim.schedule(50, () => ran.push(50));
    sim.schedule(5000, () => ran.push(5000));
    expect(() => sim.runUntilIdle({ maxTimeMs: 1000 })).toThrow(/maxTimeMs bound \(1000 ms\) exceeded: next event at 5000 ms/);
    expect(ran).toEqual([50]);
    expect(sim.pending).toBe(1);
    // The bound is relative to the call: a second call from t=50 with 5000 ms reaches it.
    expect(sim.runUntilIdle({ maxTimeMs: 5000 })).toBe(1);
    expect(ran).toEqual([50, 5000]);
  });

  it('rejects times in the past, NaN and re-entrant runs', () => {
    const sim = new Simulator(10);
    expect(() => sim.schedule(9, () => {})).toThrow(/in the past/);
    expect(() => sim.schedule(NaN, () => {})).toThrow(RangeError);
    expect(() => sim.after(-1, () => {})).toThrow(RangeError);
    sim.after(1, () => sim.runUntilIdle());
    expect(() => sim.runUntilIdle()).toThrow(/re-entrant/);
    // The failed run left the simulator usable.
    let ok = false;
    sim.after(1, () => (ok = true));
    sim.runUntilIdle();
    expect(ok).toBe(true);
  });

  it('step runs exactly one event', () => {
    const sim = new Simulator();
    const log: number[] = [];
    sim.after(3, () => log.push(3));
    sim.after(1, () => log.push(1));
    expect(sim.step()).toBe(true);
    expect(log).toEqual([1]);
    expect(sim.now).toBe(1);
    expect(sim.step()).toBe(true);
    expect(sim.step()).toBe(false);
    expect(log).toEqual([1, 3]);
  });

  it('handles millions of events with re-armed (cancelled) timers in bounded memory and time', () => {
    const sim = new Simulator();
    const rng = new Rng(7);
    // 1000 "connections", each re-arming a far retransmission timer on every near event, as TCP does.
    const rto: (TimerId | undefined)[] = new Array(1000).fill(undefined);
    let fired = 0;
    let rtoFired = 0;
    let last = 0;
    let monotonic = true;
    const step = (c: number) => {
      fired++;
      if (sim.now < last) monotonic = false;
      last = sim.now;
      sim.cancel(rto[c]);
      rto[c] = sim.after(1000, () => rtoFired++);
      if (fired < 1_000_000) sim.after(rng.float() * 2, () => step(c));
    };
    for (let c = 0; c < 1000; c++) sim.after(0, () => step(c));
    const t0 = performance.now();
    sim.runUntilIdle();
    const elapsed = performance.now() - t0;
    expect(fired).toBe(1_000_000 + 999);
    expect(rtoFired).toBe(1000);
    expect(monotonic).toBe(true);
    expect(sim.pending).toBe(0);
    // Generous: about 1 s on a laptop; catches O(n) per event.
    expect(elapsed).toBeLessThan(20_000);
  });
});
