import { describe, expect, it } from 'vitest';
import { ipv4, ipv6 } from '../../src/wire/addresses.js';
import { internetChecksum } from '../../src/wire/checksum.js';
import { buildIpv4Header, IPPROTO_TCP, IPPROTO_UDP, parseIpv4 } from '../../src/wire/ipv4.js';
import {
  buildIpv6Header, IPV6_DEST_OPTIONS, IPV6_FRAGMENT, IPV6_HOP_BY_HOP, IPV6_ROUTING, parseIpv6,
} from '../../src/wire/ipv6.js';
import { fromHex, toHex } from '../fixtures/wire-helpers.js';

function v4Packet(payload: Uint8Array, over: Partial<Parameters<typeof buildIpv4Header>[0]> = {}): Uint8Array {
  const out = new Uint8Array(20 + payload.length);
  buildIpv4Header({ src: ipv4('192.0.2.1'), dst: ipv4('198.51.100.2'), protocol: IPPROTO_TCP, payloadLength: payload.length, ...over }, out);
  out.set(payload, 20);
  return out;
}

/** Rewrites the header checksum after a test edits header bytes. */
function fixChecksum(pkt: Uint8Array): Uint8Array {
  const ihl = (pkt[0]! & 15) * 4;
  pkt[10] = 0;
  pkt[11] = 0;
  const c = internetChecksum(pkt, 0, ihl);
  pkt[10] = c >>> 8;
  pkt[11] = c & 0xff;
  return pkt;
}

describe('IPv4 (RFC 791)', () => {
  it('builds the exact header with DF by default and parses every field back', () => {
    const pkt = v4Packet(fromHex('deadbeef'), { ttl: 63, tos: 0xb8, id: 0xbeef });
    expect(toHex(pkt.subarray(0, 20))).toBe('45b80018beef4000' + '3f06' + toHex(pkt.subarray(10, 12)) + 'c0000201c6336402');
    expect(internetChecksum(pkt, 0, 20)).toBe(0);
    const p = parseIpv4(pkt);
    if (typeof p === 'string') throw new Error(p);
    expect({ ...p, payload: toHex(p.payload) }).toEqual({
      version: 4, headerLength: 20, tos: 0xb8, totalLength: 24, id: 0xbeef, df: true, ttl: 63, protocol: IPPROTO_TCP,
      src: ipv4('192.0.2.1'), dst: ipv4('198.51.100.2'), hasOptions: false, payload: 'deadbeef',
      buf: pkt, payloadOffset: 20, payloadEnd: 24,
    });
    expect(p.buf).toBe(pkt);
  });

  it('defaults: TTL 64, TOS 0, id 0; df false clears DF', () => {
    const p = parseIpv4(v4Packet(new Uint8Array(0), { df: false }));
    expect(p).toMatchObject({ ttl: 64, tos: 0, id: 0, df: false });
    expect(toHex(v4Packet(new Uint8Array(0)).subarray(0, 10))).toBe('45000014000040004006');
  });

  it('trims Ethernet padding to the total length', () => {
    const pkt = new Uint8Array(46);
    pkt.set(v4Packet(fromHex('0102')));
    const p = parseIpv4(pkt);
    if (typeof p === 'string') throw new Error(p);
    expect(toHex(p.payload)).toBe('0102');
  });

  it('skips options and reports hasOptions', () => {
    const base = v4Packet(fromHex('cafe'));
    const pkt = new Uint8Array(base.length + 4);
    pkt.set(base.subarray(0, 20));
    pkt.set(fromHex('01010100'), 20); // NOP NOP NOP EOL
    pkt.set(base.subarray(20), 24);
    pkt[0] = 0x46;
    pkt[3] = pkt.length;
    fixChecksum(pkt);
    const p = parseIpv4(pkt);
    if (typeof p === 'string') throw new Error(p);
    expect(p.hasOptions).toBe(true);
    expect(p.headerLength).toBe(24);
    expect(toHex(p.payload)).toBe('cafe');
  });

  it('rejects bad version, IHL < 5, a bad header checksum and inconsistent lengths', () => {
    const good = v4Packet(fromHex('00112233'));
    const edit = (f: (b: Uint8Array) => void, fix = true): Uint8Array => { const b = good.slice(); f(b); return fix ? fixChecksum(b) : b; };
    expect(parseIpv4(edit((b) => { b[0] = 0x65; }, false))).toBe('bad-version');
    for (let ihl = 0; ihl < 5; ihl++) expect(parseIpv4(edit((b) => { b[0] = 0x40 | ihl; }, false))).toBe('bad-header-length');
    expect(parseIpv4(edit((b) => { b[0] = 0x4f; }, false))).toBe('truncated'); // 60-byte header, 24 bytes here
    expect(parseIpv4(edit((b) => { b[8] ^= 1; }, false))).toBe('bad-checksum');
    expect(parseIpv4(edit((b) => { b[8] ^= 1; }, false), false)).toMatchObject({ ttl: 65 }); // verification off
    expect(parseIpv4(edit((b) => { b[3] = 19; }))).toBe('bad-length');
    expect(parseIpv4(edit((b) => { b[3] = 25; }))).toBe('truncated');
  });

  it('detects fragments: MF set or a non-zero offset -> fragment', () => {
    const good = v4Packet(fromHex('00112233'));
    const frag = (hi: number, lo: number): Uint8Array => { const b = good.slice(); b[6] = hi; b[7] = lo; return fixChecksum(b); };
    expect(parseIpv4(frag(0x20, 0x00))).toBe('fragment'); // MF, offset 0 (first fragment)
    expect(parseIpv4(frag(0x00, 0x01))).toBe('fragment'); // last fragment, offset 8
    expect(parseIpv4(frag(0x20, 0xb9))).toBe('fragment');
    expect(parseIpv4(frag(0x1f, 0xff))).toBe('fragment');
    expect(parseIpv4(frag(0x40, 0x00))).toMatchObject({ df: true }); // DF only: not a fragment
    expect(parseIpv4(frag(0x00, 0x00))).toMatchObject({ df: false });
  });

  it('refuses to build a total length above 65535', () => {
    expect(() => buildIpv4Header({ src: 0, dst: 0, protocol: IPPROTO_UDP, payloadLength: 65516 }, new Uint8Array(20))).toThrow(RangeError);
  });
});

