/**
 * TcpSocket / TcpServer semantics between two host stacks on the sim link: errors with Node's
 * codes, graceful close in both orders, half-open, backpressure both ways, Nagle, keepalive and
 * the detach/attach seam the offload work relies on.
 */
import { describe, expect, it } from 'vitest';
import { TcpConnection } from '../../src/tcp/connection.js';
import { TcpState } from '../../src/tcp/types.js';
import { parseFrame } from '../../src/wire/frame.js';
import { DiscardHandler } from '../../src/host/host-connection.js';
import type { TcpSocket } from '../../src/host/socket.js';
import { Collector, IP_B, payload, sha256, SimHosts, writeAll } from '../support/host-sim.js';

/** Connect A -> B:80 and wait until both ends are established. */
async function pair(h: SimHosts, opts: { allowHalfOpen?: boolean } = {}): Promise<{ client: TcpSocket; server: TcpSocket }> {
  let server: TcpSocket | undefined;
  h.b.listen(80, (s) => { server = s; }, { allowHalfOpen: opts.allowHalfOpen });
  const client = h.a.connect({ host: '10.0.0.2', port: 80, allowHalfOpen: opts.allowHalfOpen });
  let connected = false;
  client.on('connect', () => { connected = true; });
  await h.run(() => connected && server !== undefined, 'handshake');
  return { client, server: server! };
}

describe('TcpSocket errors', () => {
  it('RFC 9293 3.10.7.1: connect to a closed port fails with ECONNREFUSED (the peer answered RST)', async () => {
    const h = new SimHosts({ seed: 'refused' });
    const s = h.a.connect({ host: '10.0.0.2', port: 81 });
    const c = new Collector(s);
    await h.run(() => c.closed, 'refused');
    expect(c.error?.code).toBe('ECONNREFUSED');
    expect(c.error?.message).toBe('connect ECONNREFUSED 10.0.0.2:81');
    expect((c.error as unknown as { syscall: string }).syscall).toBe('connect');
    expect(h.b.stats.resetsSent).toBe(1);
    expect(h.a.demux.size).toBe(0);
  });

  it('destroy() sends RST: the peer gets ECONNRESET, our side closes without error', async () => {
    const h = new SimHosts({ seed: 'reset' });
    const { client, server } = await pair(h);
    const sc = new Collector(server);
    const cc = new Collector(client);
    client.write('some bytes first');
    await h.run(() => sc.bytes === 16, 'data');
    client.destroy();
    await h.run(() => sc.closed && cc.closed, 'reset');
    expect(cc.error).toBeUndefined();
    expect(sc.error?.code).toBe('ECONNRESET');
    expect(sc.error?.message).toBe('read ECONNRESET 10.0.0.1:' + client.localPort);
    expect(sc.digest()).toBe(sha256(Buffer.from('some bytes first')));
    expect(h.a.demux.size).toBe(0);
    expect(h.b.demux.size).toBe(0);
  });

  it('ETIMEDOUT when the SYN retransmissions run out (the address never answers ARP)', async () => {
    const h = new SimHosts({ seed: 'timeout', tcp: { maxSynRetransmissions: 2 } });
    const s = h.a.connect({ host: '10.0.0.3', port: 80 });
    const c = new Collector(s);
    await h.run(() => c.closed, 'timeout');
    expect(c.error?.code).toBe('ETIMEDOUT');
    expect(c.error?.message).toBe('connect ETIMEDOUT 10.0.0.3:80');
    // The SYN and its two retransmissions all waited for ARP, which never resolved; requests go
    // out in rounds of three (1 s apart) per resolution attempt.
    expect(h.a.drops.get('arp-unresolved')).toBe(3);
    expect(h.a.stats.arpRequestsOut % 3).toBe(0);
    expect(h.a.stats.arpRequestsOut).toBeGreaterThanOrEqual(3);
    expect(h.a.arpTable()).toEqual([]);
  });

  it('listen() twice on one port is EADDRINUSE; a closed server makes new connections ECONNREFUSED', async () => {
    const h = new SimHosts({ seed: 'srv' });
    const srv = h.b.listen(80);
    expect(() => h.b.listen(80)).toThrow(/EADDRINUSE/);
    let closed = false;
    srv.close(() => { closed = true; });
    const c = new Collector(h.a.connect({ host: IP_B, port: 80 }));
    await h.run(() => c.closed && closed, 'refused after close');
    expect(c.error?.code).toBe('ECONNREFUSED');
    expect(srv.listening).toBe(false);
  });
});

