/**
 * IPv4 neighbor cache (RFC 826 with the RFC 1122 2.3.2 rules): entries learnt from replies and
 * from requests addressed to us, a bounded queue of frames per unresolved neighbor, requests
 * retried a few times then the queue dropped. A reachable entry expires into 'stale': it is still
 * used (a TCP stream must not stall on every expiry) but its first use sends a fresh request, and
 * if that stays unanswered the entry goes away. Timers come from the injected Scheduler, so the
 * same code runs on the virtual clock.
 */
import type { Scheduler } from '../tcp/driver.js';
import { macEquals } from '../wire/addresses.js';

export interface ArpCacheOptions {
  /** How long a confirmed entry counts as reachable (default 60 s). */
  reachableMs?: number;
  /** Requests per resolution attempt (default 3). */
  retries?: number;
  /** Spacing of those requests (default 1 s). */
  retryIntervalMs?: number;
  /** Frames held per unresolved neighbor; the oldest is dropped beyond it (default 16). */
  queueLimit?: number;
  /** Upper bound on entries; the oldest unresolved/stale one is evicted (default 1024). */
  maxEntries?: number;
}

export type ArpState = 'incomplete' | 'reachable' | 'stale' | 'probe';

export interface ArpTableRow {
  ip: number;
  /** Undefined while incomplete. */
  mac: Uint8Array | undefined;
  state: ArpState;
  /** ms until a reachable entry turns stale; 0 otherwise. */
  expiresInMs: number;
  /** Frames waiting for resolution. */
  queued: number;
  /** Requests sent in the current resolution attempt. */
  requests: number;
}

export interface ArpCallbacks {
  /** Broadcast (or, when `mac` is given, unicast) a request for `ip`. */
  sendRequest(ip: number, mac: Uint8Array | undefined): void;
  /** `ip` resolved: send the frames that waited for it (their destination MAC is still unset). */
  release(ip: number, mac: Uint8Array, frames: Uint8Array[]): void;
  /** Frames dropped: 'queue-full' (bounded queue) or 'unresolved' (retries exhausted). */
  drop(reason: 'queue-full' | 'unresolved', count: number): void;
  /** A resolved neighbor answered from a different MAC (e.g. a replaced router). */
  changed?(ip: number, mac: Uint8Array): void;
}

interface Entry {
  ip: number;
  mac: Uint8Array | undefined;
  state: ArpState;
  confirmedAt: number;
  queue: Uint8Array[];
  requests: number;
  timer: unknown;
}

