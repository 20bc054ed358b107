import { describe, expect, it } from 'vitest';
import { ipv4 } from '../../src/wire/addresses.js';
import { checksumValid } from '../../src/wire/checksum.js';
import {
  buildIcmpEcho, buildIcmpError, ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_TIME_EXCEEDED,
  ICMP_UNREACH_FRAG_NEEDED, ICMP_UNREACH_PORT, icmpEchoLength, parseIcmpv4, parseQuotedIpv4,
} from '../../src/wire/icmp.js';
import { buildIpv4Header, IPPROTO_TCP, IPPROTO_UDP } from '../../src/wire/ipv4.js';
import { buildTcp } from '../../src/wire/tcp.js';
import { TCP_ACK } from '../../src/wire/tcp-segment.js';
import { fromHex, referenceSum, toHex } from '../fixtures/wire-helpers.js';

/** An IPv4 + TCP packet as a router would quote it (header + first 8 payload bytes, or more). */
function offendingTcp(quoteBytes: number): Uint8Array {
  const pkt = new Uint8Array(20 + 20 + 100);
  buildIpv4Header({ src: ipv4('10.0.0.1'), dst: ipv4('10.0.9.9'), protocol: IPPROTO_TCP, payloadLength: 120 }, pkt);
  buildTcp({ srcPort: 43210, dstPort: 443, seq: 0xfeedf00d, ack: 1, flags: TCP_ACK, window: 1, urgent: 0, options: {}, payload: new Uint8Array(100) }, pkt, 20);
  return pkt.subarray(0, quoteBytes);
}

describe('ICMPv4 echo (RFC 792)', () => {
  it('builds an echo request with a valid checksum and parses it back', () => {
    const data = fromHex('000102030405060708');
    const out = new Uint8Array(icmpEchoLength(data.length) + 1);
    expect(buildIcmpEcho({ type: ICMP_ECHO_REQUEST, id: 0x1234, seq: 0xfffe, data }, out, 1)).toBe(out.length);
    const m = out.subarray(1);
    expect(toHex(m.subarray(0, 2))).toBe('0800');
    expect(toHex(m.subarray(4, 8))).toBe('1234fffe');
    expect(checksumValid(m)).toBe(true);
    const p = parseIcmpv4(m);
    if (typeof p === 'string' || p.kind !== 'echo') throw new Error(String(p));
    expect({ ...p, data: toHex(p.data) }).toEqual({ kind: 'echo', type: ICMP_ECHO_REQUEST, code: 0, id: 0x1234, seq: 0xfffe, data: toHex(data) });
  });

  it('an echo reply built from a request differs only in type and checksum', () => {
    const data = fromHex('68690a');
    const req = new Uint8Array(11);
    const rep = new Uint8Array(11);
    buildIcmpEcho({ type: ICMP_ECHO_REQUEST, id: 7, seq: 1, data }, req);
    buildIcmpEcho({ type: ICMP_ECHO_REPLY, id: 7, seq: 1, data }, rep);
    expect(rep[0]).toBe(0);
    expect(toHex(rep.subarray(4))).toBe(toHex(req.subarray(4)));
    // RFC 1624 relation: the type byte dropped by 8 in the high half of the first word.
    expect(((rep[2]! << 8) | rep[3]!) - ((req[2]! << 8) | req[3]!)).toBe(0x0800);
  });

  it('rejects a bad checksum and short messages; verification can be turned off', () => {
    const m = new Uint8Array(12);
    buildIcmpEcho({ type: ICMP_ECHO_REQUEST, id: 1, seq: 2, data: fromHex('01020304') }, m);
    m[11] ^= 0xff;
    expect(parseIcmpv4(m)).toBe('bad-checksum');
    expect(parseIcmpv4(m, false)).toMatchObject({ kind: 'echo', id: 1, seq: 2 });
    for (let len = 0; len < 8; len++) expect(parseIcmpv4(m.subarray(0, len))).toBe('truncated');
  });
});

