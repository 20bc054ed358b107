import { describe, expect, it } from 'vitest';
import { generateIsn, randomIsnSecret } from '../../src/tcp/isn.js';

const secret = Uint8Array.from({ length: 16 }, (_, i) => i);
const la = Uint8Array.of(10, 0, 0, 1);
const ra = Uint8Array.of(10, 0, 0, 2);
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

describe('generateIsn', () => {
  // Expected F values computed independently with Python hashlib:
  // sha256(secret || laddr || lport(be16) || raddr || rport(be16))[0:4] as big-endian u32.
  it('RFC 6528: F is the first 32 bits of SHA-256(secret || 4-tuple) (IPv4 vector)', () => {
    expect(generateIsn(0, secret, la, 40000, ra, 80)).toBe(0xdaf7f228);
  });

  it('RFC 6528: F over IPv6 addresses (IPv6 vector)', () => {
    const la6 = hex('fd000000000000000000000000000001');
    const ra6 = hex('fd000000000000000000000000000002');
    expect(generateIsn(0, secret, la6, 443, ra6, 51515)).toBe(0x7e67fdc5);
  });

  it('RFC 6528: M is a 4-microsecond timer (250 ticks per ms) added to F', () => {
    expect(generateIsn(1000, secret, la, 40000, ra, 80)).toBe(0xdafbc2b8);
    expect(generateIsn(0.004, secret, la, 40000, ra, 80)).toBe((0xdaf7f228 + 1) >>> 0);
    const a = generateIsn(5_000, secret, la, 40000, ra, 80);
    const b = generateIsn(5_001, secret, la, 40000, ra, 80);
    expect((b - a) >>> 0).toBe(250);
  });

  it('RFC 6528: M wraps modulo 2^32 (every 2^32 * 4 us)', () => {
    const period = 2 ** 32 / 250; // ms
    expect(generateIsn(period, secret, la, 40000, ra, 80)).toBe(0xdaf7f228);
    expect(generateIsn(period + 1, secret, la, 40000, ra, 80)).toBe((0xdaf7f228 + 250) >>> 0);
    // Large wall-clock style values stay in range
    const v = generateIsn(1.7e12, secret, la, 40000, ra, 80);
    expect(Number.isInteger(v) && v >= 0 && v < 2 ** 32).toBe(true);
  });

  it('RFC 6528: each element of the 4-tuple and the secret changes F', () => {
    const base = generateIsn(0, secret, la, 40000, ra, 80);
    const variants = [
      generateIsn(0, secret, Uint8Array.of(10, 0, 0, 3), 40000, ra, 80),
      generateIsn(0, secret, la, 40001, ra, 80),
      generateIsn(0, secret, la, 40000, Uint8Array.of(10, 0, 0, 3), 80),
      generateIsn(0, secret, la, 40000, ra, 81),
      // swapped direction is a different connection identity
      generateIsn(0, secret, ra, 80, la, 40000),
      generateIsn(0, Uint8Array.from({ length: 16 }, (_, i) => i + 1), la, 40000, ra, 80),
    ];
    for (const v of variants) expect(v).not.toBe(base);
    expect(new Set(variants).size).toBe(variants.length);
  });

  it('randomIsnSecret returns 16 fresh random bytes', () => {
    const a = randomIsnSecret();
    const b = randomIsnSecret();
    expect(a).toBeInstanceOf(Uint8Array);
    expect(a.length).toBe(16);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });
});