export class ArpCache {
  readonly reachableMs: number;
  readonly retries: number;
  readonly retryIntervalMs: number;
  readonly queueLimit: number;
  readonly maxEntries: number;
  private readonly entries = new Map<number, Entry>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly cb: ArpCallbacks,
    opts: ArpCacheOptions = {},
  ) {
    this.reachableMs = opts.reachableMs ?? 60_000;
    this.retries = opts.retries ?? 3;
    this.retryIntervalMs = opts.retryIntervalMs ?? 1_000;
    this.queueLimit = opts.queueLimit ?? 16;
    this.maxEntries = opts.maxEntries ?? 1024;
  }

  /**
   * The MAC to send to `ip` now, or undefined when the caller must `enqueue` the frame. Using a
   * stale entry starts a refresh probe.
   */
  lookup(ip: number): Uint8Array | undefined {
    const e = this.entries.get(ip);
    if (e === undefined || e.mac === undefined) return undefined;
    if (e.state === 'reachable' && this.scheduler.now() - e.confirmedAt >= this.reachableMs) e.state = 'stale';
    if (e.state === 'stale') {
      e.state = 'probe';
      e.requests = 0;
      this.request(e);
    }
    return e.mac;
  }

  /** Hold a frame until `ip` resolves (starts resolution when none runs). */
  enqueue(ip: number, frame: Uint8Array): void {
    let e = this.entries.get(ip);
    if (e === undefined) {
      this.makeRoom();
      e = { ip, mac: undefined, state: 'incomplete', confirmedAt: 0, queue: [], requests: 0, timer: undefined };
      this.entries.set(ip, e);
    }
    if (e.queue.length >= this.queueLimit) {
      e.queue.shift();
      this.cb.drop('queue-full', 1);
    }
    e.queue.push(frame);
    if (e.state === 'incomplete' && e.timer === undefined) this.request(e);
  }

  /**
   * A mapping seen on the wire. `create` is true for replies and requests addressed to us (RFC 826:
   * otherwise only existing entries are updated).
   */
  learn(ip: number, mac: Uint8Array, create: boolean): void {
    let e = this.entries.get(ip);
    if (e === undefined) {
      if (!create) return;
      this.makeRoom();
      e = { ip, mac: undefined, state: 'incomplete', confirmedAt: 0, queue: [], requests: 0, timer: undefined };
      this.entries.set(ip, e);
    }
    const moved = e.mac !== undefined && !macEquals(e.mac, mac);
    e.mac = mac.slice();
    e.state = 'reachable';
    e.confirmedAt = this.scheduler.now();
    e.requests = 0;
    if (e.timer !== undefined) this.scheduler.cancel(e.timer);
    e.timer = undefined;
    if (e.queue.length > 0) {
      const q = e.queue;
      e.queue = [];
      this.cb.release(ip, e.mac, q);
    }
    if (moved) this.cb.changed?.(ip, e.mac);
  }

  /** A static entry (tests, or a CLI `arp -s`); reachable until it expires like any other. */
  set(ip: number, mac: Uint8Array): void {
    this.learn(ip, mac, true);
  }

  delete(ip: number): boolean {
    const e = this.entries.get(ip);
    if (e === undefined) return false;
    if (e.timer !== undefined) this.scheduler.cancel(e.timer);
    this.entries.delete(ip);
    return true;
  }

  /** The table as rows (for status output and the CLI). */
  table(): ArpTableRow[] {
    const now = this.scheduler.now();
    const rows: ArpTableRow[] = [];
    for (const e of this.entries.values()) {
      if (e.state === 'reachable' && now - e.confirmedAt >= this.reachableMs) e.state = 'stale';
      rows.push({
        ip: e.ip,
        mac: e.mac?.slice(),
        state: e.state,
        expiresInMs: e.state === 'reachable' ? Math.max(0, e.confirmedAt + this.reachableMs - now) : 0,
        queued: e.queue.length,
        requests: e.requests,
      });
    }
    return rows.sort((a, b) => a.ip - b.ip);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Cancel every timer and forget everything (queued frames are discarded uncounted). */
  clear(): void {
    for (const e of this.entries.values()) if (e.timer !== undefined) this.scheduler.cancel(e.timer);
    this.entries.clear();
  }

  private request(e: Entry): void {
    e.requests++;
    // A probe of a known neighbor may go unicast; Linux does the same for its PROBE state.
    this.cb.sendRequest(e.ip, e.state === 'probe' ? e.mac : undefined);
    e.timer = this.scheduler.schedule(this.scheduler.now() + this.retryIntervalMs, () => {
      e.timer = undefined;
      if (this.entries.get(e.ip) !== e || e.state === 'reachable') return;
      if (e.requests < this.retries) {
        this.request(e);
        return;
      }
      this.entries.delete(e.ip);
      if (e.queue.length > 0) this.cb.drop('unresolved', e.queue.length);
      e.queue = [];
    });
  }

  private makeRoom(): void {
    if (this.entries.size < this.maxEntries) return;
    // Insertion order: the first non-reachable entry is the oldest; else the oldest of all.
    let victim: Entry | undefined;
    for (const e of this.entries.values()) {
      if (e.state !== 'reachable') { victim = e; break; }
      victim ??= e;
    }
    if (victim === undefined) return;
    if (victim.queue.length > 0) this.cb.drop('unresolved', victim.queue.length);
    this.delete(victim.ip);
  }
}