describe('ICMPv4 errors', () => {
  it('RFC 1191: fragmentation needed carries the next-hop MTU and quotes the TCP header', () => {
    const original = offendingTcp(28);
    const out = new Uint8Array(8 + 28);
    buildIcmpError({ type: ICMP_DEST_UNREACHABLE, code: ICMP_UNREACH_FRAG_NEEDED, nextHopMtu: 1280, original }, out);
    expect(toHex(out.subarray(0, 8)).replace(/^(....)..../, '$1xxxx')).toBe('0304xxxx00000500');
    const p = parseIcmpv4(out);
    if (typeof p === 'string' || p.kind !== 'dest-unreachable') throw new Error(String(p));
    expect(p.nextHopMtu).toBe(1280);
    expect(toHex(p.original)).toBe(toHex(original));
    expect(p.quoted).toEqual({ src: ipv4('10.0.0.1'), dst: ipv4('10.0.9.9'), protocol: IPPROTO_TCP, srcPort: 43210, dstPort: 443, seq: 0xfeedf00d });
  });

  it('other unreachable codes and time exceeded have next-hop MTU 0', () => {
    const out = new Uint8Array(8 + 140);
    buildIcmpError({ type: ICMP_DEST_UNREACHABLE, code: ICMP_UNREACH_PORT, nextHopMtu: 999, original: offendingTcp(140) }, out);
    expect(parseIcmpv4(out)).toMatchObject({ kind: 'dest-unreachable', code: ICMP_UNREACH_PORT, nextHopMtu: 0 });
    expect(toHex(out.subarray(4, 8))).toBe('00000000');
    buildIcmpError({ type: ICMP_TIME_EXCEEDED, code: 0, original: offendingTcp(140) }, out);
    expect(parseIcmpv4(out)).toMatchObject({ kind: 'time-exceeded', type: ICMP_TIME_EXCEEDED, nextHopMtu: 0, quoted: { srcPort: 43210 } });
  });

  it('quotes shorter than an IP header are bad-icmp; short or odd quotes parse leniently', () => {
    const tooShort = new Uint8Array(8 + 19);
    buildIcmpError({ type: ICMP_DEST_UNREACHABLE, code: 1, original: offendingTcp(19) }, tooShort);
    expect(parseIcmpv4(tooShort)).toBe('bad-icmp');
    // Header only, no transport bytes: addresses but no ports.
    expect(parseQuotedIpv4(offendingTcp(20))).toEqual({ src: ipv4('10.0.0.1'), dst: ipv4('10.0.9.9'), protocol: IPPROTO_TCP });
    expect(parseQuotedIpv4(offendingTcp(27))).toEqual({ src: ipv4('10.0.0.1'), dst: ipv4('10.0.9.9'), protocol: IPPROTO_TCP });
    const notIp = offendingTcp(28).slice();
    notIp[0] = 0x60;
    expect(parseQuotedIpv4(notIp)).toBeUndefined();
    const badIhl = offendingTcp(28).slice();
    badIhl[0] = 0x4f;
    expect(parseQuotedIpv4(badIhl)).toBeUndefined();
    const udp = offendingTcp(28).slice();
    udp[9] = IPPROTO_UDP;
    expect(parseQuotedIpv4(udp)).toEqual({ src: ipv4('10.0.0.1'), dst: ipv4('10.0.9.9'), protocol: IPPROTO_UDP, srcPort: 43210, dstPort: 443 });
  });

  it('other types parse as kind other with their body', () => {
    const m = fromHex('0d00' + '0000' + '00010002' + '00000000'); // timestamp request
    const sum = ~referenceSum(m) & 0xffff;
    m[2] = sum >>> 8;
    m[3] = sum & 0xff;
    const p = parseIcmpv4(m);
    if (typeof p === 'string' || p.kind !== 'other') throw new Error(String(p));
    expect(p.type).toBe(13);
    expect(toHex(p.body)).toBe('0001000200000000');
  });
});