describe('IPv6 (RFC 8200)', () => {
  const src = ipv6('2001:db8::1');
  const dst = ipv6('2001:db8::2');

  function v6Packet(nextHeader: number, rest: Uint8Array, over: Partial<Parameters<typeof buildIpv6Header>[0]> = {}): Uint8Array {
    const out = new Uint8Array(40 + rest.length);
    buildIpv6Header({ src, dst, nextHeader, payloadLength: rest.length, ...over }, out);
    out.set(rest, 40);
    return out;
  }

  it('builds the exact fixed header and parses every field back', () => {
    const pkt = v6Packet(IPPROTO_TCP, fromHex('abcd'), { hopLimit: 7, trafficClass: 0xb8, flowLabel: 0xabcde });
    expect(toHex(pkt.subarray(0, 8))).toBe('6b8abcde' + '0002' + '06' + '07');
    const p = parseIpv6(pkt);
    if (typeof p === 'string') throw new Error(p);
    expect({ ...p, src: toHex(p.src), dst: toHex(p.dst), payload: toHex(p.payload) }).toEqual({
      version: 6, trafficClass: 0xb8, flowLabel: 0xabcde, payloadLength: 2, nextHeader: IPPROTO_TCP, hopLimit: 7,
      src: toHex(src), dst: toHex(dst), protocol: IPPROTO_TCP, headerLength: 40, payload: 'abcd',
      buf: pkt, payloadOffset: 40, payloadEnd: 42,
    });
    expect(parseIpv6(v6Packet(IPPROTO_TCP, new Uint8Array(0)))).toMatchObject({ hopLimit: 64, trafficClass: 0, flowLabel: 0 });
  });

  it('walks hop-by-hop, routing and destination options to the upper-layer protocol', () => {
    const hbh = fromHex('2b00' + '050200000100'); // next routing, len 0 (8 bytes): router alert + PadN
    const rt = fromHex('3c02' + '0400' + '00000000' + '00'.repeat(16)); // next dest-opts, len 2 (24 bytes)
    const dopt = fromHex('0601' + '010c' + '00'.repeat(12)); // next TCP, len 1 (16 bytes)
    const rest = new Uint8Array(8 + 24 + 16 + 3);
    rest.set(hbh, 0);
    rest.set(rt, 8);
    rest.set(dopt, 32);
    rest.set(fromHex('aabbcc'), 48);
    const p = parseIpv6(v6Packet(IPV6_HOP_BY_HOP, rest));
    if (typeof p === 'string') throw new Error(p);
    expect(p.nextHeader).toBe(IPV6_HOP_BY_HOP);
    expect(p.protocol).toBe(IPPROTO_TCP);
    expect(p.headerLength).toBe(40 + 48);
    expect(toHex(p.payload)).toBe('aabbcc');
  });

  it('reports a fragment header as fragment, a misplaced hop-by-hop as bad-extension-header', () => {
    expect(parseIpv6(v6Packet(IPV6_FRAGMENT, fromHex('0600000100000001' + 'aa')))).toBe('fragment');
    const dopt = fromHex('2c00' + '010400000000'); // dest opts -> fragment
    expect(parseIpv6(v6Packet(IPV6_DEST_OPTIONS, new Uint8Array([...dopt, ...fromHex('0600000100000001')])))).toBe('fragment');
    const hbhLate = fromHex('0000' + '010400000000' + '0600' + '010400000000');
    expect(parseIpv6(v6Packet(IPV6_DEST_OPTIONS, hbhLate))).toBe('bad-extension-header');
  });

  it('reports truncated extension headers and lengths past the buffer', () => {
    expect(parseIpv6(v6Packet(IPV6_ROUTING, fromHex('06')))).toBe('truncated'); // no length byte
    expect(parseIpv6(v6Packet(IPV6_ROUTING, fromHex('0601000000000000')))).toBe('truncated'); // says 16, has 8
    const pkt = v6Packet(IPPROTO_TCP, fromHex('0102'));
    expect(parseIpv6(pkt.subarray(0, 41))).toBe('truncated');
    for (let len = 0; len < 40; len++) expect(parseIpv6(pkt.subarray(0, len))).toBe('truncated');
    const v4 = pkt.slice();
    v4[0] = 0x45;
    expect(parseIpv6(v4)).toBe('bad-version');
    // RFC 2675 jumbogram: payload length 0 with a hop-by-hop header.
    expect(parseIpv6(v6Packet(IPV6_HOP_BY_HOP, new Uint8Array(0)))).toBe('bad-length');
  });

  it('trims link padding to the payload length', () => {
    const pkt = new Uint8Array(100);
    pkt.set(v6Packet(IPPROTO_TCP, fromHex('0102')));
    const p = parseIpv6(pkt);
    if (typeof p === 'string') throw new Error(p);
    expect(toHex(p.payload)).toBe('0102');
  });
});
