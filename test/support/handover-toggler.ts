/**
 * Hand-overs on demand for interop tests: alternates `terminateOffload()` and `offload()` on one
 * socket, one operation at a time, waiting `periodMs()` before each, and records what each took.
 */
import { performance } from 'node:perf_hooks';
import type { TcpSocket } from '../../src/host/socket.js';

/** One hand-over as the host saw it: from the call until it resolved (epoch ms, sub-ms). */
export interface HandOver {
  kind: 'terminate' | 'offload';
  startMs: number;
  endMs: number;
}

export interface Toggler {
  stop(): Promise<void>;
  readonly terminates: number;
  readonly offloads: number;
  readonly errors: string[];
  readonly handOvers: HandOver[];
}

const nowMs = (): number => performance.timeOrigin + performance.now();

/** Alternates terminateOffload() / offload(), `periodMs()` apart, until `stop()` or the socket's end. */
export function toggleEvery(sock: TcpSocket, periodMs: () => number): Toggler {
  let running = true;
  const t = { terminates: 0, offloads: 0, errors: [] as string[], handOvers: [] as HandOver[] };
  const loop = (async (): Promise<void> => {
    while (running) {
      await new Promise((r) => setTimeout(r, periodMs()));
      if (!running || sock.destroyed) break;
      const dbg = process.env.OFFLOAD_DEBUG ? (what: string): void => console.info(`${(Date.now() / 1000).toFixed(6)} ${what}`) : undefined;
      try {
        dbg?.(sock.offloaded ? 'terminate start' : 'offload start');
        const startMs = nowMs();
        if (sock.offloaded) {
          await sock.terminateOffload();
          t.terminates++;
          t.handOvers.push({ kind: 'terminate', startMs, endMs: nowMs() });
        } else {
          await sock.offload();
          t.offloads++;
          t.handOvers.push({ kind: 'offload', startMs, endMs: nowMs() });
        }
        dbg?.('done');
      } catch (e) {
        // Near the end the connection may leave the offloadable states: that stops the toggling.
        if (sock.destroyed || !running) break;
        if (/not offloadable in state|closed or not driven/.test((e as Error).message)) break;
        t.errors.push((e as Error).message);
      }
    }
  })();
  return {
    get terminates() { return t.terminates; },
    get offloads() { return t.offloads; },
    get errors() { return t.errors; },
    get handOvers() { return t.handOvers; },
    async stop() { running = false; await loop; },
  };
}
