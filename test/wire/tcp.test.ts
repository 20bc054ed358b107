import { describe, expect, it } from 'vitest';
import { ipv4, ipv6 } from '../../src/wire/addresses.js';
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../src/wire/checksum.js';
import { buildTcp, parseTcp, parseTcpOptions, tcpHeaderLength, tcpSackBlocksThatFit } from '../../src/wire/tcp.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, type TcpOptions, type TcpSegment } from '../../src/wire/tcp-segment.js';
import { fromHex, prng, randomBytes, referenceSum, toHex } from '../fixtures/wire-helpers.js';

const SRC = ipv4('192.0.2.1');
const DST = ipv4('198.51.100.7');
const PSEUDO = pseudoHeaderSumV4(SRC, DST, 6, 0);

function seg(over: Partial<TcpSegment> = {}): TcpSegment {
  return {
    srcPort: 40000, dstPort: 80, seq: 0x01020304, ack: 0xa0b0c0d0, flags: TCP_ACK, window: 502, urgent: 0,
    options: {}, payload: new Uint8Array(0), ...over,
  };
}

/** Builds into a fresh buffer; `pseudo` 'none' leaves the checksum field 0. */
function build(s: TcpSegment, pseudo: number | 'none' = PSEUDO): Uint8Array {
  const out = new Uint8Array(tcpHeaderLength(s.options) + s.payload.length);
  expect(buildTcp(s, out, 0, pseudo === 'none' ? undefined : pseudo)).toBe(out.length);
  return out;
}

/** Parses a header whose option bytes are `hex` (a multiple of 4 bytes, so no padding is implied). */
function options(hex: string): TcpOptions | string {
  const bytes = fromHex(hex);
  if (bytes.length % 4 !== 0) throw new Error(`test bug: ${hex} is not a multiple of 4 bytes`);
  const hdr = new Uint8Array(20 + bytes.length);
  hdr.set(bytes, 20);
  hdr[12] = (hdr.length / 4) << 4;
  const r = parseTcp(hdr);
  return typeof r === 'string' ? r : r.options;
}

describe('TCP header codec', () => {
  it('RFC 9293 3.1: builds the fixed header field by field and parses it back', () => {
    const s = seg({ srcPort: 0xfffe, dstPort: 1, seq: 0xffffffff, ack: 0x80000000, flags: TCP_ACK | TCP_PSH | TCP_FIN, window: 0xffff, urgent: 0x1234, payload: fromHex('68656c6c6f') });
    const bytes = build(s, 'none');
    expect(toHex(bytes)).toBe('fffe0001' + 'ffffffff' + '80000000' + '5019' + 'ffff' + '0000' + '1234' + '68656c6c6f');
    expect(parseTcp(bytes)).toEqual(s);
  });

  it('RFC 9293 3.1: the checksum covers the IPv4 pseudo header, header and payload', () => {
    const s = seg({ payload: fromHex('01020304ff') });
    const bytes = build(s);
    const ph = new Uint8Array(12);
    new DataView(ph.buffer).setUint32(0, SRC);
    new DataView(ph.buffer).setUint32(4, DST);
    ph[9] = 6;
    ph[11] = bytes.length;
    expect(referenceSum(bytes, referenceSum(ph))).toBe(0xffff);
    expect(parseTcp(bytes, PSEUDO)).toEqual(s);
    for (let i = 0; i < bytes.length; i++) {
      const bad = bytes.slice();
      bad[i] ^= 0x01; // bit 0: in byte 12 a reserved bit, so the data offset stays valid
      expect(parseTcp(bad, PSEUDO), `flip in byte ${i}`).toBe('bad-checksum');
    }
    // Wrong addresses in the pseudo header fail too.
    expect(parseTcp(bytes, pseudoHeaderSumV4(SRC, DST + 1, 6, 0))).toBe('bad-checksum');
  });

  it('RFC 8200 8.1: the checksum works with the IPv6 pseudo header', () => {
    const p6 = pseudoHeaderSumV6(ipv6('2001:db8::1'), ipv6('2001:db8::2'), 6, 0);
    const s = seg({ options: { ts: { val: 1, ecr: 2 } }, payload: randomBytes(prng(6), 999) });
    const bytes = build(s, p6);
    expect(parseTcp(bytes, p6)).toEqual(s);
    expect(parseTcp(bytes, pseudoHeaderSumV6(ipv6('2001:db8::1'), ipv6('2001:db8::3'), 6, 0))).toBe('bad-checksum');
  });

  it('parses the payload as a view over the received buffer, not a copy', () => {
    const backing = new Uint8Array(200);
    const bytes = build(seg({ payload: fromHex('aabbcc') }));
    backing.set(bytes, 17);
    const r = parseTcp(backing.subarray(17, 17 + bytes.length));
    if (typeof r === 'string') throw new Error(r);
    expect(r.payload.buffer).toBe(backing.buffer);
    expect(r.payload.byteOffset).toBe(17 + 20);
    backing[37] = 0x11;
    expect(toHex(r.payload)).toBe('11bbcc');
  });

  it('builds at an unaligned offset and skips the payload copy when the payload is already in place', () => {
    const payload = randomBytes(prng(3), 1000);
    const s = seg({ options: { ts: { val: 7, ecr: 9 } }, payload });
    const want = build(s);
    const out = new Uint8Array(1200).fill(0xee);
    const end = buildTcp(s, out, 3, PSEUDO);
    expect(end).toBe(3 + want.length);
    expect(toHex(out.subarray(3, end))).toBe(toHex(want));
    expect(out[2]).toBe(0xee);
    expect(out[end]).toBe(0xee);
    // Zero-copy build: payload written first at its final place, then the header around it.
    const out2 = new Uint8Array(1200);
    const hl = tcpHeaderLength(s.options);
    out2.set(payload, 5 + hl);
    const inPlace = { ...s, payload: out2.subarray(5 + hl, 5 + hl + payload.length) };
    buildTcp(inPlace, out2, 5, PSEUDO);
    expect(toHex(out2.subarray(5, 5 + want.length))).toBe(toHex(want));
  });
});

