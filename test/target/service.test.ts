/**
 * The target service over a real Unix socket (temp dir) and the sim link driven in real time: a host
 * client (IpcClient) on one side, a peer engine on the sim link on the other. No root needed.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TCP_CACHED_FLAG, TCP_CONST_FLAG, AdapterStatus, type RefBlock, type TcpState as ChimneyTcpState } from '../../src/chimney/state.js';
import { Status } from '../../src/chimney/status.js';
import { encodeFrame } from '../../src/ipc/codec.js';
import { IpcClient } from '../../src/ipc/client.js';
import type { MessageOf, TargetMessage } from '../../src/ipc/messages.js';
import type { Link } from '../../src/link/link.js';
import { WallClockScheduler } from '../../src/link/scheduler.js';
import { createSimPair } from '../../src/link/sim/sim-link.js';
import { Simulator } from '../../src/link/sim/simulator.js';
import { DEFAULT_PARAMETERS } from '../../src/target/offloaded-connection.js';
import { startTargetService, type TargetServiceOptions } from '../../src/target/service.js';
import { TcpConnection } from '../../src/tcp/connection.js';
import { ConnectionDriver } from '../../src/tcp/driver.js';
import { TcpState as S, type TcpExport } from '../../src/tcp/types.js';
import { ipv4, mac } from '../../src/wire/addresses.js';
import { buildTcpFrame, parseFrame } from '../../src/wire/frame.js';
import { TCP_RST, type TcpSegment } from '../../src/wire/tcp-segment.js';

const HOST_MAC = mac('02:00:00:00:00:01');
const PEER_MAC = mac('02:00:00:00:00:02');
const HOST_IP = ipv4('10.1.0.1');
const PEER_IP = ipv4('10.1.0.2');
const PEER_PORT = 80;

let dir: string;
let n = 0;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'svc-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function ipBytes(v: number): Uint8Array {
  return new Uint8Array([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
}

function copySeg(s: TcpSegment): TcpSegment {
  return { ...s, payload: s.payload.slice(), options: { ...s.options, sack: s.options.sack?.map((b) => ({ ...b })) } };
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface LogLine { level: number; msg: string; [k: string]: unknown }

/** Service on a fresh socket, sim link run on the wall clock, pino lines captured. */
async function setup(over: Partial<TargetServiceOptions> = {}) {
  const sim = new Simulator(performance.now());
  const pump = setInterval(() => sim.runUntil(performance.now()), 1);
  cleanups.push(() => clearInterval(pump));
  const [targetLink, peerLink] = createSimPair(sim, { name: `svc${n}` });
  const peerBatches: Uint8Array[][] = [];
  peerLink.setReceiver((frames) => peerBatches.push(frames.map((f) => f.slice())));
  const logs: LogLine[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) });
  const socketPath = join(dir, `t${n++}.sock`);
  const service = await startTargetService({ link: targetLink, socketPath, interfaceMac: HOST_MAC, logger, ...over });
  let stopped = false;
  cleanups.push(async () => {
    if (!stopped) await service.shutdown({ graceMs: 0 });
  });
  const shutdown = async (graceMs: number) => {
    stopped = true;
    return service.shutdown({ graceMs });
  };
  return { sim, service, targetLink, peerLink, peerBatches, logs, socketPath, shutdown };
}

async function connectHost(path: string, software = 'test-host 1'): Promise<{ client: IpcClient; received: TargetMessage[] }> {
  const client = await IpcClient.connect(path, { software });
  cleanups.push(() => client.close());
  const received: TargetMessage[] = [];
  client.on((m) => received.push(m));
  return { client, received };
}

/** A Linux stand-in on the far side of the sim link: accepts on PEER_PORT, records resets. */
class Peer {
  readonly sched = new WallClockScheduler({ unref: true });
  readonly conns = new Map<number, { driver: ConnectionDriver; error?: string; rsts: number }>();

