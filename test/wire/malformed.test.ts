/** Bad input never throws; every drop has the right reason from the closed set. */
import { describe, expect, it } from 'vitest';
import { internetChecksum } from '../../src/wire/checksum.js';
import { DropCounter, WIRE_DROP_REASONS, type WireDropReason } from '../../src/wire/drop-counter.js';
import { parseFrame, parseIpPacket, type ParsedFrame } from '../../src/wire/frame.js';
import { loadHexFrames, prng } from '../fixtures/wire-helpers.js';

const FIXTURES = ['linux-arp.hex', 'linux-tcp4.hex', 'linux-tcp6.hex', 'linux-icmp.hex', 'linux-pmtu.hex', 'linux-sack.hex'];
const corpus = FIXTURES.flatMap((name) => loadHexFrames(name).map((bytes, i) => ({ name: `${name}#${i}`, bytes })));
const REASONS = new Set<string>(WIRE_DROP_REASONS);

function expectValid(r: ParsedFrame | WireDropReason | object | string): void {
  if (typeof r === 'string') expect(REASONS.has(r), r).toBe(true);
  else expect(typeof r).toBe('object');
}

/** IPv4 header offset in an untagged Ethernet frame. */
const IP = 14;

function fixIpv4Checksum(frame: Uint8Array): void {
  const ihl = (frame[IP]! & 15) * 4;
  frame[IP + 10] = 0;
  frame[IP + 11] = 0;
  const c = internetChecksum(frame, IP, ihl);
  frame[IP + 10] = c >>> 8;
  frame[IP + 11] = c & 0xff;
}

describe('malformed frames', () => {
  it('every real frame parses, and every prefix of it is truncated (never a throw)', () => {
    expect(corpus.length).toBeGreaterThan(150);
    for (const { name, bytes } of corpus) {
      expect(typeof parseFrame(bytes), name).toBe('object');
      for (let len = 0; len < bytes.length; len++) {
        expect(parseFrame(bytes.subarray(0, len)), `${name} cut at ${len}`).toBe('truncated');
      }
    }
  });

  it('any single flipped bit inside a TCP segment or ICMP message is a bad checksum', () => {
    const next = prng(11);
    for (const { name, bytes } of corpus) {
      const f = parseFrame(bytes);
      if (typeof f === 'string' || !f.ip || (!f.tcp && !f.icmp)) continue;
      const l4Start = f.ip.payload.byteOffset - bytes.byteOffset;
      for (let k = 0; k < 20; k++) {
        const at = l4Start + (next() % (bytes.length - l4Start));
        const bad = bytes.slice();
        const bit = 1 << (next() & 7);
        // Data offset bits: a different header length may fail earlier, for a reason of its own.
        if (f.tcp && at === l4Start + 12 && bit >= 0x10) continue;
        bad[at] ^= bit;
        expect(parseFrame(bad), `${name} byte ${at} bit ${bit}`).toBe('bad-checksum');
      }
    }
  });

  it('bad IP version, IHL and TCP data offset give their reasons', () => {
    const tcp4 = loadHexFrames('linux-tcp4.hex')[0]!;
    const edit = (f: (b: Uint8Array) => void): Uint8Array => { const b = tcp4.slice(); f(b); return b; };
    expect(parseFrame(edit((b) => { b[IP] = 0x65; }))).toBe('bad-version');
    expect(parseFrame(edit((b) => { b[IP] = 0x44; }))).toBe('bad-header-length');
    expect(parseFrame(edit((b) => { b[IP + 2] = 0; b[IP + 3] = 19; fixIpv4Checksum(b); }))).toBe('bad-length'); // total < IHL
    expect(parseFrame(edit((b) => { b[IP + 3] += 1; fixIpv4Checksum(b); }))).toBe('truncated'); // total > what arrived
    // IHL 15: a 60-byte header where the frame holds 60 bytes of IP; nothing left for TCP.
    expect(parseFrame(edit((b) => { b[IP] = 0x4f; fixIpv4Checksum(b); }))).toBe('truncated');
    const tcpAt = IP + 20;
    for (let doff = 0; doff < 5; doff++) {
      expect(parseFrame(edit((b) => { b[tcpAt + 12] = doff << 4; }), false)).toBe('bad-header-length');
    }
    expect(parseFrame(edit((b) => { b[tcpAt + 12] = 0xf0; }), false)).toBe('truncated'); // 60-byte header in 40 bytes
    const tcp6 = loadHexFrames('linux-tcp6.hex').find((b) => b[20] === 6)!;
    const v4in6 = tcp6.slice();
    v4in6[IP] = 0x45;
    expect(parseFrame(v4in6)).toBe('bad-version');
  });

  it('IPv4 fragments are dropped as fragment, with a valid header checksum', () => {
    const icmp = loadHexFrames('linux-icmp.hex')[0]!;
    for (const [hi, lo] of [[0x20, 0], [0x00, 0xb9], [0x60, 0x10]] as const) {
      const b = icmp.slice();
      b[IP + 6] = hi;
      b[IP + 7] = lo;
      fixIpv4Checksum(b);
      expect(parseFrame(b)).toBe('fragment');
    }
  });

  it('TCP option lists Linux could never send are rejected as bad-tcp-options', () => {
    const syn = loadHexFrames('linux-tcp4.hex')[0]!;
    const opt = IP + 20 + 20; // MSS(4) SACK_PERM+TS(12) NOP WS(4)
    const edit = (f: (b: Uint8Array) => void): Uint8Array => { const b = syn.slice(); f(b); return b; };
    expect(parseFrame(edit((b) => { b[opt + 1] = 0; }), false)).toBe('bad-tcp-options'); // MSS length 0
    expect(parseFrame(edit((b) => { b[opt + 1] = 1; }), false)).toBe('bad-tcp-options'); // MSS length 1
    expect(parseFrame(edit((b) => { b[opt + 1] = 30; }), false)).toBe('bad-tcp-options'); // overruns
    expect(parseFrame(edit((b) => { b[opt + 7] = 9; }), false)).toBe('bad-tcp-options'); // TS length 9
    expect(parseFrame(edit((b) => { b[opt + 18] = 4; }), false)).toBe('bad-tcp-options'); // WS length 4
    expect(parseFrame(edit((b) => { b[opt + 19] = 200; }), false)).toMatchObject({ tcp: { options: { wscale: 14 } } });
  });

  it('never throws on random bytes, random IP-looking bytes or randomly corrupted real frames', () => {
    const next = prng(2024);
    const seen = new DropCounter();
    let parsed = 0;
    for (let i = 0; i < 30000; i++) {
      let buf: Uint8Array;
      const mode = i % 3;
      if (mode === 0) {
        buf = new Uint8Array(next() % 120);
        for (let j = 0; j < buf.length; j++) buf[j] = next();
      } else if (mode === 1) {
        // Ethernet + IPv4/IPv6 header start, random after that.
        buf = new Uint8Array(14 + (next() % 200));
        for (let j = 0; j < buf.length; j++) buf[j] = next();
        const v6 = next() & 1;
        buf[12] = v6 ? 0x86 : 0x08;
        buf[13] = v6 ? 0xdd : 0x00;
        if (buf.length > 14) buf[14] = v6 ? 0x60 : 0x45;
      } else {
        const src = corpus[next() % corpus.length]!.bytes;
        buf = src.slice(0, src.length - (next() & 1 ? next() % 8 : 0));
        const flips = 1 + (next() % 4);
        for (let j = 0; j < flips && buf.length > 0; j++) buf[next() % buf.length] = next();
      }
      const r = parseFrame(buf);
      expectValid(r);
      if (typeof r === 'string') seen.count(r);
      else parsed++;
      expectValid(parseIpPacket(buf.subarray(14)));
    }
    // The fuzz reached the deep parsers, not only the Ethernet check.
    const snap = seen.snapshot();
    for (const reason of ['truncated', 'bad-checksum', 'bad-version', 'unsupported-ethertype'] as const) {
      expect(snap[reason], reason).toBeGreaterThan(0);
    }
    expect(parsed).toBeGreaterThan(0);
  });
});

