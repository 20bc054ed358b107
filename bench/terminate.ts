/**
 * Issue 5: how long a terminate takes in software, with no wire in the measurement.
 *
 * Latency: a HostStack on a ChimneyLink to an in-process TargetCore, the core's wire side on a sim
 * link to a peer HostStack, all on a virtual clock (the rig of test/host/offload.test.ts). Per
 * sample: a fresh connection is offloaded, the target's frames to the peer are dropped (so nothing
 * gets acknowledged), the host writes N bytes (the target then holds N bytes of unacknowledged send
 * data), and the wall clock runs from `socket.terminateOffload()` until it resolves: the
 * TerminateOffload, the core's export of the delegated state and send chain, the completion, and the
 * host engine's import. Messages cross as simulator events at the same virtual instant, so the
 * figure is CPU time of our code, not IPC or wire latency. The last sample of each size is then let
 * through to the peer and its stream checked by sha256.
 *
 * Mass terminate: N connections under one neighbor and one path initiated into a bare TargetCore,
 * then ONE TerminateOffload whose tree names the neighbor, the path and all N TCP blocks; timed from
 * the message going in until the core has emitted its completion (synchronously), plus the host's
 * codec's encode + decode of that completion as a separate figure (what a real binding adds).
 */
import { performance } from 'node:perf_hooks';
import { Simulator } from '../src/link/sim/simulator.js';
import { createSimPair } from '../src/link/sim/sim-link.js';
import type { Link } from '../src/link/link.js';
import { TargetCore } from '../src/target/core.js';
import { ChimneyLink } from '../src/host/chimney-link.js';
import { HostStack } from '../src/host/stack.js';
import type { TcpSocket } from '../src/host/socket.js';
import type { MessageOf, TargetMessage } from '../src/ipc/messages.js';
import { Status } from '../src/chimney/status.js';
import { decodeFrame, encodeFrame } from '../src/ipc/codec.js';
import { Collector, IP_A, IP_B, MAC_A, MAC_B, payload, sha256, virtualScheduler } from '../test/support/host-sim.js';
import { benchNeighbor, benchPath, benchTcp } from '../test/support/chimney-sim.js';
import { median } from './report.js';

export interface TerminateLatency {
  /** Unacknowledged send data the target held at terminate. */
  outstandingBytes: number;
  samples: number;
  medianMs: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
  /** The last sample's stream reached the peer after the terminate with the sent sha256. */
  verified: boolean;
}