  constructor(private readonly link: Link) {
    cleanups.push(() => this.sched.close());
    link.setReceiver((frames) => {
      for (const f of frames) this.frame(f);
    });
  }

  private frame(f: Uint8Array): void {
    const p = parseFrame(f);
    if (typeof p === 'string' || !p.tcp) return;
    const seg = copySeg(p.tcp);
    const existing = this.conns.get(seg.srcPort);
    if (existing) {
      if (seg.flags & TCP_RST) existing.rsts++;
      existing.driver.input(seg);
      return;
    }
    const conn = TcpConnection.accept({ localPort: PEER_PORT, remotePort: seg.srcPort, iss: 0x10000 * seg.srcPort, now: this.sched.now(), syn: seg });
    const entry: { driver: ConnectionDriver; error?: string; rsts: number } = { driver: undefined as unknown as ConnectionDriver, rsts: 0 };
    this.conns.set(seg.srcPort, entry);
    entry.driver = new ConnectionDriver(conn, this.sched, {
      segments: (segs) => this.link.send(segs.map((s) => buildTcpFrame({ srcMac: PEER_MAC, dstMac: HOST_MAC, ip: { version: 4, src: PEER_IP, dst: HOST_IP }, segment: s }))),
      events: (evs) => {
        for (const e of evs) if (e.type === 'closed') entry.error = e.error ?? 'closed';
      },
    });
  }
}

/** The host side of one connection: runs on its engine over RawFrames until offloaded. */
class HostConn {
  readonly sched = new WallClockScheduler({ unref: true });
  driver: ConnectionDriver | undefined;
  exp: TcpExport | undefined;

  constructor(client: IpcClient, readonly port: number) {
    cleanups.push(() => this.sched.close());
    const conn = TcpConnection.connect({ localPort: port, remotePort: PEER_PORT, iss: 0x1000 * port, now: this.sched.now() });
    this.driver = new ConnectionDriver(conn, this.sched, {
      segments: (segs) => {
        for (const s of segs) client.send({ type: 'RawFrame', frame: buildTcpFrame({ srcMac: HOST_MAC, dstMac: PEER_MAC, ip: { version: 4, src: HOST_IP, dst: PEER_IP }, segment: s }) });
      },
      events: () => undefined,
    });
  }

  input(seg: TcpSegment): void {
    this.driver?.input(seg);
  }

  /** Export the engine and build the TCP block's state (as test/support/chimney-sim.ts does). */
  exportState(): ChimneyTcpState {
    const d = this.driver!;
    const exp = d.run((c, now) => c.export(now, {}));
    d.stop();
    this.driver = undefined;
    this.exp = exp;
    return {
      const: {
        flags: (exp.const.timestamps ? TCP_CONST_FLAG.TIMESTAMP_ENABLED : 0) | (exp.const.sack ? TCP_CONST_FLAG.SACK_ENABLED : 0) | (exp.const.windowScaling ? TCP_CONST_FLAG.WINDOW_SCALING_ENABLED : 0),
        remotePort: PEER_PORT, localPort: this.port, sndWindScale: exp.const.sndWindScale, rcvWindScale: exp.const.rcvWindScale, remoteMss: exp.const.remoteMss, hashValue: 0,
      },
      cached: {
        flags: TCP_CACHED_FLAG.NAGLING_ENABLED, initialRcvWnd: d.conn.config.receiveBufferSize, rcvIndicationSize: 0,
        kaProbeCount: 0, kaTimeout: 0, kaInterval: 0, maxRt: 0, flowLabel: 0, ttlOrHopLimit: 64, tosOrTrafficClass: 0, userPriority: 0,
      },
      delegated: { ...exp.delegated, flags: 0, dWnd: 0, sendChain: [] },
    };
  }
}