describe('DropCounter', () => {
  it('counts drops by reason; snapshot lists non-zero counts sorted; reset clears', () => {
    const c = new DropCounter();
    const frames = [
      new Uint8Array(3), // truncated
      loadHexFrames('linux-tcp4.hex')[0]!.subarray(0, 40), // truncated
      (() => { const b = loadHexFrames('linux-tcp4.hex')[1]!.slice(); b[b.length - 1] ^= 1; return b; })(), // bad-checksum
      (() => { const b = loadHexFrames('linux-arp.hex')[0]!.slice(); b[12] = 0x88; b[13] = 0xcc; return b; })(), // ethertype
    ];
    for (const f of frames) {
      const r = parseFrame(f);
      if (typeof r === 'string') c.count(r);
    }
    expect(c.snapshot()).toEqual({ 'bad-checksum': 1, truncated: 2, 'unsupported-ethertype': 1 });
    expect(Object.keys(c.snapshot())).toEqual(['bad-checksum', 'truncated', 'unsupported-ethertype']);
    expect(c.total).toBe(4);
    expect(c.get('fragment')).toBe(0);
    c.count('fragment', 5);
    expect(c.get('fragment')).toBe(5);
    expect(c.total).toBe(9);
    c.reset();
    expect(c.snapshot()).toEqual({});
    expect(c.total).toBe(0);
  });

  it('can count reasons of other layers', () => {
    const c = new DropCounter<'no-connection' | 'queue-full'>();
    c.count('no-connection');
    c.count('no-connection');
    expect(c.snapshot()).toEqual({ 'no-connection': 2 });
  });
});
