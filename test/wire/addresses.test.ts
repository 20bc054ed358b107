import { describe, expect, it } from 'vitest';
import {
  BROADCAST_MAC, ipv4, ipv4ToString, ipv6, ipv6Equals, ipv6ToString, isBroadcastMac, isMulticastMac, mac, macEquals,
  macToString, parseIpv4Address, parseIpv6Address, parseMacAddress, readIpv4, writeIpv4,
} from '../../src/wire/addresses.js';
import { prng, randomBytes, toHex } from '../fixtures/wire-helpers.js';

describe('MAC addresses', () => {
  it('parses colon and dash forms, prints lower-case colon form', () => {
    expect(toHex(mac('02:00:00:77:01:0A'))).toBe('02000077010a');
    expect(toHex(mac('02-00-00-77-01-0a'))).toBe('02000077010a');
    expect(macToString(mac('AA:bb:CC:dd:EE:ff'))).toBe('aa:bb:cc:dd:ee:ff');
    expect(macToString(new Uint8Array([9, 1, 2, 3, 4, 5, 6, 7]), 2)).toBe('02:03:04:05:06:07');
  });

  it('rejects malformed text: parse returns undefined, mac() throws', () => {
    for (const bad of ['', '02:00:00:77:01', '02:00:00:77:01:0g', '02:00-00:77:01:0a', '2:0:0:77:1:a', '02:00:00:77:01:0a:', ' 02:00:00:77:01:0a']) {
      expect(parseMacAddress(bad), bad).toBeUndefined();
      expect(() => mac(bad)).toThrow(RangeError);
    }
  });

  it('compares and classifies', () => {
    expect(macEquals(mac('02:00:00:00:00:01'), mac('02:00:00:00:00:01'))).toBe(true);
    expect(macEquals(mac('02:00:00:00:00:01'), mac('02:00:00:00:00:02'))).toBe(false);
    expect(isBroadcastMac(BROADCAST_MAC)).toBe(true);
    expect(isBroadcastMac(mac('ff:ff:ff:ff:ff:fe'))).toBe(false);
    expect(isMulticastMac(mac('33:33:ff:00:00:02'))).toBe(true);
    expect(isMulticastMac(mac('02:00:00:00:00:01'))).toBe(false);
  });
});

describe('IPv4 addresses', () => {
  it('converts dotted quads to u32 numbers and back', () => {
    expect(ipv4('10.77.1.2')).toBe(0x0a4d0102);
    expect(ipv4('255.255.255.255')).toBe(0xffffffff);
    expect(ipv4('0.0.0.0')).toBe(0);
    expect(ipv4ToString(0xc0a80001)).toBe('192.168.0.1');
    expect(ipv4ToString(0xffffffff)).toBe('255.255.255.255');
    const next = prng(4);
    for (let i = 0; i < 1000; i++) {
      const n = next();
      expect(ipv4(ipv4ToString(n))).toBe(n);
    }
  });

  it('rejects malformed text', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-4', '1..3.4', 'a.b.c.d', '1.2.3.4 ']) {
      expect(parseIpv4Address(bad), bad).toBeUndefined();
      expect(() => ipv4(bad)).toThrow(RangeError);
    }
  });

  it('reads and writes network byte order', () => {
    const b = new Uint8Array(6);
    writeIpv4(b, 1, 0xc0000201);
    expect(toHex(b)).toBe('00c000020100');
    expect(readIpv4(b, 1)).toBe(0xc0000201);
  });
});

describe('IPv6 addresses', () => {
  it('RFC 4291 2.2: parses full, compressed and dotted-quad-tail forms', () => {
    expect(toHex(ipv6('2001:db8:0:0:1:0:0:1'))).toBe('20010db8000000000001000000000001');
    expect(toHex(ipv6('2001:DB8::1'))).toBe('20010db8000000000000000000000001');
    expect(toHex(ipv6('::'))).toBe('0'.repeat(32));
    expect(toHex(ipv6('::1'))).toBe('0'.repeat(31) + '1');
    expect(toHex(ipv6('fe80::'))).toBe('fe80' + '0'.repeat(28));
    expect(toHex(ipv6('::ffff:192.0.2.1'))).toBe('00000000000000000000ffffc0000201');
    expect(toHex(ipv6('::192.0.2.1'))).toBe('000000000000000000000000c0000201');
    expect(toHex(ipv6('1:2:3:4:5:6:1.2.3.4'))).toBe('00010002000300040005000601020304');
  });

  it('RFC 5952: prints the canonical form', () => {
    expect(ipv6ToString(ipv6('2001:0db8:0000:0000:0001:0000:0000:0001'))).toBe('2001:db8::1:0:0:1');
    expect(ipv6ToString(ipv6('2001:db8:0:1:1:1:1:1'))).toBe('2001:db8:0:1:1:1:1:1'); // a single 0 is not compressed
    expect(ipv6ToString(ipv6('2001:0:0:1:0:0:0:1'))).toBe('2001:0:0:1::1'); // the longest run wins
    expect(ipv6ToString(ipv6('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1'); // first of equal runs
    expect(ipv6ToString(ipv6('::'))).toBe('::');
    expect(ipv6ToString(ipv6('::1'))).toBe('::1');
    expect(ipv6ToString(ipv6('fd77:1::'))).toBe('fd77:1::');
  });

  it('round trips random addresses (with zero runs) through text', () => {
    const next = prng(6);
    for (let i = 0; i < 1000; i++) {
      const a = randomBytes(next, 16);
      // Zero out a random run of groups so compression is exercised.
      const start = next() % 8;
      const len = next() % (9 - start);
      a.fill(0, 2 * start, 2 * (start + len));
      const text = ipv6ToString(a);
      expect(toHex(ipv6(text)), text).toBe(toHex(a));
    }
  });

  it('rejects malformed text', () => {
    for (const bad of ['', ':', ':::', '1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', ':1::', '1::2:',
      '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3', '1.2.3.4::', 'fe80::1%eth0', '1:2:3:4:5:6:7::8']) {
      expect(parseIpv6Address(bad), bad).toBeUndefined();
      expect(() => ipv6(bad)).toThrow(RangeError);
    }
  });

  it('compares', () => {
    expect(ipv6Equals(ipv6('fd77:1::1'), ipv6('fd77:1:0::1'))).toBe(true);
    expect(ipv6Equals(ipv6('fd77:1::1'), ipv6('fd77:1::2'))).toBe(false);
  });
});