describe('TCP options: Linux layout (tcp_options_write)', () => {
  it('SYN: MSS, SACK_PERM+TS, NOP+WS exactly as Linux writes them', () => {
    const s = seg({ flags: TCP_SYN, ack: 0, options: { mss: 1460, sackPermitted: true, ts: { val: 0xe33c6a1e, ecr: 0 }, wscale: 7 } });
    const bytes = build(s);
    expect(toHex(bytes.subarray(20))).toBe('020405b4' + '0402080a' + 'e33c6a1e' + '00000000' + '01030307');
    expect(bytes[12]).toBe(0xa0);
    expect(parseTcp(bytes, PSEUDO)).toEqual(s);
  });

  it('ACK with timestamps: NOP NOP TS', () => {
    const s = seg({ options: { ts: { val: 3811948030, ecr: 2756394408 } } });
    expect(toHex(build(s).subarray(20))).toBe('0101080a' + 'e335b5fe' + 'a44b3da8');
  });

  it('RFC 2018: SACK blocks after NOP NOP; 3 fit beside timestamps, 4 without', () => {
    const blocks = [{ left: 1, right: 2 }, { left: 3, right: 4 }, { left: 5, right: 6 }, { left: 0xfffffff0, right: 7 }];
    const withTs = seg({ options: { ts: { val: 1, ecr: 2 }, sack: blocks } });
    const a = build(withTs);
    expect(a.length).toBe(60);
    expect(toHex(a.subarray(32))).toBe('0101051a' + '0000000100000002' + '0000000300000004' + '0000000500000006');
    const pa = parseTcp(a, PSEUDO);
    if (typeof pa === 'string') throw new Error(pa);
    expect(pa.options).toEqual({ ts: { val: 1, ecr: 2 }, sack: blocks.slice(0, 3) });
    const noTs = seg({ options: { sack: blocks } });
    const b = build(noTs);
    expect(b.length).toBe(56);
    expect(toHex(b.subarray(20, 24))).toBe('01010522');
    expect(parseTcp(b, PSEUDO)).toEqual(noTs);
    expect(tcpSackBlocksThatFit({ sack: blocks, mss: 1460, wscale: 1, sackPermitted: true, ts: { val: 0, ecr: 0 } })).toBe(2);
    expect(tcpSackBlocksThatFit({ sack: [] })).toBe(0);
  });

  it('SACK_PERM without timestamps: NOP NOP SACK_PERM; WS alone: NOP WS', () => {
    expect(toHex(build(seg({ flags: TCP_SYN, options: { mss: 536, sackPermitted: true } })).subarray(20))).toBe('02040218' + '01010402');
    expect(toHex(build(seg({ flags: TCP_SYN, options: { wscale: 0 } })).subarray(20))).toBe('01030300');
  });

  it('tcpHeaderLength matches what buildTcp writes and round trips for every option combination', () => {
    const next = prng(42);
    for (let i = 0; i < 2000; i++) {
      const o: TcpOptions = {};
      if (next() & 1) o.mss = next() & 0xffff;
      if (next() & 1) o.wscale = next() % 15;
      if (next() & 1) o.sackPermitted = true;
      if (next() & 1) o.ts = { val: next(), ecr: next() };
      const n = next() % 5;
      if (n > 0) o.sack = Array.from({ length: n }, () => ({ left: next(), right: next() }));
      const s = seg({ seq: next(), ack: next(), flags: next() & 0xff, window: next() & 0xffff, urgent: next() & 0xffff, options: o, payload: randomBytes(next, next() % 64) });
      const bytes = build(s);
      expect(bytes.length % 4 === s.payload.length % 4).toBe(true);
      const p = parseTcp(bytes, PSEUDO);
      if (typeof p === 'string') throw new Error(p);
      const fit = tcpSackBlocksThatFit(o);
      const want = { ...o };
      if (fit === 0) delete want.sack;
      else want.sack = o.sack!.slice(0, fit);
      expect(p).toEqual({ ...s, options: want });
    }
  });
});