/** Bring up `ports.length` connections through the service's raw path, then offload them in one tree. */
async function offloadConnections(client: IpcClient, received: TargetMessage[], peer: Peer, ports: number[]) {
  const hosts = new Map(ports.map((p) => [p, new HostConn(client, p)]));
  // Frames the target forwards go to the host engine of their port.
  let seen = 0;
  const route = setInterval(() => {
    for (; seen < received.length; seen++) {
      const m = received[seen];
      if (m.type !== 'RawFrame') continue;
      const p = parseFrame(m.frame);
      if (typeof p !== 'string' && p.tcp) hosts.get(p.tcp.dstPort)?.input(copySeg(p.tcp));
    }
  }, 1);
  cleanups.push(() => clearInterval(route));
  await waitFor(() => [...hosts.values()].every((h) => h.driver?.conn.state === S.Established) && ports.every((p) => peer.conns.get(p)?.driver.conn.state === S.Established), 'handshakes');
  clearInterval(route);
  const tcpBlocks = ports.map((p, i) => ({ blockId: 10 + i, role: 'new' as const, layer: 'tcp' as const, handle: 100 + i, state: hosts.get(p)!.exportState(), children: [] }));
  const done = await client.request({
    type: 'InitiateOffload',
    blocks: [{
      blockId: 1, role: 'new', layer: 'neighbor', handle: 1,
      state: { const: { dlSourceAddress: new Uint8Array(6), vlanId: 0 }, cached: { dlDestinationAddress: PEER_MAC, hostReachabilityDelta: 0 }, delegated: { nicReachabilityDelta: 0 } },
      children: [{
        blockId: 2, role: 'new', layer: 'path', handle: 2,
        state: { version: 4, const: { sourceAddress: ipBytes(HOST_IP), destinationAddress: ipBytes(PEER_IP) }, cached: { pathMtu: 1500 } },
        children: tcpBlocks,
      }],
    }],
  });
  expect(done.results.map((r) => r.status)).toEqual(done.results.map(() => Status.SUCCESS));
  const ctxOf = (blockId: number) => done.results.find((r) => r.blockId === blockId)!.ctx!;
  const tree: RefBlock[] = [{
    blockId: 1, ctx: ctxOf(1), layer: 'neighbor',
    children: [{ blockId: 2, ctx: ctxOf(2), layer: 'path', children: ports.map((_, i) => ({ blockId: 10 + i, ctx: ctxOf(10 + i), layer: 'tcp' as const, children: [] })) }],
  }];
  // The hand-over barrier (docs/ipc-protocol.md section 7): this host held nothing meanwhile.
  for (let i = 0; i < ports.length; i++) client.send({ type: 'TcpForward', ctx: ctxOf(10 + i), segments: [] });
  return { hosts, tree, ctxs: ports.map((_, i) => ctxOf(10 + i)) };
}

const messagesOf = <K extends TargetMessage['type']>(list: TargetMessage[], type: K) => list.filter((m): m is Extract<TargetMessage, { type: K }> => m.type === type);

