import { describe, expect, it } from 'vitest';
import { BROADCAST_MAC, ipv4, ipv6, ipv6ToString, mac, ZERO_MAC } from '../../src/wire/addresses.js';
import { ARP_REQUEST } from '../../src/wire/arp.js';
import { foldSum, pseudoHeaderSumV4 } from '../../src/wire/checksum.js';
import { buildEthernet, ETHERTYPE_IPV4 } from '../../src/wire/ethernet.js';
import {
  buildArpFrame, buildIcmpv4Frame, buildIpTcpPacket, buildIpv4TcpPacket, buildTcpFrame, ipTcpPacketLength, parseFrame,
  parseIpPacket, tcpFrameLength, type Ipv4Spec, type TcpFrameSpec,
} from '../../src/wire/frame.js';
import { ICMP_ECHO_REQUEST } from '../../src/wire/icmp.js';
import { buildIpv4Header, IPPROTO_UDP } from '../../src/wire/ipv4.js';
import { TCP_ACK, TCP_PSH, TCP_SYN, type TcpSegment } from '../../src/wire/tcp-segment.js';
import { fromHex, prng, randomBytes, toHex } from '../fixtures/wire-helpers.js';

const segment: TcpSegment = {
  srcPort: 5001, dstPort: 40001, seq: 0xfffffff0, ack: 77, flags: TCP_ACK | TCP_PSH, window: 1024, urgent: 0,
  options: { ts: { val: 123, ecr: 456 }, sack: [{ left: 1000, right: 2000 }] }, payload: randomBytes(prng(1), 1200),
};

const v4Ip: Ipv4Spec = { version: 4, src: ipv4('10.1.0.1'), dst: ipv4('10.1.0.2'), ttl: 33, tos: 0x10, id: 4242 };
const v4Spec: TcpFrameSpec = { srcMac: mac('02:00:00:00:00:01'), dstMac: mac('02:00:00:00:00:02'), ip: v4Ip, segment };

function ok<T>(r: T | string): T {
  if (typeof r === 'string') throw new Error(`unexpected drop: ${r}`);
  return r;
}

