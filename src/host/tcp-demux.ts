/**
 * Connection lookup by 4-tuple, keyed by numbers only (a formatted string key costs ~300 ns per
 * lookup, performance-facts.md): the ports form one 32-bit key, the remote address a second one.
 * The local address is the stack's single address. Each entry holds a replaceable `handler`: the
 * host's own driver today, a forwarder to the offload target once the connection is offloaded.
 */
import type { TcpSegment } from '../wire/tcp-segment.js';

/** Whoever consumes the segments of one connection. */
export interface SegmentHandler {
  /** `seg.payload` is a view valid only during the call. */
  input(seg: TcpSegment): void;
}

export interface DemuxEntry {
  readonly remoteIp: number;
  readonly remotePort: number;
  readonly localPort: number;
  handler: SegmentHandler;
}

/** remotePort and localPort in one 32-bit number (non-negative, exact in a double). */
function portKey(localPort: number, remotePort: number): number {
  return localPort * 65536 + remotePort;
}

export class TcpDemux {
  private readonly byPorts = new Map<number, Map<number, DemuxEntry>>();
  /** Connections per local port (ephemeral port choice, listener checks). */
  private readonly localPortUse = new Map<number, number>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(remoteIp: number, remotePort: number, localPort: number): DemuxEntry | undefined {
    return this.byPorts.get(portKey(localPort, remotePort))?.get(remoteIp);
  }

  /** Adds an entry; throws when the 4-tuple is taken (a caller bug, never input-driven). */
  add(entry: DemuxEntry): DemuxEntry {
    const k = portKey(entry.localPort, entry.remotePort);
    let inner = this.byPorts.get(k);
    if (inner === undefined) {
      inner = new Map();
      this.byPorts.set(k, inner);
    }
    if (inner.has(entry.remoteIp)) throw new Error(`4-tuple in use: local port ${entry.localPort}, remote port ${entry.remotePort}`);
    inner.set(entry.remoteIp, entry);
    this.localPortUse.set(entry.localPort, (this.localPortUse.get(entry.localPort) ?? 0) + 1);
    this.count++;
    return entry;
  }

  /** Removes `entry` if it is still the one registered for its 4-tuple. */
  remove(entry: DemuxEntry): boolean {
    const k = portKey(entry.localPort, entry.remotePort);
    const inner = this.byPorts.get(k);
    if (inner === undefined || inner.get(entry.remoteIp) !== entry) return false;
    inner.delete(entry.remoteIp);
    if (inner.size === 0) this.byPorts.delete(k);
    const n = (this.localPortUse.get(entry.localPort) ?? 1) - 1;
    if (n === 0) this.localPortUse.delete(entry.localPort);
    else this.localPortUse.set(entry.localPort, n);
    this.count--;
    return true;
  }

  /** Whether any connection uses `localPort`. */
  localPortInUse(localPort: number): boolean {
    return this.localPortUse.has(localPort);
  }

  entries(): DemuxEntry[] {
    const out: DemuxEntry[] = [];
    for (const inner of this.byPorts.values()) for (const e of inner.values()) out.push(e);
    return out;
  }
}