describe('target service', () => {
  it('creates its socket owner-only (mode 0600) and says hello with the capabilities from its limits', async () => {
    const s = await setup({ limits: { maxConnections: 77 } });
    expect((await stat(s.socketPath)).mode & 0o777).toBe(0o600);
    const { client } = await connectHost(s.socketPath);
    expect(client.capabilities).toEqual({ supportIPv4: true, supportIPv6: false, supportSack: true, tcpConnectionOffloadCapacity: 77, ticksPerSecond: 1000 });
    expect(client.target.role).toBe('target');
  });

  it('refuses an IP-layer link (the core and the host speak Ethernet frames)', async () => {
    const sim = new Simulator();
    const [a] = createSimPair(sim, { name: 'ip', layer: 'ip' });
    await expect(startTargetService({ link: a, socketPath: join(dir, `t${n++}.sock`), logger: pino({ level: 'silent' }) }))
      .rejects.toThrow('the target service needs an Ethernet link (TAP or sim); ip.a is an IP-layer link');
  });

  it('a host that goes away leaves no SetParameters behind: the next host starts from the defaults of the hello', async () => {
    const s = await setup();
    const first = await connectHost(s.socketPath);
    const done = await first.client.request({ type: 'SetParameters', ...DEFAULT_PARAMETERS, ticksPerSecond: 100 });
    expect(done.status).toBe(Status.SUCCESS);
    expect(s.service.core.params.ticksPerSecond).toBe(100);
    await first.client.close();
    await waitFor(() => !s.service.hostBound, 'the host to be gone');
    expect(s.service.core.params.ticksPerSecond).toBe(1000);
  });

  it('host RawFrames go out on the link, those of one turn in one link batch, bytes unchanged', async () => {
    const s = await setup();
    const { client } = await connectHost(s.socketPath);
    const frames = [1, 2, 3].map((k) => Uint8Array.from({ length: 60 + k }, (_, i) => (i * 7 + k) & 0xff));
    for (const f of frames) client.send({ type: 'RawFrame', frame: f });
    await waitFor(() => s.peerBatches.length > 0, 'frames on the link');
    expect(s.peerBatches.length).toBe(1);
    expect(s.peerBatches[0].map(sha)).toEqual(frames.map(sha));
    expect(s.service.counters.linkBatchesOut).toBe(1);
  });

  it('link frames reach the host as RawFrames, bytes unchanged; with no host bound they are dropped and counted', async () => {
    const s = await setup();
    const early = Uint8Array.from({ length: 64 }, (_, i) => i);
    s.peerLink.send([early]);
    await waitFor(() => s.service.counters.framesDroppedNoHost === 1, 'the drop');
    expect(s.service.core.counters.framesIn).toBe(0);
    const { received } = await connectHost(s.socketPath);
    const f1 = Uint8Array.from({ length: 70 }, (_, i) => 255 - i);
    const f2 = Uint8Array.from({ length: 90 }, (_, i) => i ^ 0x5a);
    s.peerLink.send([f1, f2]);
    await waitFor(() => received.length >= 2, 'RawFrames at the host');
    expect(received.map((m) => m.type)).toEqual(['RawFrame', 'RawFrame']);
    expect(messagesOf(received, 'RawFrame').map((m) => sha(m.frame))).toEqual([sha(f1), sha(f2)]);
    expect(s.service.counters.framesDroppedNoHost).toBe(1);
  });

  it('a second host binding is refused with an Error and closed; the first keeps working; the log says so', async () => {
    const s = await setup();
    const first = await connectHost(s.socketPath, 'host-one');
    const second = await connectHost(s.socketPath, 'host-two');
    let closed = false;
    second.client.onClose(() => (closed = true));
    await waitFor(() => closed, 'the second binding to close');
    const errs = messagesOf(second.received, 'Error');
    expect(errs.length).toBe(1);
    expect(errs[0].status).toBe(Status.IPC_INVALID_IN_STATE);
    expect(errs[0].problem).toBe('binding refused: another host (host-one) is bound to this target');
    expect(s.logs.some((l) => l.msg === 'second host binding refused' && l.host === 'host-two')).toBe(true);
    expect(s.service.counters.bindingsRefused).toBe(1);
    const f = Uint8Array.from({ length: 60 }, (_, i) => i * 3);
    first.client.send({ type: 'RawFrame', frame: f });
    await waitFor(() => s.peerBatches.length > 0, 'the first host\'s frame');
    expect(sha(s.peerBatches[0][0])).toBe(sha(f));
  });

  it('undecodable bytes from the host get an Error reply and the binding stays', async () => {
    const s = await setup();
    const { client, received } = await connectHost(s.socketPath);
    // A RawFrame whose byte-string length says 1000 but the body has 4: undecodable.
    const good = encodeFrame({ type: 'RawFrame', frame: new Uint8Array([1, 2, 3, 4]) });
    const bad = good.slice();
    new DataView(bad.buffer, bad.byteOffset).setUint32(6, 1000, true);
    client.connection.socket.write(bad);
    await waitFor(() => received.some((m) => m.type === 'Error'), 'the Error reply');
    const err = messagesOf(received, 'Error')[0];
    expect(err.status).toBe(Status.IPC_MALFORMED);
    expect(client.connection.isOpen).toBe(true);
    const f = Uint8Array.from({ length: 61 }, (_, i) => i + 9);
    client.send({ type: 'RawFrame', frame: f });
    await waitFor(() => s.peerBatches.length > 0, 'a frame after the error');
    expect(s.peerBatches.flat().map(sha)).toEqual([sha(f)]);
    expect(s.service.hostBound).toBe(true);
  });

  it('issue 4 item 3: a host that keeps sending bad requests is dropped (its binding closes, the log says why)', async () => {
    const s = await setup({ maxHostErrors: 3 });
    const { client, received } = await connectHost(s.socketPath);
    let closed = false;
    client.onClose(() => (closed = true));
    for (let i = 0; i < 5; i++) client.send({ type: 'TcpSend', ctx: 999, buffers: [{ requestId: i + 1, bytes: new Uint8Array([i]) }] });
    await waitFor(() => closed, 'the binding to be dropped');
    expect(messagesOf(received, 'Error').length).toBe(4);
    expect(s.service.counters.bindingsDropped).toBe(1);
    expect(s.service.hostBound).toBe(false);
    expect(s.logs.some((l) => l.msg === 'dropping host binding: 4 bad messages within 10000 ms (limit 3)')).toBe(true);
    // The target takes a new host afterwards.
    const again = await connectHost(s.socketPath);
    const f = Uint8Array.from({ length: 60 }, (_, i) => i);
    again.client.send({ type: 'RawFrame', frame: f });
    await waitFor(() => s.peerBatches.length > 0, 'a frame from the new host');
    expect(sha(s.peerBatches[0][0])).toBe(sha(f));
  });

  it('issue 4 item 3: the host binding closes while a connection is offloaded: the peer gets an RST, buffers are freed, the log names the connection', async () => {
    const s = await setup();
    const peer = new Peer(s.peerLink);
    const { client, received } = await connectHost(s.socketPath);
    const { ctxs, hosts } = await offloadConnections(client, received, peer, [40000]);
    expect(s.logs.some((l) => l.msg === 'connection offloaded' && l.ctx === ctxs[0] && l.handle === 100 && l.flow === '10.1.0.1:40000>10.1.0.2:80')).toBe(true);
    // The status table follows the offloaded engine: 1000 bytes from the peer move rcvNxt by 1000.
    const exp = hosts.get(40000)!.exp!;
    const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 13) & 0xff);
    peer.conns.get(40000)!.driver.run((c, now) => c.write(data, now));
    await waitFor(() => received.some((m) => m.type === 'TcpReceiveIndicate'), 'the indication');
    const ind = messagesOf(received, 'TcpReceiveIndicate')[0];
    expect(sha(ind.bytes)).toBe(sha(data));
    const rows = s.service.status().connections;
    expect(rows.map((r) => [r.ctx, r.handle, r.state, r.phase, r.sndUna, r.sndNxt, r.rcvNxt, r.bytesIn, r.bytesOut])).toEqual([
      [ctxs[0], 100, 'Established', 'live', exp.delegated.sndUna, exp.delegated.sndNxt, (exp.delegated.rcvNxt + 1000) >>> 0, 1000, 0],
    ]);
    await client.close();
    const p = peer.conns.get(40000)!;
    await waitFor(() => p.error !== undefined, 'the peer to see the reset');
    expect(p.error).toBe('ECONNRESET');
    expect(p.rsts).toBe(1);
    expect(s.service.status().connections).toEqual([]);
    expect(s.service.core.ledger.lentCount).toBe(0);
    expect(s.service.counters.connectionsAborted).toBe(1);
    expect(s.logs.some((l) => l.msg === 'offloaded connection aborted' && l.ctx === ctxs[0] && l.handle === 100)).toBe(true);
    expect(s.logs.some((l) => l.msg === 'host binding gone: aborted 1 offloaded connection(s) with RST' && l.aborted === 1)).toBe(true);
  });

  it('spec 5.5: shutdown with a host that terminates on UploadAll uploads every connection and aborts none', async () => {
    const s = await setup();
    const peer = new Peer(s.peerLink);
    const { client, received } = await connectHost(s.socketPath);
    const { tree } = await offloadConnections(client, received, peer, [40001, 40002]);
    const terminated: Array<MessageOf<'TerminateOffloadComplete'>> = [];
    client.on((m) => {
      if (m.type === 'StatusIndication' && m.code === AdapterStatus.UploadAll) {
        void client.request({ type: 'TerminateOffload', blocks: tree }).then((c) => terminated.push(c));
      }
    });
    const result = await s.shutdown(5000);
    expect(result).toEqual({ uploaded: 2, aborted: 0 });
    await waitFor(() => terminated.length === 1, 'the terminate completion');
    expect(terminated[0].results.map((r) => r.status)).toEqual([Status.SUCCESS, Status.SUCCESS, Status.SUCCESS, Status.SUCCESS]);
    for (const port of [40001, 40002]) {
      expect(peer.conns.get(port)!.rsts).toBe(0);
      expect(peer.conns.get(port)!.driver.conn.state).toBe(S.Established);
    }
    // The flow names what chimney verify --events matches against the capture (same as at offload).
    expect(s.logs.filter((l) => l.msg === 'connection uploaded').map((l) => l.flow).sort()).toEqual(['10.1.0.1:40001>10.1.0.2:80', '10.1.0.1:40002>10.1.0.2:80']);
    expect(s.logs.some((l) => l.msg === 'target stopped' && l.uploaded === 2 && l.aborted === 0)).toBe(true);
    await expect(stat(s.socketPath)).rejects.toThrow(/ENOENT/);
  });

  it('spec 5.5: shutdown with a host that ignores UploadAll aborts the connections after graceMs', async () => {
    const s = await setup();
    const peer = new Peer(s.peerLink);
    const { client, received } = await connectHost(s.socketPath);
    await offloadConnections(client, received, peer, [40003]);
    const seenBefore = received.length;
    const t0 = performance.now();
    const shutdown = s.shutdown(300);
    await waitFor(() => received.some((m) => m.type === 'StatusIndication'), 'UploadAll');
    // Spec 5.5: nothing new is offloaded once UploadAll went out.
    await expect(client.request({
      type: 'InitiateOffload',
      blocks: [{ blockId: 1, role: 'new', layer: 'neighbor', handle: 9, state: { const: { dlSourceAddress: new Uint8Array(6), vlanId: 0 }, cached: { dlDestinationAddress: PEER_MAC, hostReachabilityDelta: 0 }, delegated: { nicReachabilityDelta: 0 } }, children: [] }],
    })).rejects.toThrow('InitiateOffload refused: the target is shutting down (UploadAll sent)');
    const result = await shutdown;
    const elapsed = performance.now() - t0;
    expect(result).toEqual({ uploaded: 0, aborted: 1 });
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(3000);
    expect(received.slice(seenBefore).filter((m) => m.type === 'StatusIndication').map((m) => (m as MessageOf<'StatusIndication'>).code)).toEqual([AdapterStatus.UploadAll]);
    // The RST went out before the link closed.
    const p = peer.conns.get(40003)!;
    await waitFor(() => p.error !== undefined, 'the peer to see the reset');
    expect(p.error).toBe('ECONNRESET');
    expect(s.logs.some((l) => l.msg === 'target stopped' && l.uploaded === 0 && l.aborted === 1)).toBe(true);
  });
});
