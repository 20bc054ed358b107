/**
 * The offload path over a real IPC binding: IpcServer / IpcClient on a Unix socket in a temp dir,
 * the host stack on a ChimneyLink over the client, the TargetCore on the server's binding, the
 * target's wire side on an in-memory real-time link to a peer HostStack. Wall clock throughout.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IpcClient } from '../../src/ipc/client.js';
import { IpcServer, type IpcBinding } from '../../src/ipc/server.js';
import { memoryPair } from '../support/memory-pair.js';
import { WallClockScheduler } from '../../src/link/scheduler.js';
import { TargetCore } from '../../src/target/core.js';
import { ChimneyLink } from '../../src/host/chimney-link.js';
import { HostStack } from '../../src/host/stack.js';
import type { TcpSocket } from '../../src/host/socket.js';
import { Collector, IP_A, IP_B, MAC_A, MAC_B, payload, sha256, writeAll } from '../support/host-sim.js';

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('host offload over a real IPC binding (spec 8)', () => {
  it('2 MB each way, offloaded after the handshake, one terminate mid-transfer: sha256 on both ends', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chim-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const sched = new WallClockScheduler();
    cleanups.push(() => sched.close());
    const [wireT, wireB] = memoryPair();
    let binding: IpcBinding | undefined;
    const server = await IpcServer.listen(join(dir, 't.sock'), {
      software: 'test-target', capabilities: { supportIPv4: true, supportIPv6: false, supportSack: true, tcpConnectionOffloadCapacity: 64, ticksPerSecond: 1000 },
      onBinding: (b) => { binding = b; },
    });
    cleanups.push(() => server.close());
    const client = await IpcClient.connect(server.path, { software: 'test-host' });
    cleanups.push(() => client.close());
    await until(() => binding !== undefined, 'binding');
    const core = new TargetCore({
      scheduler: sched, interfaceMac: MAC_A,
      toHost: (m) => { binding!.connection.send(m); },
      toWire: (f) => wireT.send([f]),
    });
    binding!.connection.setHandler((m) => core.onHostMessage(m));
    wireT.setReceiver((frames) => { for (const f of frames) core.onFrame(f); });

    const link = ChimneyLink.overIpc(client);
    const a = new HostStack({ link, mac: MAC_A, ipv4: { address: IP_A, prefixLength: 24 }, scheduler: sched, offload: { policy: 'after-handshake' } });
    const b = new HostStack({ link: wireB, mac: MAC_B, ipv4: { address: IP_B, prefixLength: 24 }, scheduler: sched });
    cleanups.push(() => { a.close(); b.close(); });

    let cb: TcpSocket | undefined;
    b.listen(80, (s) => { cb = s; }, { allowHalfOpen: true });
    const ca = a.connect({ host: IP_B, port: 80, allowHalfOpen: true });
    await until(() => cb !== undefined && ca.offloaded && core.connectionCount === 1, 'offloaded');
    const ra = new Collector(ca);
    const rb = new Collector(cb!);
    const da = payload(21, 2 << 20);
    const db = payload(22, 2 << 20);
    void writeAll(ca, da);
    void writeAll(cb!, db);
    await until(() => rb.bytes > 500_000 && ra.bytes > 500_000, 'some data');
    await ca.terminateOffload();
    expect(ca.offloaded).toBe(false);
    expect(core.connectionCount).toBe(0);
    await until(() => (ra.ended && rb.ended) || ra.error !== undefined || rb.error !== undefined, 'transfer');
    expect(rb.digest()).toBe(sha256(da));
    expect(ra.digest()).toBe(sha256(db));
    expect(a.offload!.stats.initiates).toBe(1);
    expect(a.offload!.stats.terminates).toBe(1);
    expect(core.counters.framesOffloaded).toBeGreaterThan(300);
    expect(core.ledger.lentCount).toBe(0);
  }, 60_000);
});
