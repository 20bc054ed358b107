/**
 * The host stack on a TAP against Linux kernel TCP (node:net in a child inside the namespace the
 * test builds): active and passive open with 50 MB each way (SHA-256 on both ends), graceful close
 * from either side, RST when the Linux process dies, refused connections both ways, ICMP echo, and
 * the negotiated options as an independent tcpdump capture in the peer namespace shows them.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCommand, labAvailable } from '../../src/lab/availability.js';
import { loadTapAddon } from '../../src/link/tap.js';
import { TcpState } from '../../src/tcp/types.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../src/wire/tcp-segment.js';
import type { TcpSocket } from '../../src/host/socket.js';
import { Collector, sha256, writeAll } from '../support/host-sim.js';
import { buildRig, Peer, STACK_IP, startCapture, until, type CapturedSegment, type HostRig } from '../support/host-lab.js';

function addonReason(): string {
  try {
    loadTapAddon();
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}
const lab = labAvailable(['ip', 'tcpdump']);
const why = lab.ok ? addonReason() : lab.reason;
if (why) console.warn(`skipping host interop tests: ${why}`);
const hasPing = findCommand('ping') !== undefined;
if (!why && !hasPing) console.warn('skipping the ICMP echo interop test: no `ping` (Debian: apt-get install iputils-ping)');

const MB = 1024 * 1024;

/**
 * No RST from the stack at all; Linux may answer a late duplicate ACK of ours with RST once its
 * side is gone (after a tail-loss-probe FIN retransmission), but never before both FINs.
 */
function expectNoResetBeforeBothFins(segs: CapturedSegment[]): void {
  expect(segs.filter((s) => s.src === STACK_IP && s.seg.flags & TCP_RST)).toEqual([]);
  const firstRst = segs.findIndex((s) => s.seg.flags & TCP_RST);
  if (firstRst >= 0) expect(firstFinsBySender(segs.slice(0, firstRst))).toHaveLength(2);
}

/** Who sent a FIN first (retransmissions, e.g. Linux tail-loss probes, do not count twice). */
function firstFinsBySender(segs: CapturedSegment[]): string[] {
  const order: string[] = [];
  for (const s of segs) if (s.seg.flags & TCP_FIN && !order.includes(s.src)) order.push(s.src);
  return order;
}