describe('TcpSocket graceful close', () => {
  it('client ends first: both see end and close without error; the client waits in TIME_WAIT', async () => {
    const h = new SimHosts({ seed: 'fin-a' });
    const { client, server } = await pair(h);
    const cc = new Collector(client);
    const sc = new Collector(server);
    client.end('bye from A');
    await h.run(() => cc.closed && sc.closed, 'close');
    expect(sc.ended && cc.ended).toBe(true);
    expect(cc.error ?? sc.error).toBeUndefined();
    expect(sc.digest()).toBe(sha256(Buffer.from('bye from A')));
    expect(client.connection.state).toBe(TcpState.TimeWait);
    expect(server.connection.state).toBe(TcpState.Closed);
    expect(h.b.demux.size).toBe(0);
    expect(h.a.tcpTable().map((r) => r.state)).toEqual(['TIME_WAIT']);
    await h.runFor(61_000);
    expect(h.a.demux.size).toBe(0);
  });

  it('server ends first: the server is the one in TIME_WAIT', async () => {
    const h = new SimHosts({ seed: 'fin-b' });
    const { client, server } = await pair(h);
    const cc = new Collector(client);
    const sc = new Collector(server);
    server.end('bye from B');
    await h.run(() => cc.closed && sc.closed, 'close');
    expect(cc.error ?? sc.error).toBeUndefined();
    expect(cc.digest()).toBe(sha256(Buffer.from('bye from B')));
    expect(server.connection.state).toBe(TcpState.TimeWait);
    expect(client.connection.state).toBe(TcpState.Closed);
  });

  it('allowHalfOpen: after the peer FIN the other side keeps sending until it ends', async () => {
    const h = new SimHosts({ seed: 'half' });
    const { client, server } = await pair(h, { allowHalfOpen: true });
    const cc = new Collector(client);
    const sc = new Collector(server);
    client.end();
    await h.run(() => sc.ended, 'server sees end');
    expect(server.connection.state).toBe(TcpState.CloseWait);
    const late = payload(7, 300_000);
    void writeAll(server, late);
    await h.run(() => cc.closed && sc.closed, 'close');
    expect(cc.digest()).toBe(sha256(late));
    expect(cc.error ?? sc.error).toBeUndefined();
  });

  it('end() right after connect() waits for the handshake instead of dropping the connection', async () => {
    const h = new SimHosts({ seed: 'early-end' });
    let got: Collector | undefined;
    h.b.listen(80, (s) => { got = new Collector(s); });
    const s = h.a.connect({ host: IP_B, port: 80 });
    s.end('written before the SYN-ACK');
    await h.run(() => got !== undefined && got.closed, 'early end');
    expect(got!.digest()).toBe(sha256(Buffer.from('written before the SYN-ACK')));
  });
  it('data still unread when the connection finishes closing is delivered, then end and close', async () => {
    const h = new SimHosts({ seed: 'unread' });
    const { client, server } = await pair(h);
    client.pause();
    const data = payload(8, 100_000);
    server.end(data);
    await h.run(() => client.connection.peerFinished, 'peer FIN');
    client.end();
    await h.run(() => client.connection.state === TcpState.Closed, 'engine closed (LAST_ACK done)');
    expect(client.destroyed).toBe(false);
    const cc = new Collector(client);
    client.resume();
    await h.run(() => cc.closed, 'stream done');
    expect(cc.ended).toBe(true);
    expect(cc.error).toBeUndefined();
    expect(cc.digest()).toBe(sha256(data));
  });
});

