/**
 * One HostStack on a sim link; the test speaks raw frames on the other end: ARP answers (exact
 * bytes), ICMP echo, RSTs for unknown segments, listen backlog, routing, output batching, the
 * IP-layer (raw) variant, and malformed input dropped and counted by reason without a throw.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/link/sim/rng.js';
import { ipv4, mac, macToString } from '../../src/wire/addresses.js';
import { ARP_REPLY, ARP_REQUEST } from '../../src/wire/arp.js';
import { buildArpFrame, buildIcmpv4Frame, buildTcpFrame, parseFrame, parseIpPacket } from '../../src/wire/frame.js';
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST } from '../../src/wire/icmp.js';
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpSegment } from '../../src/wire/tcp-segment.js';
import { IP_A, MAC_A, SimHostAndWire } from '../support/host-sim.js';

const PEER_MAC = mac('02:00:00:00:00:0b');
const PEER_IP = ipv4('10.0.0.2');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function arpRequest(targetIp: number, senderIp = PEER_IP, senderMac = PEER_MAC): Uint8Array {
  return buildArpFrame({
    srcMac: senderMac, dstMac: mac('ff:ff:ff:ff:ff:ff'),
    arp: { op: ARP_REQUEST, senderMac, senderIp, targetMac: new Uint8Array(6), targetIp },
  });
}

function tcpFrame(seg: Partial<TcpSegment>, src = PEER_IP): Uint8Array {
  const segment: TcpSegment = {
    srcPort: 40000, dstPort: 80, seq: 1000, ack: 0, flags: TCP_SYN, window: 65535, urgent: 0,
    options: {}, payload: new Uint8Array(0), ...seg,
  };
  return buildTcpFrame({ srcMac: PEER_MAC, dstMac: MAC_A, ip: { version: 4, src, dst: IP_A }, segment });
}

/** A stack that already knows the peer (the peer ARPed for it). */
function knownPeer(opts?: ConstructorParameters<typeof SimHostAndWire>[0]): SimHostAndWire {
  const w = new SimHostAndWire(opts);
  w.inject([arpRequest(IP_A)]);
  w.take();
  return w;
}

function parsed(f: Uint8Array) {
  const p = parseFrame(f);
  if (typeof p === 'string') throw new Error(`stack sent a bad frame: ${p}`);
  return p;
}