describe.skipIf(why !== '')('HostStack on a TAP against Linux TCP', () => {
  let rig: HostRig;
  let nextPort = 5000;
  const port = (): number => nextPort++;

  beforeAll(async () => {
    rig = await buildRig();
  });

  afterAll(async () => {
    await rig?.lab.teardown();
  });

  it('active open: 50 MB each way, SHA-256 equal on both ends', async () => {
    const p = port();
    const peer = await Peer.start(rig, { role: 'server', port: p, send: 50 * MB, close: 'after-peer-end' });
    const up = randomBytes(50 * MB);
    const sock = rig.stack.connect({ host: rig.peerIp, port: p });
    const c = new Collector(sock);
    sock.once('connect', () => void writeAll(sock, up));
    await until(() => c.closed, 55_000, 'stack socket closed');
    const report = await peer.done(5_000);
    expect(c.error).toBeUndefined();
    expect(report.error).toBeUndefined();
    expect(report.recvBytes).toBe(up.length);
    expect(report.recvSha).toBe(sha256(up));
    expect(c.bytes).toBe(50 * MB);
    expect(c.digest()).toBe(report.sentSha);
  }, 60_000);

  it('passive open: 50 MB each way, SHA-256 equal on both ends', async () => {
    const p = port();
    const down = randomBytes(50 * MB);
    let c: Collector | undefined;
    // Half-open allowed: Linux may finish (FIN) before all our writes are queued.
    const server = rig.stack.listen(p, (s) => {
      c = new Collector(s);
      void writeAll(s, down);
    }, { allowHalfOpen: true });
    const peer = await Peer.start(rig, { role: 'client', host: STACK_IP, port: p, send: 50 * MB, close: 'end' });
    await until(() => c !== undefined && c.closed, 55_000, 'accepted socket closed');
    const report = await peer.done(5_000);
    server.close();
    expect(c!.error).toBeUndefined();
    expect(report.error).toBeUndefined();
    expect(report.recvSha).toBe(sha256(down));
    expect(c!.bytes).toBe(50 * MB);
    expect(c!.digest()).toBe(report.sentSha);
  }, 60_000);

  it('graceful close started by the stack: FIN first from us, Linux ends after it, we hold TIME_WAIT', async () => {
    const p = port();
    const cap = await startCapture(rig, `tcp port ${p}`);
    const peer = await Peer.start(rig, { role: 'server', port: p, send: 100_000, close: 'after-peer-end' });
    const sock = rig.stack.connect({ host: rig.peerIp, port: p });
    const c = new Collector(sock);
    const msg = randomBytes(70_000);
    sock.once('connect', () => sock.end(msg));
    await until(() => c.closed, 20_000, 'close');
    const report = await peer.done(5_000);
    const segs = await cap.stop();
    expect(c.error ?? report.error).toBeUndefined();
    expect(report.recvSha).toBe(sha256(msg));
    expect(c.digest()).toBe(report.sentSha);
    expect(peer.events().map((e) => e.event)).toContain('peer-end');
    expect(firstFinsBySender(segs)).toEqual([STACK_IP, rig.peerIp]);
    expectNoResetBeforeBothFins(segs);
    // We are the active closer: TIME_WAIT, unless a late Linux RST ended it (RFC 1337 "TIME-WAIT
    // assassination", which Linux itself also allows by default).
    const assassinated = segs.some((s) => s.src === rig.peerIp && s.seg.flags & TCP_RST);
    expect(sock.connection.state).toBe(assassinated ? TcpState.Closed : TcpState.TimeWait);
  }, 30_000);

  it('graceful close started by Linux: its FIN first, the stack answers with its own and closes', async () => {
    const p = port();
    const cap = await startCapture(rig, `tcp port ${p}`);
    const peer = await Peer.start(rig, { role: 'server', port: p, send: 200_000, close: 'end' });
    const sock = rig.stack.connect({ host: rig.peerIp, port: p });
    const c = new Collector(sock);
    await until(() => c.closed, 20_000, 'close');
    const report = await peer.done(5_000);
    const segs = await cap.stop();
    expect(c.error ?? report.error).toBeUndefined();
    expect(c.ended).toBe(true);
    expect(c.digest()).toBe(report.sentSha);
    expect(firstFinsBySender(segs)).toEqual([rig.peerIp, STACK_IP]);
    expectNoResetBeforeBothFins(segs);
    expect(sock.connection.state).toBe(TcpState.Closed);
    await until(() => rig.stack.demux.size === 0 || rig.stack.tcpTable().every((r) => r.state === 'TIME_WAIT'), 5_000, 'demux clean');
  }, 30_000);

  it('the Linux process is killed with unread data: its kernel resets, the socket errors with ECONNRESET', async () => {
    const p = port();
    const peer = await Peer.start(rig, { role: 'server', port: p, send: 0, close: 'hold' });
    const sock = rig.stack.connect({ host: rig.peerIp, port: p });
    const c = new Collector(sock);
    const sent = 256 * 1024;
    sock.once('connect', () => sock.write(randomBytes(sent)));
    await peer.wait('connected', 10_000);
    // Acknowledged by Linux but never read by the process: a close must reset (RFC 2525 2.17).
    await until(() => sock.connection.sendQueued > 0 && sock.connection.sendQueued < sent - 16 * 1024, 10_000, 'data acknowledged by the kernel');
    await peer.proc.kill('SIGKILL');
    await until(() => c.closed, 10_000, 'reset');
    expect(c.error?.code).toBe('ECONNRESET');
  }, 30_000);

  it('connection refused both ways: Linux RSTs our SYN (ECONNREFUSED), we RST its SYN (ECONNREFUSED)', async () => {
    const sock = rig.stack.connect({ host: rig.peerIp, port: 4999 });
    const c = new Collector(sock);
    await until(() => c.closed, 10_000, 'refused');
    expect(c.error?.code).toBe('ECONNREFUSED');
    const before = rig.stack.stats.resetsSent;
    const peer = await Peer.start(rig, { role: 'client', host: STACK_IP, port: 4998, send: 0, close: 'end' });
    const report = await peer.done(10_000);
    expect(report.error).toBe('ECONNREFUSED');
    expect(rig.stack.stats.resetsSent).toBe(before + 1);
  }, 30_000);

  it.skipIf(!hasPing)('answers ICMP echo from the kernel', async () => {
    const { stdout } = await rig.lab.exec(rig.peerNs, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '-p', 'c0ffee42', STACK_IP]);
    expect(stdout).toMatch(/3 packets transmitted, 3 received/);
    expect(rig.stack.stats.icmpEchoRequestsIn).toBeGreaterThanOrEqual(3);
  }, 20_000);

  for (const mode of ['active', 'passive'] as const) {
    it(`RFC 7323 / RFC 2018 / RFC 9293 3.7.1 (${mode} open): MSS, window scale, SACK and timestamps negotiated as the capture shows`, async () => {
      const p = port();
      const cap = await startCapture(rig, `tcp port ${p}`);
      const data = randomBytes(300_000);
      let sock: TcpSocket | undefined;
      let c: Collector | undefined;
      let peer: Peer;
      if (mode === 'active') {
        peer = await Peer.start(rig, { role: 'server', port: p, send: 300_000, close: 'after-peer-end' });
        sock = rig.stack.connect({ host: rig.peerIp, port: p });
        c = new Collector(sock);
        sock.once('connect', () => void writeAll(sock!, data));
      } else {
        const server = rig.stack.listen(p, (s) => {
          sock = s;
          c = new Collector(s);
          void writeAll(s, data);
          server.close();
        }, { allowHalfOpen: true });
        peer = await Peer.start(rig, { role: 'client', host: STACK_IP, port: p, send: 300_000, close: 'end' });
      }
      await until(() => c !== undefined && c.closed, 20_000, 'transfer');
      const report = await peer.done(5_000);
      const segs = await cap.stop();
      expect(report.recvSha).toBe(sha256(data));
      expect(c!.digest()).toBe(report.sentSha);

      const fromUs = segs.filter((s) => s.src === STACK_IP).map((s) => s.seg);
      const fromLinux = segs.filter((s) => s.src === rig.peerIp).map((s) => s.seg);
      const ourSyn = fromUs.find((s) => s.flags & TCP_SYN)!;
      const theirSyn = fromLinux.find((s) => s.flags & TCP_SYN)!;
      expect(ourSyn.flags & TCP_ACK).toBe(mode === 'active' ? 0 : TCP_ACK);
      expect(theirSyn.flags & TCP_ACK).toBe(mode === 'active' ? TCP_ACK : 0);
      // What we announced: MSS = MTU - 40; a 4 MiB receive buffer needs shift 7.
      expect(ourSyn.options.mss).toBe(1460);
      expect(ourSyn.options.wscale).toBe(7);
      expect(ourSyn.options.sackPermitted).toBe(true);
      expect(ourSyn.options.ts).toBeDefined();
      expect(theirSyn.options.sackPermitted).toBe(true);
      expect(theirSyn.options.ts).toBeDefined();
      if (mode === 'active') expect(theirSyn.options.ts!.ecr).toBe(ourSyn.options.ts!.val);
      else expect(ourSyn.options.ts!.ecr).toBe(theirSyn.options.ts!.val);
      // The engine uses what the wire says.
      const conn = sock!.connection;
      expect(conn.remoteMssAnnounced).toBe(theirSyn.options.mss);
      expect(conn.windowScales).toEqual({ snd: theirSyn.options.wscale, rcv: 7 });
      expect(conn.sackEnabledNegotiated).toBe(true);
      expect(conn.timestampsEnabled).toBe(true);
      // After the handshake: every segment of ours carries timestamps and scaled windows; data
      // segments are at most MSS - 12 (timestamps) long.
      const after = fromUs.filter((s) => !(s.flags & TCP_SYN));
      expect(after.length).toBeGreaterThan(10);
      expect(after.every((s) => s.options.ts !== undefined)).toBe(true);
      expect(Math.max(...after.map((s) => s.payload.length))).toBe(1448);
      expect(Math.max(...after.map((s) => s.window * 128))).toBeGreaterThan(65535);
      // Linux's segments carry timestamps too (its RSTs never do: one may answer a late duplicate
      // ACK of ours after its side closed).
      expect(fromLinux.filter((s) => !(s.flags & (TCP_SYN | TCP_RST))).every((s) => s.options.ts !== undefined)).toBe(true);
    }, 40_000);
  }
});