export interface MassTerminate {
  connections: number;
  /** TerminateOffload in -> TerminateOffloadComplete out of the core (one message, one turn). */
  coreMs: number;
  /** Encode + decode of that completion by the IPC codec (what crossing a real binding adds). */
  ipcMs: number;
  completionBytes: number;
  /** coreMs of every repetition (coreMs and ipcMs are medians over them). */
  coreRunsMs: number[];
  /** Every block completed with SUCCESS and the core holds no connection afterwards. */
  verified: boolean;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** A link that drops what it is given while `blocked` (the peer then acknowledges nothing). */
function gate(inner: Link): Link & { blocked: boolean } {
  const g = {
    blocked: false,
    name: inner.name, layer: inner.layer, mtu: inner.mtu, counters: inner.counters,
    send(frames: readonly Uint8Array[]): void { if (!g.blocked) inner.send(frames); },
    setReceiver: inner.setReceiver.bind(inner),
    close: inner.close.bind(inner),
  };
  return g;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

class Rig {
  readonly sim = new Simulator();
  readonly core: TargetCore;
  readonly link: ChimneyLink;
  readonly wire: ReturnType<typeof gate>;
  readonly a: HostStack;
  readonly b: HostStack;
  private port = 1000;

  constructor() {
    const scheduler = virtualScheduler(this.sim);
    const [wa, wb] = createSimPair(this.sim, { name: 'wire', mtu: 1500 });
    this.wire = gate(wa);
    const later = (fn: () => void): void => { this.sim.schedule(this.sim.now, fn); };
    this.link = new ChimneyLink({ send: (m) => later(() => this.core.onHostMessage(m)) });
    this.core = new TargetCore({
      scheduler, interfaceMac: MAC_A, terminateSendMode: 'chain', limits: { maxConnections: 100_000 },
      toHost: (m) => later(() => this.link.onTargetMessage(m)), toWire: (f) => this.wire.send([f]),
    });
    this.wire.setReceiver((frames) => { for (const f of frames) this.core.onFrame(f); });
    this.a = new HostStack({
      link: this.link, mac: MAC_A, ipv4: { address: IP_A, prefixLength: 24 }, scheduler,
      offload: { policy: 'manual', sendBacklog: 16 * 1024 * 1024 },
    });
    this.b = new HostStack({ link: wb, mac: MAC_B, ipv4: { address: IP_B, prefixLength: 24 }, scheduler });
  }

  /** Run events due now and application turns until `cond` (virtual time moves only when idle). */
  async until(cond: () => boolean, what: string, maxVirtualMs = 600_000): Promise<void> {
    const limit = this.sim.now + maxVirtualMs;
    for (let idle = 0; !cond();) {
      if (this.sim.runUntil(this.sim.now) > 0) {
        await null;
        continue;
      }
      await turn();
      if (cond()) return;
      if (this.sim.runUntil(this.sim.now) > 0) continue;
      const t = this.sim.nextTime();
      if (t === undefined) {
        if (++idle > 50) throw new Error(`${what}: simulation idle and the condition does not hold`);
        continue;
      }
      if (t > limit) throw new Error(`${what}: not reached within ${maxVirtualMs} virtual ms`);
      idle = 0;
      this.sim.runUntil(t);
    }
  }

  async offloadedPair(): Promise<{ ca: TcpSocket; cb: TcpSocket }> {
    const port = this.port++;
    let cb: TcpSocket | undefined;
    const server = this.b.listen(port, (s) => { cb = s; server.close(); }, { allowHalfOpen: true });
    const ca = this.a.connect({ host: IP_B, port, allowHalfOpen: true });
    let connected = false;
    ca.once('connect', () => { connected = true; });
    await this.until(() => connected && cb !== undefined, 'handshake');
    let offloaded = false;
    ca.offload().then(() => { offloaded = true; }, () => undefined);
    await this.until(() => offloaded, 'offload');
    return { ca, cb: cb! };
  }

  close(): void {
    this.a.close();
    this.b.close();
  }
}

/** Median and p99 terminate latency for each outstanding size (fresh connection per sample). */
export async function terminateLatency(sizes: readonly number[], samples: number, log: (s: string) => void = () => undefined): Promise<TerminateLatency[]> {
  const out: TerminateLatency[] = [];
  for (const size of sizes) {
    const rig = new Rig();
    const times: number[] = [];
    let verified = false;
    try {
      // A few unmeasured rounds first: JIT warm-up would otherwise be the p99.
      for (let i = -5; i < samples; i++) {
        const last = i === samples - 1;
        const { ca, cb } = await rig.offloadedPair();
        const rb = new Collector(cb);
        const data = payload(7 + i, size);
        const requests0 = rig.a.offload!.stats.sendRequests;
        rig.wire.blocked = true;
        if (size > 0) ca.write(data);
        await rig.until(() => rig.a.offload!.stats.sendRequests - requests0 === Math.ceil(size / 65536) && rig.sim.nextTime() !== rig.sim.now, 'send requests at the target');
        let done = false;
        let failed: unknown;
        const t0 = performance.now();
        ca.terminateOffload().then(() => { done = true; }, (e: unknown) => { failed = e; done = true; });
        while (!done) {
          if (rig.sim.runUntil(rig.sim.now) === 0) await turn();
          else for (let k = 0; k < 4 && !done; k++) await null;
        }
        const ms = performance.now() - t0;
        if (failed !== undefined) throw failed;
        if (ca.offloaded) throw new Error('terminate resolved but the socket is still offloaded');
        if (i >= 0) times.push(ms);
        if (last) {
          // The host engine now owns the unacknowledged bytes: they must reach the peer intact.
          rig.wire.blocked = false;
          ca.end();
          await rig.until(() => rb.ended || rb.error !== undefined, 'stream after terminate');
          verified = rb.bytes === size && rb.digest() === sha256(data);
        }
        ca.destroy();
        cb.destroy();
        rig.wire.blocked = false;
        await rig.until(() => rig.core.connectionCount === 0, 'cleanup');
      }
    } finally {
      rig.close();
    }
    const row: TerminateLatency = {
      outstandingBytes: size, samples: times.length, medianMs: median(times), p99Ms: percentile(times, 99),
      minMs: Math.min(...times), maxMs: Math.max(...times), verified,
    };
    log(`  terminate with ${size} B outstanding: median ${row.medianMs.toFixed(3)} ms, p99 ${row.p99Ms.toFixed(3)} ms (${row.samples} samples)`);
    out.push(row);
  }
  return out;
}

/** One TerminateOffload naming `n` connections (under one neighbor and path) into a bare core. */
export function massTerminate(n: number): MassTerminate {
  const sim = new Simulator();
  const msgs: TargetMessage[] = [];
  const core = new TargetCore({
    scheduler: virtualScheduler(sim), interfaceMac: MAC_A, terminateSendMode: 'chain',
    limits: { maxConnections: n, maxPaths: 16, maxNeighbors: 16 }, congestionControl: 'newreno',
    toHost: (m) => { msgs.push(m); }, toWire: () => undefined,
  });
  const tcpBlocks = Array.from({ length: n }, (_, i) => ({
    blockId: 3 + i, role: 'new' as const, layer: 'tcp' as const, handle: 3 + i,
    state: benchTcp({ localPort: 1024 + i, handle: 3 + i }), children: [],
  }));
  core.onHostMessage({
    type: 'InitiateOffload', opId: 1, blocks: [{
      blockId: 1, role: 'new', layer: 'neighbor', handle: 1, state: benchNeighbor(),
      children: [{ blockId: 2, role: 'new', layer: 'path', handle: 2, state: benchPath(), children: tcpBlocks }],
    }],
  });
  const init = msgs.find((m): m is MessageOf<'InitiateOffloadComplete'> => m.type === 'InitiateOffloadComplete');
  if (!init || core.connectionCount !== n) throw new Error(`mass initiate: ${core.connectionCount} of ${n} connections offloaded`);
  const ctx = new Map(init.results.map((r) => [r.blockId, r.ctx ?? 0]));
  const tcp = tcpBlocks.map((b) => ({ blockId: 100_000 + b.blockId, ctx: ctx.get(b.blockId)!, layer: 'tcp' as const, children: [] }));
  const term = {
    type: 'TerminateOffload' as const, opId: 2, blocks: [{
      blockId: 90_000, ctx: ctx.get(1)!, layer: 'neighbor' as const,
      children: [{ blockId: 90_001, ctx: ctx.get(2)!, layer: 'path' as const, children: tcp }],
    }],
  };
  msgs.length = 0;
  const t0 = performance.now();
  core.onHostMessage(term);
  const coreMs = performance.now() - t0;
  const done = msgs.find((m): m is MessageOf<'TerminateOffloadComplete'> => m.type === 'TerminateOffloadComplete');
  if (!done) throw new Error('mass terminate: no completion in the same turn');
  // What a real binding adds: the completion (n DELEGATED states) encoded and decoded once.
  const t1 = performance.now();
  const frame = encodeFrame(done);
  const back = decodeFrame(frame);
  const ipcMs = performance.now() - t1;
  const tcpResults = done.results.filter((r) => r.tcp?.delegated !== undefined);
  const verified = done.results.length === n + 2 && done.results.every((r) => r.status === Status.SUCCESS)
    && tcpResults.length === n && core.connectionCount === 0 && back.ok && back.message.type === 'TerminateOffloadComplete';
  return { connections: n, coreMs, ipcMs, completionBytes: frame.length, coreRunsMs: [coreMs], verified };
}

/** `massTerminate` repeated on fresh cores; medians, every run verified. */
export function massTerminateRuns(n: number, reps: number): MassTerminate {
  const runs = Array.from({ length: reps }, () => massTerminate(n));
  return {
    connections: n, coreMs: median(runs.map((r) => r.coreMs)), ipcMs: median(runs.map((r) => r.ipcMs)),
    completionBytes: runs[0]!.completionBytes, coreRunsMs: runs.map((r) => r.coreMs), verified: runs.every((r) => r.verified),
  };
}