describe('TCP options: parsing rules', () => {
  it('RFC 7323 2.3: a window-scale shift above 14 is used as 14, on parse and on build', () => {
    expect(options('01030315')).toEqual({ wscale: 14 });
    expect(options('010303ff')).toEqual({ wscale: 14 });
    expect(options('0103030e')).toEqual({ wscale: 14 });
    expect(toHex(build(seg({ options: { wscale: 20 } })).subarray(20))).toBe('0103030e');
  });

  it('skips unknown options by their length and keeps parsing after them', () => {
    // MPTCP (30, len 12), TFO cookie (34, len 10), experimental 253 len 4, NOP NOP, then MSS.
    expect(options('1e0c' + '00'.repeat(10) + '220a' + '11'.repeat(8) + 'fd04abcd' + '0101' + '020405b4')).toEqual({ mss: 1460 });
    // An unknown option with the minimum length 2.
    expect(options('4c02' + '0101' + '020405b4')).toEqual({ mss: 1460 });
  });

  it('stops at EOL and ignores whatever follows it', () => {
    expect(options('020405b4' + '00' + 'ff0000')).toEqual({ mss: 1460 });
    expect(options('00' + '020000')).toEqual({}); // a dangling MSS kind after EOL is padding
    expect(options('01010101')).toEqual({});
  });

  it('a later duplicate of an option wins (as in Linux)', () => {
    expect(options('02040100' + '02040200')).toEqual({ mss: 0x200 });
  });

  it('rejects the whole segment for length 0 or 1 on a multi-byte kind', () => {
    for (const kind of ['02', '03', '04', '05', '08', '1e', 'fd']) {
      expect(options(kind + '00' + '0101'), `kind ${kind} len 0`).toBe('bad-tcp-options');
      expect(options(kind + '01' + '0101'), `kind ${kind} len 1`).toBe('bad-tcp-options');
    }
  });

  it('rejects options that overrun the header or lack their length byte', () => {
    for (const hex of [
      '01010102', // a kind in the last byte, no length byte
      '01010204', // MSS needs 4 bytes, 2 left
      '080a000000000000', // timestamps need 10, 8 left
      '1e080000', // unknown kind, length 8 in 4 bytes
      '0101050a00000001', // SACK needs 10, 6 left
      '010103ff', // WS with length 255
    ]) expect(options(hex), hex).toBe('bad-tcp-options');
  });

  it('rejects a wrong fixed length for every known kind', () => {
    const bad = [
      '02030501', '0205000000010101', // MSS 3, 5
      '03020101', '03040000', // WS 2, 4
      '04030001', '04040000', // SACK_PERM 3, 4
      '0809' + '00'.repeat(7) + '010101', '080b' + '00'.repeat(9) + '01', // TS 9, 11
      '05020101', '0509' + '00'.repeat(7) + '010101', '050b' + '00'.repeat(9) + '01', '050c' + '00'.repeat(10), // SACK 2, 9, 11, 12
    ];
    for (const hex of bad) expect(options(hex), hex).toBe('bad-tcp-options');
    // The same kinds with their right lengths are fine.
    expect(options('020405b4' + '03030701' + '04020101' + '080a0000000100000002' + '0101' + '0101' + '050a0000000a00000014'))
      .toEqual({ mss: 1460, wscale: 7, sackPermitted: true, ts: { val: 1, ecr: 2 }, sack: [{ left: 10, right: 20 }] });
    // Four SACK blocks (length 34) are the most that fit.
    const four = '0101' + '0522' + '0000000100000002'.repeat(4);
    expect(options(four)).toEqual({ sack: Array.from({ length: 4 }, () => ({ left: 1, right: 2 })) });
  });

  it('parseTcpOptions reads an arbitrary range and never throws on random bytes', () => {
    const next = prng(77);
    let ok = 0;
    for (let i = 0; i < 20000; i++) {
      const bytes = randomBytes(next, next() % 41);
      const r = parseTcpOptions(bytes, 0, bytes.length);
      if (r !== undefined) ok++;
    }
    expect(ok).toBeGreaterThan(0);
  });
});

describe('TCP header sanity', () => {
  it('rejects a data offset below 5 and reports a header longer than the segment as truncated', () => {
    const bytes = build(seg({ options: { ts: { val: 1, ecr: 2 } } }));
    for (let doff = 0; doff < 5; doff++) {
      const b = bytes.slice();
      b[12] = doff << 4;
      expect(parseTcp(b), `doff ${doff}`).toBe('bad-header-length');
    }
    const b = bytes.slice();
    b[12] = 9 << 4; // 36 > 32 bytes present
    expect(parseTcp(b)).toBe('truncated');
    for (let len = 0; len < bytes.length; len++) {
      const r = parseTcp(bytes.subarray(0, len));
      expect(r, `length ${len}`).toBe('truncated');
    }
  });

  it('keeps reserved bits out of the flags and AE out of the record', () => {
    const bytes = build(seg({ flags: 0xff }));
    bytes[12] |= 0x0f;
    const r = parseTcp(bytes);
    if (typeof r === 'string') throw new Error(r);
    expect(r.flags).toBe(0xff);
  });
});
