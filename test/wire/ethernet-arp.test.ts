import { describe, expect, it } from 'vitest';
import { ipv4, mac, ZERO_MAC } from '../../src/wire/addresses.js';
import { ARP_REPLY, ARP_REQUEST, buildArp, parseArp, type ArpPacket } from '../../src/wire/arp.js';
import {
  buildEthernet, ethernetHeaderLength, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, parseEthernet,
} from '../../src/wire/ethernet.js';
import { fromHex, toHex } from '../fixtures/wire-helpers.js';

describe('Ethernet II', () => {
  it('builds and parses an untagged header', () => {
    const out = new Uint8Array(20).fill(0xaa);
    const end = buildEthernet({ dst: mac('ff:ff:ff:ff:ff:ff'), src: mac('02:00:00:00:00:01'), ethertype: ETHERTYPE_IPV6 }, out, 2);
    expect(end).toBe(16);
    expect(toHex(out)).toBe('aaaa' + 'ffffffffffff' + '020000000001' + '86dd' + 'aaaaaaaa');
    const p = parseEthernet(out.subarray(2));
    if (typeof p === 'string') throw new Error(p);
    expect(toHex(p.dst)).toBe('ffffffffffff');
    expect(toHex(p.src)).toBe('020000000001');
    expect(p.ethertype).toBe(ETHERTYPE_IPV6);
    expect(p.vlan).toBeUndefined();
    expect(p.headerLength).toBe(14);
    expect(toHex(p.payload)).toBe('aaaaaaaa');
  });

  it('IEEE 802.1Q: reads pcp/dei/vid, skips the tag, and the builder writes it', () => {
    const vlan = { pcp: 5, dei: true, vid: 0xabc };
    expect(ethernetHeaderLength(vlan)).toBe(18);
    const out = new Uint8Array(18);
    buildEthernet({ dst: mac('02:00:00:00:00:02'), src: mac('02:00:00:00:00:01'), ethertype: ETHERTYPE_IPV4, vlan }, out);
    // TCI: pcp 101, dei 1, vid 1010 1011 1100 -> 1011 1010 1011 1100
    expect(toHex(out.subarray(12))).toBe('8100' + 'babc' + '0800');
    const p = parseEthernet(out);
    if (typeof p === 'string') throw new Error(p);
    expect(p.vlan).toEqual(vlan);
    expect(p.ethertype).toBe(ETHERTYPE_IPV4);
    expect(p.headerLength).toBe(18);
    expect(p.payload.length).toBe(0);
    const plain = parseEthernet(fromHex('020000000002020000000001' + '8100' + '0001' + '0806'));
    expect(plain).toMatchObject({ vlan: { pcp: 0, dei: false, vid: 1 }, ethertype: ETHERTYPE_ARP });
  });

  it('reports truncation below 14 bytes, and inside an 802.1Q tag', () => {
    const tagged = fromHex('020000000002020000000001' + '8100' + '0001' + '0800');
    for (let len = 0; len < 14; len++) expect(parseEthernet(tagged.subarray(0, len))).toBe('truncated');
    for (let len = 14; len < 18; len++) expect(parseEthernet(tagged.subarray(0, len))).toBe('truncated');
    expect(typeof parseEthernet(tagged)).toBe('object');
  });
});

describe('ARP (RFC 826, Ethernet/IPv4)', () => {
  const request: ArpPacket = {
    op: ARP_REQUEST, senderMac: mac('02:00:00:77:01:01'), senderIp: ipv4('10.77.1.1'), targetMac: ZERO_MAC, targetIp: ipv4('10.77.1.2'),
  };

  it('builds the exact 28-byte body and parses it back', () => {
    const out = new Uint8Array(30);
    expect(buildArp(request, out, 1)).toBe(29);
    expect(toHex(out.subarray(1, 29))).toBe('0001' + '0800' + '06' + '04' + '0001' + '020000770101' + '0a4d0101' + '000000000000' + '0a4d0102');
    const p = parseArp(out.subarray(1));
    if (typeof p === 'string') throw new Error(p);
    expect(p.op).toBe(ARP_REQUEST);
    expect(toHex(p.senderMac)).toBe('020000770101');
    expect(p.senderIp).toBe(request.senderIp);
    expect(toHex(p.targetMac)).toBe('000000000000');
    expect(p.targetIp).toBe(request.targetIp);
  });

  it('round trips a reply and ignores Ethernet padding after the body', () => {
    const reply: ArpPacket = { op: ARP_REPLY, senderMac: mac('02:00:00:77:01:02'), senderIp: ipv4('10.77.1.2'), targetMac: mac('02:00:00:77:01:01'), targetIp: ipv4('10.77.1.1') };
    const padded = new Uint8Array(46);
    buildArp(reply, padded);
    const p = parseArp(padded);
    if (typeof p === 'string') throw new Error(p);
    expect({ ...p, senderMac: toHex(p.senderMac), targetMac: toHex(p.targetMac) })
      .toEqual({ ...reply, senderMac: '020000770102', targetMac: '020000770101' });
  });

  it('rejects truncated bodies, non-Ethernet/IPv4 ARP and unknown opcodes', () => {
    const body = new Uint8Array(28);
    buildArp(request, body);
    for (let len = 0; len < 28; len++) expect(parseArp(body.subarray(0, len))).toBe('truncated');
    const mutate = (i: number, v: number): Uint8Array => { const b = body.slice(); b[i] = v; return b; };
    expect(parseArp(mutate(1, 6))).toBe('bad-arp'); // htype IEEE 802
    expect(parseArp(mutate(2, 0x86))).toBe('bad-arp'); // ptype not IPv4
    expect(parseArp(mutate(4, 8))).toBe('bad-arp'); // hlen
    expect(parseArp(mutate(5, 16))).toBe('bad-arp'); // plen
    expect(parseArp(mutate(7, 3))).toBe('bad-arp'); // RARP request
    expect(parseArp(mutate(7, 0))).toBe('bad-arp');
  });
});