describe('HostStack on the wire', () => {
  it('RFC 826: answers an ARP request for its address with the exact reply, and learns the asker', () => {
    const w = new SimHostAndWire();
    w.inject([arpRequest(IP_A)]);
    const out = w.take();
    expect(out.map(hex)).toEqual([
      '02000000000b' + '02000000000a' + '0806' + '0001' + '0800' + '06' + '04' + '0002'
      + '02000000000a' + '0a000001' + '02000000000b' + '0a000002',
    ]);
    expect(w.stack.arpTable().map((r) => [r.ip, macToString(r.mac!), r.state])).toEqual([[PEER_IP, '02:00:00:00:00:0b', 'reachable']]);
  });

  it('ignores ARP requests for other addresses and does not learn from them', () => {
    const w = new SimHostAndWire();
    w.inject([arpRequest(ipv4('10.0.0.77'))]);
    expect(w.take()).toEqual([]);
    expect(w.stack.arpTable()).toEqual([]);
    expect(w.stack.stats.arpRequestsIn).toBe(1);
  });

  it('RFC 792: answers an echo request with the same id, sequence and data (ARPing for the asker first)', () => {
    const w = new SimHostAndWire();
    const data = Uint8Array.from({ length: 56 }, (_, i) => (i * 7) & 0xff);
    w.inject([buildIcmpv4Frame({
      srcMac: PEER_MAC, dstMac: MAC_A, ip: { version: 4, src: PEER_IP, dst: IP_A },
      icmp: { kind: 'echo', type: ICMP_ECHO_REQUEST, id: 0x1234, seq: 7, data },
    })]);
    // Unknown asker: the reply waits for ARP.
    const [req, ...rest] = w.take();
    expect(rest).toEqual([]);
    const arp = parsed(req!).arp!;
    expect([arp.op, arp.targetIp, macToString(parsed(req!).eth.dst)]).toEqual([ARP_REQUEST, PEER_IP, 'ff:ff:ff:ff:ff:ff']);
    w.inject([buildArpFrame({
      srcMac: PEER_MAC, dstMac: MAC_A,
      arp: { op: ARP_REPLY, senderMac: PEER_MAC, senderIp: PEER_IP, targetMac: MAC_A, targetIp: IP_A },
    })]);
    const [reply, ...more] = w.take();
    expect(more).toEqual([]);
    const p = parsed(reply!); // checksums verified by the parser
    expect([macToString(p.eth.dst), p.ip!.src, p.ip!.dst]).toEqual(['02:00:00:00:00:0b', IP_A, PEER_IP]);
    expect(p.icmp).toMatchObject({ kind: 'echo', type: ICMP_ECHO_REPLY, code: 0, id: 0x1234, seq: 7 });
    expect(hex((p.icmp as { data: Uint8Array }).data)).toBe(hex(data));
    expect(w.stack.stats.icmpEchoRequestsIn).toBe(1);
  });

  it('RFC 9293 3.10.7.1: a segment for no connection gets the RST the RFC prescribes', () => {
    const w = knownPeer();
    w.inject([tcpFrame({ dstPort: 9, flags: TCP_ACK, seq: 500, ack: 123456 })]);
    w.inject([tcpFrame({ dstPort: 9, flags: TCP_SYN, seq: 0xfffffff0, payload: Uint8Array.of(1, 2, 3) })]);
    w.inject([tcpFrame({ dstPort: 9, flags: TCP_RST, seq: 1 })]); // never answered
    const [r1, r2, ...rest] = w.take().map((f) => parsed(f).tcp!);
    expect(rest).toEqual([]);
    expect([r1!.srcPort, r1!.dstPort, r1!.seq, r1!.ack, r1!.flags]).toEqual([9, 40000, 123456, 0, TCP_RST]);
    expect([r2!.seq, r2!.ack, r2!.flags]).toEqual([0, 0xfffffff4, TCP_RST | TCP_ACK]);
    expect(w.stack.stats.resetsSent).toBe(2);
  });

  it('a SYN beyond the listen backlog is dropped and counted, not answered', () => {
    const w = knownPeer();
    w.stack.listen(80, undefined, { backlog: 1 });
    w.inject([tcpFrame({ srcPort: 1000 })]);
    w.inject([tcpFrame({ srcPort: 1001 })]);
    const out = w.take().map((f) => parsed(f).tcp!);
    expect(out.map((s) => [s.dstPort, s.flags])).toEqual([[1000, TCP_SYN | TCP_ACK]]);
    expect(w.stack.drops.get('listen-overflow')).toBe(1);
  });

  it('sends to off-link destinations through the gateway, and counts them as no-route without one', () => {
    const gw = ipv4('10.0.0.254');
    const w = new SimHostAndWire({ stack: { ipv4: { address: IP_A, prefixLength: 24, gateway: gw } } });
    w.stack.connect({ host: '192.168.9.9', port: 80 });
    w.sim.runUntil(0);
    const arp = w.take().map((f) => parsed(f).arp!);
    expect(arp.map((a) => [a.op, a.targetIp])).toEqual([[ARP_REQUEST, gw]]);

    const w2 = new SimHostAndWire();
    w2.stack.connect({ host: '192.168.9.9', port: 80 });
    w2.sim.runUntil(0);
    expect(w2.take()).toEqual([]);
    expect(w2.stack.drops.get('no-route')).toBe(1);
  });

  it('an IP-layer link (raw) carries bare IPv4 packets and needs no ARP', () => {
    const w = new SimHostAndWire({ layer: 'ip' });
    w.stack.connect({ host: '10.0.0.2', port: 80, localPort: 5555 });
    w.sim.runUntil(0);
    const [syn, ...rest] = w.take();
    expect(rest).toEqual([]);
    const p = parseIpPacket(syn!);
    if (typeof p === 'string') throw new Error(p);
    expect([p.ip.src, p.ip.dst, p.tcp!.srcPort, p.tcp!.dstPort, p.tcp!.flags]).toEqual([IP_A, PEER_IP, 5555, 80, TCP_SYN]);
    expect(p.tcp!.options.mss).toBe(1460);
    expect(w.stack.stats.arpRequestsOut).toBe(0);
  });

  it('hands the frames of one turn to the link in batches of at most batchFrames', () => {
    const w = new SimHostAndWire({ stack: { batchFrames: 64 } });
    const batches: number[] = [];
    w.wire.setReceiver((frames) => batches.push(frames.length));
    // 100 different askers in one inbound batch -> 100 replies produced in one turn.
    const reqs = Array.from({ length: 100 }, (_, i) => arpRequest(IP_A, ipv4('10.0.0.100') + i, mac(`02:00:00:00:01:${i.toString(16).padStart(2, '0')}`)));
    w.inject(reqs);
    expect(batches).toEqual([64, 36]);
    expect(w.stack.stats.arpRepliesOut).toBe(100);
  });

  it('drops malformed and foreign frames by reason and never throws', () => {
    const w = knownPeer();
    const good = tcpFrame({ dstPort: 9, flags: TCP_ACK, seq: 1, ack: 1 });
    const mutate = (f: Uint8Array, fn: (c: Uint8Array) => void): Uint8Array => { const c = f.slice(); fn(c); return c; };
    const ipChecksumFixed = (c: Uint8Array): void => {
      c[24] = 0; c[25] = 0;
      let s = 0;
      for (let i = 14; i < 34; i += 2) s += (c[i]! << 8) | c[i + 1]!;
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      s = ~s & 0xffff;
      c[24] = s >>> 8; c[25] = s & 0xff;
    };
    const frames: Array<[string, Uint8Array]> = [
      ['truncated', good.subarray(0, 10)],
      ['truncated', good.subarray(0, 30)],
      ['unsupported-ethertype', mutate(good, (c) => { c[12] = 0x88; c[13] = 0xcc; })],
      ['bad-checksum', mutate(good, (c) => { c[22] ^= 1; })], // IPv4 header (TTL) changed, checksum not
      ['bad-checksum', mutate(good, (c) => { c[40] ^= 0x80; })], // TCP sequence changed
      ['fragment', mutate(good, (c) => { c[20] = 0x20; ipChecksumFixed(c); })],
      ['bad-version', mutate(good, (c) => { c[14] = 0x55; })],
      ['not-for-us', mutate(good, (c) => { c[0] = 0x02; c[5] = 0x77; })],
      ['not-for-us', buildIcmpv4Frame({
        srcMac: PEER_MAC, dstMac: MAC_A, ip: { version: 4, src: PEER_IP, dst: ipv4('10.0.0.99') },
        icmp: { kind: 'echo', type: ICMP_ECHO_REQUEST, id: 1, seq: 1, data: new Uint8Array(8) },
      })],
      ['unsupported-protocol', mutate(good, (c) => { c[23] = 17; ipChecksumFixed(c); })],
      ['bad-source', tcpFrame({ dstPort: 9, flags: TCP_SYN }, ipv4('10.0.0.255'))],
      ['bad-source', tcpFrame({ dstPort: 9, flags: TCP_SYN }, ipv4('224.0.0.1'))],
      ['bad-arp', mutate(arpRequest(IP_A), (c) => { c[15] = 6; })],
      ['vlan-tagged', Uint8Array.from([...good.subarray(0, 12), 0x81, 0x00, 0x00, 0x05, ...good.subarray(12)])],
      ['ipv6', Uint8Array.from([...MAC_A, ...PEER_MAC, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, 59, 64, ...new Uint8Array(32)])],
      ['icmp-unhandled', buildIcmpv4Frame({
        srcMac: PEER_MAC, dstMac: MAC_A, ip: { version: 4, src: PEER_IP, dst: IP_A },
        icmp: { kind: 'error', type: 3, code: 3, original: new Uint8Array(28).fill(0x45, 0, 1) },
      })],
    ];
    w.inject(frames.map(([, f]) => f));
    const want: Record<string, number> = {};
    for (const [r] of frames) want[r] = (want[r] ?? 0) + 1;
    expect(w.stack.drops.snapshot()).toEqual(want);
    expect(w.take()).toEqual([]); // nothing answered, not even with an RST

    // Random garbage and random corruptions of good frames: every one is dropped or handled.
    const rng = new Rng('fuzz');
    const fuzz: Uint8Array[] = [];
    for (let i = 0; i < 2000; i++) {
      const base = i % 2 === 0 ? good.slice() : new Uint8Array(rng.int(121));
      for (let k = 0; k < 1 + rng.int(4); k++) if (base.length) base[rng.int(base.length)] = rng.int(256);
      if (i % 2 === 1 && base.length >= 14) base.set(MAC_A, 0);
      fuzz.push(base);
    }
    expect(() => w.inject(fuzz)).not.toThrow();
    expect(w.stack.drops.get('handler-error')).toBe(0);
    expect(w.stack.stats.framesIn).toBe(1 + frames.length + fuzz.length);
  });
});