describe('TcpSocket flow control', () => {
  it('a paused reader closes the window; the writer sees backpressure; everything arrives after resume', async () => {
    const rcvBuf = 256 * 1024;
    const h = new SimHosts({ seed: 'bp', tcp: { receiveBufferSize: rcvBuf, sendBufferSize: 256 * 1024 } });
    const { client, server } = await pair(h);
    const data = payload(3, 4 * 1024 * 1024);
    server.pause();
    const sc = new Collector(server);
    server.pause(); // Collector's 'data' listener resumed it
    let result: { sawBackpressure: boolean } | undefined;
    void writeAll(client, data).then((r) => { result = r; });
    await h.runFor(5_000);
    // Stalled: the receiver holds at most its buffer plus the stream's high-water mark.
    const held = server.connection.readable + server.readableLength;
    expect(held).toBeLessThanOrEqual(rcvBuf + server.readableHighWaterMark + 64 * 1024);
    expect(server.connection.readable).toBeGreaterThan(0);
    expect(client.connection.sendQueued).toBeGreaterThan(0);
    expect(client.writableNeedDrain).toBe(true);
    server.resume();
    await h.run(() => sc.closed || sc.ended, 'drain');
    expect(result?.sawBackpressure).toBe(true);
    expect(sc.bytes).toBe(data.length);
    expect(sc.digest()).toBe(sha256(data));
  });

  it('RFC 896: Nagle holds a second small write while the first is unacknowledged; setNoDelay sends it at once', async () => {
    const dataSegments = async (noDelay: boolean): Promise<number> => {
      const h = new SimHosts({ seed: `nagle-${noDelay}`, tcp: { delayedAckMs: 200 }, impairAB: { delayMs: 10 }, impairBA: { delayMs: 10 } });
      const { client } = await pair(h);
      client.setNoDelay(noDelay);
      let n = 0;
      const send = h.linkA.send.bind(h.linkA);
      h.linkA.send = (frames) => {
        for (const f of frames) {
          const p = parseFrame(f);
          if (typeof p !== 'string' && p.tcp && p.tcp.payload.length > 0) n++;
        }
        send(frames);
      };
      client.write('a');
      await h.runFor(1);
      client.write('b');
      await h.runFor(15);
      return n;
    };
    expect(await dataSegments(false)).toBe(1);
    expect(await dataSegments(true)).toBe(2);
  });

  it('keepalive (setKeepAlive before the handshake, listen option on the server) probes an idle connection and reports ETIMEDOUT once the peer is gone', async () => {
    const h = new SimHosts({ seed: 'ka' });
    let server: TcpSocket | undefined;
    h.b.listen(80, (s) => { server = s; }, { keepAlive: true, keepAliveInitialDelay: 2_000 });
    const client = h.a.connect({ host: IP_B, port: 80, tcp: { keepalive: { enabled: false, idleMs: 7_200_000, intervalMs: 500, probes: 3 } } });
    client.setKeepAlive(true, 1_000);
    const cc = new Collector(client);
    await h.run(() => server !== undefined, 'handshake');
    await h.runFor(5_000);
    // Idle 1 s then a probe every 1 s (each answered, which restarts the idle time): 4 or 5 by now.
    expect(client.connection.stats.keepaliveProbes).toBeGreaterThanOrEqual(4);
    expect(server!.connection.stats.keepaliveProbes).toBeGreaterThanOrEqual(1);
    expect(client.connection.state).toBe(TcpState.Established);
    h.linkB.send = () => {}; // B falls silent
    await h.run(() => cc.closed, 'keepalive timeout');
    expect(cc.error?.code).toBe('ETIMEDOUT');
    expect(client.connection.stats.keepaliveProbes).toBeGreaterThanOrEqual(7);
  });
});

describe('keepalive switched on later', () => {
  it('setKeepAlive after the handshake arms the keepalive timer (engine updateSettings)', async () => {
    const h = new SimHosts({ seed: 'ka-late' });
    h.b.listen(80, () => {});
    const client = h.a.connect({ host: IP_B, port: 80, tcp: { keepalive: { enabled: false, idleMs: 7_200_000, intervalMs: 500, probes: 3 } } });
    await h.run(() => client.connection.state === TcpState.Established, 'handshake');
    expect(client.connection.nextDeadline()).toBeUndefined();
    client.setKeepAlive(true, 1_000);
    await h.runFor(3_500);
    expect(client.connection.stats.keepaliveProbes).toBeGreaterThanOrEqual(2);
  });
});

describe('offload seam', () => {
  it('a connection detached mid-transfer and resumed from its exported state loses nothing', async () => {
    const h = new SimHosts({ seed: 'seam' });
    const { client, server } = await pair(h);
    const up = payload(5, 3 * 1024 * 1024);
    const down = payload(6, 3 * 1024 * 1024);
    const cc = new Collector(client);
    const sc = new Collector(server);
    void writeAll(client, up);
    void writeAll(server, down);
    await h.run(() => sc.bytes > 1024 * 1024, 'first MB');
    // Host -> "target": export and detach; segments meanwhile are discarded (the peer retransmits).
    const parked = new DiscardHandler();
    const exp = client.exportState({ includePrivate: true }, parked);
    expect(client.binding.attached).toBe(false);
    expect(h.a.tcpTable()[0]?.state).toBe('DETACHED');
    await h.runFor(50);
    // "Target" -> host: a fresh engine imported from the state.
    const fresh = TcpConnection.import(exp, { localPort: client.localPort, remotePort: 80, now: h.sim.now, config: client.connection.config });
    client.attachEngine(fresh);
    expect(client.connection).toBe(fresh);
    await h.run(() => cc.closed && sc.closed, 'rest of the transfer');
    expect(sc.digest()).toBe(sha256(up));
    expect(cc.digest()).toBe(sha256(down));
    expect(cc.error ?? sc.error).toBeUndefined();
  });
});
