import { describe, expect, it } from 'vitest';
import {
  checksumAdjust16, checksumAdjust32, checksumValid, foldSum, internetChecksum, onesComplementSum,
  pseudoHeaderSumV4, pseudoHeaderSumV6,
} from '../../src/wire/checksum.js';
import { ipv4, ipv6 } from '../../src/wire/addresses.js';
import { fromHex, prng, randomBytes, referenceSum } from '../fixtures/wire-helpers.js';

describe('internet checksum', () => {
  it('RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2', () => {
    const data = fromHex('0001f203f4f5f6f7');
    expect(onesComplementSum(data).toString(16)).toBe('ddf2');
    expect(internetChecksum(data).toString(16)).toBe('220d');
  });

  it('a known IPv4 header (checksum b861) verifies and recomputes', () => {
    const hdr = fromHex('450000730000400040110000c0a80001c0a800c7');
    expect(internetChecksum(hdr)).toBe(0xb861);
    hdr[10] = 0xb8;
    hdr[11] = 0x61;
    expect(checksumValid(hdr)).toBe(true);
    hdr[19] ^= 1;
    expect(checksumValid(hdr)).toBe(false);
  });

  it('matches a byte-by-byte reference for every length 0..300 at every offset 0..7', () => {
    const next = prng(1071);
    const big = randomBytes(next, 320);
    for (let off = 0; off < 8; off++) {
      for (let len = 0; len <= 300; len++) {
        const want = referenceSum(big.subarray(off, off + len));
        expect(onesComplementSum(big, off, len), `off ${off} len ${len}`).toBe(want);
      }
    }
  });

  it('matches the reference on views with odd byteOffsets (Buffer pool slices, subarrays)', () => {
    const next = prng(7);
    for (let i = 0; i < 200; i++) {
      const len = next() % 2000;
      const pad = next() % 13;
      const backing = new Uint8Array(len + pad + 3);
      backing.set(randomBytes(next, len), pad);
      const view = backing.subarray(pad, pad + len);
      const initial = next() % 0x40000;
      expect(onesComplementSum(view, 0, len, initial)).toBe(referenceSum(view, initial));
      expect(internetChecksum(view)).toBe(~referenceSum(view) & 0xffff);
    }
    // An ArrayBuffer whose length is not a multiple of 4, summed right up to its last byte.
    const odd = new Uint8Array(new ArrayBuffer(1483));
    odd.set(randomBytes(next, 1483));
    expect(onesComplementSum(odd, 3)).toBe(referenceSum(odd.subarray(3)));
    const pooled = Buffer.from(randomBytes(next, 777));
    expect(onesComplementSum(pooled, 1, 775)).toBe(referenceSum(pooled.subarray(1, 776)));
  });

  it('stays right when alternating between buffers (the cached word view is per buffer)', () => {
    const next = prng(99);
    const a = randomBytes(next, 1500);
    const b = randomBytes(next, 64);
    const c = randomBytes(next, 4096).subarray(5);
    for (let round = 0; round < 3; round++) {
      expect(onesComplementSum(a)).toBe(referenceSum(a));
      expect(onesComplementSum(b)).toBe(referenceSum(b));
      expect(onesComplementSum(c)).toBe(referenceSum(c));
    }
  });

  it('follows a resizable ArrayBuffer that grows between calls', () => {
    type Resizable = ArrayBuffer & { resize(n: number): void };
    const Ctor = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => Resizable;
    const rab = new Ctor(64, { maxByteLength: 4096 });
    const view = new Uint8Array(rab); // length-tracking
    view.fill(0x11);
    expect(onesComplementSum(view)).toBe(referenceSum(view));
    rab.resize(2048);
    view.fill(0x5a, 64);
    expect(view.length).toBe(2048);
    expect(onesComplementSum(view, 1000, 1000)).toBe(referenceSum(view.subarray(1000, 2000)));
    rab.resize(256);
    expect(onesComplementSum(view, 0, 256)).toBe(referenceSum(view.subarray(0, 256)));
    rab.resize(4096);
    view.fill(0xc3, 256);
    expect(onesComplementSum(view, 1, 4095)).toBe(referenceSum(view.subarray(1)));
  });

  it('handles lengths past the periodic fold (4 MiB of 0xff and of random data)', () => {
    const ff = new Uint8Array(4 * 1024 * 1024 + 2).fill(0xff);
    expect(onesComplementSum(ff)).toBe(0xffff);
    expect(onesComplementSum(ff, 1)).toBe(referenceSum(ff.subarray(1)));
    const r = randomBytes(prng(5), 3 * 1024 * 1024 + 1);
    expect(onesComplementSum(r, 2)).toBe(referenceSum(r.subarray(2)));
  });

  it('foldSum folds sums beyond 32 bits with end-around carry', () => {
    expect(foldSum(0)).toBe(0);
    expect(foldSum(0x1ffff)).toBe(1);
    expect(foldSum(0x12345678)).toBe(0x5678 + 0x1234);
    expect(foldSum(0xffffffff)).toBe(0xffff);
    expect(foldSum(2 ** 40 + 5)).toBe(referenceSumOfNumber(2 ** 40 + 5));
  });
});