describe('parseFrame / buildTcpFrame', () => {
  it('round trips an IPv4 TCP frame with an 802.1Q tag', () => {
    const spec: TcpFrameSpec = { ...v4Spec, vlan: { pcp: 3, dei: false, vid: 100 } };
    const frame = buildTcpFrame(spec);
    expect(frame.length).toBe(tcpFrameLength(spec));
    expect(frame.length).toBe(18 + 20 + 20 + 12 + 12 + 1200);
    const f = ok(parseFrame(frame));
    expect(f.eth.vlan).toEqual({ pcp: 3, dei: false, vid: 100 });
    expect(f.ip).toMatchObject({ version: 4, src: ipv4('10.1.0.1'), dst: ipv4('10.1.0.2'), ttl: 33, tos: 0x10, id: 4242, df: true });
    expect(f.tcp).toEqual(segment);
    expect(f.arp).toBeUndefined();
    expect(f.icmp).toBeUndefined();
  });

  it('round trips an IPv6 TCP frame', () => {
    const spec: TcpFrameSpec = {
      srcMac: mac('02:00:00:00:00:01'), dstMac: mac('02:00:00:00:00:02'),
      ip: { version: 6, src: ipv6('fd00::1'), dst: ipv6('fd00::2'), hopLimit: 9, flowLabel: 0x12345 },
      segment: { ...segment, flags: TCP_SYN, options: { mss: 1440, sackPermitted: true, ts: { val: 1, ecr: 0 }, wscale: 7 }, payload: new Uint8Array(0) },
    };
    const frame = buildTcpFrame(spec);
    expect(toHex(frame.subarray(12, 14))).toBe('86dd');
    const f = ok(parseFrame(frame));
    if (f.ip?.version !== 6) throw new Error('not v6');
    expect(toHex(f.ip.src)).toBe(toHex(ipv6('fd00::1')));
    expect(f.ip.hopLimit).toBe(9);
    expect(f.ip.flowLabel).toBe(0x12345);
    expect(f.tcp).toEqual(spec.segment);
  });

  it('parses IPv6 behind an 802.1Q tag (addresses and payload at the right offsets)', () => {
    const spec: TcpFrameSpec = {
      srcMac: mac('02:00:00:00:00:01'), dstMac: mac('02:00:00:00:00:02'), vlan: { pcp: 7, dei: true, vid: 4095 },
      ip: { version: 6, src: ipv6('2001:db8::a'), dst: ipv6('2001:db8::b') }, segment,
    };
    const f = ok(parseFrame(buildTcpFrame(spec)));
    if (f.ip?.version !== 6) throw new Error('not v6');
    expect(f.eth.headerLength).toBe(18);
    expect(ipv6ToString(f.ip.src)).toBe('2001:db8::a');
    expect(ipv6ToString(f.ip.dst)).toBe('2001:db8::b');
    expect(f.ip.payloadOffset).toBe(18 + 40);
    expect(f.tcp).toEqual(segment);
  });

  it('writes into a caller buffer at an offset and returns a view of it; refuses a buffer too small', () => {
    const out = new Uint8Array(2000).fill(0x77);
    const view = buildTcpFrame(v4Spec, out, 5);
    expect(view.buffer).toBe(out.buffer);
    expect(view.byteOffset).toBe(5);
    expect(toHex(view)).toBe(toHex(buildTcpFrame(v4Spec)));
    expect(out[4]).toBe(0x77);
    expect(out[5 + view.length]).toBe(0x77);
    expect(() => buildTcpFrame(v4Spec, new Uint8Array(100))).toThrow(RangeError);
    expect(() => buildTcpFrame(v4Spec, out, 2000 - tcpFrameLength(v4Spec) + 1)).toThrow(RangeError);
  });

  it('buildIpv4TcpPacket is the frame without its Ethernet header, and parseIpPacket reads it', () => {
    const packet = buildIpv4TcpPacket({ ip: v4Ip, segment });
    expect(packet.length).toBe(ipTcpPacketLength(v4Spec));
    expect(toHex(packet)).toBe(toHex(buildTcpFrame(v4Spec).subarray(14)));
    const p = ok(parseIpPacket(packet));
    expect(p.ip.version).toBe(4);
    expect(p.tcp).toEqual(segment);
    const v6 = buildIpTcpPacket({ ip: { version: 6, src: ipv6('::1'), dst: ipv6('::2') }, segment });
    expect(ok(parseIpPacket(v6)).tcp).toEqual(segment);
    expect(parseIpPacket(new Uint8Array(0))).toBe('truncated');
    expect(parseIpPacket(fromHex('50'))).toBe('bad-version');
  });

  it('verifyL4Checksum false accepts a checksum left to offload (pseudo-header sum only); the default drops it', () => {
    const frame = buildTcpFrame(v4Spec);
    // What Linux hands a TAP with CHECKSUM_PARTIAL: the folded pseudo-header sum, not the checksum.
    const tcpLen = frame.length - 34;
    const partial = foldSum(pseudoHeaderSumV4(ipv4('10.1.0.1'), ipv4('10.1.0.2'), 6, tcpLen));
    frame[34 + 16] = partial >>> 8;
    frame[34 + 17] = partial & 0xff;
    expect(parseFrame(frame)).toBe('bad-checksum');
    expect(ok(parseFrame(frame, false)).tcp?.payload.length).toBe(1200);
    // The IPv4 header checksum is still checked.
    frame[14 + 8] ^= 1;
    expect(parseFrame(frame, false)).toBe('bad-checksum');
  });

  it('drops unknown ethertypes; passes other IP protocols up with their payload', () => {
    const lldp = new Uint8Array(60);
    buildEthernet({ dst: mac('01:80:c2:00:00:0e'), src: mac('02:00:00:00:00:01'), ethertype: 0x88cc }, lldp);
    expect(parseFrame(lldp)).toBe('unsupported-ethertype');
    const udp = new Uint8Array(14 + 20 + 8);
    let o = buildEthernet({ dst: BROADCAST_MAC, src: mac('02:00:00:00:00:01'), ethertype: ETHERTYPE_IPV4 }, udp);
    o = buildIpv4Header({ src: ipv4('10.0.0.1'), dst: ipv4('10.0.0.255'), protocol: IPPROTO_UDP, payloadLength: 8 }, udp, o);
    udp.set(fromHex('0044004300080000'), o);
    const f = ok(parseFrame(udp));
    expect(f.ip?.protocol).toBe(IPPROTO_UDP);
    expect(toHex(f.ip!.payload)).toBe('0044004300080000');
    expect(f.tcp).toBeUndefined();
    expect(f.icmp).toBeUndefined();
  });

  it('builds and parses ARP and ICMP frames', () => {
    const arp = { op: ARP_REQUEST, senderMac: mac('02:00:00:00:00:01'), senderIp: ipv4('10.0.0.1'), targetMac: ZERO_MAC, targetIp: ipv4('10.0.0.2') };
    const af = buildArpFrame({ srcMac: arp.senderMac, dstMac: BROADCAST_MAC, vlan: { pcp: 0, dei: false, vid: 7 }, arp });
    expect(af.length).toBe(46);
    expect(ok(parseFrame(af)).arp).toMatchObject({ op: ARP_REQUEST, senderIp: arp.senderIp, targetIp: arp.targetIp });
    const icmp = buildIcmpv4Frame({
      srcMac: arp.senderMac, dstMac: mac('02:00:00:00:00:02'), ip: { version: 4, src: arp.senderIp, dst: arp.targetIp },
      icmp: { kind: 'echo', type: ICMP_ECHO_REQUEST, id: 9, seq: 3, data: fromHex('cafebabe') },
    });
    expect(icmp.length).toBe(14 + 20 + 8 + 4);
    expect(ok(parseFrame(icmp)).icmp).toMatchObject({ kind: 'echo', id: 9, seq: 3 });
  });
});
