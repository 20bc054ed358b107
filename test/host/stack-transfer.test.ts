/**
 * Two host stacks over the sim link: ARP, handshake, 5 MB each way checked by SHA-256 on both
 * ends, also through loss, reordering, duplication and delay.
 */
import { describe, expect, it } from 'vitest';
import { TcpState } from '../../src/tcp/types.js';
import type { TcpSocket } from '../../src/host/socket.js';
import { Collector, IP_A, IP_B, MAC_A, MAC_B, payload, sha256, SimHosts, writeAll, type SimHostsOptions } from '../support/host-sim.js';

const MB = 1024 * 1024;

async function exchange(opts: SimHostsOptions, size: number, maxVirtualMs = 600_000): Promise<{ h: SimHosts; client: Collector; server: Collector }> {
  const h = new SimHosts(opts);
  const up = payload(1, size);
  const down = payload(2, size);
  let server: Collector | undefined;
  // Half-open allowed on both ends: each side ends only after all of its own writes.
  h.b.listen(80, (s) => {
    server = new Collector(s);
    void writeAll(s, down);
  }, { allowHalfOpen: true });
  const sock = h.a.connect({ host: '10.0.0.2', port: 80, allowHalfOpen: true });
  const client = new Collector(sock);
  let connected = false;
  sock.on('connect', () => {
    connected = true;
    void writeAll(sock, up);
  });
  await h.run(() => client.closed && server !== undefined && server.closed, 'transfer', maxVirtualMs);
  expect(connected).toBe(true);
  expect(client.error).toBeUndefined();
  expect(server!.error).toBeUndefined();
  expect(server!.bytes).toBe(size);
  expect(client.bytes).toBe(size);
  expect(server!.digest()).toBe(sha256(up));
  expect(client.digest()).toBe(sha256(down));
  return { h, client, server: server! };
}

describe('HostStack over the sim link', () => {
  it('resolves ARP once, then moves 5 MB each way intact (SHA-256 on both ends)', async () => {
    const { h } = await exchange({ seed: 'clean' }, 5 * MB);
    // A asked once; B learnt A from that request (RFC 826: the request was for it) and never asked.
    expect(h.a.stats.arpRequestsOut).toBe(1);
    expect(h.b.stats.arpRequestsOut).toBe(0);
    expect(h.b.stats.arpRepliesOut).toBe(1);
    const rowA = h.a.arpTable();
    expect(rowA.map((r) => [r.ip, Buffer.from(r.mac!).toString('hex'), r.state])).toEqual([[IP_B, Buffer.from(MAC_B).toString('hex'), 'reachable']]);
    const rowB = h.b.arpTable();
    expect(rowB.map((r) => [r.ip, Buffer.from(r.mac!).toString('hex'), r.state])).toEqual([[IP_A, Buffer.from(MAC_A).toString('hex'), 'reachable']]);
    expect(h.a.drops.total).toBe(0);
    expect(h.b.drops.total).toBe(0);
  });

  it('batches output: far fewer link sends than frames', async () => {
    const { h } = await exchange({ seed: 'batch' }, 2 * MB);
    expect(h.a.stats.framesOut).toBeGreaterThan(1000);
    expect(h.a.stats.batchesOut).toBeLessThan(h.a.stats.framesOut / 3);
    expect(h.linkA.counters.framesOut).toBe(h.a.stats.framesOut);
  });

  for (const seed of ['lossy-1', 'lossy-2']) {
    it(`5 MB each way through 2 % loss, 2 % reordering, 1 % duplication, 5 ms delay (${seed})`, async () => {
      const imp = { loss: 0.02, reorder: 0.02, reorderDelayMs: 3, duplicate: 0.01, delayMs: 5 };
      const { h, client } = await exchange({ seed, impairAB: imp, impairBA: imp }, 5 * MB, 3_600_000);
      const conn = (client.socket as TcpSocket).connection;
      expect(conn.stats.retransmittedSegments).toBeGreaterThan(0);
      expect(h.a.drops.snapshot()).toEqual({});
      expect(h.b.drops.snapshot()).toEqual({});
    });
  }

  it('connects when the SYN and the first ARP request are lost (retries)', async () => {
    // Drop everything A sends during the first 1.5 virtual seconds.
    const h = new SimHosts({ seed: 'late' });
    const origSend = h.linkA.send.bind(h.linkA);
    let dropped = 0;
    h.linkA.send = (frames) => {
      if (h.sim.now < 1500) { dropped += frames.length; return; }
      origSend(frames);
    };
    let accepted: TcpSocket | undefined;
    h.b.listen(7, (s) => { accepted = s; s.pipe(s); });
    const sock = h.a.connect({ host: IP_B, port: 7 });
    const c = new Collector(sock);
    sock.on('connect', () => sock.end('hello through the retries'));
    await h.run(() => c.closed, 'echo');
    expect(dropped).toBeGreaterThanOrEqual(2);
    expect(accepted).toBeDefined();
    expect(c.digest()).toBe(sha256(Buffer.from('hello through the retries')));
    expect(sock.connection.state === TcpState.TimeWait || sock.connection.state === TcpState.Closed).toBe(true);
  });
});