/** Fold by repeated division, written differently from foldSum. */
function referenceSumOfNumber(n: number): number {
  let s = n;
  while (s >= 0x10000) {
    let acc = 0;
    for (let x = s; x > 0; x = Math.floor(x / 0x10000)) acc += x % 0x10000;
    s = acc;
  }
  return s;
}

describe('pseudo-header sums', () => {
  it('RFC 9293 3.1: IPv4 pseudo-header sum equals the sum of the 12-byte pseudo header', () => {
    const next = prng(793);
    for (let i = 0; i < 100; i++) {
      const src = next();
      const dst = next();
      const len = next() & 0xffff;
      const ph = new Uint8Array(12);
      const dv = new DataView(ph.buffer);
      dv.setUint32(0, src);
      dv.setUint32(4, dst);
      ph[9] = 6;
      dv.setUint16(10, len);
      expect(foldSum(pseudoHeaderSumV4(src, dst, 6, len))).toBe(referenceSum(ph));
      // The base form (length 0) plus the length is the same sum.
      expect(foldSum(pseudoHeaderSumV4(src, dst, 6, 0) + len)).toBe(referenceSum(ph));
    }
    expect(foldSum(pseudoHeaderSumV4(ipv4('10.0.0.1'), ipv4('10.0.0.2'), 6, 20))).toBe(0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 20);
  });

  it('RFC 8200 8.1: IPv6 pseudo-header sum equals the sum of the 40-byte pseudo header', () => {
    const next = prng(8200);
    for (let i = 0; i < 100; i++) {
      const src = randomBytes(next, 16);
      const dst = randomBytes(next, 16);
      const len = next() >>> (next() & 15);
      const ph = new Uint8Array(40);
      ph.set(src, 0);
      ph.set(dst, 16);
      new DataView(ph.buffer).setUint32(32, len);
      ph[39] = 6;
      expect(foldSum(pseudoHeaderSumV6(src, dst, 6, len))).toBe(referenceSum(ph));
    }
    expect(foldSum(pseudoHeaderSumV6(ipv6('::1'), ipv6('::2'), 6, 0x10010))).toBe(1 + 2 + 6 + 1 + 0x10);
  });
});

describe('RFC 1624 incremental update', () => {
  it('RFC 1624 section 4 example: eqn. 3 gives 0x0000 where eqn. 2 gave 0xffff', () => {
    // Sum of the other header octets is 0xcd7a; m = 0x5555 -> m' = 0x3285.
    expect(checksumAdjust16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });

  it('equals a full recompute for random 16-bit and 32-bit field changes', () => {
    const next = prng(1624);
    for (let i = 0; i < 2000; i++) {
      const len = 20 + 2 * (next() % 40);
      const pkt = randomBytes(next, len);
      // Checksum field at 10..11 (as in IPv4); pseudo-header-like constant mixed in.
      const initial = next() & 0xfffff;
      pkt[10] = 0;
      pkt[11] = 0;
      const hc = internetChecksum(pkt, 0, len, initial);
      pkt[10] = hc >>> 8;
      pkt[11] = hc & 0xff;
      const dv = new DataView(pkt.buffer);
      if (i & 1) {
        let at = 2 * (next() % (len / 2));
        if (at === 10) at = 12;
        const old = dv.getUint16(at);
        const nu = next() & 0xffff;
        dv.setUint16(at, nu);
        const adjusted = checksumAdjust16(hc, old, nu);
        dv.setUint16(10, 0);
        expect(adjusted).toBe(internetChecksum(pkt, 0, len, initial));
      } else {
        const at = 12 + 2 * (next() % ((len - 16) / 2));
        const old = dv.getUint32(at);
        const nu = next();
        dv.setUint32(at, nu);
        const adjusted = checksumAdjust32(hc, old, nu);
        dv.setUint16(10, 0);
        expect(adjusted).toBe(internetChecksum(pkt, 0, len, initial));
      }
    }
  });
});
