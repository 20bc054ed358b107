/** ArpCache on the virtual clock: resolution retries, bounded queues, expiry and refresh. */
import { describe, expect, it } from 'vitest';
import { Simulator } from '../../src/link/sim/simulator.js';
import { ArpCache, type ArpCacheOptions } from '../../src/host/arp-cache.js';
import { virtualScheduler } from '../support/host-sim.js';

const IP = 0x0a000002;
const MAC = Uint8Array.from([2, 0, 0, 0, 0, 0x0b]);
const MAC2 = Uint8Array.from([2, 0, 0, 0, 0, 0x0c]);

function setup(opts: ArpCacheOptions = {}) {
  const sim = new Simulator();
  const log = {
    requests: [] as Array<{ t: number; ip: number; unicast: string | undefined }>,
    released: [] as Array<{ ip: number; mac: string; frames: number[] }>,
    drops: { 'queue-full': 0, unresolved: 0 },
  };
  const arp = new ArpCache(virtualScheduler(sim), {
    sendRequest: (ip, mac) => log.requests.push({ t: sim.now, ip, unicast: mac && Buffer.from(mac).toString('hex') }),
    release: (ip, mac, frames) => log.released.push({ ip, mac: Buffer.from(mac).toString('hex'), frames: frames.map((f) => f[0]!) }),
    drop: (reason, n) => { log.drops[reason] += n; },
  }, opts);
  return { sim, arp, log };
}

const frame = (tag: number): Uint8Array => Uint8Array.from([tag, 0, 0]);

describe('ArpCache', () => {
  it('RFC 1122 2.3.2.1: asks 3 times 1 s apart, then drops the queued frames and forgets the neighbor', () => {
    const { sim, arp, log } = setup();
    arp.enqueue(IP, frame(1));
    arp.enqueue(IP, frame(2));
    expect(log.requests).toEqual([{ t: 0, ip: IP, unicast: undefined }]);
    sim.runUntil(2_999);
    expect(log.requests.map((r) => r.t)).toEqual([0, 1_000, 2_000]);
    expect(arp.table()[0]).toMatchObject({ ip: IP, state: 'incomplete', queued: 2, requests: 3, mac: undefined });
    sim.runUntil(3_000);
    expect(log.drops.unresolved).toBe(2);
    expect(arp.table()).toEqual([]);
    expect(log.released).toEqual([]);
  });

  it('releases the queue in order once the reply arrives, and keeps at most queueLimit frames (oldest dropped)', () => {
    const { sim, arp, log } = setup({ queueLimit: 4 });
    for (let i = 1; i <= 6; i++) arp.enqueue(IP, frame(i));
    expect(log.drops['queue-full']).toBe(2);
    sim.runUntil(500);
    arp.learn(IP, MAC, false);
    expect(log.released).toEqual([{ ip: IP, mac: '02000000000b', frames: [3, 4, 5, 6] }]);
    expect(arp.lookup(IP)).toEqual(MAC);
    sim.runUntil(10_000);
    expect(log.requests).toHaveLength(1); // resolved: no retries
    expect(log.drops.unresolved).toBe(0);
  });

  it('a reachable entry expires after 60 s into stale; its next use probes (unicast) and refreshes it on reply', () => {
    const { sim, arp, log } = setup();
    arp.learn(IP, MAC, true);
    sim.runUntil(59_999);
    expect(arp.lookup(IP)).toEqual(MAC);
    expect(arp.table()[0]).toMatchObject({ state: 'reachable', expiresInMs: 1 });
    expect(log.requests).toEqual([]);
    sim.runUntil(60_000);
    expect(arp.table()[0]).toMatchObject({ state: 'stale', expiresInMs: 0 });
    expect(arp.lookup(IP)).toEqual(MAC); // still usable while probing
    expect(log.requests).toEqual([{ t: 60_000, ip: IP, unicast: '02000000000b' }]);
    expect(arp.table()[0]?.state).toBe('probe');
    sim.runUntil(60_400);
    arp.learn(IP, MAC2, false); // the neighbor answered (with a new MAC)
    expect(arp.table()[0]).toMatchObject({ state: 'reachable', expiresInMs: 60_000, mac: MAC2 });
    sim.runUntil(70_000);
    expect(log.requests).toHaveLength(1);
  });

  it('an unanswered probe removes the entry after its retries; later traffic resolves afresh', () => {
    const { sim, arp, log } = setup();
    arp.learn(IP, MAC, true);
    sim.runUntil(60_000);
    arp.lookup(IP);
    sim.runUntil(62_999);
    expect(log.requests.map((r) => [r.t, r.unicast])).toEqual([[60_000, '02000000000b'], [61_000, '02000000000b'], [62_000, '02000000000b']]);
    sim.runUntil(63_000);
    expect(arp.table()).toEqual([]);
    expect(arp.lookup(IP)).toBeUndefined();
    arp.enqueue(IP, frame(9));
    expect(log.requests.at(-1)).toEqual({ t: 63_000, ip: IP, unicast: undefined });
  });

  it('RFC 826: learn(create=false) updates a known neighbor only', () => {
    const { arp } = setup();
    arp.learn(IP, MAC, false);
    expect(arp.table()).toEqual([]);
    arp.learn(IP, MAC, true);
    arp.learn(IP, MAC2, false);
    expect(arp.lookup(IP)).toEqual(MAC2);
  });

  it('stays within maxEntries, evicting unresolved entries (counting their frames) before reachable ones', () => {
    const { arp, log } = setup({ maxEntries: 2 });
    arp.learn(1, MAC, true);
    arp.enqueue(2, frame(1));
    arp.enqueue(3, frame(2));
    expect(arp.size).toBe(2);
    expect(arp.table().map((r) => r.ip)).toEqual([1, 3]);
    expect(log.drops.unresolved).toBe(1);
  });

  it('clear() cancels the retry timers', () => {
    const { sim, arp, log } = setup();
    arp.enqueue(IP, frame(1));
    arp.clear();
    sim.runUntil(10_000);
    expect(log.requests).toHaveLength(1);
    expect(sim.pending).toBe(0);
  });
});
